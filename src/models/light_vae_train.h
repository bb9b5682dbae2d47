/* models/light_vae_train: the light VAE decoder (models/light_vae.h) as a trainable network, with Turbo-VAED's
 * training-time projection heads (docs/training.md, ../shared/spec/hummingbird-release.md section 6).
 *
 * One forward + backward pass on a clip records every activation it needs (float32, host memory, CPU backend),
 * then sends the loss gradient back through the same structure the inference decoder runs:
 *   loss = w_rec * mean|video_raw - target| + w_feat * sum_i mse(align_i(head_i(feat[block_i])), teacher_i)
 *          (+ weight * an extra loss of video_raw, hb_lvt_train_pass_with)
 * feat[b] is the output of feature block b ("mid_block", "up_block_0", ...), head_i = two 1x1x1 convs with bias
 * (no activation between), align_i = as is, per-frame pixel_shuffle(2) (head channels = 4 x teacher) or the
 * 2x2x2 shuffle with time slowest and output frame 0 dropped (8 x teacher). Gradients accumulate over calls until
 * hb_lvt_zero_grad; hb_lvt_step applies AdamW (the hb_adamw_step op) and the optional EMA.
 *
 * Memory: the weights, moments and EMA are host buffers (the weights reach the ops as host hb_tensors, which a
 * device backend uploads and, after each step, uploads again); activations and gradients live in the memory
 * space of the backend current at hb_lvt_new and are touched only through ops, so a pass runs on cpu-guard
 * bitwise as on the CPU. The latent and video of hb_lvt_forward are in that space too; the targets of a
 * training pass are host memory (the losses are reduced on host copies).
 *
 * Parameters are the decoder's own names (conv_in.conv.weight, ...) followed by the heads'
 * (aligned_feature_projection_heads.{i}.{0,1}.conv.{weight,bias}), in the order of PyTorch's named_parameters. */
#ifndef HB_MODELS_LIGHT_VAE_TRAIN_H
#define HB_MODELS_LIGHT_VAE_TRAIN_H

#include "models/light_vae.h"
#include "ops/backward.h"

#define HB_LVT_MAX_HEADS 8

typedef enum { HB_LVT_ALIGN_NONE, HB_LVT_ALIGN_S4, HB_LVT_ALIGN_ST8 } hb_lvt_align;
typedef struct {
    int block;                   /* feature block: 0 = mid_block, 1 + i = up_block_i */
    int64_t student_dim, head_out_dim, teacher_dim;
    hb_lvt_align align;          /* from head_out_dim / teacher_dim */
} hb_lvt_head;

typedef struct {
    char *name;
    int ndim;
    int64_t shape[5];
    int64_t off, n;              /* into the flat buffers */
} hb_lvt_param;

typedef struct hb_lvt_net hb_lvt_net;
typedef struct {
    hb_light_vae_config cfg;
    int nheads;
    hb_lvt_head heads[HB_LVT_MAX_HEADS];
    int nparams, ndecoder;       /* all parameters / the decoder's (the heads follow) */
    hb_lvt_param *params;
    int64_t total;               /* floats in each flat buffer */
    float *w, *m, *v, *ema;      /* host: weights, Adam moments, EMA weights (ema NULL when off) */
    float *g;                    /* gradients, in the memory space current at hb_lvt_new (written by ops) */
    float *g_host;               /* the step's host copy of g */
    int64_t step;                /* optimiser steps taken */
    hb_lvt_net *net;
} hb_lvt;

/* The head list from "aligned_feature_projection_dim" [[student, out], ...] and "aligned_blks_indices" (keys of
 * the config JSON) plus the teacher widths (one per head): a message naming the key on a mismatch. */
int hb_lvt_heads_parse(hb_lvt_head *heads, int *nheads, const char *config_json, const int64_t *teacher_dims,
                       int nteacher, const char *what);
/* A model with the config's structure, the given heads and every parameter zero; NULL + message. */
hb_lvt *hb_lvt_new(const hb_light_vae_config *cfg, const hb_lvt_head *heads, int nheads);
void hb_lvt_free(hb_lvt *m);
/* Weights from a checkpoint by name ("decoder." prefix accepted for decoder tensors); heads_required false lets
 * missing head tensors keep their values. */
int hb_lvt_load(hb_lvt *m, const hb_checkpoint *ck, bool heads_required);
/* Weights as hb_light_vae_create_random draws them (decoder) and N(0, 1/fan_in) / N(0, 0.01) for the heads. */
void hb_lvt_init_random(hb_lvt *m, uint64_t seed);
int hb_lvt_set_latent_stats(hb_lvt *m, const float *mean, const float *std, int n); /* identity until set */
const hb_lvt_param *hb_lvt_find(const hb_lvt *m, const char *name);

/* An extra loss on the video (hb train-decoder's LPIPS term): its value of video_raw [shape] into *loss, scale times
 * its gradient added into grad (both in the current memory space); 0 or -1 + message. */
typedef int (*hb_lvt_video_loss_fn)(void *user, const float *video_raw, float *grad, const int64_t shape[4], float scale,
                                    double *loss);
/* One clip's inputs and loss settings. teacher[i] is head i's target [teacher_dim, ...] (as align_i's output);
 * grad_scale multiplies the gradients added (1 / accumulation steps). */
typedef struct {
    const float *latent;          /* normalised latent [z, t, h, w] (current memory space) */
    int64_t t, h, w;
    const float *target;          /* [3, 1 + F(t-1), S h, S w] (host) */
    const float *const *teacher;  /* nheads tensors (host; may be NULL when w_feat = 0) */
    float w_rec, w_feat, grad_scale;
} hb_lvt_batch;
/* loss += weight * fn's value (hb_lvt_train_pass_with) */
typedef struct {
    hb_lvt_video_loss_fn fn;
    void *user;
    float weight;
} hb_lvt_video_loss;
typedef struct {
    double loss, loss_rec, loss_feat[HB_LVT_MAX_HEADS], loss_video;
} hb_lvt_losses;
/* Observer of named activations during the forward (x in the current memory space): "latent_denorm",
 * "video_raw", "feat.i", "head.i" (after the alignment). */
typedef void (*hb_lvt_observe_fn)(void *user, const char *name, const float *x, int64_t n);
/* Forward + backward (gradients += into m->g); losses in *out. Shapes of target / teacher features must be
 * those the network produces (*_numel below); no check beyond that. */
int hb_lvt_train_pass(hb_lvt *m, const hb_lvt_batch *b, hb_lvt_losses *out, hb_lvt_observe_fn obs, void *user);
/* The same with an extra loss on video_raw (NULL: none), its value in out->loss_video. */
int hb_lvt_train_pass_with(hb_lvt *m, const hb_lvt_batch *b, const hb_lvt_video_loss *extra, hb_lvt_losses *out,
                           hb_lvt_observe_fn obs, void *user);
/* Forward only (no activations kept): video_raw [3, frames, S h, S w] */
int hb_lvt_forward(hb_lvt *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video_raw);
/* Shapes: the decoded clip and head i's aligned output for a latent of t x h x w. */
void hb_lvt_video_shape(const hb_lvt *m, int64_t t, int64_t h, int64_t w, int64_t shape[4]);
void hb_lvt_feature_shape(const hb_lvt *m, int block, int64_t t, int64_t h, int64_t w, int64_t shape[4]);
void hb_lvt_head_shape(const hb_lvt *m, int head, int64_t t, int64_t h, int64_t w, int64_t shape[4]);

void hb_lvt_zero_grad(hb_lvt *m);
/* The gradients (m->total floats) into host memory. */
int hb_lvt_grad_to_host(const hb_lvt *m, float *host);
/* AdamW on every parameter (moments allocated on the first step), then ema = d ema + (1 - d) w when ema_decay
 * > 0 (the EMA starts as a copy of the weights). */
int hb_lvt_step(hb_lvt *m, const hb_adamw *opt, float ema_decay);

#endif
