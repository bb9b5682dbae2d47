/* The op list: every op a backend implements, written once as
 *     HB_OP(return type, name, (parameters), (arguments))
 * The return type is `int` (0, or -1 with hb_error) or `void` (a failure is reported by the next
 * hb_backend_sync). From this list come the public hb_<name> declarations (ops.h), the hb_backend table's
 * members (ops.h), the checked dispatchers (dispatch.c: CHECK_<name> there states each op's argument rules),
 * the CPU kernels' declarations hb_cpu_<name> (ops_internal.h), cpu-guard's wrappers (cpu_guard.c) and the GPU
 * kernels' declarations hbg_<name> and table (backends/cuda). Adding an op: one HB_OP line here, its CHECK_
 * line in dispatch.c, hb_cpu_<name> in a cpu_*.c file and hbg_<name> in a .cu file of backends/cuda.
 *
 * No include guard: a user defines HB_OP, includes this file, and undefines HB_OP. The types the parameters
 * use (hb_modgroups, hb_epilogue, hb_attention_args, hb_conv3d_params, hb_ps_order, hb_ew_op, hb_adamw) are declared in ops.h.
 * Layouts are PyTorch's, batch dropped; activations are f32 in the current backend's memory space, weights
 * (hb_tensor) are host tensors of any float dtype. */

/* ---------- matrix products ---------- */
/* y[M,N] = x[M,K] * W^T + b, W a [N,K] tensor (a Linear weight: F32, BF16, F16 or a GGUF block format), b [N]
 * or NULL. `accumulate` adds into y instead of overwriting it. f32 accumulation for every weight dtype. */
HB_OP(int, linear, (float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate),
      (y, x, M, w, b, accumulate))
/* hb_linear with an epilogue (hb_epilogue in ops.h) fused into the product: bitwise the same as hb_linear followed
 * by hb_gelu_tanh, hb_add or hb_gated_add on the same backend, without their pass over y. */
HB_OP(int, linear_ep, (float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, hb_epilogue ep),
      (y, x, M, w, b, ep))
/* Plain f32 GEMM, C[M,N] (+)= A[M,K] * B[K,N] with row strides (for attention-like products). */
HB_OP(void, gemm_f32, (float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                       int64_t N, int64_t K, bool accumulate),
      (C, ldc, A, lda, B, ldb, M, N, K, accumulate))

/* ---------- norms and modulation ---------- */
/* Norms over the last dim of `rows` rows of length `dim`. w/b may be NULL (no affine); y may be x. */
HB_OP(void, layernorm, (float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, const hb_tensor *b,
                        float eps),
      (y, x, rows, dim, w, b, eps))
/* y = x * rsqrt(mean(x^2) + eps) * w (T5 LayerNorm, Wan RMSNorm). */
HB_OP(void, rmsnorm, (float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, float eps),
      (y, x, rows, dim, w, eps))
/* Wan VAE channel RMS norm on [C, S] (S = T*H*W positions): y = x / max(||x[:,s]||_2, 1e-12) * sqrt(C) * gamma[c]
 * + beta[c] (gamma, beta may be NULL). */
HB_OP(void, channel_rmsnorm, (float *y, const float *x, int64_t C, int64_t S, const hb_tensor *gamma,
                              const hb_tensor *beta),
      (y, x, C, S, gamma, beta))
/* y = layernorm(x) * (1 + scale) + shift  (LayerNorm without affine), fused in one pass. */
HB_OP(void, layernorm_modulate, (float *y, const float *x, int64_t rows, int64_t dim, float eps, const float *shift,
                                 const float *scale, hb_modgroups g),
      (y, x, rows, dim, eps, shift, scale, g))
/* x += y * gate (gated residual). */
HB_OP(void, gated_add, (float *x, const float *y, int64_t rows, int64_t dim, const float *gate, hb_modgroups g),
      (x, y, rows, dim, gate, g))

/* ---------- elementwise ---------- */
/* y = op(a) or op(a, b) over n elements (hb_ew_op in ops.h; b unused by the unary ops; y may be a or b). */
HB_OP(void, elementwise, (hb_ew_op op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n),
      (op, y, a, b, alpha, beta, n))
/* Row softmax in place over rows of length n. */
HB_OP(void, softmax, (float *x, int64_t rows, int64_t n), (x, rows, n))

/* ---------- positions and attention ---------- */
/* 3-D RoPE on x [L, heads, head_dim] in place (row stride `stride` elements per token). Token i sits at
 * grid position (f0 + i / (H*W), (i / W) % H, i % W). head_dim splits into d - 4*(d/6), 2*(d/6), 2*(d/6)
 * channels for frames/rows/cols; pairs (2j, 2j+1) rotate by pos * 10000^(-2j/n) (computed in float64). */
HB_OP(void, rope3d, (float *x, int64_t L, int heads, int head_dim, int64_t stride, int H, int W, int f0),
      (x, L, heads, head_dim, stride, H, W, f0))
/* Turn the first np RoPE pairs of every head of x [rows, heads*head_dim] (row stride `stride`) by `delta`
 * positions: pair q by delta / 10000^(2q / (2 np)), angle and product in float64 (the frame axis of hb_rope3d;
 * relative-RoPE KV caches re-rope rolled keys with it). */
HB_OP(void, rope_shift, (float *x, int64_t rows, int64_t stride, int heads, int head_dim, int np, double delta),
      (x, rows, stride, heads, head_dim, np, delta))
/* Attention: out[Lq, heads, d] = softmax(q k^T * scale + bias) v (hb_attention_args in ops.h); Lk = 0 gives
 * zeros. */
HB_OP(void, attention, (const hb_attention_args *a), (a))

/* ---------- convolution and resampling ---------- */
/* Conv3d on x [Cin, T, H, W] -> y [Cout, To, Ho, Wo]; w [Cout, Cin/groups, kt, kh, kw] (any float dtype),
 * b [Cout] or NULL; zero padding per side (causal time padding: pad_t = {2*p, 0}); groups = Cin for depthwise.
 * Output size To = (T + pad_t[0] + pad_t[1] - kt) / st + 1, likewise H, W (hb_conv3d_out_size). */
HB_OP(int, conv3d, (float *y, const float *x, int64_t Cin, int64_t T, int64_t H, int64_t W, const hb_tensor *w,
                    const hb_tensor *b, const hb_conv3d_params *p),
      (y, x, Cin, T, H, W, w, b, p))
/* Nearest upsampling of [C, T, H, W] by integer factors (ft, fh, fw). */
HB_OP(void, upsample_nearest, (float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh,
                               int fw),
      (y, x, C, T, H, W, ft, fh, fw))
/* Pixel shuffle (unshuffle = false: [C*p*p, T, H, W] -> [C, T, H*p, W*p]) or unshuffle (the inverse); H, W are
 * the low-resolution sizes, C the low-channel count; channel orders as hb_ps_order (ops.h). */
HB_OP(void, pixel_shuffle_any, (float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p,
                                hb_ps_order o, bool unshuffle),
      (y, x, C, T, H, W, p, o, unshuffle))

/* ---------- data movement (these replace host loops over activations) ---------- */
/* Strided copy of an n-D block of floats: dst[i0*ds[0] + ...] = src[i0*ss[0] + ...] for i < shape (1 <= ndim <= 6,
 * strides in elements; source strides may be 0 (broadcast) or negative). Permutes (patchify, transposes),
 * concatenations and crops are all this one op. */
HB_OP(void, copy_nd, (float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int ndim,
                      const int64_t *shape),
      (dst, dst_stride, src, src_stride, ndim, shape))
HB_OP(void, fill, (float *dst, float value, int64_t n), (dst, value, n))
/* y[r*ldy + j] = x[r*ldx + j] + v[j] for r < rows, j < n (v a float parameter vector of n elements, e.g. a
 * modulation table; y may be x). */
HB_OP(void, add_vec, (float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t n, const hb_tensor *v),
      (y, ldy, x, ldx, rows, n, v))
/* y[i, :] = table[ids[i], :] as f32 (an embedding lookup; ids on the host, every id in range). */
HB_OP(int, embed_rows, (float *y, const hb_tensor *table, const int32_t *ids, int64_t n), (y, table, ids, n))
/* Per-channel affine on [C, S]: y[c, s] = x[c, s] * scale[c] + shift[c] (scale/shift float vectors of C
 * elements, either may be NULL = 1 / 0; y may be x). Latent (de)normalisation. */
HB_OP(void, channel_affine, (float *y, const float *x, int64_t C, int64_t S, const hb_tensor *scale,
                             const hb_tensor *shift),
      (y, x, C, S, scale, shift))
/* Convert n elements between float dtypes (F32, BF16, F16) in the current memory space (exact widening,
 * round-to-nearest-even narrowing, as core's conversions); dst and src may not overlap. KV caches in bf16. */
HB_OP(int, convert, (void *dst, hb_dtype dt, const void *src, hb_dtype st, int64_t n), (dst, dt, src, st, n))

/* ---------- training: backward kernels and the optimiser (ops/backward.h composes the conv gradients) ----------
 * Gradients marked "+=" accumulate (micro-batches sum into the same buffers); they are C floats in the current
 * memory space like every activation. */
/* Channel RMS norm without weight on x [C, S], y = x * rsqrt(mean_c(x^2) + eps): dx = r (dy - x r^2 mean_c(dy x))
 * (written; disjoint from dy and x). */
HB_OP(void, channel_rms_backward, (float *dx, const float *dy, const float *x, int64_t C, int64_t S, float eps),
      (dx, dy, x, C, S, eps))
/* LayerNorm over the channels of x [C, S], y = (x - mean_c) * rsqrt(var_c + eps) * w + b: dx written (NULL:
 * not computed; disjoint from dy and x), dw += sum_s dy xhat, db += sum_s dy (each NULL: not computed). */
HB_OP(void, channel_layernorm_backward, (float *dx, float *dw, float *db, const float *dy, const float *x,
                                         const hb_tensor *w, int64_t C, int64_t S, float eps),
      (dx, dw, db, dy, x, w, C, S, eps))
/* dx = dy * act'(x) over n elements, act HB_EW_SILU or HB_EW_RELU (dx may be dy). */
HB_OP(void, act_backward, (hb_ew_op act, float *dx, const float *dy, const float *x, int64_t n), (act, dx, dy, x, n))
/* y[c] += sum_s x[c, s] over x [C, S] (bias gradients). */
HB_OP(void, channel_sum, (float *y, const float *x, int64_t C, int64_t S), (y, x, C, S))
/* Depthwise conv weight gradient: dw[c, a, b, d] += sum_{t, y, x} dy[c, t, y, x] * xp[c, t + a, y + b, x + d] for
 * dy [C, To, Ho, Wo] and the padded input xp [C, To + kt - 1, Ho + kh - 1, Wo + kw - 1]; dw [C, kt, kh, kw]. */
HB_OP(void, depthwise_weight_grad, (float *dw, const float *dy, const float *xp, int64_t C, int64_t To, int64_t Ho,
                                    int64_t Wo, int kt, int kh, int kw),
      (dw, dy, xp, C, To, Ho, Wo, kt, kh, kw))
/* One torch.optim.AdamW step (torch 1.13 `_single_tensor_adamw`, amsgrad off) on one parameter tensor of n
 * values, `step` = the new step count (1 first): w *= fl(1 - lr wd); m = fma(g, fl(1 - b1), m fl(b1));
 * v = fma(fl(1 - b2) g, g, v fl(b2)); w += fl(-lr / bc1) m / (sqrt(v) / fl(sqrt(bc2)) + eps), each operation
 * rounded to float32 as torch does. w, m, v updated in place. */
HB_OP(void, adamw_step, (const hb_adamw *o, int64_t step, float *w, const float *g, float *m, float *v, int64_t n),
      (o, step, w, g, m, v, n))

/* ---------- perceptual loss (models/lpips): max pooling and the LPIPS layer distance, with their gradients ---------- */
/* Max pooling of x [C, H, W] over k x k windows at stride s, no padding, floor: y [C, (H - k) / s + 1, (W - k) / s + 1]
 * (torch max_pool2d; NaN ignored). */
HB_OP(void, maxpool2d, (float *y, const float *x, int64_t C, int64_t H, int64_t W, int k, int s), (y, x, C, H, W, k, s))
/* Its gradient: dx [C, H, W] written, each window's dy routed to the window's first maximum in row-major order
 * (torch's choice), summed where windows overlap; dy [C, Ho, Wo], x the forward's input (dx disjoint from both). */
HB_OP(void, maxpool2d_backward, (float *dx, const float *dy, const float *x, int64_t C, int64_t H, int64_t W, int k,
                                 int s),
      (dx, dy, x, C, H, W, k, s))
/* LPIPS layer distance of features xa, xb [C, S]: with u = xa / (|xa|_c + 1e-10) - xb / (|xb|_c + 1e-10) (the norm
 * over channels at each position), d[s] = sum_c w[c] u[c, s]^2 written (w [C] any float dtype: the 1x1 lin layer);
 * dxa (NULL: not computed; disjoint from the inputs) = scale * d(d[s]) / d(xa[:, s]) written, zero at a position
 * where xa is all zero. */
HB_OP(void, lpips_distance, (float *d, float *dxa, const float *xa, const float *xb, const hb_tensor *w, int64_t C,
                             int64_t S, float scale),
      (d, dxa, xa, xb, w, C, S, scale))
