/* models/light_vae internals shared by light_vae.c (config, weights, files) and light_vae_run.c (forward,
 * streaming). Not part of the model's interface. */
#ifndef HB_MODELS_LIGHT_VAE_IMPL_H
#define HB_MODELS_LIGHT_VAE_IMPL_H

#include "models/light_vae.h"

/* One 3-D convolution [cout, cin/groups, k, k, k] with bias; pl / pr: replicated frames before / after the clip;
 * slot: its frame cache in a stream (-1 when k = 1). */
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
    hb_tensor s2d_w[2], s2d_b[2]; /* upsampler2d_1/2 weights as [C, C, 1, 3, 3] views */
    int n2d;
    float mean[HB_LIGHT_VAE_MAX_Z], scale[HB_LIGHT_VAE_MAX_Z]; /* de-normalisation: z * scale + mean, scale = 1 / float32(1 / std) */
    int nslots, nres, nups;
    int64_t nparams;
    float *owned;              /* random weights */
    int64_t owned_n;
    hb_checkpoint *ck_owned;   /* hb_light_vae_load */
};

#endif
