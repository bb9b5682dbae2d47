/* models/light_vae internals shared by light_vae.c (config, weights, files) and light_vae_run.c (forward,
 * streaming). Not part of the model's interface. */
#ifndef HB_MODELS_LIGHT_VAE_IMPL_H
#define HB_MODELS_LIGHT_VAE_IMPL_H

#include "models/light_vae.h"

/* One 3-D convolution [cout, cin/groups, k, k, k] with bias (a patch stage's per-frame Conv2d: [cout, cin, 1, k,
 * k]); pl / pr: replicated frames before / after the clip; slot: its frame cache in a stream (-1 when k = 1). */
typedef struct {
    hb_tensor w, b;
    int64_t cin, cout;
    int k, groups, pl, pr, slot;
} lv_conv;
/* A conv of the network: plain (a), or depthwise (a) + pointwise (p). */
typedef struct {
    bool dw;
    lv_conv a, p;
} lv_sep;
/* A resnet; id: its shortcut queue in a stream. */
typedef struct {
    lv_sep c1, c2, sc;
    bool has_sc, relu;
    hb_tensor ln_w, ln_b;
    int64_t cin, cout;
    int id;
} lv_res;
/* Mid block (index 0: resnets only) or up block; up_id: its upsampler's frame counter in a stream. */
typedef struct {
    bool has_entry, has_up;
    lv_res entry;
    lv_conv up;
    int st, ss, up_id, nres;
    lv_res *res;
} lv_block;

struct hb_light_vae {
    hb_light_vae_config cfg;
    lv_conv conv_in, conv_out;
    lv_block blk[HB_LIGHT_VAE_MAX_UP + 1];
    lv_conv s2d[2];            /* upsampler2d_1/2 */
    int n2d;
    float mean[HB_LIGHT_VAE_MAX_Z], scale[HB_LIGHT_VAE_MAX_Z]; /* de-normalisation: z * scale + mean, scale = 1 / float32(1 / std) */
    int nslots, nres, nups;
    int64_t nparams;
    float *owned;              /* random weights */
    int64_t owned_n;
    hb_checkpoint *ck_owned;   /* hb_light_vae_load */
};

/* The release's weight list in order, the one description of the network: fn gets each tensor's name and file
 * shape and fills *out (data NULL in a sizing pass); the walk builds m's tree (convs, paddings, stream slots,
 * counts) around what fn gives. Loading, random init, writing and the trainer (light_vae_train.c) use it. */
typedef int (*hb_lv_weight_fn)(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out);
int hb_lv_walk(hb_light_vae *m, hb_lv_weight_fn fn, void *u);
/* A model with cfg's structure and no weights yet (a walk gives them), the Wan2.2 latent statistics when the
 * latent has 48 channels (else identity); NULL + message. */
hb_light_vae *hb_lv_new(const hb_light_vae_config *cfg);
/* Weight `name` from a checkpoint (or "decoder." + name), F32/BF16/F16 and contiguous, else a message. */
int hb_lv_checkpoint_weight(const hb_checkpoint *ck, const char *name, int ndim, const int64_t *shape, hb_tensor *out);
/* The initial draw of weight `name` (hb_light_vae_create_random): N(0, 1/fan_in) (conv_out x 0.5), LayerNorm
 * weights 1 + N(0, 0.1^2), other 1-D tensors N(0, bias_sd^2). */
void hb_lv_random_fill(hb_rng *r, const char *name, int ndim, const int64_t *shape, float *d, float bias_sd);

#endif
