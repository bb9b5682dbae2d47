/* Convolutions (PyTorch Conv3d semantics: cross-correlation, per-side zero padding, stride, groups), nearest
 * upsampling and pixel (un)shuffle. The general conv is an im2col GEMM per (group, tile of output positions):
 * Y[Cout_g, tile] = W[Cout_g, Cin_g*k] * col[Cin_g*k, tile]; 1x1x1 stride-1 convs skip im2col; depthwise convs
 * are computed directly. Tiles are chosen from the shapes only, so results never depend on the thread count. */
#include "ops/ops_internal.h"
#include <stdlib.h>
#include <string.h>
#include "ops/simd_avx2.h"

static int64_t out_dim(int64_t n, const int pad[2], int64_t k, int s) {
    int64_t span = n + pad[0] + pad[1] - k;
    return span < 0 || s <= 0 ? 0 : span / s + 1;
}

void hb_conv3d_out_size(int64_t T, int64_t H, int64_t W, const hb_tensor *w, const hb_conv3d_params *p,
                        int64_t *To, int64_t *Ho, int64_t *Wo) {
    *To = out_dim(T, p->pad_t, w->shape[2], p->stride[0]);
    *Ho = out_dim(H, p->pad_h, w->shape[3], p->stride[1]);
    *Wo = out_dim(W, p->pad_w, w->shape[4], p->stride[2]);
}

typedef struct {
    float *y; const float *x; const float *w; const float *bias;
    const float *wp; size_t wp_group;            /* weights pre-packed as the GEMM A operand, per group */
    int64_t Cin, T, H, W, Cout, To, Ho, Wo, P;  /* P = To*Ho*Wo */
    int kt, kh, kw, groups;
    const hb_conv3d_params *p;
    int64_t kdim, pt, npt;                     /* Cin_g*kt*kh*kw, positions per tile, tiles per group */
    bool pointwise;
    int err;
} conv_job;

/* Implicit GEMM: the B operand (im2col of the input) is generated straight into the GEMM's packed layout, one
 * K block at a time, from runs of output positions that share an output row. */
typedef struct {
    const conv_job *j;
    const float *x;       /* first input channel of the group */
    const int64_t *seg;   /* (first position, length, t0, h0, w0) per run */
    int64_t nseg;
} im2col_ctx;

static void im2col_pack(void *vctx, float *dst, int64_t n0, int64_t nn, int64_t k0, int64_t kc) {
    const im2col_ctx *c = vctx;
    const conv_job *j = c->j;
    const int NRp = HB_GEMM_NR;
    int64_t ksz = (int64_t)j->kt * j->kh * j->kw, khw = (int64_t)j->kh * j->kw, hw = j->H * j->W, thw = j->T * hw;
    int sw = j->p->stride[2];
    int64_t nstrips = (nn + NRp - 1) / NRp;
    /* zero the padding columns of the last strip */
    if (nn % NRp)
        for (int64_t k = 0; k < kc; k++)
            for (int64_t q = nn; q < nstrips * NRp; q++) dst[(q / NRp) * NRp * kc + k * NRp + q % NRp] = 0.0f;
    for (int64_t kk = 0; kk < kc; kk++) {
        int64_t k = k0 + kk, ci = k / ksz, r = k % ksz;
        int dt = (int)(r / khw), dh = (int)((r / j->kw) % j->kh), dw = (int)(r % j->kw);
        const float *xc = c->x + ci * thw;
        float *drow = dst + kk * NRp;
        for (int64_t sgi = 0; sgi < c->nseg; sgi++) {
            const int64_t *sg = c->seg + 5 * sgi;
            int64_t a = sg[0] > n0 ? sg[0] : n0, bnd = sg[0] + sg[1] < n0 + nn ? sg[0] + sg[1] : n0 + nn;
            if (a >= bnd) continue;
            int64_t tt = sg[2] + dt, hh = sg[3] + dh;
            bool row_ok = tt >= 0 && tt < j->T && hh >= 0 && hh < j->H;
            const float *xr = xc + tt * hw + hh * j->W;
            /* pieces that stay inside one 16-column strip: contiguous in dst (and in x when sw == 1) */
            for (int64_t i = a; i < bnd;) {
                int64_t q = i - n0, lim = i + (NRp - q % NRp);
                if (lim > bnd) lim = bnd;
                float *d = drow + (q / NRp) * NRp * kc + q % NRp;
                int64_t len = lim - i, w0 = sg[4] + dw + (i - sg[0]) * sw;
                if (row_ok && len == NRp && sw == 1 && w0 >= 0 && w0 + NRp <= j->W) {
                    memcpy(d, xr + w0, sizeof(float) * HB_GEMM_NR); /* a whole strip row inside the input: 64 bytes */
                } else if (!row_ok) {
                    for (int64_t m = 0; m < len; m++) d[m] = 0.0f;
                } else {
                    /* valid m: 0 <= w0 + m*sw < W */
                    int64_t lo = w0 >= 0 ? 0 : (-w0 + sw - 1) / sw, hi = w0 >= j->W ? 0 : (j->W - 1 - w0) / sw + 1;
                    if (lo > len) lo = len;
                    if (hi > len) hi = len;
                    if (hi < lo) hi = lo;
                    for (int64_t m = 0; m < lo; m++) d[m] = 0.0f;
                    const float *xs = xr + w0;
                    if (sw == 1)
                        for (int64_t m = lo; m < hi; m++) d[m] = xs[m]; /* <= 16 floats: no memcpy call */
                    else
                        for (int64_t m = lo; m < hi; m++) d[m] = xs[m * sw];
                    for (int64_t m = hi; m < len; m++) d[m] = 0.0f;
                }
                i = lim;
            }
        }
    }
}

static void conv_tiles(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    int64_t *pos = NULL;
    if (!j->pointwise && !(pos = malloc(sizeof(int64_t) * 5 * (size_t)j->pt))) { j->err = 1; return; }
    /* the GEMM writes into a padded buffer: output rows j->P apart are often a power-of-two stride (cache set
     * conflicts); rows are then copied out with the bias */
    int64_t ldt = (j->pt + 15) / 16 * 16 + 16;
    float *tmp = hb_malloc(sizeof(float) * (size_t)(ldt * (j->Cout / j->groups)), "conv3d output tile");
    if (!tmp) { j->err = 1; free(pos); return; }
    int64_t cin_g = j->Cin / j->groups, cout_g = j->Cout / j->groups, thw = j->T * j->H * j->W;
    for (int64_t t = b; t < e; t++) {
        int64_t g = t / j->npt, p0 = (t % j->npt) * j->pt, np = j->P - p0 < j->pt ? j->P - p0 : j->pt;
        const float *wp = j->wp + g * j->wp_group;
        if (j->pointwise) {
            hb__gemm_serial_pa(tmp, ldt, wp, j->x + g * cin_g * thw + p0, thw, false, cout_g, np, j->kdim, false);
        } else {
            int64_t nseg = 0;
            for (int64_t i = 0; i < np;) {
                int64_t q = p0 + i, wo = q % j->Wo, ho = (q / j->Wo) % j->Ho, to = q / (j->Wo * j->Ho);
                int64_t len = j->Wo - wo < np - i ? j->Wo - wo : np - i;
                int64_t *sg = pos + 5 * nseg++;
                sg[0] = i; sg[1] = len;
                sg[2] = to * j->p->stride[0] - j->p->pad_t[0];
                sg[3] = ho * j->p->stride[1] - j->p->pad_h[0];
                sg[4] = wo * j->p->stride[2] - j->p->pad_w[0];
                i += len;
            }
            im2col_ctx ic = {j, j->x + g * cin_g * thw, pos, nseg};
            hb__gemm_serial_pa_cb(tmp, ldt, wp, im2col_pack, &ic, cout_g, np, j->kdim, false);
        }
        float *y = j->y + g * cout_g * j->P + p0;
        for (int64_t co = 0; co < cout_g; co++) {
            float bv = j->bias ? j->bias[g * cout_g + co] : 0.0f;
            const float *tr = tmp + co * ldt;
            float *yr = y + co * j->P;
            for (int64_t i = 0; i < np; i++) yr[i] = tr[i] + bv;
        }
    }
    hb_free(tmp);
    free(pos);
}

/* Few output channels (Cout/groups <= 4, e.g. the VAE's 96->3 head conv), width stride 1: direct convolution, one
 * task per (group, output frame, output row); the needed input rows are copied zero-padded, so every output
 * element sums its taps in the order (ci, dt, dh, dw) with no bounds checks. The GEMM would leave most of its
 * 6-row strips empty here. */
#define SMALL_COUT 4
typedef struct { float *rows; int64_t ldr; } small_buf;

static void small_rows_fill(const conv_job *j, int64_t g, int64_t to, int64_t ho, float *rows, int64_t ldr) {
    int64_t cin_g = j->Cin / j->groups, hw = j->H * j->W;
    for (int64_t ci = 0; ci < cin_g; ci++)
        for (int dt = 0; dt < j->kt; dt++)
            for (int dh = 0; dh < j->kh; dh++) {
                float *r = rows + ((ci * j->kt + dt) * j->kh + dh) * ldr;
                int64_t tt = to * j->p->stride[0] - j->p->pad_t[0] + dt, hh = ho * j->p->stride[1] - j->p->pad_h[0] + dh;
                if (tt >= 0 && tt < j->T && hh >= 0 && hh < j->H) {
                    int64_t pl = j->p->pad_w[0];
                    memset(r, 0, sizeof(float) * (size_t)pl);
                    memcpy(r + pl, j->x + (g * cin_g + ci) * j->T * hw + tt * hw + hh * j->W, sizeof(float) * (size_t)j->W);
                    memset(r + pl + j->W, 0, sizeof(float) * (size_t)(ldr - pl - j->W));
                } else {
                    memset(r, 0, sizeof(float) * (size_t)ldr);
                }
            }
}

static void small_row_generic(const conv_job *j, int64_t g, const float *rows, int64_t ldr, float *y) {
    int64_t cin_g = j->Cin / j->groups, cout_g = j->Cout / j->groups, ntap = cin_g * j->kt * j->kh;
    for (int64_t co = 0; co < cout_g; co++) {
        const float *w = j->w + (g * cout_g + co) * j->kdim;
        float bv = j->bias ? j->bias[g * cout_g + co] : 0.0f;
        for (int64_t wo = 0; wo < j->Wo; wo++) {
            float acc = 0;
            for (int64_t r = 0; r < ntap; r++)
                for (int dw = 0; dw < j->kw; dw++) acc += w[r * j->kw + dw] * rows[r * ldr + wo + dw];
            y[co * j->P + wo] = acc + bv;
        }
    }
}

#ifdef HB_X86
/* CO output channels held in registers (CO a compile-time constant after inlining). */
__attribute__((target("avx2,fma"), always_inline)) static inline void small_row_avx2_co(const conv_job *j, int64_t g,
                                                                                         const float *rows, int64_t ldr,
                                                                                         float *y, const int CO) {
    int64_t cin_g = j->Cin / j->groups, ntap = cin_g * j->kt * j->kh, kd = j->kdim;
    const float *w = j->w + g * CO * kd;
    for (int64_t wo = 0; wo < j->Wo; wo += 8) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t r = 0; r < ntap; r++) {
            const float *xr = rows + r * ldr + wo, *wr = w + r * j->kw;
            for (int dw = 0; dw < j->kw; dw++) {
                __m256 xv = _mm256_loadu_ps(xr + dw); /* rows are padded by 8 floats */
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + dw), xv, a0);
                if (CO > 1) a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kd + dw), xv, a1);
                if (CO > 2) a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + 2 * kd + dw), xv, a2);
                if (CO > 3) a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + 3 * kd + dw), xv, a3);
            }
        }
        __m256 acc[4] = {a0, a1, a2, a3};
        int64_t n = j->Wo - wo < 8 ? j->Wo - wo : 8;
        for (int co = 0; co < CO; co++) {
            float t[8];
            _mm256_storeu_ps(t, acc[co]);
            float bv = j->bias ? j->bias[g * CO + co] : 0.0f;
            for (int64_t i = 0; i < n; i++) y[co * j->P + wo + i] = t[i] + bv;
        }
    }
}

__attribute__((target("avx2,fma"))) static void small_row_avx2(const conv_job *j, int64_t g, const float *rows,
                                                                int64_t ldr, float *y) {
    switch (j->Cout / j->groups) {
    case 1: small_row_avx2_co(j, g, rows, ldr, y, 1); break;
    case 2: small_row_avx2_co(j, g, rows, ldr, y, 2); break;
    case 3: small_row_avx2_co(j, g, rows, ldr, y, 3); break;
    default: small_row_avx2_co(j, g, rows, ldr, y, 4); break;
    }
}
#endif

static void conv_small(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    int64_t cin_g = j->Cin / j->groups, ldr = (j->W + j->p->pad_w[0] + j->p->pad_w[1] + j->kw + 8 + 7) / 8 * 8;
    float *rows = hb_malloc(sizeof(float) * (size_t)(cin_g * j->kt * j->kh * ldr), "conv3d rows");
    if (!rows) { j->err = 1; return; }
    for (int64_t t = b; t < e; t++) { /* t = (g * To + to) * Ho + ho */
        int64_t ho = t % j->Ho, to = (t / j->Ho) % j->To, g = t / (j->Ho * j->To);
        small_rows_fill(j, g, to, ho, rows, ldr);
        float *y = j->y + g * (j->Cout / j->groups) * j->P + (to * j->Ho + ho) * j->Wo;
#ifdef HB_X86
        if (hb__simd_avx2()) { small_row_avx2(j, g, rows, ldr, y); continue; }
#endif
        small_row_generic(j, g, rows, ldr, y);
    }
    hb_free(rows);
}

/* Depthwise: one task per (channel, output frame). Each output row is accumulated tap by tap over whole
 * rows (a contiguous, vectorisable loop for stride-1 widths); every element still sums its taps in the fixed
 * (dt, dh, dw) order, so the result does not depend on the split. */
#if defined(__GNUC__) && defined(HB_X86)
__attribute__((target_clones("avx2", "default")))
#endif
static void depthwise_row_tap(float *restrict acc, const float *restrict src, float wv, int64_t lo, int64_t hi,
                              int64_t off, int64_t sw) {
    if (sw == 1)
        for (int64_t wo = lo; wo < hi; wo++) acc[wo] += wv * src[wo + off];
    else
        for (int64_t wo = lo; wo < hi; wo++) acc[wo] += wv * src[wo * sw + off];
}

static void conv_depthwise(void *ctx, int64_t b, int64_t e) {
    const conv_job *j = ctx;
    int64_t hw = j->H * j->W, k = (int64_t)j->kt * j->kh * j->kw;
    int64_t st = j->p->stride[0], sh = j->p->stride[1], sw = j->p->stride[2], pw = j->p->pad_w[0];
    for (int64_t t = b; t < e; t++) {
        int64_t c = t / j->To, to = t % j->To;
        const float *xc = j->x + c * j->T * hw, *wc = j->w + c * k;
        float *y = j->y + c * j->P + to * j->Ho * j->Wo;
        float bv = j->bias ? j->bias[c] : 0.0f;
        for (int64_t ho = 0; ho < j->Ho; ho++) {
            float *acc = y + ho * j->Wo;
            memset(acc, 0, sizeof(float) * (size_t)j->Wo);
            for (int dt = 0; dt < j->kt; dt++) {
                int64_t tt = to * st - j->p->pad_t[0] + dt;
                if (tt < 0 || tt >= j->T) continue;
                for (int dh = 0; dh < j->kh; dh++) {
                    int64_t hh = ho * sh - j->p->pad_h[0] + dh;
                    if (hh < 0 || hh >= j->H) continue;
                    const float *src = xc + tt * hw + hh * j->W;
                    for (int dw = 0; dw < j->kw; dw++) {
                        /* valid outputs: 0 <= wo*sw - pw + dw < W */
                        int64_t off = dw - pw;
                        int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                        int64_t hi = j->W - off <= 0 ? 0 : (j->W - off + sw - 1) / sw;
                        if (hi > j->Wo) hi = j->Wo;
                        if (lo < hi) depthwise_row_tap(acc, src, wc[(dt * j->kh + dh) * j->kw + dw], lo, hi, off, sw);
                    }
                }
            }
            for (int64_t wo = 0; wo < j->Wo; wo++) acc[wo] += bv;
        }
    }
}

#ifdef HB_X86
/* Depthwise, stride 1, AVX2: one task per channel. The channel's frames are copied once, zero-padded in height and
 * width (a frame outside the input is left out, as above), so two output rows of NV vectors each are held in
 * registers while every tap adds w * (the shifted padded rows): one broadcast per tap, one load and one FMA per 8
 * outputs, no bounds checks. Each element sums its taps in the (dt, dh, dw) order from zero, then adds the bias. */
typedef struct { float *pad; int64_t hp, wp; } dw_buf;

/* vectors of a span starting at output column wo (at most 4), and the rows a full span covers */
static inline int dw_nv(const conv_job *j, int64_t wo) {
    int64_t nv = (j->Wo - wo + 7) / 8;
    return nv > 4 ? 4 : (int)nv;
}
static inline int dw_rows_full(int nv) { return 12 / nv; }

/* The channel's frames into the padded buffer's interior (its borders were zeroed once and stay zero). */
static void dw_fill(const conv_job *j, int64_t c, const dw_buf *b) {
    int64_t hw = j->H * j->W, ph = j->p->pad_h[0], pw = j->p->pad_w[0];
    for (int64_t t = 0; t < j->T; t++)
        for (int64_t h = 0; h < j->H; h++) {
            const float *src = j->x + (c * j->T + t) * hw + h * j->W;
            float *row = b->pad + (t * b->hp + ph + h) * b->wp + pw;
            for (int64_t w = 0; w < j->W; w++) row[w] = src[w];
        }
}


/* U = R * NV accumulators (R output rows from ho, NV vectors from wo; U <= 12 hides the FMA latency), a KW-wide
 * kernel (0: j->kw). Unit u is row u / NV, vector u % NV; the accumulators are named variables (an array of them
 * was kept in memory by GCC, a store and reload per kernel row). */
__attribute__((target("avx2,fma"))) static inline void dw_store(float *y, __m256 acc, float bv, int64_t n) {
    __m256 s = _mm256_add_ps(acc, _mm256_set1_ps(bv));
    if (n >= 8) { _mm256_storeu_ps(y, s); return; }
    float t[8];
    _mm256_storeu_ps(t, s);
    for (int64_t i = 0; i < n; i++) y[i] = t[i];
}

#define DW_UNITS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
__attribute__((target("avx2,fma"), always_inline)) static inline void dw_span(const conv_job *j, const dw_buf *b,
                                                                               const float *wc, int64_t to, int64_t ho,
                                                                               int64_t wo, float bv, float *y,
                                                                               const int NV, const int R, const int KW) {
#define DW_ZERO(u) __m256 a##u = _mm256_setzero_ps();
    DW_UNITS(DW_ZERO)
#undef DW_ZERO
    const int U = R * NV;
    int kw = KW ? KW : j->kw;
    int64_t wp = b->wp;
    for (int dt = 0; dt < j->kt; dt++) {
        int64_t tt = to - j->p->pad_t[0] + dt;
        if (tt < 0 || tt >= j->T) continue;
        for (int dh = 0; dh < j->kh; dh++) {
            const float *row = b->pad + (tt * b->hp + ho + dh) * wp + wo, *wr = wc + (dt * j->kh + dh) * kw;
            for (int dw = 0; dw < kw; dw++) {
                __m256 wv = _mm256_broadcast_ss(wr + dw);
                const float *x = row + dw;
#define DW_FMA(u) if (U > u) a##u = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (u / NV) * wp + 8 * (u % NV)), a##u);
                DW_UNITS(DW_FMA)
#undef DW_FMA
            }
        }
    }
    int64_t n = j->Wo - wo;
#define DW_OUT(u) if (U > u) dw_store(y + (u / NV) * j->Wo + 8 * (u % NV), a##u, bv, n - 8 * (u % NV));
    DW_UNITS(DW_OUT)
#undef DW_OUT
}
#undef DW_UNITS

/* One span of up to 4 vectors, 12 / NV rows (full) or one row, the kernel width a constant where it is 3 or 5. */
#define DW_SPAN_KW(NV, R)                                                                                            \
    do {                                                                                                             \
        if (j->kw == 5) dw_span(j, b, wc, to, ho, wo, bv, y, NV, R, 5);                                              \
        else if (j->kw == 3) dw_span(j, b, wc, to, ho, wo, bv, y, NV, R, 3);                                         \
        else dw_span(j, b, wc, to, ho, wo, bv, y, NV, R, 0);                                                         \
    } while (0)
__attribute__((target("avx2,fma"))) static void dw_rows_avx2(const conv_job *j, const dw_buf *b, const float *wc,
                                                              int64_t to, int64_t ho, int64_t wo, float bv, float *y,
                                                              bool full) {
    switch (dw_nv(j, wo) * 2 + full) {
    case 2: DW_SPAN_KW(1, 1); break;
    case 3: DW_SPAN_KW(1, 12); break;
    case 4: DW_SPAN_KW(2, 1); break;
    case 5: DW_SPAN_KW(2, 6); break;
    case 6: DW_SPAN_KW(3, 1); break;
    case 7: DW_SPAN_KW(3, 4); break;
    case 8: DW_SPAN_KW(4, 1); break;
    default: DW_SPAN_KW(4, 3); break;
    }
}
#undef DW_SPAN_KW

/* Square kernels (K = 3 or 5), 4 output rows x 2 vectors: for each (dt, dw) the K weights of that column are
 * broadcast once, and each input vector is loaded once and feeds every output row it overlaps (input row ir is
 * tap dh = ir - o of output row o): ~2.5x fewer loads than a load and a broadcast per FMA. An element sums its
 * taps in the (dt, dw, dh) order from zero, then adds the bias. */
#define DW_SQ_ROWS 4
__attribute__((target("avx2,fma"), always_inline)) static inline void dw_sq_span(const conv_job *j, const dw_buf *b,
                                                                                  const float *wc, int64_t to,
                                                                                  int64_t ho, int64_t wo, float bv,
                                                                                  float *y, const int K) {
    __m256 acc[DW_SQ_ROWS][2];
#pragma GCC unroll 8
    for (int o = 0; o < DW_SQ_ROWS; o++) acc[o][0] = acc[o][1] = _mm256_setzero_ps();
    int64_t wp = b->wp;
    for (int dt = 0; dt < j->kt; dt++) {
        int64_t tt = to - j->p->pad_t[0] + dt;
        if (tt < 0 || tt >= j->T) continue;
        const float *base = b->pad + (tt * b->hp + ho) * wp + wo, *wt = wc + dt * K * K;
        for (int dw = 0; dw < K; dw++) {
            __m256 w[5];
#pragma GCC unroll 5
            for (int dh = 0; dh < K; dh++) w[dh] = _mm256_broadcast_ss(wt + dh * K + dw);
#pragma GCC unroll 8
            for (int ir = 0; ir < DW_SQ_ROWS + K - 1; ir++) {
                __m256 x0 = _mm256_loadu_ps(base + ir * wp + dw), x1 = _mm256_loadu_ps(base + ir * wp + 8 + dw);
#pragma GCC unroll 5
                for (int dh = 0; dh < K; dh++) {
                    int o = ir - dh;
                    if (o < 0 || o >= DW_SQ_ROWS) continue;
                    acc[o][0] = _mm256_fmadd_ps(w[dh], x0, acc[o][0]);
                    acc[o][1] = _mm256_fmadd_ps(w[dh], x1, acc[o][1]);
                }
            }
        }
    }
    int64_t n = j->Wo - wo;
#pragma GCC unroll 8
    for (int o = 0; o < DW_SQ_ROWS; o++) {
        dw_store(y + o * j->Wo, acc[o][0], bv, n);
        dw_store(y + o * j->Wo + 8, acc[o][1], bv, n - 8);
    }
}

__attribute__((target("avx2,fma"))) static void dw_sq_rows(const conv_job *j, const dw_buf *b, const float *wc,
                                                            int64_t to, int64_t ho, float bv, float *y) {
    for (int64_t wo = 0; wo < j->Wo; wo += 16) {
        if (j->kh == 5) dw_sq_span(j, b, wc, to, ho, wo, bv, y + wo, 5);
        else dw_sq_span(j, b, wc, to, ho, wo, bv, y + wo, 3);
    }
}

static void conv_depthwise_avx2(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    /* padded rows: room for the last vector's 8 loads past the widest tap */
    dw_buf buf = {NULL, j->H + j->p->pad_h[0] + j->p->pad_h[1], (j->Wo + 7) / 8 * 8 + j->kw + 8};
    size_t nb = sizeof(float) * (size_t)(j->T * buf.hp * buf.wp);
    if (!(buf.pad = hb_malloc(nb, "depthwise rows"))) { j->err = 1; return; }
    memset(buf.pad, 0, nb);
    int64_t k = (int64_t)j->kt * j->kh * j->kw;
    for (int64_t c = b; c < e; c++) {
        dw_fill(j, c, &buf);
        const float *wc = j->w + c * k;
        float bv = j->bias ? j->bias[c] : 0.0f;
        bool sq = (j->kh == 5 && j->kw == 5) || (j->kh == 3 && j->kw == 3);
        for (int64_t to = 0; to < j->To && sq; to++) { /* square kernels: 4-row spans, then the rows left */
            float *y = j->y + c * j->P + to * j->Ho * j->Wo;
            int64_t ho = 0;
            for (; ho + DW_SQ_ROWS <= j->Ho; ho += DW_SQ_ROWS) dw_sq_rows(j, &buf, wc, to, ho, bv, y + ho * j->Wo);
            for (; ho < j->Ho; ho++)
                for (int64_t wo = 0; wo < j->Wo; wo += 32) dw_rows_avx2(j, &buf, wc, to, ho, wo, bv, y + ho * j->Wo + wo, false);
        }
        for (int64_t to = 0; to < j->To && !sq; to++)
            for (int64_t wo = 0; wo < j->Wo; wo += 32) {
                int64_t ho = 0, rf = dw_rows_full(dw_nv(j, wo));
                float *y = j->y + c * j->P + to * j->Ho * j->Wo + wo;
                for (; ho + rf <= j->Ho; ho += rf) dw_rows_avx2(j, &buf, wc, to, ho, wo, bv, y + ho * j->Wo, true);
                for (; ho < j->Ho; ho++) dw_rows_avx2(j, &buf, wc, to, ho, wo, bv, y + ho * j->Wo, false);
            }
    }
    hb_free(buf.pad);
}
#endif

int hb_cpu_conv3d(float *y, const float *x, int64_t Cin, int64_t T, int64_t H, int64_t W, const hb_tensor *w,
              const hb_tensor *b, const hb_conv3d_params *p) {
    /* arguments checked by the dispatcher (hb__conv3d_check) */
    int groups = p->groups > 0 ? p->groups : 1;
    int64_t Cout = w->shape[0];
    int64_t To, Ho, Wo;
    hb_conv3d_out_size(T, H, W, w, p, &To, &Ho, &Wo);
    conv_job j = {.y = y, .x = x, .Cin = Cin, .T = T, .H = H, .W = W, .Cout = Cout, .To = To, .Ho = Ho, .Wo = Wo,
                  .P = To * Ho * Wo, .kt = (int)w->shape[2], .kh = (int)w->shape[3], .kw = (int)w->shape[4],
                  .groups = groups, .p = p};
    j.kdim = (Cin / groups) * j.kt * j.kh * j.kw;
    /* weights as contiguous f32 [Cout, kdim] */
    float *wf = NULL;
    if (w->dtype == HB_F32 && hb_tensor_is_contiguous(w)) j.w = w->data;
    else {
        wf = hb_malloc(sizeof(float) * (size_t)(Cout * j.kdim), "conv3d weights");
        if (!wf) return -1;
        hb_tensor w2;
        int64_t shp[2] = {Cout, j.kdim};
        if (hb_tensor_is_contiguous(w) && hb_tensor_reshape(w, 2, shp, &w2) == 0)
            hb__weight_rows_f32(&w2, 0, Cout, 0, j.kdim, wf, j.kdim);
        else {
            /* a strided view (e.g. one temporal tap of a kernel): convert its trailing contiguous runs whole */
            size_t es = hb_dtype_size(w->dtype);
            int lead = 5;
            int64_t run = 1;
            while (lead > 0 && w->stride[lead - 1] == run) run *= w->shape[--lead];
            int64_t i = 0, nlead = 1;
            for (int d = 0; d < lead; d++) nlead *= w->shape[d];
            for (int64_t q = 0; q < nlead; q++, i += run) {
                int64_t rem = q, off = 0;
                for (int d = lead - 1; d >= 0; d--) { off += (rem % w->shape[d]) * w->stride[d]; rem /= w->shape[d]; }
                hb_convert_to_f32(wf + i, (const uint8_t *)w->data + off * (int64_t)es, w->dtype, (size_t)run);
            }
        }
        j.w = wf;
    }
    float *bf = NULL;
    if (b && !(bf = hb__vec_f32(b, Cout))) { hb_free(wf); return -1; }
    j.bias = bf;
    if (groups == Cin && groups == Cout) {
        void (*dw)(void *, int64_t, int64_t) = conv_depthwise;
#ifdef HB_X86
        if (hb__simd_avx2() && p->stride[0] == 1 && p->stride[1] == 1 && p->stride[2] == 1) dw = conv_depthwise_avx2;
#endif
        hb_parallel_for(dw == conv_depthwise ? Cout * To : Cout, 1, dw, &j);
    } else if (Cout / groups <= SMALL_COUT && p->stride[2] == 1 && j.kdim >= 64) {
        hb_parallel_for(groups * To * Ho, 1, conv_small, &j);
    } else {
        j.pointwise = j.kt == 1 && j.kh == 1 && j.kw == 1 && p->stride[0] == 1 && p->stride[1] == 1 &&
                      p->stride[2] == 1 && !p->pad_t[0] && !p->pad_t[1] && !p->pad_h[0] && !p->pad_h[1] &&
                      !p->pad_w[0] && !p->pad_w[1];
        /* positions per tile: 512 (the weights are re-read once per tile), fewer so that there are ~8 tiles */
        int64_t pt = 512, eighth = (j.P + 7) / 8;
        if (pt > eighth) pt = (eighth + 15) / 16 * 16;
        if (pt < 16) pt = 16;
        j.pt = pt;
        j.npt = (j.P + pt - 1) / pt;
        int64_t cout_g = Cout / groups;
        j.wp_group = (hb__gemm_pack_a_size(cout_g, j.kdim) + 15) / 16 * 16;
        float *wp = hb_malloc(sizeof(float) * j.wp_group * (size_t)groups, "conv3d packed weights");
        if (!wp) { hb_free(wf); hb_free(bf); return -1; }
        for (int g = 0; g < groups; g++) hb__gemm_pack_a(wp + g * j.wp_group, j.w + g * cout_g * j.kdim, j.kdim, cout_g, j.kdim);
        j.wp = wp;
        hb_parallel_for(groups * j.npt, 1, conv_tiles, &j);
        hb_free(wp);
    }
    hb_free(wf);
    hb_free(bf);
    if (j.err) return hb_error("hb_conv3d: out of memory for the im2col buffer");
    return 0;
}

/* ---------- nearest upsampling ---------- */

typedef struct { float *y; const float *x; int64_t T, H, W; int ft, fh, fw; } up_job;

static void up_rows(void *ctx, int64_t b, int64_t e) {
    const up_job *j = ctx;
    int64_t Wo = j->W * j->fw, Ho = j->H * j->fh;
    for (int64_t r = b; r < e; r++) { /* r = c * (T*ft) + to */
        int64_t c = r / (j->T * j->ft), to = r % (j->T * j->ft), ti = to / j->ft;
        for (int64_t ho = 0; ho < Ho; ho++) {
            const float *xs = j->x + ((c * j->T + ti) * j->H + ho / j->fh) * j->W;
            float *yo = j->y + (r * Ho + ho) * Wo;
            for (int64_t wo = 0; wo < Wo; wo++) yo[wo] = xs[wo / j->fw];
        }
    }
}

void hb_cpu_upsample_nearest(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh, int fw) {
    if (C <= 0 || T <= 0 || H <= 0 || W <= 0 || ft < 1 || fh < 1 || fw < 1) return;
    up_job j = {y, x, T, H, W, ft, fh, fw};
    hb_parallel_for(C * T * ft, 1, up_rows, &j);
}

/* ---------- pixel (un)shuffle ---------- */

typedef struct { float *y; const float *x; int64_t C, T, H, W; int p; hb_ps_order o; bool shuffle; } ps_job;

/* One task per (high-res channel c, frame t): moves every element between x and y. Each high-res row is done
 * whole (its p low-res source rows interleaved), so every cache line of it is written once. */
static void ps_rows(void *ctx, int64_t b, int64_t e) {
    const ps_job *j = ctx;
    int p = j->p;
    int64_t Hh = j->H * p, Wh = j->W * p;
    for (int64_t r = b; r < e; r++) {
        int64_t c = r / j->T, t = r % j->T;
        for (int64_t h = 0; h < j->H; h++)
            for (int q = 0; q < p; q++) {
                float *hi = (j->shuffle ? j->y : (float *)j->x) + ((c * j->T + t) * Hh + h * p + q) * Wh;
                for (int s = 0; s < p; s++) {
                    int64_t lc = c * p * p + (j->o == HB_PS_CQR ? q * p + s : s * p + q);
                    int64_t lo = ((lc * j->T + t) * j->H + h) * j->W;
                    if (j->shuffle)
                        for (int64_t w = 0; w < j->W; w++) hi[w * p + s] = j->x[lo + w];
                    else
                        for (int64_t w = 0; w < j->W; w++) j->y[lo + w] = hi[w * p + s];
                }
            }
    }
}

void hb_cpu_pixel_shuffle_any(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o,
                              bool unshuffle) {
    if (C <= 0 || T <= 0 || H <= 0 || W <= 0 || p < 1) return;
    ps_job j = {y, x, C, T, H, W, p, o, !unshuffle};
    hb_parallel_for(C * T, 1, ps_rows, &j);
}
