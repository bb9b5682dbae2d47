/* core/torch_rng: PyTorch's CPU random generator (at::mt19937 seeded by manual_seed) and its torch.randn
 * fill for float32 tensors of 16 or more elements (normal_fill: uniforms (u32 & 2^24-1) * 2^-24, then
 * Box-Muller on blocks of 16, the last 16 redrawn when n is not a multiple of 16), so that a seed gives the
 * same noise as the Hummingbird-XT release's `torch.randn(shape, generator=Generator().manual_seed(seed))`.
 * log and sincos are the Cephes polynomials of PyTorch's AVX2 kernel, so the numbers are bitwise those of
 * PyTorch on an AVX2 CPU (a CPU without AVX2 makes PyTorch itself use libm and differ in the last bit). */
#ifndef HB_CORE_TORCH_RNG_H
#define HB_CORE_TORCH_RNG_H

#include <stdint.h>

typedef struct hb_torch_rng {
    uint32_t state[624];
    int next;
} hb_torch_rng;

void hb_torch_rng_seed(hb_torch_rng *g, uint64_t seed); /* torch.Generator().manual_seed(seed) */
uint32_t hb_torch_rng_u32(hb_torch_rng *g);             /* generator->random() */
/* torch.randn(n) with this generator: n >= 16 (-1 + message otherwise, a path no latent takes). */
int hb_torch_randn(hb_torch_rng *g, float *out, int64_t n);

#endif
