/* CPU kernels of the perceptual-loss ops (ops_list.h, "perceptual loss"): max pooling and its gradient, the LPIPS
 * layer distance and its gradient. One output element (or position) per task, sums in double in a fixed order,
 * so results do not depend on the thread count. */
#include "ops/ops_internal.h"
#include <math.h>
#include <stdlib.h>

#define LPIPS_EPS 1e-10 /* lpips.normalize_tensor */

typedef struct {
    float *out; const float *dy, *x; int64_t H, W, Ho, Wo; int k, s;
} pool_job;

/* index (within the plane) of the first maximum of window (i, j) in row-major order, NaN ignored as torch does */
static int64_t window_argmax(const float *x, int64_t W, int64_t i, int64_t j, int k, int s) {
    int64_t best = i * s * W + j * s;
    float m = x[best];
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            int64_t p = (i * s + a) * W + j * s + b;
            if (x[p] > m || (isnan(m) && !isnan(x[p]))) m = x[p], best = p;
        }
    return best;
}

static void pool_planes(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    for (int64_t c = b; c < e; c++) {
        const float *x = j->x + c * j->H * j->W;
        for (int64_t i = 0; i < j->Ho; i++)
            for (int64_t q = 0; q < j->Wo; q++) j->out[(c * j->Ho + i) * j->Wo + q] = x[window_argmax(x, j->W, i, q, j->k, j->s)];
    }
}

void hb_cpu_maxpool2d(float *y, const float *x, int64_t C, int64_t H, int64_t W, int k, int s) {
    pool_job j = {y, NULL, x, H, W, (H - k) / s + 1, (W - k) / s + 1, k, s};
    hb_parallel_for(C, 1, pool_planes, &j);
}

/* planes [b, e): every input element gathers dy of the windows covering it whose maximum it is */
static void pool_grad_planes(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    for (int64_t c = b; c < e; c++) {
        const float *x = j->x + c * j->H * j->W, *dy = j->dy + c * j->Ho * j->Wo;
        for (int64_t r = 0; r < j->H; r++)
            for (int64_t q = 0; q < j->W; q++) {
                int64_t i0 = r >= j->k ? (r - j->k) / j->s + 1 : 0, i1 = r / j->s < j->Ho - 1 ? r / j->s : j->Ho - 1;
                int64_t q0 = q >= j->k ? (q - j->k) / j->s + 1 : 0, q1 = q / j->s < j->Wo - 1 ? q / j->s : j->Wo - 1;
                double g = 0;
                for (int64_t i = i0; i <= i1; i++)
                    for (int64_t p = q0; p <= q1; p++)
                        if (window_argmax(x, j->W, i, p, j->k, j->s) == r * j->W + q) g += dy[i * j->Wo + p];
                j->out[(c * j->H + r) * j->W + q] = (float)g;
            }
    }
}

void hb_cpu_maxpool2d_backward(float *dx, const float *dy, const float *x, int64_t C, int64_t H, int64_t W, int k, int s) {
    pool_job j = {dx, dy, x, H, W, (H - k) / s + 1, (W - k) / s + 1, k, s};
    hb_parallel_for(C, 1, pool_grad_planes, &j);
}

typedef struct {
    float *d, *dxa; const float *xa, *xb, *w; int64_t C, S; float scale;
} lpd_job;

/* positions [b, e): d = sum_c w u^2; with v = 2 w u, dxa = scale (v / (na + eps) - xa (xa . v) / (na (na + eps)^2)) */
static void lpd_positions(void *ctx, int64_t b, int64_t e) {
    const lpd_job *j = ctx;
    const int64_t S = j->S;
    for (int64_t s = b; s < e; s++) {
        double na = 0, nb = 0, d = 0, xv = 0;
        for (int64_t c = 0; c < j->C; c++) na += (double)j->xa[c * S + s] * j->xa[c * S + s], nb += (double)j->xb[c * S + s] * j->xb[c * S + s];
        na = sqrt(na), nb = sqrt(nb);
        double ia = 1.0 / (na + LPIPS_EPS), ib = 1.0 / (nb + LPIPS_EPS);
        for (int64_t c = 0; c < j->C; c++) {
            double u = j->xa[c * S + s] * ia - j->xb[c * S + s] * ib;
            d += j->w[c] * u * u, xv += j->xa[c * S + s] * (2.0 * j->w[c] * u);
        }
        j->d[s] = (float)d;
        if (!j->dxa) continue;
        double k = na > 0 ? xv * ia * ia / na : 0.0;
        for (int64_t c = 0; c < j->C; c++) {
            double u = j->xa[c * S + s] * ia - j->xb[c * S + s] * ib;
            j->dxa[c * S + s] = (float)(j->scale * (2.0 * j->w[c] * u * ia - j->xa[c * S + s] * k));
        }
    }
}

void hb_cpu_lpips_distance(float *d, float *dxa, const float *xa, const float *xb, const hb_tensor *w, int64_t C,
                           int64_t S, float scale) {
    if (C <= 0 || S <= 0) {
        for (int64_t s = 0; s < S; s++) d[s] = 0.0f;
        if (dxa) for (int64_t i = 0; i < C * S; i++) dxa[i] = 0.0f;
        return;
    }
    float *wv = hb__vec_f32(w, C);
    if (!wv) { hb__cpu_fail("hb_lpips_distance: out of memory"); return; }
    lpd_job j = {d, dxa, xa, xb, wv, C, S, scale};
    hb_parallel_for(S, 256, lpd_positions, &j);
    hb_free(wv);
}
