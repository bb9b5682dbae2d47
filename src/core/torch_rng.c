/* PyTorch's CPU generator and randn fill (see torch_rng.h). */
#include "core/torch_rng.h"
#include "core/core.h"
#include <math.h>
#include <stdbool.h>
#include <string.h>

void hb_torch_rng_seed(hb_torch_rng *g, uint64_t seed) {
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < 624; j++) g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + (uint32_t)j;
    g->next = 624; /* the first draw regenerates the whole state */
}

static void twist(hb_torch_rng *g) {
    for (int i = 0; i < 624; i++) {
        uint32_t y = (g->state[i] & 0x80000000u) | (g->state[(i + 1) % 624] & 0x7fffffffu);
        g->state[i] = g->state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    g->next = 0;
}

uint32_t hb_torch_rng_u32(hb_torch_rng *g) {
    if (g->next >= 624) twist(g);
    uint32_t y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* at::uniform_real_distribution<float>(0, 1): the low 24 bits scaled by 2^-24 */
static float uniform24(hb_torch_rng *g) { return (float)(hb_torch_rng_u32(g) & 0xffffffu) * 0x1p-24f; }

/* The Cephes log and sincos that PyTorch's AVX2 randn uses (avx_mathfun.h log256_ps / sincos256_ps), one
 * lane at a time, in the same operation order and with the multiply-adds its compiler fuses written as
 * fmaf: bitwise PyTorch's numbers on an AVX2 CPU (checked against torch 1.13 over 10^6 values). This file
 * is compiled with -ffp-contract=off so that nothing else gets fused. */
static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static float cephes_logf(float x) {
    if (!(x > 0)) return NAN; /* u1 = 1 - u lies in (0, 1] */
    if (x < 0x1p-126f) x = 0x1p-126f;
    uint32_t u = f_bits(x);
    int emm0 = (int)(u >> 23) - 0x7f;
    x = bits_f((u & ~0x7f800000u) | f_bits(0.5f));
    float e = (float)emm0 + 1.0f;
    const bool lt = x < 0.707106781186547524f;
    const float tmp = lt ? x : 0.0f;
    x = x - 1.0f;
    e = e - (lt ? 1.0f : 0.0f);
    x = x + tmp;
    const float z = x * x;
    static const float p[9] = {7.0376836292E-2f, -1.1514610310E-1f, 1.1676998740E-1f, -1.2420140846E-1f,
                               1.4249322787E-1f, -1.6668057665E-1f, 2.0000714765E-1f, -2.4999993993E-1f,
                               3.3333331174E-1f};
    float y = p[0];
    for (int i = 1; i < 9; i++) y = fmaf(y, x, p[i]);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    return fmaf(e, 0.693359375f, x);
}

static void cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = f_bits(x) & 0x80000000u;
    x = fabsf(x);
    int j = (int)(x * 1.27323954473516f); /* 4 / pi, truncated */
    j = (j + 1) & ~1;
    const float y = (float)j;
    const uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    const bool poly_cos = (j & 2) == 0; /* the cosine polynomial gives the sine */
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    const uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;
    const float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    const float sv = poly_cos ? ys : yc, cv = poly_cos ? yc : ys;
    *s = bits_f(f_bits(sv) ^ sign_sin);
    *c = bits_f(f_bits(cv) ^ sign_cos);
}

/* normal_fill_16_AVX2: Box-Muller pairs (j, j + 8) */
static void normal16(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - d[j], u2 = d[j + 8];
        const float radius = sqrtf(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        d[j] = radius * c;
        d[j + 8] = radius * s;
    }
}

int hb_torch_randn(hb_torch_rng *g, float *out, int64_t n) {
    if (n < 16) return hb_error("torch randn: %lld elements (the generator's float fill needs 16 or more)", (long long)n);
    for (int64_t i = 0; i < n; i++) out[i] = uniform24(g);
    for (int64_t i = 0; i + 16 <= n; i += 16) normal16(out + i);
    if (n % 16) {
        float *tail = out + n - 16;
        for (int j = 0; j < 16; j++) tail[j] = uniform24(g);
        normal16(tail);
    }
    return 0;
}
