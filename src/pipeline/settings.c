/* pipeline/settings: generation defaults by model family (settings.h). */
#include "pipeline/settings.h"
#include <string.h>

const char *hb_model_family_name(hb_model_family f) {
    static const char *const names[] = {"hummingbird-xt", "wan2.2-ti2v-5b", "wan2.1-t2v", "hummingbird-xtx"};
    return (unsigned)f < 4 ? names[f] : "?";
}

hb_model_family hb_model_folder_family(const hb_model_folder *mf, int latent_channels) {
    if (!strcmp(mf->arch, "hummingbird-xt")) return HB_FAMILY_XT;
    if (!strcmp(mf->arch, "hummingbird-xtx")) return HB_FAMILY_XTX;
    if (!strcmp(mf->arch, "wan2.2") || !strcmp(mf->arch, "wan2.2-ti2v-5b")) return HB_FAMILY_WAN22;
    if (!strcmp(mf->arch, "wan2.1") || !strcmp(mf->arch, "wan2.1-t2v")) return HB_FAMILY_WAN21;
    if (latent_channels == 48) return mf->light[0] ? HB_FAMILY_XT : HB_FAMILY_WAN22;
    return HB_FAMILY_WAN21;
}

static void set_list(hb_xt_settings *s, const int64_t *list, int n) {
    memcpy(s->steps_list, list, (size_t)n * sizeof *list);
    s->nsteps = n;
}

/* hummingbird.json over a step list, shift and fps */
static void apply_folder(const hb_model_folder *mf, int64_t *list, int *n, double *shift, double *fps) {
    if (!mf) return;
    if (mf->nsteps > 0) memcpy(list, mf->steps_list, (size_t)mf->nsteps * sizeof *list), *n = mf->nsteps;
    if (mf->shift > 0) *shift = mf->shift;
    if (mf->fps > 0) *fps = mf->fps;
}

void hb_ar_settings_for(const hb_model_folder *mf, int latent_channels, hb_ar_settings *s) {
    memset(s, 0, sizeof *s);
    static const int64_t list[4] = {1000, 750, 500, 250};
    s->chunk = 3, s->sink = 1, s->window = 6, s->rope_relative = true;
    memcpy(s->steps_list, list, sizeof list);
    s->nsteps = 4, s->shift = 5.0;
    s->latent_frames = 81, s->fps = 16;
    s->width = latent_channels == 48 ? 1280 : 832, s->height = latent_channels == 48 ? 704 : 480;
    apply_folder(mf, s->steps_list, &s->nsteps, &s->shift, &s->fps);
}

void hb_xt_settings_for(const hb_model_folder *mf, int latent_channels, hb_xt_settings *s) {
    memset(s, 0, sizeof *s);
    s->family = hb_model_folder_family(mf, latent_channels);
    static const int64_t xt3[3] = {1000, 750, 500};
    s->base_steps = 50, s->cfg = 5.0;
    s->image_fit = HB_GEN_IMAGE_COVER, s->vae = HB_GEN_VAE_FULL, s->clean_prompt = true;
    s->timestep = HB_GEN_T_FLOAT, s->noise = HB_GEN_NOISE_STREAM;
    switch (s->family) {
    case HB_FAMILY_XT: /* the release's run_t2v.sh / run_i2v.sh (spec section 3) */
        s->sampler = HB_GEN_SAMPLER_XT, s->shift = 10.0, s->timestep = HB_GEN_T_INT_BF16, s->noise = HB_GEN_NOISE_TORCH;
        set_list(s, xt3, 3);
        s->width = 1280, s->height = 704, s->frames = 121, s->fps = 24;
        s->image_fit = HB_GEN_IMAGE_STRETCH, s->vae = mf->light[0] ? HB_GEN_VAE_LIGHT : HB_GEN_VAE_FULL;
        s->clean_prompt = false;
        break;
    case HB_FAMILY_XTX: { /* the causal model's own few-step list and size, run as one clip */
        hb_ar_settings a;
        hb_ar_settings_for(NULL, latent_channels, &a);
        s->sampler = HB_GEN_SAMPLER_XT, s->shift = a.shift;
        set_list(s, a.steps_list, a.nsteps);
        s->width = a.width, s->height = a.height, s->frames = 81, s->fps = a.fps;
        break;
    }
    case HB_FAMILY_WAN22: /* Wan2.2 TI2V-5B: 50 UniPC steps, shift 5, guidance 5 */
        s->sampler = HB_GEN_SAMPLER_UNIPC, s->shift = 5.0;
        set_list(s, xt3, 3);
        s->width = 1280, s->height = 704, s->frames = 121, s->fps = 24;
        break;
    case HB_FAMILY_WAN21: /* Wan2.1 T2V: the same sampler settings at 480p */
        s->sampler = HB_GEN_SAMPLER_UNIPC, s->shift = 5.0;
        set_list(s, xt3, 3);
        s->width = 832, s->height = 480, s->frames = 81, s->fps = 16;
        break;
    }
    apply_folder(mf, s->steps_list, &s->nsteps, &s->shift, &s->fps);
    if (!strcmp(mf->sampler, "xt")) s->sampler = HB_GEN_SAMPLER_XT;
    else if (!strcmp(mf->sampler, "unipc")) s->sampler = HB_GEN_SAMPLER_UNIPC;
    else if (!strcmp(mf->sampler, "euler")) s->sampler = HB_GEN_SAMPLER_EULER;
}
