/* A tiny Wan DiT runs from GGUF files written by hb_gguf_quantize (the code behind hb quantize): every mix loads
 * through the model-folder path (config.json + one .gguf), its output stays within a stated normwise error of the
 * f32 model's (measured on fresh random weights, bound ~3x the typical value), and a quantized model's forward
 * equals, bit for bit, the forward of an F32 GGUF holding its dequantized weights (the quantized linear sees
 * exactly ggml's values). The written layout: official names, F32 / 16-bit keeps, the q4_k_m bumps. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/wan_dit.h"
#include <stdlib.h>
#include <string.h>

static const char *k_cfg = "{\"dim\": 256, \"ffn_dim\": 512, \"freq_dim\": 64, \"num_heads\": 2, \"num_layers\": 2, "
                           "\"in_dim\": 16, \"out_dim\": 16, \"text_len\": 8, \"text_dim\": 64, \"patch_size\": [1, 2, 2]}";

typedef struct { float *x, *t, *ctx; int64_t F, H, W, L, nout; } rin;

static void make_input(const wan_dit_config *c, hb_rng *r, rin *in) {
    in->F = 2; in->H = 8; in->W = 8;
    int64_t nx = (int64_t)c->in_dim * in->F * in->H * in->W;
    in->x = malloc(sizeof(float) * (size_t)nx);
    tl_fill_normal(r, in->x, nx, 1.0f);
    in->L = in->F * (in->H / 2) * (in->W / 2);
    in->t = malloc(sizeof(float) * (size_t)in->L);
    for (int64_t i = 0; i < in->L; i++) in->t[i] = 700.0f;
    in->ctx = malloc(sizeof(float) * (size_t)(5 * c->text_dim));
    tl_fill_normal(r, in->ctx, 5 * c->text_dim, 1.0f);
    in->nout = (int64_t)c->out_dim * in->F * in->H * in->W;
}

/* Forward of the model in folder `dir` (NULL output + failed check when it cannot load or run). */
static float *run(const char *dir, const rin *in) {
    wan_dit *m = wan_dit_open(dir, NULL);
    CHECKF(m != NULL, "%s: %s", dir, hb_last_error());
    if (!m) return NULL;
    float *out = malloc(sizeof(float) * (size_t)in->nout);
    wan_dit_input wi = {.x = in->x, .F = in->F, .H = in->H, .W = in->W, .t = in->t, .nt = in->L, .context = in->ctx,
                        .ctx_len = 5};
    int rc = wan_dit_forward(m, &wi, out, NULL);
    CHECKF(rc == 0, "%s: %s", dir, hb_last_error());
    wan_dit_free(m);
    return out;
}

/* A folder holding config.json and `src` quantized to `type` as model.gguf. */
static const char *quantized_folder(const char *src, const char *type, const char *name) {
    static char dir[1024];
    char cmd[3200];
    snprintf(dir, sizeof dir, "%s/%s", tl_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/config.json' '%s/'", dir, src, dir);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    char out[1100];
    snprintf(out, sizeof out, "%s/model.gguf", dir);
    CHECKF(hb_gguf_quantize(src, out, type, NULL) == 0, "quantize %s: %s", type, hb_last_error());
    return dir;
}

static void check_layout(const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return;
    hb_tensor t;
    CHECK(!strcmp(hb_checkpoint_metadata(ck, "general.architecture"), "wan"));
    CHECK(!strcmp(hb_checkpoint_metadata(ck, "general.file_type"), "15"));
    CHECK(hb_checkpoint_get(ck, "patch_embedding.weight", &t) == 0 && t.dtype == HB_F32 && t.ndim == 5);
    CHECK(!strcmp(hb_checkpoint_name(ck, 1), "patch_embedding.weight"));
    CHECK(hb_checkpoint_get(ck, "blocks.0.modulation", &t) == 0 && t.dtype == HB_F32 && t.ndim == 3);
    CHECK(hb_checkpoint_get(ck, "blocks.1.self_attn.q.weight", &t) == 0 && t.dtype == HB_Q4_K);
    CHECK(hb_checkpoint_get(ck, "blocks.1.cross_attn.v.weight", &t) == 0 && t.dtype == HB_Q6_K);
    CHECK(hb_checkpoint_get(ck, "blocks.0.ffn.2.weight", &t) == 0 && t.dtype == HB_Q6_K);
    CHECK(hb_checkpoint_get(ck, "blocks.0.ffn.0.weight", &t) == 0 && t.dtype == HB_Q4_K);
    CHECK(hb_checkpoint_get(ck, "time_projection.1.weight", &t) == 0 && t.dtype == HB_BF16);
    CHECK(hb_checkpoint_get(ck, "head.head.weight", &t) == 0 && t.dtype == HB_BF16);
    CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.bias", &t) == 0 && t.dtype == HB_F32);
    hb_checkpoint_close(ck);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    wan_dit_config c;
    CHECK(wan_dit_config_parse(&c, k_cfg, "test") == 0);
    char src[1024], cmd[1200];
    snprintf(src, sizeof src, "%s/f32", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", src);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    CHECKF(wan_dit_write_random(&c, src, HB_F32, hb_rng_u64(&r), 1 << 20) == 0, "%s", hb_last_error());
    rin in;
    make_input(&c, &r, &in);
    float *ref = run(src, &in);
    if (!ref) return tl_done();
    /* normwise error bounds against the f32 model, ~2.5x the measured values (bf16 2.9e-3, f16 3.4e-4, q8_0
     * 4.7e-3, q6_k 1.2e-2, q5_k_m 2.3e-2, q5_0 3.0e-2, q4_k_m 4.6e-2, q4_0 6.8e-2, q3_k_m 9.0e-2, q2_k 0.18) */
    static const struct { const char *type; double tol; } mixes[] = {
        {"bf16", 1e-2}, {"f16", 2e-3}, {"q8_0", 1.5e-2}, {"q6_k", 4e-2}, {"q5_k_m", 7e-2}, {"q5_0", 8e-2},
        {"q5_1", 8e-2}, {"q4_k_m", 0.12}, {"q4_k_s", 0.15}, {"q4_0", 0.2}, {"q4_1", 0.2}, {"q3_k_m", 0.25},
        {"q3_k_s", 0.3}, {"q2_k", 0.5},
    };
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", quantized_folder(src, mixes[i].type, mixes[i].type));
        float *y = run(dir, &in);
        if (!y) continue;
        double e = tl_rel_err(y, ref, in.nout);
        printf("%-7s rel err %.3e (bound %.1e)\n", mixes[i].type, e, mixes[i].tol);
        CHECKF(e <= mixes[i].tol, "%s: rel err %.3e > %.1e", mixes[i].type, e, mixes[i].tol);
        if (!strcmp(mixes[i].type, "q4_k_m")) {
            check_layout(dir);
            /* its dequantized F32 copy (GGUF -> GGUF) gives the same bits */
            const char *fdir = quantized_folder(dir, "f32", "deq");
            float *yf = run(fdir, &in);
            CHECKF(yf && !memcmp(y, yf, sizeof(float) * (size_t)in.nout), "q4_k_m forward differs from its dequantized F32 copy");
            free(yf);
        }
        free(y);
    }
    free(ref);
    free(in.x); free(in.t); free(in.ctx);
    return tl_done();
}
