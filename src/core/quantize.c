/* core/quantize: ggml's reference quantizers, ported (compiled with -ffp-contract=off like the dequantizers). */
#include "core/quant_internal.h"
#include <math.h>
#include <string.h>

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
