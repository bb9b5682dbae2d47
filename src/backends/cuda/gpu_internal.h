/* Internals shared by the GPU backend's files (src/backends/cuda/*.cu). One device per process-thread
 * context, one stream; every launch is asynchronous on it and errors are sticky until hb_backend_sync. */
#ifndef HB_GPU_INTERNAL_H
#define HB_GPU_INTERNAL_H

#include "ops/ops_internal.h"
#include "backends/cuda/gpu.h"

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
typedef enum { HBG_W_BF16 = 0, HBG_W_F32 = 1 } hbg_wfmt;
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

#endif
