/* core internals shared by quant.c (dequantization), quant_dot.c (ggml's quantized dot products) and quantize.c
 * (ggml's reference quantizers): block constants and little-endian field readers of ggml's block structs. */
#ifndef HB_CORE_QUANT_INTERNAL_H
#define HB_CORE_QUANT_INTERNAL_H

#include "core/core.h"

#define QK 32
#define QK_K 256

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline float h2f(const uint8_t *p) { return hb_f16_to_f32(rd16(p)); }

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

#endif
