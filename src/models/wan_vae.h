/* models/wan_vae: the Wan video VAEs, encoder and decoder.
 *   Wan-2.1 VAE: video [3, T, H, W] <-> latent [16, 1 + (T-1)/4, H/8, W/8]   (base width dim 96)
 *   Wan-2.2 VAE: video [3, T, H, W] <-> latent [48, 1 + (T-1)/4, H/16, W/16] (dim 160, decoder dec_dim 256;
 *                the video is patchified 2x2 into 12 channels before the encoder and un-patchified after
 *                the decoder)
 * Layouts are PyTorch's with the batch dropped: [C, T, H, W], float32.
 *
 * The forward passes follow the reference (Wan2.1 wan/modules/vae.py, Wan2.2 wan/modules/vae2_2.py) exactly,
 * including its chunked causal processing: the encoder is fed frame 0 alone and then 4 frames at a time, the
 * decoder one latent frame at a time, and every causal conv keeps the last 2 input frames of the previous
 * chunk in a feature cache (with the reference's quirks: 'Rep' state of the temporal upsampler, single-frame
 * cache padding, first_chunk trimming in 2.2). Activations of one chunk live in preallocated buffers sized
 * from the layers' shapes (a planning pass that also counts the FLOPs), so memory does not grow with the number
 * of frames.
 *
 * Spatial tiling (optional): the latent plane is cut into overlapping tiles (sizes in LATENT units, models/tiles.h),
 * each tile runs the whole temporal pass with its own cache, and overlaps are blended with linear ramps.
 *
 * Memory spaces: the model runs on the calling thread's backend (hb_backend_use). Every video, latent and mid
 * tensor passed to or returned by encode / decode / the streaming decoder is in the CURRENT MEMORY SPACE
 * (hb_dev_alloc / hb_dev_upload; plain host memory for the CPU backend), and so are the model's activations,
 * feature caches and scratch, which it touches only through ops. Host side: the weights (mapped checkpoint or
 * the model's own buffers), the latent statistics (set_latent_stats / latent_mean / latent_std), sizes and
 * options. A streaming decoder is used and freed under the backend that created it.
 *
 * Weights are looked up by the official state-dict names (Wan2.1_VAE.pth / Wan2.2_VAE.pth:
 * "encoder.conv1.weight", "decoder.upsamples.0.upsamples.3.time_conv.weight", "conv1.weight", ...); the
 * diffusers AutoencoderKLWan names are accepted as aliases. */
#ifndef HB_MODELS_WAN_VAE_H
#define HB_MODELS_WAN_VAE_H

#include "core/core.h"
#include "io/checkpoint.h"
#include "models/frame_decoder.h"

typedef enum { HB_WAN_VAE_21 = 0, HB_WAN_VAE_22 = 1 } hb_wan_vae_variant;

#define HB_WAN_VAE_MAX_LEVELS 8
#define HB_WAN_VAE_MAX_BLOCKS (1 + HB_WAN_VAE_MAX_LEVELS)

typedef struct {
    hb_wan_vae_variant variant;
    int dim;            /* encoder base width (2.1: also the decoder's) */
    int dec_dim;        /* decoder base width (2.2); for 2.1 equal to dim */
    int z_dim;          /* latent channels (16 / 48) */
    int n_levels;       /* len(dim_mult) */
    int dim_mult[HB_WAN_VAE_MAX_LEVELS];
    int num_res_blocks;
    int n_tdown;        /* len(temperal_downsample) */
    bool temporal_down[HB_WAN_VAE_MAX_LEVELS]; /* encoder; the decoder uses the reverse */
} hb_wan_vae_config;

/* The official configs: 2.1 dim 96, z 16; 2.2 dim 160, dec_dim 256, z 48; dim_mult [1,2,4,4], 2 res blocks,
 * temperal_downsample [false, true, true]. */
void hb_wan_vae_config_default(hb_wan_vae_config *c, hb_wan_vae_variant v);
/* From the reference constructor's keyword arguments as JSON ({"dim":..,"z_dim":..,"dim_mult":[..],...});
 * variant "wan2.1" / "wan2.2". Missing keys take the official values. -1 + message on bad input. */
int hb_wan_vae_config_from_json(hb_wan_vae_config *c, const char *variant, const char *json);
/* Deduce the variant and widths of a checkpoint from its weight shapes (real checkpoints carry no config). */
int hb_wan_vae_config_infer(hb_wan_vae_config *c, const hb_checkpoint *ck);

typedef struct hb_wan_vae hb_wan_vae;

/* Load (weights stay in the checkpoint's mapping: keep ck open while the model lives). cfg NULL: inferred.
 * Every tensor is checked for presence and shape; errors name the file, the tensor and both shapes. */
hb_wan_vae *hb_wan_vae_load(const hb_checkpoint *ck, const hb_wan_vae_config *cfg);
/* Load from any weight source: fn is called once per weight with its official name and expected shape and
 * fills *out (data must stay valid while the model lives); non-zero return = error (message set by fn).
 * Used by the tests and the benchmark (random weights in memory) and to enumerate the weight list. */
typedef int (*hb_wan_vae_weight_fn)(void *user, const char *name, int ndim, const int64_t *shape, hb_tensor *out);
hb_wan_vae *hb_wan_vae_load_custom(const hb_wan_vae_config *cfg, hb_wan_vae_weight_fn fn, void *user);
/* A model with random weights of the given config (the model owns them): N(0, 1/fan_in) conv weights,
 * N(0, 0.01) biases, 1 + N(0, 0.01) gammas. For tests and benchmarks. */
hb_wan_vae *hb_wan_vae_create_random(const hb_wan_vae_config *cfg, uint64_t seed);
void hb_wan_vae_free(hb_wan_vae *m);
const hb_wan_vae_config *hb_wan_vae_get_config(const hb_wan_vae *m);

/* Latent normalisation: encode returns (mu - mean) * (1/std), decode starts from z * std + mean. The
 * official constants of the variant are set at load (for a z_dim other than 16/48: mean 0, std 1). mean/std:
 * host arrays of z_dim floats (copied). */
int hb_wan_vae_set_latent_stats(hb_wan_vae *m, const float *mean, const float *std);
const float *hb_wan_vae_latent_mean(const hb_wan_vae *m);
const float *hb_wan_vae_latent_std(const hb_wan_vae *m);
/* The built-in constants (z = 16 for 2.1, 48 for 2.2). */
const float *hb_wan_vae_official_mean(hb_wan_vae_variant v, int *z);
const float *hb_wan_vae_official_std(hb_wan_vae_variant v, int *z);

/* Spatial and temporal geometry. */
int hb_wan_vae_spatial_factor(const hb_wan_vae *m);  /* 8 (2.1) / 16 (2.2) */
int hb_wan_vae_temporal_factor(const hb_wan_vae *m); /* 4 */

/* Decoder blocks (feature taps for distillation, pipeline/train_decoder): block 0 is the mid block's output (after
 * its last residual block), block 1 + i up block i's output (after its residual blocks, upsampler and 2.2 stage
 * shortcut: the next block's input), in the reference's chunked causal decode of the whole clip. Count: 1 + levels.
 * The shape of block b for a latent of t x h x w; -1 + message for a block the decoder does not have. */
int hb_wan_vae_decoder_blocks(const hb_wan_vae *m);
int hb_wan_vae_block_shape(const hb_wan_vae *m, int block, int64_t t, int64_t h, int64_t w, int64_t shape[4]);

typedef struct {
    /* Spatial tiling in latent units: tile = 0 (or >= the latent size) runs untiled. overlap < tile. The tiles
     * and their blend are models/tiles.h's: tiles of exactly `tile` cells spread evenly, neighbours sharing at
     * least `overlap` cells. */
    int tile, overlap;
    /* Frames per chunk after the first (the first is always 1 frame): encoder video frames (a multiple of
     * the temporal factor; 0 = 4, the reference) and decoder latent frames (0 = 1, the reference). Larger
     * chunks give the same result and use more memory. */
    int enc_chunk, dec_chunk;
    bool raw;                 /* decode: do not clamp the video to [-1, 1] */
    /* (current memory space) */
    float *mu_logvar;         /* encode, optional: conv1 output [2z, t, h, w] (before normalisation) */
    float *dec_conv2;         /* decode, optional: conv2 output [z, t, h, w] (after de-normalisation) */
    /* decode, optional: decoder block b's output for the whole clip, [C, T, H, W] as hb_wan_vae_block_shape gives
     * (NULL: not wanted). Untiled decodes only; the video is the same bit for bit with or without them. */
    float *dec_blocks[HB_WAN_VAE_MAX_BLOCKS];
    hb_progress_fn progress;  /* optional progress callback (per chunk) */
    void *progress_user;
} hb_wan_vae_opts;

/* video [3, T, H, W] in [-1, 1] with T = 1 + 4k, H and W multiples of the spatial factor ->
 * latent [z, 1 + (T-1)/4, H/f, W/f]. video and latent in the current memory space (caller's); opts may be NULL.
 * Returns after the backend finished the work (hb_backend_sync; its errors are reported here). */
int hb_wan_vae_encode(hb_wan_vae *m, const float *video, int64_t T, int64_t H, int64_t W, float *latent,
                      const hb_wan_vae_opts *opts);
/* latent [z, t, h, w] -> video [3, 1 + 4(t-1), h*f, w*f], clamped to [-1, 1] unless opts->raw. latent and
 * video in the current memory space; synchronised like encode. */
int hb_wan_vae_decode(hb_wan_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video,
                      const hb_wan_vae_opts *opts);

/* Streaming decoder: decode a clip piece by piece with the feature caches kept between pushes; the result is
 * bitwise the same as hb_wan_vae_decode of the whole clip (with the default dec_chunk = 1; hb_wan_vae_decode
 * runs the same chunk code). Memory is fixed at creation and does not grow with the number of pushes
 * (hb_wan_vae_decoder_bytes). h, w: latent size; opts may be NULL (copied; raw and dec_chunk are used, spatial
 * tiling, dec_conv2, dec_blocks and progress are not: tiling and the mid outputs are refused with an error, tile
 * outside instead). The model must
 * outlive the decoder. */
typedef struct hb_wan_vae_decoder hb_wan_vae_decoder;
hb_wan_vae_decoder *hb_wan_vae_decoder_new(hb_wan_vae *m, int64_t h, int64_t w, const hb_wan_vae_opts *opts);
/* latent [z, n, h, w] -> video [3, frames_out, h*f, w*f], both in the current memory space (caller's): the
 * first push of a clip gives 1 + 4(n-1) frames, later pushes 4n. n = 0 does nothing. Synchronised like encode. */
int hb_wan_vae_decoder_push(hb_wan_vae_decoder *d, const float *latent, int64_t n, float *video, int64_t *frames_out);
/* Start a new clip (the next push is a first push). */
void hb_wan_vae_decoder_reset(hb_wan_vae_decoder *d);
/* Bytes held (arenas, feature caches, activation buffers). */
size_t hb_wan_vae_decoder_bytes(const hb_wan_vae_decoder *d);
void hb_wan_vae_decoder_free(hb_wan_vae_decoder *d);
/* The model as a frame decoder (models/frame_decoder.h): its states are streaming decoders (default options,
 * raw = opts.raw). */
void hb_wan_vae_frame_decoder(hb_wan_vae *m, hb_frame_decoder *out);

/* Working memory (bytes) an encode/decode of that size would reserve for activations, feature caches and
 * blending (not counting the caller's input/output nor the conv kernels' own scratch); all of it in the
 * current memory space except the blend weights (host). -1 cast on error. */
int64_t hb_wan_vae_encode_workspace(hb_wan_vae *m, int64_t T, int64_t H, int64_t W, const hb_wan_vae_opts *opts);
int64_t hb_wan_vae_decode_workspace(hb_wan_vae *m, int64_t t, int64_t h, int64_t w, const hb_wan_vae_opts *opts);

/* Multiply-add count x2 of the convolutions, attention and linear layers of one decode/encode (for GFLOP/s). */
double hb_wan_vae_decode_flops(const hb_wan_vae *m, int64_t t, int64_t h, int64_t w, const hb_wan_vae_opts *opts);
double hb_wan_vae_encode_flops(const hb_wan_vae *m, int64_t T, int64_t H, int64_t W, const hb_wan_vae_opts *opts);

#endif
