/* Data movement on the CPU: strided n-D copy, fill, row + vector, embedding lookup. One task per run of
 * leading indices; every element is written by exactly one task. */
#include "ops/ops_internal.h"
#include <string.h>

typedef struct {
    float *dst; const float *src;
    int ndim; int64_t shape[HB_MAX_DIMS], ds[HB_MAX_DIMS], ss[HB_MAX_DIMS];
    bool pair; /* a task row covers the last two dims (ndim is then one less for the row index) */
} copy_job;

/* Index r enumerates every position of the first ndim-1 dims (ndim-2 for a pair); the last dim is the inner loop.
 * The leading indices are decomposed once per task and then stepped like an odometer (rows can be a few elements
 * long: a division per row cost more than the copy). */
static void copy_rows(void *ctx, int64_t b, int64_t e) {
    const copy_job *j = ctx;
    const int last = j->ndim - 1, lead = j->pair ? last - 1 : last; /* dims [0, lead) enumerate the rows */
    const int64_t n = j->shape[last], dsl = j->ds[last], ssl = j->ss[last];
    int64_t idx[HB_MAX_DIMS] = {0}, od = 0, os = 0, rem = b;
    for (int d = lead - 1; d >= 0; d--) {
        idx[d] = rem % j->shape[d];
        rem /= j->shape[d];
        od += idx[d] * j->ds[d];
        os += idx[d] * j->ss[d];
    }
    for (int64_t r = b; r < e; r++) {
        float *dp = j->dst + od;
        const float *sp = j->src + os;
        if (j->pair) { /* rows of the last two dims together, the short last one inside (an interleave) */
            const int64_t m = j->shape[last - 1], ds1 = j->ds[last - 1], ss1 = j->ss[last - 1];
            if (n == 2 && ds1 == 2 && ss1 == 1) { /* two rows interleaved (a factor-2 shuffle): vectorisable */
                const float *s0 = sp, *s1 = sp + ssl;
                for (int64_t w = 0; w < m; w++) { dp[2 * w] = s0[w]; dp[2 * w + 1] = s1[w]; }
            } else {
                for (int64_t w = 0; w < m; w++)
                    for (int64_t i = 0; i < n; i++) dp[w * ds1 + i * dsl] = sp[w * ss1 + i * ssl];
            }
        } else if (dsl == 1 && ssl == 1) memcpy(dp, sp, sizeof(float) * (size_t)n);
        else if (ssl == 1)
            for (int64_t i = 0; i < n; i++) dp[i * dsl] = sp[i];
        else
            for (int64_t i = 0; i < n; i++) dp[i * dsl] = sp[i * ssl];
        for (int d = lead - 1; d >= 0; d--) { /* next row */
            od += j->ds[d];
            os += j->ss[d];
            if (++idx[d] < j->shape[d]) break;
            od -= idx[d] * j->ds[d];
            os -= idx[d] * j->ss[d];
            idx[d] = 0;
        }
    }
}

/* A 2-D transpose (unit stride on dim 0 on one side, on dim 1 on the other): one task per band of TT indices of
 * dim 0, copied in TT x TT tiles, so both sides move whole cache lines and a tile's pages stay in the TLB. */
#define TT 32
static void copy_tiles(void *ctx, int64_t b, int64_t e) {
    const copy_job *j = ctx;
    for (int64_t t = b; t < e; t++) {
        int64_t r0 = t * TT, r1 = r0 + TT < j->shape[0] ? r0 + TT : j->shape[0];
        for (int64_t c0 = 0; c0 < j->shape[1]; c0 += TT) {
            int64_t c1 = c0 + TT < j->shape[1] ? c0 + TT : j->shape[1];
            for (int64_t c = c0; c < c1; c++) {
                float *dp = j->dst + c * j->ds[1];
                const float *sp = j->src + c * j->ss[1];
                for (int64_t r = r0; r < r1; r++) dp[r * j->ds[0]] = sp[r * j->ss[0]];
            }
        }
    }
}

void hb_cpu_copy_nd(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int ndim,
                    const int64_t *shape) {
    if (ndim < 1 || ndim > HB_MAX_DIMS) return;
    copy_job j = {dst, src, ndim, {0}, {0}, {0}, false};
    int64_t rows = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) return;
        j.shape[d] = shape[d]; j.ds[d] = dst_stride[d]; j.ss[d] = src_stride[d];
        if (d < ndim - 1) rows *= shape[d];
    }
    if (ndim == 2 && ((j.ss[0] == 1 && j.ds[1] == 1) || (j.ds[0] == 1 && j.ss[1] == 1)) && shape[0] > 1 && shape[1] > 1) {
        hb_parallel_for((shape[0] + TT - 1) / TT, 1, copy_tiles, &j);
        return;
    }
    /* a short last dim that is contiguous in the destination (e.g. the columns of a pixel shuffle's sub-pixels):
     * one row per pair of last dims, so each destination line is written by one loop */
    int64_t inner = shape[ndim - 1];
    if (ndim >= 3 && shape[ndim - 1] <= 8 && dst_stride[ndim - 1] == 1 && shape[ndim - 2] > 1) {
        j.pair = true;
        rows /= shape[ndim - 2];
        inner *= shape[ndim - 2];
    }
    int64_t grain = 65536 / inner;
    hb_parallel_for(rows, grain < 1 ? 1 : grain, copy_rows, &j);
}

typedef struct { float *y; float v; } fill_job;
static void fill_range(void *ctx, int64_t b, int64_t e) {
    const fill_job *j = ctx;
    for (int64_t i = b; i < e; i++) j->y[i] = j->v;
}

void hb_cpu_fill(float *dst, float value, int64_t n) {
    if (n <= 0) return;
    fill_job j = {dst, value};
    hb_parallel_for(n, 65536, fill_range, &j);
}

typedef struct { float *y; const float *x, *v; int64_t ldy, ldx, n; } addv_job;
static void addv_rows(void *ctx, int64_t b, int64_t e) {
    const addv_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        float *y = j->y + r * j->ldy;
        const float *x = j->x + r * j->ldx;
        for (int64_t i = 0; i < j->n; i++) y[i] = x[i] + j->v[i];
    }
}

void hb_cpu_add_vec(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t n, const hb_tensor *v) {
    if (rows <= 0 || n <= 0) return;
    bool direct = v->dtype == HB_F32 && hb_tensor_is_contiguous(v);
    float *vf = direct ? (float *)v->data : hb__vec_f32(v, n);
    if (!vf) { hb__cpu_fail("hb_add_vec: out of memory"); return; }
    addv_job j = {y, x, vf, ldy, ldx, n};
    int64_t grain = 16384 / n;
    hb_parallel_for(rows, grain < 1 ? 1 : grain, addv_rows, &j);
    if (!direct) hb_free(vf);
}

int hb_cpu_embed_rows(float *y, const hb_tensor *table, const int32_t *ids, int64_t n) {
    const int64_t D = table->shape[1]; /* table and ids checked by the dispatcher */
    for (int64_t i = 0; i < n; i++) hb__weight_rows_f32(table, ids[i], 1, 0, D, y + i * D, D);
    return 0;
}

typedef struct { float *y; const float *x, *sc, *sh; int64_t S; } caff_job;
static void caff_rows(void *ctx, int64_t b, int64_t e) {
    const caff_job *j = ctx;
    for (int64_t c = b; c < e; c++) {
        const float k = j->sc ? j->sc[c] : 1.0f, d = j->sh ? j->sh[c] : 0.0f;
        const float *x = j->x + c * j->S;
        float *y = j->y + c * j->S;
        for (int64_t s = 0; s < j->S; s++) y[s] = x[s] * k + d;
    }
}

void hb_cpu_channel_affine(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *scale,
                           const hb_tensor *shift) {
    if (C <= 0 || S <= 0) return;
    float *sc = scale ? hb__vec_f32(scale, C) : NULL, *sh = shift ? hb__vec_f32(shift, C) : NULL;
    if ((scale && !sc) || (shift && !sh)) hb__cpu_fail("hb_channel_affine: out of memory");
    else {
        caff_job j = {y, x, sc, sh, S};
        int64_t grain = 65536 / S;
        hb_parallel_for(C, grain < 1 ? 1 : grain, caff_rows, &j);
    }
    hb_free(sc);
    hb_free(sh);
}

typedef struct { void *dst; hb_dtype dt; const void *src; hb_dtype st; } conv_job;
static void convert_range(void *ctx, int64_t b, int64_t e) {
    const conv_job *j = ctx;
    const size_t ds = hb_dtype_size(j->dt), ss = hb_dtype_size(j->st), n = (size_t)(e - b);
    uint8_t *d = (uint8_t *)j->dst + (size_t)b * ds;
    const uint8_t *s = (const uint8_t *)j->src + (size_t)b * ss;
    if (j->dt == j->st) memcpy(d, s, n * ds);
    else if (j->dt == HB_F32) hb_convert_to_f32((float *)d, s, j->st, n);
    else if (j->st == HB_F32) hb_convert_from_f32(d, j->dt, (const float *)s, n);
    else {
        float tmp[256];
        for (size_t i = 0; i < n; i += 256) {
            size_t k = n - i < 256 ? n - i : 256;
            hb_convert_to_f32(tmp, s + i * ss, j->st, k);
            hb_convert_from_f32(d + i * ds, j->dt, tmp, k);
        }
    }
}

int hb_cpu_convert(void *dst, hb_dtype dt, const void *src, hb_dtype st, int64_t n) {
    if (n <= 0) return 0; /* dtypes checked by the dispatcher */
    conv_job j = {dst, dt, src, st};
    hb_parallel_for(n, 65536, convert_range, &j);
    return 0;
}
