/* pipeline/settings: the one home of generation defaults. A model folder's family picks them (the release's
 * settings for Hummingbird-XT and XTX, Wan's own for a base model), the folder's hummingbird.json overrides
 * them, and the caller's parameters override both (api.c, api_ar.c).
 *
 * Family: hummingbird.json "arch" when given; else a Wan2.2 (48-channel) folder that comes with the release's
 * light decoder is Hummingbird-XT, any other Wan2.2 folder the base TI2V-5B, and a Wan2.1 (16-channel) folder
 * the base T2V-1.3B. An XTX folder says so in its hummingbird.json or is the release root (model_folder.h). */
#ifndef HB_PIPELINE_SETTINGS_H
#define HB_PIPELINE_SETTINGS_H

#include "hummingbird.h"
#include "pipeline/model_folder.h"
#include "pipeline/xt.h"

typedef enum { HB_FAMILY_XT = 0, HB_FAMILY_WAN22 = 1, HB_FAMILY_WAN21 = 2, HB_FAMILY_XTX = 3 } hb_model_family;

typedef struct hb_xt_settings {
    hb_model_family family;
    hb_gen_sampler sampler;                 /* XT, UNIPC or EULER (never DEFAULT) */
    int64_t steps_list[HB_XT_MAX_STEPS];    /* few-step list */
    int nsteps;
    double shift;
    hb_gen_timestep timestep;               /* what the DiT sees of a few-step timestep (never DEFAULT) */
    hb_gen_noise noise;                     /* never DEFAULT */
    int base_steps;                         /* UniPC / Euler */
    double cfg;
    int width, height, frames;
    double fps;
    hb_gen_vae vae;
    hb_gen_image_fit image_fit;             /* STRETCH or COVER (never DEFAULT) */
    bool clean_prompt;                      /* Wan's prompt cleaning (the XT release tokenizes the raw text) */
} hb_xt_settings;

/* Hummingbird-XTX chunk-by-chunk generation (pipeline/ar.h): the release's long_video configs. */
typedef struct hb_ar_settings {
    int64_t chunk, sink, window;            /* latent frames; the window counts the sink */
    bool rope_relative;                     /* the release's pre-RoPE cache: unbounded length */
    int64_t steps_list[HB_XT_MAX_STEPS];
    int nsteps;
    double shift;
    int64_t latent_frames;                  /* 81 (--num_output_frames): 321 video frames */
    int width, height;
    double fps;
} hb_ar_settings;

const char *hb_model_family_name(hb_model_family f);
hb_model_family hb_model_folder_family(const hb_model_folder *mf, int latent_channels);
/* The defaults of a folder whose DiT makes `latent_channels`-channel latents. */
void hb_xt_settings_for(const hb_model_folder *mf, int latent_channels, hb_xt_settings *s);

/* The release's XTX settings for a DiT with `latent_channels` (16: the 1.3B at 832x480; 48: the 5B at
 * 1280x704), then the folder's hummingbird.json (mf may be NULL). */
void hb_ar_settings_for(const hb_model_folder *mf, int latent_channels, hb_ar_settings *s);

#endif
