/* pipeline/ar: autoregressive long-video generation with the causal Wan DiT (Hummingbird-XTX), as the release
 * runs it (AMD-AGI/HummingbirdXT long_video/pipeline/causal_inference.py; the same loop as Self-Forcing /
 * LongLive pipeline/causal_inference.py, interactive_causal_inference.py).
 *
 * Chunk loop (chunk = `chunk` latent frames, frame0 = its first latent frame):
 *   x = N(0, 1) noise;
 *   for each few-step timestep t_k (warp(steps_list) of the FlowMatch table with `shift`, schedule.h, fed as
 *   float32: 937.5 stays 937.5):
 *       flow = causal DiT(x, t_k for every frame, at frame0)           (writes the chunk's K/V slots)
 *       x0 = x - sigma(t_k) * flow
 *       unless last step: x = (1 - sigma(t_{k+1})) * x0 + sigma(t_{k+1}) * eps, fresh eps
 *   the chunk's result is the last x0 (handed to on_chunk);
 *   refresh: one more forward of x0 at t = context_noise (0) at frame0, which overwrites the chunk's K/V
 *   slots with clean-context K/V (after every chunk, the last included, as the release does; refresh_last
 *   false skips the last one: it changes no output).
 * Noise: by default one hb_rng seeded with `seed`; per chunk C*F*H*W normals for the initial noise ([C, F,
 * H, W] order), then C*F*H*W per re-noise. The release pre-samples one noise tensor for the whole video
 * instead, which would make memory grow with length. A noise callback replaces the generator (golden runs
 * feed the release's recorded noise through it).
 *
 * Cache: window > 0: a frame sink + short window (cache of `window` latent frames, the `sink` first ones
 * included and never evicted: the release's local_attn_size / sink_size); window <= 0: a global cache holding
 * the whole video (Self-Forcing). Relative RoPE (the release's pre-RoPE cache) keeps positions inside the
 * window, so the length is unbounded at constant memory.
 *
 * Prompt switch (LongLive interactive, global_sink): before the chunk that starts at a switch frame, the
 * cross-attention cache is replaced by the new prompt's and the last n = min(cache frames, frame0) clean
 * latent frames are re-encoded with the new prompt in one recompute forward at t = context_noise; the sink
 * rows keep their K/V (the frames that would land there are dropped from the call: they influence nothing).
 * A history of the last `cache frames` latent frames is kept for this (constant memory). */
#ifndef HB_PIPELINE_AR_H
#define HB_PIPELINE_AR_H

#include "models/wan_causal.h"

#define HB_AR_MAX_STEPS 16

/* A prompt from latent frame `frame` on (the first must be at frame 0); switch frames are rounded up to a
 * chunk boundary. */
typedef struct hb_ar_cond {
    int64_t frame;
    const float *ctx;      /* [ctx_len, text_dim] text-encoder rows (current memory space) */
    int64_t ctx_len;
} hb_ar_cond;

/* x0 [C, F, H, W] of the chunk with latent frames [frame0, frame0 + F). Return nonzero to stop. */
typedef int (*hb_ar_latent_fn)(void *user, int64_t chunk, int64_t frame0, int64_t F, const float *x0);

/* Noise source: n values [C, F, H, W] into dst (backend memory) for chunk `chunk`; step 0 is the chunk's
 * starting noise, step k >= 1 the noise mixed in before denoise step k. Nonzero return stops the run. */
typedef int (*hb_ar_noise_fn)(void *user, int64_t chunk, int step, float *dst, int64_t n);

#define HB_AR_REFRESH (-1)   /* hb_ar_call.step of the clean refresh forward */
#define HB_AR_RECACHE (-2)   /* ... of a prompt-switch re-cache forward */

/* One DiT forward of the loop, as the observer sees it (after the call). */
typedef struct hb_ar_call {
    int64_t index;              /* forwards before this one */
    int64_t chunk, frame0, F;   /* re-cache: the frames re-encoded */
    int step;                   /* denoise step, HB_AR_REFRESH or HB_AR_RECACHE */
    const float *t;             /* [F] timesteps fed (host) */
    const float *x;             /* [C, F, H, W] input (backend memory) */
    const float *flow, *x0;     /* model output and x - sigma(t) * flow (NULL for a re-cache) */
    const wan_causal *state;    /* the causal state after the call (KV cache) */
} hb_ar_call;
typedef int (*hb_ar_call_fn)(void *user, const hb_ar_call *c);

typedef struct hb_ar_opts {
    int64_t H, W;              /* latent size */
    int64_t frames;            /* latent frames to generate */
    int64_t chunk;             /* latent frames per chunk (3) */
    int64_t sink, window;      /* latent frames (1, 6: the release's sink_size / local_attn_size; the window
                                * counts the sink); window <= 0: global cache of all frames */
    wan_rope_mode rope;        /* WAN_ROPE_REL (default: the release's cache) or WAN_ROPE_ABS */
    hb_dtype cache_dtype;      /* HB_BF16 (default) or HB_F32 */
    int64_t steps_list[HB_AR_MAX_STEPS];
    int nsteps;                /* 0: the release's 1000, 750, 500, 250 (settings.h) */
    double shift;              /* 0: the release's 5 */
    bool raw_steps;            /* feed steps_list as the timesteps (warp_denoising_step false) */
    float context_noise;       /* timestep of the refresh / recompute forwards (0) */
    uint64_t seed;
    bool refresh_last;         /* default true (the release); false skips the last refresh */
    const hb_ar_cond *conds;
    int nconds;
    hb_ar_latent_fn on_chunk;
    void *user;
    hb_ar_noise_fn noise;      /* NULL: the seeded generator */
    void *noise_user;
    hb_ar_call_fn on_call;     /* optional observer of every forward (the refresh then also computes its flow) */
    void *call_user;
    hb_progress_fn progress;   /* per chunk */
    void *progress_user;
    /* out */
    size_t state_bytes;        /* bytes of the causal state (KV cache, workspace, prompt, history) */
    int64_t forwards;          /* DiT forwards run */
} hb_ar_opts;

void hb_ar_opts_default(hb_ar_opts *o);
/* Run the chunk loop on a loaded DiT (any size). -1 + message on error. */
int hb_ar_generate(const wan_dit *m, hb_ar_opts *o);

/* Parse a prompts file: lines "frame_index<TAB>prompt" (latent frame index; '#' comments and blank lines
 * skipped). Returns the count (texts malloc'ed into *texts, frames into *frames, sorted by frame; the
 * caller frees every text and both arrays) or -1 + message naming the file and line. */
int hb_ar_read_prompts(const char *path, int64_t **frames, char ***texts);

/* ---------- whole pipeline: model folder -> streamed video ---------- */
typedef enum { HB_AR_DEC_TAE = 0, HB_AR_DEC_VAE = 1, HB_AR_DEC_NONE = 2 } hb_ar_decoder;

typedef struct hb_ar_run {
    const char *model_dir;           /* a model folder or the release root (pipeline/model_folder.h) */
    const char *checkpoint;          /* optional: the DiT's weights (.pt training dict: generator_ema, else generator;
                                      * or safetensors), the architecture from the folder's config.json */
    const char *text_encoder_dir;    /* optional: folder holding the umT5 + google/umt5-xxl tokenizer (the release
                                      * takes them from wan_models/Wan2.2-TI2V-5B) */
    const char *prompt;              /* used when no prompts file */
    const char *prompts_file;        /* "frame<TAB>prompt" lines, optional */
    int width, height;               /* pixels; 0: the release's (832 x 480 for 16-channel latents, 1280 x 704 for 48) */
    int64_t video_frames;            /* 0 = the model's (settings.h: 321 = 81 latent frames) */
    hb_ar_opts ar;                   /* chunk/sink/window/rope/steps/shift/seed/cache dtype */
    hb_ar_decoder decoder;           /* HB_AR_DEC_VAE (default: the release's Wan VAE, streamed), TAE or NONE */
    const char *output;              /* video file (streamed, fragmented MP4), or NULL */
    double fps;                      /* 0 = the model's (16, or hummingbird.json) */
    int crf;                         /* H.264/VP9 quality of the file; 0 = io/video's default */
    /* video frames [first, first + n) as rgb [n, H, W, 3] uint8: once per chunk (TAEHV or VAE decoder). Nonzero return stops the run. */
    int (*on_frames)(void *user, int64_t first, int n, const uint8_t *rgb, int H, int W);
    void *user;
    bool quiet;                      /* no per-chunk log line */
    /* out */
    double seconds_text, seconds_total;
    int64_t frames_written;          /* frames on_frames accepted (when set, without keep_partial), else frames in
                                      * the file; also after an early stop */
    bool keep_partial;               /* a stop by on_frames keeps the frames written, playable, in NAME.partial.EXT */
    char partial_path[4096];         /* "" or, after such a stop, the partial file kept */
    size_t peak_rss;
} hb_ar_run;

void hb_ar_run_default(hb_ar_run *r);
int hb_ar_run_pipeline(hb_ar_run *r);

#endif
