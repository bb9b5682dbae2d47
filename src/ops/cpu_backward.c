/* CPU kernels of the training ops (ops_list.h, "training"): channel RMS norm / LayerNorm / activation
 * gradients, channel sums, depthwise conv weight gradients and the AdamW step. Sums run in double in a fixed
 * order per output, one output per task, so results do not depend on the thread count. */
#include "ops/ops_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------- norms and activations ---------- */

typedef struct {
    float *dx; const float *dy, *x, *w; int64_t C, S; float eps;
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

void hb_cpu_channel_rms_backward(float *dx, const float *dy, const float *x, int64_t C, int64_t S, float eps) {
    norm_job j = {dx, dy, x, NULL, C, S, eps};
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

/* channels [b, e) of the LayerNorm parameter gradients: sums over positions in order */
typedef struct { float *dw, *db; const float *dy, *x; const double *mu, *r; int64_t C, S; } lnp_job;
static void ln_params(void *ctx, int64_t b, int64_t e) {
    const lnp_job *j = ctx;
    for (int64_t c = b; c < e; c++) {
        double sw = 0, sb = 0;
        for (int64_t s = 0; s < j->S; s++) {
            double g = j->dy[c * j->S + s];
            sw += g * ((j->x[c * j->S + s] - j->mu[s]) * j->r[s]), sb += g;
        }
        if (j->dw) j->dw[c] += (float)sw;
        if (j->db) j->db[c] += (float)sb;
    }
}

void hb_cpu_channel_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                                       const hb_tensor *w, int64_t C, int64_t S, float eps) {
    if (C <= 0 || S <= 0) return;
    float *wv = hb__vec_f32(w, C);
    double *mu = (dw || db) ? malloc(sizeof(double) * (size_t)S * 2) : NULL;
    if (!wv || ((dw || db) && !mu)) { hb__cpu_fail("hb_channel_layernorm_backward: out of memory"); hb_free(wv); free(mu); return; }
    if (dx) {
        norm_job j = {dx, dy, x, wv, C, S, eps};
        hb_parallel_for(S, 1024, ln_positions, &j);
    }
    if (mu) {
        double *r = mu + S;
        for (int64_t s = 0; s < S; s++) { /* per-position statistics, as the forward */
            double m = 0, var = 0;
            for (int64_t c = 0; c < C; c++) m += x[c * S + s];
            m /= (double)C;
            for (int64_t c = 0; c < C; c++) { double t = x[c * S + s] - m; var += t * t; }
            mu[s] = m, r[s] = 1.0 / sqrt(var / (double)C + (double)eps);
        }
        lnp_job j = {dw, db, dy, x, mu, r, C, S};
        hb_parallel_for(C, 1, ln_params, &j);
    }
    free(mu);
    hb_free(wv);
}

typedef struct { hb_ew_op act; float *dx; const float *dy, *x; } act_job;

static void act_range(void *ctx, int64_t b, int64_t e) {
    const act_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        float x = j->x[i];
        if (j->act == HB_EW_RELU) j->dx[i] = x > 0.0f ? j->dy[i] : 0.0f;
        else {
            float s = 1.0f / (1.0f + expf(-x));
            j->dx[i] = j->dy[i] * (s * (1.0f + x * (1.0f - s)));
        }
    }
}

void hb_cpu_act_backward(hb_ew_op act, float *dx, const float *dy, const float *x, int64_t n) {
    act_job j = {act, dx, dy, x};
    hb_parallel_for(n, 1 << 14, act_range, &j);
}

/* ---------- sums for the parameter gradients ---------- */

typedef struct { float *y; const float *x; int64_t S; } sum_job;
static void sum_rows(void *ctx, int64_t b, int64_t e) {
    const sum_job *j = ctx;
    for (int64_t c = b; c < e; c++) {
        double s = 0;
        for (int64_t i = 0; i < j->S; i++) s += j->x[c * j->S + i];
        j->y[c] += (float)s;
    }
}

void hb_cpu_channel_sum(float *y, const float *x, int64_t C, int64_t S) {
    sum_job j = {y, x, S};
    hb_parallel_for(C, 1, sum_rows, &j);
}

typedef struct {
    float *dw; const float *dy, *xp; int64_t To, Ho, Wo; int kt, kh, kw;
} dwg_job;

/* channels [b, e): dw[c, tap] += sum_o dy[c, o] * xp[c, o + tap]; rows summed in float, rows added in double */
static void dwg_channels(void *ctx, int64_t b, int64_t e) {
    const dwg_job *j = ctx;
    int64_t Tp = j->To + j->kt - 1, Hp = j->Ho + j->kh - 1, Wp = j->Wo + j->kw - 1, N = j->To * j->Ho * j->Wo;
    for (int64_t c = b; c < e; c++)
        for (int a = 0; a < j->kt; a++)
            for (int bb = 0; bb < j->kh; bb++)
                for (int cc = 0; cc < j->kw; cc++) {
                    const float *g = j->dy + c * N, *xs = j->xp + c * Tp * Hp * Wp + (a * Hp + bb) * Wp + cc;
                    double s = 0;
                    for (int64_t t = 0; t < j->To; t++)
                        for (int64_t y = 0; y < j->Ho; y++) {
                            const float *gr = g + (t * j->Ho + y) * j->Wo, *xr = xs + (t * Hp + y) * Wp;
                            float r = 0;
                            for (int64_t x = 0; x < j->Wo; x++) r += gr[x] * xr[x];
                            s += r;
                        }
                    j->dw[((c * j->kt + a) * j->kh + bb) * j->kw + cc] += (float)s;
                }
}

void hb_cpu_depthwise_weight_grad(float *dw, const float *dy, const float *xp, int64_t C, int64_t To, int64_t Ho,
                                  int64_t Wo, int kt, int kh, int kw) {
    dwg_job j = {dw, dy, xp, To, Ho, Wo, kt, kh, kw};
    hb_parallel_for(C, 1, dwg_channels, &j);
}

/* ---------- AdamW ---------- */

void hb_cpu_adamw_step(const hb_adamw *o, int64_t step, float *w, const float *g, float *m, float *v, int64_t n) {
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
