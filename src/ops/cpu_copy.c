/* Data movement on the CPU: strided n-D copy, fill, row + vector, embedding lookup. One task per run of
 * leading indices; every element is written by exactly one task. */
#include "ops/ops_internal.h"
#include <string.h>

typedef struct {
    float *dst; const float *src;
    int ndim; int64_t shape[HB_MAX_DIMS], ds[HB_MAX_DIMS], ss[HB_MAX_DIMS];
} copy_job;

/* Index r enumerates every position of the first ndim-1 dims; the last dim is the inner loop. */
static void copy_rows(void *ctx, int64_t b, int64_t e) {
    const copy_job *j = ctx;
    const int last = j->ndim - 1;
    const int64_t n = j->shape[last], dsl = j->ds[last], ssl = j->ss[last];
    for (int64_t r = b; r < e; r++) {
        int64_t rem = r, od = 0, os = 0;
        for (int d = last - 1; d >= 0; d--) {
            int64_t i = rem % j->shape[d];
            rem /= j->shape[d];
            od += i * j->ds[d];
            os += i * j->ss[d];
        }
        float *dp = j->dst + od;
        const float *sp = j->src + os;
        if (dsl == 1 && ssl == 1) memcpy(dp, sp, sizeof(float) * (size_t)n);
        else for (int64_t i = 0; i < n; i++) dp[i * dsl] = sp[i * ssl];
    }
}

void hb_cpu_copy_nd(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int ndim,
                    const int64_t *shape) {
    if (ndim < 1 || ndim > HB_MAX_DIMS) return;
    copy_job j = {dst, src, ndim, {0}, {0}, {0}};
    int64_t rows = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) return;
        j.shape[d] = shape[d]; j.ds[d] = dst_stride[d]; j.ss[d] = src_stride[d];
        if (d < ndim - 1) rows *= shape[d];
    }
    int64_t grain = 65536 / shape[ndim - 1];
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
