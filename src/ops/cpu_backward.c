/* Backward kernels and the AdamW step (ops/backward.h). The conv gradients reuse the forward kernels: the data
 * gradient of a stride-1 conv is a conv of dy with the flipped, transposed kernel; the weight gradient of each
 * kernel tap is a product dy [Cout, N] x window^T [N, Cin] (hb_linear), the window being the zero-padded input
 * shifted by the tap. Sums run in a fixed order per output, so results do not depend on the thread count. */
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
                          d->dw ? (int)d->Cout : 1};
    int rc = hb_conv3d(dx, dy, d->Cout, d->To, d->Ho, d->Wo, &ft, NULL, &q);
    hb_free(f);
    return rc;
}

/* x zero-padded to [Cin, Tp, Hp, Wp] */
static float *pad_input(const float *x, const conv_dims *d, const hb_conv3d_params *p, int64_t *Tp, int64_t *Hp,
                        int64_t *Wp) {
    *Tp = d->T + p->pad_t[0] + p->pad_t[1], *Hp = d->H + p->pad_h[0] + p->pad_h[1], *Wp = d->W + p->pad_w[0] + p->pad_w[1];
    float *xp = hb_calloc(sizeof(float) * (size_t)(d->Cin * *Tp * *Hp * *Wp), "conv backward input");
    if (!xp) return NULL;
    int64_t shp[4] = {d->Cin, d->T, d->H, d->W}, ss[4] = {d->T * d->H * d->W, d->H * d->W, d->W, 1};
    int64_t ds[4] = {*Tp * *Hp * *Wp, *Hp * *Wp, *Wp, 1};
    hb_copy_nd(xp + p->pad_t[0] * ds[1] + p->pad_h[0] * ds[2] + p->pad_w[0], ds, x, ss, 4, shp);
    return xp;
}

typedef struct {
    float *dw; const float *dy, *xp; const conv_dims *d; int64_t Tp, Hp, Wp;
} dw_job;

/* depthwise taps: dw[c, tap] += sum_o dy[c, o] * xp[c, o + tap], one channel per task */
static void dw_taps(void *ctx, int64_t b, int64_t e) {
    const dw_job *j = ctx;
    const conv_dims *d = j->d;
    int64_t N = d->To * d->Ho * d->Wo, P = j->Tp * j->Hp * j->Wp;
    for (int64_t c = b; c < e; c++)
        for (int64_t a = 0; a < d->kt; a++)
            for (int64_t bb = 0; bb < d->kh; bb++)
                for (int64_t cc = 0; cc < d->kw; cc++) {
                    const float *g = j->dy + c * N, *xs = j->xp + c * P + a * j->Hp * j->Wp + bb * j->Wp + cc;
                    double s = 0;
                    for (int64_t t = 0; t < d->To; t++)
                        for (int64_t y = 0; y < d->Ho; y++) {
                            const float *gr = g + (t * d->Ho + y) * d->Wo, *xr = xs + (t * j->Hp + y) * j->Wp;
                            float r = 0;
                            for (int64_t x = 0; x < d->Wo; x++) r += gr[x] * xr[x];
                            s += r;
                        }
                    j->dw[((c * d->kt + a) * d->kh + bb) * d->kw + cc] += (float)s;
                }
}

/* dense taps: per tap, the shifted window [Cin, N] and dW_tap[Cout, Cin] = dy . window^T */
static int dense_taps(float *dw, const float *dy, const float *xp, const conv_dims *d, int64_t Tp, int64_t Hp, int64_t Wp) {
    int64_t N = d->To * d->Ho * d->Wo, ks = d->kt * d->kh * d->kw;
    float *win = hb_malloc(sizeof(float) * (size_t)(d->Cin * N), "conv backward window");
    float *g = hb_malloc(sizeof(float) * (size_t)(d->Cout * d->Cin), "conv backward tap");
    int rc = win && g ? 0 : -1;
    int64_t shp[4] = {d->Cin, d->To, d->Ho, d->Wo}, ss[4] = {Tp * Hp * Wp, Hp * Wp, Wp, 1};
    int64_t ds[4] = {N, d->Ho * d->Wo, d->Wo, 1};
    for (int64_t k = 0; k < ks && !rc; k++) {
        int64_t a = k / (d->kh * d->kw), b = (k / d->kw) % d->kh, c = k % d->kw;
        hb_copy_nd(win, ds, xp + a * Hp * Wp + b * Wp + c, ss, 4, shp);
        hb_tensor wt = hb_tensor_2d(HB_F32, d->Cin, N, win);
        rc = hb_linear(g, dy, d->Cout, &wt, NULL, false);
        for (int64_t co = 0; co < d->Cout && !rc; co++)
            for (int64_t ci = 0; ci < d->Cin; ci++) dw[(co * d->Cin + ci) * ks + k] += g[co * d->Cin + ci];
    }
    hb_free(win), hb_free(g);
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
    int64_t N = d.To * d.Ho * d.Wo;
    if (db)
        for (int64_t co = 0; co < d.Cout; co++) {
            double s = 0;
            for (int64_t i = 0; i < N; i++) s += dy[co * N + i];
            db[co] += (float)s;
        }
    if (dx && conv_data_grad(dx, dy, &d, w->data, p)) return -1;
    if (!dw) return 0;
    int64_t Tp, Hp, Wp;
    float *xp = pad_input(x, &d, p, &Tp, &Hp, &Wp);
    if (!xp) return -1;
    int rc = 0;
    if (d.dw) {
        dw_job j = {dw, dy, xp, &d, Tp, Hp, Wp};
        hb_parallel_for(d.Cout, 1, dw_taps, &j);
    } else rc = dense_taps(dw, dy, xp, &d, Tp, Hp, Wp);
    hb_free(xp);
    return rc;
}

/* ---------- norms and activations ---------- */

typedef struct {
    float *dx, *dw, *db; const float *dy, *x, *w; int64_t C, S; float eps;
} norm_job;

/* positions [b, e) of the channel RMS norm: dx = r (dy - x r^2 mean_c(dy x)) */
static void rms_positions(void *ctx, int64_t b, int64_t e) {
    const norm_job *j = ctx;
    for (int64_t s = b; s < e; s++) {
        double ss = 0, gx = 0;
        for (int64_t c = 0; c < j->C; c++) {
            double xv = j->x[c * j->S + s];
            ss += xv * xv, gx += xv * j->dy[c * j->S + s];
        }
        double r = 1.0 / sqrt(ss / (double)j->C + (double)j->eps), k = r * r * r * gx / (double)j->C;
        for (int64_t c = 0; c < j->C; c++)
            j->dx[c * j->S + s] = (float)(r * j->dy[c * j->S + s] - k * j->x[c * j->S + s]);
    }
}

void hb_channel_rms_backward(float *dx, const float *dy, const float *x, int64_t C, int64_t S, float eps) {
    norm_job j = {dx, NULL, NULL, dy, x, NULL, C, S, eps};
    hb_parallel_for(S, 1024, rms_positions, &j);
}

/* positions [b, e) of the channel LayerNorm: dx = r (g - mean(g) - xhat mean(g xhat)), g = dy w */
static void ln_positions(void *ctx, int64_t b, int64_t e) {
    const norm_job *j = ctx;
    for (int64_t s = b; s < e; s++) {
        double mu = 0, var = 0, mg = 0, mgx = 0;
        for (int64_t c = 0; c < j->C; c++) mu += j->x[c * j->S + s];
        mu /= (double)j->C;
        for (int64_t c = 0; c < j->C; c++) { double t = j->x[c * j->S + s] - mu; var += t * t; }
        double r = 1.0 / sqrt(var / (double)j->C + (double)j->eps);
        for (int64_t c = 0; c < j->C; c++) {
            double g = (double)j->dy[c * j->S + s] * j->w[c], xh = (j->x[c * j->S + s] - mu) * r;
            mg += g, mgx += g * xh;
        }
        mg /= (double)j->C, mgx /= (double)j->C;
        for (int64_t c = 0; c < j->C; c++) {
            double g = (double)j->dy[c * j->S + s] * j->w[c], xh = (j->x[c * j->S + s] - mu) * r;
            j->dx[c * j->S + s] = (float)(r * (g - mg - xh * mgx));
        }
    }
}

void hb_channel_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                   int64_t C, int64_t S, float eps) {
    if (dx) {
        norm_job j = {dx, NULL, NULL, dy, x, w, C, S, eps};
        hb_parallel_for(S, 1024, ln_positions, &j);
    }
    if (!dw && !db) return;
    double *sw = calloc((size_t)C, sizeof(double)), *sb = calloc((size_t)C, sizeof(double));
    if (!sw || !sb) { free(sw), free(sb); hb_error("layernorm backward: out of memory"); return; }
    for (int64_t s = 0; s < S; s++) { /* per-parameter sums in position order */
        double mu = 0, var = 0;
        for (int64_t c = 0; c < C; c++) mu += x[c * S + s];
        mu /= (double)C;
        for (int64_t c = 0; c < C; c++) { double t = x[c * S + s] - mu; var += t * t; }
        double r = 1.0 / sqrt(var / (double)C + (double)eps);
        for (int64_t c = 0; c < C; c++) sw[c] += dy[c * S + s] * ((x[c * S + s] - mu) * r), sb[c] += dy[c * S + s];
    }
    for (int64_t c = 0; c < C; c++) {
        if (dw) dw[c] += (float)sw[c];
        if (db) db[c] += (float)sb[c];
    }
    free(sw), free(sb);
}

typedef struct { hb_act act; float *dx; const float *dy, *x; } act_job;

static void act_range(void *ctx, int64_t b, int64_t e) {
    const act_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        float x = j->x[i];
        if (j->act == HB_ACT_RELU) j->dx[i] = x > 0.0f ? j->dy[i] : 0.0f;
        else {
            float s = 1.0f / (1.0f + expf(-x));
            j->dx[i] = j->dy[i] * (s * (1.0f + x * (1.0f - s)));
        }
    }
}

void hb_act_backward(hb_act act, float *dx, const float *dy, const float *x, int64_t n) {
    act_job j = {act, dx, dy, x};
    hb_parallel_for(n, 1 << 14, act_range, &j);
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

/* ---------- AdamW ---------- */

void hb_adamw_step(const hb_adamw *o, int64_t step, float *w, const float *g, float *m, float *v, int64_t n) {
    /* torch passes Python doubles; each becomes a float32 scalar where a tensor op takes it */
    double lr = o->lr, b1 = o->beta1, b2 = o->beta2;
    float decay = (float)(1.0 - lr * (double)o->weight_decay), fb1 = (float)b1, fb2 = (float)b2;
    float c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    float step_size = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
    for (int64_t i = 0; i < n; i++) {
        w[i] = w[i] * decay;
        m[i] = fmaf(g[i], c1, m[i] * fb1);
        v[i] = fmaf(c2 * g[i], g[i], v[i] * fb2);
        float den = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] = w[i] + (step_size * m[i]) / den;
    }
}
