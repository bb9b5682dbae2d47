/* models/lpips: the LPIPS perceptual distance (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features
 * as a Perceptual Metric") as the `lpips` Python package v0.1 computes it, for the AlexNet and VGG16 backbones, with
 * its gradient with respect to the first image (the network is frozen). docs/training.md, section LPIPS.
 *
 *   x' = (x - shift) / scale                        the scaling layer, x a [3, H, W] frame in [-1, 1]
 *   f_l = ReLU outputs of the backbone at its 5 taps (AlexNet: relu1..relu5; VGG16: relu1_2, 2_2, 3_3, 4_3, 5_3)
 *   n_l = f_l / (sqrt(sum_c f_l^2) + 1e-10)         unit length over the channels at every position
 *   d(a, b) = sum_l mean_{h,w} sum_c w_l[c] (n_l(a) - n_l(b))^2     (w_l: the 1x1 `lin` layers, no bias)
 *
 * Weights: a safetensors (any format hb_checkpoint_open reads) of `lpips.LPIPS(net='alex'|'vgg').state_dict()`:
 * scaling_layer.{shift,scale}, net.sliceK.I.{weight,bias}, linL.model.1.weight (or linL.model.0.weight of a model
 * built without dropout). The backbone comes from the names, every width from the tensor shapes, so reduced-width
 * networks load too; kernels, strides and paddings are the backbone's. Activations live in the memory space current
 * at hb_lpips_load and are touched only through ops. */
#ifndef HB_MODELS_LPIPS_H
#define HB_MODELS_LPIPS_H

#include "core/core.h"

typedef struct hb_lpips hb_lpips;
typedef enum { HB_LPIPS_ALEX = 0, HB_LPIPS_VGG = 1 } hb_lpips_net;

/* NULL + one message naming the file and the tensor (missing, misshaped) on error. */
hb_lpips *hb_lpips_load(const char *path);
void hb_lpips_free(hb_lpips *l);
hb_lpips_net hb_lpips_backbone(const hb_lpips *l);
/* The channel count of tap i (0..4) and the smallest frame side the backbone accepts. */
int64_t hb_lpips_tap_channels(const hb_lpips *l, int i);
int64_t hb_lpips_min_size(const hb_lpips *l);

/* d(a, b) of two frames [3, H, W] (current memory space) into *dist; when da is not NULL, da [3, H, W] (current
 * memory space) = grad_scale * dd / da, written. taps (NULL or 5 doubles): the per-layer terms. */
int hb_lpips_frame(hb_lpips *l, const float *a, const float *b, int64_t H, int64_t W, float *da, float grad_scale,
                   double *dist, double *taps);
/* Mean over the T frames of d(a_t, b_t) for videos [3, T, H, W] (current memory space); grad (NULL: none)
 * += grad_scale * dmean / da. */
int hb_lpips_video(hb_lpips *l, const float *a, const float *b, int64_t T, int64_t H, int64_t W, float *grad,
                   float grad_scale, double *mean);

#endif
