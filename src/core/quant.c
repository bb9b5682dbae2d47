/* core/quant: ggml's block formats, dequantized exactly as ggml's dequantize_row_* (ggml-quants.c) does.
 * Every value is computed in f32 with each multiply and add rounded separately, in ggml's order: this file is
 * compiled with -ffp-contract=off (CMakeLists.txt) so that no d*q - m is fused into one rounding. Block
 * layouts (byte offsets) follow ggml-common.h's block_* structs; f16 fields are little-endian. */
#include "core/core.h"
#include <math.h>
#include <string.h>

#define QK 32
#define QK_K 256

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline float h2f(const uint8_t *p) { return hb_f16_to_f32(rd16(p)); }

/* The dequantizers are plain loops the compiler vectorizes; on x86-64 with GCC they are also compiled for AVX2
 * (no FMA in that target, and no contraction in this file) and picked at load time: the same bits either way. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DEQ_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DEQ_CLONES
#endif

/* block_q4_0 {d; qs[16]} and block_q4_1 {d; m; qs[16]}: low nibble = element j, high nibble = j + 16. */
DEQ_CLONES static void deq_q4(float *y, const uint8_t *b, int64_t nb, bool has_min) {
    const size_t bs = has_min ? 20 : 18;
    for (int64_t i = 0; i < nb; i++, b += bs, y += QK) {
        const float d = h2f(b), m = has_min ? h2f(b + 2) : 0.0f;
        const uint8_t *qs = b + (has_min ? 4 : 2);
        if (has_min) {
            for (int j = 0; j < QK / 2; j++) {
                y[j] = (float)(qs[j] & 0x0F) * d + m;
                y[j + QK / 2] = (float)(qs[j] >> 4) * d + m;
            }
        } else {
            for (int j = 0; j < QK / 2; j++) {
                y[j] = (float)((qs[j] & 0x0F) - 8) * d;
                y[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
            }
        }
    }
}

/* block_q5_0 {d; qh[4]; qs[16]} and block_q5_1 {d; m; qh[4]; qs[16]}: bit j of qh is the fifth bit of element j. */
DEQ_CLONES static void deq_q5(float *y, const uint8_t *b, int64_t nb, bool has_min) {
    const size_t bs = has_min ? 24 : 22;
    for (int64_t i = 0; i < nb; i++, b += bs, y += QK) {
        const float d = h2f(b), m = has_min ? h2f(b + 2) : 0.0f;
        const uint32_t qh = rd32(b + (has_min ? 4 : 2));
        const uint8_t *qs = b + (has_min ? 8 : 6);
        for (int j = 0; j < QK / 2; j++) {
            const int h0 = (int)(((qh >> j) << 4) & 0x10), h1 = (int)((qh >> (j + 12)) & 0x10);
            const int x0 = (qs[j] & 0x0F) | h0, x1 = (qs[j] >> 4) | h1;
            if (has_min) {
                y[j] = (float)x0 * d + m;
                y[j + QK / 2] = (float)x1 * d + m;
            } else {
                y[j] = (float)(x0 - 16) * d;
                y[j + QK / 2] = (float)(x1 - 16) * d;
            }
        }
    }
}

/* block_q8_0 {d; qs[32] int8} */
DEQ_CLONES static void deq_q8_0(float *y, const uint8_t *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 34, y += QK) {
        const float d = h2f(b);
        for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* block_q2_K {scales[16]; qs[64]; d; dmin} */
DEQ_CLONES static void deq_q2_k(float *y, const uint8_t *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 84) {
        const uint8_t *sc = b, *q = b + 16;
        const float d = h2f(b + 80), mn = h2f(b + 82);
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++) {
                    const uint8_t s = sc[is++];
                    const float dl = d * (float)(s & 0xF), ml = mn * (float)(s >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
                }
    }
}

/* block_q3_K {hmask[32]; qs[64]; scales[12]; d}: 16 signed 6-bit scales packed as ggml's kmask shuffle. */
DEQ_CLONES static void deq_q3_k(float *y, const uint8_t *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 110) {
        const uint8_t *hm = b, *q = b + 32, *s = b + 96;
        const float d_all = h2f(b + 108);
        int8_t scales[16];
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
            const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (int8_t)((lo | (hi << 4)) - 32);
        }
        int is = 0;
        uint8_t m = 1;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1))
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * (float)scales[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
    }
}

/* ggml's get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 packed bytes. */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* block_q4_K {d; dmin; scales[12]; qs[128]} and block_q5_K {d; dmin; scales[12]; qh[32]; qs[128]}. */
DEQ_CLONES static void deq_q45_k(float *y, const uint8_t *b, int64_t nb, bool five) {
    const size_t bs = five ? 176 : 144;
    for (int64_t i = 0; i < nb; i++, b += bs) {
        const float d = h2f(b), mn = h2f(b + 2);
        const uint8_t *scales = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, q += 32, is += 2, u1 = (uint8_t)(u1 << 2), u2 = (uint8_t)(u2 << 2)) {
            int sc, m;
            scale_min_k4(is, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = mn * (float)m;
            scale_min_k4(is + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = mn * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((q[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((q[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

/* block_q6_K {ql[128]; qh[64]; scales[16] int8; d}: each half of 128 outputs is four runs of 32 (low/high nibble
 * of ql[0..31] / ql[32..63], 2-bit pairs of qh), groups of 16 with their own int8 scale; y = (d*sc)*q. */
DEQ_CLONES static void deq_q6_k(float *y, const uint8_t *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = h2f(b + 208);
        for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8)
            for (int r = 0; r < 4; r++) {
                const uint8_t *qlr = ql + (r & 1) * 32;
                const int lshift = (r >> 1) * 4, hshift = 2 * r;
                for (int g = 0; g < 2; g++) {
                    const float dl = d * (float)sc[g + 2 * r];
                    for (int l = 16 * g; l < 16 * g + 16; l++)
                        y[32 * r + l] = dl * (float)((((qlr[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32);
                }
            }
    }
}

void hb_dequantize(float *dst, const void *src, hb_dtype t, int64_t n) {
    const uint8_t *b = src;
    const int64_t nb = n / hb_dtype_block_elems(t);
    switch (t) {
    case HB_Q4_0: deq_q4(dst, b, nb, false); break;
    case HB_Q4_1: deq_q4(dst, b, nb, true); break;
    case HB_Q5_0: deq_q5(dst, b, nb, false); break;
    case HB_Q5_1: deq_q5(dst, b, nb, true); break;
    case HB_Q8_0: deq_q8_0(dst, b, nb); break;
    case HB_Q2_K: deq_q2_k(dst, b, nb); break;
    case HB_Q3_K: deq_q3_k(dst, b, nb); break;
    case HB_Q4_K: deq_q45_k(dst, b, nb, false); break;
    case HB_Q5_K: deq_q45_k(dst, b, nb, true); break;
    case HB_Q6_K: deq_q6_k(dst, b, nb); break;
    default: hb_convert_to_f32(dst, src, t, (size_t)n); break;
    }
}

/* ---------- ggml's quantized dot products (the CPU backend's vec_dot_type path) ----------
 * ggml_mul_mat on the CPU converts each activation row to the weight type's vec_dot_type and dots it with
 * the packed blocks in integers: Q4_0/Q5_0/Q8_0 with Q8_0 (per 32: d = amax/127 stored f16), Q4_1/Q5_1 with
 * Q8_1 (Q8_0 plus s = d * sum(q) stored f16), K-quants with Q8_K (per 256: f32 d, int8 q, 16 group sums),
 * F16/BF16 with the row rounded to f16/bf16. Activations are rounded as ggml's AVX2 quantizers do
 * (x * 127/amax, ties to even). */

typedef struct {
    int8_t *q;      /* K quants */
    float *d, *s;   /* per block of 32 (Q8_0/Q8_1) or 256 (Q8_K): scale; Q8_1: d * sum(q) */
    int32_t *bsum;  /* Q8_K: sums of q per group of 16 */
    float *xr;      /* F16/BF16: the row rounded to the weight's type */
} act_row;

static void quant_act_q8(act_row *a, const float *x, int64_t K, bool with_sum) {
    for (int64_t b = 0; b < K / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax;
        const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            a->q[b * QK + j] = (int8_t)nearbyintf(xb[j] * id);
            sum += a->q[b * QK + j];
        }
        a->d[b] = hb_f16_to_f32(hb_f32_to_f16(d));
        if (with_sum) a->s[b] = hb_f16_to_f32(hb_f32_to_f16((float)sum * d));
    }
}

/* ggml's quantize_row_q8_K_ref: the scale comes from the element of largest magnitude, signed. */
static void quant_act_q8k(act_row *a, const float *x, int64_t K) {
    for (int64_t b = 0; b < K / QK_K; b++) {
        const float *xb = x + b * QK_K;
        int8_t *q = a->q + b * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); max = xb[j]; }
        if (amax == 0.0f) {
            a->d[b] = 0.0f;
            memset(q, 0, QK_K);
            for (int g = 0; g < 16; g++) a->bsum[b * 16 + g] = 0;
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = (int)nearbyintf(iscale * xb[j]);
            q[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += q[g * 16 + j];
            a->bsum[b * 16 + g] = s;
        }
        a->d[b] = 1.0f / iscale;
    }
}

/* The integer quants, group scales and mins of one K-quant super-block, as its dequantizer reads them:
 * element i = (d * sc[i / gs]) * q[i] - (dmin * mn[i / gs]). Returns the group size gs. */
static int unpack_k(hb_dtype t, const uint8_t *b, int q[QK_K], int sc[16], int mn[16], float *d, float *dmin) {
    *dmin = 0.0f;
    switch (t) {
    case HB_Q2_K: {
        const uint8_t *qs = b + 16;
        *d = h2f(b + 80);
        *dmin = h2f(b + 82);
        for (int g = 0; g < 16; g++) { sc[g] = b[g] & 0xF; mn[g] = b[g] >> 4; }
        int i = 0;
        for (int n = 0; n < 2; n++, qs += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++)
                    for (int l = 0; l < 16; l++) q[i++] = (qs[l + 16 * half] >> shift) & 3;
        return 16;
    }
    case HB_Q3_K: {
        const uint8_t *hm = b, *qs = b + 32, *s = b + 96;
        *d = h2f(b + 108);
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4, hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (lo | (hi << 4)) - 32;
            mn[j] = 0;
        }
        int i = 0;
        uint8_t m = 1;
        for (int n = 0; n < 2; n++, qs += 32)
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1))
                for (int l = 0; l < 32; l++) q[i++] = ((qs[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
        return 16;
    }
    case HB_Q4_K: case HB_Q5_K: {
        const bool five = t == HB_Q5_K;
        const uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
        *d = h2f(b);
        *dmin = h2f(b + 2);
        for (int g = 0; g < 8; g++) scale_min_k4(g, b + 4, &sc[g], &mn[g]);
        int i = 0;
        for (int c = 0; c < 4; c++, qs += 32) {
            for (int l = 0; l < 32; l++) q[i++] = (qs[l] & 0xF) + (five && (qh[l] >> (2 * c)) & 1 ? 16 : 0);
            for (int l = 0; l < 32; l++) q[i++] = (qs[l] >> 4) + (five && (qh[l] >> (2 * c + 1)) & 1 ? 16 : 0);
        }
        return 32;
    }
    default: { /* HB_Q6_K */
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *s8 = (const int8_t *)(b + 192);
        *d = h2f(b + 208);
        for (int g = 0; g < 16; g++) { sc[g] = s8[g]; mn[g] = 0; }
        for (int n = 0; n < 2; n++, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                int *o = q + 128 * n;
                o[l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                o[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                o[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                o[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            }
        return 16;
    }
    }
}

/* The 32 integer quants of a Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 block (offsets -8/-16 applied), its d and min. */
static void unpack_32(hb_dtype t, const uint8_t *b, int q[QK], float *d, float *m) {
    *d = h2f(b);
    *m = (t == HB_Q4_1 || t == HB_Q5_1) ? h2f(b + 2) : 0.0f;
    if (t == HB_Q8_0) { for (int j = 0; j < QK; j++) q[j] = (int8_t)b[2 + j]; return; }
    const bool five = t == HB_Q5_0 || t == HB_Q5_1, has_min = t == HB_Q4_1 || t == HB_Q5_1;
    const uint32_t qh = five ? rd32(b + (has_min ? 4 : 2)) : 0;
    const uint8_t *qs = b + (has_min ? 4 : 2) + (five ? 4 : 0);
    const int off = has_min ? 0 : five ? 16 : 8;
    for (int j = 0; j < QK / 2; j++) {
        q[j] = ((qs[j] & 0xF) | (int)(((qh >> j) << 4) & 0x10)) - off;
        q[j + QK / 2] = ((qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10)) - off;
    }
}

static float dot_row(hb_dtype t, const uint8_t *w, const act_row *a, const float *x, int64_t K) {
    double acc = 0.0;
    if (t == HB_F32 || t == HB_F16 || t == HB_BF16) {
        const float *xr = t == HB_F32 ? x : a->xr;
        for (int64_t k = 0; k < K; k++) {
            float wv;
            hb_convert_to_f32(&wv, w + hb_dtype_bytes(t, k), t, 1);
            acc += (double)wv * (double)xr[k];
        }
        return (float)acc;
    }
    const size_t bb = hb_dtype_block_bytes(t);
    float sumf = 0.0f;
    if (hb_dtype_block_elems(t) == QK) {
        int q[QK];
        for (int64_t b = 0; b < K / QK; b++) {
            float d, m;
            unpack_32(t, w + (size_t)b * bb, q, &d, &m);
            int sumi = 0;
            for (int j = 0; j < QK; j++) sumi += q[j] * a->q[b * QK + j];
            sumf += (float)sumi * (d * a->d[b]) + (m != 0.0f ? m * a->s[b] : 0.0f);
        }
        return sumf;
    }
    int q[QK_K], sc[16], mn[16];
    for (int64_t b = 0; b < K / QK_K; b++) {
        float d, dmin;
        const int gs = unpack_k(t, w + (size_t)b * bb, q, sc, mn, &d, &dmin);
        const int8_t *qx = a->q + b * QK_K;
        int isum = 0, msum = 0;
        for (int g = 0; g < QK_K / gs; g++) {
            int s = 0, bs = 0;
            for (int j = g * gs; j < (g + 1) * gs; j++) s += q[j] * qx[j];
            for (int j = g * gs / 16; j < (g + 1) * gs / 16; j++) bs += a->bsum[b * 16 + j];
            isum += sc[g] * s;
            msum += mn[g] * bs;
        }
        sumf += a->d[b] * (d * (float)isum) - a->d[b] * (dmin * (float)msum);
    }
    return sumf;
}

int hb_matmul_ggml_ref(float *y, const float *x, int64_t M, const hb_tensor *w) {
    if (w->ndim != 2 || !hb_tensor_is_contiguous(w)) return hb_error("hb_matmul_ggml_ref: weight must be 2-D contiguous");
    const hb_dtype t = w->dtype;
    const int64_t N = w->shape[0], K = w->shape[1];
    if (t != HB_F32 && t != HB_F16 && t != HB_BF16 && !hb_dtype_is_quant(t))
        return hb_error("hb_matmul_ggml_ref: weight dtype %s has no ggml dot product", hb_dtype_name(t));
    if (K % hb_dtype_block_elems(t)) return hb_error("hb_matmul_ggml_ref: K = %lld is not whole blocks", (long long)K);
    const int64_t nb = K / QK + 1;
    act_row a;
    a.q = hb_malloc((size_t)K + 1, "activation quants");
    a.d = hb_malloc(sizeof(float) * (size_t)nb, "activation scales");
    a.s = hb_malloc(sizeof(float) * (size_t)nb, "activation sums");
    a.bsum = hb_malloc(sizeof(int32_t) * (size_t)(K / 16 + 1), "activation group sums");
    a.xr = hb_malloc(sizeof(float) * (size_t)(K + 1), "rounded activations");
    int rc = 0;
    if (!a.q || !a.d || !a.s || !a.bsum || !a.xr) rc = -1;
    for (int64_t m = 0; m < M && rc == 0; m++) {
        const float *xm = x + m * K;
        if (t == HB_F16) for (int64_t k = 0; k < K; k++) a.xr[k] = hb_f16_to_f32(hb_f32_to_f16(xm[k]));
        else if (t == HB_BF16) for (int64_t k = 0; k < K; k++) a.xr[k] = hb_bf16_to_f32(hb_f32_to_bf16(xm[k]));
        else if (hb_dtype_block_elems(t) == QK_K) quant_act_q8k(&a, xm, K);
        else if (hb_dtype_is_quant(t)) quant_act_q8(&a, xm, K, t == HB_Q4_1 || t == HB_Q5_1);
        for (int64_t n = 0; n < N; n++)
            y[m * N + n] = dot_row(t, (const uint8_t *)w->data + hb_dtype_bytes(t, n * K), &a, xm, K);
    }
    hb_free(a.q); hb_free(a.d); hb_free(a.s); hb_free(a.bsum); hb_free(a.xr);
    return rc;
}

/* ---------- quantization: ggml's reference quantizers (quantize_row_*_ref, no importance matrix) ----------
 * The same float operations in the same order as ggml-quants.c, so that the bytes match ggml_quantize_chunk's:
 * the K-quants search scales and mins iteratively (make_qkx2 / make_qx / make_q3), then requantize every
 * value with the f16-rounded scales. */

#define GROUP_MAX_EPS 1e-15f

static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wrf16(uint8_t *p, float f) { wr16(p, hb_f32_to_f16(f)); }

/* Round to nearest, ties to even, through the float's mantissa (ggml's nearest_int; |x| < 2^22). */
static inline int nearest(float x) {
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void quant_q4_0(uint8_t *y, const float *x, int64_t nb, bool five) {
    const size_t bs = five ? 22 : 18;
    for (int64_t i = 0; i < nb; i++, x += QK, y += bs) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++)
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        const float d = max / (five ? -16.0f : -8.0f), id = d != 0.0f ? 1.0f / d : 0.0f;
        wrf16(y, d);
        uint32_t qh = 0;
        uint8_t *qs = y + (five ? 6 : 2);
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[QK / 2 + j] * id;
            const float off = five ? 16.5f : 8.5f;
            const int top = five ? 31 : 15;
            const uint8_t q0 = (uint8_t)clampi((int8_t)(x0 + off), -128, top), q1 = (uint8_t)clampi((int8_t)(x1 + off), -128, top);
            qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 & 0x10u) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10u) >> 4) << (j + QK / 2);
        }
        if (five) for (int k = 0; k < 4; k++) y[2 + k] = (uint8_t)(qh >> (8 * k));
    }
}

static void quant_q4_1(uint8_t *y, const float *x, int64_t nb, bool five) {
    const size_t bs = five ? 24 : 20;
    for (int64_t i = 0; i < nb; i++, x += QK, y += bs) {
        float min = 3.402823466e38f, max = -3.402823466e38f;
        for (int j = 0; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / (five ? 31.0f : 15.0f), id = d != 0.0f ? 1.0f / d : 0.0f;
        wrf16(y, d);
        wrf16(y + 2, min);
        uint32_t qh = 0;
        uint8_t *qs = y + (five ? 8 : 4);
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[QK / 2 + j] - min) * id;
            uint8_t q0, q1;
            if (five) { q0 = (uint8_t)(x0 + 0.5f); q1 = (uint8_t)(x1 + 0.5f); }
            else { q0 = (uint8_t)clampi((int8_t)(x0 + 0.5f), -128, 15); q1 = (uint8_t)clampi((int8_t)(x1 + 0.5f), -128, 15); }
            qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 & 0x10u) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10u) >> 4) << (j + QK / 2);
        }
        if (five) for (int k = 0; k < 4; k++) y[4 + k] = (uint8_t)(qh >> (8 * k));
    }
}

static void quant_q8_0(uint8_t *y, const float *x, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        wrf16(y, d);
        for (int j = 0; j < QK; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* ggml's make_qkx2_quants: scale and (negated) min of n values with levels 0..nmax, weighted search. */
static float qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, float rmin, float rdelta,
                  int nstep, bool use_mad) {
    uint8_t Laux[32];
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best += w[i] * diff;
    }
    if (nstep < 1) { *the_min = -min; return scale; }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D, this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) { this_min = 0; this_scale = sum_xl / sum_l2; }
        float cur = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            cur += w[i] * diff;
        }
        if (cur < best) {
            memcpy(L, Laux, (size_t)n);
            best = cur;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

/* ggml's make_qx_quants with rmse_type 1 and no importance weights (w = x^2): symmetric levels -nmax..nmax-1
 * stored + nmax, 19 trial scales around nmax/max. */
static float qx(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < GROUP_MAX_EPS) { for (int i = 0; i < n; i++) L[i] = 0; return 0.0f; }
    float iscale = -(float)nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_q3_quants with do_rmse: levels -nmax..nmax-1 refined one value at a time (5 passes). */
static float q3(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < GROUP_MAX_EPS) { for (int i = 0; i < n; i++) L[i] = 0; return 0.0f; }
    float iscale = -(float)nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int nl = clampi(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* 6-bit scale/min pairs of Q4_K/Q5_K into their 12 bytes (the inverse of scale_min_k4). */
static void pack_scale_min_k4(uint8_t *s, int j, int ls, int lm) {
    if (j < 4) {
        s[j] = (uint8_t)ls;
        s[j + 4] = (uint8_t)lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

static void quant_q45_k(uint8_t *y, const float *x, int64_t nb, bool five) {
    const int nmax = five ? 31 : 15;
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += five ? 176 : 144) {
        uint8_t L[QK_K];
        float mins[8], scales[8], w[32], max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            const float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = five ? qkx2(32, 31, x + 32 * j, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, false)
                             : qkx2(32, 15, x + 32 * j, w, L + 32 * j, &mins[j], -1.0f, 0.1f, 20, false);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        uint8_t *sc = y + 4;
        memset(sc, 0, 12);
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)nearest(inv_scale * scales[j]), lm = (uint8_t)nearest(inv_min * mins[j]);
            pack_scale_min_k4(sc, j, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
        }
        wrf16(y, max_scale / 63.0f);
        wrf16(y + 2, max_min / 63.0f);
        for (int j = 0; j < 8; j++) {
            int s, m;
            scale_min_k4(j, sc, &s, &m);
            const float d = h2f(y) * (float)s;
            if (d == 0.0f) continue;
            const float dm = h2f(y + 2) * (float)m;
            for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)clampi(nearest((x[32 * j + l] + dm) / d), 0, nmax);
        }
        uint8_t *qh = y + 16, *q = y + (five ? 48 : 16);
        if (five) memset(qh, 0, 32);
        for (int n = 0, c = 0; n < QK_K; n += 64, c++, q += 32)
            for (int l = 0; l < 32; l++) {
                int l1 = L[n + l], l2 = L[n + l + 32];
                if (l1 > 15) { l1 -= 16; qh[l] |= (uint8_t)(1 << (2 * c)); }
                if (l2 > 15) { l2 -= 16; qh[l] |= (uint8_t)(2 << (2 * c)); }
                q[l] = (uint8_t)(l1 | (l2 << 4));
            }
    }
}

static void pack_2bit(uint8_t *qs, const uint8_t *L) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static void quant_q2_k(uint8_t *y, const float *x, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 84) {
        uint8_t L[QK_K], *sc = y;
        float mins[16], scales[16], w[16], max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = qkx2(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        for (int j = 0; j < 16; j++) sc[j] = max_scale > 0 ? (uint8_t)nearest(15.0f / max_scale * scales[j]) : 0;
        wrf16(y + 80, max_scale > 0 ? max_scale / 15.0f : 0.0f);
        if (max_min > 0)
            for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(nearest(15.0f / max_min * mins[j]) << 4);
        wrf16(y + 82, max_min > 0 ? max_min / 15.0f : 0.0f);
        for (int j = 0; j < 16; j++) {
            const float d = h2f(y + 80) * (float)(sc[j] & 0xF);
            if (d == 0.0f) continue;
            const float dm = h2f(y + 82) * (float)(sc[j] >> 4);
            for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)clampi(nearest((x[16 * j + l] + dm) / d), 0, 3);
        }
        pack_2bit(y + 16, L);
    }
}

static void quant_q3_k(uint8_t *y, const float *x, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 110) {
        int8_t L[QK_K];
        float scales[16], max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = q3(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) { amax = fabsf(scales[j]); max_scale = scales[j]; }
        }
        uint8_t *s = y + 96;
        memset(s, 0, 12);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = clampi((int8_t)nearest(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) s[j] = (uint8_t)(l & 0xF);
                else s[j - 8] |= (uint8_t)((l & 0xF) << 4);
                s[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            wrf16(y + 108, 1 / iscale);
        } else {
            wrf16(y + 108, 0.0f);
        }
        for (int j = 0; j < 16; j++) {
            int sc = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
            sc = (int8_t)((sc | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
            const float d = h2f(y + 108) * (float)sc;
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(clampi(nearest(x[16 * j + l] / d), -4, 3) + 4);
        }
        uint8_t *hm = y, U[QK_K];
        memset(hm, 0, 32);
        for (int j = 0; j < QK_K; j++) {
            U[j] = (uint8_t)L[j];
            if (U[j] > 3) { hm[j % 32] |= (uint8_t)(1 << (j / 32)); U[j] -= 4; }
        }
        pack_2bit(y + 32, U);
    }
}

static void quant_q6_k(uint8_t *y, const float *x, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 210) {
        int8_t L[QK_K];
        float scales[16], max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = qx(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) { max_abs = fabsf(scales[ib]); max_scale = scales[ib]; }
        }
        if (max_abs < GROUP_MAX_EPS) { memset(y, 0, 210); continue; }
        const float iscale = -128.0f / max_scale;
        int8_t *sc = (int8_t *)(y + 192);
        wrf16(y + 208, 1 / iscale);
        for (int ib = 0; ib < 16; ib++) {
            int v = nearest(iscale * scales[ib]);
            sc[ib] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            const float d = h2f(y + 208) * (float)sc[j];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(clampi(nearest(x[16 * j + l] / d), -32, 31) + 32);
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const uint8_t *Lu = (const uint8_t *)L + j + l;
                ql[l] = (uint8_t)((Lu[0] & 0xF) | ((Lu[64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lu[32] & 0xF) | ((Lu[96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lu[0] >> 4) | ((Lu[32] >> 4) << 2) | ((Lu[64] >> 4) << 4) | ((Lu[96] >> 4) << 6));
            }
    }
}

int hb_quantize(void *dst, const float *src, hb_dtype t, int64_t n) {
    if (!hb_dtype_is_quant(t)) {
        if (t != HB_F32 && t != HB_F16 && t != HB_BF16) return hb_error("hb_quantize: %s is not a weight format", hb_dtype_name(t));
        hb_convert_from_f32(dst, t, src, (size_t)n);
        return 0;
    }
    const int64_t be = hb_dtype_block_elems(t);
    if (n % be) return hb_error("hb_quantize: %lld values are not whole %s blocks of %lld", (long long)n, hb_dtype_name(t), (long long)be);
    uint8_t *y = dst;
    const int64_t nb = n / be;
    switch (t) {
    case HB_Q4_0: quant_q4_0(y, src, nb, false); break;
    case HB_Q5_0: quant_q4_0(y, src, nb, true); break;
    case HB_Q4_1: quant_q4_1(y, src, nb, false); break;
    case HB_Q5_1: quant_q4_1(y, src, nb, true); break;
    case HB_Q8_0: quant_q8_0(y, src, nb); break;
    case HB_Q2_K: quant_q2_k(y, src, nb); break;
    case HB_Q3_K: quant_q3_k(y, src, nb); break;
    case HB_Q4_K: quant_q45_k(y, src, nb, false); break;
    case HB_Q5_K: quant_q45_k(y, src, nb, true); break;
    default: quant_q6_k(y, src, nb); break;
    }
    return 0;
}
