/* Golden runner for kind wan_dit: builds the DiT from the file's weights and config, runs
 * WanModel([in.x], t=in.t, context=[in.context], seq_len) and compares out.x and every mid.* tensor. */
#include "golden.h"
#include "models/wan_dit.h"
#include "ops/ops.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    golden_case *g;
} tap_ctx;

/* Expand grouped rows (per-frame / single modulation) to one row per token, then compare. */
static void tap(void *user, const char *name, const float *data, int64_t rows, int64_t cols, const hb_modgroups *mg) {
    tap_ctx *t = user;
    char full[96];
    snprintf(full, sizeof full, "mid.%s", name);
    if (!hb_checkpoint_has(t->g->ck, full)) return; /* the file keeps only some intermediates */
    if (!mg) { golden_compare(t->g, full, data, rows * cols); return; }
    /* The reference keeps one row per timestep value given: [1, dim] for one t, [1, L, dim] per token. */
    hb_tensor ref;
    int64_t want_rows = rows;
    if (hb_checkpoint_get(t->g->ck, full, &ref) == 0 && hb_tensor_numel(&ref) == cols) want_rows = 1;
    float *exp = hb_dev_alloc(sizeof(float) * (size_t)(want_rows * cols), full); /* data is in the backend's memory */
    if (!exp) { golden_compare_host(t->g, full, NULL, -1); return; }
    for (int64_t r = 0; r < want_rows; r += mg->rows_per_group) {
        int64_t n = want_rows - r < mg->rows_per_group ? want_rows - r : mg->rows_per_group;
        hb_copy_rows(exp + r * cols, cols, data + (r / mg->rows_per_group) * mg->group_stride, 0, n, cols);
    }
    golden_compare(t->g, full, exp, want_rows * cols);
    hb_dev_free(exp);
}

static int run_once(golden_case *g, wan_dit *m, bool no_group) {
    const wan_dit_config *c = &m->cfg;
    hb_tensor x, t, ctx;
    if (golden_tensor(g, "in.x", &x) || golden_tensor(g, "in.t", &t) || golden_tensor(g, "in.context", &ctx)) return -1;
    int64_t xs[4] = {c->in_dim, -1, -1, -1};
    if (hb_tensor_expect(&x, "in.x", 4, xs)) return hb_error_prefix("%s: ", g->path);
    if (ctx.ndim != 2 || ctx.shape[1] != c->text_dim)
        return hb_error("%s: in.context must be [L, %d]", g->path, c->text_dim);
    int64_t F = x.shape[1], H = x.shape[2], W = x.shape[3];
    int64_t nt = hb_tensor_numel(&t);
    int64_t nout = (int64_t)c->out_dim * F * H * W;
    /* latent, context and output in the backend's memory; timesteps on the host */
    float *xf = golden_tensor_dev(g, "in.x", NULL), *tf = golden_tensor_f32(g, "in.t", NULL),
          *cf = golden_tensor_dev(g, "in.context", NULL), *out = hb_dev_alloc(sizeof(float) * (size_t)nout, "out.x");
    int rc = -1;
    if (!xf || !tf || !cf || !out) goto done;
    /* seq_len (metadata) is the token count: the model pads to it, which changes nothing when equal. */
    const char *sl = hb_checkpoint_metadata(g->ck, "seq_len");
    int64_t L = (F / c->patch[0]) * (H / c->patch[1]) * (W / c->patch[2]);
    if (sl && strtoll(sl, NULL, 10) != L) {
        hb_log(HB_LOG_WARN, "%s: seq_len %s differs from the token count %lld (padded rows are not modelled; the "
               "real tokens' outputs are the same)", g->path, sl, (long long)L);
        if (nt == strtoll(sl, NULL, 10) && nt > L) nt = L; /* per-token t padded to seq_len: keep the real tokens */
    }
    wan_dit_input in = {.x = xf, .F = F, .H = H, .W = W, .t = tf, .nt = nt, .context = cf, .ctx_len = ctx.shape[0]};
    tap_ctx tc = {g};
    wan_dit_opts o = {.tap = tap, .tap_user = &tc, .no_group = no_group};
    if (hb_wan_dit_forward(m, &in, out, &o)) goto done;
    golden_compare(g, "out.x", out, nout);
    rc = 0;
done:
    hb_dev_free(xf); hb_free(tf); hb_dev_free(cf); hb_dev_free(out);
    return rc;
}

/* --bf16: a copy of the file's weights rounded to bf16 (what the real checkpoints store), written to a temp
 * safetensors file and opened like any checkpoint; activations stay f32. */
static hb_checkpoint *bf16_copy(golden_case *g, char *tmp, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(tmp, cap, "%s/hb_golden_dit_bf16.%ld.safetensors", base && *base ? base : "/tmp", (long)getpid());
    int n = hb_checkpoint_count(g->ck), k = 0;
    const char **names = calloc((size_t)n, sizeof *names);
    hb_tensor *ts = calloc((size_t)n, sizeof *ts);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    hb_checkpoint *ck = NULL;
    if (!names || !ts || !bufs) { hb_error("out of memory"); goto done; }
    for (int i = 0; i < n; i++) {
        const char *nm = hb_checkpoint_name(g->ck, i);
        hb_tensor t = hb_checkpoint_tensor(g->ck, i);
        if (!strncmp(nm, "in.", 3) || !strncmp(nm, "out.", 4) || !strncmp(nm, "mid.", 4) || t.dtype != HB_F32) continue;
        size_t ne = (size_t)hb_tensor_numel(&t);
        if (!(bufs[k] = hb_malloc(ne * 2 + 2, nm))) goto done;
        hb_convert_from_f32(bufs[k], HB_BF16, t.data, ne);
        names[k] = nm;
        ts[k] = hb_tensor_make(HB_BF16, t.ndim, t.shape, bufs[k]);
        k++;
    }
    if (hb_safetensors_write(tmp, k, names, ts, NULL) == 0) ck = hb_checkpoint_open(tmp);
done:
    for (int i = 0; bufs && i < n; i++) hb_free(bufs[i]);
    free(names); free(ts); free(bufs);
    return ck;
}

int golden_wan_dit_config(golden_case *g, wan_dit_config *cfg) {
    char *cfg_text = json_dumps(g->config, 0);
    if (!cfg_text) return hb_error("%s: cannot read the config", g->path);
    int rc = hb_wan_dit_config_parse(cfg, cfg_text, g->path);
    free(cfg_text);
    return rc;
}

int golden_run_wan_dit(golden_case *g) {
    wan_dit_config cfg;
    if (golden_wan_dit_config(g, &cfg)) return -1;
    int rc;
    char tmp[1024];
    hb_checkpoint *wck = g->bf16 ? bf16_copy(g, tmp, sizeof tmp) : g->ck;
    if (!wck) return -1;
    wan_dit *m = hb_wan_dit_from_checkpoint(wck, &cfg);
    rc = m ? run_once(g, m, false) : -1;
    hb_wan_dit_free(m);
    if (wck != g->ck) { hb_checkpoint_close(wck); unlink(tmp); }
    return rc;
}
