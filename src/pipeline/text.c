/* pipeline/text: prompts -> umT5 rows (text.h). */
#include "pipeline/text.h"
#include "models/umt5.h"
#include <stdlib.h>
#include <string.h>

void hb_text_rows_free(hb_text_rows *rows, int n) {
    for (int i = 0; rows && i < n; i++) hb_dev_free(rows[i].ctx), rows[i].ctx = NULL, rows[i].len = 0;
}

static int encode_one(const hb_text_opts *o, hb_umt5 *te, const char *text, int64_t *ids, hb_text_rows *out) {
    int n = hb_tokenizer_encode_padded_i64(o->tok, text, o->clean, o->text_len, ids, NULL);
    if (n < 0) return -1;
    const hb_umt5_config *c = hb_umt5_get_config(te);
    if (c->dim != o->text_dim)
        return hb_error("%s: the text encoder gives %lld-wide rows but the DiT expects text_dim %d", o->encoder,
                        (long long)c->dim, o->text_dim);
    out->ctx = hb_dev_alloc((size_t)n * (size_t)o->text_dim * sizeof(float), "text context");
    if (!out->ctx) return -1;
    if (hb_umt5_encode(te, ids, n, n, out->ctx)) { hb_dev_free(out->ctx); out->ctx = NULL; return -1; }
    out->len = n;
    return 0;
}

int hb_text_encode(const hb_text_opts *o, const char *const *texts, int n, hb_text_rows *out) {
    memset(out, 0, (size_t)n * sizeof *out);
    int64_t *ids = malloc((size_t)o->text_len * sizeof *ids);
    if (!ids) return hb_error("out of memory");
    hb_umt5 *te = hb_umt5_open(o->encoder);
    int rc = te ? 0 : -1;
    if (te && o->low_memory) hb_umt5_set_low_memory(te, true);
    hb_progress pr;
    hb_progress_begin(&pr, o->progress, o->progress_user, "text", n);
    for (int i = 0; i < n && !rc; i++) {
        rc = encode_one(o, te, texts[i], ids, &out[i]);
        hb_progress_step(&pr, i + 1);
    }
    hb_progress_end(&pr);
    hb_umt5_free(te);
    free(ids);
    if (rc) hb_text_rows_free(out, n);
    return rc;
}
