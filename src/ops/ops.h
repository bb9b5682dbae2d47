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

/* y[M,N] = x[M,K] * W^T + b, W a [N,K] tensor (a Linear weight), b [N] or NULL.
 * `accumulate` adds into y instead of overwriting it. f32 accumulation for every weight dtype. */
int hb_linear(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate);
/* Plain f32 GEMM, C[M,N] (+)= A[M,K] * B[K,N] with row strides (for attention-like products). */
void hb_gemm_f32(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate);

/* Norms over the last dim of `rows` rows of length `dim`. w/b may be NULL (no affine). */
void hb_layernorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, const hb_tensor *b,
                  float eps);
/* y = x * rsqrt(mean(x^2) + eps) * w (T5 LayerNorm, Wan RMSNorm). */
void hb_rmsnorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, float eps);
/* Wan VAE channel RMS norm on [C, S] (S = T*H*W positions): y = x / max(||x[:,s]||_2, 1e-12) * sqrt(C) * gamma[c]
 * + beta[c] (beta may be NULL). */
void hb_channel_rmsnorm(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *gamma, const hb_tensor *beta);

/* Modulation shared by groups of rows: row r uses vectors at (r / rows_per_group) * group_stride.
 * (Wan 2.1: one group for all tokens; Wan 2.2: one per token; causal: one per frame.) */
typedef struct { int64_t rows_per_group, group_stride; } hb_modgroups;
/* y = layernorm(x) * (1 + scale) + shift  (LayerNorm without affine), fused in one pass. */
void hb_layernorm_modulate(float *y, const float *x, int64_t rows, int64_t dim, float eps, const float *shift,
                           const float *scale, hb_modgroups g);
/* x += y * gate (gated residual). */
void hb_gated_add(float *x, const float *y, int64_t rows, int64_t dim, const float *gate, hb_modgroups g);

/* Elementwise (y may alias x). */
void hb_silu(float *y, const float *x, int64_t n);
void hb_gelu_tanh(float *y, const float *x, int64_t n);
void hb_add(float *y, const float *a, const float *b, int64_t n);
void hb_mul(float *y, const float *a, const float *b, int64_t n);
void hb_scale_add(float *y, const float *a, float alpha, const float *b, float beta, int64_t n); /* y=alpha*a+beta*b */
/* Row softmax in place over rows of length n. */
void hb_softmax(float *x, int64_t rows, int64_t n);

/* 3-D RoPE on x [L, heads, head_dim] in place (row stride `stride` elements per token). Token i sits at
 * grid position (f0 + i / (H*W), (i / W) % H, i % W). head_dim splits into d - 4*(d/6), 2*(d/6), 2*(d/6)
 * channels for frames/rows/cols; pairs (2j, 2j+1) rotate by pos * 10000^(-2j/n) (computed in float64). */
void hb_rope3d(float *x, int64_t L, int heads, int head_dim, int64_t stride, int H, int W, int f0);

/* Attention: out[Lq, heads, d] = softmax(q k^T * scale + bias) v, tiled with an online softmax
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
void hb_attention(const hb_attention_args *a);

/* Conv3d on x [Cin, T, H, W] -> y [Cout, To, Ho, Wo]; w [Cout, Cin/groups, kt, kh, kw] (any float dtype),
 * b [Cout] or NULL; zero padding per side (causal time padding: pad_t = {2*p, 0}); groups = Cin for depthwise.
 * Output size To = (T + pad_t[0] + pad_t[1] - kt) / st + 1, likewise H, W. */
typedef struct {
    int stride[3];      /* t, h, w */
    int pad_t[2], pad_h[2], pad_w[2];
    int groups;
} hb_conv3d_params;
int hb_conv3d(float *y, const float *x, int64_t Cin, int64_t T, int64_t H, int64_t W, const hb_tensor *w,
              const hb_tensor *b, const hb_conv3d_params *p);
void hb_conv3d_out_size(int64_t T, int64_t H, int64_t W, const hb_tensor *w, const hb_conv3d_params *p,
                        int64_t *To, int64_t *Ho, int64_t *Wo);
/* Conv2d on x [Cin, H, W] with w [Cout, Cin/groups, kh, kw]: the kt = 1, T = 1 case of hb_conv3d. */
int hb_conv2d(float *y, const float *x, int64_t Cin, int64_t H, int64_t W, const hb_tensor *w, const hb_tensor *b,
              int stride, int pad, int groups);

/* Nearest upsampling of [C, T, H, W] by integer factors (ft, fh, fw). */
void hb_upsample_nearest(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh, int fw);

/* Pixel unshuffle [C, T, H*p, W*p] -> [C*p*p, T, H, W] and its inverse. Channel orders:
 *  HB_PS_CQR: out channel c*p*p + q*p + r, q = row offset, r = column offset (torch pixel_(un)shuffle, TAEHV);
 *  HB_PS_CRQ: out channel c*p*p + r*p + q (Wan 2.2 VAE patchify: "b c f (h q) (w r) -> b (c r q) f h w"). */
typedef enum { HB_PS_CQR = 0, HB_PS_CRQ = 1 } hb_ps_order;
void hb_pixel_unshuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o);
void hb_pixel_shuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o);
/* (H, W above are the low-resolution sizes; C the low-channel count.) */

/* ---------- data movement (every backend; these replace host loops over activations) ---------- */
/* Strided copy of an n-D block of floats: dst[i0*ds[0] + ...] = src[i0*ss[0] + ...] for i < shape (ndim <= 6,
 * strides in elements; source strides may be 0 (broadcast) or negative). Permutes (patchify, transposes), concatenations and crops are all this one op. */
void hb_copy_nd(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int ndim,
                const int64_t *shape);
/* Contiguous copy of n floats (dst and src in the current memory space; they may not overlap). */
void hb_copy(float *dst, const float *src, int64_t n);
/* Rows copy: dst[r*ldd + j] = src[r*lds + j] for r < rows, j < cols. */
void hb_copy_rows(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols);
void hb_fill(float *dst, float value, int64_t n);
/* y[r*ldy + j] = x[r*ldx + j] + v[j] for r < rows, j < n (v a float parameter vector of n elements, e.g. a
 * modulation table; y may alias x). */
void hb_add_vec(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t n, const hb_tensor *v);
/* y[i, :] = table[ids[i], :] as f32 (an embedding lookup; ids on the host, every id in range). */
int hb_embed_rows(float *y, const hb_tensor *table, const int32_t *ids, int64_t n);
/* Per-channel affine on [C, S]: y[c, s] = x[c, s] * scale[c] + shift[c] (scale/shift float vectors of C
 * elements, either may be NULL = 1 / 0; y may alias x). Latent (de)normalisation. */
void hb_channel_affine(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *scale, const hb_tensor *shift);
/* Convert n elements between float dtypes (F32, BF16, F16) in the current memory space (exact widening,
 * round-to-nearest-even narrowing, as core's conversions); dst and src may not overlap. KV caches in bf16. */
int hb_convert(void *dst, hb_dtype dt, const void *src, hb_dtype st, int64_t n);
/* Turn the first np RoPE pairs of every head of x [rows, heads*head_dim] (row stride `stride`) by `delta`
 * positions: pair q by delta / 10000^(2q / (2 np)), angle and product in float64 (the frame axis of hb_rope3d;
 * relative-RoPE KV caches re-rope rolled keys with it). */
void hb_rope_shift(float *x, int64_t rows, int64_t stride, int heads, int head_dim, int np, double delta);

/* ---------- backends ----------
 * Every op above dispatches through this thread's backend (hb_backend_use); models call the ops and never
 * touch activations themselves, so they run unchanged on any backend. Weights are hb_tensors in host memory
 * (mapped checkpoints); a device backend uploads each one once, on first use. */
/* Elementwise ops (b unused by the unary ones): SILU, GELU_TANH, RELU, TANH3 = 3*tanh(a/3) (TAEHV clamp),
 * CLAMP01 = min(max(a,0),1); ADD, MUL, ADD_RELU = max(a+b, 0); AXPBY = alpha*a + beta*b;
 * CLAMP = min(max(a, alpha), beta) (light VAE output clamp to [-1, 1]); AXPBY_F64 = alpha*a + beta*b computed
 * in float64 and rounded once (the reference samplers' double-precision x0 = x - sigma * flow). */
typedef enum {
    HB_EW_SILU, HB_EW_GELU_TANH, HB_EW_ADD, HB_EW_MUL, HB_EW_AXPBY, HB_EW_RELU, HB_EW_TANH3, HB_EW_ADD_RELU,
    HB_EW_CLAMP01, HB_EW_CLAMP, HB_EW_AXPBY_F64
} hb_ew_op;
void hb_elementwise(hb_ew_op op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n);
typedef struct hb_backend {
    const char *name;
    const hb_memspace *mem;
    int (*sync)(void);                                         /* wait for queued work; report its errors */
    int (*linear)(float *, const float *, int64_t, const hb_tensor *, const hb_tensor *, bool);
    void (*gemm_f32)(float *, int64_t, const float *, int64_t, const float *, int64_t, int64_t, int64_t, int64_t, bool);
    void (*layernorm)(float *, const float *, int64_t, int64_t, const hb_tensor *, const hb_tensor *, float);
    void (*rmsnorm)(float *, const float *, int64_t, int64_t, const hb_tensor *, float);
    void (*channel_rmsnorm)(float *, const float *, int64_t, int64_t, const hb_tensor *, const hb_tensor *);
    void (*layernorm_modulate)(float *, const float *, int64_t, int64_t, float, const float *, const float *,
                               hb_modgroups);
    void (*gated_add)(float *, const float *, int64_t, int64_t, const float *, hb_modgroups);
    /* y = op(a) or op(a, b); AXPBY: alpha*a + beta*b */
    void (*elementwise)(hb_ew_op, float *, const float *, const float *, float, float, int64_t);
    void (*softmax)(float *, int64_t, int64_t);
    void (*rope3d)(float *, int64_t, int, int, int64_t, int, int, int);
    void (*attention)(const hb_attention_args *);
    int (*conv3d)(float *, const float *, int64_t, int64_t, int64_t, int64_t, const hb_tensor *, const hb_tensor *,
                  const hb_conv3d_params *);
    void (*upsample_nearest)(float *, const float *, int64_t, int64_t, int64_t, int64_t, int, int, int);
    void (*pixel_shuffle)(float *, const float *, int64_t, int64_t, int64_t, int64_t, int, hb_ps_order, bool unshuffle);
    void (*copy_nd)(float *, const int64_t *, const float *, const int64_t *, int, const int64_t *);
    void (*fill)(float *, float, int64_t);
    void (*add_vec)(float *, int64_t, const float *, int64_t, int64_t, int64_t, const hb_tensor *);
    int (*embed_rows)(float *, const hb_tensor *, const int32_t *, int64_t);
    void (*channel_affine)(float *, const float *, int64_t, int64_t, const hb_tensor *, const hb_tensor *);
    int (*convert)(void *, hb_dtype, const void *, hb_dtype, int64_t);
    void (*rope_shift)(float *, int64_t, int64_t, int, int, int, double);
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
/* Wait for the current backend's queued work; 0 or -1 with its error. */
int hb_backend_sync(void);

/* CPU features picked at run time ("avx512bf16", "avx512", "avx2", "generic"). */
const char *hb_cpu_kernel_name(void);

#ifdef __cplusplus
}
#endif

#endif
