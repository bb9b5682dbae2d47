/* core/quant_dot: ggml's quantized matrix product (hb_matmul_ggml_ref), the reference for ggml_mul_mat on its
 * CPU backend. */
#include "core/quant_internal.h"
#include <math.h>
#include <string.h>

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

void hb_quantize_act_q8_0(int8_t *q, float *d, const float *x, int64_t K) {
    for (int64_t b = 0; b < K / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax;
        const float db = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < QK; j++) q[b * QK + j] = (int8_t)nearbyintf(xb[j] * id);
        d[b] = hb_f16_to_f32(hb_f32_to_f16(db));
    }
}

static void quant_act_q8(act_row *a, const float *x, int64_t K, bool with_sum) {
    hb_quantize_act_q8_0(a->q, a->d, x, K);
    if (!with_sum) return;
    for (int64_t b = 0; b < K / QK; b++) {
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += a->q[b * QK + j];
        /* ggml: s = sum * d with the unrounded d */
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fabsf(x[b * QK + j]) > amax ? fabsf(x[b * QK + j]) : amax;
        a->s[b] = hb_f16_to_f32(hb_f32_to_f16((float)sum * (amax / 127.0f)));
    }
}

void hb_quantize_act_q8_k(int8_t *qa, float *d, int32_t *bsum, const float *x, int64_t K) {
    for (int64_t b = 0; b < K / QK_K; b++) {
        const float *xb = x + b * QK_K;
        int8_t *q = qa + b * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); max = xb[j]; }
        if (amax == 0.0f) {
            d[b] = 0.0f;
            memset(q, 0, QK_K);
            for (int g = 0; g < 16; g++) bsum[b * 16 + g] = 0;
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
            bsum[b * 16 + g] = s;
        }
        d[b] = 1.0f / iscale;
    }
}

/* ggml's quantize_row_q8_K_ref: the scale comes from the element of largest magnitude, signed. */
static void quant_act_q8k(act_row *a, const float *x, int64_t K) { hb_quantize_act_q8_k(a->q, a->d, a->bsum, x, K); }

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
