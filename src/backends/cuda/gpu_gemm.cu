/* GPU GEMMs on cuBLASLt (hipBLASLt under HB_HIP): hb_linear with bf16 weights (f32 accumulation and output, the
 * bias fused in the epilogue) and the plain f32 GEMM. One cuBLASLt handle per device; the descriptors and the
 * heuristic's algorithm are cached per (device, shape, leading dims, pointer alignments, mode); the workspace is a
 * scratch slot. Every call is queued on hbg_stream() and never synchronises.
 *
 * Environment:
 *   HB_GPU_PRECISE=1  hb_linear uses f32 weights and x with f32 compute (no bf16 rounding; for golden checks);
 *                     gemm_f32 ignores HB_GPU_TF32. (The attention kernel reads it too: f32 fallback kernel.)
 *   HB_GPU_TF32=1     gemm_f32 (and hb_linear in precise mode) may use TF32 tensor cores.
 *   HB_GPU_FP8=1      (CUDA, compute capability >= 8.9; ignored under HB_GPU_PRECISE) hb_linear in e4m3: the weight
 *                     quantised once at upload (hbg_weight HBG_W_FP8: per-tensor scale amax/448), x per call (its
 *                     amax reduced on the device, then converted), cuBLASLt with CUDA_R_8F_E4M3 A/B, the two scales
 *                     as A/B scale pointers, f32 compute and output, the bias added by a separate kernel. cuBLASLt's
 *                     fp8 rules (TN layout, 16-byte aligned pointers and leading dimensions) hold when K and N are
 *                     multiples of 16 and y is 16-byte aligned; otherwise, or when no algorithm is found, the bf16
 *                     path runs. HB_GPU_FP8_FAST=1 also sets CUBLASLT_MATMUL_DESC_FAST_ACCUM (less accurate). */
#include "backends/cuda/gpu_internal.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#if defined(HB_HIP)
/* hipBLASLt spells cuBLASLt's API with a hip prefix; these are the names this file uses (not compiled here). */
#define cublasLtHandle_t hipblasLtHandle_t
#define cublasLtCreate hipblasLtCreate
#define cublasLtMatmulDesc_t hipblasLtMatmulDesc_t
#define cublasLtMatmulDescCreate hipblasLtMatmulDescCreate
#define cublasLtMatmulDescDestroy hipblasLtMatmulDescDestroy
#define cublasLtMatmulDescSetAttribute hipblasLtMatmulDescSetAttribute
#define cublasLtMatrixLayout_t hipblasLtMatrixLayout_t
#define cublasLtMatrixLayoutCreate hipblasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy hipblasLtMatrixLayoutDestroy
#define cublasLtMatmulPreference_t hipblasLtMatmulPreference_t
#define cublasLtMatmulPreferenceCreate hipblasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceDestroy hipblasLtMatmulPreferenceDestroy
#define cublasLtMatmulPreferenceSetAttribute hipblasLtMatmulPreferenceSetAttribute
#define cublasLtMatmulAlgoGetHeuristic hipblasLtMatmulAlgoGetHeuristic
#define cublasLtMatmulHeuristicResult_t hipblasLtMatmulHeuristicResult_t
#define cublasLtMatmulAlgo_t hipblasLtMatmulAlgo_t
#define cublasLtMatmul hipblasLtMatmul
#define cublasStatus_t hipblasStatus_t
#define cublasComputeType_t hipblasComputeType_t
#define cudaDataType_t hipDataType
#define CUBLAS_STATUS_SUCCESS HIPBLAS_STATUS_SUCCESS
#define CUBLAS_COMPUTE_32F HIPBLAS_COMPUTE_32F
#define CUBLAS_COMPUTE_32F_FAST_TF32 HIPBLAS_COMPUTE_32F_FAST_TF32
#define CUDA_R_32F HIP_R_32F
#define CUDA_R_16BF HIP_R_16BF
#define CUBLAS_OP_N HIPBLAS_OP_N
#define CUBLAS_OP_T HIPBLAS_OP_T
#define cublasOperation_t hipblasOperation_t
#define cublasLtEpilogue_t hipblasLtEpilogue_t
#define CUBLASLT_MATMUL_DESC_TRANSA HIPBLASLT_MATMUL_DESC_TRANSA
#define CUBLASLT_MATMUL_DESC_TRANSB HIPBLASLT_MATMUL_DESC_TRANSB
#define CUBLASLT_MATMUL_DESC_EPILOGUE HIPBLASLT_MATMUL_DESC_EPILOGUE
#define CUBLASLT_MATMUL_DESC_BIAS_POINTER HIPBLASLT_MATMUL_DESC_BIAS_POINTER
#define CUBLASLT_EPILOGUE_DEFAULT HIPBLASLT_EPILOGUE_DEFAULT
#define CUBLASLT_EPILOGUE_BIAS HIPBLASLT_EPILOGUE_BIAS
#define CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES HIPBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
#define HBG_GET_DEVICE hipGetDevice
#else
#define HBG_GET_DEVICE cudaGetDevice
#endif

/* ---------- index mapping (host + device, exercised by a host test) ----------
 * In one line: row-major Y[M,N] = X[M,K] W[N,K]^T is column-major D[N,M] (ld N) = op_T(W as col-major K x N, ld K)
 * x (X as col-major K x M, ld K), so cuBLASLt gets m = N, n = M, k = K, TRANSA = T, TRANSB = N.
 * Row-major <-> column-major: a row-major [R, C] matrix with row stride ld IS a column-major [C, R] matrix with
 * leading dimension ld, so row-major Y = X W^T is column-major Y^T = W X^T, and row-major C = A B is
 * column-major C^T = B^T A^T. The cuBLASLt problems (m, n, k; op(A) is m x k, op(B) k x n, D m x n):
 *   linear:   m = N, n = M, k = K; A = W (col-major K x N, ld K, op T); B = X (col-major K x M, ld K, op N);
 *             D = Y (col-major N x M, ld N); the bias (N floats) runs along D's rows, broadcast over columns.
 *   gemm_f32: m = N, n = M, k = K; A = B_rm (col-major N x K, ld ldb, op N); B = A_rm (col-major K x M, ld lda,
 *             op N); D = C_rm (col-major N x M, ld ldc). */
struct hbg_lt_problem {
    int64_t m, n, k;
    int64_t lda, ldb, ldd;
    bool trans_a; /* op(A) = A^T */
};

__host__ __device__ inline hbg_lt_problem hbg_lt_linear(int64_t M, int64_t N, int64_t K) {
    hbg_lt_problem p = {N, M, K, K, K, N, true};
    return p;
}

__host__ __device__ inline hbg_lt_problem hbg_lt_gemm(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                                                      int64_t ldc) {
    hbg_lt_problem p = {N, M, K, ldb, lda, ldc, false};
    return p;
}

/* Element (i, j) of op(A) for a column-major A with leading dimension lda (what cuBLASLt reads). */
__host__ __device__ inline int64_t hbg_colmajor_op_index(int64_t i, int64_t j, int64_t ld, bool trans) {
    return trans ? j + i * ld : i + j * ld;
}

/* Largest power of two (<= 256) dividing the address and the leading dimension in bytes: the alignment the
 * heuristic may assume for a matrix (its default, 256, would allow algorithms our sub-allocated pointers break). */
static inline uint32_t hbg_alignment(const void *p, int64_t ld, size_t esize) {
    uint64_t a = (uint64_t)(uintptr_t)p | (uint64_t)ld * (uint64_t)esize | 256u;
    return (uint32_t)(a & (~a + 1));
}

/* ---------- cuBLASLt state ---------- */
namespace {

enum { SLOT_X = 0, SLOT_WS = 1, SLOT_EPI = 2 };
constexpr size_t WORKSPACE_BYTES = 32u << 20;
constexpr int MAX_DEVICES = 64;
constexpr size_t MAX_PLANS = 1024;

enum gemm_kind { KIND_LINEAR_BF16 = 0, KIND_LINEAR_F32 = 1, KIND_GEMM_F32 = 2, KIND_LINEAR_FP8 = 3 };

struct plan_key {
    int dev, kind, bias, tf32, fast_accum;
    int64_t m, n, k, lda, ldb, ldd;
    uint32_t al_a, al_b, al_d, al_bias;
    bool operator==(const plan_key &o) const { return memcmp(this, &o, sizeof *this) == 0; }
};

struct plan {
    plan_key key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    bool bias_in_epilogue; /* false: the bias is added by add_bias_rows after the matmul */
    bool usable;           /* false: the heuristic found no algorithm (cached so it is not asked again) */
};

std::mutex g_mutex;
cublasLtHandle_t g_handle[MAX_DEVICES];
std::vector<plan> g_plans;

bool env_flag(const char *name) {
    const char *e = getenv(name);
    return e && e[0] && strcmp(e, "0") != 0;
}

cublasLtHandle_t handle_for(int dev) {
    if (dev < 0 || dev >= MAX_DEVICES) return nullptr;
    if (!g_handle[dev]) {
        cublasLtHandle_t h = nullptr;
        if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) return nullptr;
        g_handle[dev] = h;
    }
    return g_handle[dev];
}

void plan_destroy(plan &p) {
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
    if (p.la) cublasLtMatrixLayoutDestroy(p.la);
    if (p.lb) cublasLtMatrixLayoutDestroy(p.lb);
    if (p.ld) cublasLtMatrixLayoutDestroy(p.ld);
}

/* Build descriptors and query the heuristic once (with the bias epilogue when asked; if no algorithm supports
 * it, without, and the bias goes to a separate kernel). Returns false (message recorded) when descriptors cannot
 * be made; a plan without an algorithm is returned with usable = false and no message. */
bool plan_make(cublasLtHandle_t h, const plan_key &k, const void *bias, const float *const scales[2], plan *out) {
    memset(out, 0, sizeof *out);
    out->key = k;
    cudaDataType_t ab = k.kind == KIND_LINEAR_BF16 ? CUDA_R_16BF : CUDA_R_32F;
#if !defined(HB_HIP)
    if (k.kind == KIND_LINEAR_FP8) ab = CUDA_R_8F_E4M3;
#endif
    cublasComputeType_t ct = k.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cublasOperation_t ta = k.kind == KIND_GEMM_F32 ? CUBLAS_OP_N : CUBLAS_OP_T, tb = CUBLAS_OP_N;
    /* stored (not op) shapes: A is k x m when transposed, m x k otherwise; B is k x n; D is m x n */
    uint64_t ar = ta == CUBLAS_OP_T ? (uint64_t)k.k : (uint64_t)k.m, ac = ta == CUBLAS_OP_T ? (uint64_t)k.m : (uint64_t)k.k;
    if (cublasLtMatmulDescCreate(&out->desc, ct, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&out->la, ab, ar, ac, k.lda) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&out->lb, ab, (uint64_t)k.k, (uint64_t)k.n, k.ldb) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&out->ld, CUDA_R_32F, (uint64_t)k.m, (uint64_t)k.n, k.ldd) != CUBLAS_STATUS_SUCCESS) {
        plan_destroy(*out);
        hbg_fail("cuBLASLt: cannot create descriptors for a %lldx%lldx%lld GEMM", (long long)k.m, (long long)k.n,
                 (long long)k.k);
        return false;
    }
#if !defined(HB_HIP)
    if (k.kind == KIND_LINEAR_FP8) {
        int8_t fast = (int8_t)k.fast_accum;
        if (cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scales[0],
                                           sizeof scales[0]) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scales[1],
                                           sizeof scales[1]) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast) !=
                CUBLAS_STATUS_SUCCESS) {
            plan_destroy(*out);
            hbg_fail("cuBLASLt: cannot set the fp8 scale pointers");
            return false;
        }
    }
#else
    (void)scales;
#endif
    cublasLtMatmulPreference_t pref = nullptr;
    uint64_t ws = WORKSPACE_BYTES;
    bool ok = cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) ==
                  CUBLAS_STATUS_SUCCESS;
#if !defined(HB_HIP)
    ok = ok &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &k.al_a, sizeof k.al_a) ==
             CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &k.al_b, sizeof k.al_b) ==
             CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &k.al_d, sizeof k.al_d) ==
             CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &k.al_d, sizeof k.al_d) ==
             CUBLAS_STATUS_SUCCESS;
#endif
    if (!ok) {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        plan_destroy(*out);
        hbg_fail("cuBLASLt: cannot set the algorithm preferences");
        return false;
    }
    int found = 0;
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    for (int attempt = k.bias ? 0 : 1; attempt < 2 && !found; attempt++) {
        cublasLtEpilogue_t epi = attempt == 0 ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
        if (cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) !=
            CUBLAS_STATUS_SUCCESS)
            continue;
        if (attempt == 0 && cublasLtMatmulDescSetAttribute(out->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                           sizeof bias) != CUBLAS_STATUS_SUCCESS)
            continue;
        if (cublasLtMatmulAlgoGetHeuristic(h, out->desc, out->la, out->lb, out->ld, out->ld, pref, 1, &res, &found) !=
                CUBLAS_STATUS_SUCCESS ||
            res.state != CUBLAS_STATUS_SUCCESS)
            found = 0;
        out->bias_in_epilogue = found && attempt == 0;
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (!found) {
        plan_destroy(*out);
        out->desc = nullptr, out->la = out->lb = out->ld = nullptr;
        out->usable = false;
        return true;
    }
    out->algo = res.algo;
    out->usable = true;
    return true;
}

/* y[r*ldy + j] (+)= b[j] (0 when b is NULL) for r < M, j < N: the bias after a matmul whose epilogue could not
 * take it, or the whole result when K == 0. */
__global__ void add_bias_rows(float *y, int64_t ldy, const float *b, int64_t M, int64_t N, bool accumulate) {
    int64_t total = M * N;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / N, j = i - r * N;
        float v = b ? b[j] : 0.0f;
        float *o = y + r * ldy + j;
        *o = accumulate ? *o + v : v;
    }
}

void launch_bias_rows(float *y, int64_t ldy, const float *b, int64_t M, int64_t N, bool accumulate) {
    int64_t total = M * N;
    int64_t blocks = (total + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    add_bias_rows<<<(unsigned)blocks, 256, 0, hbg_stream()>>>(y, ldy, b, M, N, accumulate);
    HBG_LAUNCHED("add_bias_rows");
}

int no_algorithm(const plan_key &k) {
    return hbg_fail("cuBLASLt: no algorithm for a %s %lldx%lldx%lld GEMM (ld %lld/%lld/%lld, alignments %u/%u/%u)",
                    k.kind == KIND_LINEAR_BF16 ? "bf16" : k.kind == KIND_LINEAR_FP8 ? "fp8" : "f32", (long long)k.m, (long long)k.n, (long long)k.k,
                    (long long)k.lda, (long long)k.ldb, (long long)k.ldd, k.al_a, k.al_b, k.al_d);
}

/* D (+)= op(A) op(B) (+ bias) with the plan for this key. beta = 1 when accumulating (C = D). `scales`: the fp8
 * plans' A and B dequantisation scales (device floats; NULL otherwise).
 * 0 queued, -1 error (recorded), 1 no algorithm for this problem (nothing recorded, nothing queued). */
int run_matmul(plan_key key, const void *A, const void *B, float *D, const float *bias, bool accumulate,
               const float *const scales[2] = nullptr) {
    static const float *const no_scales[2] = {nullptr, nullptr};
    if (!scales) scales = no_scales;
    int dev = 0;
    if (hbg_check(HBG_GET_DEVICE(&dev), "cudaGetDevice")) return -1;
    key.dev = dev;
    void *ws = hbg_scratch(SLOT_WS, WORKSPACE_BYTES);
    if (!ws) return -1;
    std::lock_guard<std::mutex> lock(g_mutex);
    cublasLtHandle_t h = handle_for(dev);
    if (!h) return hbg_fail("cuBLASLt: cannot create a handle for device %d", dev);
    plan *p = nullptr;
    for (plan &q : g_plans)
        if (q.key == key) { p = &q; break; }
    if (!p) {
        if (g_plans.size() >= MAX_PLANS) { /* shapes keep changing: start over rather than grow without bound */
            for (plan &q : g_plans) plan_destroy(q);
            g_plans.clear();
        }
        plan np;
        if (!plan_make(h, key, bias, scales, &np)) return -1;
        g_plans.push_back(np);
        p = &g_plans.back();
    }
    if (!p->usable) return 1;
    if (p->bias_in_epilogue &&
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) !=
            CUBLAS_STATUS_SUCCESS)
        return hbg_fail("cuBLASLt: cannot set the bias pointer");
#if !defined(HB_HIP)
    if (key.kind == KIND_LINEAR_FP8 &&
        (cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scales[0], sizeof scales[0]) !=
             CUBLAS_STATUS_SUCCESS ||
         cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scales[1], sizeof scales[1]) !=
             CUBLAS_STATUS_SUCCESS))
        return hbg_fail("cuBLASLt: cannot set the fp8 scale pointers");
#endif
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasStatus_t st = cublasLtMatmul(h, p->desc, &alpha, A, p->la, B, p->lb, &beta, D, p->ld, D, p->ld, &p->algo, ws,
                                       WORKSPACE_BYTES, hbg_stream());
    if (st != CUBLAS_STATUS_SUCCESS)
        return hbg_fail("cuBLASLt matmul failed (status %d) for %lldx%lldx%lld", (int)st, (long long)key.m,
                        (long long)key.n, (long long)key.k);
    if (bias && !p->bias_in_epilogue) launch_bias_rows(D, key.ldd, bias, key.n, key.m, true);
    return 0;
}

#if !defined(HB_HIP)
/* ---------- fp8 activations: per-tensor amax scale on the device, then e4m3 ---------- */
constexpr int AMAX_THREADS = 256, AMAX_BLOCKS = 256;

/* part[b] = max |x_i| over block b's grid-stride share (NaNs ignored). */
__global__ void __launch_bounds__(AMAX_THREADS) amax_partial(float *part, const float *x, int64_t n) {
    __shared__ float sm[AMAX_THREADS];
    float m = 0.0f;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        m = fmaxf(m, fabsf(x[i]));
    sm[threadIdx.x] = m;
    __syncthreads();
    for (int s = AMAX_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sm[threadIdx.x] = fmaxf(sm[threadIdx.x], sm[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sm[0];
}

/* One block: *scale = max(part) / 448 (1 when the maximum is 0 or not finite). */
__global__ void __launch_bounds__(AMAX_THREADS) amax_finish(float *scale, const float *part, int nb) {
    __shared__ float sm[AMAX_THREADS];
    float m = 0.0f;
    for (int i = (int)threadIdx.x; i < nb; i += AMAX_THREADS) m = fmaxf(m, part[i]);
    sm[threadIdx.x] = m;
    __syncthreads();
    for (int s = AMAX_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sm[threadIdx.x] = fmaxf(sm[threadIdx.x], sm[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float a = sm[0];
        *scale = a > 0.0f && a <= 3.402823466e38f ? a / 448.0f : 1.0f;
    }
}

__global__ void to_e4m3(uint8_t *q, const float *x, int64_t n, const float *scale) {
    const float s = *scale;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        q[i] = hbg_f32_to_e4m3(x[i] / s);
}

/* The fp8 linear, or 1 when it does not apply (the caller runs the bf16 path): device older than sm_89, K or N not
 * a multiple of 16, y not 16-byte aligned, or no cuBLASLt algorithm. 0 queued, -1 error. */
int linear_fp8(float *y, const float *x, int64_t M, int64_t N, int64_t K, const hb_tensor *w, const float *bias,
               bool accumulate) {
    const gpuDeviceProp *pr = hbg_props();
    if (!pr || pr->major * 10 + pr->minor < 89 || K % 16 || N % 16 || (uintptr_t)y % 16) return 1;
    const uint8_t *wq = (const uint8_t *)hbg_weight(w, HBG_W_FP8);
    if (!wq) return -1;
    const int64_t n = M * K;
    const size_t off = hbg_fp8_scale_offset(n);
    uint8_t *xq = (uint8_t *)hbg_scratch(SLOT_X, off + 16 + sizeof(float) * AMAX_BLOCKS);
    if (!xq) return -1;
    float *xscale = (float *)(xq + off), *part = xscale + 4;
    unsigned nb = hbg_blocks(n, AMAX_THREADS);
    if (nb > (unsigned)AMAX_BLOCKS) nb = AMAX_BLOCKS;
    amax_partial<<<nb, AMAX_THREADS, 0, hbg_stream()>>>(part, x, n);
    if (HBG_LAUNCHED("amax_partial")) return -1;
    amax_finish<<<1, AMAX_THREADS, 0, hbg_stream()>>>(xscale, part, (int)nb);
    if (HBG_LAUNCHED("amax_finish")) return -1;
    to_e4m3<<<hbg_blocks(n, 256), 256, 0, hbg_stream()>>>(xq, x, n, xscale);
    if (HBG_LAUNCHED("to_e4m3")) return -1;
    hbg_lt_problem p = hbg_lt_linear(M, N, K);
    plan_key key;
    memset(&key, 0, sizeof key);
    key.kind = KIND_LINEAR_FP8;
    key.fast_accum = env_flag("HB_GPU_FP8_FAST");
    key.m = p.m, key.n = p.n, key.k = p.k, key.lda = p.lda, key.ldb = p.ldb, key.ldd = p.ldd;
    key.al_a = hbg_alignment(wq, p.lda, 1);
    key.al_b = hbg_alignment(xq, p.ldb, 1);
    key.al_d = hbg_alignment(y, p.ldd, sizeof(float));
    const float *const scales[2] = {(const float *)(wq + hbg_fp8_scale_offset(N * K)), xscale};
    return run_matmul(key, wq, xq, y, bias, accumulate, scales); /* bias: key.bias = 0, so a separate kernel */
}
#endif

} // namespace

int hbg_linear(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate) {
    int64_t N = w->shape[0], K = w->shape[1]; /* arguments checked by the dispatcher (src/ops/dispatch.c) */
    if (M <= 0 || N <= 0) return 0;
    const float *bias = nullptr;
    if (b && !(bias = (const float *)hbg_weight(b, HBG_W_F32))) return -1;
    if (K <= 0) { /* empty product: y = (y +) b */
        launch_bias_rows(y, N, bias, M, N, accumulate);
        return 0;
    }
    bool precise = env_flag("HB_GPU_PRECISE");
#if !defined(HB_HIP)
    if (!precise && env_flag("HB_GPU_FP8")) {
        int r8 = linear_fp8(y, x, M, N, K, w, bias, accumulate);
        if (r8 != 1) return r8;
    }
#endif
    const void *wd = hbg_weight(w, precise ? HBG_W_F32 : HBG_W_BF16);
    if (!wd) return -1;
    const void *xd = x;
    size_t es = precise ? sizeof(float) : sizeof(gpu_bf16);
    if (!precise) {
        gpu_bf16 *xb = (gpu_bf16 *)hbg_scratch(SLOT_X, (size_t)(M * K) * sizeof(gpu_bf16));
        if (!xb) return -1;
        hbg_to_bf16(xb, x, M * K);
        xd = xb;
    }
    hbg_lt_problem pr = hbg_lt_linear(M, N, K);
    plan_key key;
    memset(&key, 0, sizeof key); /* padding too: keys compare with memcmp */
    key.kind = precise ? KIND_LINEAR_F32 : KIND_LINEAR_BF16;
    key.bias = bias != nullptr;
    key.tf32 = precise && env_flag("HB_GPU_TF32");
    key.m = pr.m, key.n = pr.n, key.k = pr.k, key.lda = pr.lda, key.ldb = pr.ldb, key.ldd = pr.ldd;
    key.al_a = hbg_alignment(wd, pr.lda, es);
    key.al_b = hbg_alignment(xd, pr.ldb, es);
    key.al_d = hbg_alignment(y, pr.ldd, sizeof(float));
    key.al_bias = bias ? hbg_alignment(bias, 0, sizeof(float)) : 0;
    int r = run_matmul(key, wd, xd, y, bias, accumulate);
    if (r == 1 && !precise) { /* no bf16 algorithm for this shape/alignment: the f32 GEMM instead */
        if (!(wd = hbg_weight(w, HBG_W_F32))) return -1;
        key.kind = KIND_LINEAR_F32;
        key.al_a = hbg_alignment(wd, pr.lda, sizeof(float));
        key.al_b = hbg_alignment(x, pr.ldb, sizeof(float));
        r = run_matmul(key, wd, x, y, bias, accumulate);
    }
    return r == 1 ? no_algorithm(key) : r;
}

/* hb_linear_ep: the cuBLASLt product, then the epilogue by the kernels of the composed ops (hb_gelu_tanh, hb_add,
 * hb_gated_add), so the bits are theirs; one more pass over y. */
int hbg_linear_ep(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, hb_epilogue ep) {
    const int64_t N = w->shape[0];
    if (M <= 0 || N <= 0) return 0;
    if (ep.op == HB_EPI_NONE || ep.op == HB_EPI_GELU_TANH) {
        if (hbg_linear(y, x, M, w, b, false)) return -1;
        if (ep.op == HB_EPI_GELU_TANH) hbg_elementwise(HB_EW_GELU_TANH, y, y, nullptr, 0, 0, M * N);
        return 0;
    }
    float *p = (float *)hbg_scratch(SLOT_EPI, sizeof(float) * (size_t)(M * N));
    if (!p || hbg_linear(p, x, M, w, b, false)) return -1;
    if (ep.op == HB_EPI_ADD) {
        hbg_elementwise(HB_EW_ADD, y, y, p, 0, 0, M * N);
        return 0;
    }
    /* row r gates with the group of row0 + r: the rows before row0's next group boundary, then whole groups */
    const int64_t rpg = ep.g.rows_per_group, gs = ep.g.group_stride;
    int64_t head = rpg > 0 && ep.row0 % rpg ? rpg - ep.row0 % rpg : 0;
    if (head > M) head = M;
    if (head > 0) hbg_gated_add(y, p, head, N, ep.gate + ep.row0 / rpg * gs, hb_modgroups{0, 0});
    if (head < M)
        hbg_gated_add(y + head * N, p + head * N, M - head, N, ep.gate + (rpg > 0 ? (ep.row0 + head) / rpg * gs : 0),
                      ep.g);
    return 0;
}

void hbg_gemm_f32(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                  int64_t N, int64_t K, bool accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) launch_bias_rows(C, ldc, nullptr, M, N, false); /* C = 0 */
        return;
    }
    hbg_lt_problem pr = hbg_lt_gemm(M, N, K, lda, ldb, ldc);
    plan_key key;
    memset(&key, 0, sizeof key);
    key.kind = KIND_GEMM_F32;
    key.tf32 = env_flag("HB_GPU_TF32") && !env_flag("HB_GPU_PRECISE");
    key.m = pr.m, key.n = pr.n, key.k = pr.k, key.lda = pr.lda, key.ldb = pr.ldb, key.ldd = pr.ldd;
    key.al_a = hbg_alignment(B, pr.lda, sizeof(float));
    key.al_b = hbg_alignment(A, pr.ldb, sizeof(float));
    key.al_d = hbg_alignment(C, pr.ldd, sizeof(float));
    if (run_matmul(key, B, A, C, nullptr, accumulate) == 1) no_algorithm(key);
}
