/* core/quant: ggml's block formats, dequantized exactly as ggml's dequantize_row_* (ggml-quants.c) does.
 * Every value is computed in f32 with each multiply and add rounded separately, in ggml's order: this file is
 * compiled with -ffp-contract=off (CMakeLists.txt) so that no d*q - m is fused into one rounding. Block
 * layouts (byte offsets) follow ggml-common.h's block_* structs; f16 fields are little-endian. */
#include "core/quant_internal.h"

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
