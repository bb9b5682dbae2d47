/* models/light_vae: the Hummingbird-XT release's light VAE decoder, a Turbo-VAED `TurboVAEDDecoder3d` for the
 * 48-channel Wan2.2 latent: normalised latent [z, t, h, w] -> video [3, 1 + F(t-1), S h, S w] (F = 4, S = 16
 * for the release's layout). Built from the release's diffusers config.json exactly as its constructor does
 * (docs/light_vae.md, ../shared/spec/hummingbird-release.md section 2):
 *   z = latent / (1/std) + mean                       (Wan2.2 statistics; 1/std rounded to float32 first)
 *   conv_in: plain 3x3x3 conv z -> W[0]
 *   mid block: layers[0] resnets at W[0]
 *   up block i: [entry resnet W[i-1] -> W[i] when the width changes] -> [upsampler (2,2,2) or (1,2,2)]
 *               -> layers[1+i] resnets; the resnets of blocks with an upsampler use ReLU as first activation
 *   patch_size 2 (and 4): channel RMS + SiLU + per-frame 3x3 Conv2d + pixel_shuffle(2), per stage
 *   output: channel RMS + SiLU + conv_out (plain 3x3x3 conv to 3 channels)
 * Resnet: conv2(silu(rms(conv1(act(rms(x)))))) + shortcut(x); shortcut = identity, or LayerNorm(eps
 * resnet_norm_eps, affine) over channels + a kernel-1 conv when the width changes. rms = channel RMS norm,
 * no weight, eps 1e-8. Convs of depthwise blocks are depthwise (k^3, groups C) + pointwise; their time padding
 * is always symmetric replicate ((k-1)/2 frames). Plain convs replicate the first frame k-1 times (causal) or
 * both edge frames (k-1)/2 times (non-causal). Space: zero padding. Upsampler (s_t, s, s): plain conv
 * C -> C s_t s s, channel ((c s + i) s + j) s_t + st to (c, t s_t + st, y s + i, x s + j), first s_t - 1
 * frames dropped. Everything in float32.
 *
 * Files: a folder with config.json + diffusion_pytorch_model.safetensors (the release's
 * vae/wan22_v1_tiling_16_12/), or a .safetensors file with config.json beside it. Tensor names are the
 * decoder's own (conv_in.conv.weight, mid_block.resnets.0.conv1.depthwise_conv.weight, ...), optionally with
 * a "decoder." prefix; other tensors are ignored.
 *
 * Layout: [C, T, H, W] float32 (PyTorch order, batch dropped). Latents, videos and every activation live in the
 * current memory space (device memory under a GPU backend) and are touched only through ops. */
#ifndef HB_MODELS_LIGHT_VAE_H
#define HB_MODELS_LIGHT_VAE_H

#include "core/core.h"
#include "io/checkpoint.h"
#include "models/frame_decoder.h"

#define HB_LIGHT_VAE_MAX_UP 6
#define HB_LIGHT_VAE_MAX_Z 256 /* latent channels */
/* The release's folder name for the light decoder (under vae/ in a model folder). */
#define HB_LIGHT_VAE_RELEASE_DIR "wan22_v1_tiling_16_12"

typedef struct {
    int latent_channels;   /* 48 */
    int out_channels;      /* 3 */
    int patch_size;        /* 1, 2 or 4: number of final 2-D pixel-shuffle stages = log2 */
    bool causal;           /* decoder_causal */
    int dw_kernel;         /* decoder_dw_kernel_size (odd) */
    float resnet_norm_eps; /* LayerNorm eps of width-changing shortcuts */
    int scale_spatial, scale_temporal; /* config.json scale_factor_* (0 when absent) */
    int n_up;              /* up blocks = entries of decoder_block_out_channels */
    /* execution order (the config's lists reversed): [0] conv_in + mid block, [1 + i] up block i */
    int widths[HB_LIGHT_VAE_MAX_UP + 1];
    int layers[HB_LIGHT_VAE_MAX_UP + 1];
    bool dw[HB_LIGHT_VAE_MAX_UP + 1];
    bool upsample[HB_LIGHT_VAE_MAX_UP];     /* up block i has an upsampler */
    bool spatial_only[HB_LIGHT_VAE_MAX_UP]; /* ... with stride (1,2,2) instead of (2,2,2) */
} hb_light_vae_config;

/* The release's structure: decoder_block_out_channels [32, 64, 256, 512] (tiny: [8, 8, 16, 16]), layers
 * [2, 2, 2, 2, 2] (tiny: all 1), depthwise [F, F, T, T, T] with kernel 5, spatio-temporal [T, T, T, F],
 * spatio-only [T, F, F, F], patch 2, scale factors 16 / 4. */
void hb_light_vae_config_default(hb_light_vae_config *c, bool tiny, bool causal);
/* Parse the diffusers config (JSON object text; `what` names the file in messages). Unknown keys are ignored
 * (diffusers keeps many); missing or malformed keys the network needs are an error naming the key. */
int hb_light_vae_config_from_json(hb_light_vae_config *c, const char *json, const char *what);
/* The config as the release's config.json (constructor keys in encoder order + scale_factor_*); malloc'd. */
char *hb_light_vae_config_to_json(const hb_light_vae_config *c);
int hb_light_vae_config_check(const hb_light_vae_config *c, const char *what);

typedef struct hb_light_vae hb_light_vae;

/* Load a folder (config.json + diffusion_pytorch_model.safetensors) or a .safetensors file X.safetensors with
 * its config in X.json or, failing that, config.json beside it. Shapes are validated against the config (message names the tensor and both shapes). */
hb_light_vae *hb_light_vae_load(const char *path);
/* From an open checkpoint and a config (the caller keeps ck open while the model lives). */
hb_light_vae *hb_light_vae_load_ck(const hb_checkpoint *ck, const hb_light_vae_config *cfg);
/* Random weights in memory: conv weights N(0, 1/fan_in), biases N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.1^2),
 * conv_out scaled by 0.5. */
hb_light_vae *hb_light_vae_create_random(const hb_light_vae_config *cfg, uint64_t seed);
/* Every weight tensor of m with its release name and shape, in the release's order (writers, inspection). */
typedef int (*hb_light_vae_tensor_fn)(void *user, const char *name, const hb_tensor *t);
int hb_light_vae_for_each_tensor(hb_light_vae *m, hb_light_vae_tensor_fn fn, void *user);
void hb_light_vae_free(hb_light_vae *m);

/* The latent statistics used by the de-normalisation (default: the Wan2.2 constants); n = latent_channels. */
int hb_light_vae_set_latent_stats(hb_light_vae *m, const float *mean, const float *std, int n);

const hb_light_vae_config *hb_light_vae_get_config(const hb_light_vae *m);
int hb_light_vae_temporal_factor(const hb_light_vae *m); /* F = 2^(upsamplers that are not spatial-only) */
int hb_light_vae_spatial_factor(const hb_light_vae *m);  /* S = patch_size * 2^(upsamplers) */
int64_t hb_light_vae_decoded_frames(const hb_light_vae *m, int64_t t); /* 1 + F(t-1) (0 for t = 0) */
int64_t hb_light_vae_param_count(const hb_light_vae *m);

/* Block outputs of a whole-clip decode, in execution order: "latent_denorm", "conv_in", "mid_block",
 * "up_blocks.0".., "upsampler2d_1" (, "upsampler2d_2"); x [C, T, H, W] in the current memory space, valid
 * during the call. Return nonzero to stop the decode. */
typedef int (*hb_light_vae_block_fn)(void *user, const char *name, const float *x, int64_t C, int64_t T, int64_t H,
                                     int64_t W);

/* Whole-clip decode: latent [z, t, h, w] -> raw [3, 1 + F(t-1), S h, S w], conv_out's output (not clamped),
 * and/or video = clamp(raw, -1, 1) (either may be NULL). hook (optional) sees every block output. */
int hb_light_vae_decode(const hb_light_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video,
                        float *raw, hb_light_vae_block_fn hook, void *user);

/* Streaming decode, for both variants, equal to the whole-clip decode of everything pushed: each layer keeps
 * its last k-1 input frames, replicates the first frame at the start and the last one at finish, and the
 * residual shortcuts wait (in a small frame queue) for their branch, which lags by the convs' right padding.
 * Memory depends on the push size, not on the video length. Frames come out raw (conv_out's output) or
 * clamped to [-1, 1] (clamp = true), as [3, nout, S h, S w]. */
typedef struct hb_light_vae_stream hb_light_vae_stream;
hb_light_vae_stream *hb_light_vae_stream_new(const hb_light_vae *m, int64_t h, int64_t w, bool clamp);
/* n latent frames [z, n, h, w] (channels cstride elements apart, 0 = n h w). video must hold F n frames; the
 * number written is in *nout (fewer than F n while the layers' lookahead fills). */
int hb_light_vae_stream_push(hb_light_vae_stream *s, const float *latent, int64_t n, int64_t cstride, float *video,
                             int64_t *nout);
/* Frames still held back (what finish will write), and their bound for any push sequence. */
int64_t hb_light_vae_stream_pending(const hb_light_vae_stream *s);
int64_t hb_light_vae_stream_max_pending(const hb_light_vae *m);
/* The last frames (video holds hb_light_vae_stream_pending frames); the stream then starts a new clip. */
int hb_light_vae_stream_finish(hb_light_vae_stream *s, float *video, int64_t *nout);
void hb_light_vae_stream_reset(hb_light_vae_stream *s);
/* A whole-clip decode of t latents ([z, t, h, w] contiguous) with the stream's buffers (kept for the next call):
 * as hb_light_vae_decode (video clamped when the stream clamps); the stream starts a new clip afterwards. */
int hb_light_vae_stream_decode(hb_light_vae_stream *s, const float *latent, int64_t t, float *video, float *raw);
size_t hb_light_vae_stream_bytes(const hb_light_vae_stream *s); /* caches, queues and buffers held between pushes */
void hb_light_vae_stream_free(hb_light_vae_stream *s);
/* The model as a frame decoder (models/frame_decoder.h): its states are streams (clamped unless raw; a whole-clip
 * decode gives conv_out's raw output when raw), max_held = hb_light_vae_stream_max_pending, the release's tiles
 * of 16 frames every 12. */
void hb_light_vae_frame_decoder(const hb_light_vae *m, hb_frame_decoder *out);

/* Rough peak bytes of a whole-clip decode of t latents (the largest layer's input, window and output), and its
 * multiply-adds x2. */
int64_t hb_light_vae_decode_bytes(const hb_light_vae *m, int64_t t, int64_t h, int64_t w);
double hb_light_vae_decode_flops(const hb_light_vae *m, int64_t t, int64_t h, int64_t w);

#endif
