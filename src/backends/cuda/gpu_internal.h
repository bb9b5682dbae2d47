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

/* The kernels, one file each (the backend table in gpu_backend.cu points here). */
int hbg_linear(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate);
void hbg_gemm_f32(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                  int64_t N, int64_t K, bool accumulate);
void hbg_attention(const hb_attention_args *a);
int hbg_conv3d(float *y, const float *x, int64_t Cin, int64_t T, int64_t H, int64_t W, const hb_tensor *w,
               const hb_tensor *b, const hb_conv3d_params *p);
/* f32 -> bf16 conversion on the device (n elements). */
void hbg_to_bf16(gpu_bf16 *dst, const float *src, int64_t n);

/* ---- gpu_backend.cu / gpu_ops.cu (gpu-core) ---- */
/* The device number of the calling thread's current context (-1 before any). */
int hbg_device(void);
/* Blocks for a grid-stride loop over n items with `threads` per block (at least 1, capped near the number
 * of resident blocks so launches never exceed the grid limits). */
unsigned hbg_blocks(int64_t n, int threads);
/* The memory-bound kernels of gpu_ops.cu (ops.h documents each under its hb_ name). */
void hbg_layernorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, const hb_tensor *b,
                   float eps);
void hbg_rmsnorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, float eps);
void hbg_channel_rmsnorm(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *gamma, const hb_tensor *beta);
void hbg_layernorm_modulate(float *y, const float *x, int64_t rows, int64_t dim, float eps, const float *shift,
                            const float *scale, hb_modgroups g);
void hbg_gated_add(float *x, const float *y, int64_t rows, int64_t dim, const float *gate, hb_modgroups g);
void hbg_elementwise(hb_ew_op op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n);
void hbg_softmax(float *x, int64_t rows, int64_t n);
void hbg_rope3d(float *x, int64_t L, int heads, int head_dim, int64_t stride, int H, int W, int f0);
void hbg_rope_shift(float *x, int64_t rows, int64_t stride, int heads, int head_dim, int np, double delta);
void hbg_upsample_nearest(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh, int fw);
void hbg_pixel_shuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o,
                       bool unshuffle);
void hbg_copy_nd(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int ndim,
                 const int64_t *shape);
void hbg_fill(float *dst, float value, int64_t n);
void hbg_add_vec(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t n, const hb_tensor *v);
int hbg_embed_rows(float *y, const hb_tensor *table, const int32_t *ids, int64_t n);
void hbg_channel_affine(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *scale, const hb_tensor *shift);
int hbg_convert(void *dst, hb_dtype dt, const void *src, hb_dtype st, int64_t n);
/* Small host->device transfer for one op's parameters (ids, tables): copied through the stream and waited for,
 * so `src` may be reused at once. -1 + hbg_fail on error. */
int hbg_upload_sync(void *dst, const void *src, size_t bytes, const char *what);
/* RoPE cos/sin tables (float64 pairs) for head_dim d: frames from `f_lo` (inclusive) to `f_hi` (exclusive),
 * rows [0, H), cols [0, W); returned as the device table and the offsets (in double2 units) of each axis'
 * position 0. Built on the host in float64 exactly like the CPU, cached per context. NULL on error. */
const double *hbg_rope_table(int d, int64_t f_lo, int64_t f_hi, int H, int W, int64_t off[3]);

#endif
