/* pipeline/xt: the samplers of the text/image-to-video pipeline, independent of any model.
 *
 * hb_xt_sample runs one trajectory on a latent [C, F, H, W] with a caller-given denoiser (the DiT, or a
 * stand-in in tests):
 *   - HB_XT_FEWSTEP (Hummingbird-XT, CFG-free; the trajectory of pipeline/fewstep.h): timesteps t_k = warp(steps_list)[k] of the FlowMatch table
 *     with `shift` (schedule.h); at each step x0 = x - sigma(t_k) * v(x, t_k) (float64), then, except after
 *     the last step, x = (1 - sigma(t_{k+1})) * x0 + sigma(t_{k+1}) * eps; the result is the last x0.
 *     The DiT sees t_k as computed (HB_XT_T_FLOAT) or as the release feeds it, int64(cast(t_k, latent
 *     dtype)): HB_XT_T_INT_BF16 (1000, 968, 908 at shift 10: the release's bf16 latents) or HB_XT_T_INT_F32
 *     (1000, 967, 909); x0 and the re-noise always use the exact table sigma of t_k.
 *   - HB_XT_UNIPC / HB_XT_EULER (the Wan 2.2 base sampler, for the undistilled teacher): the schedule of
 *     FlowUniPCMultistepScheduler(1000, shift=1).set_timesteps(steps, shift); with cfg != 1 two denoiser calls
 *     per step (cond, uncond) and v = v_u + cfg * (v_c - v_u).
 * Noise (hb_xt_noise): HB_XT_NOISE_STREAM: one hb_rng seeded with `seed`; the initial latent takes the first
 * C*F*H*W normals (in [C, F, H, W] order), every re-noise a fresh C*F*H*W. HB_XT_NOISE_RELEASE (the release's
 * bookkeeping): the initial latent is torch.randn([F, C, H, W]) of a CPU generator seeded with `seed`, and ONE
 * re-noise tensor, torch.randn([F, C, H, W]) seeded with seed + 2, serves every re-noise step (core/torch_rng.h:
 * the same numbers as PyTorch's CPU generator). noise0 / renoise, when given, replace the drawn tensors.
 * I2V (cond0 != NULL): latent frame 0 is replaced by cond0 [C, H, W] before the first step and after every
 * update (x = (1 - mask) * z + mask * x, mask = 0 on frame 0, as the reference's i2v), and the denoiser gets
 * per-token timesteps: 0 for the tokens of frame 0, t for the others (tokens_per_frame tokens per frame).
 * Without cond0 it gets the single value t.
 * Memory: latents, velocities and cond0 live in the current memory space (device memory under a GPU
 * backend; the noise is drawn on the host and uploaded); timesteps are host values. */
#ifndef HB_PIPELINE_XT_H
#define HB_PIPELINE_XT_H

#include "core/core.h"

typedef enum { HB_XT_FEWSTEP = 0, HB_XT_UNIPC = 1, HB_XT_EULER = 2 } hb_xt_sampler;
typedef enum { HB_XT_T_FLOAT = 0, HB_XT_T_INT_F32 = 1, HB_XT_T_INT_BF16 = 2 } hb_xt_timestep;
typedef enum { HB_XT_NOISE_STREAM = 0, HB_XT_NOISE_RELEASE = 1 } hb_xt_noise;

/* Denoiser: flow prediction v [C, F, H, W] for latent x at timesteps t (nt = 1 or one per token).
 * cond = 1 for the prompt, 0 for the negative prompt (only with CFG). 0 or -1 + message. */
typedef int (*hb_xt_model_fn)(void *user, const float *x, const float *t, int64_t nt, int cond, float *v);
/* Observer (tests): called before every denoiser call of step `step` with the latent the model sees. */
typedef void (*hb_xt_observe_fn)(void *user, int step, const float *x, const float *t, int64_t nt, int cond);
/* Observer (tests): the few-step sampler's x0 of step `step` (after the I2V paste). */
typedef void (*hb_xt_observe_x0_fn)(void *user, int step, const float *x0);

#define HB_XT_MAX_STEPS 64 /* = HB_FEWSTEP_MAX */

typedef struct hb_xt_args {
    int64_t C, F, H, W;
    int64_t tokens_per_frame;     /* (H/ph)*(W/pw): per-token t layout for I2V */
    const float *cond0;           /* [C, H, W] or NULL */
    hb_xt_sampler sampler;
    const int64_t *steps_list;    /* few-step list (e.g. 1000, 750, 500) */
    int nsteps;
    double shift;                 /* few-step and base sampler shift */
    hb_xt_timestep t_feed;        /* few-step: the timestep value the DiT sees */
    hb_xt_noise noise;
    const float *noise0, *renoise; /* optional given noise [C, F, H, W] (current memory space) */
    int steps;                    /* base sampler steps (50) */
    double cfg;                   /* base sampler guidance (5.0); 1 = no negative pass */
    uint64_t seed;
    hb_xt_model_fn model;
    void *model_user;
    hb_xt_observe_fn observe;
    hb_xt_observe_x0_fn observe_x0;
    void *observe_user;
    hb_progress_fn progress;      /* per step */
    void *progress_user;
} hb_xt_args;

/* The release's noise for a's shape and seed, [C, F, H, W] in the current memory space: which 0 = the
 * initial latent (seed), 1 = the re-noise tensor (seed + 2). */
int hb_xt_release_noise(const hb_xt_args *a, int which, float *out);
/* The value the DiT sees for timestep t under rule r. */
float hb_xt_model_timestep(float t, hb_xt_timestep r);
/* Run the trajectory; out [C, F, H, W]. */
int hb_xt_sample(const hb_xt_args *a, float *out);

/* Parse "1000,750,500" into list (max entries); returns the count or -1 + message. */
int hb_xt_parse_steps(const char *s, int64_t *list, int max);

/* Test hook for the whole pipeline (api.c): while set, every hb_generate on this thread passes `observe` to
 * the sampler and reports the I2V latent frame it injects (cond0 [C, H, W]). NULL clears it. */
typedef struct hb_xt_debug {
    hb_xt_observe_fn observe;
    void (*cond0)(void *user, const float *z0, int64_t C, int64_t H, int64_t W);
    void *user;
} hb_xt_debug;
void hb_xt_set_debug(const hb_xt_debug *d);

/* Wan's default negative prompt (wan/configs/shared_config.py sample_neg_prompt). */
extern const char *const hb_wan_default_negative;

#endif
