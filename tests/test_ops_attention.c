/* ops: hb_attention (online softmax) against a double-precision softmax(QK^T*scale + bias + mask)V, with strided
 * q/k/v in one interleaved buffer, bias, key masks (including a fully masked row: uniform weights), Lk much
 * larger than a key block; hb_rope3d against a float64 rewrite of Wan's rope_params/rope_apply.
 * Tolerances: attention 2e-5 normwise, rope 1e-6. Every kernel is checked bitwise across 1/2/3 threads. */
#include "test_ops_common.h"
#include "ops/ops_internal.h"
#include <float.h>

typedef struct { hb_attention_args a; } attn_ctx;

static void attn_body(void *vc, float *out) {
    attn_ctx *c = vc;
    hb_attention_args a = c->a;
    a.out = out;
    hb_attention(&a);
}

static void check_attention(hb_rng *r, int64_t lq, int64_t lk, int heads, int d, bool bias, int mask_mode) {
    int64_t hd = (int64_t)heads * d;
    /* q, k, v interleaved per token like a fused qkv projection: stride 3*hd (+1 to make it odd) */
    int64_t st = 3 * hd + 1, L = lq > lk ? lq : lk;
    float *qkv = rnd(r, L * st, 1.0f), *bs = bias ? rnd(r, (int64_t)heads * lq * lk, 2.0f) : NULL;
    uint8_t *mask = mask_mode ? malloc((size_t)lk) : NULL;
    for (int64_t j = 0; j < lk && mask; j++) mask[j] = mask_mode == 2 ? 0 : (hb_rng_u64(r) % 3 != 0);
    if (mask_mode == 1) mask[0] = 1;
    float scale = 1.0f / sqrtf((float)d);
    attn_ctx c = {{NULL, qkv, qkv + hd, qkv + 2 * hd, lq, lk, heads, d, hd, st, st, st, scale, bs, mask}};
    float *out = malloc(sizeof(float) * (size_t)(lq * hd)), *ref = malloc(sizeof(float) * (size_t)(lq * hd));
    double *p = malloc(sizeof(double) * (size_t)lk);
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < lq; i++) {
            double mx = -INFINITY;
            for (int64_t j = 0; j < lk; j++) {
                double s = 0;
                for (int e = 0; e < d; e++) s += (double)qkv[i * st + h * d + e] * qkv[j * st + hd + h * d + e];
                s *= scale;
                if (bs) s += bs[((int64_t)h * lq + i) * lk + j];
                if (mask && !mask[j]) s += -(double)FLT_MAX;
                p[j] = s;
                mx = s > mx ? s : mx;
            }
            double sum = 0;
            for (int64_t j = 0; j < lk; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
            for (int e = 0; e < d; e++) {
                double o = 0;
                for (int64_t j = 0; j < lk; j++) o += p[j] * qkv[j * st + 2 * hd + h * d + e];
                ref[i * hd + h * d + e] = (float)(o / sum);
            }
        }
    char what[160];
    snprintf(what, sizeof what, "attention lq=%lld lk=%lld heads=%d d=%d bias=%d mask=%d", (long long)lq, (long long)lk,
             heads, d, bias, mask_mode);
    same_for_threads(attn_body, &c, out, sizeof(float) * (size_t)(lq * hd), what);
    bool finite = true;
    for (int64_t i = 0; i < lq * hd; i++) finite &= isfinite(out[i]) != 0;
    CHECKF(finite, "%s: non-finite output", what);
    double e = tl_rel_err(out, ref, lq * hd);
    CHECKF(e <= 2e-5, "%s: rel err %.3e", what, e);
    /* in place: the output may overwrite q (same rows, same stride) */
    if (lq <= lk) {
        float *cp = malloc(sizeof(float) * (size_t)(L * st));
        memcpy(cp, qkv, sizeof(float) * (size_t)(L * st));
        hb_attention_args ia = c.a;
        ia.q = cp; ia.k = cp + hd; ia.v = cp + 2 * hd; ia.out = cp; ia.o_stride = st;
        hb_attention(&ia);
        bool same = true;
        for (int64_t i = 0; i < lq; i++) same &= memcmp(cp + i * st, out + i * hd, sizeof(float) * (size_t)hd) == 0;
        CHECKF(same, "%s: in-place result differs", what);
        free(cp);
    }
    free(qkv); free(bs); free(mask); free(out); free(ref); free(p);
}

/* ---- rope: Wan's rope_params(1024, dim) table is outer(arange, 1/10000^(arange(0,dim,2)/dim)) -> polar ---- */
typedef struct { float *x0; int64_t L, stride; int heads, d, H, W, f0; } rope_ctx;

static void rope_body(void *vc, float *out) {
    rope_ctx *c = vc;
    memcpy(out, c->x0, sizeof(float) * (size_t)(c->L * c->stride));
    hb_rope3d(out, c->L, c->heads, c->d, c->stride, c->H, c->W, c->f0);
}

static void check_rope(hb_rng *r, int F, int H, int W, int heads, int d, int f0, int extra) {
    int64_t L = (int64_t)F * H * W, stride = (int64_t)heads * d + extra;
    rope_ctx c = {rnd(r, L * stride, 1.0f), L, stride, heads, d, H, W, f0};
    float *out = malloc(sizeof(float) * (size_t)(L * stride)), *ref = malloc(sizeof(float) * (size_t)(L * stride));
    memcpy(ref, c.x0, sizeof(float) * (size_t)(L * stride));
    int dims[3] = {d - 4 * (d / 6), 2 * (d / 6), 2 * (d / 6)};
    for (int64_t i = 0; i < L; i++) {
        int64_t pos[3] = {f0 + i / ((int64_t)H * W), (i % ((int64_t)H * W)) / W, i % W};
        for (int h = 0; h < heads; h++) {
            float *x = ref + i * stride + (int64_t)h * d;
            int col = 0; /* complex column in the concatenated freqs table */
            for (int a = 0; a < 3; a++)
                for (int k = 0; k < dims[a]; k += 2, col++) {
                    double th = (double)pos[a] * (1.0 / pow(10000.0, (double)k / dims[a]));
                    double re = x[2 * col], im = x[2 * col + 1];
                    x[2 * col] = (float)(re * cos(th) - im * sin(th));
                    x[2 * col + 1] = (float)(re * sin(th) + im * cos(th));
                }
        }
    }
    char what[128];
    snprintf(what, sizeof what, "rope3d F=%d H=%d W=%d heads=%d d=%d f0=%d", F, H, W, heads, d, f0);
    same_for_threads(rope_body, &c, out, sizeof(float) * (size_t)(L * stride), what);
    double e = tl_rel_err(out, ref, L * stride);
    CHECKF(e <= 1e-6, "%s: rel err %.3e", what, e);
    free(c.x0); free(out); free(ref);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    /* every GEMM code path this machine has (the default one last) */
    const char *def = hb__gemm_path(), *paths[4] = {"generic", "avx2", "openblas", def};
    for (int pi = 0; pi < 4; pi++) {
        if (hb__gemm_select(paths[pi]) != 0) { fprintf(stderr, "GEMM path %s not available here\n", paths[pi]); continue; }
        fprintf(stderr, "GEMM path %s\n", hb__gemm_path());
        check_attention(&r, 1, 1, 1, 8, false, 0);
        check_attention(&r, 5, 3, 2, 16, true, 0);
        check_attention(&r, 70, 600, 3, 64, false, 0);
        check_attention(&r, 130, 77, 2, 128, true, 1);
        check_attention(&r, 33, 300, 2, 24, true, 1);
        check_attention(&r, 9, 40, 2, 32, true, 2);   /* every key masked: finite, uniform average */
        check_attention(&r, 300, 1100, 1, 16, false, 1);
        check_attention(&r, 800, 130, 2, 16, true, 1);   /* several query blocks in one super-block */
        check_attention(&r, 1700, 45, 2, 16, false, 1);  /* two super-blocks split evenly, partial 6-row strips */
        check_attention(&r, 50, 200, 1, 300, false, 0);  /* head_dim > 256 (VAE mid-block attention) */
        check_rope(&r, 3, 4, 5, 2, 128, 0, 0);
        check_rope(&r, 2, 3, 7, 3, 64, 5, 3);
        check_rope(&r, 1, 1, 1, 1, 12, 2, 0);
        check_rope(&r, 4, 2, 2, 2, 48, 17, 5);
    }
    hb_threads_shutdown();
    return tl_done();
}
