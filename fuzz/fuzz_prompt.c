/* libFuzzer target for prompt handling: Wan's prompt cleaning (ftfy-like fixes, html.unescape twice,
 * whitespace collapsing), html.unescape alone, and tokenizing the cleaned prompt with the tiny SentencePiece
 * model. The input is the prompt (any bytes, NUL-terminated here). */
#include "fuzz_common.h"
#include "models/tokenizer.h"
#include "pipeline/model_folder.h"
#include "random_models.h"

static hb_tokenizer *g_tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) {
        char path[300];
        snprintf(path, sizeof path, "%s/spiece.model", fz_dir());
        if (hb_write_tiny_spiece(path) < 0 || !(g_tok = hb_tokenizer_load(path))) abort();
    }
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *clean = hb_prompt_clean(text);
    free(hb_html_unescape(text));
    if (clean) {
        int32_t *ids = NULL, n = 0;
        if (hb_tokenizer_encode(g_tok, clean, strlen(clean), &ids, &n) == 0) {
            for (int k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= hb_tokenizer_vocab_size(g_tok)) abort();
            free(ids);
        }
        free(clean);
    }
    int32_t pad[64], mask[64];
    int real = hb_tokenizer_encode_padded(g_tok, text, true, 64, pad, mask);
    if (real > 64) abort();
    free(text);
    return 0;
}
