/* pipeline/settings: the defaults by model family and hummingbird.json over them, checked against the
 * release's values as the spec states them (../shared/spec/hummingbird-release.md sections 3 and 4), and the
 * XTX pipeline honouring a folder's hummingbird.json end to end (DiT forwards counted). */
#include "testlib.h"
#include "pipeline/settings.h"
#include "pipeline/ar.h"
#include <stdio.h>
#include <string.h>

static void check_families(void) {
    hb_model_folder mf;
    hb_xt_settings s;
    /* a Wan2.2 folder with the release's light decoder: Hummingbird-XT as the release scripts run it */
    memset(&mf, 0, sizeof mf);
    snprintf(mf.light, sizeof mf.light, "vae/wan22_v1_tiling_16_12");
    hb_xt_settings_for(&mf, 48, &s);
    CHECK(s.family == HB_FAMILY_XT && s.sampler == HB_GEN_SAMPLER_XT && s.nsteps == 3 && s.steps_list[0] == 1000 &&
          s.steps_list[1] == 750 && s.steps_list[2] == 500 && s.shift == 10.0 && s.timestep == HB_GEN_T_INT_BF16 &&
          s.noise == HB_GEN_NOISE_TORCH && s.width == 1280 && s.height == 704 && s.frames == 121 && s.fps == 24 &&
          s.vae == HB_GEN_VAE_LIGHT && s.image_fit == HB_GEN_IMAGE_STRETCH && !s.clean_prompt);
    /* the same without a light decoder: the base TI2V-5B (UniPC, 50 steps, guidance 5, cover crop) */
    mf.light[0] = 0;
    hb_xt_settings_for(&mf, 48, &s);
    CHECK(s.family == HB_FAMILY_WAN22 && s.sampler == HB_GEN_SAMPLER_UNIPC && s.base_steps == 50 && s.cfg == 5.0 &&
          s.vae == HB_GEN_VAE_FULL && s.image_fit == HB_GEN_IMAGE_COVER && s.noise == HB_GEN_NOISE_STREAM &&
          s.timestep == HB_GEN_T_FLOAT && s.clean_prompt);
    hb_xt_settings_for(&mf, 16, &s);
    CHECK(s.family == HB_FAMILY_WAN21 && s.width == 832 && s.height == 480 && s.fps == 16);
    /* hummingbird.json: "arch" names the family, its keys override */
    snprintf(mf.arch, sizeof mf.arch, "hummingbird-xt");
    mf.nsteps = 2, mf.steps_list[0] = 1000, mf.steps_list[1] = 500, mf.shift = 7.5, mf.fps = 30;
    snprintf(mf.sampler, sizeof mf.sampler, "euler");
    hb_xt_settings_for(&mf, 48, &s);
    CHECK(s.family == HB_FAMILY_XT && s.nsteps == 2 && s.steps_list[1] == 500 && s.shift == 7.5 && s.fps == 30 &&
          s.sampler == HB_GEN_SAMPLER_EULER && s.vae == HB_GEN_VAE_FULL /* no light decoder to default to */);
    snprintf(mf.arch, sizeof mf.arch, "hummingbird-xtx");
    mf.nsteps = 0, mf.shift = 0, mf.fps = 0, mf.sampler[0] = 0;
    hb_xt_settings_for(&mf, 16, &s);
    CHECK(s.family == HB_FAMILY_XTX && s.nsteps == 4 && s.steps_list[3] == 250 && s.shift == 5.0 && s.fps == 16);
    /* XTX chunk loop: the release's long_video configs (window 6 with the 1-frame sink, 81 latent frames) */
    hb_ar_settings a;
    hb_ar_settings_for(NULL, 16, &a);
    CHECK(a.chunk == 3 && a.sink == 1 && a.window == 6 && a.rope_relative && a.nsteps == 4 && a.shift == 5.0 &&
          a.latent_frames == 81 && a.fps == 16 && a.width == 832 && a.height == 480);
    hb_ar_settings_for(NULL, 48, &a);
    CHECK(a.width == 1280 && a.height == 704);
    mf.nsteps = 1, mf.steps_list[0] = 800, mf.fps = 12;
    hb_ar_settings_for(&mf, 16, &a);
    CHECK(a.nsteps == 1 && a.steps_list[0] == 800 && a.fps == 12 && a.shift == 5.0);
}

/* hb_ar_run_pipeline on a flat XTX folder: its hummingbird.json step list sets the forwards per chunk */
static void check_ar_folder(void) {
    char dir[1024], t[1100], out[4096];
    snprintf(dir, sizeof dir, "%s/xtx", tl_tmpdir());
    snprintf(t, sizeof t, "'%s' mkmodel -q --arch hummingbird-xtx-flat --tiny '%s' 2>&1", tl_hb_bin(), dir);
    CHECKF(tl_run(t, out, sizeof out) == 0, "%s", out);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* two steps in the folder's settings */
            snprintf(t, sizeof t, "%s/hummingbird.json", dir);
            FILE *f = fopen(t, "w");
            CHECK(f != NULL);
            if (f) fputs("{\"arch\": \"hummingbird-xtx\", \"steps_list\": [1000, 500], \"shift\": 5.0, \"fps\": 10}\n", f), fclose(f);
        }
        hb_ar_run r;
        hb_ar_run_default(&r);
        r.model_dir = dir, r.prompt = "a cat", r.width = 64, r.height = 48, r.video_frames = 25, r.decoder = HB_AR_DEC_NONE;
        CHECKF(hb_ar_run_pipeline(&r) == 0, "%s", hb_last_error());
        /* 25 frames = 7 latent frames = 3 chunks; each chunk runs its steps plus one refresh */
        const int steps = pass ? 2 : 4;
        CHECKF(r.ar.forwards == 3 * (steps + 1) && r.fps == (pass ? 10 : 16), "pass %d: %lld forwards, fps %g", pass,
               (long long)r.ar.forwards, r.fps);
    }
}

int main(void) {
    check_families();
    check_ar_folder();
    return tl_done();
}
