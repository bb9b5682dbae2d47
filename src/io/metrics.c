/* io/metrics: PSNR, skimage-compatible Gaussian SSIM, temporal flicker. */
#include "io/metrics.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SSIM_R 5 /* int(3.5 * 1.5 + 0.5): scipy's truncation radius */
#define SSIM_K (2 * SSIM_R + 1)

double hb_metric_psnr(const uint8_t *a, const uint8_t *b, size_t n) {
    uint64_t se = 0;
    for (size_t i = 0; i < n; i++) {
        int d = (int)a[i] - (int)b[i];
        se += (uint64_t)(d * d);
    }
    if (se == 0) return INFINITY;
    double mse = (double)se / (double)n;
    return 10.0 * log10(255.0 * 255.0 / mse);
}

double hb_metric_flicker(const uint8_t *prev, const uint8_t *cur, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint64_t)abs((int)cur[i] - (int)prev[i]);
    return (double)s / ((double)n * 255.0);
}

static void ssim_kernel(double k[SSIM_K]) {
    double s = 0;
    for (int i = 0; i < SSIM_K; i++) {
        double x = i - SSIM_R;
        k[i] = exp(-0.5 / (1.5 * 1.5) * x * x);
        s += k[i];
    }
    for (int i = 0; i < SSIM_K; i++) k[i] /= s;
}

/* One channel (stride 3 in interleaved RGB). tmp: 5 * (H + 1) * (W - 2R) doubles. */
static double ssim_channel(const uint8_t *a, const uint8_t *b, int H, int W, int c, const double *k, double *tmp) {
    int ow = W - 2 * SSIM_R, oh = H - 2 * SSIM_R;
    size_t plane = (size_t)H * ow;
    double *mx = tmp, *my = tmp + plane, *mxx = tmp + 2 * plane, *myy = tmp + 3 * plane, *mxy = tmp + 4 * plane;
    /* filter along rows (axis 1) for every row; the crop means no border handling is needed */
    for (int i = 0; i < H; i++)
        for (int j = 0; j < ow; j++) {
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int t = 0; t < SSIM_K; t++) {
                size_t p = ((size_t)i * W + j + t) * 3 + c;
                double x = a[p], y = b[p], w = k[t];
                sx += w * x; sy += w * y; sxx += w * (x * x); syy += w * (y * y); sxy += w * (x * y);
            }
            size_t o = (size_t)i * ow + j;
            mx[o] = sx; my[o] = sy; mxx[o] = sxx; myy[o] = syy; mxy[o] = sxy;
        }
    const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
    /* filter along columns (axis 0), one output row at a time into 5 row accumulators (same tap order
     * for every element, so the result does not depend on how frames are split over threads) */
    double *acc = tmp + 5 * plane, *ux = acc, *uy = acc + ow, *uxx = acc + 2 * ow, *uyy = acc + 3 * ow, *uxy = acc + 4 * ow;
    double total = 0;
    for (int i = 0; i < oh; i++) {
        memset(acc, 0, sizeof(double) * 5 * ow);
        for (int t = 0; t < SSIM_K; t++) {
            size_t o = (size_t)(i + t) * ow;
            double w = k[t];
            for (int j = 0; j < ow; j++) {
                ux[j] += w * mx[o + j]; uy[j] += w * my[o + j]; uxx[j] += w * mxx[o + j];
                uyy[j] += w * myy[o + j]; uxy[j] += w * mxy[o + j];
            }
        }
        double row = 0;
        for (int j = 0; j < ow; j++) {
            double vx = uxx[j] - ux[j] * ux[j], vy = uyy[j] - uy[j] * uy[j], vxy = uxy[j] - ux[j] * uy[j];
            double A1 = 2 * ux[j] * uy[j] + C1, A2 = 2 * vxy + C2;
            double B1 = ux[j] * ux[j] + uy[j] * uy[j] + C1, B2 = vx + vy + C2;
            row += (A1 * A2) / (B1 * B2);
        }
        total += row;
    }
    return total / ((double)oh * ow);
}

double hb_metric_ssim(const uint8_t *a, const uint8_t *b, int H, int W) {
    if (H < SSIM_K || W < SSIM_K)
        return hb_error("SSIM needs frames of at least %dx%d, got %dx%d", SSIM_K, SSIM_K, W, H);
    double k[SSIM_K];
    ssim_kernel(k);
    double *tmp = malloc(sizeof(double) * 5 * (size_t)(H + 1) * (W - 2 * SSIM_R));
    if (!tmp) return hb_error("SSIM: out of memory for %dx%d frames", W, H);
    double s = 0;
    for (int c = 0; c < 3; c++) s += ssim_channel(a, b, H, W, c, k, tmp);
    free(tmp);
    return s / 3.0;
}

typedef struct {
    const uint8_t *ref, *test;
    int H, W;
    hb_metrics *m;
    int failed;
} mctx;

static void metrics_range(void *vctx, int64_t begin, int64_t end) {
    mctx *c = vctx;
    size_t fsz = (size_t)c->H * c->W * 3;
    double k[SSIM_K];
    ssim_kernel(k);
    double *tmp = malloc(sizeof(double) * 5 * (size_t)(c->H + 1) * (c->W - 2 * SSIM_R));
    if (!tmp) { c->failed = 1; return; }
    for (int64_t t = begin; t < end; t++) {
        const uint8_t *a = c->ref + fsz * t, *b = c->test + fsz * t;
        c->m->psnr[t] = hb_metric_psnr(a, b, fsz);
        double s = 0;
        for (int ch = 0; ch < 3; ch++) s += ssim_channel(a, b, c->H, c->W, ch, k, tmp);
        c->m->ssim[t] = s / 3.0;
        if (t > 0) {
            c->m->flicker_ref[t] = hb_metric_flicker(a - fsz, a, fsz);
            c->m->flicker_test[t] = hb_metric_flicker(b - fsz, b, fsz);
        } else {
            c->m->flicker_ref[t] = c->m->flicker_test[t] = NAN;
        }
    }
    free(tmp);
}

void hb_metrics_free(hb_metrics *m) {
    if (!m) return;
    free(m->psnr); free(m->ssim); free(m->flicker_ref); free(m->flicker_test);
    memset(m, 0, sizeof *m);
}

int hb_metrics_compute(const uint8_t *ref, const uint8_t *test, int T, int H, int W, hb_metrics *m) {
    memset(m, 0, sizeof *m);
    if (T <= 0) return hb_error("metrics: no frames");
    if (H < SSIM_K || W < SSIM_K)
        return hb_error("metrics: SSIM needs frames of at least %dx%d, got %dx%d", SSIM_K, SSIM_K, W, H);
    m->frames = T; m->height = H; m->width = W;
    m->psnr = malloc(sizeof(double) * T);
    m->ssim = malloc(sizeof(double) * T);
    m->flicker_ref = malloc(sizeof(double) * T);
    m->flicker_test = malloc(sizeof(double) * T);
    if (!m->psnr || !m->ssim || !m->flicker_ref || !m->flicker_test) {
        hb_metrics_free(m);
        return hb_error("metrics: out of memory");
    }
    mctx c = {ref, test, H, W, m, 0};
    hb_parallel_for(T, 1, metrics_range, &c);
    if (c.failed) { hb_metrics_free(m); return hb_error("metrics: out of memory for %dx%d frames", W, H); }
    double sp = 0, ss = 0, fr = 0, ft = 0;
    for (int t = 0; t < T; t++) {
        sp += m->psnr[t];
        ss += m->ssim[t];
        if (t > 0) { fr += m->flicker_ref[t]; ft += m->flicker_test[t]; }
    }
    m->psnr_mean = sp / T;
    m->ssim_mean = ss / T;
    m->flicker_ref_mean = T > 1 ? fr / (T - 1) : 0;
    m->flicker_test_mean = T > 1 ? ft / (T - 1) : 0;
    m->flicker_delta_mean = m->flicker_test_mean - m->flicker_ref_mean;
    return 0;
}
