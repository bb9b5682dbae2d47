/* The GPU backend's training kernels (ops/ops_list.h, "training"): the same formulas as src/ops/cpu_backward.c.
 * Per-position statistics and per-channel sums are reduced in f32 (the CPU uses double), so results agree to
 * float rounding, not bitwise; the AdamW step rounds operation by operation as the CPU and torch do. Grid-stride
 * loops (hbg_blocks) so that any size launches. */
#include "backends/cuda/gpu_internal.h"

#include <math.h>
#include <stdint.h>

namespace {

constexpr int NT = 256; /* threads per block */

__device__ __forceinline__ int64_t gtid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return (int64_t)gridDim.x * blockDim.x; }

/* block-wide sum over NT threads, a shared-memory tree; every thread gets the result */
__device__ float block_sum(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

/* one thread per position: dx = r (dy - x r^2 mean_c(dy x)) */
__global__ void k_rms_bwd(float *dx, const float *dy, const float *x, int64_t C, int64_t S, float eps) {
    for (int64_t s = gtid(); s < S; s += gstride()) {
        float ss = 0.0f, gx = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float xv = x[c * S + s];
            ss += xv * xv, gx += xv * dy[c * S + s];
        }
        float r = 1.0f / sqrtf(ss / (float)C + eps), k = r * r * r * gx / (float)C;
        for (int64_t c = 0; c < C; c++) dx[c * S + s] = r * dy[c * S + s] - k * x[c * S + s];
    }
}

/* per-position mean and 1/std of x [C, S] into st [2, S] */
__global__ void k_ln_stats(float *st, const float *x, int64_t C, int64_t S, float eps) {
    for (int64_t s = gtid(); s < S; s += gstride()) {
        float mu = 0.0f, var = 0.0f;
        for (int64_t c = 0; c < C; c++) mu += x[c * S + s];
        mu /= (float)C;
        for (int64_t c = 0; c < C; c++) { float t = x[c * S + s] - mu; var += t * t; }
        st[s] = mu, st[S + s] = 1.0f / sqrtf(var / (float)C + eps);
    }
}

/* one thread per position: dx = r (g - mean(g) - xhat mean(g xhat)), g = dy w */
__global__ void k_ln_dx(float *dx, const float *dy, const float *x, const float *w, const float *st, int64_t C, int64_t S) {
    for (int64_t s = gtid(); s < S; s += gstride()) {
        float mu = st[s], r = st[S + s], mg = 0.0f, mgx = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float g = dy[c * S + s] * w[c], xh = (x[c * S + s] - mu) * r;
            mg += g, mgx += g * xh;
        }
        mg /= (float)C, mgx /= (float)C;
        for (int64_t c = 0; c < C; c++) {
            float g = dy[c * S + s] * w[c], xh = (x[c * S + s] - mu) * r;
            dx[c * S + s] = r * (g - mg - xh * mgx);
        }
    }
}

/* one block per channel: dw[c] += sum_s dy xhat, db[c] += sum_s dy */
__global__ void k_ln_params(float *dw, float *db, const float *dy, const float *x, const float *st, int64_t S) {
    __shared__ float sh[NT];
    const int64_t c = blockIdx.x;
    float sw = 0.0f, sb = 0.0f;
    for (int64_t s = threadIdx.x; s < S; s += NT) {
        float g = dy[c * S + s];
        sw += g * ((x[c * S + s] - st[s]) * st[S + s]), sb += g;
    }
    sw = block_sum(sw, sh), sb = block_sum(sb, sh);
    if (threadIdx.x == 0) {
        if (dw) dw[c] += sw;
        if (db) db[c] += sb;
    }
}

__global__ void k_act_bwd(int relu, float *dx, const float *dy, const float *x, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) {
        float v = x[i];
        if (relu) dx[i] = v > 0.0f ? dy[i] : 0.0f;
        else {
            float s = 1.0f / (1.0f + expf(-v));
            dx[i] = dy[i] * (s * (1.0f + v * (1.0f - s)));
        }
    }
}

/* one block per channel: y[c] += sum_s x[c, s] */
__global__ void k_channel_sum(float *y, const float *x, int64_t S) {
    __shared__ float sh[NT];
    const int64_t c = blockIdx.x;
    float v = 0.0f;
    for (int64_t s = threadIdx.x; s < S; s += NT) v += x[c * S + s];
    v = block_sum(v, sh);
    if (threadIdx.x == 0) y[c] += v;
}

/* one block per (channel, tap): dw[c, tap] += sum_o dy[c, o] xp[c, o + tap] */
__global__ void k_dw_grad(float *dw, const float *dy, const float *xp, int64_t To, int64_t Ho, int64_t Wo, int kt, int kh,
                          int kw) {
    __shared__ float sh[NT];
    const int64_t ks = (int64_t)kt * kh * kw, c = blockIdx.x / ks, k = blockIdx.x % ks;
    const int64_t a = k / (kh * kw), b = (k / kw) % kh, d = k % kw;
    const int64_t Tp = To + kt - 1, Hp = Ho + kh - 1, Wp = Wo + kw - 1, N = To * Ho * Wo;
    const float *g = dy + c * N, *xs = xp + c * Tp * Hp * Wp + (a * Hp + b) * Wp + d;
    float v = 0.0f;
    for (int64_t i = threadIdx.x; i < N; i += NT) {
        int64_t t = i / (Ho * Wo), y = (i / Wo) % Ho, xx = i % Wo;
        v += g[i] * xs[(t * Hp + y) * Wp + xx];
    }
    v = block_sum(v, sh);
    if (threadIdx.x == 0) dw[c * ks + k] += v;
}

struct adam_consts { float decay, b1, b2, c1, c2, step_size, bc2_sqrt, eps; };

__global__ void k_adamw(adam_consts k, float *w, const float *g, float *m, float *v, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) {
        float wi = w[i] * k.decay;
        float mi = fmaf(g[i], k.c1, m[i] * k.b1);
        float vi = fmaf(k.c2 * g[i], g[i], v[i] * k.b2);
        float den = sqrtf(vi) / k.bc2_sqrt + k.eps;
        m[i] = mi, v[i] = vi;
        w[i] = wi + (k.step_size * mi) / den;
    }
}

} // namespace

void hbg_channel_rms_backward(float *dx, const float *dy, const float *x, int64_t C, int64_t S, float eps) {
    if (C <= 0 || S <= 0) return;
    k_rms_bwd<<<hbg_blocks(S, NT), NT, 0, hbg_stream()>>>(dx, dy, x, C, S, eps);
    HBG_LAUNCHED("hb_channel_rms_backward");
}

void hbg_channel_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const hb_tensor *w,
                                    int64_t C, int64_t S, float eps) {
    if (C <= 0 || S <= 0) return;
    const float *wd = (const float *)hbg_weight(w, HBG_W_F32);
    float *st = (float *)hbg_scratch(HBG_SCRATCH_SLOTS - 1, sizeof(float) * 2 * (size_t)S);
    if (!wd || !st) return;
    k_ln_stats<<<hbg_blocks(S, NT), NT, 0, hbg_stream()>>>(st, x, C, S, eps);
    if (dx) k_ln_dx<<<hbg_blocks(S, NT), NT, 0, hbg_stream()>>>(dx, dy, x, wd, st, C, S);
    if (dw || db) k_ln_params<<<(unsigned)C, NT, 0, hbg_stream()>>>(dw, db, dy, x, st, S);
    HBG_LAUNCHED("hb_channel_layernorm_backward");
}

void hbg_act_backward(hb_ew_op act, float *dx, const float *dy, const float *x, int64_t n) {
    if (n <= 0) return;
    k_act_bwd<<<hbg_blocks(n, NT), NT, 0, hbg_stream()>>>(act == HB_EW_RELU, dx, dy, x, n);
    HBG_LAUNCHED("hb_act_backward");
}

void hbg_channel_sum(float *y, const float *x, int64_t C, int64_t S) {
    if (C <= 0 || S <= 0) return;
    k_channel_sum<<<(unsigned)C, NT, 0, hbg_stream()>>>(y, x, S);
    HBG_LAUNCHED("hb_channel_sum");
}

void hbg_depthwise_weight_grad(float *dw, const float *dy, const float *xp, int64_t C, int64_t To, int64_t Ho, int64_t Wo,
                               int kt, int kh, int kw) {
    if (C <= 0 || To <= 0 || Ho <= 0 || Wo <= 0) return;
    k_dw_grad<<<(unsigned)(C * kt * kh * kw), NT, 0, hbg_stream()>>>(dw, dy, xp, To, Ho, Wo, kt, kh, kw);
    HBG_LAUNCHED("hb_depthwise_weight_grad");
}

void hbg_adamw_step(const hb_adamw *o, int64_t step, float *w, const float *g, float *m, float *v, int64_t n) {
    if (n <= 0) return;
    /* torch passes Python doubles; each becomes a float32 scalar where a tensor op takes it (as the CPU kernel) */
    double bc1 = 1.0 - pow(o->beta1, (double)step), bc2 = 1.0 - pow(o->beta2, (double)step);
    adam_consts k = {(float)(1.0 - o->lr * o->weight_decay), (float)o->beta1, (float)o->beta2, (float)(1.0 - o->beta1),
                     (float)(1.0 - o->beta2), (float)(-(o->lr / bc1)), (float)sqrt(bc2), (float)o->eps};
    k_adamw<<<hbg_blocks(n, NT), NT, 0, hbg_stream()>>>(k, w, g, m, v, n);
    HBG_LAUNCHED("hb_adamw_step");
}
