/* ops: hb_copy_nd against an explicit index loop: every element where the strides say, every other destination
 * element untouched (exact). Shapes: the light decoder's 3-D pixel shuffle (5-D copies, a short interleaved last
 * dim, frames st apart) checked against the index formula, its channel <-> position transposes (odd sizes, tails of every tile), permuted 3-D and 4-D views with
 * short rows (tasks start mid-row-sequence), 1-D. Bitwise identity across 1/2/3 threads. */
#include "test_ops_common.h"

typedef struct { const float *src; const int64_t *ds, *ss, *shape; int ndim; int64_t ndst; } copy_ctx;

static void copy_body(void *vc, float *out) {
    copy_ctx *c = vc;
    for (int64_t i = 0; i < c->ndst; i++) out[i] = -1.0f; /* untouched elements must stay */
    hb_copy_nd(out, c->ds, c->src, c->ss, c->ndim, c->shape);
}

/* dst holds ndst floats, src nsrc; strides must address distinct destination elements */
static void check_copy(hb_rng *r, int ndim, const int64_t *shape, const int64_t *ds, const int64_t *ss, int64_t ndst,
                       int64_t nsrc, const char *what) {
    float *src = rnd(r, nsrc, 1.0f), *out = malloc(sizeof(float) * (size_t)ndst), *ref = malloc(sizeof(float) * (size_t)ndst);
    for (int64_t i = 0; i < ndst; i++) ref[i] = -1.0f;
    int64_t total = 1, idx[8] = {0};
    for (int d = 0; d < ndim; d++) total *= shape[d];
    for (int64_t e = 0; e < total; e++) {
        int64_t rem = e, od = 0, os = 0;
        for (int d = ndim - 1; d >= 0; d--) {
            idx[d] = rem % shape[d];
            rem /= shape[d];
            od += idx[d] * ds[d];
            os += idx[d] * ss[d];
        }
        ref[od] = src[os];
    }
    copy_ctx c = {src, ds, ss, shape, ndim, ndst};
    same_for_threads(copy_body, &c, out, sizeof(float) * (size_t)ndst, what);
    CHECKF(memcmp(out, ref, sizeof(float) * (size_t)ndst) == 0, "%s: differs from the index loop", what);
    free(src); free(out); free(ref);
}

/* light_vae_run.c's upsampler: channel ((c s + i) s + j) st + k -> channel c, frame t st + k - drop, pixel (y s + i,
 * x s + j); one copy per (k, i) into the same destination, the column sub-pixel j the innermost dim */
static void check_shuffle3d(hb_rng *r, int64_t C, int64_t T, int64_t H, int64_t W, int64_t st, int64_t s) {
    int64_t HW = H * W, drop = st - 1, To = T * st - drop, Hs = H * s, Ws = W * s, nsrc = C * s * s * st * T * HW;
    int64_t ndst = C * To * Hs * Ws;
    float *src = rnd(r, nsrc, 1.0f), *out = malloc(sizeof(float) * (size_t)ndst), *ref = malloc(sizeof(float) * (size_t)ndst);
    for (int64_t q = 0; q < ndst; q++) out[q] = ref[q] = -1.0f;
    for (int64_t c = 0; c < C; c++) /* the index formula of the docs, element by element */
        for (int64_t i = 0; i < s; i++)
            for (int64_t j = 0; j < s; j++)
                for (int64_t k = 0; k < st; k++)
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t y = 0; y < H; y++)
                            for (int64_t x = 0; x < W; x++) {
                                int64_t to = t * st + k - drop;
                                if (to >= 0)
                                    ref[((c * To + to) * Hs + y * s + i) * Ws + x * s + j] =
                                        src[((((c * s + i) * s + j) * st + k) * T + t) * HW + y * W + x];
                            }
    for (int64_t k = 0; k < st; k++)
        for (int64_t i = 0; i < s; i++) {
            int64_t t0 = k < drop ? 1 : 0;
            const int64_t shp[5] = {C, T - t0, H, W, s}, sst[5] = {s * s * st * T * HW, HW, W, 1, st * T * HW},
                          dst[5] = {To * Hs * Ws, st * Hs * Ws, s * Ws, s, 1};
            hb_threads_init(1 + (int)((i + k) % 3)); /* each copy with another thread count */
            hb_copy_nd(out + (t0 * st + k - drop) * Hs * Ws + i * Ws, dst, src + (i * s * st + k) * T * HW + t0 * HW, sst,
                       5, shp);
        }
    CHECKF(memcmp(out, ref, sizeof(float) * (size_t)ndst) == 0, "shuffle3d C%lld T%lld %lldx%lld st%lld s%lld",
           (long long)C, (long long)T, (long long)H, (long long)W, (long long)st, (long long)s);
    free(src); free(out); free(ref);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_shuffle3d(&r, 3, 4, 5, 7, 2, 2);
    check_shuffle3d(&r, 2, 3, 6, 9, 1, 2);
    { /* channel <-> position transposes (the LayerNorm shortcut), sizes off every tile */
        const int64_t S = 1037, C = 70, shp[2] = {S, C}, rows[2] = {C, 1}, cols[2] = {1, S};
        check_copy(&r, 2, shp, rows, cols, S * C, S * C, "transpose [C,S] -> [S,C]");
        check_copy(&r, 2, shp, cols, rows, S * C, S * C, "transpose [S,C] -> [C,S]");
        const int64_t shp2[2] = {5, 3}, rows2[2] = {3, 1}, cols2[2] = {1, 5};
        check_copy(&r, 2, shp2, rows2, cols2, 15, 15, "transpose 5x3");
    }
    { /* permuted 3-D view with short rows: [4, 33, 3] read from a [3, 4, 33] buffer, rows of 3 */
        const int64_t shp[3] = {4, 33, 3}, ds[3] = {99, 3, 1}, ss[3] = {33, 1, 132};
        check_copy(&r, 3, shp, ds, ss, 396, 396, "permuted 3-D, rows of 3");
    }
    { /* permuted 3-D view with rows of 11 (the plain row path): [5, 6, 11] read from an [11, 5, 6] buffer */
        const int64_t shp[3] = {5, 6, 11}, ds[3] = {66, 11, 1}, ss[3] = {6, 1, 30};
        check_copy(&r, 3, shp, ds, ss, 330, 330, "permuted 3-D, rows of 11");
    }
    { /* 2-D with a short contiguous last dim */
        const int64_t shp[2] = {300, 3}, ds[2] = {3, 1}, ss[2] = {4, 1};
        check_copy(&r, 2, shp, ds, ss, 900, 1200, "2-D, rows of 3");
    }
    { /* 4-D into a larger destination (gaps stay untouched), rows of 1 */
        const int64_t shp[4] = {3, 5, 7, 1}, ds[4] = {200, 40, 5, 1}, ss[4] = {35, 7, 1, 1};
        check_copy(&r, 4, shp, ds, ss, 600, 105, "4-D with gaps, rows of 1");
    }
    { /* 1-D, strided both sides */
        const int64_t shp[1] = {1000}, ds[1] = {3}, ss[1] = {2};
        check_copy(&r, 1, shp, ds, ss, 3000, 2000, "1-D strided");
    }
    hb_threads_shutdown();
    return tl_done();
}
