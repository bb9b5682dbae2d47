/* Norms, modulation, gated residual, elementwise activations and softmax. Row statistics are accumulated in
 * double in a fixed order; every row is handled by one task, so results never depend on the thread count. */
#include "ops/ops_internal.h"
#include <math.h>
#include <string.h>
#include "ops/simd_avx2.h"

/* ---------- layernorm / rmsnorm ---------- */

typedef struct {
    float *y; const float *x; int64_t dim; const float *w, *b; float eps;
    const float *shift, *scale; hb_modgroups g;
} norm_job;

static inline void row_mean_rstd(const float *x, int64_t n, float eps, float *mean, float *rstd) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    double mu = s / (double)n, v = 0;
    for (int64_t i = 0; i < n; i++) { double d = x[i] - mu; v += d * d; }
    v /= (double)n;
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(v + (double)eps));
}

static void layernorm_rows(void *ctx, int64_t b, int64_t e) {
    const norm_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * j->dim;
        float *y = j->y + r * j->dim, mu, rs;
        row_mean_rstd(x, j->dim, j->eps, &mu, &rs);
        for (int64_t i = 0; i < j->dim; i++) {
            float v = (x[i] - mu) * rs;
            if (j->w) v *= j->w[i];
            if (j->b) v += j->b[i];
            y[i] = v;
        }
    }
}

static int64_t row_grain(int64_t dim) { int64_t g = 16384 / (dim > 0 ? dim : 1); return g < 1 ? 1 : g; }

void hb_cpu_layernorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, const hb_tensor *b,
                  float eps) {
    if (rows <= 0 || dim <= 0) return;
    float *wf = hb__vec_f32(w, dim), *bf = hb__vec_f32(b, dim);
    norm_job j = {.y = y, .x = x, .dim = dim, .w = wf, .b = bf, .eps = eps};
    if ((w && !wf) || (b && !bf)) hb__cpu_fail("hb_layernorm: out of memory");
    else hb_parallel_for(rows, row_grain(dim), layernorm_rows, &j);
    hb_free(wf);
    hb_free(bf);
}

static void rmsnorm_rows(void *ctx, int64_t b, int64_t e) {
    const norm_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * j->dim;
        float *y = j->y + r * j->dim;
        double s = 0;
        for (int64_t i = 0; i < j->dim; i++) s += (double)x[i] * x[i];
        float rs = (float)(1.0 / sqrt(s / (double)j->dim + (double)j->eps));
        for (int64_t i = 0; i < j->dim; i++) y[i] = j->w ? (x[i] * rs) * j->w[i] : x[i] * rs;
    }
}

void hb_cpu_rmsnorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, float eps) {
    if (rows <= 0 || dim <= 0) return;
    float *wf = hb__vec_f32(w, dim);
    norm_job j = {.y = y, .x = x, .dim = dim, .w = wf, .eps = eps};
    if (w && !wf) hb__cpu_fail("hb_rmsnorm: out of memory");
    else hb_parallel_for(rows, row_grain(dim), rmsnorm_rows, &j);
    hb_free(wf);
}

/* ---------- channel rmsnorm on [C, S] ---------- */

typedef struct { float *y; const float *x; int64_t C, S, blk; const float *g, *b; bool avx2; } crms_job;

/* 1 / max(||x||, 1e-12) per position from its sum of squares (both block kernels) */
static void crms_inverse_norms(const double *ss, float *inv, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double nr = sqrt(ss[i]);
        inv[i] = (float)(1.0 / (nr > 1e-12 ? nr : 1e-12));
    }
}

#define CRMS_BLOCK 256
/* Sum of squares per position over the channels (double, channel order), then y = x * inv * (sqrt(C) g) + b. */
static void crms_block_generic(const crms_job *j, int64_t s0, int64_t n, double *ss, float *inv, float sc) {
    for (int64_t i = 0; i < n; i++) ss[i] = 0;
    for (int64_t c = 0; c < j->C; c++) {
        const float *x = j->x + c * j->S + s0;
        for (int64_t i = 0; i < n; i++) ss[i] += (double)x[i] * x[i];
    }
    crms_inverse_norms(ss, inv, n);
    for (int64_t c = 0; c < j->C; c++) {
        const float *x = j->x + c * j->S + s0;
        float *y = j->y + c * j->S + s0;
        float gc = sc * (j->g ? j->g[c] : 1.0f), bc = j->b ? j->b[c] : 0.0f;
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv[i] * gc + bc;
    }
}

#ifdef HB_X86
/* The same sums and products, 4 doubles / 8 floats a step (an FMA where the generic code rounds twice). The
 * channels are C streams a plane apart: each is prefetched one block ahead, which the hardware does not do here. */
__attribute__((target("avx2,fma"))) static void crms_block_avx2(const crms_job *j, int64_t s0, int64_t n, double *ss,
                                                                 float *inv, float sc) {
    int64_t n8 = n / 8 * 8;
    for (int64_t i = 0; i < n; i++) ss[i] = 0;
    int64_t next = s0 + n + n <= j->S ? n : 0; /* the next block's part of each channel, fetched while this one runs */
    for (int64_t c = 0; c < j->C; c++) {
        const float *x = j->x + c * j->S + s0;
        for (int64_t i = 0; i < next; i += 16) _mm_prefetch((const char *)(x + n + i), _MM_HINT_T0);
        for (int64_t i = 0; i < n8; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            _mm256_storeu_pd(ss + i, _mm256_fmadd_pd(lo, lo, _mm256_loadu_pd(ss + i)));
            _mm256_storeu_pd(ss + i + 4, _mm256_fmadd_pd(hi, hi, _mm256_loadu_pd(ss + i + 4)));
        }
        for (int64_t i = n8; i < n; i++) ss[i] = fma((double)x[i], (double)x[i], ss[i]);
    }
    crms_inverse_norms(ss, inv, n);
    for (int64_t c = 0; c < j->C; c++) {
        const float *x = j->x + c * j->S + s0;
        float *y = j->y + c * j->S + s0;
        float gc = sc * (j->g ? j->g[c] : 1.0f), bc = j->b ? j->b[c] : 0.0f;
        __m256 g8 = _mm256_set1_ps(gc), b8 = _mm256_set1_ps(bc);
        for (int64_t i = 0; i < n8; i += 8)
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(inv + i)), g8, b8));
        for (int64_t i = n8; i < n; i++) y[i] = fmaf(x[i] * inv[i], gc, bc);
    }
}
#endif

static void crms_blocks(void *ctx, int64_t b, int64_t e) {
    const crms_job *j = ctx;
    double ss[CRMS_BLOCK];
    float inv[CRMS_BLOCK];
    float sc = sqrtf((float)j->C);
    for (int64_t blk = b; blk < e; blk++) {
        int64_t s0 = blk * j->blk, n = j->S - s0 < j->blk ? j->S - s0 : j->blk;
#ifdef HB_X86
        if (j->avx2) { crms_block_avx2(j, s0, n, ss, inv, sc); continue; }
#endif
        crms_block_generic(j, s0, n, ss, inv, sc);
    }
}

void hb_cpu_channel_rmsnorm(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *gamma, const hb_tensor *beta) {
    if (C <= 0 || S <= 0) return;
    float *g = hb__vec_f32(gamma, C), *bt = hb__vec_f32(beta, C);
    /* blocks of up to CRMS_BLOCK positions, at least ~32 of them where S allows (a few blocks of many channels
     * would leave threads idle); a position's result does not depend on its block */
    int64_t blk = (S + 31) / 32;
    blk = blk < 32 ? 32 : blk > CRMS_BLOCK ? CRMS_BLOCK : (blk + 7) / 8 * 8;
    crms_job j = {y, x, C, S, blk, g, bt, false};
#ifdef HB_X86
    j.avx2 = hb__simd_avx2();
#endif
    if ((gamma && !g) || (beta && !bt)) hb__cpu_fail("hb_channel_rmsnorm: out of memory");
    else hb_parallel_for((S + blk - 1) / blk, 1, crms_blocks, &j);
    hb_free(g);
    hb_free(bt);
}

/* ---------- modulation ---------- */

static inline int64_t mod_off(hb_modgroups g, int64_t r) {
    return (g.rows_per_group > 0 ? r / g.rows_per_group : 0) * g.group_stride;
}

static void lnmod_rows(void *ctx, int64_t b, int64_t e) {
    const norm_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * j->dim;
        float *y = j->y + r * j->dim, mu, rs;
        const float *sh = j->shift + mod_off(j->g, r), *sc = j->scale + mod_off(j->g, r);
        row_mean_rstd(x, j->dim, j->eps, &mu, &rs);
        for (int64_t i = 0; i < j->dim; i++) y[i] = (x[i] - mu) * rs * (1.0f + sc[i]) + sh[i];
    }
}

void hb_cpu_layernorm_modulate(float *y, const float *x, int64_t rows, int64_t dim, float eps, const float *shift,
                           const float *scale, hb_modgroups g) {
    if (rows <= 0 || dim <= 0) return;
    norm_job j = {.y = y, .x = x, .dim = dim, .eps = eps, .shift = shift, .scale = scale, .g = g};
    hb_parallel_for(rows, row_grain(dim), lnmod_rows, &j);
}

static void gadd_rows(void *ctx, int64_t b, int64_t e) {
    const norm_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        float *x = j->y + r * j->dim;
        const float *y = j->x + r * j->dim, *gt = j->scale + mod_off(j->g, r);
        for (int64_t i = 0; i < j->dim; i++) x[i] += y[i] * gt[i];
    }
}

void hb_cpu_gated_add(float *x, const float *y, int64_t rows, int64_t dim, const float *gate, hb_modgroups g) {
    if (rows <= 0 || dim <= 0) return;
    norm_job j = {.y = x, .x = y, .dim = dim, .scale = gate, .g = g};
    hb_parallel_for(rows, row_grain(dim), gadd_rows, &j);
}

/* ---------- elementwise ---------- */

typedef struct { float *y; const float *a, *b; float alpha, beta; int op; bool simd; } ew_job;
enum { EW_SILU, EW_GELU, EW_ADD, EW_MUL, EW_AXPBY, EW_RELU, EW_TANH3, EW_ADD_RELU, EW_CLAMP01, EW_CLAMP, EW_AXPBY_F64 };

#ifdef HB_X86
/* silu / gelu_tanh on 8 lanes. gelu_tanh as x * sigmoid(2u) (= 0.5x(1 + tanh(u)), without the cancellation of
 * 1 + tanh near -1), shared with the GEMM's fused epilogue (simd_avx2.h). */
__attribute__((target("avx2,fma"))) static inline __m256 act8(__m256 v, int op) {
    if (op == EW_SILU) return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    return gelu_tanh_avx2(v);
}

/* Every element, tail included, goes through the same 8-lane code: results do not depend on the range split. */
__attribute__((target("avx2,fma"))) static void act_avx2(float *y, const float *a, int64_t b, int64_t e, int op) {
    int64_t i = b;
    for (; i + 8 <= e; i += 8) _mm256_storeu_ps(y + i, act8(_mm256_loadu_ps(a + i), op));
    if (i < e) {
        float t[8] = {0};
        for (int64_t k = i; k < e; k++) t[k - i] = a[k];
        _mm256_storeu_ps(t, act8(_mm256_loadu_ps(t), op));
        for (int64_t k = i; k < e; k++) y[k] = t[k - i];
    }
}
#endif

static void ew_range(void *ctx, int64_t b, int64_t e) {
    const ew_job *j = ctx;
    float *y = j->y;
    const float *a = j->a, *c = j->b;
#ifdef HB_X86
    if (j->simd && (j->op == EW_SILU || j->op == EW_GELU)) { act_avx2(y, a, b, e, j->op); return; }
#endif
    switch (j->op) {
    case EW_SILU:
        for (int64_t i = b; i < e; i++) y[i] = a[i] / (1.0f + expf(-a[i]));
        break;
    case EW_GELU: {
        const float k0 = 0.7978845608028654f, k1 = 0.044715f;
        for (int64_t i = b; i < e; i++) {
            float v = a[i];
            y[i] = 0.5f * v * (1.0f + tanhf(k0 * (v + k1 * v * v * v)));
        }
    } break;
    case EW_ADD: for (int64_t i = b; i < e; i++) y[i] = a[i] + c[i]; break;
    case EW_MUL: for (int64_t i = b; i < e; i++) y[i] = a[i] * c[i]; break;
    case EW_AXPBY: for (int64_t i = b; i < e; i++) y[i] = j->alpha * a[i] + j->beta * c[i]; break;
    case EW_AXPBY_F64:
        for (int64_t i = b; i < e; i++) y[i] = (float)((double)j->alpha * a[i] + (double)j->beta * c[i]);
        break;
    case EW_RELU: for (int64_t i = b; i < e; i++) y[i] = a[i] > 0.0f ? a[i] : 0.0f; break;
    case EW_TANH3: for (int64_t i = b; i < e; i++) y[i] = tanhf(a[i] / 3.0f) * 3.0f; break;
    case EW_ADD_RELU:
        for (int64_t i = b; i < e; i++) { float v = a[i] + c[i]; y[i] = v > 0.0f ? v : 0.0f; }
        break;
    case EW_CLAMP01:
        for (int64_t i = b; i < e; i++) { float v = a[i]; y[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }
        break;
    case EW_CLAMP: {
        const float lo = j->alpha, hi = j->beta;
        for (int64_t i = b; i < e; i++) { float v = a[i]; y[i] = v < lo ? lo : v > hi ? hi : v; }
    } break;
    }
}

static void ew(int op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n) {
    if (n <= 0) return;
    ew_job j = {y, a, b, alpha, beta, op, hb__simd_avx2()};
    hb_parallel_for(n, 65536, ew_range, &j);
}

void hb_cpu_elementwise(hb_ew_op op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n) {
    static const int map[] = {[HB_EW_SILU] = EW_SILU, [HB_EW_GELU_TANH] = EW_GELU, [HB_EW_ADD] = EW_ADD,
                              [HB_EW_MUL] = EW_MUL, [HB_EW_AXPBY] = EW_AXPBY, [HB_EW_RELU] = EW_RELU,
                              [HB_EW_TANH3] = EW_TANH3, [HB_EW_ADD_RELU] = EW_ADD_RELU, [HB_EW_CLAMP01] = EW_CLAMP01,
                              [HB_EW_CLAMP] = EW_CLAMP, [HB_EW_AXPBY_F64] = EW_AXPBY_F64};
    ew(map[op], y, a, b, alpha, beta, n);
}

/* ---------- softmax ---------- */

typedef struct { float *x; int64_t n; } sm_job;

static void softmax_rows(void *ctx, int64_t b, int64_t e) {
    const sm_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        float *x = j->x + r * j->n, mx = -INFINITY;
        for (int64_t i = 0; i < j->n; i++) mx = x[i] > mx ? x[i] : mx;
        if (mx == -INFINITY) mx = 0; /* all -inf: keeps exp finite (result NaN-free only if not all -inf) */
        double s = 0;
        for (int64_t i = 0; i < j->n; i++) { x[i] = expf(x[i] - mx); s += x[i]; }
        float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < j->n; i++) x[i] *= inv;
    }
}

void hb_cpu_softmax(float *x, int64_t rows, int64_t n) {
    if (rows <= 0 || n <= 0) return;
    sm_job j = {x, n};
    hb_parallel_for(rows, row_grain(n), softmax_rows, &j);
}
