/* GEMM: hb_linear (f32 activations x F32/BF16/F16 or GGUF block-quantized weights), hb_gemm_f32, and the serial GEMM used inside other
 * kernels (attention, conv).
 *
 * Code paths (picked once at run time, HB_GEMM=avx2|generic|openblas overrides):
 *  - "avx2": our packed GEMM, BLIS-style: B (the weights) packed KC x 16 panels, converted from BF16/F16 while
 *    packing; A packed MC x KC in 6-row strips; a 6x16 AVX2/FMA micro-kernel (12 ymm accumulators). hb_linear's
 *    tiles (<= MC rows, <= 4 NC columns) pack each operand once; MS rows of A are swept per B micro-panel; the
 *    epilogue (bias, hb_linear_ep's GELU / add / gated add) runs on each finished 6 x 16 tile while it is in L1.
 *  - "generic": the same packing with a plain-C micro-kernel (any CPU).
 *  Block-quantized weights (Q8_0 ... Q6_K) are dequantized a KC x NC tile at a time while packing (exact
 *  ggml values), so they run the same micro-kernels and give the bits of their dequantized F32 weights.
 *  - "openblas": OpenBLAS sgemm, single-threaded, called per output tile, with non-F32 weights converted panel
 *    by panel into an f32 buffer.
 * Determinism: K is only ever split into fixed KC blocks summed in order; threads split the output into tiles.
 * Every output element therefore sees the same arithmetic for any thread count. */
#include "ops/ops_internal.h"
#include "ops/simd_avx2.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HB_X86 1
#endif

#define MR 6
#define NR 16
#ifndef KC
#define KC 256
#endif
#ifndef MC
#define MC 576
#endif
#ifndef NC
#define NC 256
#endif

/* ---------- weight conversion helpers ---------- */

void hb__weight_rows_f32(const hb_tensor *w, int64_t n0, int64_t rows, int64_t k0, int64_t kn, float *dst, int64_t ld) {
    size_t es = hb_dtype_size(w->dtype);
    for (int64_t r = 0; r < rows; r++) {
        /* (block formats: rows contiguous, k0 and kn whole blocks; hb_convert_to_f32 dequantizes) */
        const uint8_t *src = (const uint8_t *)w->data + hb_dtype_bytes(w->dtype, (n0 + r) * w->stride[0] + k0 * w->stride[1]);
        if (w->stride[1] == 1) {
            hb_convert_to_f32(dst + r * ld, src, w->dtype, (size_t)kn);
        } else {
            for (int64_t k = 0; k < kn; k++)
                hb_convert_to_f32(dst + r * ld + k, src + k * w->stride[1] * (int64_t)es, w->dtype, 1);
        }
    }
}

float *hb__vec_f32(const hb_tensor *t, int64_t n) {
    if (!t) return NULL;
    float *v = hb_malloc((size_t)(n > 0 ? n : 1) * sizeof(float), "parameter vector");
    if (!v) return NULL;
    /* [n] or [n, 1, 1, ...] or [1, n]: the stride of the one dimension longer than 1 */
    int64_t st = 1;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 1) st = t->stride[d];
    size_t es = hb_dtype_size(t->dtype);
    if (st == 1) hb_convert_to_f32(v, t->data, t->dtype, (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) hb_convert_to_f32(v + i, (const uint8_t *)t->data + i * st * (int64_t)es, t->dtype, 1);
    return v;
}

static inline float bf16f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

/* ---------- path selection ---------- */

enum { PATH_GENERIC = 0, PATH_AVX2 = 1, PATH_OPENBLAS = 2 };
static int g_path = -1;
static pthread_once_t g_path_once = PTHREAD_ONCE_INIT;

static bool have_f16c(void) {
#ifdef HB_X86
    /* CPUID leaf 1, ECX bit 29 (clang 14's __builtin_cpu_supports has no "f16c"); asked once: cpuid traps to the
     * hypervisor in a VM, and the packing loops ask for every panel */
    static _Atomic int known = -1;
    int k = known;
    if (k < 0) {
        unsigned a, b, c, d;
        known = k = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    }
    return k;
#else
    return false;
#endif
}

static void path_init(void) {
    const char *e = getenv("HB_GEMM");
    int p = hb__have_avx2() && have_f16c() ? PATH_AVX2 : PATH_GENERIC;
    if (e && *e) {
        if (!strcmp(e, "generic")) p = PATH_GENERIC;
        else if (!strcmp(e, "avx2") && hb__have_avx2() && have_f16c()) p = PATH_AVX2;
#ifdef HB_HAVE_OPENBLAS
        else if (!strcmp(e, "openblas") && hb__blas_sgemm()) p = PATH_OPENBLAS;
#endif
        else hb_log(HB_LOG_WARN, "HB_GEMM=%s is not available here; using the default GEMM", e);
    }
    g_path = p;
}

static int path(void) {
    if (g_path < 0) pthread_once(&g_path_once, path_init);
    return g_path;
}

int hb__gemm_select(const char *name) {
    path();
    if (!strcmp(name, "generic")) g_path = PATH_GENERIC;
    else if (!strcmp(name, "avx2") && hb__have_avx2() && have_f16c()) g_path = PATH_AVX2;
#ifdef HB_HAVE_OPENBLAS
    else if (!strcmp(name, "openblas") && hb__blas_sgemm()) g_path = PATH_OPENBLAS;
#endif
    else return -1;
    return 0;
}

bool hb__simd_avx2(void) { return path() != PATH_GENERIC && hb__have_avx2() && have_f16c(); }

const char *hb__gemm_path(void) {
    static const char *names[3] = {"generic", "avx2", "openblas"};
    return names[path()];
}

/* ---------- B sources and packing ---------- */

/* B element (k, n) at base + (n * sn + k * sk) elements, dtype t. b_trans weights: sn = row stride, sk = 1. */
typedef struct {
    const void *base; hb_dtype t; int64_t sn, sk;
    hb__packb_fn fn; void *ctx; /* when set: B is produced by fn straight into the packed layout (implicit GEMM) */
    const float *bpre;          /* when set: B already packed (one block: N <= NC, K <= KC) */
} bsrc;

static inline float bget(const bsrc *b, int64_t n, int64_t k) {
    int64_t i = n * b->sn + k * b->sk;
    switch (b->t) {
    case HB_F32: return ((const float *)b->base)[i];
    case HB_BF16: return bf16f(((const uint16_t *)b->base)[i]);
    default: return hb_f16_to_f32(((const uint16_t *)b->base)[i]);
    }
}

/* Pack B[k0:k0+kc, n0:n0+nn] into strips of NR columns: dst[s][k][j] (zero-padded columns). */
static void pack_b_generic(float *dst, const bsrc *b, int64_t n0, int64_t nn, int64_t k0, int64_t kc) {
    for (int64_t s = 0; s < nn; s += NR) {
        int64_t w = nn - s < NR ? nn - s : NR;
        float *d = dst + s * kc;
        if (b->sk == 1) {
            for (int64_t j = 0; j < w; j++)
                for (int64_t k = 0; k < kc; k++) d[k * NR + j] = bget(b, n0 + s + j, k0 + k);
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t j = 0; j < w; j++) d[k * NR + j] = bget(b, n0 + s + j, k0 + k);
        }
        if (w < NR)
            for (int64_t k = 0; k < kc; k++)
                for (int64_t j = w; j < NR; j++) d[k * NR + j] = 0;
    }
}

/* Pack A[m0:m0+mm, k0:k0+kc] (f32, row stride lda) into strips of MR rows: dst[s][k][i]. */
static void pack_a(float *dst, const float *A, int64_t lda, int64_t mm, int64_t k0, int64_t kc) {
    for (int64_t s = 0; s < mm; s += MR) {
        int64_t h = mm - s < MR ? mm - s : MR;
        float *d = dst + s * kc;
        const float *a = A + s * lda + k0;
        if (h == MR) {
            for (int64_t k = 0; k < kc; k++)
                for (int i = 0; i < MR; i++) d[k * MR + i] = a[i * lda + k];
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int i = 0; i < MR; i++) d[k * MR + i] = i < h ? a[i * lda + k] : 0.0f;
        }
    }
}

#ifdef HB_X86
/* Full 6-row strips: 6 rows x 8 k through an 8x8 transpose (2 zero rows), stored 6 floats per k. */
__attribute__((target("avx2,fma"))) static void pack_a_avx2(float *dst, const float *A, int64_t lda, int64_t mm,
                                                              int64_t k0, int64_t kc) {
    int64_t full = mm / MR * MR, kc8 = kc / 8 * 8;
    for (int64_t s = 0; s < full; s += MR) {
        float *d = dst + s * kc;
        const float *a = A + s * lda + k0;
        for (int64_t k = 0; k < kc8; k += 8) {
            __m256 r0 = _mm256_loadu_ps(a + k), r1 = _mm256_loadu_ps(a + lda + k), r2 = _mm256_loadu_ps(a + 2 * lda + k),
                   r3 = _mm256_loadu_ps(a + 3 * lda + k), r4 = _mm256_loadu_ps(a + 4 * lda + k),
                   r5 = _mm256_loadu_ps(a + 5 * lda + k), z = _mm256_setzero_ps();
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                   t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   s4 = _mm256_shuffle_ps(t4, z, 0x44), s5 = _mm256_shuffle_ps(t4, z, 0xEE),
                   s6 = _mm256_shuffle_ps(t5, z, 0x44), s7 = _mm256_shuffle_ps(t5, z, 0xEE);
            float *o = d + k * MR;
            /* vector j = (row0..row5 at k+j, 0, 0): 8-wide stores in increasing order, each overwritten tail
             * belongs to the next k; the last one stores only 6 floats */
            _mm256_storeu_ps(o + 0 * MR, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(o + 1 * MR, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(o + 2 * MR, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(o + 3 * MR, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(o + 4 * MR, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(o + 5 * MR, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(o + 6 * MR, _mm256_permute2f128_ps(s2, s6, 0x31));
            __m256 last = _mm256_permute2f128_ps(s3, s7, 0x31);
            _mm_storeu_ps(o + 7 * MR, _mm256_castps256_ps128(last));
            _mm_storel_pi((__m64 *)(o + 7 * MR + 4), _mm256_extractf128_ps(last, 1));
        }
        for (int64_t k = kc8; k < kc; k++)
            for (int i = 0; i < MR; i++) d[k * MR + i] = a[i * lda + k];
    }
    if (full < mm) pack_a(dst + full * kc, A + full * lda, lda, mm - full, k0, kc);
}
#endif

/* ---------- micro-kernels: C[MR,NR] (+)= Ap[kc,MR]^T * Bp[kc,NR] ---------- */

typedef void (*ukr_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool load_c);

static void ukr_generic(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool load_c) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kc; k++, a += MR, b += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

#ifdef HB_X86
__attribute__((target("avx2,fma"))) static void ukr_avx2(int64_t kc, const float *a, const float *b, float *c,
                                                           int64_t ldc, bool load_c) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (load_c) {
        c00 = _mm256_loadu_ps(c + 0 * ldc); c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
        c10 = _mm256_loadu_ps(c + 1 * ldc); c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc); c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc); c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc); c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc); c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
#define HB_UKR_STEP(off_a, off_b)                                                                                    \
    do {                                                                                                             \
        __m256 b0 = _mm256_load_ps(b + (off_b)), b1 = _mm256_load_ps(b + (off_b) + 8), av;                           \
        av = _mm256_broadcast_ss(a + (off_a) + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01); \
        av = _mm256_broadcast_ss(a + (off_a) + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11); \
        av = _mm256_broadcast_ss(a + (off_a) + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21); \
        av = _mm256_broadcast_ss(a + (off_a) + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31); \
        av = _mm256_broadcast_ss(a + (off_a) + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41); \
        av = _mm256_broadcast_ss(a + (off_a) + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51); \
    } while (0)
    /* one k per iteration: with 12 accumulators, 2 B vectors and 1 broadcast all 16 ymm registers are live, and
     * manual 4x unrolling made GCC spill accumulators (0.55 of peak); a plain loop unrolled twice reaches ~0.9 */
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++, a += MR, b += NR) HB_UKR_STEP(0, 0);
#undef HB_UKR_STEP
    _mm256_storeu_ps(c + 0 * ldc, c00); _mm256_storeu_ps(c + 0 * ldc + 8, c01);
    _mm256_storeu_ps(c + 1 * ldc, c10); _mm256_storeu_ps(c + 1 * ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20); _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30); _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40); _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50); _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

/* 8 rows x 8 k of a transposed-layout B (rows contiguous in k) -> dst[k*NR + j] for j in [0,8). */
__attribute__((target("avx2,fma"))) static inline void transpose8_store(__m256 r0, __m256 r1, __m256 r2, __m256 r3,
                                                                         __m256 r4, __m256 r5, __m256 r6, __m256 r7,
                                                                         float *d) {
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44),
           s3 = _mm256_shuffle_ps(t1, t3, 0xEE), s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d + 0 * NR, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(d + 1 * NR, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(d + 2 * NR, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(d + 3 * NR, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(d + 4 * NR, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(d + 5 * NR, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(d + 6 * NR, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(d + 7 * NR, _mm256_permute2f128_ps(s3, s7, 0x31));
}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8_f32(const bsrc *b, int64_t n, int64_t k) {
    int64_t i = n * b->sn + k;
    switch (b->t) {
    case HB_F32: return _mm256_loadu_ps((const float *)b->base + i);
    case HB_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)b->base + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    default: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)b->base + i)));
    }
}

/* Transposed-layout B (sk == 1): full 16-column strips through 8x8 transposes, the rest generic. */
__attribute__((target("avx2,fma,f16c"))) static void pack_b_avx2(float *dst, const bsrc *b, int64_t n0, int64_t nn,
                                                                  int64_t k0, int64_t kc) {
    if (b->sk != 1) {
        if (b->t == HB_F32 && b->sn == 1) { /* row-major [K, N] f32 */
            const float *B = b->base;
            for (int64_t s = 0; s < nn; s += NR) {
                int64_t w = nn - s < NR ? nn - s : NR;
                float *d = dst + s * kc;
                for (int64_t k = 0; k < kc; k++) {
                    const float *src = B + (k0 + k) * b->sk + n0 + s;
                    if (w == NR) {
                        _mm256_store_ps(d + k * NR, _mm256_loadu_ps(src));
                        _mm256_store_ps(d + k * NR + 8, _mm256_loadu_ps(src + 8));
                    } else {
                        for (int64_t j = 0; j < NR; j++) d[k * NR + j] = j < w ? src[j] : 0.0f;
                    }
                }
            }
            return;
        }
        pack_b_generic(dst, b, n0, nn, k0, kc);
        return;
    }
    int64_t full = nn / NR * NR, kc8 = kc / 8 * 8;
    for (int64_t s = 0; s < full; s += NR) {
        float *d = dst + s * kc;
        for (int half = 0; half < 2; half++) {
            int64_t n = n0 + s + half * 8;
            for (int64_t k = 0; k < kc8; k += 8)
                transpose8_store(load8_f32(b, n, k0 + k), load8_f32(b, n + 1, k0 + k), load8_f32(b, n + 2, k0 + k),
                                 load8_f32(b, n + 3, k0 + k), load8_f32(b, n + 4, k0 + k), load8_f32(b, n + 5, k0 + k),
                                 load8_f32(b, n + 6, k0 + k), load8_f32(b, n + 7, k0 + k), d + k * NR + half * 8);
            for (int64_t k = kc8; k < kc; k++)
                for (int j = 0; j < 8; j++) d[k * NR + half * 8 + j] = bget(b, n + j, k0 + k);
        }
    }
    if (full < nn) pack_b_generic(dst + full * kc, b, n0 + full, nn - full, k0, kc);
}
#endif

/* Block-quantized B (GGUF weights, sk == 1): each strip's rows [k0, k0+kc) are dequantized to f32 (ggml's exact
 * values) into a row-major scratch, which the f32 packer then transposes (8x8 AVX2 transposes on that path). k0 is
 * a multiple of KC and kc of the block size (K is whole blocks). */
static void pack_b_quant_with(float *dst, const bsrc *b, int64_t n0, int64_t nn, int64_t k0, int64_t kc,
                              void (*packf)(float *, const bsrc *, int64_t, int64_t, int64_t, int64_t)) {
    float rows[NR * KC] __attribute__((aligned(64)));
    for (int64_t s = 0; s < nn; s += NR) {
        int64_t w = nn - s < NR ? nn - s : NR;
        for (int64_t j = 0; j < w; j++)
            hb_dequantize(rows + j * kc, (const uint8_t *)b->base + hb_dtype_bytes(b->t, (n0 + s + j) * b->sn + k0), b->t, kc);
        bsrc f = {rows, HB_F32, kc, 1, NULL, NULL, NULL};
        packf(dst + s * kc, &f, 0, w, 0, kc);
    }
}
static void pack_b_quant(float *dst, const bsrc *b, int64_t n0, int64_t nn, int64_t k0, int64_t kc) {
    pack_b_quant_with(dst, b, n0, nn, k0, kc, pack_b_generic);
}
#ifdef HB_X86
static void pack_b_quant_avx2(float *dst, const bsrc *b, int64_t n0, int64_t nn, int64_t k0, int64_t kc) {
    pack_b_quant_with(dst, b, n0, nn, k0, kc, pack_b_avx2);
}
#endif

/* ---------- epilogues (hb_linear's bias, hb_linear_ep's ops) ---------- */

/* Applied to finished sums c: p = c + bias[col], then out = p, gelu_tanh(p), out + p or out + p * gate. The GELU is
 * hb_elementwise's (8-lane AVX2 formula where it uses that, tanhf otherwise) and the adds hb_add's and
 * hb_gated_add's, so a fused result has the bits of the composed ops. */
typedef struct {
    hb_epilogue_op op;
    const float *bias, *gate; /* bias [N] f32 or NULL; gate as hb_epilogue's */
    hb_modgroups g;
    int64_t row0;
    bool simd;
} epi;

/* Where a gemm_core call's epilogue writes: C(i, j) finishes as out[i * ldo + j], output row row + i, column col + j. */
typedef struct { const epi *e; float *out; int64_t ldo, row, col; } epi_at;

static inline int64_t gate_off(const epi *e, int64_t row) {
    return (e->g.rows_per_group > 0 ? (e->row0 + row) / e->g.rows_per_group : 0) * e->g.group_stride;
}

static inline float epi_one(hb_epilogue_op op, float p, float out, float gate) {
    switch (op) {
    case HB_EPI_GELU_TANH: {
        const float k0 = 0.7978845608028654f, k1 = 0.044715f;
        return 0.5f * p * (1.0f + tanhf(k0 * (p + k1 * p * p * p)));
    }
    case HB_EPI_ADD: return out + p;
    case HB_EPI_GATED_ADD: return out + p * gate;
    default: return p;
    }
}

#ifdef HB_X86
__attribute__((target("avx2,fma"))) static void epi_row_avx2(const epi *e, const float *c, const float *bias,
                                                               const float *gate, float *out, int64_t w) {
    for (int64_t j = 0; j < w; j += 8) {
        float pc[8] = {0}, pb[8] = {0}, pg[8] = {0}, po[8] = {0};
        int64_t n = w - j < 8 ? w - j : 8;
        const float *cj = c + j, *bj = bias ? bias + j : pb, *gj = gate ? gate + j : pg;
        float *oj = out + j;
        if (n < 8) { /* the tail through the same 8-lane code, padded */
            for (int64_t i = 0; i < n; i++) {
                pc[i] = c[j + i]; pb[i] = bias ? bias[j + i] : 0; pg[i] = gate ? gate[j + i] : 0; po[i] = out[j + i];
            }
            cj = pc; bj = pb; gj = pg; oj = po;
        }
        __m256 v = _mm256_loadu_ps(cj);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bj));
        if (e->op == HB_EPI_GELU_TANH) v = gelu_tanh_avx2(v);
        else if (e->op == HB_EPI_ADD) v = _mm256_add_ps(_mm256_loadu_ps(oj), v);
        else if (e->op == HB_EPI_GATED_ADD) v = _mm256_add_ps(_mm256_loadu_ps(oj), _mm256_mul_ps(v, _mm256_loadu_ps(gj)));
        _mm256_storeu_ps(oj, v);
        if (n < 8) memcpy(out + j, po, sizeof(float) * (size_t)n);
    }
}
#endif

/* h x w finished sums c (row stride ldc) -> out (row stride ldo; may be c), output rows row.., columns col.. */
static void epi_apply(const epi *e, const float *c, int64_t ldc, float *out, int64_t ldo, int64_t row, int64_t col,
                      int64_t h, int64_t w) {
    for (int64_t i = 0; i < h; i++) {
        const float *ci = c + i * ldc, *bias = e->bias ? e->bias + col : NULL;
        const float *gate = e->op == HB_EPI_GATED_ADD ? e->gate + gate_off(e, row + i) + col : NULL;
        float *oi = out + i * ldo;
#ifdef HB_X86
        if (e->simd) { epi_row_avx2(e, ci, bias, gate, oi, w); continue; }
#endif
        for (int64_t j = 0; j < w; j++)
            oi[j] = epi_one(e->op, bias ? ci[j] + bias[j] : ci[j], oi[j], gate ? gate[j] : 0.0f);
    }
}

/* ---------- the serial blocked GEMM ---------- */

typedef struct { float *a, *b; } packbuf;

typedef void (*packb_fn)(float *, const bsrc *, int64_t, int64_t, int64_t, int64_t);
typedef void (*packa_fn)(float *, const float *, int64_t, int64_t, int64_t, int64_t);
typedef struct { ukr_fn ukr; packb_fn packb; packa_fn packa; } kernels;

static kernels path_kernels(const bsrc *B, int p) {
    kernels k = {ukr_generic, pack_b_generic, pack_a};
#ifdef HB_X86
    if (p == PATH_AVX2) k = (kernels){ukr_avx2, pack_b_avx2, pack_a_avx2};
#else
    (void)p;
#endif
    if (hb_dtype_is_quant(B->t)) k.packb = pack_b_quant;
#ifdef HB_X86
    if (hb_dtype_is_quant(B->t) && p == PATH_AVX2) k.packb = pack_b_quant_avx2;
#endif
    return k;
}

/* One packed A block [mm, kc] times one packed B block [kc, nn] into C: B micro-panels (kc x NR, L1) stay while
 * the A strips stream from L2; the C rows the next call accumulates into are prefetched during this one. ep (the
 * last K block only): each finished 6 x 16 tile goes through the epilogue while it is in L1. */
static void block_kernel(const kernels *kr, float *C, int64_t ldc, const float *ap, const float *bp, int64_t mm,
                         int64_t nn, int64_t kc, bool load_c, const epi_at *ep) {
    float tmp[MR * NR] __attribute__((aligned(64)));
    for (int64_t js = 0; js < nn; js += NR) {
        int64_t w = nn - js < NR ? nn - js : NR;
        for (int64_t is = 0; is < mm; is += MR) {
            int64_t h = mm - is < MR ? mm - is : MR;
            float *c = C + is * ldc + js;
            if (load_c) { /* the next strip down, or the top of the next column strip */
                const float *nx = is + MR < mm ? c + MR * ldc : C + js + NR;
                int64_t nh = is + MR < mm ? (mm - is - MR < MR ? mm - is - MR : MR) : (js + NR < nn ? MR : 0);
                for (int64_t i = 0; i < nh; i++) {
                    __builtin_prefetch(nx + i * ldc, 1, 3);
                    __builtin_prefetch(nx + i * ldc + NR - 1, 1, 3);
                }
            }
            const float *a = ap + is * kc, *b = bp + js * kc;
            float *o = ep ? ep->out + is * ep->ldo + js : NULL;
            if (h == MR && w == NR) {
                kr->ukr(kc, a, b, c, ldc, load_c);
                if (ep) epi_apply(ep->e, c, ldc, o, ep->ldo, ep->row + is, ep->col + js, h, w);
            } else {
                if (load_c)
                    for (int64_t i = 0; i < h; i++) memcpy(tmp + i * NR, c + i * ldc, sizeof(float) * (size_t)w);
                kr->ukr(kc, a, b, tmp, NR, load_c);
                if (ep) epi_apply(ep->e, tmp, NR, o, ep->ldo, ep->row + is, ep->col + js, h, w);
                else
                    for (int64_t i = 0; i < h; i++) memcpy(c + i * ldc, tmp + i * NR, sizeof(float) * (size_t)w);
            }
        }
    }
}

static const float *b_block(const kernels *kr, const bsrc *B, float *buf, int64_t n0, int64_t nn, int64_t k0,
                            int64_t kc) {
    if (B->bpre) return B->bpre;
    if (B->fn) B->fn(B->ctx, buf, n0, nn, k0, kc);
    else kr->packb(buf, B, n0, nn, k0, kc);
    return buf;
}

/* C[M,N] (+)= A[M,K] * B(k,n), B from a source; buffers: ap MC*KC, bp KC*NC floats. Every element sums its K
 * blocks of KC in order (the loop order only decides what is packed when), so results do not depend on M or N
 * splits. M <= MC (every hb_linear tile): A block packed once per K block and B once per (K, N) block, each
 * operand exactly once. Larger M: B once per (N, K) block, A once per (N, K, M) block. */
static void gemm_core(float *C, int64_t ldc, const float *A, int64_t lda, const float *apre, const bsrc *B, int64_t M,
                      int64_t N, int64_t K, bool acc, packbuf pb, int p, const epi_at *ep) {
    int64_t mpad = (M + MR - 1) / MR * MR;
    kernels kr = path_kernels(B, p);
    if (M <= MC) {
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            const float *abase = pb.a;
            if (apre) abase = apre + k0 * mpad;
            else kr.packa(pb.a, A, lda, M, k0, kc);
            for (int64_t n0 = 0; n0 < N; n0 += NC) {
                int64_t nn = N - n0 < NC ? N - n0 : NC;
                const float *bblk = b_block(&kr, B, pb.b, n0, nn, k0, kc);
                epi_at e = ep ? (epi_at){ep->e, ep->out + n0, ep->ldo, ep->row, ep->col + n0} : (epi_at){0};
                block_kernel(&kr, C + n0, ldc, abase, bblk, M, nn, kc, acc || k0 > 0, ep && k0 + kc == K ? &e : NULL);
            }
        }
        return;
    }
    for (int64_t n0 = 0; n0 < N; n0 += NC) {
        int64_t nn = N - n0 < NC ? N - n0 : NC;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            const float *bblk = b_block(&kr, B, pb.b, n0, nn, k0, kc);
            for (int64_t m0 = 0; m0 < M; m0 += MC) {
                int64_t mm = M - m0 < MC ? M - m0 : MC;
                const float *abase = pb.a;
                if (apre) abase = apre + k0 * mpad + m0 * kc;
                else kr.packa(pb.a, A + m0 * lda, lda, mm, k0, kc);
                epi_at e = ep ? (epi_at){ep->e, ep->out + m0 * ep->ldo + n0, ep->ldo, ep->row + m0, ep->col + n0} : (epi_at){0};
                block_kernel(&kr, C + m0 * ldc + n0, ldc, abase, bblk, mm, nn, kc, acc || k0 > 0,
                             ep && k0 + kc == K ? &e : NULL);
            }
        }
    }
}

/* Per-thread pack buffers, kept for the life of the thread. */
static pthread_key_t g_buf_key;
static pthread_once_t g_buf_once = PTHREAD_ONCE_INIT;
static void buf_free(void *p) { hb_free(p); }
static void buf_key_init(void) { pthread_key_create(&g_buf_key, buf_free); }

static packbuf thread_bufs(void) {
    pthread_once(&g_buf_once, buf_key_init);
    float *p = pthread_getspecific(g_buf_key);
    if (!p) {
        p = hb_malloc(sizeof(float) * (size_t)(MC * KC + KC * NC), "GEMM pack buffers");
        if (!p) return (packbuf){NULL, NULL};
        pthread_setspecific(g_buf_key, p);
    }
    return (packbuf){p, p + MC * KC};
}

/* Serial GEMM on the active path; true when it applied the epilogue ep (NULL: none) to the finished tiles. */
static bool gemm_serial_src(float *C, int64_t ldc, const float *A, int64_t lda, const float *apre, const bsrc *B,
                            int64_t M, int64_t N, int64_t K, bool acc, const epi_at *ep) {
    if (M <= 0 || N <= 0) return true;
    if (K <= 0) {
        if (!acc)
            for (int64_t m = 0; m < M; m++) memset(C + m * ldc, 0, (size_t)N * sizeof(float));
        return false;
    }
    int p = path();
#ifdef HB_HAVE_OPENBLAS
    if (p == PATH_OPENBLAS && !apre && !B->fn && !B->bpre && B->t == HB_F32 && (B->sk == 1 || B->sn == 1)) {
        bool bt = B->sk == 1;
        hb__blas_sgemm()(101, 111, bt ? 112 : 111, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B->base,
                         (int)(bt ? B->sn : B->sk), acc ? 1.0f : 0.0f, C, (int)ldc);
        return false;
    }
    if (p == PATH_OPENBLAS) p = hb__have_avx2() ? PATH_AVX2 : PATH_GENERIC;
#endif
    packbuf pb = thread_bufs();
    if (!pb.a) { /* no slower fallback: its other summation order would change the results silently */
        hb__cpu_fail("GEMM: out of memory for pack buffers");
        return true;
    }
    gemm_core(C, ldc, A, lda, apre, B, M, N, K, acc, pb, p, ep);
    return true;
}

void hb__gemm_serial(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, bool b_trans,
                     int64_t M, int64_t N, int64_t K, bool accumulate) {
    bsrc b = {B, HB_F32, b_trans ? ldb : 1, b_trans ? 1 : ldb, NULL, NULL, NULL};
    gemm_serial_src(C, ldc, A, lda, NULL, &b, M, N, K, accumulate, NULL);
}

size_t hb__gemm_pack_a_size(int64_t M, int64_t K) { return (size_t)((M + MR - 1) / MR * MR) * (size_t)(K > 0 ? K : 1); }

void hb__gemm_pack_a(float *dst, const float *A, int64_t lda, int64_t M, int64_t K) {
    int64_t mpad = (M + MR - 1) / MR * MR;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
#ifdef HB_X86
        if (hb__have_avx2()) { pack_a_avx2(dst + k0 * mpad, A, lda, M, k0, kc); continue; }
#endif
        pack_a(dst + k0 * mpad, A, lda, M, k0, kc);
    }
}

void hb__gemm_serial_pa(float *C, int64_t ldc, const float *Ap, const float *B, int64_t ldb, bool b_trans, int64_t M,
                        int64_t N, int64_t K, bool accumulate) {
    bsrc b = {B, HB_F32, b_trans ? ldb : 1, b_trans ? 1 : ldb, NULL, NULL, NULL};
    gemm_serial_src(C, ldc, NULL, 0, Ap, &b, M, N, K, accumulate, NULL);
}

size_t hb__gemm_pack_b_size(int64_t N, int64_t K) { return (size_t)((N + NR - 1) / NR * NR) * (size_t)(K > 0 ? K : 1); }

int hb__gemm_pack_b(float *dst, const float *B, int64_t ldb, bool b_trans, int64_t N, int64_t K) {
    if (N > NC || K > KC) return -1;
    bsrc b = {B, HB_F32, b_trans ? ldb : 1, b_trans ? 1 : ldb, NULL, NULL, NULL};
#ifdef HB_X86
    if (hb__simd_avx2()) { pack_b_avx2(dst, &b, 0, N, 0, K); return 0; }
#endif
    pack_b_generic(dst, &b, 0, N, 0, K);
    return 0;
}

void hb__gemm_serial_pb(float *C, int64_t ldc, const float *A, int64_t lda, const float *Ap, const float *Bp, int64_t M,
                        int64_t N, int64_t K, bool accumulate) {
    bsrc b = {NULL, HB_F32, 0, 0, NULL, NULL, Bp};
    gemm_serial_src(C, ldc, A, lda, Ap, &b, M, N, K, accumulate, NULL);
}

void hb__gemm_serial_pa_cb(float *C, int64_t ldc, const float *Ap, hb__packb_fn fn, void *ctx, int64_t M, int64_t N,
                           int64_t K, bool accumulate) {
    bsrc b = {NULL, HB_F32, 0, 0, fn, ctx, NULL};
    gemm_serial_src(C, ldc, NULL, 0, Ap, &b, M, N, K, accumulate, NULL);
}

/* ---------- parallel drivers ---------- */

typedef struct {
    float *C; const float *A; bsrc B; const epi *ep;
    int64_t ldc, lda, M, N, K, mb, nb, ntm;
    bool acc;
    const char *oom; /* what could not be allocated */
} tile_job;

/* Fixed tiles: tile t covers rows [tm*mb, ...) and columns [tn*nb, ...), t = tn * ntm + tm. The epilogue runs on
 * each finished micro-tile (our kernels) or on the finished tile (OpenBLAS, K = 0); with ADD / GATED_ADD the sums
 * go to a scratch tile, since C holds the residual they are added to. */
static void tile_run(void *ctx, int64_t b, int64_t e) {
    tile_job *j = ctx;
    int p = path();
    float *panel = NULL, *scratch = NULL;
    int64_t cur_n = -1;
    const bool in_place = !j->ep || j->ep->op == HB_EPI_NONE || j->ep->op == HB_EPI_GELU_TANH;
    if (!in_place && !(scratch = hb_malloc(sizeof(float) * (size_t)(j->mb * j->nb), "GEMM output tile"))) {
        j->oom = "an output tile";
        return;
    }
    for (int64_t t = b; t < e; t++) {
        int64_t tn = t / j->ntm, tm = t % j->ntm;
        int64_t n0 = tn * j->nb, m0 = tm * j->mb;
        int64_t nn = j->N - n0 < j->nb ? j->N - n0 : j->nb, mm = j->M - m0 < j->mb ? j->M - m0 : j->mb;
        float *y = j->C + m0 * j->ldc + n0, *c = in_place ? y : scratch;
        int64_t ldc = in_place ? j->ldc : nn;
        const float *a = j->A + m0 * j->lda;
        epi_at at = {j->ep, y, j->ldc, m0, n0};
        bsrc bs = j->B;
        bs.base = (const uint8_t *)bs.base + hb_dtype_bytes(bs.t, n0 * bs.sn);
        if (p == PATH_OPENBLAS && bs.t != HB_F32) {
            /* OpenBLAS needs f32: convert this weight panel once per column tile */
            if (!panel && !(panel = hb_malloc(sizeof(float) * (size_t)(j->nb * j->K), "GEMM weight panel"))) {
                j->oom = "a weight panel";
                break;
            }
            if (cur_n != tn) {
                for (int64_t n = 0; n < nn; n++) {
                    if (hb_dtype_is_quant(bs.t))
                        hb_dequantize(panel + n * j->K, (const uint8_t *)bs.base + hb_dtype_bytes(bs.t, n * bs.sn), bs.t, j->K);
                    else
                        for (int64_t k = 0; k < j->K; k++) panel[n * j->K + k] = bget(&bs, n, k);
                }
                cur_n = tn;
            }
            bs = (bsrc){panel, HB_F32, j->K, 1, NULL, NULL, NULL};
        }
        bool done = gemm_serial_src(c, ldc, a, j->lda, NULL, &bs, mm, nn, j->K, j->acc, j->ep ? &at : NULL);
        if (j->ep && !done) epi_apply(j->ep, c, ldc, y, j->ldc, m0, n0, mm, nn);
    }
    hb_free(panel);
    hb_free(scratch);
}

static void run_tiles(tile_job *j) {
    /* Row tiles of at most MC rows, a multiple of MR (no partial strip but the last); column tiles of up to
     * 4 NC blocks, narrower only to give the threads 3 tiles each: A is packed once per tile (its cost ~1/nb of
     * the flops') and B once per tile (~1/mb). The tiling never changes any bits (see gemm_core). */
    int64_t nt = hb_threads_count();
    j->ntm = (j->M + MC - 1) / MC;
    j->mb = ((j->M + j->ntm - 1) / j->ntm + MR - 1) / MR * MR;
    j->ntm = (j->M + j->mb - 1) / j->mb;
    int64_t ntn = (j->N + 4 * NC - 1) / (4 * NC), most = (j->N + NC - 1) / NC, want = (3 * nt + j->ntm - 1) / j->ntm;
    if (ntn < want) ntn = want < most ? want : most;
    j->nb = ((j->N + ntn - 1) / ntn + NR - 1) / NR * NR;
    ntn = (j->N + j->nb - 1) / j->nb;
    hb_parallel_for(ntn * j->ntm, 1, tile_run, j);
}

void hb_cpu_gemm_f32(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate) {
    if (M <= 0 || N <= 0) return;
    tile_job j = {C, A, {B, HB_F32, 1, ldb, NULL, NULL, NULL}, NULL, ldc, lda, M, N, K, 0, 0, 0, accumulate, NULL};
    run_tiles(&j); /* f32 B and no epilogue: nothing to allocate */
}

/* ---------- small M: direct dot products (weights read once, no packing) ---------- */

typedef struct { float *y; const float *x; bsrc w; const epi *ep; int64_t M, N, K; bool acc; } rows_job;

static float dot_generic(const float *x, const bsrc *w, int64_t n, int64_t K) {
    float s[8] = {0};
    int64_t k = 0;
    const uint8_t *base = (const uint8_t *)w->base + hb_dtype_bytes(w->t, n * w->sn);
    if (w->t == HB_F32) {
        const float *r = (const float *)base;
        for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; j++) s[j] += x[k + j] * r[k + j];
        for (; k < K; k++) s[0] += x[k] * r[k];
    } else if (w->t == HB_BF16) {
        const uint16_t *r = (const uint16_t *)base;
        for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; j++) s[j] += x[k + j] * bf16f(r[k + j]);
        for (; k < K; k++) s[0] += x[k] * bf16f(r[k]);
    } else {
        const uint16_t *r = (const uint16_t *)base;
        for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; j++) s[j] += x[k + j] * hb_f16_to_f32(r[k + j]);
        for (; k < K; k++) s[0] += x[k] * hb_f16_to_f32(r[k]);
    }
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

#ifdef HB_X86
/* Same lane structure and final reduction as dot_generic (8 lanes, lane j sums k = j mod 8, tail into lane 0). */
__attribute__((target("avx2,fma,f16c"))) static float dot_avx2(const float *x, const bsrc *w, int64_t n, int64_t K) {
    const uint8_t *base = (const uint8_t *)w->base + hb_dtype_bytes(w->t, n * w->sn);
    __m256 acc = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv;
        if (w->t == HB_F32) wv = _mm256_loadu_ps((const float *)base + k);
        else if (w->t == HB_BF16)
            wv = _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + k))), 16));
        else wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + k)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(x + k), wv));
    }
    float s[8];
    _mm256_storeu_ps(s, acc);
    bsrc one = *w;
    for (; k < K; k++) s[0] += x[k] * bget(&one, n, k);
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}
#endif

static void rows_run(void *ctx, int64_t b, int64_t e) {
    const rows_job *j = ctx;
    float (*dot)(const float *, const bsrc *, int64_t, int64_t) = dot_generic;
#ifdef HB_X86
    if (path() == PATH_AVX2) dot = dot_avx2;
#endif
    /* block-quantized rows: dequantized one at a time into an f32 row, then the same dot as F32 weights */
    const bool quant = hb_dtype_is_quant(j->w.t);
    float *row = quant ? hb_malloc(sizeof(float) * (size_t)j->K, "dequantized weight row") : NULL;
    if (quant && !row) { hb_log(HB_LOG_ERROR, "hb_linear: out of memory for a weight row"); return; }
    for (int64_t n = b; n < e; n++) {
        bsrc wr = j->w;
        int64_t wn = n;
        if (quant) {
            hb_dequantize(row, (const uint8_t *)j->w.base + hb_dtype_bytes(j->w.t, n * j->w.sn), j->w.t, j->K);
            wr = (bsrc){row, HB_F32, 0, 1, NULL, NULL, NULL};
            wn = 0;
        }
        for (int64_t m = 0; m < j->M; m++) {
            float d = dot(j->x + m * j->K, &wr, wn, j->K), *yo = j->y + m * j->N + n;
            if (j->ep && j->ep->op != HB_EPI_NONE) { epi_apply(j->ep, &d, 1, yo, 1, m, n, 1, 1); continue; }
            if (j->ep) d += j->ep->bias[n];
            *yo = j->acc ? *yo + d : d;
        }
    }
    hb_free(row);
}

/* ---------- hb_linear, hb_linear_ep ---------- */

typedef struct { float *y; const float *c; const epi *e; int64_t N; } epi_pass;
static void epi_pass_rows(void *ctx, int64_t b, int64_t e) {
    const epi_pass *j = ctx;
    for (int64_t m = b; m < e; m++) epi_apply(j->e, j->c + m * j->N, j->N, j->y + m * j->N, j->N, m, 0, 1, j->N);
}

/* Block-quantized weights: the integer kernels (bias included) into y, or into a scratch for ADD / GATED_ADD; then
 * the epilogue's op in one pass. */
static int linear_quant(float *y, const float *x, int64_t M, const hb_tensor *w, const epi *e, bool accumulate) {
    const int64_t N = w->shape[0];
    if (e->op == HB_EPI_NONE) return hb__qgemm_linear(y, x, M, w, e->bias, accumulate);
    float *c = y;
    if (e->op != HB_EPI_GELU_TANH && !(c = hb_malloc(sizeof(float) * (size_t)(M * N), "hb_linear_ep output")))
        return -1;
    int rc = hb__qgemm_linear(c, x, M, w, e->bias, false);
    if (rc == 0) {
        epi op_only = *e;
        op_only.bias = NULL;
        epi_pass j = {y, c, &op_only, N};
        hb_parallel_for(M, 1 + 65536 / N, epi_pass_rows, &j);
    }
    if (c != y) hb_free(c);
    return rc;
}

static int linear_run(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate,
                      const hb_epilogue *pe) {
    int64_t N = w->shape[0], K = w->shape[1]; /* arguments checked by the dispatcher (src/ops/dispatch.c) */
    if (M <= 0 || N <= 0) return 0;
    float *bias = NULL;
    if (b && !(bias = hb__vec_f32(b, N))) return -1;
    epi e = {pe ? pe->op : HB_EPI_NONE, bias, pe ? pe->gate : NULL, pe ? pe->g : (hb_modgroups){0, 0},
             pe ? pe->row0 : 0, hb__simd_avx2()};
    const epi *ep = bias || e.op != HB_EPI_NONE ? &e : NULL;
    bsrc src = {w->data, w->dtype, w->stride[0], 1, NULL, NULL, NULL};
    int rc = 0;
    if (K > 0 && hb__qgemm_applies(w)) {
        rc = linear_quant(y, x, M, w, &e, accumulate);
    } else if (M < 4 && K > 0) {
        rows_job j = {y, x, src, ep, M, N, K, accumulate};
        hb_parallel_for(N, 16, rows_run, &j);
    } else {
        tile_job j = {y, x, src, ep, N, K, M, N, K, 0, 0, 0, accumulate, NULL};
        run_tiles(&j);
        if (j.oom) rc = hb_error("hb_linear: out of memory for %s", j.oom);
    }
    hb_free(bias);
    return rc;
}

int hb_cpu_linear(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate) {
    return linear_run(y, x, M, w, b, accumulate, NULL);
}

int hb_cpu_linear_ep(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, hb_epilogue ep) {
    return linear_run(y, x, M, w, b, false, &ep);
}
