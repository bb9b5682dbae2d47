/* The composed backward passes of ops/backward.h. The data gradient of a stride-1 conv is a conv of dy with the
 * flipped, transposed kernel; the weight gradient of a dense conv is im2col [Cin x taps, N] x dy^T [N, Cout]
 * (hb_gemm_f32), the im2col rows being the zero-padded input shifted by each tap; depthwise taps and
 * bias sums are their own ops. Everything on activations goes through the ops (any backend); the losses are
 * reductions on host memory. */
#include "ops/backward.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------- conv3d ---------- */

typedef struct {
    int64_t Cin, Cout, T, H, W, To, Ho, Wo, kt, kh, kw;
    bool dw;
} conv_dims;

/* the kernel flipped in every axis, in and out channels swapped: [Cin, Cout, k...] (depthwise: [C, 1, k...]) */
static float *flip_kernel(const conv_dims *d, const float *w) {
    int64_t ks = d->kt * d->kh * d->kw, ci_n = d->dw ? 1 : d->Cin;
    float *f = hb_malloc(sizeof(float) * (size_t)(d->Cout * ci_n * ks), "conv backward kernel");
    if (!f) return NULL;
    for (int64_t co = 0; co < d->Cout; co++)
        for (int64_t ci = 0; ci < ci_n; ci++)
            for (int64_t k = 0; k < ks; k++) {
                int64_t dst = d->dw ? co * ks + (ks - 1 - k) : (ci * d->Cout + co) * ks + (ks - 1 - k);
                f[dst] = w[(co * ci_n + ci) * ks + k];
            }
    return f;
}

static int conv_data_grad(float *dx, const float *dy, const conv_dims *d, const float *w, const hb_conv3d_params *p) {
    float *f = flip_kernel(d, w);
    if (!f) return -1;
    int64_t shp[5] = {d->dw ? d->Cout : d->Cin, d->dw ? 1 : d->Cout, d->kt, d->kh, d->kw};
    hb_tensor ft = hb_tensor_make(HB_F32, 5, shp, f);
    hb_conv3d_params q = {{1, 1, 1},
                          {(int)d->kt - 1 - p->pad_t[0], (int)d->kt - 1 - p->pad_t[1]},
                          {(int)d->kh - 1 - p->pad_h[0], (int)d->kh - 1 - p->pad_h[1]},
                          {(int)d->kw - 1 - p->pad_w[0], (int)d->kw - 1 - p->pad_w[1]},
                          d->dw ? (int)d->Cout : 1, p->precision};
    int rc = hb_conv3d(dx, dy, d->Cout, d->To, d->Ho, d->Wo, &ft, NULL, &q);
    hb_host_memory_released(f, sizeof(float) * (size_t)hb_tensor_numel(&ft)); /* a device copy keyed by f goes too */
    hb_free(f);
    return rc;
}

/* x zero-padded to [Cin, Tp, Hp, Wp] (current memory space) */
static float *pad_input(const float *x, const conv_dims *d, const hb_conv3d_params *p, int64_t *Tp, int64_t *Hp,
                        int64_t *Wp) {
    *Tp = d->T + p->pad_t[0] + p->pad_t[1], *Hp = d->H + p->pad_h[0] + p->pad_h[1], *Wp = d->W + p->pad_w[0] + p->pad_w[1];
    int64_t n = d->Cin * *Tp * *Hp * *Wp;
    float *xp = hb_dev_alloc(sizeof(float) * (size_t)(n > 0 ? n : 1), "conv backward input");
    if (!xp) return NULL;
    hb_fill(xp, 0.0f, n);
    int64_t shp[4] = {d->Cin, d->T, d->H, d->W}, ss[4] = {d->T * d->H * d->W, d->H * d->W, d->W, 1};
    int64_t ds[4] = {*Tp * *Hp * *Wp, *Hp * *Wp, *Wp, 1};
    hb_copy_nd(xp + p->pad_t[0] * ds[1] + p->pad_h[0] * ds[2] + p->pad_w[0], ds, x, ss, 4, shp);
    return xp;
}

/* dense taps, a chunk of output frames at a time: the im2col rows [Cin x taps, positions] (row ci * taps + k is
 * channel ci of the input shifted by tap k; contiguous copies) and gT [Cin x taps, Cout] += im2col x dy^T
 * (hb_gemm_f32 with Cin x taps rows, so it splits over threads); then dw += gT transposed ([Cout, Cin, taps]) */
#define TAP_CHUNK_POSITIONS 16384
static int dense_taps(float *dw, const float *dy, const float *xp, const conv_dims *d, int64_t Tp, int64_t Hp, int64_t Wp) {
    int64_t HWo = d->Ho * d->Wo, N = d->To * HWo, ks = d->kt * d->kh * d->kw, rows = d->Cin * ks, nw = d->Cout * rows;
    int64_t nt = TAP_CHUNK_POSITIONS / HWo > 0 ? TAP_CHUNK_POSITIONS / HWo : 1;
    if (nt > d->To) nt = d->To;
    float *col = hb_dev_alloc(sizeof(float) * (size_t)(nt * HWo * rows), "conv backward im2col");
    float *dyt = hb_dev_alloc(sizeof(float) * (size_t)(nt * HWo * d->Cout), "conv backward dy");
    float *gt = hb_dev_alloc(sizeof(float) * (size_t)nw, "conv backward taps"), *g = hb_dev_alloc(sizeof(float) * (size_t)nw, "taps");
    int rc = col && dyt && gt && g ? 0 : -1;
    for (int64_t t0 = 0; t0 < d->To && !rc; t0 += nt) {
        int64_t n = t0 + nt <= d->To ? nt : d->To - t0, P = n * HWo;
        int64_t shp[4] = {d->Cin, n, d->Ho, d->Wo}, ss[4] = {Tp * Hp * Wp, Hp * Wp, Wp, 1}, ds[4] = {ks * P, HWo, d->Wo, 1};
        for (int64_t k = 0; k < ks; k++) {
            int64_t a = k / (d->kh * d->kw), b = (k / d->kw) % d->kh, c = k % d->kw;
            hb_copy_nd(col + k * P, ds, xp + (t0 + a) * Hp * Wp + b * Wp + c, ss, 4, shp);
        }
        int64_t tshape[2] = {d->Cout, P}, tsrc[2] = {N, 1}, tdst[2] = {1, d->Cout};
        hb_copy_nd(dyt, tdst, dy + t0 * HWo, tsrc, 2, tshape);
        hb_gemm_f32(gt, d->Cout, col, P, dyt, d->Cout, rows, d->Cout, P, t0 > 0);
    }
    if (!rc) {
        int64_t shape[2] = {d->Cout, rows}, src[2] = {1, d->Cout}, dst[2] = {rows, 1};
        hb_copy_nd(g, dst, gt, src, 2, shape);
        hb_add(dw, dw, g, nw);
    }
    hb_dev_free(col), hb_dev_free(dyt), hb_dev_free(gt), hb_dev_free(g);
    return rc;
}

int hb_conv3d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, int64_t Cin, int64_t T,
                       int64_t H, int64_t W, const hb_tensor *w, const hb_conv3d_params *p) {
    if (w->dtype != HB_F32 || w->ndim != 5 || !hb_tensor_is_contiguous(w))
        return hb_error("conv3d backward: the weight must be a contiguous F32 [Cout, Cin/groups, kt, kh, kw] tensor");
    conv_dims d = {.Cin = Cin, .Cout = w->shape[0], .T = T, .H = H, .W = W, .kt = w->shape[2], .kh = w->shape[3],
                   .kw = w->shape[4], .dw = p->groups > 1};
    if (p->stride[0] != 1 || p->stride[1] != 1 || p->stride[2] != 1 || (p->groups != 1 && (p->groups != Cin || d.Cout != Cin)) ||
        w->shape[1] != (d.dw ? 1 : Cin))
        return hb_error("conv3d backward: only stride 1 with groups 1 or depthwise is supported");
    hb_conv3d_out_size(T, H, W, w, p, &d.To, &d.Ho, &d.Wo);
    if (db) hb_channel_sum(db, dy, d.Cout, d.To * d.Ho * d.Wo);
    if (dx && conv_data_grad(dx, dy, &d, w->data, p)) return -1;
    if (!dw) return 0;
    int64_t Tp, Hp, Wp;
    float *xp = pad_input(x, &d, p, &Tp, &Hp, &Wp);
    if (!xp) return -1;
    int rc = 0;
    if (d.dw) hb_depthwise_weight_grad(dw, dy, xp, d.Cout, d.To, d.Ho, d.Wo, (int)d.kt, (int)d.kh, (int)d.kw);
    else rc = dense_taps(dw, dy, xp, &d, Tp, Hp, Wp);
    hb_dev_free(xp);
    return rc;
}

/* ---------- losses ---------- */

double hb_l1_loss(const float *a, const float *b, int64_t n, float *grad, float scale) {
    double s = 0;
    float g = scale / (float)n;
    for (int64_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        s += fabs((double)d);
        if (grad) grad[i] += d > 0.0f ? g : d < 0.0f ? -g : 0.0f;
    }
    return n > 0 ? s / (double)n : 0.0;
}

double hb_mse_loss(const float *a, const float *b, int64_t n, float *grad, float scale) {
    double s = 0;
    float g = 2.0f * scale / (float)n;
    for (int64_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        s += (double)d * d;
        if (grad) grad[i] += g * d;
    }
    return n > 0 ? s / (double)n : 0.0;
}

