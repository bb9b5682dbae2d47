/* The GPU backend's perceptual-loss kernels (ops/ops_list.h, "perceptual loss"): the same formulas as
 * src/ops/cpu_lpips.c, one thread per output element or position, sums in f32 (the CPU uses double), so results
 * agree to float rounding. Grid-stride loops (hbg_blocks) so that any size launches. */
#include "backends/cuda/gpu_internal.h"

#include <math.h>
#include <stdint.h>

namespace {

constexpr int NT = 256; /* threads per block */

__device__ __forceinline__ int64_t gtid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return (int64_t)gridDim.x * blockDim.x; }

/* index in the plane of window (i, j)'s first maximum in row-major order (NaN ignored, as the CPU) */
__device__ int64_t window_argmax(const float *x, int64_t W, int64_t i, int64_t j, int k, int s) {
    int64_t best = i * s * W + j * s;
    float m = x[best];
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            int64_t p = (i * s + a) * W + j * s + b;
            if (x[p] > m || (isnan(m) && !isnan(x[p]))) m = x[p], best = p;
        }
    return best;
}

__global__ void k_maxpool(float *y, const float *x, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int k, int s) {
    for (int64_t o = gtid(); o < C * Ho * Wo; o += gstride()) {
        int64_t c = o / (Ho * Wo), i = (o / Wo) % Ho, j = o % Wo;
        const float *xc = x + c * H * W;
        y[o] = xc[window_argmax(xc, W, i, j, k, s)];
    }
}

__global__ void k_maxpool_bwd(float *dx, const float *dy, const float *x, int64_t C, int64_t H, int64_t W, int64_t Ho,
                              int64_t Wo, int k, int s) {
    for (int64_t o = gtid(); o < C * H * W; o += gstride()) {
        int64_t c = o / (H * W), r = (o / W) % H, q = o % W;
        const float *xc = x + c * H * W, *g = dy + c * Ho * Wo;
        int64_t i0 = r >= k ? (r - k) / s + 1 : 0, i1 = r / s < Ho - 1 ? r / s : Ho - 1;
        int64_t q0 = q >= k ? (q - k) / s + 1 : 0, q1 = q / s < Wo - 1 ? q / s : Wo - 1;
        float v = 0.0f;
        for (int64_t i = i0; i <= i1; i++)
            for (int64_t p = q0; p <= q1; p++)
                if (window_argmax(xc, W, i, p, k, s) == r * W + q) v += g[i * Wo + p];
        dx[o] = v;
    }
}

/* one thread per position: d = sum_c w u^2, dxa = scale (2 w u / (na + eps) - xa (xa . 2 w u) / (na (na + eps)^2)) */
__global__ void k_lpips_dist(float *d, float *dxa, const float *xa, const float *xb, const float *w, int64_t C, int64_t S,
                             float scale) {
    for (int64_t s = gtid(); s < S; s += gstride()) {
        float na = 0.0f, nb = 0.0f, dv = 0.0f, xv = 0.0f;
        for (int64_t c = 0; c < C; c++) na += xa[c * S + s] * xa[c * S + s], nb += xb[c * S + s] * xb[c * S + s];
        na = sqrtf(na), nb = sqrtf(nb);
        float ia = 1.0f / (na + 1e-10f), ib = 1.0f / (nb + 1e-10f);
        for (int64_t c = 0; c < C; c++) {
            float u = xa[c * S + s] * ia - xb[c * S + s] * ib;
            dv += w[c] * u * u, xv += xa[c * S + s] * (2.0f * w[c] * u);
        }
        d[s] = dv;
        if (!dxa) continue;
        float kk = na > 0.0f ? xv * ia * ia / na : 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float u = xa[c * S + s] * ia - xb[c * S + s] * ib;
            dxa[c * S + s] = scale * (2.0f * w[c] * u * ia - xa[c * S + s] * kk);
        }
    }
}

} // namespace

void hbg_maxpool2d(float *y, const float *x, int64_t C, int64_t H, int64_t W, int k, int s) {
    int64_t Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    if (C <= 0) return;
    k_maxpool<<<hbg_blocks(C * Ho * Wo, NT), NT, 0, hbg_stream()>>>(y, x, C, H, W, Ho, Wo, k, s);
    HBG_LAUNCHED("hb_maxpool2d");
}

void hbg_maxpool2d_backward(float *dx, const float *dy, const float *x, int64_t C, int64_t H, int64_t W, int k, int s) {
    int64_t Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    if (C <= 0) return;
    k_maxpool_bwd<<<hbg_blocks(C * H * W, NT), NT, 0, hbg_stream()>>>(dx, dy, x, C, H, W, Ho, Wo, k, s);
    HBG_LAUNCHED("hb_maxpool2d_backward");
}

void hbg_lpips_distance(float *d, float *dxa, const float *xa, const float *xb, const hb_tensor *w, int64_t C, int64_t S,
                        float scale) {
    if (S <= 0) return;
    const float *wd = C > 0 ? (const float *)hbg_weight(w, HBG_W_F32) : NULL;
    if (C > 0 && !wd) return;
    k_lpips_dist<<<hbg_blocks(S, NT), NT, 0, hbg_stream()>>>(d, dxa, xa, xb, wd, C, S, scale);
    HBG_LAUNCHED("hb_lpips_distance");
}
