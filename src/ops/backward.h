/* ops/backward: the composed backward passes and the losses that training the light VAE decoder needs
 * (docs/training.md). The kernels (norm, activation and depthwise gradients, channel sums, AdamW) are backend
 * ops of ops_list.h ("training"); the conv gradient here is built from ops only (hb_conv3d on the flipped kernel,
 * hb_gemm_f32 on im2col rows, hb_depthwise_weight_grad, hb_channel_sum), so it runs on any backend;
 * the losses are reductions on host memory. Layouts as ops.h. Gradient outputs marked "+=" accumulate, so
 * micro-batches sum into the same buffers. */
#ifndef HB_OPS_BACKWARD_H
#define HB_OPS_BACKWARD_H

#include "ops/ops.h"

/* Gradients of y = hb_conv3d(x, w, b, p) for stride 1 and groups 1 or groups = Cin = Cout (depthwise):
 * dx = dL/dx (written, may be NULL), dw += dL/dw (same layout as w, may be NULL), db += dL/db (may be NULL).
 * w must be F32; dy is [Cout, To, Ho, Wo]. The data gradient's conv runs at p->precision (training passes
 * HB_CONV_F32); the weight gradient is f32 (hb_gemm_f32, hb_depthwise_weight_grad). */
int hb_conv3d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, int64_t Cin, int64_t T,
                       int64_t H, int64_t W, const hb_tensor *w, const hb_conv3d_params *p);

/* mean |a - b| over n values; grad (may be NULL) += scale * sign(a - b) / n (the gradient for a). Double sum. */
double hb_l1_loss(const float *a, const float *b, int64_t n, float *grad, float scale);
/* mean (a - b)^2; grad (may be NULL) += scale * 2 (a - b) / n. */
double hb_mse_loss(const float *a, const float *b, int64_t n, float *grad, float scale);

#endif
