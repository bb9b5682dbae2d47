/* pipeline/train_decoder: distil the light VAE decoder from the Wan2.2 VAE (hb train-decoder, docs/training.md).
 *
 * Data: every clip is read (io/video), its first `frames` frames kept (fewer: the largest 1 + 4k), cover-cropped
 * to size x size, encoded once by the frozen Wan2.2 encoder and decoded once by the Wan2.2 decoder; the latent
 * and the teacher's video are cached in OUT/cache/ (one safetensors per clip, keyed by the clip's path, size,
 * mtime, the frame count, the size and the teacher file), with the teacher decoder's outputs of the feature
 * blocks (a cache without them is refilled). The last `holdout` clips are held out for evaluation.
 * Training: per step, batch * accum clips drawn from a generator seeded by (seed, step) (a resumed run draws the
 * same clips), each a micro-batch with loss mean|student(latent) - teacher video| + w_feat * sum over the
 * feature blocks of mse(head(student block), teacher block) + w_lpips * the mean over frames of LPIPS(student
 * frame, teacher frame) when --lpips is given, over batch * accum, then AdamW and the EMA. Outputs in OUT/:
 * checkpoint/ (the release's light-decoder folder: config.json +
 * diffusion_pytorch_model.safetensors, EMA weights when the EMA is on) loadable by hb generate --light-vae,
 * train_state.safetensors (weights, Adam moments, EMA, step), train_log.csv, loss.png. Every file is written
 * atomically, so a run killed at any moment resumes (--resume) from its last checkpoint. */
#ifndef HB_PIPELINE_TRAIN_DECODER_H
#define HB_PIPELINE_TRAIN_DECODER_H

#include "core/core.h"

typedef struct {
    const char *teacher;   /* Wan2.2 VAE checkpoint (Wan2.2_VAE.pth or safetensors) */
    const char *config;    /* light-decoder config.json: random init (seed) */
    const char *init;      /* or a light decoder to start from (folder or .safetensors) */
    const char *data;      /* folder of clips or a text file listing one path per line */
    const char *out;
    const char *lpips;     /* LPIPS weights (models/lpips.h): loss += lpips_weight * mean over frames of LPIPS */
    double lpips_weight;   /* default 1.0 */
    const char *feature_blocks; /* feature distillation: "0,1,2" (default), "none", ... (docs/training.md) */
    double feature_weight; /* w_feat of loss = rec + w_feat * sum of the feature MSEs (default 1) */
    int frames, size, steps, batch, accum, save_every, holdout;
    double lr, weight_decay, beta1, beta2, eps;
    float ema;             /* 0: off */
    uint64_t seed;
    bool resume;
    bool quiet;            /* no per-step line */
} hb_train_opts;

void hb_train_opts_default(hb_train_opts *o);
/* Run (or resume) a training; 0 on success, -1 + message. stop (may be NULL) is polled between clips: when it
 * returns nonzero the run saves its state after the last finished step and returns 1. */
int hb_train_decoder(const hb_train_opts *o, int (*stop)(void));

#endif
