/* ops/backward: the backward passes and the optimiser step that training the light VAE decoder needs
 * (docs/training.md). Host memory, float32, CPU: the convolution gradients are built from the forward ops
 * (hb_conv3d on the flipped kernel, hb_linear on shifted input windows), the rest are direct loops on the
 * thread pool. Layouts as ops.h: [C, T, H, W] activations, [C, S] = channels x positions. Every gradient
 * output marked "+=" accumulates, so micro-batches sum into the same buffers. */
#ifndef HB_OPS_BACKWARD_H
#define HB_OPS_BACKWARD_H

#include "ops/ops.h"

/* Gradients of y = hb_conv3d(x, w, b, p) for stride 1 and groups 1 or groups = Cin = Cout (depthwise):
 * dx = dL/dx (written, may be NULL), dw += dL/dw (same layout as w, may be NULL), db += dL/db (may be NULL).
 * w must be F32; dy is [Cout, To, Ho, Wo]. */
int hb_conv3d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, int64_t Cin, int64_t T,
                       int64_t H, int64_t W, const hb_tensor *w, const hb_conv3d_params *p);

/* y = x * rsqrt(mean_c(x^2) + eps) per position of x [C, S] (no weight); dx = dL/dx given dy (written). */
void hb_channel_rms_backward(float *dx, const float *dy, const float *x, int64_t C, int64_t S, float eps);
/* y = (x - mean_c) * rsqrt(var_c + eps) * w + b over the channels of x [C, S]; dx written (may be NULL),
 * dw += sum dy * xhat, db += sum dy (either may be NULL). */
void hb_channel_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                   int64_t C, int64_t S, float eps);
/* dx = dy * act'(x) for act = SiLU or ReLU (dx may alias dy). */
typedef enum { HB_ACT_SILU, HB_ACT_RELU } hb_act;
void hb_act_backward(hb_act act, float *dx, const float *dy, const float *x, int64_t n);

/* mean |a - b| over n values; grad (may be NULL) += scale * sign(a - b) / n (the gradient for a). Double sum. */
double hb_l1_loss(const float *a, const float *b, int64_t n, float *grad, float scale);
/* mean (a - b)^2; grad (may be NULL) += scale * 2 (a - b) / n. */
double hb_mse_loss(const float *a, const float *b, int64_t n, float *grad, float scale);

/* torch.optim.AdamW (torch 1.13, single-tensor path, amsgrad off) on one parameter tensor of n values: step is
 * the new step count (1 for the first step); w, m, v updated in place. Rounding follows torch element for
 * element (decay first on w, fused multiply-adds of add_(alpha=) / addcmul_, float32 scalars). */
typedef struct { double lr, beta1, beta2, eps, weight_decay; } hb_adamw; /* Python's doubles */
void hb_adamw_step(const hb_adamw *o, int64_t step, float *w, const float *g, float *m, float *v, int64_t n);

#endif
