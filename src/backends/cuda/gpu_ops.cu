/* The GPU backend's memory-bound kernels: norms, modulation, elementwise, softmax, RoPE, data movement and
 * dtype conversion. Same formulas as the CPU kernels (src/ops/cpu_norm.c, cpu_rope.c, cpu_conv.c, cpu_copy.c);
 * row statistics are reduced in f32 (the CPU uses double), so results agree to float rounding, not bitwise.
 * Each kernel is one pass over its data (rows are re-read from cache, never re-fetched per element), with a
 * float4 variant when the sizes and pointers allow it, and grid-stride loops (hbg_blocks) so that any size
 * launches. Weights come from hbg_weight(..., HBG_W_F32). */
#include "backends/cuda/gpu_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

namespace {

constexpr int NT = 256;          /* threads per block */
constexpr int MAX_ROW_BLOCKS = 1 << 20;

inline bool al16(const void *p) { return ((uintptr_t)p & 15u) == 0; }
inline bool al8(const void *p) { return ((uintptr_t)p & 7u) == 0; }

/* ---------- device helpers ---------- */

template <int V> __device__ __forceinline__ void ldv(float (&r)[V], const float *p) {
    if constexpr (V == 4) {
        float4 t = *reinterpret_cast<const float4 *>(p);
        r[0] = t.x; r[1] = t.y; r[2] = t.z; r[3] = t.w;
    } else {
#pragma unroll
        for (int k = 0; k < V; k++) r[k] = p[k];
    }
}

template <int V> __device__ __forceinline__ void stv(float *p, const float (&r)[V]) {
    if constexpr (V == 4) {
        *reinterpret_cast<float4 *>(p) = make_float4(r[0], r[1], r[2], r[3]);
    } else {
#pragma unroll
        for (int k = 0; k < V; k++) p[k] = r[k];
    }
}

__device__ __forceinline__ int64_t gtid() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return (int64_t)gridDim.x * blockDim.x; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int m = GPU_WARP / 2; m > 0; m >>= 1) v += gpuShflXor(v, m);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int m = GPU_WARP / 2; m > 0; m >>= 1) v = fmaxf(v, gpuShflXor(v, m));
    return v;
}

/* Block-wide sum / max over NT threads; every thread gets the result. sh holds NT / GPU_WARP floats. */
template <bool MAX> __device__ __forceinline__ float block_reduce(float v, float *sh) {
    static_assert(NT % GPU_WARP == 0 && NT / GPU_WARP <= GPU_WARP, "block size");
    constexpr int NW = NT / GPU_WARP;
    const int lane = threadIdx.x % GPU_WARP, wid = threadIdx.x / GPU_WARP;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads(); /* sh may still be read by the previous reduction */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        float t = lane < NW ? sh[lane] : (MAX ? -INFINITY : 0.0f);
        t = MAX ? warp_max(t) : warp_sum(t);
        if (lane == 0) sh[0] = t;
    }
    __syncthreads();
    return sh[0];
}

/* Exact conversions, bit for bit those of core (hb_f32_to_bf16, hb_f16_to_f32, hb_f32_to_f16). */
__device__ __forceinline__ float bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
__device__ __forceinline__ float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t ex = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (ex == 0x1f) return __uint_as_float(sign | 0x7f800000u | (man << 13));
    if (ex == 0) {
        if (man == 0) return __uint_as_float(sign);
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((ex + 112u) << 23) | (man << 13));
}
__device__ __forceinline__ uint16_t f32_to_f16(float f) {
    uint32_t u = __float_as_uint(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) {
        float v = __uint_as_float(a) * 0x1p24f;
        return sign | (uint16_t)rintf(v); /* ties to even */
    }
    uint32_t man = a & 0x7fffffu, ex = (a >> 23) - 112u;
    uint32_t h = (ex << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

/* A float parameter vector of exactly n elements as a device f32 pointer (t NULL: *out = NULL, true). */
bool param_vec(const hb_tensor *t, int64_t n, const char *op, const char *what, const float **out) {
    *out = nullptr;
    if (!t) return true;
    if (hb_tensor_numel(t) != n) {
        hbg_fail("%s: %s has %lld elements, expected %lld", op, what, (long long)hb_tensor_numel(t), (long long)n);
        return false;
    }
    *out = (const float *)hbg_weight(t, HBG_W_F32);
    return *out != nullptr;
}

unsigned row_blocks(int64_t rows) { return (unsigned)(rows < MAX_ROW_BLOCKS ? rows : MAX_ROW_BLOCKS); }

/* ---------- row norms: layernorm, rmsnorm, layernorm + modulate ---------- */

enum { RN_LN = 0, RN_RMS = 1, RN_MOD = 2 };

/* One block per row (grid-stride over rows). Pass 1: mean (not for RMS); pass 2: sum of squared deviations
 * (of squares for RMS); pass 3: write. In place (y == x) is fine: each thread reads and writes the same
 * elements. V = 4 needs dim % 4 == 0 and 16-byte aligned x, y. */
template <int MODE, int V>
__global__ void __launch_bounds__(NT) k_rownorm(float *y, const float *x, int64_t rows, int64_t dim, const float *w,
                                                const float *b, float eps, const float *shift, const float *scale,
                                                int64_t rpg, int64_t gs) {
    __shared__ float sh[NT / GPU_WARP];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        float mu = 0.0f;
        if (MODE != RN_RMS) {
            float s = 0.0f;
            for (int64_t j = (int64_t)threadIdx.x * V; j < dim; j += (int64_t)NT * V) {
                float v[V];
                ldv<V>(v, xr + j);
#pragma unroll
                for (int k = 0; k < V; k++) s += v[k];
            }
            mu = block_reduce<false>(s, sh) / (float)dim;
        }
        float q = 0.0f;
        for (int64_t j = (int64_t)threadIdx.x * V; j < dim; j += (int64_t)NT * V) {
            float v[V];
            ldv<V>(v, xr + j);
#pragma unroll
            for (int k = 0; k < V; k++) {
                float d = v[k] - mu;
                q += d * d;
            }
        }
        const float rs = 1.0f / sqrtf(block_reduce<false>(q, sh) / (float)dim + eps);
        const float *shr = nullptr, *scr = nullptr;
        if (MODE == RN_MOD) {
            int64_t off = (rpg > 0 ? r / rpg : 0) * gs;
            shr = shift + off;
            scr = scale + off;
        }
        for (int64_t j = (int64_t)threadIdx.x * V; j < dim; j += (int64_t)NT * V) {
            float v[V], o[V];
            ldv<V>(v, xr + j);
#pragma unroll
            for (int k = 0; k < V; k++) {
                float t;
                if (MODE == RN_LN) {
                    t = (v[k] - mu) * rs;
                    if (w) t *= w[j + k];
                    if (b) t += b[j + k];
                } else if (MODE == RN_RMS) {
                    t = v[k] * rs;
                    if (w) t = t * w[j + k];
                } else {
                    t = (v[k] - mu) * rs * (1.0f + scr[j + k]) + shr[j + k];
                }
                o[k] = t;
            }
            stv<V>(yr + j, o);
        }
    }
}

template <int MODE>
void launch_rownorm(const char *what, float *y, const float *x, int64_t rows, int64_t dim, const float *w,
                    const float *b, float eps, const float *shift, const float *scale, hb_modgroups g) {
    const unsigned grid = row_blocks(rows);
    const bool v4 = dim % 4 == 0 && al16(x) && al16(y);
    if (v4)
        k_rownorm<MODE, 4><<<grid, NT, 0, hbg_stream()>>>(y, x, rows, dim, w, b, eps, shift, scale, g.rows_per_group,
                                                          g.group_stride);
    else
        k_rownorm<MODE, 1><<<grid, NT, 0, hbg_stream()>>>(y, x, rows, dim, w, b, eps, shift, scale, g.rows_per_group,
                                                          g.group_stride);
    HBG_LAUNCHED(what);
}

/* ---------- softmax ---------- */

template <int V> __global__ void __launch_bounds__(NT) k_softmax(float *x, int64_t rows, int64_t n) {
    __shared__ float sh[NT / GPU_WARP];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float *xr = x + r * n;
        float mx = -INFINITY;
        for (int64_t j = (int64_t)threadIdx.x * V; j < n; j += (int64_t)NT * V) {
            float v[V];
            ldv<V>(v, xr + j);
#pragma unroll
            for (int k = 0; k < V; k++) mx = v[k] > mx ? v[k] : mx;
        }
        mx = block_reduce<true>(mx, sh);
        if (mx == -INFINITY) mx = 0.0f; /* as the CPU: all -inf rows give NaN, never inf - inf */
        float s = 0.0f;
        for (int64_t j = (int64_t)threadIdx.x * V; j < n; j += (int64_t)NT * V) {
            float v[V];
            ldv<V>(v, xr + j);
#pragma unroll
            for (int k = 0; k < V; k++) {
                v[k] = expf(v[k] - mx);
                s += v[k];
            }
            stv<V>(xr + j, v);
        }
        const float inv = 1.0f / block_reduce<false>(s, sh);
        for (int64_t j = (int64_t)threadIdx.x * V; j < n; j += (int64_t)NT * V) {
            float v[V];
            ldv<V>(v, xr + j);
#pragma unroll
            for (int k = 0; k < V; k++) v[k] *= inv;
            stv<V>(xr + j, v);
        }
    }
}

/* ---------- channel rmsnorm on [C, S]: one thread per V positions, looping over channels ---------- */

template <int V>
__global__ void k_crms(float *y, const float *x, int64_t C, int64_t S, const float *g, const float *b, float sc) {
    const int64_t nv = S / V;
    for (int64_t i = gtid(); i < nv; i += gstride()) {
        const int64_t s = i * V;
        float ss[V];
#pragma unroll
        for (int k = 0; k < V; k++) ss[k] = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float v[V];
            ldv<V>(v, x + c * S + s);
#pragma unroll
            for (int k = 0; k < V; k++) ss[k] += v[k] * v[k];
        }
        float inv[V];
#pragma unroll
        for (int k = 0; k < V; k++) inv[k] = 1.0f / fmaxf(sqrtf(ss[k]), 1e-12f);
        for (int64_t c = 0; c < C; c++) {
            const float gc = sc * (g ? g[c] : 1.0f), bc = b ? b[c] : 0.0f;
            float v[V];
            ldv<V>(v, x + c * S + s);
#pragma unroll
            for (int k = 0; k < V; k++) v[k] = v[k] * inv[k] * gc + bc;
            stv<V>(y + c * S + s, v);
        }
    }
}

/* ---------- gated residual: x += y * gate[group(r)] ---------- */

template <int V>
__global__ void k_gadd(float *x, const float *y, int64_t rows, int64_t dim, const float *gate, int64_t rpg, int64_t gs) {
    const int64_t nv = rows * dim / V;
    for (int64_t i = gtid(); i < nv; i += gstride()) {
        const int64_t e = i * V, r = e / dim, j = e - r * dim;
        const float *gt = gate + (rpg > 0 ? r / rpg : 0) * gs + j;
        float a[V], c[V];
        ldv<V>(a, x + e);
        ldv<V>(c, y + e);
#pragma unroll
        for (int k = 0; k < V; k++) a[k] += c[k] * gt[k];
        stv<V>(x + e, a);
    }
}

/* ---------- elementwise ---------- */

template <int OP> __device__ __forceinline__ float ew_f(float a, float b, float al, float be) {
    if constexpr (OP == HB_EW_SILU) {
        return a / (1.0f + expf(-a));
    } else if constexpr (OP == HB_EW_GELU_TANH) { /* x * sigmoid(2u), as the CPU's vector path */
        float u = -1.5957691216057308f * (0.044715f * (a * a * a) + a);
        return a / (1.0f + expf(u));
    } else if constexpr (OP == HB_EW_ADD) {
        return a + b;
    } else if constexpr (OP == HB_EW_MUL) {
        return a * b;
    } else if constexpr (OP == HB_EW_AXPBY) {
        return al * a + be * b;
    } else if constexpr (OP == HB_EW_AXPBY_F64) {
        return (float)((double)al * (double)a + (double)be * (double)b);
    } else if constexpr (OP == HB_EW_RELU) {
        return a > 0.0f ? a : 0.0f;
    } else if constexpr (OP == HB_EW_TANH3) {
        return tanhf(a / 3.0f) * 3.0f;
    } else if constexpr (OP == HB_EW_ADD_RELU) {
        float v = a + b;
        return v > 0.0f ? v : 0.0f;
    } else if constexpr (OP == HB_EW_CLAMP01) {
        return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a;
    } else { /* HB_EW_CLAMP: comparisons only (NaN passes through), as the CPU */
        return a < al ? al : a > be ? be : a;
    }
}

template <int OP> __host__ __device__ constexpr bool ew_binary() {
    return OP == HB_EW_ADD || OP == HB_EW_MUL || OP == HB_EW_AXPBY || OP == HB_EW_ADD_RELU || OP == HB_EW_AXPBY_F64;
}

/* V = 4: the first n/4*4 elements as float4, the rest (< 4) by the first threads of block 0. */
template <int OP, int V>
__global__ void k_ew(float *y, const float *a, const float *b, float al, float be, int64_t n) {
    constexpr bool BIN = ew_binary<OP>();
    const int64_t nv = n / V;
    for (int64_t i = gtid(); i < nv; i += gstride()) {
        float va[V], vb[V], o[V];
        ldv<V>(va, a + i * V);
        if (BIN) ldv<V>(vb, b + i * V);
#pragma unroll
        for (int k = 0; k < V; k++) o[k] = ew_f<OP>(va[k], BIN ? vb[k] : 0.0f, al, be);
        stv<V>(y + i * V, o);
    }
    if (V > 1 && blockIdx.x == 0 && (int64_t)threadIdx.x < n - nv * V) {
        const int64_t k = nv * V + threadIdx.x;
        y[k] = ew_f<OP>(a[k], BIN ? b[k] : 0.0f, al, be);
    }
}

template <int OP> void launch_ew(float *y, const float *a, const float *b, float al, float be, int64_t n) {
    const bool v4 = al16(y) && al16(a) && (!ew_binary<OP>() || al16(b));
    if (v4)
        k_ew<OP, 4><<<hbg_blocks(n / 4 > 0 ? n / 4 : 1, NT), NT, 0, hbg_stream()>>>(y, a, b, al, be, n);
    else
        k_ew<OP, 1><<<hbg_blocks(n, NT), NT, 0, hbg_stream()>>>(y, a, b, al, be, n);
}

/* ---------- RoPE ---------- */

/* One thread per (token, head, pair). Pair q belongs to the frame axis (q < np0), the row axis (next np1) or
 * the column axis (last np1); tab[off_a + pos * np_a + j] holds (cos, sin) of that axis' pair j at pos.
 * The product is done in float64 without fused multiply-adds, as the CPU does it, and rounded once. */
__global__ void k_rope3d(float *x, int64_t L, int heads, int d, int64_t stride, int H, int W, int f0, int np0,
                         int np1, const double2 *tab, int64_t off0, int64_t off1, int64_t off2) {
    const int c = np0 + 2 * np1;
    const int64_t hw = (int64_t)H * W, total = L * heads * c;
    for (int64_t idx = gtid(); idx < total; idx += gstride()) {
        const int q = (int)(idx % c);
        const int64_t t = idx / c;
        const int h = (int)(t % heads);
        const int64_t i = t / heads;
        int64_t ti;
        if (q < np0) ti = off0 + (f0 + i / hw) * np0 + q;
        else if (q < np0 + np1) ti = off1 + ((i / W) % H) * np1 + (q - np0);
        else ti = off2 + (i % W) * np1 + (q - np0 - np1);
        const double2 cs = tab[ti];
        float *p = x + i * stride + (int64_t)h * d + 2 * q;
        const double xr = p[0], xi = p[1];
        p[0] = (float)__dsub_rn(__dmul_rn(xr, cs.x), __dmul_rn(xi, cs.y));
        p[1] = (float)__dadd_rn(__dmul_rn(xr, cs.y), __dmul_rn(xi, cs.x));
    }
}

/* (cos, sin) of the rope_shift angles, passed by value when they fit (no upload, no wait). */
constexpr int SHIFT_NP_MAX = 128;
struct shift_tab { double cs[2 * SHIFT_NP_MAX]; };

template <bool BYVAL>
__global__ void k_rope_shift(float *x, int64_t rows, int64_t stride, int heads, int d, int np, shift_tab tv,
                             const double *tp) {
    const int64_t total = rows * heads * np;
    for (int64_t idx = gtid(); idx < total; idx += gstride()) {
        const int q = (int)(idx % np);
        const int64_t t = idx / np;
        const int h = (int)(t % heads);
        const int64_t r = t / heads;
        const double c = BYVAL ? tv.cs[2 * q] : tp[2 * q], s = BYVAL ? tv.cs[2 * q + 1] : tp[2 * q + 1];
        float *p = x + r * stride + (int64_t)h * d + 2 * q;
        const double xr = p[0], xi = p[1];
        p[0] = (float)__dsub_rn(__dmul_rn(xr, c), __dmul_rn(xi, s));
        p[1] = (float)__dadd_rn(__dmul_rn(xr, s), __dmul_rn(xi, c));
    }
}

/* ---------- resampling ---------- */

/* y [C, T*ft, H*fh, W*fw], one thread per output element. */
__global__ void k_upsample(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh,
                           int fw) {
    const int64_t To = T * ft, Ho = H * fh, Wo = W * fw, total = C * To * Ho * Wo;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        const int64_t wo = i % Wo, t1 = i / Wo, ho = t1 % Ho, t2 = t1 / Ho, to = t2 % To, c = t2 / To;
        y[i] = x[((c * T + to / ft) * H + ho / fh) * W + wo / fw];
    }
}

/* Pixel (un)shuffle between hi [C, T, H*p, W*p] and lo [C*p*p, T, H, W]: one thread per DESTINATION element
 * (coalesced writes). lo channel lc = c*p*p + (CQR ? q*p + s : s*p + q), q = row offset, s = column offset. */
__global__ void k_pixel_shuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, int crq,
                                int unshuffle) {
    const int64_t Hh = H * p, Wh = W * p, total = C * T * Hh * Wh;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        int64_t c, t, h, w, q, s;
        if (!unshuffle) { /* i indexes hi */
            const int64_t wh = i % Wh, t1 = i / Wh, hh = t1 % Hh, t2 = t1 / Hh;
            t = t2 % T;
            c = t2 / T;
            h = hh / p; q = hh % p;
            w = wh / p; s = wh % p;
        } else { /* i indexes lo [C*p*p, T, H, W] */
            w = i % W;
            const int64_t t1 = i / W;
            h = t1 % H;
            const int64_t t2 = t1 / H;
            t = t2 % T;
            const int64_t lc = t2 / T, pp = (int64_t)p * p, rem = lc % pp;
            c = lc / pp;
            if (crq) { s = rem / p; q = rem % p; }
            else { q = rem / p; s = rem % p; }
        }
        const int64_t lc = c * p * p + (crq ? s * p + q : q * p + s);
        const int64_t hi = ((c * T + t) * Hh + h * p + q) * Wh + w * p + s;
        const int64_t lo = ((lc * T + t) * H + h) * W + w;
        if (unshuffle) y[lo] = x[hi];
        else y[hi] = x[lo];
    }
}

/* ---------- copies ---------- */

struct nd_geom {
    int n;
    int64_t sh[HB_MAX_DIMS], ds[HB_MAX_DIMS], ss[HB_MAX_DIMS];
};

/* One thread per V elements; with V = 4 the last dim is contiguous on both sides and counted in float4s. */
template <int V> __global__ void k_copy_nd(float *dst, const float *src, nd_geom g, int64_t total) {
    for (int64_t i = gtid(); i < total; i += gstride()) {
        int64_t rem = i, od = 0, os = 0;
        for (int d = g.n - 1; d >= 0; d--) {
            const int64_t k = rem % g.sh[d];
            rem /= g.sh[d];
            od += k * g.ds[d];
            os += k * g.ss[d];
        }
        if constexpr (V == 4) *reinterpret_cast<float4 *>(dst + od) = *reinterpret_cast<const float4 *>(src + os);
        else dst[od] = src[os];
    }
}

template <int V> __global__ void k_fill(float *y, float v, int64_t n) {
    const int64_t nv = n / V;
    for (int64_t i = gtid(); i < nv; i += gstride()) {
        float o[V];
#pragma unroll
        for (int k = 0; k < V; k++) o[k] = v;
        stv<V>(y + i * V, o);
    }
    if (V > 1 && blockIdx.x == 0 && (int64_t)threadIdx.x < n - nv * V) y[nv * V + threadIdx.x] = v;
}

template <int V>
__global__ void k_add_vec(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t n, const float *v) {
    const int64_t nv = n / V, total = rows * nv;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        const int64_t r = i / nv, j = (i - r * nv) * V;
        float a[V];
        ldv<V>(a, x + r * ldx + j);
#pragma unroll
        for (int k = 0; k < V; k++) a[k] += v[j + k];
        stv<V>(y + r * ldy + j, a);
    }
}

template <int V>
__global__ void k_channel_affine(float *y, const float *x, int64_t C, int64_t S, const float *sc, const float *sh) {
    const int64_t total = C * S / V;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        const int64_t e = i * V, c = e / S;
        const float k = sc ? sc[c] : 1.0f, d = sh ? sh[c] : 0.0f;
        float a[V];
        ldv<V>(a, x + e);
#pragma unroll
        for (int m = 0; m < V; m++) a[m] = a[m] * k + d;
        stv<V>(y + e, a);
    }
}

/* Rows of a device-resident f32 table (any strides). */
__global__ void k_embed(float *y, const float *table, int64_t s0, int64_t s1, const int32_t *ids, int64_t n, int64_t D) {
    const int64_t total = n * D;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        const int64_t r = i / D, j = i % D;
        y[i] = table[(int64_t)ids[r] * s0 + j * s1];
    }
}

/* ---------- dtype conversion ---------- */

template <int DT> __device__ __forceinline__ float load_as_f32(const void *p, int64_t i) {
    if constexpr (DT == HB_F32) return static_cast<const float *>(p)[i];
    else if constexpr (DT == HB_BF16) return bf16_to_f32(static_cast<const uint16_t *>(p)[i]);
    else return f16_to_f32(static_cast<const uint16_t *>(p)[i]);
}
template <int DT> __device__ __forceinline__ void store_from_f32(void *p, int64_t i, float v) {
    if constexpr (DT == HB_F32) static_cast<float *>(p)[i] = v;
    else if constexpr (DT == HB_BF16) static_cast<uint16_t *>(p)[i] = f32_to_bf16(v);
    else static_cast<uint16_t *>(p)[i] = f32_to_f16(v);
}
template <int DT, int ST> __global__ void k_convert(void *dst, const void *src, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) store_from_f32<DT>(dst, i, load_as_f32<ST>(src, i));
}

/* f32 -> bf16, 4 at a time when aligned (16-byte source, 8-byte destination). */
template <int V> __global__ void k_to_bf16(uint16_t *dst, const float *src, int64_t n) {
    const int64_t nv = n / V;
    for (int64_t i = gtid(); i < nv; i += gstride()) {
        float v[V];
        ldv<V>(v, src + i * V);
        if constexpr (V == 4) {
            uint2 o;
            o.x = (uint32_t)f32_to_bf16(v[0]) | ((uint32_t)f32_to_bf16(v[1]) << 16);
            o.y = (uint32_t)f32_to_bf16(v[2]) | ((uint32_t)f32_to_bf16(v[3]) << 16);
            *reinterpret_cast<uint2 *>(dst + i * V) = o;
        } else {
            dst[i] = f32_to_bf16(v[0]);
        }
    }
    if (V > 1 && blockIdx.x == 0 && (int64_t)threadIdx.x < n - nv * V) {
        const int64_t k = nv * V + threadIdx.x;
        dst[k] = f32_to_bf16(src[k]);
    }
}

} // namespace

/* ---------- entry points ---------- */

void hbg_layernorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, const hb_tensor *b,
                   float eps) {
    if (rows <= 0 || dim <= 0) return;
    const float *wd, *bd;
    if (!param_vec(w, dim, "hb_layernorm", "the weight", &wd) || !param_vec(b, dim, "hb_layernorm", "the bias", &bd))
        return;
    launch_rownorm<RN_LN>("hb_layernorm", y, x, rows, dim, wd, bd, eps, nullptr, nullptr, hb_modgroups{0, 0});
}

void hbg_rmsnorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, float eps) {
    if (rows <= 0 || dim <= 0) return;
    const float *wd;
    if (!param_vec(w, dim, "hb_rmsnorm", "the weight", &wd)) return;
    launch_rownorm<RN_RMS>("hb_rmsnorm", y, x, rows, dim, wd, nullptr, eps, nullptr, nullptr, hb_modgroups{0, 0});
}

void hbg_layernorm_modulate(float *y, const float *x, int64_t rows, int64_t dim, float eps, const float *shift,
                            const float *scale, hb_modgroups g) {
    if (rows <= 0 || dim <= 0) return;
    launch_rownorm<RN_MOD>("hb_layernorm_modulate", y, x, rows, dim, nullptr, nullptr, eps, shift, scale, g);
}

void hbg_channel_rmsnorm(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *gamma, const hb_tensor *beta) {
    if (C <= 0 || S <= 0) return;
    const float *g, *b;
    if (!param_vec(gamma, C, "hb_channel_rmsnorm", "gamma", &g) || !param_vec(beta, C, "hb_channel_rmsnorm", "beta", &b))
        return;
    const float sc = sqrtf((float)C);
    if (S % 4 == 0 && al16(x) && al16(y))
        k_crms<4><<<hbg_blocks(S / 4, NT), NT, 0, hbg_stream()>>>(y, x, C, S, g, b, sc);
    else
        k_crms<1><<<hbg_blocks(S, NT), NT, 0, hbg_stream()>>>(y, x, C, S, g, b, sc);
    HBG_LAUNCHED("hb_channel_rmsnorm");
}

void hbg_gated_add(float *x, const float *y, int64_t rows, int64_t dim, const float *gate, hb_modgroups g) {
    if (rows <= 0 || dim <= 0) return;
    const int64_t n = rows * dim;
    if (dim % 4 == 0 && al16(x) && al16(y))
        k_gadd<4><<<hbg_blocks(n / 4, NT), NT, 0, hbg_stream()>>>(x, y, rows, dim, gate, g.rows_per_group,
                                                                 g.group_stride);
    else
        k_gadd<1><<<hbg_blocks(n, NT), NT, 0, hbg_stream()>>>(x, y, rows, dim, gate, g.rows_per_group, g.group_stride);
    HBG_LAUNCHED("hb_gated_add");
}

void hbg_elementwise(hb_ew_op op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n) {
    if (n <= 0) return;
    switch (op) {
    case HB_EW_SILU: launch_ew<HB_EW_SILU>(y, a, b, alpha, beta, n); break;
    case HB_EW_GELU_TANH: launch_ew<HB_EW_GELU_TANH>(y, a, b, alpha, beta, n); break;
    case HB_EW_ADD: launch_ew<HB_EW_ADD>(y, a, b, alpha, beta, n); break;
    case HB_EW_MUL: launch_ew<HB_EW_MUL>(y, a, b, alpha, beta, n); break;
    case HB_EW_AXPBY: launch_ew<HB_EW_AXPBY>(y, a, b, alpha, beta, n); break;
    case HB_EW_RELU: launch_ew<HB_EW_RELU>(y, a, b, alpha, beta, n); break;
    case HB_EW_TANH3: launch_ew<HB_EW_TANH3>(y, a, b, alpha, beta, n); break;
    case HB_EW_ADD_RELU: launch_ew<HB_EW_ADD_RELU>(y, a, b, alpha, beta, n); break;
    case HB_EW_CLAMP01: launch_ew<HB_EW_CLAMP01>(y, a, b, alpha, beta, n); break;
    case HB_EW_CLAMP: launch_ew<HB_EW_CLAMP>(y, a, b, alpha, beta, n); break;
    case HB_EW_AXPBY_F64: launch_ew<HB_EW_AXPBY_F64>(y, a, b, alpha, beta, n); break;
    default: hbg_fail("hb_elementwise: unknown op %d", (int)op); return;
    }
    HBG_LAUNCHED("hb_elementwise");
}

void hbg_softmax(float *x, int64_t rows, int64_t n) {
    if (rows <= 0 || n <= 0) return;
    if (n % 4 == 0 && al16(x)) k_softmax<4><<<row_blocks(rows), NT, 0, hbg_stream()>>>(x, rows, n);
    else k_softmax<1><<<row_blocks(rows), NT, 0, hbg_stream()>>>(x, rows, n);
    HBG_LAUNCHED("hb_softmax");
}

void hbg_rope3d(float *x, int64_t L, int heads, int head_dim, int64_t stride, int H, int W, int f0) {
    if (L <= 0 || heads <= 0 || head_dim < 2 || H <= 0 || W <= 0) return;
    const int c = head_dim / 2, np1 = c / 3, np0 = c - 2 * np1;
    const int64_t hw = (int64_t)H * W, nf = (L + hw - 1) / hw;
    int64_t off[3];
    const double *tab = hbg_rope_table(head_dim, f0, f0 + nf, H, W, off);
    if (!tab) return;
    const int64_t total = L * heads * c;
    k_rope3d<<<hbg_blocks(total, NT), NT, 0, hbg_stream()>>>(x, L, heads, head_dim, stride, H, W, f0, np0, np1,
                                                            reinterpret_cast<const double2 *>(tab), off[0], off[1],
                                                            off[2]);
    HBG_LAUNCHED("hb_rope3d");
}

void hbg_rope_shift(float *x, int64_t rows, int64_t stride, int heads, int head_dim, int np, double delta) {
    if (rows <= 0 || np <= 0 || heads <= 0) return;
    if (2 * np > head_dim) {
        hbg_fail("hb_rope_shift: %d pairs do not fit a head of %d", np, head_dim);
        return;
    }
    /* Same angles as the CPU: delta * (1 / 10000^(2q / (2 np))), in float64. */
    shift_tab tv;
    double *host = np <= SHIFT_NP_MAX ? tv.cs : (double *)malloc(sizeof(double) * 2 * (size_t)np);
    if (!host) { hbg_fail("hb_rope_shift: out of host memory"); return; }
    for (int q = 0; q < np; q++) {
        double a = delta * (1.0 / pow(10000.0, (double)(2 * q) / (double)(2 * np)));
        host[2 * q] = cos(a);
        host[2 * q + 1] = sin(a);
    }
    const int64_t total = rows * heads * np;
    if (np <= SHIFT_NP_MAX) {
        for (int q = 2 * np; q < 2 * SHIFT_NP_MAX; q++) tv.cs[q] = 0.0;
        k_rope_shift<true><<<hbg_blocks(total, NT), NT, 0, hbg_stream()>>>(x, rows, stride, heads, head_dim, np, tv,
                                                                          nullptr);
    } else {
        const size_t bytes = sizeof(double) * 2 * (size_t)np;
        double *dev = (double *)hbg_scratch(HBG_SCRATCH_SLOTS - 1, bytes);
        int rc = dev ? hbg_upload_sync(dev, host, bytes, "hb_rope_shift: uploading the angles") : -1;
        free(host);
        if (rc) return;
        memset(&tv, 0, sizeof tv);
        k_rope_shift<false><<<hbg_blocks(total, NT), NT, 0, hbg_stream()>>>(x, rows, stride, heads, head_dim, np, tv,
                                                                           dev);
    }
    HBG_LAUNCHED("hb_rope_shift");
}

void hbg_upsample_nearest(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh, int fw) {
    if (C <= 0 || T <= 0 || H <= 0 || W <= 0 || ft < 1 || fh < 1 || fw < 1) return;
    const int64_t total = C * T * ft * H * fh * W * fw;
    k_upsample<<<hbg_blocks(total, NT), NT, 0, hbg_stream()>>>(y, x, C, T, H, W, ft, fh, fw);
    HBG_LAUNCHED("hb_upsample_nearest");
}

void hbg_pixel_shuffle_any(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o,
                           bool unshuffle) {
    if (C <= 0 || T <= 0 || H <= 0 || W <= 0 || p < 1) return;
    const int64_t total = C * T * H * p * W * p;
    k_pixel_shuffle<<<hbg_blocks(total, NT), NT, 0, hbg_stream()>>>(y, x, C, T, H, W, p, o == HB_PS_CRQ ? 1 : 0,
                                                                   unshuffle ? 1 : 0);
    HBG_LAUNCHED(unshuffle ? "hb_pixel_unshuffle" : "hb_pixel_shuffle");
}

void hbg_copy_nd(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int ndim,
                 const int64_t *shape) {
    if (ndim < 1 || ndim > HB_MAX_DIMS) return;
    for (int d = 0; d < ndim; d++)
        if (shape[d] <= 0) return;
    /* Drop size-1 dims and merge dims that are contiguous with the next one on both sides. */
    nd_geom g;
    memset(&g, 0, sizeof g);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        if (g.n > 0 && g.ds[g.n - 1] == dst_stride[d] * shape[d] && g.ss[g.n - 1] == src_stride[d] * shape[d]) {
            g.sh[g.n - 1] *= shape[d];
            g.ds[g.n - 1] = dst_stride[d];
            g.ss[g.n - 1] = src_stride[d];
        } else {
            g.sh[g.n] = shape[d];
            g.ds[g.n] = dst_stride[d];
            g.ss[g.n] = src_stride[d];
            g.n++;
        }
    }
    if (g.n == 0) { g.n = 1; g.sh[0] = 1; g.ds[0] = 1; g.ss[0] = 1; }
    const int last = g.n - 1;
    int64_t total = 1;
    for (int d = 0; d < g.n; d++) total *= g.sh[d];
    if (g.n == 1 && g.ds[0] == 1 && g.ss[0] == 1) {
        hbg_check(gpuMemcpyAsync(dst, src, sizeof(float) * (size_t)total, gpuMemcpyDeviceToDevice, hbg_stream()),
                  "hb_copy_nd");
        return;
    }
    bool v4 = g.ds[last] == 1 && g.ss[last] == 1 && g.sh[last] % 4 == 0 && al16(dst) && al16(src);
    for (int d = 0; d < last && v4; d++) v4 = g.ds[d] % 4 == 0 && g.ss[d] % 4 == 0;
    if (v4) {
        g.sh[last] /= 4;
        g.ds[last] = 4;
        g.ss[last] = 4;
        k_copy_nd<4><<<hbg_blocks(total / 4, NT), NT, 0, hbg_stream()>>>(dst, src, g, total / 4);
    } else {
        k_copy_nd<1><<<hbg_blocks(total, NT), NT, 0, hbg_stream()>>>(dst, src, g, total);
    }
    HBG_LAUNCHED("hb_copy_nd");
}

void hbg_fill(float *dst, float value, int64_t n) {
    if (n <= 0) return;
    uint32_t bits;
    memcpy(&bits, &value, 4);
    if (bits == 0) {
        hbg_check(gpuMemsetAsync(dst, 0, sizeof(float) * (size_t)n, hbg_stream()), "hb_fill");
        return;
    }
    if (al16(dst)) k_fill<4><<<hbg_blocks(n / 4 > 0 ? n / 4 : 1, NT), NT, 0, hbg_stream()>>>(dst, value, n);
    else k_fill<1><<<hbg_blocks(n, NT), NT, 0, hbg_stream()>>>(dst, value, n);
    HBG_LAUNCHED("hb_fill");
}

void hbg_add_vec(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t n, const hb_tensor *v) {
    if (rows <= 0 || n <= 0) return;
    const float *vd;
    if (!v) { hbg_fail("hb_add_vec: missing vector"); return; }
    if (!param_vec(v, n, "hb_add_vec", "the vector", &vd)) return;
    if (n % 4 == 0 && ldy % 4 == 0 && ldx % 4 == 0 && al16(y) && al16(x))
        k_add_vec<4><<<hbg_blocks(rows * (n / 4), NT), NT, 0, hbg_stream()>>>(y, ldy, x, ldx, rows, n, vd);
    else
        k_add_vec<1><<<hbg_blocks(rows * n, NT), NT, 0, hbg_stream()>>>(y, ldy, x, ldx, rows, n, vd);
    HBG_LAUNCHED("hb_add_vec");
}

void hbg_channel_affine(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *scale, const hb_tensor *shift) {
    if (C <= 0 || S <= 0) return;
    const float *sc, *sh;
    if (!param_vec(scale, C, "hb_channel_affine", "the scale", &sc) ||
        !param_vec(shift, C, "hb_channel_affine", "the shift", &sh))
        return;
    if (S % 4 == 0 && al16(x) && al16(y))
        k_channel_affine<4><<<hbg_blocks(C * S / 4, NT), NT, 0, hbg_stream()>>>(y, x, C, S, sc, sh);
    else
        k_channel_affine<1><<<hbg_blocks(C * S, NT), NT, 0, hbg_stream()>>>(y, x, C, S, sc, sh);
    HBG_LAUNCHED("hb_channel_affine");
}

/* Host tables (mapped checkpoints; the umT5 vocabulary is 256k x 4096) are never uploaded whole: the rows
 * asked for are converted on the host exactly as the CPU does and uploaded. A table already in device memory
 * (contiguous or strided F32) is gathered on the device. */
int hbg_embed_rows(float *y, const hb_tensor *table, const int32_t *ids, int64_t n) {
    const int64_t D = table->shape[1]; /* table and ids checked by the dispatcher */
    if (n <= 0 || D <= 0) return 0;
    if (gpuIsDevicePointer(table->data)) {
        if (table->dtype != HB_F32)
            return hb_error("hb_embed_rows: a device-resident table must be F32 (got %s)", hb_dtype_name(table->dtype));
        int32_t *dids = (int32_t *)hbg_scratch(HBG_SCRATCH_SLOTS - 1, sizeof(int32_t) * (size_t)n);
        if (!dids || hbg_upload_sync(dids, ids, sizeof(int32_t) * (size_t)n, "hb_embed_rows: uploading the ids"))
            return hb_error("hb_embed_rows: %s", "cannot stage the ids on the device (see the backend's sync error)");
        k_embed<<<hbg_blocks(n * D, NT), NT, 0, hbg_stream()>>>(y, (const float *)table->data, table->stride[0],
                                                               table->stride[1], dids, n, D);
        return HBG_LAUNCHED("hb_embed_rows") ? hb_error("hb_embed_rows: the launch failed") : 0;
    }
    float *host = (float *)hb_malloc(sizeof(float) * (size_t)(n * D), "hb_embed_rows staging buffer");
    if (!host) return -1;
    for (int64_t i = 0; i < n; i++) hb__weight_rows_f32(table, ids[i], 1, 0, D, host + i * D, D);
    int rc = hbg_upload_sync(y, host, sizeof(float) * (size_t)(n * D), "hb_embed_rows: uploading the rows");
    hb_free(host);
    return rc ? hb_error("hb_embed_rows: uploading %lld rows failed", (long long)n) : 0;
}

int hbg_convert(void *dst, hb_dtype dt, const void *src, hb_dtype st, int64_t n) {
    if (n <= 0) return 0; /* dtypes checked by the dispatcher */
    if (dt == st) {
        if (hbg_check(gpuMemcpyAsync(dst, src, hb_dtype_size(dt) * (size_t)n, gpuMemcpyDeviceToDevice, hbg_stream()),
                      "hb_convert"))
            return hb_error("hb_convert: the device copy failed");
        return 0;
    }
    if (dt == HB_BF16 && st == HB_F32) {
        hbg_to_bf16((gpu_bf16 *)dst, (const float *)src, n);
        return 0;
    }
    const unsigned grid = hbg_blocks(n, NT);
    gpuStream_t s = hbg_stream();
#define HBG_CONV(D, S) \
    if (dt == D && st == S) k_convert<D, S><<<grid, NT, 0, s>>>(dst, src, n);
    HBG_CONV(HB_F32, HB_BF16)
    HBG_CONV(HB_F32, HB_F16)
    HBG_CONV(HB_F16, HB_F32)
    HBG_CONV(HB_F16, HB_BF16)
    HBG_CONV(HB_BF16, HB_F16)
#undef HBG_CONV
    return HBG_LAUNCHED("hb_convert") ? hb_error("hb_convert: the launch failed") : 0;
}

void hbg_to_bf16(gpu_bf16 *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    uint16_t *d = reinterpret_cast<uint16_t *>(dst);
    if (al16(src) && al8(d))
        k_to_bf16<4><<<hbg_blocks(n / 4 > 0 ? n / 4 : 1, NT), NT, 0, hbg_stream()>>>(d, src, n);
    else
        k_to_bf16<1><<<hbg_blocks(n, NT), NT, 0, hbg_stream()>>>(d, src, n);
    HBG_LAUNCHED("hbg_to_bf16");
}
