/* Conv3d on the GPU (PyTorch Conv3d semantics, same as src/ops/cpu_conv.c: cross-correlation, zero padding per
 * side, strides, groups). x [Cin, T, H, W] and y [Cout, To, Ho, Wo] are f32 device memory; w [Cout, Cin/groups,
 * kt, kh, kw] is a host tensor of any float dtype (uploaded once through hbg_weight); b [Cout] or NULL.
 *
 * Three paths, chosen per call from the shapes:
 *  1. dense (groups == 1, CUDA): implicit GEMM on tensor cores, Y[Cout, P] = Wt[Cout, K] * Col[K, P] with
 *     P = To*Ho*Wo positions and K = ntap*Cin (ntap = kt*kh*kw). K is ordered (tap, ci): the weight is uploaded
 *     as the permuted view [Cout, kt, kh, kw, Cin], so one BK-deep K tile is one tap and BK consecutive input
 *     channels; every thread then needs one bounds test per K tile (zero padding) and its BK-row column of the
 *     im2col tile is BK loads from one base address, THW apart. The im2col tile is gathered straight into shared
 *     memory (never materialised in global memory), rounded to bf16; nvcuda::wmma 16x16x16 bf16 MMAs with f32
 *     accumulation; bias fused into the store. Tiles: BM = 128 (64 when Cout <= 64) x BN = 128 x BK = 32,
 *     256 threads (8 warps as 2 x 4, each BM/2 x 32), two smem stages (37 KB for BM = 128, 27 KB for 64; one
 *     __syncthreads per K tile): the next weight tile goes by cp.async (when Cin % 8 == 0), the next input tile
 *     through registers, both in flight during the current tile's MMAs. 1x1x1 stride-1 unpadded convs (plain
 *     GEMMs) load the input tile with float4 loads.
 *     Input channels that do not fill a K tile (Cin % 32) are zero in both operands.
 *  1f. dense with p->precision == HB_CONV_F32 (training; CUDA and HIP): the same implicit GEMM with f32 operands
 *     and FMAs on the CUDA cores, 64 x 64 tiles, each thread 4 x 4 outputs.
 *  2. depthwise (groups == Cin, Cout a multiple of Cin): direct f32; a block computes 8 (4 on 64-wide
 *     wavefronts) output rows x 32*vw columns of one (channel, frame); per kernel frame dt the input slab with
 *     its halo is staged in shared memory; each thread accumulates vw outputs along W.
 *  3. anything else (other grouped convs, and every fast conv under HB_HIP where wmma is not available): direct f32,
 *     one output per thread.
 * The index arithmetic lives in __host__ __device__ helpers (namespace hbgc) so that a host program can
 * replay the kernels' tiling against a naive loop: compile with -DHBG_CONV_INDEX_ONLY to get only those. */
#ifndef HBG_CONV_INDEX_ONLY
#include "backends/cuda/gpu_internal.h"
#if !defined(HB_HIP)
#include <mma.h>
#define HBG_CONV_WMMA 1
#endif
#endif
#include <stdint.h>

#define HBG_HD __host__ __device__ __forceinline__

namespace hbgc {

/* ---------- shapes ---------- */

struct Geo {
    int Cin, T, H, W, Cout, To, Ho, Wo;
    int kt, kh, kw, st, sh, sw, pt, ph, pw; /* pt/ph/pw: leading (front/top/left) padding */
    int groups, cin_g;                      /* input channels per group */
    int ntap, ncb, nkt;                     /* taps; BK-channel blocks per tap; K tiles = ntap * ncb (dense) */
    int64_t P, THW;                         /* output positions; input elements per channel */
};

HBG_HD int64_t out_dim(int64_t n, int pad0, int pad1, int64_t k, int s) {
    int64_t span = n + pad0 + pad1 - k;
    return span < 0 || s <= 0 ? 0 : span / s + 1;
}

/* output position p -> (to, ho, wo) */
HBG_HD void pos_split(int64_t p, const Geo &g, int &to, int &ho, int &wo) {
    wo = (int)(p % g.Wo);
    int64_t q = p / g.Wo;
    ho = (int)(q % g.Ho);
    to = (int)(q / g.Ho);
}

/* ---------- dense implicit GEMM: tiling constants and per-thread index maps ---------- */

enum {
    NT = 256,                 /* threads per block */
    BN = 128, BK = 32,        /* positions and K per tile (BM is a template parameter: 128 or 64) */
    WARPS_M = 2, WARPS_N = 4, /* 8 warps of 32 lanes (CUDA only) */
    LDA = BK + 8,             /* smem row pitch of the A tile [BM][LDA] (bf16; multiple of 8, rows 80 B) */
    LDB = BN + 8,             /* smem row pitch of the B tile [BK][LDB] (bf16; rows 272 B) */
    B_ROW_STEP = NT / BN,     /* gather: thread tid owns column tid % BN, rows tid / BN + j * B_ROW_STEP */
    B_PER_THREAD = BK * BN / NT,
    BV_PER_THREAD = BK * BN / 4 / NT /* pointwise: float4 loads per thread */
};

/* Number of K tiles and its (tap, channel block) walk. Tile index kidx = tap * ncb + cb covers the input
 * channels cb*BK .. cb*BK+BK-1 of tap (dt, dh, dw) (tap = (dt*kh + dh)*kw + dw). */
struct KTile {
    int tap, cb, dt, dh, dw;
};
HBG_HD KTile ktile_first() {
    KTile s = {0, 0, 0, 0, 0};
    return s;
}
HBG_HD void ktile_next(KTile &s, const Geo &g) {
    if (++s.cb < g.ncb) return;
    s.cb = 0;
    s.tap++;
    if (++s.dw < g.kw) return;
    s.dw = 0;
    if (++s.dh < g.kh) return;
    s.dh = 0;
    s.dt++;
}

/* The base input coordinates of output position p (valid = p < P). */
struct PosBase {
    int tb, hb, wb;
    bool valid;
};
HBG_HD PosBase pos_base(int64_t p, const Geo &g) {
    PosBase b = {0, 0, 0, p < g.P};
    if (b.valid) {
        int to, ho, wo;
        pos_split(p, g, to, ho, wo);
        b.tb = to * g.st - g.pt;
        b.hb = ho * g.sh - g.ph;
        b.wb = wo * g.sw - g.pw;
    }
    return b;
}
/* Offset of the tap's input element inside one channel, or -1 in the zero padding / past P. */
HBG_HD int64_t gather_offset(const PosBase &pb, const KTile &s, const Geo &g) {
    int t = pb.tb + s.dt, h = pb.hb + s.dh, w = pb.wb + s.dw;
    if (!pb.valid || t < 0 || t >= g.T || h < 0 || h >= g.H || w < 0 || w >= g.W) return -1;
    return ((int64_t)t * g.H + h) * g.W + w;
}
/* Gather map of thread tid, element j < B_PER_THREAD: tile row kr (channel cb*BK + kr), tile column n. */
HBG_HD int b_col(int tid) { return tid % BN; }
HBG_HD int b_row(int tid, int j) { return tid / BN + j * B_ROW_STEP; }
/* Pointwise float4 map, i < BV_PER_THREAD: row kr, first of 4 columns n. */
HBG_HD int bv_row(int tid, int i) { return (tid + NT * i) / (BN / 4); }
HBG_HD int bv_col(int tid, int i) { return (tid + NT * i) % (BN / 4) * 4; }

/* A tile (weights, permuted [Cout][ntap][cin_g] bf16): element (r, c) = weight (m0 + r, tap, cb*BK + c).
 * Vector map (cin_g % 8 == 0): 8 consecutive c per uint4, i < BM*BK/8/NT; scalar map: i < BM*BK/NT. */
HBG_HD int av_row(int tid, int i) { return (tid + NT * i) / (BK / 8); }
HBG_HD int av_col(int tid, int i) { return (tid + NT * i) % (BK / 8) * 8; }
HBG_HD int as_row(int tid, int i) { return (tid + NT * i) / BK; }
HBG_HD int as_col(int tid, int i) { return (tid + NT * i) % BK; }
/* Index of weight (co, tap, ci) in the permuted array, -1 outside (co >= Cout or ci >= cin_g). */
HBG_HD int64_t a_index(int co, int tap, int ci, const Geo &g) {
    if (co >= g.Cout || ci >= g.cin_g) return -1;
    return ((int64_t)co * g.ntap + tap) * g.cin_g + ci;
}

/* Warp layout: warp wi computes rows wm*(BM/2) .. and columns wn*32 .. of the block tile, as (BM/32) x 2
 * fragments of 16x16. Epilogue: lane l of a fragment writes row l/2, columns (l%2)*8 .. +7. */
HBG_HD int warp_m(int wi) { return wi / WARPS_N; }
HBG_HD int warp_n(int wi) { return wi % WARPS_N; }
HBG_HD int epi_row(int lane) { return lane >> 1; }
HBG_HD int epi_col(int lane) { return (lane & 1) * 8; }

/* Dense block index -> (M tile, N tile); M tiles fastest so that blocks sharing an input tile run together. */
HBG_HD void dense_block(int64_t bid, int mtiles, int &mt, int64_t &ntile) {
    mt = (int)(bid % mtiles);
    ntile = bid / mtiles;
}

/* ---------- depthwise: tiles and maps ---------- */

/* A block: channel co, output frame to, rows ho0 .. ho0+rows-1 (one warp each), columns wo0 .. wo0+32*vw-1
 * (lane + 32*i, i < vw). Input slab per kernel frame: rows (rows-1)*sh + kh from ho0*sh - ph, columns
 * (cols-1)*sw + kw from wo0*sw - pw. */
struct DwTile {
    int rows, vw, lanes, cols, slab_r, slab_c, nht, nwt;
};
HBG_HD DwTile dw_tile(const Geo &g, int lanes, int warps) {
    DwTile d;
    d.lanes = lanes;
    d.rows = warps;
    d.vw = (int)((g.Wo + lanes - 1) / lanes);
    if (d.vw > 4) d.vw = 4;
    d.cols = lanes * d.vw;
    d.slab_r = (d.rows - 1) * g.sh + g.kh;
    d.slab_c = (d.cols - 1) * g.sw + g.kw;
    d.nht = (g.Ho + d.rows - 1) / d.rows;
    d.nwt = (g.Wo + d.cols - 1) / d.cols;
    return d;
}
HBG_HD void dw_block(int64_t bid, const Geo &g, const DwTile &d, int &co, int &to, int &ho0, int &wo0) {
    wo0 = (int)(bid % d.nwt) * d.cols;
    bid /= d.nwt;
    ho0 = (int)(bid % d.nht) * d.rows;
    bid /= d.nht;
    to = (int)(bid % g.To);
    co = (int)(bid / g.To);
}
/* Input channel of depthwise output channel co (Cout = m * Cin, groups = Cin). */
HBG_HD int dw_in_channel(int co, const Geo &g) { return co / (g.Cout / g.Cin); }

} // namespace hbgc

#ifndef HBG_CONV_INDEX_ONLY

using namespace hbgc;

namespace { /* the kernels and their launchers are private to this file */

/* ---------- path 1: dense implicit GEMM (CUDA tensor cores) ---------- */
#ifdef HBG_CONV_WMMA
namespace wmma = nvcuda::wmma;

/* 16-byte global -> shared copy that does not pass through registers (sm_80+); zero-filled when !valid
 * (src-size 0: nothing is read from src). Completed by cp_async_wait_all() of the issuing thread. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
#if defined(HB_GPU_EMU) /* CPU emulator (src/backends/cuda/emu): a checked plain copy, complete at once */
    emu_cp_async16(dst, src, valid);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
#endif
}
#if defined(HB_GPU_EMU)
__device__ __forceinline__ void cp_async_wait_all() {}
#else
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
#endif

template <int BM> struct DenseSmem {
    enum {
        A_ELEMS = BM * LDA, B_ELEMS = BK * LDB,
        STAGE_BYTES = (A_ELEMS + B_ELEMS) * 2,
        EPI_BYTES = NT / 32 * 256 * 4, /* one 16x16 f32 fragment per warp */
        BYTES = 2 * STAGE_BYTES > EPI_BYTES ? 2 * STAGE_BYTES : EPI_BYTES
    };
};

/* One thread's share of a K tile of conv_dense_kernel: load() issues the global reads of K tile s (the A tile,
 * AVEC: copied asynchronously into its stage; the B values into registers), store() then writes the registers
 * into the stage (and waits for the async copies). AVEC: weight rows loaded as uint4 (cin_g % 8 == 0, 16-byte
 * aligned). PW: 1x1x1 stride 1 unpadded conv with P % 4 == 0 and x 16-byte aligned: the input tile is rows of x
 * loaded as float4. */
template <int BM, bool AVEC, bool PW> struct DenseTileLoader {
    enum { A_VEC = BM * BK / 8 / NT, A_SCAL = BM * BK / NT };
    static_assert(A_VEC >= 1 && BM * BK / 8 % NT == 0, "A tile map");
    int tid, m0;
    int64_t n0;
    PosBase pb; /* this thread's gather column (non-pointwise) */
    /* register staging of the next K tile (only the arrays of this instantiation's loads are used) */
    gpu_bf16 areg_s[AVEC ? 1 : A_SCAL]; /* AVEC: the A tile goes to shared memory by cp.async instead */
    __nv_bfloat162 breg[PW ? 2 * BV_PER_THREAD : B_PER_THREAD / 2]; /* the B values, rounded at load */

    __device__ __forceinline__ DenseTileLoader(int tid_, int m0_, int64_t n0_, const Geo &g)
        : tid(tid_), m0(m0_), n0(n0_), pb(pos_base(n0_ + b_col(tid_), g)) {}

    __device__ __forceinline__ void load(const KTile &s, gpu_bf16 *a_stage, const gpu_bf16 *__restrict__ wt,
                                         const float *__restrict__ x, const Geo &g) {
        const int ci0 = s.cb * BK;
        if constexpr (AVEC) {
#pragma unroll
            for (int i = 0; i < A_VEC; i++) {
                const int64_t ai = a_index(m0 + av_row(tid, i), s.tap, ci0 + av_col(tid, i), g);
                cp_async16(a_stage + av_row(tid, i) * LDA + av_col(tid, i), wt + (ai >= 0 ? ai : 0), ai >= 0);
            }
        } else {
            (void)a_stage;
#pragma unroll
            for (int i = 0; i < A_SCAL; i++) {
                int64_t ai = a_index(m0 + as_row(tid, i), s.tap, ci0 + as_col(tid, i), g);
                areg_s[i] = ai >= 0 ? wt[ai] : __float2bfloat16(0.0f);
            }
        }
        if constexpr (PW) {
#pragma unroll
            for (int i = 0; i < BV_PER_THREAD; i++) {
                const int ci = ci0 + bv_row(tid, i);
                const int64_t p = n0 + bv_col(tid, i);
                float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
                if (ci < g.cin_g && p < g.P) v = *(const float4 *)(x + (int64_t)ci * g.THW + p);
                breg[2 * i] = __floats2bfloat162_rn(v.x, v.y);
                breg[2 * i + 1] = __floats2bfloat162_rn(v.z, v.w);
            }
        } else {
            /* rows b_row(tid, j) = b_row(tid, 0) + j * B_ROW_STEP: one base, channel stride THW */
            const int64_t off = gather_offset(pb, s, g);
            const int c0 = ci0 + b_row(tid, 0);
            const float *src = x + (int64_t)c0 * g.THW + (off >= 0 ? off : 0);
            const int64_t step = (int64_t)B_ROW_STEP * g.THW;
#pragma unroll
            for (int j = 0; j < B_PER_THREAD; j += 2) {
                const float v0 = off >= 0 && c0 + j * B_ROW_STEP < g.cin_g ? src[j * step] : 0.0f;
                const float v1 = off >= 0 && c0 + (j + 1) * B_ROW_STEP < g.cin_g ? src[(j + 1) * step] : 0.0f;
                breg[j / 2] = __floats2bfloat162_rn(v0, v1);
            }
        }
    }

    __device__ __forceinline__ void store(gpu_bf16 *a_stage, gpu_bf16 *b_stage) const {
        if constexpr (AVEC) {
            (void)a_stage;
            cp_async_wait_all();
        } else {
#pragma unroll
            for (int i = 0; i < A_SCAL; i++) a_stage[as_row(tid, i) * LDA + as_col(tid, i)] = areg_s[i];
        }
        if constexpr (PW) {
#pragma unroll
            for (int i = 0; i < BV_PER_THREAD; i++) {
                __nv_bfloat162 *d = (__nv_bfloat162 *)(b_stage + bv_row(tid, i) * LDB + bv_col(tid, i));
                d[0] = breg[2 * i]; /* 4-byte aligned: even column, even pitch */
                d[1] = breg[2 * i + 1];
            }
        } else {
#pragma unroll
            for (int j = 0; j < B_PER_THREAD; j += 2) {
                b_stage[b_row(tid, j) * LDB + b_col(tid)] = breg[j / 2].x;
                b_stage[b_row(tid, j + 1) * LDB + b_col(tid)] = breg[j / 2].y;
            }
        }
    }
};

template <int FM, int FN> using DenseAcc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>[FM][FN];

/* This warp's FM x FN fragments += its rows of the A stage times its columns of the B stage (one K tile). */
template <int FM, int FN, int WM>
__device__ __forceinline__ void dense_mma(DenseAcc<FM, FN> &acc, gpu_bf16 *a_stage, gpu_bf16 *b_stage, int wm, int wn) {
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, gpu_bf16, wmma::row_major> bfr[FN];
#pragma unroll
        for (int j = 0; j < FN; j++)
            wmma::load_matrix_sync(bfr[j], b_stage + kk * 16 * LDB + wn * (BN / WARPS_N) + j * 16, LDB);
#pragma unroll
        for (int i = 0; i < FM; i++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, gpu_bf16, wmma::row_major> af;
            wmma::load_matrix_sync(af, a_stage + (wm * WM + i * 16) * LDA + kk * 16, LDA);
#pragma unroll
            for (int j = 0; j < FN; j++) wmma::mma_sync(acc[i][j], af, bfr[j], acc[i][j]);
        }
    }
}

/* y (+ bias) from this warp's fragments, staged one 16x16 fragment at a time through stg (256 floats). */
template <int FM, int FN, int WM>
__device__ __forceinline__ void dense_epilogue(DenseAcc<FM, FN> &acc, float *stg, float *__restrict__ y,
                                               const float *__restrict__ bias, const Geo &g, int m0, int64_t n0,
                                               int wm, int wn, int lane) {
    const bool vec_out = (g.P % 4 == 0) && (((uintptr_t)y & 15) == 0);
#pragma unroll
    for (int i = 0; i < FM; i++)
#pragma unroll
        for (int j = 0; j < FN; j++) {
            wmma::store_matrix_sync(stg, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            const int r = epi_row(lane), c0 = epi_col(lane);
            const int co = m0 + wm * WM + i * 16 + r;
            const int64_t p0 = n0 + wn * (BN / WARPS_N) + j * 16 + c0;
            if (co < g.Cout) {
                const float bv = bias ? bias[co] : 0.0f;
                const float *src = stg + r * 16 + c0;
                float *dst = y + (int64_t)co * g.P + p0;
                if (vec_out) {
#pragma unroll
                    for (int h = 0; h < 2; h++)
                        if (p0 + 4 * h < g.P)
                            *(float4 *)(dst + 4 * h) = make_float4(src[4 * h] + bv, src[4 * h + 1] + bv,
                                                                   src[4 * h + 2] + bv, src[4 * h + 3] + bv);
                } else {
#pragma unroll
                    for (int c = 0; c < 8; c++)
                        if (p0 + c < g.P) dst[c] = src[c] + bv;
                }
            }
            __syncwarp(); /* every lane has read stg before the next fragment overwrites it */
        }
}

template <int BM, bool AVEC, bool PW>
__global__ void __launch_bounds__(NT, AVEC ? 2 : 1) conv_dense_kernel(float *__restrict__ y, const float *__restrict__ x,
                                                        const gpu_bf16 *__restrict__ wt,
                                                        const float *__restrict__ bias, Geo g, int mtiles) {
    enum { WM = BM / WARPS_M, FM = WM / 16, FN = BN / WARPS_N / 16 };
    static_assert(BN % WARPS_N == 0 && FN >= 1 && FM >= 1, "warp tile");
    __shared__ __align__(128) unsigned char smem[DenseSmem<BM>::BYTES];
    /* stage st: A tile at stage_a(st) [BM][LDA], B tile at stage_b(st) [BK][LDB] (bf16) */
    auto stage_a = [&](int st) { return (gpu_bf16 *)smem + st * (BM * LDA + BK * LDB); };
    auto stage_b = [&](int st) { return (gpu_bf16 *)smem + st * (BM * LDA + BK * LDB) + BM * LDA; };

    const int tid = threadIdx.x, lane = tid % 32, wi = tid / 32;
    int mt;
    int64_t ntile;
    dense_block(blockIdx.x, mtiles, mt, ntile);
    const int m0 = mt * BM;
    const int64_t n0 = ntile * BN;
    DenseTileLoader<BM, AVEC, PW> ld(tid, m0, n0, g);

    DenseAcc<FM, FN> acc;
#pragma unroll
    for (int i = 0; i < FM; i++)
#pragma unroll
        for (int j = 0; j < FN; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    const int wm = warp_m(wi), wn = warp_n(wi);
    KTile s = ktile_first();
    ld.load(s, stage_a(0), wt, x, g);
    ld.store(stage_a(0), stage_b(0));
    __syncthreads();
    for (int kt = 0; kt < g.nkt; kt++) {
        const int cur = kt & 1;
        const bool more = kt + 1 < g.nkt; /* uniform */
        if (more) {
            ktile_next(s, g);
            ld.load(s, stage_a(cur ^ 1), wt, x, g); /* global loads in flight during the MMAs below (stage cur^1 is
                                                      free: its last reads were in iteration kt-1, before that
                                                      iteration's barrier) */
        }
        dense_mma<FM, FN, WM>(acc, stage_a(cur), stage_b(cur), wm, wn);
        if (more) ld.store(stage_a(cur ^ 1), stage_b(cur ^ 1));
        __syncthreads();
    }
    /* epilogue: after the loop's last barrier the stages are free; each warp stages one fragment at a time */
    dense_epilogue<FM, FN, WM>(acc, (float *)smem + wi * 256, y, bias, g, m0, n0, wm, wn, lane);
}

template <int BM, bool AVEC, bool PW>
int launch_dense(float *y, const float *x, const gpu_bf16 *wt, const float *bias, const Geo &g) {
    const int mtiles = (g.Cout + BM - 1) / BM;
    const int64_t blocks = (int64_t)mtiles * ((g.P + BN - 1) / BN);
    if (blocks > 0x7fffffff) return hbg_fail("hb_conv3d: %lld blocks exceed the grid limit", (long long)blocks);
    conv_dense_kernel<BM, AVEC, PW><<<(unsigned)blocks, NT, 0, hbg_stream()>>>(y, x, wt, bias, g, mtiles);
    return HBG_LAUNCHED("hb_conv3d (dense)");
}

template <int BM>
int dense_dispatch(float *y, const float *x, const gpu_bf16 *wt, const float *bias, const Geo &g, bool avec,
                          bool pw) {
    if (avec) return pw ? launch_dense<BM, true, true>(y, x, wt, bias, g) : launch_dense<BM, true, false>(y, x, wt, bias, g);
    return pw ? launch_dense<BM, false, true>(y, x, wt, bias, g) : launch_dense<BM, false, false>(y, x, wt, bias, g);
}

int conv_dense(float *y, const float *x, const hb_tensor *w, const float *bias, const Geo &g) {
    /* K ordered (tap, ci): upload the view [Cout, kt, kh, kw, cin_g] of w (hbg_weight copies a non-contiguous
     * view in its logical order). For one tap or one channel it is w itself. */
    hb_tensor v = *w;
    v.ndim = 5;
    v.shape[0] = w->shape[0]; v.stride[0] = w->stride[0];
    v.shape[1] = w->shape[2]; v.stride[1] = w->stride[2];
    v.shape[2] = w->shape[3]; v.stride[2] = w->stride[3];
    v.shape[3] = w->shape[4]; v.stride[3] = w->stride[4];
    v.shape[4] = w->shape[1]; v.stride[4] = w->stride[1];
    const gpu_bf16 *wt = (const gpu_bf16 *)hbg_weight(g.ntap == 1 || g.cin_g == 1 ? w : &v, HBG_W_BF16);
    if (!wt) return -1;
    const bool avec = g.cin_g % 8 == 0 && ((uintptr_t)wt & 15) == 0;
    const bool pw = g.ntap == 1 && g.st == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.ph == 0 && g.pw == 0 &&
                    g.To == g.T && g.Ho == g.H && g.Wo == g.W && g.P % 4 == 0 && ((uintptr_t)x & 15) == 0;
    return g.Cout <= 64 ? dense_dispatch<64>(y, x, wt, bias, g, avec, pw)
                        : dense_dispatch<128>(y, x, wt, bias, g, avec, pw);
}
#endif /* HBG_CONV_WMMA */

/* ---------- path 1f: dense f32 (HB_CONV_F32: training) ---------- */

/* The implicit GEMM of path 1 with f32 operands and plain FMAs (no tensor cores): a block computes F_BM output
 * channels x F_BN positions, thread tid the rows tr + 16 i and columns tc + 16 j (i, j < 4; tr = tid / 16, tc =
 * tid % 16: consecutive threads read consecutive shared columns and write consecutive y). K tiles as path 1:
 * one tap, BK input channels. Each output is one FMA chain in K order: deterministic. */
enum { F_BM = 64, F_BN = 64, F_LDA = F_BM + 1, F_STAGE = BK * F_LDA + BK * F_BN, F_A_PER_THREAD = F_BM * BK / NT,
       F_B_STEP = NT / F_BN, F_B_PER_THREAD = BK * F_BN / NT };

struct DenseF32Loader {
    int tid, m0;
    PosBase pb; /* this thread's gather column n0 + tid % F_BN */
    float areg[F_A_PER_THREAD], breg[F_B_PER_THREAD];

    __device__ __forceinline__ DenseF32Loader(int tid_, int m0_, int64_t n0, const Geo &g)
        : tid(tid_), m0(m0_), pb(pos_base(n0 + tid_ % F_BN, g)) {}

    /* A element e = tid + NT i: row e / BK, channel e % BK (consecutive threads read consecutive weights);
     * B rows tid / F_BN + F_B_STEP j of column tid % F_BN */
    __device__ __forceinline__ void load(const KTile &s, const float *__restrict__ wt, const float *__restrict__ x,
                                         const Geo &g) {
        const int ci0 = s.cb * BK;
#pragma unroll
        for (int i = 0; i < F_A_PER_THREAD; i++) {
            const int e = tid + NT * i;
            const int64_t ai = a_index(m0 + e / BK, s.tap, ci0 + e % BK, g);
            areg[i] = ai >= 0 ? wt[ai] : 0.0f;
        }
        const int64_t off = gather_offset(pb, s, g);
        const int c0 = ci0 + tid / F_BN;
#pragma unroll
        for (int j = 0; j < F_B_PER_THREAD; j++) {
            const int c = c0 + j * F_B_STEP;
            breg[j] = off >= 0 && c < g.cin_g ? x[(int64_t)c * g.THW + off] : 0.0f;
        }
    }
    /* stage layout: A transposed [BK][F_LDA] (channel-major, so a thread's 4 rows are one broadcast read per k),
     * then B [BK][F_BN] */
    __device__ __forceinline__ void store(float *stage) const {
#pragma unroll
        for (int i = 0; i < F_A_PER_THREAD; i++) {
            const int e = tid + NT * i;
            stage[(e % BK) * F_LDA + e / BK] = areg[i];
        }
#pragma unroll
        for (int j = 0; j < F_B_PER_THREAD; j++) stage[BK * F_LDA + (tid / F_BN + j * F_B_STEP) * F_BN + tid % F_BN] = breg[j];
    }
};

__global__ void __launch_bounds__(NT) conv_dense_f32_kernel(float *__restrict__ y, const float *__restrict__ x,
                                                            const float *__restrict__ wt, const float *__restrict__ bias,
                                                            Geo g, int mtiles) {
    __shared__ float smem[2 * F_STAGE];
    const int tid = threadIdx.x, tr = tid / 16, tc = tid % 16;
    int mt;
    int64_t ntile;
    dense_block(blockIdx.x, mtiles, mt, ntile);
    const int m0 = mt * F_BM;
    const int64_t n0 = ntile * F_BN;
    DenseF32Loader ld(tid, m0, n0, g);
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    KTile s = ktile_first();
    ld.load(s, wt, x, g);
    ld.store(smem);
    __syncthreads();
    for (int kt = 0; kt < g.nkt; kt++) {
        const float *st = smem + (kt & 1) * F_STAGE;
        const bool more = kt + 1 < g.nkt; /* uniform */
        if (more) {
            ktile_next(s, g);
            ld.load(s, wt, x, g); /* in flight during the FMAs below */
        }
#pragma unroll 4
        for (int k = 0; k < BK; k++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = st[k * F_LDA + tr + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = st[BK * F_LDA + k * F_BN + tc + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) ld.store(smem + ((kt + 1) & 1) * F_STAGE); /* its last reads were before the previous barrier */
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int co = m0 + tr + 16 * i;
        if (co >= g.Cout) continue;
        const float bv = bias ? bias[co] : 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t p = n0 + tc + 16 * j;
            if (p < g.P) y[(int64_t)co * g.P + p] = acc[i][j] + bv;
        }
    }
}

int conv_dense_f32(float *y, const float *x, const hb_tensor *w, const float *bias, const Geo &g) {
    hb_tensor v = *w; /* the view [Cout, kt, kh, kw, cin_g], as path 1 */
    v.shape[1] = w->shape[2]; v.stride[1] = w->stride[2];
    v.shape[2] = w->shape[3]; v.stride[2] = w->stride[3];
    v.shape[3] = w->shape[4]; v.stride[3] = w->stride[4];
    v.shape[4] = w->shape[1]; v.stride[4] = w->stride[1];
    const float *wt = (const float *)hbg_weight(g.ntap == 1 || g.cin_g == 1 ? w : &v, HBG_W_F32);
    if (!wt) return -1;
    const int mtiles = (g.Cout + F_BM - 1) / F_BM;
    const int64_t blocks = (int64_t)mtiles * ((g.P + F_BN - 1) / F_BN);
    if (blocks > 0x7fffffff) return hbg_fail("hb_conv3d: %lld blocks exceed the grid limit", (long long)blocks);
    conv_dense_f32_kernel<<<(unsigned)blocks, NT, 0, hbg_stream()>>>(y, x, wt, bias, g, mtiles);
    return HBG_LAUNCHED("hb_conv3d (dense f32)");
}

/* ---------- path 2: depthwise, direct f32 ---------- */

enum { DW_THREADS = 256, DW_MAX_SMEM = 48 * 1024 };

__global__ void __launch_bounds__(DW_THREADS) conv_depthwise_kernel(float *__restrict__ y, const float *__restrict__ x,
                                                                    const float *__restrict__ w,
                                                                    const float *__restrict__ bias, Geo g, DwTile d) {
    extern __shared__ float slab[];
    const int tid = threadIdx.x, lane = tid % d.lanes, row = tid / d.lanes; /* row < d.rows */
    int co, to, ho0, wo0;
    dw_block(blockIdx.x, g, d, co, to, ho0, wo0);
    const int ci = dw_in_channel(co, g);
    const float *xc = x + (int64_t)ci * g.THW;
    const float *wc = w + (int64_t)co * g.ntap;
    const int hi0 = ho0 * g.sh - g.ph, wi0 = wo0 * g.sw - g.pw, nslab = d.slab_r * d.slab_c;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int dt = 0; dt < g.kt; dt++) {
        const int t = to * g.st - g.pt + dt;
        if (t < 0 || t >= g.T) continue; /* uniform over the block: the barriers below stay matched */
        __syncthreads();                 /* the previous slab is no longer read */
        const float *xt = xc + (int64_t)t * g.H * g.W;
        for (int e = tid; e < nslab; e += DW_THREADS) {
            const int r = e / d.slab_c, c = e % d.slab_c, h = hi0 + r, wq = wi0 + c;
            slab[e] = h >= 0 && h < g.H && wq >= 0 && wq < g.W ? xt[(int64_t)h * g.W + wq] : 0.0f;
        }
        __syncthreads();
        const float *sr = slab + row * g.sh * d.slab_c;
        for (int dh = 0; dh < g.kh; dh++)
            for (int dw = 0; dw < g.kw; dw++) {
                const float wv = wc[(dt * g.kh + dh) * g.kw + dw];
                const float *sp = sr + dh * d.slab_c + dw;
#pragma unroll
                for (int i = 0; i < 4; i++)
                    if (i < d.vw) acc[i] += wv * sp[(lane + i * d.lanes) * g.sw];
            }
    }
    const int ho = ho0 + row;
    if (ho >= g.Ho) return;
    const float bv = bias ? bias[co] : 0.0f;
    float *yr = y + (int64_t)co * g.P + ((int64_t)to * g.Ho + ho) * g.Wo;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int wo = wo0 + lane + i * d.lanes;
        if (i < d.vw && wo < g.Wo) yr[wo] = acc[i] + bv;
    }
}

/* ---------- path 3: direct f32, any groups ---------- */

__global__ void __launch_bounds__(256) conv_direct_kernel(float *__restrict__ y, const float *__restrict__ x,
                                                          const float *__restrict__ w, const float *__restrict__ bias,
                                                          Geo g) {
    const int64_t total = (int64_t)g.Cout * g.P, cout_g = g.Cout / g.groups;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int co = (int)(idx / g.P);
        const int64_t p = idx % g.P;
        int to, ho, wo;
        pos_split(p, g, to, ho, wo);
        const int gi = (int)(co / cout_g);
        const float *xg = x + (int64_t)gi * g.cin_g * g.THW;
        const float *wc = w + (int64_t)co * g.cin_g * g.ntap;
        float acc = 0.0f;
        for (int dt = 0; dt < g.kt; dt++) {
            const int t = to * g.st - g.pt + dt;
            if (t < 0 || t >= g.T) continue;
            for (int dh = 0; dh < g.kh; dh++) {
                const int h = ho * g.sh - g.ph + dh;
                if (h < 0 || h >= g.H) continue;
                for (int dw = 0; dw < g.kw; dw++) {
                    const int wq = wo * g.sw - g.pw + dw;
                    if (wq < 0 || wq >= g.W) continue;
                    const int64_t off = ((int64_t)t * g.H + h) * g.W + wq;
                    const int tap = (dt * g.kh + dh) * g.kw + dw;
                    for (int c = 0; c < g.cin_g; c++) acc += wc[(int64_t)c * g.ntap + tap] * xg[(int64_t)c * g.THW + off];
                }
            }
        }
        y[idx] = acc + (bias ? bias[co] : 0.0f);
    }
}

} // namespace

/* ---------- entry ---------- */

int hbg_conv3d(float *y, const float *x, int64_t Cin, int64_t T, int64_t H, int64_t W, const hb_tensor *w,
                          const hb_tensor *b, const hb_conv3d_params *p) {
    /* arguments checked by the dispatcher (src/ops/dispatch.c); only the GPU's own limits here */
    const int groups = p->groups > 0 ? p->groups : 1;
    const int64_t Cout = w->shape[0];
    int64_t To, Ho, Wo;
    hb_conv3d_out_size(T, H, W, w, p, &To, &Ho, &Wo);
    const int64_t lim = 0x7fffffff;
    if (T * H * W >= lim || To * Ho * Wo >= lim || Cout >= lim || Cin >= lim || w->shape[2] * w->shape[3] * w->shape[4] >= lim)
        return hb_error("hb_conv3d: sizes beyond the GPU kernels' 32-bit per-channel indexing");

    Geo g;
    g.Cin = (int)Cin; g.T = (int)T; g.H = (int)H; g.W = (int)W; g.Cout = (int)Cout;
    g.To = (int)To; g.Ho = (int)Ho; g.Wo = (int)Wo;
    g.kt = (int)w->shape[2]; g.kh = (int)w->shape[3]; g.kw = (int)w->shape[4];
    g.st = p->stride[0]; g.sh = p->stride[1]; g.sw = p->stride[2];
    g.pt = p->pad_t[0]; g.ph = p->pad_h[0]; g.pw = p->pad_w[0];
    g.groups = groups;
    g.cin_g = (int)(Cin / groups);
    g.ntap = g.kt * g.kh * g.kw;
    g.ncb = (g.cin_g + BK - 1) / BK;
    g.nkt = g.ntap * g.ncb;
    g.P = To * Ho * Wo;
    g.THW = T * H * W;

    const float *bias = NULL;
    if (b && !(bias = (const float *)hbg_weight(b, HBG_W_F32))) return -1;

    if (groups == 1 && p->precision == HB_CONV_F32) return conv_dense_f32(y, x, w, bias, g);
#ifdef HBG_CONV_WMMA
    if (groups == 1) return conv_dense(y, x, w, bias, g);
#endif
    if (groups == g.Cin && g.Cout % g.Cin == 0) {
        const DwTile d = dw_tile(g, GPU_WARP, DW_THREADS / GPU_WARP);
        const size_t smem = sizeof(float) * (size_t)d.slab_r * (size_t)d.slab_c;
        const int64_t blocks = (int64_t)g.Cout * g.To * d.nht * d.nwt;
        if (smem <= DW_MAX_SMEM && blocks <= lim) {
            const float *wf = (const float *)hbg_weight(w, HBG_W_F32);
            if (!wf) return -1;
            conv_depthwise_kernel<<<(unsigned)blocks, DW_THREADS, smem, hbg_stream()>>>(y, x, wf, bias, g, d);
            return HBG_LAUNCHED("hb_conv3d (depthwise)");
        }
    }
    const float *wf = (const float *)hbg_weight(w, HBG_W_F32);
    if (!wf) return -1;
    int64_t blocks = (Cout * g.P + 255) / 256;
    if (blocks > (1 << 20)) blocks = 1 << 20; /* grid-stride beyond */
    conv_direct_kernel<<<(unsigned)blocks, 256, 0, hbg_stream()>>>(y, x, wf, bias, g);
    return HBG_LAUNCHED("hb_conv3d (direct)");
}

#endif /* !HBG_CONV_INDEX_ONLY */
