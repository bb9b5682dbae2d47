/* Internals shared by the GPU backend's files (the .cu files in src/backends/cuda/). One device per process-thread
 * context, one stream; every launch is asynchronous on it and errors are sticky until hb_backend_sync. */
#ifndef HB_GPU_INTERNAL_H
#define HB_GPU_INTERNAL_H

#include "ops/ops_internal.h"
#include "backends/cuda/gpu.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The stream every kernel and copy of this backend is queued on. */
gpuStream_t hbg_stream(void);
/* Record the first error (sticky; returned by the backend's sync and by hbg_check). Returns -1. */
int hbg_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Check a runtime call / the last launch: on failure records "what: <runtime message>", returns -1. */
int hbg_check(gpuError_t e, const char *what);
#define HBG_LAUNCHED(what) hbg_check(gpuGetLastError(), what)

/* A weight on the device, uploaded once per host tensor (keyed by its host address, size and dtype) and
 * kept until the host memory is released (hb_host_memory_released). HBG_W_BF16: converted to bf16 (the
 * GEMM/conv operands); HBG_W_F32: f32 (biases, norm weights, modulation tables). NULL + hbg_fail on error.
 * Non-contiguous tensors are uploaded in their logical (contiguous) order. */
typedef enum { HBG_W_BF16 = 0, HBG_W_F32 = 1, HBG_W_FP8 = 2 } hbg_wfmt;
/* HBG_W_FP8 (the opt-in HB_GPU_FP8 linears): the weight quantised once, per tensor, to e4m3 with the dequantisation
 * scale s = amax / 448 (1 when amax is 0): n bytes q_i = e4m3(w_i / s) (logical order), then the f32 s at byte
 * offset hbg_fp8_scale_offset(n) (16-byte aligned) of the same allocation, so w_i ~ s * q_i. */
inline size_t hbg_fp8_scale_offset(int64_t n) { return ((size_t)n + 15u) & ~(size_t)15u; }
/* f32 -> e4m3 (the "fn" variant: no infinities, S.1111.111 is NaN, largest finite 448), round to nearest even,
 * saturating: |f| >= 448 (infinities too) gives +-448; NaN gives 0x7f. Host and device. */
__host__ __device__ inline uint8_t hbg_f32_to_e4m3(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint8_t)(sign | 0x7f);
    if (a >= 0x43e00000u) return (uint8_t)(sign | 0x7e); /* >= 448 */
    if (a < 0x3c800000u) {                              /* < 2^-6: subnormal, m * 2^-9 (m = 8 is 2^-6, code 0x08) */
        float af;
        memcpy(&af, &a, sizeof af);
        return (uint8_t)(sign | (uint8_t)rintf(af * 512.0f));
    }
    const uint32_t r = (a + 0x7ffffu + ((a >> 20) & 1u)) & ~0xfffffu; /* 3 mantissa bits, nearest even */
    const int e = (int)(r >> 23) - 127;                                /* -6 .. 8 (448 rounds to at most 448) */
    return (uint8_t)(sign | (uint8_t)((e + 7) << 3) | (uint8_t)((r >> 20) & 7u));
}
const void *hbg_weight(const hb_tensor *w, hbg_wfmt fmt);
/* Scratch device memory reused between ops (grows; valid until the next hbg_scratch call of the same slot).
 * Slots let one op hold a few buffers at once. */
enum { HBG_SCRATCH_SLOTS = 4 };
void *hbg_scratch(int slot, size_t bytes);
/* Properties of the current device. */
const gpuDeviceProp *hbg_props(void);

/* The kernels, hbg_<name> for every op of ops/ops_list.h (the backend table in gpu_backend.cu points here):
 * linear in gpu_gemm.cu, attention in gpu_attention.cu, conv3d in gpu_conv.cu, the memory-bound rest in
 * gpu_ops.cu. */
#define HB_OP(ret, name, params, args) ret hbg_##name params;
#include "ops/ops_list.h"
#undef HB_OP
/* f32 -> bf16 conversion on the device (n elements). */
void hbg_to_bf16(gpu_bf16 *dst, const float *src, int64_t n);

/* ---- gpu_backend.cu / gpu_ops.cu (gpu-core) ---- */
/* The device number of the calling thread's current context (-1 before any). */
int hbg_device(void);
/* Blocks for a grid-stride loop over n items with `threads` per block (at least 1, capped near the number
 * of resident blocks so launches never exceed the grid limits). */
unsigned hbg_blocks(int64_t n, int threads);
/* Small host->device transfer for one op's parameters (ids, tables): copied through the stream and waited for,
 * so `src` may be reused at once. -1 + hbg_fail on error. */
int hbg_upload_sync(void *dst, const void *src, size_t bytes, const char *what);
/* RoPE cos/sin tables (float64 pairs) for head_dim d: frames from `f_lo` (inclusive) to `f_hi` (exclusive),
 * rows [0, H), cols [0, W); returned as the device table and the offsets (in double2 units) of each axis'
 * position 0. Built on the host in float64 exactly like the CPU, cached per context. NULL on error. */
const double *hbg_rope_table(int d, int64_t f_lo, int64_t f_hi, int H, int W, int64_t off[3]);

#endif
