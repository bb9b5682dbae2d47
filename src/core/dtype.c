#include "core/core.h"
#include <string.h>
#include <math.h>

static const struct { const char *name; size_t size; } k_dtypes[HB_DTYPE_COUNT] = {
    [HB_F32] = {"F32", 4}, [HB_F16] = {"F16", 2}, [HB_BF16] = {"BF16", 2}, [HB_F64] = {"F64", 8},
    [HB_I64] = {"I64", 8}, [HB_I32] = {"I32", 4}, [HB_I16] = {"I16", 2}, [HB_I8] = {"I8", 1},
    [HB_U8] = {"U8", 1},   [HB_BOOL] = {"BOOL", 1},
};

/* ggml's block formats (ggml-common.h block_q4_0 ... block_q6_K): elements and bytes per block. */
static const struct { const char *name; int elems; size_t bytes; } k_qtypes[HB_QTYPE_END - HB_Q4_0] = {
    [HB_Q4_0 - HB_Q4_0] = {"Q4_0", 32, 18},   [HB_Q4_1 - HB_Q4_0] = {"Q4_1", 32, 20},
    [HB_Q5_0 - HB_Q4_0] = {"Q5_0", 32, 22},   [HB_Q5_1 - HB_Q4_0] = {"Q5_1", 32, 24},
    [HB_Q8_0 - HB_Q4_0] = {"Q8_0", 32, 34},   [HB_Q2_K - HB_Q4_0] = {"Q2_K", 256, 84},
    [HB_Q3_K - HB_Q4_0] = {"Q3_K", 256, 110}, [HB_Q4_K - HB_Q4_0] = {"Q4_K", 256, 144},
    [HB_Q5_K - HB_Q4_0] = {"Q5_K", 256, 176}, [HB_Q6_K - HB_Q4_0] = {"Q6_K", 256, 210},
};

bool hb_dtype_is_quant(hb_dtype t) { return t >= HB_Q4_0 && t < HB_QTYPE_END; }
size_t hb_dtype_size(hb_dtype t) { return (unsigned)t < HB_DTYPE_COUNT ? k_dtypes[t].size : 0; }
const char *hb_dtype_name(hb_dtype t) {
    if ((unsigned)t < HB_DTYPE_COUNT) return k_dtypes[t].name;
    return hb_dtype_is_quant(t) ? k_qtypes[t - HB_Q4_0].name : "?";
}
int hb_dtype_block_elems(hb_dtype t) { return hb_dtype_is_quant(t) ? k_qtypes[t - HB_Q4_0].elems : 1; }
size_t hb_dtype_block_bytes(hb_dtype t) { return hb_dtype_is_quant(t) ? k_qtypes[t - HB_Q4_0].bytes : hb_dtype_size(t); }
size_t hb_dtype_bytes(hb_dtype t, int64_t n) {
    if (!hb_dtype_is_quant(t)) return (size_t)n * hb_dtype_size(t);
    return (size_t)(n / k_qtypes[t - HB_Q4_0].elems) * k_qtypes[t - HB_Q4_0].bytes;
}

int hb_dtype_from_name(const char *s, hb_dtype *out) {
    for (int i = 0; i < HB_DTYPE_COUNT; i++)
        if (strcmp(s, k_dtypes[i].name) == 0) { *out = (hb_dtype)i; return 0; }
    return -1;
}

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float hb_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t hb_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float hb_e4m3_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24, exp = (b >> 3) & 0xfu, man = b & 7u;
    if (exp == 0xf && man == 7) return u2f(sign | 0x7fc00000u);
    if (exp == 0) {
        float v = (float)man * 0x1p-9f; /* subnormal: exact */
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 120u) << 23) | (man << 20));
}

float hb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return u2f(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        float v = (float)man * 0x1p-24f; /* subnormal: exact */
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t hb_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;              /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;             /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                   /* result is subnormal or zero */
        /* value / 2^-24 rounded to nearest even integer gives the subnormal mantissa */
        float v = u2f(a) * 0x1p24f;
        float r = nearbyintf(v); /* default rounding mode: ties to even */
        return sign | (uint16_t)r;
    }
    uint32_t man = a & 0x7fffffu, exp = (a >> 23) - 112u;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

void hb_convert_to_f32(float *dst, const void *src, hb_dtype t, size_t n) {
    switch (t) {
    case HB_F32: memmove(dst, src, n * 4); break;
    case HB_BF16: { const uint16_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = hb_bf16_to_f32(s[i]); } break;
    case HB_F16: { const uint16_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = hb_f16_to_f32(s[i]); } break;
    case HB_F64: { const double *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case HB_I64: { const int64_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case HB_I32: { const int32_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case HB_I16: { const int16_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case HB_I8: { const int8_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    case HB_U8: case HB_BOOL: { const uint8_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
    default: if (hb_dtype_is_quant(t)) hb_dequantize(dst, src, t, (int64_t)n); break;
    }
}

void hb_convert_from_f32(void *dst, hb_dtype t, const float *src, size_t n) {
    switch (t) {
    case HB_F32: memmove(dst, src, n * 4); break;
    case HB_BF16: { uint16_t *d = dst; for (size_t i = 0; i < n; i++) d[i] = hb_f32_to_bf16(src[i]); } break;
    case HB_F16: { uint16_t *d = dst; for (size_t i = 0; i < n; i++) d[i] = hb_f32_to_f16(src[i]); } break;
    case HB_F64: { double *d = dst; for (size_t i = 0; i < n; i++) d[i] = src[i]; } break;
    default: break;
    }
}
