/* Q8_0 weights x Q8_0-quantized activations in integers, as ggml's CPU backend multiplies them: each activation
 * row is quantized per 32 elements (hb_quantize_act_q8_0), each 32-element block product is an exact int32 sum,
 * and an output accumulates sum_b (float)isum_b * (dw_b * da_b) over the blocks in order.
 *
 * Layout: a column strip of 8 weight rows is packed per Q8_0 block as 8 groups of 32 bytes (group g, lane j =
 * bytes 4g..4g+3 of row j), then the 8 f16 scales as f32 and the 8 block sums: one int32 lane per output column,
 * so a broadcast of 4 activation bytes times a packed group gives 4 products per lane (the VNNI dot-product
 * shape). Kernels, chosen once by cpuid: "vnni" (AVX-VNNI or AVX-512 VNNI+VL: vpdpbusd with the activations
 * offset to unsigned, minus 128 x the block sum), "avx2" (ggml's sign trick: maddubs(|w|, sign(a, w)), no
 * saturation since |w| <= 128 and |a| <= 127, then madd with ones), "generic" (plain C). The integer sums
 * are exact and the float steps are the same in every kernel, so all three give the same bits, for any thread
 * count (threads split the output into tiles; K is never split). */
#include "ops/ops_internal.h"
#include "core/quant_internal.h"
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HB_X86 1
#endif

#define QB 32                    /* elements per Q8_0 block */
#define QBYTES 34                /* bytes per Q8_0 block */
#define QMR 6                    /* rows per micro-kernel */
#define QNR 16                   /* columns per micro-kernel: two strips of 8 */
#define QKC 512                  /* k per packed block of B */
#define QNC 256                  /* columns per tile */
#define STRIP_BLOCK 320          /* bytes of one strip's block: 256 quants, 8 f32 scales, 8 int32 sums */
#define QSB 256                  /* elements per Q4_K super-block */
#define Q4K_BYTES 144
#define Q4K_STRIP 2496           /* a strip's super-block: 2048 quants, 8x8 int32 scales, 4x8 int16 min pairs, d, dmin */
#define PANEL_BYTES ((size_t)(QNC / 8) * (QKC / QB) * STRIP_BLOCK) /* >= (QNC / 8) * (QKC / QSB) * Q4K_STRIP */

enum { QK_GENERIC = 0, QK_AVX2 = 1, QK_VNNI = 2 };
static int g_kernel = -1, g_act = -1; /* g_act: 1 = Q8_0 activations (integer kernels), 0 = exact f32 */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#ifdef HB_X86
static int vnni_kind(void) {
    unsigned a, b, c, d, a1 = 0, b1, c1, d1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    bool avxvnni = __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 >> 4 & 1);
    bool avx512 = (c >> 11 & 1) && (b >> 31 & 1);
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); /* the OS saves the ymm (and zmm/opmask) state */
    (void)hi;
    if (avxvnni && (lo & 6) == 6) return 1;
    if (avx512 && (lo & 0xE6) == 0xE6) return 2;
    return 0;
}
#endif

static int g_vnni; /* 0 none, 1 AVX-VNNI, 2 AVX-512 VNNI+VL */

static int select_kernel(const char *name) {
    if (!strcmp(name, "generic")) g_kernel = QK_GENERIC;
    else if (!strcmp(name, "avx2") && hb__have_avx2()) g_kernel = QK_AVX2;
    else if (!strcmp(name, "vnni") && g_vnni) g_kernel = QK_VNNI;
    else return -1;
    return 0;
}

static void qinit(void) {
    g_kernel = QK_GENERIC;
#ifdef HB_X86
    g_vnni = vnni_kind();
    if (hb__simd_avx2()) g_kernel = g_vnni ? QK_VNNI : QK_AVX2;
#endif
    const char *e = getenv("HB_QGEMM");
    if (e && *e && select_kernel(e) != 0) hb_log(HB_LOG_WARN, "HB_QGEMM=%s is not available here", e);
    const char *a = getenv("HB_QUANT_ACT");
    g_act = !(a && !strcmp(a, "f32"));
}

static void qonce(void) { pthread_once(&g_once, qinit); }

int hb__qgemm_select(const char *name) {
    qonce();
    return select_kernel(name);
}

const char *hb__qgemm_kernel(void) {
    qonce();
    static const char *names[] = {"generic", "avx2", "vnni"};
    return names[g_kernel];
}

int hb__quant_act_select(const char *name) {
    qonce();
    if (!strcmp(name, "q8")) g_act = 1;
    else if (!strcmp(name, "f32")) g_act = 0;
    else return -1;
    return 0;
}

bool hb__qgemm_applies(const hb_tensor *w) {
    qonce();
    return g_act && ((w->dtype == HB_Q8_0 && w->shape[1] % QB == 0) || (w->dtype == HB_Q4_K && w->shape[1] % QSB == 0));
}

/* ---------- packing ---------- */

#ifdef HB_X86
/* 8 rows of 8 4-byte groups -> 8 vectors, vector k holding group k of every row (an 8x8 32-bit transpose). */
__attribute__((target("avx2,fma"))) static inline void transpose_groups(const __m256 r[8], __m256 g[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]), t2 = _mm256_unpacklo_ps(r[2], r[3]),
           t3 = _mm256_unpackhi_ps(r[2], r[3]), t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
           t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44),
           s3 = _mm256_shuffle_ps(t1, t3, 0xEE), s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    g[0] = _mm256_permute2f128_ps(s0, s4, 0x20); g[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    g[2] = _mm256_permute2f128_ps(s2, s6, 0x20); g[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    g[4] = _mm256_permute2f128_ps(s0, s4, 0x31); g[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    g[6] = _mm256_permute2f128_ps(s2, s6, 0x31); g[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* A full strip's block: 8 rows x 32 quants, an 8x8 transpose of 4-byte groups, the sums through maddubs. */
__attribute__((target("avx2,fma"))) static void pack_strip_block_avx2(uint8_t *o, const uint8_t *blk0, size_t row_bytes) {
    __m256 r[8], g[8];
    float dw[8];
    for (int j = 0; j < 8; j++) {
        const uint8_t *blk = blk0 + (size_t)j * row_bytes;
        r[j] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(blk + 2)));
        dw[j] = hb_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
    }
    transpose_groups(r, g);
    __m256i sum = _mm256_setzero_si256();
    const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
    for (int k = 0; k < 8; k++) {
        __m256i q = _mm256_castps_si256(g[k]);
        _mm256_storeu_si256((__m256i *)(o + k * 32), q);
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(one8, q), one16));
    }
    memcpy(o + 256, dw, 32);
    _mm256_storeu_si256((__m256i *)(o + 288), sum);
}

/* A full strip's Q4_K super-block: each 32-byte chunk of nibbles gives 32 low and 32 high quants per row, each
 * transposed into 8 groups as above; scales and mins as the scalar packer writes them. */
__attribute__((target("avx2,fma"))) static void pack_strip_q4k_avx2(uint8_t *o, const uint8_t *blk0, size_t row_bytes) {
    int32_t sc[64];
    int16_t mnp[64];
    float dd[16];
    for (int j = 0; j < 8; j++) {
        const uint8_t *blk = blk0 + (size_t)j * row_bytes;
        dd[j] = h2f(blk);
        dd[8 + j] = h2f(blk + 2);
        int scv[8], mnv[8];
        for (int g = 0; g < 8; g++) scale_min_k4(g, blk + 4, &scv[g], &mnv[g]);
        for (int g = 0; g < 8; g++) sc[g * 8 + j] = scv[g];
        for (int pp = 0; pp < 4; pp++) {
            mnp[(pp * 8 + j) * 2] = (int16_t)mnv[2 * pp];
            mnp[(pp * 8 + j) * 2 + 1] = (int16_t)mnv[2 * pp + 1];
        }
    }
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    for (int c = 0; c < 4; c++) {
        __m256 lo[8], hi[8], g[8];
        for (int j = 0; j < 8; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(blk0 + (size_t)j * row_bytes + 16 + 32 * c));
            lo[j] = _mm256_castsi256_ps(_mm256_and_si256(v, lo4));
            hi[j] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_srli_epi16(v, 4), lo4));
        }
        transpose_groups(lo, g);
        for (int k = 0; k < 8; k++) _mm256_storeu_ps((float *)(o + ((2 * c) * 8 + k) * 32), g[k]);
        transpose_groups(hi, g);
        for (int k = 0; k < 8; k++) _mm256_storeu_ps((float *)(o + ((2 * c + 1) * 8 + k) * 32), g[k]);
    }
    memcpy(o + 2048, sc, sizeof sc);
    memcpy(o + 2304, mnp, sizeof mnp);
    memcpy(o + 2432, dd, sizeof dd);
}
#endif

/* Columns [n0, n0+nn) (zero columns up to a multiple of QNR), blocks [kb0, kb0+nbk) into strips. */
static void pack_b(uint8_t *dst, const uint8_t *w, size_t row_bytes, int64_t n0, int64_t nn, int64_t kb0, int64_t nbk,
                   bool simd) {
    (void)simd;
    int64_t nstrips = (nn + QNR - 1) / QNR * 2;
    for (int64_t s = 0; s < nstrips; s++)
        for (int64_t b = 0; b < nbk; b++) {
            uint8_t *o = dst + (s * nbk + b) * STRIP_BLOCK;
#ifdef HB_X86
            if (simd && s * 8 + 8 <= nn) {
                pack_strip_block_avx2(o, w + (size_t)(n0 + s * 8) * row_bytes + (size_t)(kb0 + b) * QBYTES, row_bytes);
                continue;
            }
#endif
            float dw[8];
            int32_t sum[8];
            for (int j = 0; j < 8; j++) {
                int64_t n = s * 8 + j;
                if (n >= nn) {
                    for (int g = 0; g < 8; g++) memset(o + g * 32 + j * 4, 0, 4);
                    dw[j] = 0.0f;
                    sum[j] = 0;
                    continue;
                }
                const uint8_t *blk = w + (size_t)(n0 + n) * row_bytes + (size_t)(kb0 + b) * QBYTES;
                dw[j] = hb_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
                int32_t sm = 0;
                for (int g = 0; g < 8; g++) {
                    memcpy(o + g * 32 + j * 4, blk + 2 + g * 4, 4);
                    for (int t = 0; t < 4; t++) sm += (int8_t)blk[2 + g * 4 + t];
                }
                sum[j] = sm;
            }
            memcpy(o + 256, dw, 32);
            memcpy(o + 288, sum, 32);
        }
}

/* Q4_K: a strip's super-block as 64 groups of 32 bytes (lane j: 4 consecutive 4-bit quants of row j, as bytes),
 * then per sub-block of 32 the 8 rows' scales (int32), per pair of sub-blocks the 8 rows' mins (int16 pairs, for
 * vpmaddwd against the activations' pair of sums), and the 8 d and dmin. */
static void pack_b_q4k(uint8_t *dst, const uint8_t *w, size_t row_bytes, int64_t n0, int64_t nn, int64_t sb0, int64_t nsb,
                       bool simd) {
    (void)simd;
    int64_t nstrips = (nn + QNR - 1) / QNR * 2;
    for (int64_t s = 0; s < nstrips; s++)
        for (int64_t b = 0; b < nsb; b++) {
            uint8_t *o = dst + (s * nsb + b) * Q4K_STRIP;
#ifdef HB_X86
            if (simd && s * 8 + 8 <= nn) {
                pack_strip_q4k_avx2(o, w + (size_t)(n0 + s * 8) * row_bytes + (size_t)(sb0 + b) * Q4K_BYTES, row_bytes);
                continue;
            }
#endif
            int32_t sc[64];
            int16_t mnp[64];
            float dd[16];
            for (int j = 0; j < 8; j++) {
                int64_t n = s * 8 + j;
                uint8_t q[QSB];
                int scv[8] = {0}, mnv[8] = {0};
                dd[j] = dd[8 + j] = 0.0f;
                memset(q, 0, sizeof q);
                if (n < nn) {
                    const uint8_t *blk = w + (size_t)(n0 + n) * row_bytes + (size_t)(sb0 + b) * Q4K_BYTES, *qs = blk + 16;
                    dd[j] = h2f(blk);
                    dd[8 + j] = h2f(blk + 2);
                    for (int g = 0; g < 8; g++) scale_min_k4(g, blk + 4, &scv[g], &mnv[g]);
                    for (int c = 0; c < 4; c++)
                        for (int l = 0; l < 32; l++) {
                            q[64 * c + l] = qs[32 * c + l] & 0xF;
                            q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
                        }
                }
                for (int t = 0; t < 64; t++) memcpy(o + t * 32 + j * 4, q + 4 * t, 4);
                for (int g = 0; g < 8; g++) sc[g * 8 + j] = scv[g];
                for (int pp = 0; pp < 4; pp++) {
                    mnp[(pp * 8 + j) * 2] = (int16_t)mnv[2 * pp];
                    mnp[(pp * 8 + j) * 2 + 1] = (int16_t)mnv[2 * pp + 1];
                }
            }
            memcpy(o + 2048, sc, sizeof sc);
            memcpy(o + 2304, mnp, sizeof mnp);
            memcpy(o + 2432, dd, sizeof dd);
        }
}

/* ---------- micro-kernels: c[4][16] (+)= the blocks' products of 4 activation rows and 2 strips ---------- */

typedef struct {
    const int8_t *a; int64_t lda;   /* row i, element k at a[i * lda + k] (k from this k-block's start) */
    const float *da; int64_t ldda;  /* row i, block b at da[i * ldda + b] */
    const int32_t *bs; int64_t ldbs; /* Q4_K: row i, sums of 16 quants g at bs[i * ldbs + g] */
    const uint8_t *b0, *b1;         /* the two strips */
    int64_t nbk;
    float *c; int64_t ldc;
    bool load_c;
} qukr_args;

static void qukr_generic(const qukr_args *p) {
    float acc[QMR][QNR];
    for (int i = 0; i < QMR; i++)
        for (int j = 0; j < QNR; j++) acc[i][j] = p->load_c ? p->c[i * p->ldc + j] : 0.0f;
    for (int64_t b = 0; b < p->nbk; b++)
        for (int v = 0; v < 2; v++) {
            const uint8_t *o = (v ? p->b1 : p->b0) + b * STRIP_BLOCK;
            float dw[8];
            memcpy(dw, o + 256, 32);
            for (int i = 0; i < QMR; i++) {
                const int8_t *a = p->a + i * p->lda + b * QB;
                for (int j = 0; j < 8; j++) {
                    int32_t s = 0;
                    for (int g = 0; g < 8; g++)
                        for (int t = 0; t < 4; t++) s += (int32_t)a[g * 4 + t] * (int8_t)o[g * 32 + j * 4 + t];
                    float sc = dw[j] * p->da[i * p->ldda + b], prod = (float)s * sc;
                    acc[i][v * 8 + j] = acc[i][v * 8 + j] + prod;
                }
            }
        }
    for (int i = 0; i < QMR; i++)
        for (int j = 0; j < QNR; j++) p->c[i * p->ldc + j] = acc[i][j];
}

/* Q4_K x Q8_K, per super-block as ggml's dot product: isum = sum_g sc_g * (q . a)_g, msum = sum_g mn_g * (sum of
 * a)_g, c += da * (d * isum) - da * (dmin * msum). */
static void qukr_q4k_generic(const qukr_args *p) {
    float acc[QMR][QNR];
    for (int i = 0; i < QMR; i++)
        for (int j = 0; j < QNR; j++) acc[i][j] = p->load_c ? p->c[i * p->ldc + j] : 0.0f;
    for (int64_t b = 0; b < p->nbk; b++)
        for (int v = 0; v < 2; v++) {
            const uint8_t *o = (v ? p->b1 : p->b0) + b * Q4K_STRIP;
            int32_t sc[64];
            int16_t mnp[64];
            float dd[16];
            memcpy(sc, o + 2048, sizeof sc);
            memcpy(mnp, o + 2304, sizeof mnp);
            memcpy(dd, o + 2432, sizeof dd);
            for (int i = 0; i < QMR; i++) {
                const int8_t *a = p->a + i * p->lda + b * QSB;
                const int32_t *bs = p->bs + i * p->ldbs + b * 16;
                for (int j = 0; j < 8; j++) {
                    int32_t isum = 0, msum = 0;
                    for (int g = 0; g < 8; g++) {
                        int32_t s = 0;
                        for (int t = g * 8; t < g * 8 + 8; t++)
                            for (int u = 0; u < 4; u++) s += (int32_t)o[t * 32 + j * 4 + u] * a[t * 4 + u];
                        isum += sc[g * 8 + j] * s;
                        msum += mnp[((g / 2) * 8 + j) * 2 + g % 2] * (bs[2 * g] + bs[2 * g + 1]);
                    }
                    float ad = p->da[i * p->ldda + b], t1 = ad * (dd[j] * (float)isum), t2 = ad * (dd[8 + j] * (float)msum);
                    acc[i][v * 8 + j] = acc[i][v * 8 + j] + (t1 - t2);
                }
            }
        }
    for (int i = 0; i < QMR; i++)
        for (int j = 0; j < QNR; j++) p->c[i * p->ldc + j] = acc[i][j];
}

#ifdef HB_X86
static inline int32_t rd_i32(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* Rows [R0, R0+ROWS) of a micro-kernel call, block by block: the integer products of a block in ACC[ROWS][2]
 * through STEP(acc, activation broadcast, packed group), the VNNI offset correction when FIX, then the float step
 * c += (float)isum * (dw * da), c held in registers from the tile's load (or zero) to its store. */
#define QKR_ROWS(R0, ROWS, PREP, STEP, FIX)                                                                        \
    {                                                                                                             \
        __m256 cf[ROWS][2];                                                                                       \
        for (int i = 0; i < ROWS; i++) {                                                                          \
            cf[i][0] = p->load_c ? _mm256_loadu_ps(p->c + (R0 + i) * p->ldc) : _mm256_setzero_ps();               \
            cf[i][1] = p->load_c ? _mm256_loadu_ps(p->c + (R0 + i) * p->ldc + 8) : _mm256_setzero_ps();           \
        }                                                                                                         \
        for (int64_t b = 0; b < p->nbk; b++) {                                                                    \
            const uint8_t *o0 = p->b0 + b * STRIP_BLOCK, *o1 = p->b1 + b * STRIP_BLOCK;                           \
            __m256i acc[ROWS][2];                                                                                 \
            for (int i = 0; i < ROWS; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();                        \
            _Pragma("GCC unroll 8") for (int g = 0; g < 8; g++) {                                                 \
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(o0 + g * 32)),                                  \
                        w1 = _mm256_loadu_si256((const __m256i *)(o1 + g * 32));                                  \
                PREP;                                                                                             \
                for (int i = 0; i < ROWS; i++) {                                                                  \
                    __m256i av = _mm256_set1_epi32(rd_i32(p->a + (R0 + i) * p->lda + b * QB + g * 4));            \
                    acc[i][0] = STEP(acc[i][0], av, w0, u0);                                                      \
                    acc[i][1] = STEP(acc[i][1], av, w1, u1);                                                      \
                }                                                                                                 \
            }                                                                                                     \
            if (FIX) {                                                                                            \
                __m256i s0 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(o0 + 288)), 7),               \
                        s1 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(o1 + 288)), 7);               \
                for (int i = 0; i < ROWS; i++) {                                                                  \
                    acc[i][0] = _mm256_sub_epi32(acc[i][0], s0);                                                  \
                    acc[i][1] = _mm256_sub_epi32(acc[i][1], s1);                                                  \
                }                                                                                                 \
            }                                                                                                     \
            __m256 d0 = _mm256_loadu_ps((const float *)(o0 + 256)), d1 = _mm256_loadu_ps((const float *)(o1 + 256)); \
            for (int i = 0; i < ROWS; i++) {                                                                      \
                __m256 sc = _mm256_set1_ps(p->da[(R0 + i) * p->ldda + b]);                                        \
                cf[i][0] = _mm256_add_ps(cf[i][0], _mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][0]), _mm256_mul_ps(d0, sc))); \
                cf[i][1] = _mm256_add_ps(cf[i][1], _mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][1]), _mm256_mul_ps(d1, sc))); \
            }                                                                                                     \
        }                                                                                                         \
        for (int i = 0; i < ROWS; i++) {                                                                          \
            _mm256_storeu_ps(p->c + (R0 + i) * p->ldc, cf[i][0]);                                                 \
            _mm256_storeu_ps(p->c + (R0 + i) * p->ldc + 8, cf[i][1]);                                             \
        }                                                                                                         \
    }

/* ggml's sign trick: |w| (unsigned) times a with w's sign, pairs summed in int16, then quads in int32 */
#define STEP_AVX2(ACC, AV, W, U) \
    _mm256_add_epi32(ACC, _mm256_madd_epi16(_mm256_maddubs_epi16(U, _mm256_sign_epi8(AV, W)), _mm256_set1_epi16(1)))
#define PREP_AVX2 __m256i u0 = _mm256_sign_epi8(w0, w0), u1 = _mm256_sign_epi8(w1, w1)
#define STEP_AVXVNNI(ACC, AV, W, U) _mm256_dpbusd_avx_epi32(ACC, AV, W)
#define STEP_VNNI512(ACC, AV, W, U) _mm256_dpbusd_epi32(ACC, AV, W)
#define PREP_NONE const int u0 = 0, u1 = 0; (void)u0; (void)u1

/* 16 ymm registers: rows in two passes of 3 (6 int32 accumulators + the packed groups) */
__attribute__((target("avx2,fma"))) static void qukr_avx2(const qukr_args *p) {
    QKR_ROWS(0, 3, PREP_AVX2, STEP_AVX2, 0)
    QKR_ROWS(3, 3, PREP_AVX2, STEP_AVX2, 0)
}
__attribute__((target("avx2,fma,avxvnni"))) static void qukr_avxvnni(const qukr_args *p) {
    QKR_ROWS(0, 3, PREP_NONE, STEP_AVXVNNI, 1)
    QKR_ROWS(3, 3, PREP_NONE, STEP_AVXVNNI, 1)
}
/* 32 registers (EVEX): all 6 rows in one pass, 12 accumulators in flight */
__attribute__((target("avx2,fma,avx512f,avx512vl,avx512vnni"))) static void qukr_avx512vnni(const qukr_args *p) {
    QKR_ROWS(0, 6, PREP_NONE, STEP_VNNI512, 1)
}
/* Q4_K rows [R0, R0+ROWS): the weights are the unsigned operand (quants 0..15), the activations the signed one. */
#define Q4K_ROWS(R0, ROWS, STEP)                                                                                   \
    {                                                                                                             \
        __m256 cf[ROWS][2];                                                                                       \
        for (int i = 0; i < ROWS; i++) {                                                                          \
            cf[i][0] = p->load_c ? _mm256_loadu_ps(p->c + (R0 + i) * p->ldc) : _mm256_setzero_ps();               \
            cf[i][1] = p->load_c ? _mm256_loadu_ps(p->c + (R0 + i) * p->ldc + 8) : _mm256_setzero_ps();           \
        }                                                                                                         \
        for (int64_t b = 0; b < p->nbk; b++) {                                                                    \
            const uint8_t *o0 = p->b0 + b * Q4K_STRIP, *o1 = p->b1 + b * Q4K_STRIP;                               \
            __m256i is[ROWS][2];                                                                                  \
            for (int i = 0; i < ROWS; i++) is[i][0] = is[i][1] = _mm256_setzero_si256();                          \
            for (int g = 0; g < 8; g++) {                                                                         \
                __m256i acc[ROWS][2];                                                                             \
                for (int i = 0; i < ROWS; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();                    \
                _Pragma("GCC unroll 8") for (int t = g * 8; t < g * 8 + 8; t++) {                                 \
                    __m256i w0 = _mm256_loadu_si256((const __m256i *)(o0 + t * 32)),                              \
                            w1 = _mm256_loadu_si256((const __m256i *)(o1 + t * 32));                              \
                    for (int i = 0; i < ROWS; i++) {                                                              \
                        __m256i av = _mm256_set1_epi32(rd_i32(p->a + (R0 + i) * p->lda + b * QSB + t * 4));       \
                        acc[i][0] = STEP(acc[i][0], w0, av);                                                      \
                        acc[i][1] = STEP(acc[i][1], w1, av);                                                      \
                    }                                                                                             \
                }                                                                                                 \
                __m256i s0 = _mm256_loadu_si256((const __m256i *)(o0 + 2048 + g * 32)),                           \
                        s1 = _mm256_loadu_si256((const __m256i *)(o1 + 2048 + g * 32));                           \
                for (int i = 0; i < ROWS; i++) {                                                                  \
                    is[i][0] = _mm256_add_epi32(is[i][0], _mm256_mullo_epi32(acc[i][0], s0));                     \
                    is[i][1] = _mm256_add_epi32(is[i][1], _mm256_mullo_epi32(acc[i][1], s1));                     \
                }                                                                                                 \
            }                                                                                                     \
            __m256 d0 = _mm256_loadu_ps((const float *)(o0 + 2432)), d1 = _mm256_loadu_ps((const float *)(o1 + 2432)); \
            __m256 m0 = _mm256_loadu_ps((const float *)(o0 + 2464)), m1 = _mm256_loadu_ps((const float *)(o1 + 2464)); \
            for (int i = 0; i < ROWS; i++) {                                                                      \
                const int32_t *bs = p->bs + (R0 + i) * p->ldbs + b * 16;                                          \
                __m256i ms0 = _mm256_setzero_si256(), ms1 = _mm256_setzero_si256();                               \
                for (int pp = 0; pp < 4; pp++) {                                                                  \
                    int32_t lo = bs[4 * pp] + bs[4 * pp + 1], hi = bs[4 * pp + 2] + bs[4 * pp + 3];               \
                    __m256i pr = _mm256_set1_epi32((int32_t)(((uint32_t)(uint16_t)hi << 16) | (uint16_t)lo));     \
                    ms0 = _mm256_add_epi32(ms0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(o0 + 2304 + pp * 32)), pr)); \
                    ms1 = _mm256_add_epi32(ms1, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(o1 + 2304 + pp * 32)), pr)); \
                }                                                                                                 \
                __m256 ad = _mm256_set1_ps(p->da[(R0 + i) * p->ldda + b]);                                        \
                __m256 t10 = _mm256_mul_ps(ad, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(is[i][0]))),                  \
                       t20 = _mm256_mul_ps(ad, _mm256_mul_ps(m0, _mm256_cvtepi32_ps(ms0))),                       \
                       t11 = _mm256_mul_ps(ad, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(is[i][1]))),                  \
                       t21 = _mm256_mul_ps(ad, _mm256_mul_ps(m1, _mm256_cvtepi32_ps(ms1)));                       \
                cf[i][0] = _mm256_add_ps(cf[i][0], _mm256_sub_ps(t10, t20));                                      \
                cf[i][1] = _mm256_add_ps(cf[i][1], _mm256_sub_ps(t11, t21));                                      \
            }                                                                                                     \
        }                                                                                                         \
        for (int i = 0; i < ROWS; i++) {                                                                          \
            _mm256_storeu_ps(p->c + (R0 + i) * p->ldc, cf[i][0]);                                                 \
            _mm256_storeu_ps(p->c + (R0 + i) * p->ldc + 8, cf[i][1]);                                             \
        }                                                                                                         \
    }

#define STEPK_AVX2(ACC, W, AV) _mm256_add_epi32(ACC, _mm256_madd_epi16(_mm256_maddubs_epi16(W, AV), _mm256_set1_epi16(1)))
#define STEPK_AVXVNNI(ACC, W, AV) _mm256_dpbusd_avx_epi32(ACC, W, AV)
#define STEPK_VNNI512(ACC, W, AV) _mm256_dpbusd_epi32(ACC, W, AV)

__attribute__((target("avx2,fma"))) static void qukr_q4k_avx2(const qukr_args *p) {
    Q4K_ROWS(0, 3, STEPK_AVX2)
    Q4K_ROWS(3, 3, STEPK_AVX2)
}
__attribute__((target("avx2,fma,avxvnni"))) static void qukr_q4k_avxvnni(const qukr_args *p) {
    Q4K_ROWS(0, 3, STEPK_AVXVNNI)
    Q4K_ROWS(3, 3, STEPK_AVXVNNI)
}
__attribute__((target("avx2,fma,avx512f,avx512vl,avx512vnni"))) static void qukr_q4k_avx512vnni(const qukr_args *p) {
    Q4K_ROWS(0, 3, STEPK_VNNI512)
    Q4K_ROWS(3, 3, STEPK_VNNI512)
}
#endif

/* ---------- activations ---------- */

typedef struct { const float *x; int8_t *q; float *d; int32_t *bs; int64_t M, K; bool offset, simd, q8k; } qact_job;

#ifdef HB_X86
/* hb_quantize_act_q8_0 in AVX2, the same operations: amax, x * (127/amax) rounded half to even; VNNI's offset
 * by 128 applied as it stores. */
__attribute__((target("avx2,fma"))) static void quant_row_avx2(int8_t *q, float *d, const float *x, int64_t K, bool offset) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), off = _mm256_set1_epi8(offset ? (char)0x80 : 0);
    for (int64_t b = 0; b < K / QB; b++) {
        const float *xb = x + b * QB;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(xb + 8 * i);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h), id = amax != 0.0f ? 127.0f / amax : 0.0f;
        d[b] = hb_f16_to_f32(hb_f32_to_f16(amax / 127.0f));
        __m256i qi[4];
        for (int i = 0; i < 4; i++)
            qi[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], _mm256_set1_ps(id)),
                                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
        _mm256_storeu_si256((__m256i *)(q + b * QB), _mm256_xor_si256(_mm256_permutevar8x32_epi32(p, perm), off));
    }
}
#endif

/* Q4_K's activations: Q8_K rows (scale per 256, sums per 16); rows past M are zero. */
static void qact_q8k_row(const qact_job *j, int64_t m) {
    int8_t *q = j->q + m * j->K;
    float *d = j->d + m * (j->K / QSB);
    int32_t *bs = j->bs + m * (j->K / 16);
    if (m < j->M) { hb_quantize_act_q8_k(q, d, bs, j->x + m * j->K, j->K); return; }
    memset(q, 0, (size_t)j->K);
    memset(d, 0, sizeof(float) * (size_t)(j->K / QSB));
    memset(bs, 0, sizeof(int32_t) * (size_t)(j->K / 16));
}

static void qact_run(void *ctx, int64_t b, int64_t e) {
    const qact_job *j = ctx;
    for (int64_t m = b; m < e; m++) {
        if (j->q8k) { qact_q8k_row(j, m); continue; }
        int8_t *q = j->q + m * j->K;
        if (m >= j->M) {
            memset(q, 0, (size_t)j->K);
            memset(j->d + m * (j->K / QB), 0, sizeof(float) * (size_t)(j->K / QB));
        } else {
#ifdef HB_X86
            if (j->simd) { quant_row_avx2(q, j->d + m * (j->K / QB), j->x + m * j->K, j->K, j->offset); continue; }
#endif
            hb_quantize_act_q8_0(q, j->d + m * (j->K / QB), j->x + m * j->K, j->K);
        }
        if (j->offset) /* VNNI multiplies unsigned x signed: q + 128 as a byte */
            for (int64_t k = 0; k < j->K; k++) q[k] = (int8_t)((uint8_t)q[k] ^ 0x80);
    }
}

/* ---------- tiles ---------- */

typedef struct {
    float *y; const int8_t *qa; const float *da; const int32_t *bs; const uint8_t *w; size_t row_bytes; const float *bias;
    int64_t M, N, K, mb, ntm;
    int64_t belems; size_t strip; /* weight block: elements, packed bytes per strip */
    bool acc, q4k;
    int kernel, err;
} qtile_job;

static void (*ukr_for(int kernel, bool q4k))(const qukr_args *) {
#ifdef HB_X86
    if (kernel == QK_AVX2) return q4k ? qukr_q4k_avx2 : qukr_avx2;
    if (kernel == QK_VNNI && q4k) return g_vnni == 1 ? qukr_q4k_avxvnni : qukr_q4k_avx512vnni;
    if (kernel == QK_VNNI) return g_vnni == 1 ? qukr_avxvnni : qukr_avx512vnni;
#endif
    (void)kernel;
    return q4k ? qukr_q4k_generic : qukr_generic;
}

/* One 4 x 16 piece of a tile over one k-block, through a scratch tile at the edges. */
static void qpiece(const qtile_job *j, void (*ukr)(const qukr_args *), const uint8_t *bp, int64_t nbk, int64_t m,
                   int64_t n, int64_t h, int64_t w, int64_t k0) {
    float tmp[QMR * QNR];
    bool load = j->acc || k0 > 0, full = h == QMR && w == QNR;
    float *yc = j->y + m * j->N + n;
    const int64_t nb = j->K / j->belems;
    qukr_args a = {j->qa + m * j->K + k0, j->K, j->da + m * nb + k0 / j->belems, nb, j->bs ? j->bs + m * (j->K / 16) + k0 / 16 : NULL,
                   j->K / 16, bp, bp + nbk * (int64_t)j->strip, nbk, full ? yc : tmp, full ? j->N : QNR, load};
    if (!full && load)
        for (int64_t i = 0; i < h; i++) memcpy(tmp + i * QNR, yc + i * j->N, sizeof(float) * (size_t)w);
    ukr(&a);
    if (!full)
        for (int64_t i = 0; i < h; i++) memcpy(yc + i * j->N, tmp + i * QNR, sizeof(float) * (size_t)w);
}

/* The packed weight panel, one per thread for the life of the thread (a fresh 160 KiB buffer per call would be
 * mapped and faulted in again each time: most of the time of a one-row product). */
static pthread_key_t g_panel_key;
static pthread_once_t g_panel_once = PTHREAD_ONCE_INIT;
static void panel_free(void *p) { hb_free(p); }
static void panel_key_init(void) { pthread_key_create(&g_panel_key, panel_free); }

static uint8_t *thread_panel(void) {
    pthread_once(&g_panel_once, panel_key_init);
    uint8_t *p = pthread_getspecific(g_panel_key);
    if (!p && (p = hb_malloc(PANEL_BYTES, "quantized weight panel")))
        pthread_setspecific(g_panel_key, p);
    return p;
}

static void qtile_run(void *ctx, int64_t tb, int64_t te) {
    qtile_job *j = ctx;
    uint8_t *bp = thread_panel();
    if (!bp) { j->err = 1; return; }
    void (*ukr)(const qukr_args *) = ukr_for(j->kernel, j->q4k);
    for (int64_t t = tb; t < te; t++) {
        int64_t n0 = t / j->ntm * QNC, m0 = t % j->ntm * j->mb;
        int64_t nn = j->N - n0 < QNC ? j->N - n0 : QNC, mm = j->M - m0 < j->mb ? j->M - m0 : j->mb;
        for (int64_t k0 = 0; k0 < j->K; k0 += QKC) {
            int64_t nbk = (j->K - k0 < QKC ? j->K - k0 : QKC) / j->belems;
            if (j->q4k) pack_b_q4k(bp, j->w, j->row_bytes, n0, nn, k0 / QSB, nbk, j->kernel != QK_GENERIC);
            else pack_b(bp, j->w, j->row_bytes, n0, nn, k0 / QB, nbk, j->kernel != QK_GENERIC);
            for (int64_t js = 0; js < nn; js += QNR)
                for (int64_t is = 0; is < mm; is += QMR)
                    qpiece(j, ukr, bp + js / 8 * nbk * (int64_t)j->strip, nbk, m0 + is, n0 + js,
                           mm - is < QMR ? mm - is : QMR, nn - js < QNR ? nn - js : QNR, k0);
        }
        if (j->bias)
            for (int64_t m = m0; m < m0 + mm; m++)
                for (int64_t n = n0; n < n0 + nn; n++) j->y[m * j->N + n] += j->bias[n];
    }
}

int hb__qgemm_linear(float *y, const float *x, int64_t M, const hb_tensor *w, const float *bias, bool accumulate) {
    qonce();
    const bool q4k = w->dtype == HB_Q4_K;
    const int64_t N = w->shape[0], K = w->shape[1], mpad = (M + QMR - 1) / QMR * QMR, be = q4k ? QSB : QB;
    int8_t *qa = hb_malloc((size_t)(mpad * K), "quantized activations");
    float *da = hb_malloc(sizeof(float) * (size_t)(mpad * (K / be) + 1), "activation scales");
    int32_t *bs = q4k ? hb_malloc(sizeof(int32_t) * (size_t)(mpad * (K / 16) + 1), "activation sums") : NULL;
    if (!qa || !da || (q4k && !bs)) {
        hb_free(qa); hb_free(da); hb_free(bs);
        return hb_error("hb_linear: out of memory for quantized activations");
    }
    const int kernel = g_kernel;
    qact_job aj = {x, qa, da, bs, M, K, kernel == QK_VNNI && !q4k, kernel != QK_GENERIC, q4k};
    hb_parallel_for(mpad, QMR, qact_run, &aj);
    qtile_job j = {y, qa, da, bs, w->data, hb_dtype_bytes(w->dtype, w->stride[0]), bias, M, N, K, 0, 0,
                   be, q4k ? Q4K_STRIP : STRIP_BLOCK, accumulate, q4k, kernel, 0};
    j.mb = M <= 768 ? M : 512;
    j.ntm = (M + j.mb - 1) / j.mb;
    hb_parallel_for((N + QNC - 1) / QNC * j.ntm, 1, qtile_run, &j);
    hb_free(qa);
    hb_free(da);
    hb_free(bs);
    if (j.err) return hb_error("hb_linear: out of memory for a quantized weight panel");
    return 0;
}
