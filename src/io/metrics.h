/* io/metrics: quality metrics between two clips of 8-bit RGB frames (uint8 [T, H, W, 3]).
 *
 * PSNR (per frame)  10*log10(255^2 / MSE), MSE over all H*W*3 values; +inf when the frames are equal
 *                   (skimage.metrics.peak_signal_noise_ratio(..., data_range=255)).
 * SSIM (per frame)  exactly skimage.metrics.structural_similarity(ref, test, gaussian_weights=True,
 *                   sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1):
 *                   per channel, Gaussian window sigma 1.5 truncated at 3.5 sigma (radius 5, 11 taps,
 *                   normalised), local means/variances/covariance (population), K1 = 0.01, K2 = 0.03,
 *                   SSIM map cropped by 5 pixels on every side and averaged; then the mean of the 3
 *                   channels. Needs frames of at least 11x11. Computed in double precision.
 * Flicker           flicker_t(v) = mean over H*W*3 of |v_t - v_{t-1}| / 255 for t >= 1 (undefined at t = 0);
 *                   reported for the reference, the test, and delta_t = flicker_t(test) - flicker_t(ref).
 * Means are plain averages over frames (flicker over frames 1..T-1; 0 when T = 1). */
#ifndef HB_IO_METRICS_H
#define HB_IO_METRICS_H

#include "core/core.h"

double hb_metric_psnr(const uint8_t *a, const uint8_t *b, size_t n);
double hb_metric_ssim(const uint8_t *a, const uint8_t *b, int H, int W); /* -1 + message if < 11x11 */
double hb_metric_flicker(const uint8_t *prev, const uint8_t *cur, size_t n);

typedef struct hb_metrics {
    int frames, height, width;
    double *psnr, *ssim;                /* [frames] */
    double *flicker_ref, *flicker_test; /* [frames]; [0] is NAN (no previous frame) */
    double psnr_mean, ssim_mean, flicker_ref_mean, flicker_test_mean, flicker_delta_mean;
} hb_metrics;

/* Both clips must have the same frame count and size (else a clear error). Frames are processed in
 * parallel on the hb thread pool; the result does not depend on the thread count. */
int hb_metrics_compute(const uint8_t *ref, const uint8_t *test, int T, int H, int W, hb_metrics *m);
void hb_metrics_free(hb_metrics *m);

#endif
