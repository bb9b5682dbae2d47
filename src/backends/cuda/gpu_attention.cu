/* Attention on the GPU: out[Lq, heads, d] = softmax(q k^T * scale + bias (+ key mask)) v, fused flash-attention
 * style (online softmax, no Lq x Lk matrix in memory), same semantics as hb_cpu_attention (ops.h):
 *   - scores s = (q * scale) . k, then + bias[h, i, j] when given, then + (-FLT_MAX) for a masked key (key_mask 0);
 *   - keys past Lk (the tail of the last tile) are excluded (-inf); an all -inf row gives zeros;
 *   - lk == 0 writes zeros.
 *
 * Two kernels:
 *   attn_wmma<D>: the fast path (CUDA, sm_80+). Head dims up to 128, zero-padded to D = the next multiple of 16
 *     (zero Q/K channels add nothing to S; zero V channels give output channels that are never written). One CTA =
 *     one head x BQ = 64 queries, 4 warps x 16 query rows; keys in tiles of BK = 64. Q (pre-scaled), K and V are
 *     converted to bf16 on their way to shared memory; S = Q K^T and O += P V run on tensor cores (wmma
 *     16x16x16 bf16, f32 accumulate); softmax statistics are f32 in registers (two lanes per row); O is f32 in
 *     shared memory (wmma's fragment layout is opaque, so rows are rescaled there).
 *   attn_f32<NJ>: plain f32 (CUDA cores), any head_dim <= 1024: the HIP path (wmma is CUDA-only), head dims above
 *     128 (the Wan VAE's single-head attention over 384..1024 channels), pre-sm_80 devices, and the precise mode
 *     (env HB_GPU_PRECISE=1 or HB_GPU_ATTN_F32=1) used to check golden files at f32 accuracy. One warp per query;
 *     K then V tiles of 32 keys share one shared-memory buffer; lane = key for the scores, lane = channel for O.
 * Padding d to a multiple of 16 (instead of a fallback for small dims) keeps the tiny test models (head_dim 16)
 * on the fast path, so golden runs exercise it; the f32 kernel is needed anyway for d > 128 and for HIP. */
#include "backends/cuda/gpu_internal.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if !defined(HB_HIP)
#include <mma.h>
#endif

/* ---------- small pieces of index arithmetic and softmax logic (host + device; exercised by a host test) ------- */
#define HBG_ATTN_BQ 64      /* fast path: queries per CTA */
#define HBG_ATTN_BK 64      /* fast path: keys per tile */
#define HBG_ATTN_WARPS 4    /* fast path: warps per CTA (16 query rows each) */
#define HBG_ATTN_FB_KT 32   /* f32 path: keys per tile (one per lane; 16 or 8 when shared memory is short) */
#define HBG_ATTN_FB_MAXD 1024

/* Head dim padded for the fast path (0 if it has none). */
__host__ __device__ inline int hbg_attn_pad_dim(int d) { return d <= 0 || d > 128 ? 0 : (d + 15) / 16 * 16; }

/* Shared-memory layout of attn_wmma<D> in bytes: K, V bf16 [64][D+8]; S f32 [64][BK+4]; P bf16 [64][BK+8];
 * O f32 [64][D+4]; row sums f32 [64]. Q bf16 [64][D+8] is staged in the S region (64*(D+8)*2 <= 64*68*4 bytes for
 * D <= 128): it is read into registers before the first tile's __syncthreads, after which S may be written.
 * D = 128: 95488 bytes (fits the 99 KiB of sm_86/89, two CTAs per SM on sm_90). Every wmma pointer must be
 * 32-byte aligned: each region's size is a multiple of 32 bytes and so is every 16-row / 16-column step inside it
 * (checked by the host test). */
struct hbg_attn_layout {
    int ldq, lds, ldp, ldo;                            /* leading dims in elements */
    int q_off, k_off, v_off, s_off, p_off, o_off, l_off; /* byte offsets */
    int bytes;
};
__host__ __device__ inline hbg_attn_layout hbg_attn_fast_layout(int D) {
    hbg_attn_layout L;
    L.ldq = D + 8;
    L.lds = HBG_ATTN_BK + 4;
    L.ldp = HBG_ATTN_BK + 8;
    L.ldo = D + 4;
    int kv = HBG_ATTN_BK * L.ldq * 2;
    L.k_off = 0;
    L.v_off = L.k_off + kv;
    L.s_off = L.v_off + kv;
    L.q_off = L.s_off; /* staging only (see above) */
    L.p_off = L.s_off + HBG_ATTN_BQ * L.lds * 4;
    L.o_off = L.p_off + HBG_ATTN_BQ * L.ldp * 2;
    L.l_off = L.o_off + HBG_ATTN_BQ * L.ldo * 4;
    L.bytes = L.l_off + HBG_ATTN_BQ * 4;
    return L;
}

/* Softmax ownership in the fast path: lane = 2*r + h owns row r (of its warp's 16) and the key columns
 * h*32 .. h*32+31 of the tile, visited in a skewed order so that the 32 lanes of a step hit 32 different banks of
 * the S rows (row stride BK+4 = 68 floats): bank = (4r + h*32 + ((j + r + 16h) & 31)) mod 32 = (5r + 16h + j) mod 32,
 * a permutation of 0..31 over (r, h). */
__host__ __device__ inline int hbg_attn_skew_col(int r, int h, int j) { return h * 32 + ((j + r + 16 * h) & 31); }

/* Score after bias and key mask, as the CPU kernel computes it; -inf for a key past the end (tail tile). */
__host__ __device__ inline float hbg_attn_adjust(float s, bool key_valid, const float *bias_elem, bool masked) {
    if (!key_valid) return -INFINITY;
    if (bias_elem) s += *bias_elem;
    if (masked) s += -FLT_MAX;
    return s;
}

/* Online softmax step: the new running max from the old one and this tile's max, and the factor that rescales
 * the old sum and output. An all -inf history and tile keeps max -inf with factor 1 (nothing accumulated). */
__host__ __device__ inline void hbg_attn_online(float m_old, float tile_max, float *m_new, float *corr) {
    float m = m_old > tile_max ? m_old : tile_max;
    *m_new = m;
    *corr = m == -INFINITY ? 1.0f : exp2f((m_old - m) * 1.4426950408889634f);
}
/* Probability of a score under the running max m (0 when m is -inf or s is -inf). The difference is taken first so
 * that -FLT_MAX masked scores stay finite (an all-masked row averages its keys, like the CPU). */
__host__ __device__ inline float hbg_attn_prob(float s, float m) {
    return m == -INFINITY ? 0.0f : exp2f((s - m) * 1.4426950408889634f);
}

/* f32 path: row stride of the K/V tile in shared memory, odd so that lane = key reads hit distinct banks. */
__host__ __device__ inline int hbg_attn_fb_ld(int d) { return d % 2 ? d : d + 1; }
__host__ __device__ inline size_t hbg_attn_fb_bytes(int d, int warps, int kt) {
    return sizeof(float) * ((size_t)warps * d + (size_t)kt * hbg_attn_fb_ld(d));
}

/* The kernels work in logical groups of 32 lanes (shuffles with width 32), which is a whole warp on NVIDIA and half
 * a 64-wide wavefront on AMD; every shuffle is executed by all lanes. */
#if defined(HB_HIP)
#define HBG_FULL_MASK 0xffffffffffffffffull
#else
#define HBG_FULL_MASK 0xffffffffu
#endif

namespace {

struct attn_params {
    float *out;
    const float *q, *k, *v;
    int64_t lq, lk;
    int heads, d;
    int64_t o_stride, q_stride, k_stride, v_stride;
    float scale;
    const float *bias;
    const uint8_t *key_mask;
    bool vec4; /* q/k/v rows 16-byte aligned with d % 4 == 0: float4 loads (fast path) */
    int kt;    /* f32 path: keys per tile (<= 32) */
};

#if !defined(HB_HIP)
/* ---------- fast path ---------- */
namespace wmma = nvcuda::wmma;

/* rows [0, 64) of a tile into bf16 dst [64][D+8]: row i from src + i*stride (channels < d, times mul), zero for
 * rows >= nrows and channels >= d. All 128 threads. */
template <int D>
__device__ inline void load_tile_bf16(gpu_bf16 *dst, const float *src, int64_t stride, int64_t nrows, int d, float mul,
                                      bool vec4) {
    constexpr int LD = D + 8;
    if (vec4) {
        constexpr int D4 = D / 4;
        for (int idx = threadIdx.x; idx < HBG_ATTN_BQ * D4; idx += HBG_ATTN_WARPS * 32) {
            int i = idx / D4, c = (idx - i * D4) * 4;
            float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
            if (i < nrows && c < d) x = *reinterpret_cast<const float4 *>(src + (int64_t)i * stride + c);
            __nv_bfloat162 *o = reinterpret_cast<__nv_bfloat162 *>(dst + i * LD + c);
            o[0] = __floats2bfloat162_rn(x.x * mul, x.y * mul);
            o[1] = __floats2bfloat162_rn(x.z * mul, x.w * mul);
        }
    } else {
        for (int idx = threadIdx.x; idx < HBG_ATTN_BQ * D; idx += HBG_ATTN_WARPS * 32) {
            int i = idx / D, c = idx - i * D;
            float x = i < nrows && c < d ? src[(int64_t)i * stride + c] * mul : 0.0f;
            dst[i * LD + c] = __float2bfloat16_rn(x);
        }
    }
}

/* The stages of attn_wmma, one K/V tile at a time (templates on D: instantiated only by the sm_80+ kernel). */
template <int D>
using attn_qfrag = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>[D / 16];

/* This warp's S[16 x BK] = Q_w K^T: K^T(c, j) = Ks[j][c] is a col-major matrix_b with ld D+8. */
template <int D>
__device__ __forceinline__ void attn_scores(attn_qfrag<D> &qf, gpu_bf16 *Ks, float *Ss, const hbg_attn_layout &L,
                                            int warp) {
#pragma unroll
    for (int n = 0; n < HBG_ATTN_BK / 16; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> kf;
            wmma::load_matrix_sync(kf, Ks + n * 16 * L.ldq + kk * 16, L.ldq);
            wmma::mma_sync(acc, qf[kk], kf, acc);
        }
        wmma::store_matrix_sync(Ss + warp * 16 * L.lds + n * 16, acc, L.lds, wmma::mem_row_major);
    }
}

/* Online softmax of this lane's row over the tile's keys k0.. (nk valid), columns hh*32.. (two lanes per row,
 * same values in both): the probabilities into prow (bf16), the row's running max m and sum l updated and its
 * output row rescaled. */
template <int D>
__device__ __forceinline__ void attn_softmax_row(const attn_params &p, float *srow, gpu_bf16 *prow, float *orow,
                                                 const float *brow, int64_t k0, int64_t nk, int r, int hh, float &m,
                                                 float &l) {
    float tmax = -INFINITY;
    for (int j = 0; j < 32; j++) {
        int c = hbg_attn_skew_col(r, hh, j);
        bool valid = c < nk;
        bool masked = valid && p.key_mask && !p.key_mask[k0 + c];
        float s = hbg_attn_adjust(srow[c], valid, valid && brow ? brow + k0 + c : nullptr, masked);
        srow[c] = s;
        tmax = fmaxf(tmax, s);
    }
    tmax = fmaxf(tmax, __shfl_xor_sync(HBG_FULL_MASK, tmax, 1, 32));
    float m_new, corr;
    hbg_attn_online(m, tmax, &m_new, &corr);
    float sum = 0.0f;
    for (int j = 0; j < 32; j++) {
        int c = hbg_attn_skew_col(r, hh, j);
        float pr = hbg_attn_prob(srow[c], m_new);
        prow[c] = __float2bfloat16_rn(pr);
        sum += pr;
    }
    sum += __shfl_xor_sync(HBG_FULL_MASK, sum, 1, 32);
    l = l * corr + sum;
    m = m_new;
    if (corr != 1.0f)
        for (int c = hh; c < D; c += 2) orow[c] *= corr;
}

/* This warp's O_w[16 x D] += P_w[16 x BK] V[BK x D]. */
template <int D>
__device__ __forceinline__ void attn_accumulate_pv(float *Os, gpu_bf16 *Ps, gpu_bf16 *Vs, const hbg_attn_layout &L,
                                                   int warp) {
#pragma unroll
    for (int n = 0; n < D / 16; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        float *ot = Os + warp * 16 * L.ldo + n * 16;
        wmma::load_matrix_sync(acc, ot, L.ldo, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < HBG_ATTN_BK / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pf;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vf;
            wmma::load_matrix_sync(pf, Ps + warp * 16 * L.ldp + kk * 16, L.ldp);
            wmma::load_matrix_sync(vf, Vs + kk * 16 * L.ldq + n * 16, L.ldq);
            wmma::mma_sync(acc, pf, vf, acc);
        }
        wmma::store_matrix_sync(ot, acc, L.ldo, wmma::mem_row_major);
    }
}

/* Coalesced write-back of the block's nq rows: out[q0 + i, head, c] = O[i][c] / l_i (0 when l_i == 0). */
template <int D>
__device__ __forceinline__ void attn_write_out(const attn_params &p, const float *Os, const float *Ls,
                                               const hbg_attn_layout &L, int64_t q0, int64_t nq, int64_t hd) {
    for (int idx = threadIdx.x; idx < HBG_ATTN_BQ * D; idx += HBG_ATTN_WARPS * 32) {
        int i = idx / D, c = idx - i * D;
        if (i < nq && c < p.d) {
            float li = Ls[i];
            p.out[(q0 + i) * p.o_stride + hd + c] = li > 0.0f ? Os[i * L.ldo + c] / li : 0.0f;
        }
    }
}

template <int D>
__global__ void __launch_bounds__(HBG_ATTN_WARPS * 32) attn_wmma(attn_params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    extern __shared__ __align__(128) unsigned char smem[];
    const hbg_attn_layout L = hbg_attn_fast_layout(D);
    gpu_bf16 *Qs = reinterpret_cast<gpu_bf16 *>(smem + L.q_off);
    gpu_bf16 *Ks = reinterpret_cast<gpu_bf16 *>(smem + L.k_off);
    gpu_bf16 *Vs = reinterpret_cast<gpu_bf16 *>(smem + L.v_off);
    float *Ss = reinterpret_cast<float *>(smem + L.s_off);
    gpu_bf16 *Ps = reinterpret_cast<gpu_bf16 *>(smem + L.p_off);
    float *Os = reinterpret_cast<float *>(smem + L.o_off);
    float *Ls = reinterpret_cast<float *>(smem + L.l_off);

    const int head = blockIdx.y;
    const int64_t q0 = (int64_t)blockIdx.x * HBG_ATTN_BQ;
    const int64_t nq = p.lq - q0 < HBG_ATTN_BQ ? p.lq - q0 : HBG_ATTN_BQ;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r = lane >> 1, hh = lane & 1;      /* softmax: this lane's row (of the warp's 16) and column half */
    const int row = warp * 16 + r;               /* row in the CTA's block */
    const int64_t qi = q0 + row;                 /* query index (>= lq: padding row, never written) */
    const int64_t hd = (int64_t)head * p.d;

    load_tile_bf16<D>(Qs, p.q + q0 * p.q_stride + hd, p.q_stride, nq, p.d, p.scale, p.vec4);
    for (int i = threadIdx.x; i < HBG_ATTN_BQ * L.ldo; i += HBG_ATTN_WARPS * 32) Os[i] = 0.0f;
    __syncthreads();

    attn_qfrag<D> qf;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) wmma::load_matrix_sync(qf[kk], Qs + warp * 16 * L.ldq + kk * 16, L.ldq);

    float m = -INFINITY, l = 0.0f;
    const float *brow = p.bias && qi < p.lq ? p.bias + ((int64_t)head * p.lq + qi) * p.lk : nullptr;
    for (int64_t k0 = 0; k0 < p.lk; k0 += HBG_ATTN_BK) {
        const int64_t nk = p.lk - k0 < HBG_ATTN_BK ? p.lk - k0 : HBG_ATTN_BK;
        __syncthreads(); /* every warp is done with the previous K/V tile */
        load_tile_bf16<D>(Ks, p.k + k0 * p.k_stride + hd, p.k_stride, nk, p.d, 1.0f, p.vec4);
        load_tile_bf16<D>(Vs, p.v + k0 * p.v_stride + hd, p.v_stride, nk, p.d, 1.0f, p.vec4);
        __syncthreads();
        attn_scores<D>(qf, Ks, Ss, L, warp);
        __syncwarp();
        attn_softmax_row<D>(p, Ss + row * L.lds, Ps + row * L.ldp, Os + row * L.ldo, brow, k0, nk, r, hh, m, l);
        __syncwarp();
        attn_accumulate_pv<D>(Os, Ps, Vs, L, warp);
        __syncwarp();
    }

    if (hh == 0) Ls[row] = l;
    __syncthreads();
    attn_write_out<D>(p, Os, Ls, L, q0, nq, hd);
#endif
}

/* 0 launched, -1 error (recorded), 1 does not fit this device's shared memory. */
template <int D>
int launch_wmma(const attn_params &p) {
    const hbg_attn_layout L = hbg_attn_fast_layout(D);
    if ((size_t)L.bytes > hbg_props()->sharedMemPerBlockOptin) return 1; /* caller falls back to the f32 kernel */
    if (L.bytes > 48 * 1024 &&
        hbg_check(gpuFuncSetAttribute(attn_wmma<D>, gpuFuncAttributeMaxDynamicSharedMemorySize, L.bytes),
                  "attention: shared memory opt-in"))
        return -1;
    dim3 grid((unsigned)((p.lq + HBG_ATTN_BQ - 1) / HBG_ATTN_BQ), (unsigned)p.heads);
    attn_wmma<D><<<grid, HBG_ATTN_WARPS * 32, L.bytes, hbg_stream()>>>(p);
    return HBG_LAUNCHED("attention (wmma)");
}
#endif /* !HB_HIP */

/* ---------- f32 path ---------- */
template <int NJ>
__global__ void __launch_bounds__(256) attn_f32(attn_params p) {
    extern __shared__ float fsm[];
    const int nw = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int d = p.d, ld = hbg_attn_fb_ld(d);
    float *qs = fsm + warp * d; /* this warp's query, scaled */
    float *kv = fsm + nw * d;   /* [kt][ld]: the K tile, then the V tile */
    const int head = blockIdx.y;
    const int64_t qi = (int64_t)blockIdx.x * nw + warp;
    const bool qvalid = qi < p.lq;
    const int64_t hd = (int64_t)head * d;
    const float *brow = p.bias && qvalid ? p.bias + ((int64_t)head * p.lq + qi) * p.lk : nullptr;

    for (int c = lane; c < d; c += 32) qs[c] = qvalid ? p.q[qi * p.q_stride + hd + c] * p.scale : 0.0f;
    float o[NJ];
#pragma unroll
    for (int j = 0; j < NJ; j++) o[j] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    const int kt = p.kt;
    for (int64_t k0 = 0; k0 < p.lk; k0 += kt) {
        const int nk = p.lk - k0 < kt ? (int)(p.lk - k0) : kt;
        __syncthreads(); /* previous V tile consumed (and, the first time, qs written) */
        for (int idx = threadIdx.x; idx < kt * d; idx += blockDim.x) {
            int i = idx / d, c = idx - i * d;
            kv[i * ld + c] = i < nk ? p.k[(k0 + i) * p.k_stride + hd + c] : 0.0f;
        }
        __syncthreads();
        float s = 0.0f;
        if (lane < kt)
            for (int c = 0; c < d; c++) s += qs[c] * kv[lane * ld + c];
        bool valid = lane < nk;
        bool masked = valid && p.key_mask && !p.key_mask[k0 + lane];
        s = hbg_attn_adjust(s, valid, valid && brow ? brow + k0 + lane : nullptr, masked);
        float tmax = s;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(HBG_FULL_MASK, tmax, off, 32));
        float m_new, corr;
        hbg_attn_online(m, tmax, &m_new, &corr);
        float pr = hbg_attn_prob(s, m_new), sum = pr;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(HBG_FULL_MASK, sum, off, 32);
        l = l * corr + sum;
        m = m_new;
#pragma unroll
        for (int j = 0; j < NJ; j++) o[j] *= corr;
        __syncthreads(); /* every warp is done reading K */
        for (int idx = threadIdx.x; idx < kt * d; idx += blockDim.x) {
            int i = idx / d, c = idx - i * d;
            kv[i * ld + c] = i < nk ? p.v[(k0 + i) * p.v_stride + hd + c] : 0.0f;
        }
        __syncthreads();
        for (int t = 0; t < nk; t++) {
            float pt = __shfl_sync(HBG_FULL_MASK, pr, t, 32);
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                int c = lane + 32 * j;
                if (c < d) o[j] += pt * kv[t * ld + c];
            }
        }
    }
    if (qvalid) {
        float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            int c = lane + 32 * j;
            if (c < d) p.out[qi * p.o_stride + hd + c] = o[j] * inv;
        }
    }
}

/* The most warps (queries) per CTA, then the longest key tile, that fit the device's shared memory. */
__host__ __device__ inline bool hbg_attn_fb_config(int d, size_t limit, int *warps, int *kt) {
    for (*kt = HBG_ATTN_FB_KT; *kt >= 8; *kt /= 2)
        for (*warps = 8; *warps >= 1; *warps /= 2)
            if (hbg_attn_fb_bytes(d, *warps, *kt) <= limit) return true;
    return false;
}

template <int NJ>
int launch_f32(attn_params p) {
    size_t limit = hbg_props()->sharedMemPerBlockOptin;
    int warps = 1;
    if (!hbg_attn_fb_config(p.d, limit, &warps, &p.kt))
        return hbg_fail("attention: head_dim %d needs more than the device's %zu bytes of shared memory", p.d, limit);
    size_t bytes = hbg_attn_fb_bytes(p.d, warps, p.kt);
    if (bytes > 48 * 1024 &&
        hbg_check(gpuFuncSetAttribute(attn_f32<NJ>, gpuFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                  "attention: shared memory opt-in"))
        return -1;
    dim3 grid((unsigned)((p.lq + warps - 1) / warps), (unsigned)p.heads);
    attn_f32<NJ><<<grid, warps * 32, bytes, hbg_stream()>>>(p);
    return HBG_LAUNCHED("attention (f32)");
}

/* out rows = 0 (lk == 0). */
__global__ void zero_rows(float *out, int64_t stride, int64_t rows, int64_t cols) {
    int64_t total = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols;
        out[r * stride + (i - r * cols)] = 0.0f;
    }
}

bool attn_env_flag(const char *name) {
    const char *e = getenv(name);
    return e && e[0] && strcmp(e, "0") != 0;
}

} // namespace

void hbg_attention(const hb_attention_args *a) {
    if (!a || a->lq <= 0 || a->heads <= 0 || a->head_dim <= 0) return;
    if (a->lk <= 0) {
        int64_t cols = (int64_t)a->heads * a->head_dim, total = a->lq * cols;
        int64_t blocks = (total + 255) / 256;
        zero_rows<<<(unsigned)(blocks < 65535 ? blocks : 65535), 256, 0, hbg_stream()>>>(a->out, a->o_stride, a->lq,
                                                                                        cols);
        HBG_LAUNCHED("attention (zero rows)");
        return;
    }
    if (a->heads > 65535) {
        hbg_fail("attention: %d heads (at most 65535)", a->heads);
        return;
    }
    attn_params p;
    p.out = a->out, p.q = a->q, p.k = a->k, p.v = a->v;
    p.lq = a->lq, p.lk = a->lk, p.heads = a->heads, p.d = a->head_dim;
    p.o_stride = a->o_stride, p.q_stride = a->q_stride, p.k_stride = a->k_stride, p.v_stride = a->v_stride;
    p.scale = a->scale, p.bias = a->bias, p.key_mask = a->key_mask;
    uintptr_t al = (uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v;
    p.kt = HBG_ATTN_FB_KT; /* launch_f32 may lower it */
    p.vec4 = a->head_dim % 4 == 0 && al % 16 == 0 && a->q_stride % 4 == 0 && a->k_stride % 4 == 0 &&
             a->v_stride % 4 == 0;

#if !defined(HB_HIP)
    bool precise = attn_env_flag("HB_GPU_PRECISE") || attn_env_flag("HB_GPU_ATTN_F32");
    if (!precise && hbg_props()->major >= 8) {
        int r = 1;
        switch (hbg_attn_pad_dim(a->head_dim)) {
        case 16: r = launch_wmma<16>(p); break;
        case 32: r = launch_wmma<32>(p); break;
        case 48: r = launch_wmma<48>(p); break;
        case 64: r = launch_wmma<64>(p); break;
        case 80: r = launch_wmma<80>(p); break;
        case 96: r = launch_wmma<96>(p); break;
        case 112: r = launch_wmma<112>(p); break;
        case 128: r = launch_wmma<128>(p); break;
        default: break; /* d > 128: f32 path */
        }
        if (r <= 0) return;
    }
#endif
    int d = a->head_dim;
    if (d <= 32) launch_f32<1>(p);
    else if (d <= 64) launch_f32<2>(p);
    else if (d <= 128) launch_f32<4>(p);
    else if (d <= 256) launch_f32<8>(p);
    else if (d <= 512) launch_f32<16>(p);
    else if (d <= HBG_ATTN_FB_MAXD) launch_f32<32>(p);
    else hbg_fail("attention: head_dim %d is above the GPU kernels' limit (%d)", d, HBG_ATTN_FB_MAXD);
}
