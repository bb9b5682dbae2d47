/* pipeline/fewstep: the few-step flow update that both pipelines run (Hummingbird-XT's whole clip in xt.c,
 * each Hummingbird-XTX chunk in ar.c), written once.
 *
 * Schedule: t_k = warp(list)[k] of the FlowMatch table with `shift` (schedule.h), or list[k] itself when not
 * warped (warp_denoising_step false); sigma_k its table sigma.
 * Trajectory, k = 0..n-1:
 *     flow = model(x, t_k)
 *     x0 = x - sigma_k flow                                  (float64, cast to float32)
 *     fix(x0); on_x0(k, x0)
 *     unless k = n-1: x = (1 - sigma_{k+1}) x0 + sigma_{k+1} noise(k + 1)   (float32); fix(x)
 * The result is the last x0. Buffers live in the current memory space. */
#ifndef HB_PIPELINE_FEWSTEP_H
#define HB_PIPELINE_FEWSTEP_H

#include "core/core.h"

#define HB_FEWSTEP_MAX 64

typedef struct hb_fewstep {
    int n;
    float t[HB_FEWSTEP_MAX];      /* warped timesteps */
    float sigma[HB_FEWSTEP_MAX];  /* their table sigmas */
} hb_fewstep;

int hb_fewstep_schedule(hb_fewstep *s, const int64_t *list, int n, double shift, bool warp);

typedef struct hb_fewstep_hooks {
    int (*model)(void *user, int step, const float *x, float t, float *flow);
    int (*noise)(void *user, int step, float *eps);           /* the re-noise before step `step` (1..n-1) */
    void (*fix)(void *user, float *x);                        /* optional: after every update (I2V paste) */
    int (*on_x0)(void *user, int step, const float *x0);      /* optional: nonzero stops */
    void *user;
    hb_progress_fn progress;                                  /* optional: stage "denoise", one step per step */
    void *progress_user;
} hb_fewstep_hooks;

/* n normals of r drawn on the host (scratch `host`, n floats) and copied to dst in the current memory space:
 * the same noise on every backend. */
int hb_noise_normal(hb_rng *r, float *host, float *dst, int64_t n);

/* x holds the start latent (n values) and is overwritten; x0 receives the result (it may alias x); flow and
 * eps are scratch (eps may alias flow). */
int hb_fewstep_run(const hb_fewstep *s, const hb_fewstep_hooks *h, float *x, float *x0, float *flow, float *eps,
                   int64_t n);

#endif
