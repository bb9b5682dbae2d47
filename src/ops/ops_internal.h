/* ops internals shared by the src/ops/cpu_*.c files (not part of the public API). */
#ifndef HB_OPS_INTERNAL_H
#define HB_OPS_INTERNAL_H

#include "ops/ops.h"

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
/* Whether the other kernels should use their AVX2 code: AVX2 present and the GEMM path is not "generic"
 * (HB_GEMM=generic makes every kernel portable C). */
bool hb__simd_avx2(void);

#endif
