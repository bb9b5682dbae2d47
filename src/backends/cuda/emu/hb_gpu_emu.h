/* CPU emulation of the CUDA subset that the GPU backend (the .cu files of src/backends/cuda) uses, for
 * -DHB_GPU_EMU=ON builds: the real backend sources, compiled as C++ by the host compiler after rewrite.py turns
 * their launches and __shared__ declarations into emulator calls, run on the CPU, so that tests exercise their
 * logic without a GPU. Pieces:
 *   - kernels: one fiber per GPU thread (emu.cpp: x86-64 stack switch, ucontext elsewhere); the threads of a
 *     block run concurrently in the sense that matters (each runs until it reaches a barrier: __syncthreads,
 *     __syncwarp, a shuffle or a wmma call), blocks one after another, launches synchronously under a global
 *     lock. A barrier that not every thread of its block (warp) reaches is reported as a launch error.
 *   - shared memory: a per-block arena, poisoned with 0xff bytes (float NaN) before every block; __shared__ and
 *     extern __shared__ declarations are rewritten by rewrite.py into arena views.
 *   - device memory: malloc, poisoned with 0xff bytes (cudaMalloc does not zero); pointers are tracked so that
 *     copies, cuBLASLt and cudaPointerGetAttributes can check what is device memory.
 *   - nvcuda::wmma 16x16x16 bf16 with f32 accumulators (exact products, f32 sums); fragment layout: lane l holds
 *     elements 8l .. 8l+7 of the row-major 16x16 tile (the backend never reads fragment elements).
 *   - cuBLASLt: the descriptor subset gpu_gemm.cu uses, with cuBLASLt's documented column-major semantics; fp8
 *     (CUDA_R_8F_E4M3 A and B, exact e4m3 values, products exact in f32, f32 sums, D = alpha * a_scale * b_scale *
 *     sum) with its documented rules checked: TN layout, COMPUTE_32F, f32 C/D, 16-byte aligned pointers and
 *     leading dimensions, no bias epilogue here (its fp8 bias type is not emulated). FAST_ACCUM is accepted and
 *     changes nothing (the emulator always accumulates in f32).
 * Env HB_GPU_EMU_REVERSE=1 runs the blocks of a grid and resumes the threads of a block in reverse order (a race
 * between two barriers, or between blocks, then usually changes the result).
 * Device properties: an H100 (132 SMs, 227 KiB opt-in shared memory per block, compute capability 9.0). */
#ifndef HB_GPU_EMU_H
#define HB_GPU_EMU_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <cmath>
#include <functional>
#include <type_traits>

#define __CUDA_ARCH__ 900
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

/* ---------- types ---------- */
struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
inline float2 make_float2(float a, float b) { return float2{a, b}; }

/* the emulated thread's coordinates (set by the scheduler before it resumes a thread) */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
constexpr int warpSize = 32;

/* ---------- runtime API ---------- */
enum cudaError_t {
    cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidDevice = 101,
    cudaErrorInvalidConfiguration = 9, cudaErrorLaunchFailure = 719, cudaErrorMisalignedAddress = 716
};
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                      cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2,
                      cudaMemoryTypeManaged = 3 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaPointerAttributes { cudaMemoryType type; int device; void *devicePointer; void *hostPointer; };
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin, sharedMemPerMultiprocessor;
    int warpSize, maxThreadsPerBlock, multiProcessorCount, major, minor, regsPerBlock;
    int maxThreadsDim[3], maxGridSize[3];
};
struct emu_stream;
struct emu_event;
typedef emu_stream *cudaStream_t;
typedef emu_event *cudaEvent_t;

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMalloc(void **p, size_t n);
template <class T> inline cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc((void **)p, n); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st = nullptr);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p);
cudaError_t emu_func_set_attribute(const void *f, cudaFuncAttribute a, int v);
template <class F> inline cudaError_t cudaFuncSetAttribute(F *f, cudaFuncAttribute a, int v) {
    return emu_func_set_attribute(reinterpret_cast<const void *>(f), a, v);
}

/* ---------- launches, barriers, shared memory (emu.cpp) ---------- */
/* Runs fn once per thread of every block; records a launch error (cudaGetLastError) on a bad configuration,
 * a shared-memory overflow or a barrier divergence. */
void emu_launch(const void *kernel, dim3 grid, dim3 block, size_t dyn_smem, cudaStream_t st,
                const std::function<void()> &fn);
void *emu_smem_static(size_t bytes, size_t align); /* the next static __shared__ array of this thread's block */
void *emu_smem_dynamic(void);                      /* the block's extern __shared__ region */
void emu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* launch error + message */
unsigned emu_lane(void);                           /* linear thread index % 32 */
void emu_sync_block(void);
void emu_sync_warp(void);
uint64_t *emu_warp_xbuf(void);                     /* 32 slots for this thread's warp */
bool emu_is_device(const void *p, size_t bytes);   /* [p, p+bytes) inside one device allocation */

inline void __syncthreads(void) { emu_sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) emu_fail("__syncwarp with a partial mask 0x%x (not emulated)", mask);
    emu_sync_warp();
}
template <class T> inline T emu_shfl(T v, int src_lane_of) {
    static_assert(sizeof(T) <= 8, "shuffle of a type above 8 bytes");
    uint64_t *xb = emu_warp_xbuf();
    unsigned lane = emu_lane();
    memcpy(&xb[lane], &v, sizeof(T));
    emu_sync_warp();
    T r;
    memcpy(&r, &xb[src_lane_of], sizeof(T));
    emu_sync_warp();
    return r;
}
inline void emu_check_mask(unsigned mask) {
    if (mask != 0xffffffffu) emu_fail("shuffle with a partial mask 0x%x (not emulated)", mask);
}
template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    emu_check_mask(mask);
    unsigned lane = emu_lane(), base = lane & ~(unsigned)(width - 1);
    return emu_shfl(v, (int)(base + ((unsigned)src & (unsigned)(width - 1))));
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
    emu_check_mask(mask);
    unsigned lane = emu_lane(), base = lane & ~(unsigned)(width - 1), s = lane ^ (unsigned)m;
    if ((s & ~(unsigned)(width - 1)) != base) s = lane;
    return emu_shfl(v, (int)s);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    emu_check_mask(mask);
    unsigned lane = emu_lane(), base = lane & ~(unsigned)(width - 1), s = lane + d;
    if (s >= base + (unsigned)width) s = lane;
    return emu_shfl(v, (int)s);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    emu_check_mask(mask);
    unsigned lane = emu_lane(), base = lane & ~(unsigned)(width - 1);
    unsigned s = lane - base >= d ? lane - d : lane;
    return emu_shfl(v, (int)s);
}
/* atomics: threads never run in parallel, so plain read-modify-write is atomic */
template <class T> inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }
template <class T> inline T atomicMax(T *p, T v) { T o = *p; *p = o > v ? o : v; return o; }
template <class T> inline T atomicMin(T *p, T v) { T o = *p; *p = o < v ? o : v; return o; }
template <class T> inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }
template <class T> inline T atomicCAS(T *p, T c, T v) { T o = *p; if (o == c) *p = v; return o; }

/* ---------- bit casts, rounding intrinsics ---------- */
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
/* volatile: no contraction into an FMA, each operation rounded as its _rn name says */
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline size_t __cvta_generic_to_shared(const void *p) { return (size_t)(uintptr_t)p; }
/* cp.async.cg 16 bytes (gpu_conv.cu's HB_GPU_EMU path): a plain copy, complete at once; both addresses must be
 * 16-byte aligned, the destination in shared memory. */
void emu_cp_async16(void *dst, const void *src, bool valid);

/* ---------- bf16 ---------- */
struct __nv_bfloat16 {
    uint16_t __x;
    __nv_bfloat16() = default;
    explicit operator float() const { return __uint_as_float((unsigned)__x << 16); }
};
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
typedef __nv_bfloat16 nv_bfloat16;
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned u = __float_as_uint(f);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) { r.__x = 0x7fff; return r; } /* NaN: canonical */
    u += 0x7fffu + ((u >> 16) & 1u);                                      /* round to nearest even */
    r.__x = (uint16_t)(u >> 16);
    return r;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    __nv_bfloat162 r;
    r.x = __float2bfloat16_rn(a);
    r.y = __float2bfloat16_rn(b);
    return r;
}

/* ---------- nvcuda::wmma (m16n16k16, bf16 x bf16 -> f32) ---------- */
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator has m16n16k16 only");
    enum { num_elements = 8 };
    T x[8];
};
void emu_wmma_check(const void *p, unsigned ldm, size_t esize, const char *what);
void emu_wmma_mma(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b, const float *c);

template <class Use, class T, class L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, L> &f, const T *p, unsigned ldm) {
    static_assert(!std::is_same<Use, accumulator>::value, "accumulator loads take a layout_t");
    emu_sync_warp(); /* load_matrix_sync waits for every lane of the warp */
    emu_wmma_check(p, ldm, sizeof(T), "load_matrix_sync");
    const bool cm = std::is_same<L, col_major>::value;
    const unsigned lane = emu_lane();
    for (int i = 0; i < 8; i++) {
        unsigned e = lane * 8 + (unsigned)i, r = e / 16, c = e % 16;
        f.x[i] = cm ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
    }
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm, layout_t l) {
    emu_sync_warp();
    emu_wmma_check(p, ldm, sizeof(float), "load_matrix_sync (accumulator)");
    const unsigned lane = emu_lane();
    for (int i = 0; i < 8; i++) {
        unsigned e = lane * 8 + (unsigned)i, r = e / 16, c = e % 16;
        f.x[i] = l == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
    }
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t l) {
    emu_sync_warp();
    emu_wmma_check(p, ldm, sizeof(float), "store_matrix_sync");
    const unsigned lane = emu_lane();
    for (int i = 0; i < 8; i++) {
        unsigned e = lane * 8 + (unsigned)i, r = e / 16, c = e % 16;
        (l == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]) = f.x[i];
    }
    /* no barrier after: reading other lanes' results needs the kernel's own __syncwarp, as on the GPU */
}
template <class Use, class T, class L, class V>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, const V &v) {
    for (int i = 0; i < 8; i++) f.x[i] = static_cast<T>(v);
}
template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
    emu_wmma_mma(d.x, a.x, b.x, c.x);
}
} // namespace wmma
} // namespace nvcuda

/* ---------- cuBLASLt subset ---------- */
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_EXECUTION_FAILED = 13, CUBLAS_STATUS_NOT_SUPPORTED = 15
};
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16BF = 14, CUDA_R_8F_E4M3 = 28 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasLtEpilogue_t { CUBLASLT_EPILOGUE_DEFAULT = 1, CUBLASLT_EPILOGUE_BIAS = 4 };
enum cublasLtMatmulDescAttributes_t {
    CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4, CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER = 17,
    CUBLASLT_MATMUL_DESC_B_SCALE_POINTER = 18, CUBLASLT_MATMUL_DESC_FAST_ACCUM = 25
};
enum cublasLtMatmulPreferenceAttributes_t {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
};
struct emu_lt_handle;
struct emu_lt_desc;
struct emu_lt_layout;
struct emu_lt_pref;
typedef emu_lt_handle *cublasLtHandle_t;
typedef emu_lt_desc *cublasLtMatmulDesc_t;
typedef emu_lt_layout *cublasLtMatrixLayout_t;
typedef emu_lt_pref *cublasLtMatmulPreference_t;
struct cublasLtMatmulAlgo_t { uint64_t data[8]; };
struct cublasLtMatmulHeuristicResult_t {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
};
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t ct, cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
                                              const void *buf, size_t size);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols,
                                          int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void *buf,
                                                    size_t size);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t *res, int *count);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t st);

#endif
