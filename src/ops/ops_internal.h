/* ops internals shared by the src/ops/cpu_*.c files (not part of the public API). */
#ifndef HB_OPS_INTERNAL_H
#define HB_OPS_INTERNAL_H

#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {  /* the CUDA/HIP backend is compiled as C++ */
#endif

/* Serial (single-thread, deterministic) GEMM: C[M,N] (+)= A[M,K] * op(B).
 * b_trans = false: B is [K,N] with row stride ldb; b_trans = true: B is [N,K] with row stride ldb (B^T used).
 * The result of each element depends only on (M, N, K, b_trans) and the data, never on the caller's thread. */
void hb__gemm_serial(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, bool b_trans,
                     int64_t M, int64_t N, int64_t K, bool accumulate);

/* A pre-packed A operand (reused by many GEMMs with the same A: conv weights, attention queries):
 * hb__gemm_pack_a_size(M, K) floats (64-byte aligned buffer), then hb__gemm_serial_pa computes C (+)= A * op(B)
 * exactly as hb__gemm_serial would. Packing is path independent; the pack is valid for any path. */
size_t hb__gemm_pack_a_size(int64_t M, int64_t K);
void hb__gemm_pack_a(float *dst, const float *A, int64_t lda, int64_t M, int64_t K);
void hb__gemm_serial_pa(float *C, int64_t ldc, const float *Ap, const float *B, int64_t ldb, bool b_trans, int64_t M,
                        int64_t N, int64_t K, bool accumulate);

/* A pre-packed B operand of one block (N <= 256, K <= 256; -1 otherwise): hb__gemm_pack_b_size(N, K) floats
 * (64-byte aligned). hb__gemm_serial_pb computes C (+)= A * B with A given plain (A, lda) or pre-packed (Ap). */
size_t hb__gemm_pack_b_size(int64_t N, int64_t K);
int hb__gemm_pack_b(float *dst, const float *B, int64_t ldb, bool b_trans, int64_t N, int64_t K);
void hb__gemm_serial_pb(float *C, int64_t ldc, const float *A, int64_t lda, const float *Ap, const float *Bp, int64_t M,
                        int64_t N, int64_t K, bool accumulate);

/* Implicit GEMM: B is never stored; fn(ctx, dst, n0, nn, k0, kc) writes B[k0:k0+kc, n0:n0+nn] into the packed
 * layout: for the column strip starting at s (s = 0, 16, 32, ...), element (k, s + j) at dst[s*kc + (k-k0)*16 + j],
 * columns past nn zero. */
#define HB_GEMM_NR 16
typedef void (*hb__packb_fn)(void *ctx, float *dst, int64_t n0, int64_t nn, int64_t k0, int64_t kc);
void hb__gemm_serial_pa_cb(float *C, int64_t ldc, const float *Ap, hb__packb_fn fn, void *ctx, int64_t M, int64_t N,
                           int64_t K, bool accumulate);

/* Rows [n0, n0+rows) columns [k0, k0+kn) of a 2-D float weight (F32/BF16/F16, row stride w->stride[0]) as f32
 * into dst (row stride ld). */
void hb__weight_rows_f32(const hb_tensor *w, int64_t n0, int64_t rows, int64_t k0, int64_t kn, float *dst, int64_t ld);

/* A 1-D parameter vector (any float dtype, contiguous or strided) as f32: returns a malloc'ed copy (NULL if t is
 * NULL or on failure). n must equal the element count (checked by the caller). */
float *hb__vec_f32(const hb_tensor *t, int64_t n);

/* Which GEMM code path is active ("avx2", "generic", "openblas"...). */
const char *hb__gemm_path(void);
/* Force a GEMM path ("avx2", "generic", "openblas"); -1 if not available here. For benchmarks and tests. */
int hb__gemm_select(const char *name);
bool hb__have_avx2(void);
/* OpenBLAS's cblas_sgemm (row-major = 101, no-trans = 111, trans = 112), loaded single-threaded on first call;
 * NULL when this build or machine has no OpenBLAS (ops/cpu_blas.c). */
/* A CPU kernel of the table that returns nothing (norms, attention, rope, ...) and could not run (out of memory)
 * records why here, from any thread; the backend's next sync reports the first such failure and clears it, as a
 * GPU backend reports its queued work's errors. */
void hb__cpu_fail(const char *what);
int hb__cpu_sync(void);
typedef void (*hb_blas_sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
hb_blas_sgemm_fn hb__blas_sgemm(void);
/* Whether the other kernels should use their AVX2 code: AVX2 present and the GEMM path is not "generic"
 * (HB_GEMM=generic makes every kernel portable C). */
bool hb__simd_avx2(void);

/* The CPU backend's kernels, hb_cpu_<name> for every op of ops/ops_list.h (the hb_backend_cpu() table). Backends
 * are reached only through the dispatchers of dispatch.c, which check every op's arguments once for every
 * backend, so the kernels may assume them. */
#define HB_OP(ret, name, params, args) ret hb_cpu_##name params;
#include "ops/ops_list.h"
#undef HB_OP

/* A GPU backend when this build has one: "cuda" / "cuda:N" (NULL + message otherwise). */
const hb_backend *hb__backend_gpu(const char *device);

#ifdef __cplusplus
}
#endif

#endif
