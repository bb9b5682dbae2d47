/* models/light_vae: the Hummingbird-XT light VAE decoder, a drop-in for the Wan-2.2 VAE decoder:
 * normalised latent [z=48, t, h, w] -> video [3, 1 + F(t-1), S*h, S*w] in [-1, 1] with F = 4 (time) and
 * S = 16 (space) for the default configuration.
 *
 * Network (built from a JSON config stored in the checkpoint, see docs/light_vae.md):
 *   (optional) z_raw = z * std + mean                      (latent de-normalisation, tensors latent.mean/std)
 *   conv_in: 3-D conv z -> widths[0]
 *   block i = 0..n-1:
 *     i > 0: nearest upsample by (up_t[i-1], up_s[i-1], up_s[i-1]), then the entry conv widths[i-1] -> widths[i]
 *     res_blocks[i] residual blocks: x + conv2(silu(norm2(conv1(silu(norm1(x))))))
 *       norm = channel RMS norm (x / ||x||_channels * sqrt(C) * gamma, no bias, as the Wan VAE)
 *     every conv of a depthwise block (entry conv included) is depthwise-separable: a per-channel
 *     (kt, k, k) conv (groups = C, no bias) then a 1x1x1 pointwise conv with bias; other blocks use plain
 *     3-D convs with bias. No attention.
 *   head: norm, silu, conv widths[n-1] -> 3*patch^2, un-patchify 2x2 (HB_PS_CRQ, the Wan-2.2 order), clamp.
 *   Time: the upsamplers make F = prod(up_t) frames per latent; the first F-1 are dropped (1 + F(t-1) frames).
 *   Causal variant: time padding (kt-1, 0) for every conv; non-causal: symmetric ((kt-1)/2 each side).
 *   Zero padding in space and time.
 *
 * Causal models decode latent frame by latent frame (or chunk by chunk) with a feature cache holding the
 * last kt-1 input frames of every conv with kt > 1: results equal the whole-clip decode. Non-causal models
 * decode whole clips; long videos use overlapping clips (pipeline/longdecode.h).
 *
 * Layout: [C, T, H, W] float32 (PyTorch order, batch dropped). */
#ifndef HB_MODELS_LIGHT_VAE_H
#define HB_MODELS_LIGHT_VAE_H

#include "core/core.h"
#include "io/checkpoint.h"

#define HB_LIGHT_VAE_MAX_BLOCKS 8
/* The safetensors __metadata__ key holding the config JSON. */
#define HB_LIGHT_VAE_META_KEY "light_vae_config"

typedef struct {
    int z_dim;                               /* latent channels (48) */
    int out_channels;                        /* video channels (3) */
    int patch;                               /* final un-patchify factor (2; 1 = none) */
    int n_blocks;                            /* 5 */
    int widths[HB_LIGHT_VAE_MAX_BLOCKS];     /* channels per block */
    int res_blocks[HB_LIGHT_VAE_MAX_BLOCKS]; /* residual blocks per block */
    bool depthwise[HB_LIGHT_VAE_MAX_BLOCKS]; /* depthwise-separable convs in that block */
    int up_t[HB_LIGHT_VAE_MAX_BLOCKS];       /* upsampling between block i and i+1 (n_blocks-1 entries) */
    int up_s[HB_LIGHT_VAE_MAX_BLOCKS];
    int kernel_t, kernel_s;                  /* plain convs (conv_in, plain blocks, head): (kt, k, k), odd k */
    int dw_kernel_t, dw_kernel_s;            /* depthwise convs */
    bool causal;
    bool denormalize;                        /* input z * std + mean (tensors latent.mean, latent.std) */
    bool clamp;                              /* clamp the video to [-1, 1] */
} hb_light_vae_config;

/* The default (causal = true/false): z 48, patch 2, widths [256, 256, 192, 128, 64], res blocks [2,2,2,1,1],
 * depthwise [T,T,T,F,F], up_t [1,2,2,1], up_s [1,2,2,2], kernels 3x3x3 (plain) and 3x3x3 (depthwise),
 * denormalize with the Wan-2.2 latent statistics, clamp. */
void hb_light_vae_config_default(hb_light_vae_config *c, bool causal);
/* Parse / print the config JSON. Missing keys take the default's values; unknown keys are an error.
 * -1 + message naming the key on bad input. to_json returns a malloc'd string (free with free()). */
int hb_light_vae_config_from_json(hb_light_vae_config *c, const char *json);
char *hb_light_vae_config_to_json(const hb_light_vae_config *c);
int hb_light_vae_config_check(const hb_light_vae_config *c);

/* Enumerate the weights of a config: fn(user, name, ndim, shape) per tensor, in file order. */
typedef int (*hb_light_vae_weight_cb)(void *user, const char *name, int ndim, const int64_t *shape);
int hb_light_vae_weights(const hb_light_vae_config *c, hb_light_vae_weight_cb fn, void *user);

typedef struct hb_light_vae hb_light_vae;

/* Load a checkpoint: a .safetensors file (or a folder holding light_vae.safetensors) with the config in
 * __metadata__["light_vae_config"]. The model keeps the checkpoint open. NULL + message (file, tensor and
 * both shapes / bad config key) on error. */
hb_light_vae *hb_light_vae_load(const char *path);
/* The same from an open checkpoint (caller keeps it open while the model lives). cfg NULL: from metadata. */
hb_light_vae *hb_light_vae_load_ck(const hb_checkpoint *ck, const hb_light_vae_config *cfg);
/* Random weights in memory (the model owns them). */
hb_light_vae *hb_light_vae_create_random(const hb_light_vae_config *cfg, uint64_t seed);
/* Write a random checkpoint: path ending in .safetensors = that file, else a folder (created if missing)
 * receiving light_vae.safetensors. cfg NULL = the causal default. Conv weights N(0, 1/fan_in), biases
 * N(0, 0.01^2), gammas 1 + N(0, 0.01^2), the head scaled by 0.5; latent.mean/std = the Wan-2.2 constants
 * when z = 48 (else 0 / 1). */
int hb_light_vae_write_random(const char *dir_or_file, const hb_light_vae_config *cfg, uint64_t seed);
void hb_light_vae_free(hb_light_vae *m);

const hb_light_vae_config *hb_light_vae_get_config(const hb_light_vae *m);
int hb_light_vae_temporal_factor(const hb_light_vae *m); /* F = prod(up_t) */
int hb_light_vae_spatial_factor(const hb_light_vae *m);  /* S = prod(up_s) * patch */
int64_t hb_light_vae_decoded_frames(const hb_light_vae *m, int64_t t); /* 1 + F(t-1) (0 for t = 0) */
int64_t hb_light_vae_param_count(const hb_light_vae *m);

/* Memory spaces: latent, video and raw (and the streaming calls' latent / video) live in the current memory
 * space (hb_dev_alloc: device memory under a GPU backend, host memory on the CPU); the model computes on them
 * only through ops (ops/ops.h) and keeps its activations, feature caches and workspaces there too. Weights
 * stay host hb_tensors (checkpoint mappings, or host copies: latent stats, fused phase weights).
 *
 * Decode: latent [z, t, h, w] -> video [3, 1 + F(t-1), S h, S w]. Causal models (without raw) run latent by
 * latent through the feature caches (bit-identical to the whole-clip pass, memory independent of t: ~1.7 GiB
 * at 704x1280 for the default config); non-causal models (or raw != NULL) run the whole-clip pass, whose
 * memory grows with t (use pipeline/longdecode.h for long videos).
 * raw (optional) [out*patch^2, F t, h*S/patch, w*S/patch]: the head conv's output (before un-patchify,
 * trimming and clamping), for tests. */
int hb_light_vae_decode(const hb_light_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video,
                        float *raw);
/* The whole-clip pass, layer by layer over all frames with time padding (causal: (kt-1, 0), else symmetric):
 * the reference the streaming path is tested against. */
int hb_light_vae_decode_whole(const hb_light_vae *m, const float *latent, int64_t t, int64_t h, int64_t w,
                              float *video, float *raw);
/* Bytes of working memory hb_light_vae_decode reserves; multiply-adds x2 of one decode. */
int64_t hb_light_vae_decode_workspace(const hb_light_vae *m, int64_t t, int64_t h, int64_t w);
double hb_light_vae_decode_flops(const hb_light_vae *m, int64_t t, int64_t h, int64_t w);

/* Streaming decode (causal models only): push latent frames, get their video frames. The first push's
 * first latent gives 1 frame, every other latent F frames. Memory depends on max_chunk, not on the length. */
typedef struct hb_light_vae_stream hb_light_vae_stream;
hb_light_vae_stream *hb_light_vae_stream_new(const hb_light_vae *m, int64_t h, int64_t w, int max_chunk);
/* n latent frames [z, n, h, w] whose channels are cstride elements apart (0 = n*h*w) and frames h*w apart.
 * video receives [3, nout, S h, S w] (nout = F n, minus F-1 on the very first frame); *nout set. Pushes
 * longer than max_chunk are split. */
int hb_light_vae_stream_push(hb_light_vae_stream *s, const float *latent, int64_t n, int64_t cstride, float *video,
                             int64_t *nout);
void hb_light_vae_stream_reset(hb_light_vae_stream *s); /* zero the caches: a new clip */
size_t hb_light_vae_stream_bytes(const hb_light_vae_stream *s);
int64_t hb_light_vae_stream_frames_out(const hb_light_vae_stream *s);
void hb_light_vae_stream_free(hb_light_vae_stream *s);

#endif
