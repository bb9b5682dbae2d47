/* ops: the kernels every model is written with. Plain functions over f32 activations (weights may be
 * F32, BF16 or F16 tensors straight from a mapped checkpoint). Every kernel runs on the thread pool and
 * gives bitwise-identical results for any thread count. The CPU implementations live in src/ops/cpu_*.c;
 * a GPU backend implements the same table (hb_backend below). Layouts are PyTorch's, batch dropped. */
#ifndef HB_OPS_H
#define HB_OPS_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {  /* the CUDA/HIP backend is compiled as C++ */
#endif

/* Modulation shared by groups of rows: row r uses vectors at (r / rows_per_group) * group_stride.
 * (Wan 2.1: one group for all tokens; Wan 2.2: one per token; causal: one per frame.) */
typedef struct { int64_t rows_per_group, group_stride; } hb_modgroups;

/* Attention arguments: out[Lq, heads, d] = softmax(q k^T * scale + bias) v, tiled with an online softmax
 * (memory O(L*d), no Lq x Lk matrix). Tokens are `*_stride` elements apart; head h of a token is at h*d.
 * bias: optional additive [heads, Lq, Lk] (T5 position bias); key_mask: optional [Lk], 0 = masked key
 * (gets -FLT_MAX added, as T5 does). */
typedef struct {
    float *out; const float *q, *k, *v;
    int64_t lq, lk; int heads, head_dim;
    int64_t o_stride, q_stride, k_stride, v_stride;
    float scale;
    const float *bias;
    const uint8_t *key_mask;
} hb_attention_args;

/* Operand precision of hb_conv3d. HB_CONV_FAST: the backend's fast path (the CPU computes in f32; a GPU backend
 * rounds weights and input to bf16, f32 accumulation). HB_CONV_F32: f32 operands and accumulation on every
 * backend (training: gradients need it). */
typedef enum { HB_CONV_FAST = 0, HB_CONV_F32 = 1 } hb_conv_precision;

/* Conv3d geometry: strides, zero padding per side, groups (hb_conv3d), and the operand precision (0 = fast). */
typedef struct {
    int stride[3];      /* t, h, w */
    int pad_t[2], pad_h[2], pad_w[2];
    int groups;
    hb_conv_precision precision;
} hb_conv3d_params;

/* Pixel (un)shuffle channel orders:
 *  HB_PS_CQR: out channel c*p*p + q*p + r, q = row offset, r = column offset (torch pixel_(un)shuffle, TAEHV);
 *  HB_PS_CRQ: out channel c*p*p + r*p + q (Wan 2.2 VAE patchify: "b c f (h q) (w r) -> b (c r q) f h w"). */
typedef enum { HB_PS_CQR = 0, HB_PS_CRQ = 1 } hb_ps_order;

/* Elementwise ops (b unused by the unary ones): SILU, GELU_TANH, RELU, TANH3 = 3*tanh(a/3) (TAEHV clamp),
 * CLAMP01 = min(max(a,0),1); ADD, MUL, ADD_RELU = max(a+b, 0); AXPBY = alpha*a + beta*b;
 * CLAMP = min(max(a, alpha), beta) (light VAE output clamp to [-1, 1]); AXPBY_F64 = alpha*a + beta*b computed
 * in float64 and rounded once (the reference samplers' double-precision x0 = x - sigma * flow). */
typedef enum {
    HB_EW_SILU, HB_EW_GELU_TANH, HB_EW_ADD, HB_EW_MUL, HB_EW_AXPBY, HB_EW_RELU, HB_EW_TANH3, HB_EW_ADD_RELU,
    HB_EW_CLAMP01, HB_EW_CLAMP, HB_EW_AXPBY_F64
} hb_ew_op;

/* The epilogue of hb_linear_ep, applied to each output tile of the product p = x W^T + b while it is in cache:
 *  HB_EPI_NONE:      y = p;
 *  HB_EPI_GELU_TANH: y = gelu_tanh(p)  (Wan's FFN);
 *  HB_EPI_ADD:       y += p            (a residual add);
 *  HB_EPI_GATED_ADD: y += p * gate     (the DiT blocks' gated residual; output row r reads the gate row of the
 *                                       modulation group of row row0 + r, as hb_gated_add counts rows from 0). */
typedef enum { HB_EPI_NONE, HB_EPI_GELU_TANH, HB_EPI_ADD, HB_EPI_GATED_ADD } hb_epilogue_op;
typedef struct { hb_epilogue_op op; const float *gate; hb_modgroups g; int64_t row0; } hb_epilogue;

/* torch.optim.AdamW's settings as Python passes them (doubles; hb_adamw_step rounds them as torch does). */
typedef struct { double lr, beta1, beta2, eps, weight_decay; } hb_adamw;

/* The backend ops, hb_<name> for every HB_OP line of ops/ops_list.h (which documents each): they check their
 * arguments (one hb_error line naming the op and the problem) and run on this thread's backend. */
#define HB_OP(ret, name, params, args) ret hb_##name params;
#include "ops/ops_list.h"
#undef HB_OP

/* ---------- ops composed of the backend ops ---------- */
/* Elementwise shorthands (y may alias x). */
void hb_silu(float *y, const float *x, int64_t n);
void hb_gelu_tanh(float *y, const float *x, int64_t n);
void hb_add(float *y, const float *a, const float *b, int64_t n);
void hb_mul(float *y, const float *a, const float *b, int64_t n);
void hb_scale_add(float *y, const float *a, float alpha, const float *b, float beta, int64_t n); /* y=alpha*a+beta*b */
/* Conv2d on x [Cin, H, W] with w [Cout, Cin/groups, kh, kw]: the kt = 1, T = 1 case of hb_conv3d. */
int hb_conv2d(float *y, const float *x, int64_t Cin, int64_t H, int64_t W, const hb_tensor *w, const hb_tensor *b,
              int stride, int pad, int groups);
/* The output size of hb_conv3d for an input of T x H x W. */
void hb_conv3d_out_size(int64_t T, int64_t H, int64_t W, const hb_tensor *w, const hb_conv3d_params *p,
                        int64_t *To, int64_t *Ho, int64_t *Wo);
/* Pixel unshuffle [C, T, H*p, W*p] -> [C*p*p, T, H, W] and its inverse (H, W the low-resolution sizes, C the
 * low-channel count). */
void hb_pixel_unshuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o);
void hb_pixel_shuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o);
/* Contiguous copy of n floats (dst and src in the current memory space; they may not overlap). */
void hb_copy(float *dst, const float *src, int64_t n);
/* Rows copy: dst[r*ldd + j] = src[r*lds + j] for r < rows, j < cols. */
void hb_copy_rows(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols);

/* ---------- backends ----------
 * Every op above dispatches through this thread's backend (hb_backend_use); models call the ops and never
 * touch activations themselves, so they run unchanged on any backend. Weights are hb_tensors in host memory
 * (mapped checkpoints); a device backend uploads each one once, on first use. */
typedef struct hb_backend {
    const char *name;
    const hb_memspace *mem;
    int (*sync)(void); /* wait for queued work; report its errors */
#define HB_OP(ret, name, params, args) ret(*name) params;
#include "ops/ops_list.h"
#undef HB_OP
} hb_backend;
const hb_backend *hb_backend_cpu(void);
/* The CPU kernels with device-memory discipline checked: activations live in pages that are readable only
 * while an op runs, so any host access a model makes outside the ops faults at once (tests). */
const hb_backend *hb_backend_cpu_guard(void);
/* "cpu", "cpu-guard", "cuda", "cuda:N" (also "hip"): NULL + a message naming what is missing (a build without
 * CUDA, no GPU present, device N out of range). */
const hb_backend *hb_backend_find(const char *device);
/* Make `b` this thread's backend (and its memory space current); NULL = CPU. Returns the previous one. */
const hb_backend *hb_backend_use(const hb_backend *b);
const hb_backend *hb_backend_current(void);
/* Wait for the current backend's queued work; 0 or -1 with its error, or with the first failed argument check
 * of a void op on this thread since the last sync (such an op runs nothing and leaves its output as it was). */
int hb_backend_sync(void);

/* CPU features picked at run time ("avx512bf16", "avx512", "avx2", "generic"). */
const char *hb_cpu_kernel_name(void);

#ifdef __cplusplus
}
#endif

#endif
