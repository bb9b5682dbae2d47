/* hummingbird.h: the public C API of the hummingbird video generation engine.
 *
 * Text-to-video and image-to-video with Wan-family diffusion transformers: Hummingbird-XT (the 3-step,
 * CFG-free distilled Wan2.2-TI2V-5B) and the undistilled Wan 2.2 teacher (UniPC or Euler with classifier-free
 * guidance), from a model folder in the official Wan layout (see docs/pipeline.md).
 *
 *     hb_model *m = hb_model_load("Wan2.2-TI2V-5B-Hummingbird", NULL);
 *     if (!m) { fprintf(stderr, "%s\n", hb_last_error_message()); return 1; }
 *     hb_generate_params p;
 *     hb_generate_params_init(&p);
 *     p.prompt = "a cat walking on the beach";
 *     hb_video_frames v;
 *     if (hb_generate(m, &p, &v) != 0) { fprintf(stderr, "%s\n", hb_last_error_message()); ... }
 *     ... v.rgb holds v.frames x v.height x v.width x 3 bytes, to be played at v.fps ...
 *     hb_frames_free(&v);
 *     hb_model_free(m);
 *
 * Plain C99, self-contained: this header includes only standard headers. Functions returning int give 0 on
 * success and -1 on error (hb_generate and hb_generate_ar also HB_CANCELLED, see hb_generate_progress_fn);
 * pointer-returning ones give NULL on error. The message of the last error of the
 * calling thread is hb_last_error_message().
 *
 * Ownership: the library never keeps a caller's pointer past the call that received it (strings, paths, RGB
 * buffers and params are read during the call only), except the callbacks and their user pointers, which it
 * calls only during that call. What it returns is the caller's to free with the matching function
 * (hb_model_free, hb_frames_free); strings it returns are static or thread-local and must not be freed.
 * Threads: every function may be called from any thread. A model handle is used by one thread at a time
 * (calls on one handle are not synchronised); different handles and hb_generate_ar runs are independent. The
 * library writes nothing to the terminal: progress goes to the callbacks only. */
#ifndef HUMMINGBIRD_H
#define HUMMINGBIRD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HB_API_VERSION 3

typedef struct hb_model hb_model;

/* Progress of a stage ("text", "image", "denoise", "decode", "chunks", ...): step of total finished, seconds
 * since the stage began and an estimate of the seconds left. Called at least once per stage (step == total at
 * its end). Return 0 to go on. A nonzero return cancels the run: hb_generate stops before its next denoising
 * step or decoded frame, hb_generate_ar before its next chunk, and they return HB_CANCELLED (no output, the
 * error message says "cancelled"); the callback may be called a few more times before that. */
typedef int (*hb_generate_progress_fn)(void *user, const char *stage, int step, int total, double elapsed_s,
                                       double eta_s);
#define HB_CANCELLED (-2)

typedef struct hb_load_params {
    int threads;   /* worker threads; 0 = HB_THREADS or every core */
    int offload;   /* nonzero: keep at most one of {text encoder, DiT, VAE} loaded, loading each around its
                      stage (lower peak memory, reloads on every generate) */
    const char *device; /* "cpu", "cuda", "cuda:N" (GPU builds); NULL or "" = the calling thread's backend,
                           the CPU by default. An unavailable device fails here with the reason. */
    const char *dit;    /* optional DiT weights instead of the folder's: a .gguf or .safetensors file (a community
                           file: without a config.json beside it the config is read off its tensors) */
} hb_load_params;

/* Open a model folder: every part is located and validated (names and shapes of the weights) here, so a
 * broken folder fails before any heavy work. params may be NULL (defaults). The handle owns the mapped weights
 * until hb_model_free (NULL is fine). */
hb_model *hb_model_load(const char *dir, const hb_load_params *params);
void hb_model_free(hb_model *m);

typedef enum {
    HB_GEN_SAMPLER_DEFAULT = 0, /* the model's: xt for Hummingbird-XT, unipc for a base Wan folder (docs/pipeline.md) */
    HB_GEN_SAMPLER_XT = 1,      /* few-step, CFG-free (Hummingbird-XT) */
    HB_GEN_SAMPLER_UNIPC = 2,   /* Wan 2.2 base sampler, classifier-free guidance */
    HB_GEN_SAMPLER_EULER = 3    /* flow Euler, classifier-free guidance */
} hb_gen_sampler;

typedef enum {
    HB_GEN_VAE_DEFAULT = 0, /* the model's: the light decoder for Hummingbird-XT, else the Wan VAE */
    HB_GEN_VAE_FULL = 3,  /* the Wan VAE decoder */
    HB_GEN_VAE_TAE = 1,   /* the tiny streaming decoder (taew2_2 / taew2_1 in the folder) */
    HB_GEN_VAE_LIGHT = 2, /* the light decoder (when the folder and the build have one) */
    HB_GEN_VAE_NONE = 4   /* hb_generate_ar only: no decoder, latents only (timing runs; no output, no on_chunk) */
} hb_gen_vae;

/* I2V: how the input image becomes a width x height frame */
typedef enum {
    HB_GEN_IMAGE_DEFAULT = 0, /* the model's: stretch for Hummingbird-XT (the release), cover otherwise */
    HB_GEN_IMAGE_STRETCH = 1, /* Lanczos resize to width x height, aspect not kept (the release) */
    HB_GEN_IMAGE_COVER = 2    /* resize to cover width x height, centre crop (Wan) */
} hb_gen_image_fit;

/* Few-step sampler noise */
typedef enum {
    HB_GEN_NOISE_DEFAULT = 0, /* the model's: torch for Hummingbird-XT, stream otherwise */
    HB_GEN_NOISE_TORCH = 1,   /* the release's: PyTorch's CPU generator (the same numbers for a seed), frame-major
                                 [F, C, H, W] initial noise, ONE re-noise tensor (seed + 2) for every re-noise */
    HB_GEN_NOISE_STREAM = 2   /* one generator stream, a fresh tensor for every re-noise */
} hb_gen_noise;

/* The few-step timestep value the DiT sees (x0 and re-noise always use the exact table sigma) */
typedef enum {
    HB_GEN_T_DEFAULT = 0,  /* the model's: int_bf16 for Hummingbird-XT, float otherwise */
    HB_GEN_T_FLOAT = 1,    /* t as computed (1000, 967.74, 909.09 at shift 10) */
    HB_GEN_T_INT_BF16 = 2, /* int64(bf16(t)): the release with its bf16 latents (1000, 968, 908) */
    HB_GEN_T_INT_F32 = 3   /* int64(float32(t)) (1000, 967, 909) */
} hb_gen_timestep;

#define HB_GEN_MAX_STEPS 64

typedef struct hb_generate_params {
    const char *prompt;          /* required (may be "") */
    const char *negative;        /* NULL: Wan's default negative prompt (used only with CFG) */
    /* I2V: an image file (PNG/JPEG), or an RGB buffer (image_rgb, image_width x image_height x 3 bytes).
     * It is fitted to width x height (image_fit), and its VAE latent becomes latent frame 0. */
    const char *image_path;
    const uint8_t *image_rgb;
    int image_width, image_height;
    hb_gen_image_fit image_fit;
    int width, height;           /* multiples of 32 for Wan2.2 (VAE 16 x patch 2); 0 = the model's (1280 x 704 for
                                    the 5B). I2V with cover fit and width or height 0: the image's aspect ratio
                                    within 1280*704 pixels */
    int frames;                  /* 4k + 1; 0 = the model's (121 for the 5B) */
    uint64_t seed;               /* default 0 */
    hb_gen_sampler sampler;
    /* few-step list (timesteps in [0, 1000]) and shift; nsteps 0 / shift 0 = the model's (Hummingbird-XT:
     * 1000,750,500 at shift 10) */
    int nsteps;
    int64_t steps_list[HB_GEN_MAX_STEPS];
    double shift;
    hb_gen_noise noise;
    hb_gen_timestep timestep;
    int steps;                   /* base sampler steps; 0 = 50 */
    double cfg;                  /* base sampler guidance; < 0 = 5.0 */
    hb_gen_vae vae;
    int vae_tile;                /* spatial tile of the Wan VAE decoder in latent cells; 0 = untiled */
    const char *light_vae_path;  /* a light decoder folder (config.json + weights) or .safetensors file instead of
                                    the model folder's; NULL = the folder's. With vae DEFAULT it selects the light
                                    decoder */
    int light_tiling;            /* light decoder: 0 = streamed (equal to the whole-clip decode), 1 = temporal tiles
                                    16/12 with aligned frames, 2 = the release's tiling exactly (frames shifted) */
    hb_generate_progress_fn progress;
    void *progress_user;
} hb_generate_params;

/* Every field 0 (the model's defaults: docs/pipeline.md), prompt "", cfg -1 (the model's guidance). */
void hb_generate_params_init(hb_generate_params *p);

typedef struct hb_video_frames {
    int frames, height, width;
    double fps;
    uint8_t *rgb;                /* [frames, height, width, 3], interleaved RGB */
    /* what it took */
    double seconds_text, seconds_image, seconds_denoise, seconds_decode, seconds_total;
    size_t peak_rss_bytes;       /* of the process, at the end */
} hb_video_frames;

/* Generate one video with model m (not shared with another thread during the call). On success out->rgb is
 * allocated by the library and belongs to the caller (hb_frames_free); on error out holds no allocation. */
int hb_generate(hb_model *m, const hb_generate_params *p, hb_video_frames *out);
void hb_frames_free(hb_video_frames *v);   /* frees v->rgb and sets it to NULL; NULL v is fine */

/* Estimated peak memory of hb_generate(m, p) in bytes, before any work: the largest of the text encoder's
 * weights (its stage runs first, alone), the denoise stage (DiT weights, the DiT's activation workspace as its
 * dry run measures it, the prompt's K/V, latents) and the decode stage (the DiT's weights unless offloaded, the
 * decoder's weights and workspace, the output frames). Compare with the memory the process may use to warn
 * before a run that cannot fit. 0 on error (bad parameters: the message says why). */
size_t hb_generate_estimate_bytes(hb_model *m, const hb_generate_params *p);

/* The message of the last failed call on this thread ("" when none, and after a call that succeeded); valid
 * until the thread's next call into the library. */
const char *hb_last_error_message(void);

/* The library's version, "MAJOR.MINOR.PATCH" (static storage). */
const char *hb_version(void);

/* Model facts (0 for a NULL model). */
int hb_model_latent_channels(const hb_model *m);  /* 48 (Wan2.2) or 16 (Wan2.1) */
int hb_model_size_multiple(const hb_model *m);    /* width/height granularity: 32 (Wan2.2) or 16 (Wan2.1) */
double hb_model_default_fps(const hb_model *m);   /* 24 (5B) unless hummingbird.json says otherwise */

/* Autoregressive long video (Hummingbird-XTX) */
/* The causal Wan DiT (Hummingbird-XTX, as released) generates the video chunk by chunk (3 latent frames = 12
 * video frames) with a KV cache of 6 latent frames whose first one is a sink (relative RoPE: unbounded length
 * at constant memory); each finished chunk is decoded (the Wan VAE, streamed; TAEHV as an option) and handed
 * to on_chunk and/or appended to a streamed file. model_dir: the release root (checkpoints/wan21_model.pt +
 * wan_models/...) or a causal Wan model folder (see docs/xtx.md). */
typedef int (*hb_ar_chunk_fn)(void *user, int64_t first_frame, int nframes, const uint8_t *rgb, int height,
                              int width); /* rgb [nframes, height, width, 3]; nonzero return stops the run */

/* What an hb_generate_ar run did (the settings left 0 resolved to the model's). */
typedef struct hb_ar_stats {
    int64_t frames;              /* as frames_out; with keep_partial, the frames in the file (partial or final) */
    int64_t chunks;              /* chunks finished */
    int64_t dit_forwards;        /* DiT forwards run (denoise steps, refreshes, prompt-switch re-caches) */
    int width, height;           /* video size */
    double fps;
    double seconds_text, seconds_total;
    size_t peak_rss_bytes;       /* of the process, at the end */
    char partial_path[4096];     /* "" or the partial file kept (keep_partial) */
} hb_ar_stats;

typedef struct hb_ar_params {
    const char *prompt;          /* used when prompts_file is NULL */
    const char *prompts_file;    /* lines "latent_frame<TAB>prompt" (first at 0): prompt switches */
    int width, height;           /* 0: 832 x 480 (1280 x 704 for a 48-channel model); multiples of 16 (32) */
    int64_t frames;              /* video frames; 0 = the model's: 321 (the release's 81 latent frames) */
    int chunk, sink, window;     /* latent frames; default 3, 1, 6 (window = the release's local_attn_size, the
                                  * sink included; 0: global cache) */
    int rope_relative;           /* default 1: relative RoPE (the release); 0: absolute (at most 1024 latent frames) */
    int cache_f32;               /* nonzero: f32 KV cache (default bf16) */
    int nsteps;                  /* 0 = the model's: 1000, 750, 500, 250 (or hummingbird.json) */
    int64_t steps_list[HB_GEN_MAX_STEPS];
    double shift;                /* 0 = the model's: 5 (or hummingbird.json) */
    uint64_t seed;
    hb_gen_vae vae;              /* HB_GEN_VAE_FULL (default: streaming Wan VAE), HB_GEN_VAE_TAE or HB_GEN_VAE_NONE */
    const char *checkpoint;      /* optional DiT weights (.pt training dict) over the folder's config.json */
    const char *text_encoder_dir; /* optional folder with the umT5 + tokenizer */
    const char *output;          /* optional file (.mp4 streamed fragmented, .mkv, .y4m, folder/) */
    double fps;                  /* 0 = the model's: 16 (or hummingbird.json) */
    int crf;                     /* H.264/VP9 quality of the file (0..63); 0 = the writer's default */
    int no_last_refresh;         /* nonzero: skip the clean refresh forward after the last chunk (same video) */
    int keep_partial;            /* nonzero: a run stopped by on_chunk or progress keeps the frames written so far,
                                    playable, in NAME.partial.EXT (stats->partial_path); 0: the file is removed */
    hb_ar_chunk_fn on_chunk;     /* optional */
    void *user;
    hb_generate_progress_fn progress; /* stage "chunks" */
    void *progress_user;
    const char *device;          /* as hb_load_params.device */
    hb_ar_stats *stats;          /* optional, filled by hb_generate_ar (also after an error or a stop) */
} hb_ar_params;

void hb_ar_params_init(hb_ar_params *p);  /* the release's cache settings; every other field 0 = the model's */
/* Run to the end (or until on_chunk returns nonzero: -1 then, or the progress callback: HB_CANCELLED). frames_out
 * (may be NULL): the video frames on_chunk received (without on_chunk: written to the file), also after an early
 * stop; a stopped run's output file is removed (kept as NAME.partial.EXT with keep_partial). */
int hb_generate_ar(const char *model_dir, const hb_ar_params *p, int64_t *frames_out);
/* Estimated peak memory of hb_generate_ar(model_dir, p) in bytes, before any work (the DiT is mapped, not read):
 * the larger of the text encoder's weights and the chunk loop (DiT weights, its one-chunk workspace, KV cache,
 * history, prompt K/V, the decoder's weights and workspace). 0 on error (the message says why). */
size_t hb_ar_estimate_bytes(const char *model_dir, const hb_ar_params *p);

#ifdef __cplusplus
}
#endif

#endif
