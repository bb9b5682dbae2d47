/* models/tae: the TAEHV family of tiny video autoencoders (madebyollin/taehv `TAEHV`): TAEW2.1 (16-channel
 * latents, patch 1, 8x spatial) and TAEW2.2 (48-channel latents, patch 2, 16x spatial), encoder and decoder.
 *
 * Everything is a 2-D conv applied per frame; time is handled by MemBlocks (conv over [x_t, x_{t-1}]), TPool
 * (concatenate s frames along channels, 1x1 conv) and TGrow (1x1 conv to s*C channels, split along time).
 * The decoder turns T latents into 4T frames and drops the first 3 (4T - 3 frames, like the Wan VAE's
 * 1 + 4(T-1)); the encoder turns T frames (padded at the end with copies of the last one to a multiple of 4)
 * into ceil(T/4) latents. Video is in [0, 1] (map to [-1, 1] with x*2-1 where a pipeline needs it); latents
 * are the diffusion model's normalised latents (no scale/shift).
 *
 * Two execution orders give bitwise-identical results (every layer is evaluated frame by frame with the
 * same kernels): whole-clip (layer by layer over all frames, memory O(T)) and streaming (frame by frame,
 * depth first, memory independent of T: each MemBlock keeps one frame, each TPool up to s-1 frames).
 *
 * Layout: frames are [C, H, W] float32; a clip is [T, C, H, W] (the reference's NTCHW, batch dropped). The
 * streaming calls take a channel stride so a frame of a [C, T, H, W] tensor can be fed without a copy.
 *
 * Memory spaces: every latent / video / raw pointer of this API (inputs, outputs, and the rgb / raw / latent
 * pointers handed to the callbacks) is in the current memory space (device memory under a GPU backend: read
 * it with hb_dev_download or pass it to ops); activations and MemBlock / TPool memories live there too and are
 * touched only through ops, so the model runs unchanged on any backend. Weights stay host hb_tensors. */
#ifndef HB_MODELS_TAE_H
#define HB_MODELS_TAE_H

#include "core/core.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/frame_decoder.h"

/* The TAEHV constructor's options. patch_size / latent_channels 0 = take them from the weights. */
typedef struct hb_tae_config {
    int patch_size;                 /* 1 (TAEW2.1) or 2 (TAEW2.2) */
    int latent_channels;            /* 16 or 48 */
    bool encoder_time_downscale[3]; /* default true, true, false */
    bool decoder_time_upscale[3];   /* default false, true, true */
    bool decoder_space_upscale[3];  /* default true, true, true */
    /* Default (false): a 3x3 conv after 2x nearest upsampling runs as four 2x2 convs on the low-resolution
     * input (same function, 2.25x fewer multiply-adds, no full-size upsampled copy; the TGrow 1x1 conv in
     * between runs before the upsampling, which commutes). true: upsample then conv, literally as the
     * reference does. Both agree to float32 rounding (~1e-7 relative). */
    bool unfused_upsample;
} hb_tae_config;
void hb_tae_config_default(hb_tae_config *c);

enum { HB_TAE_ENCODER = 1, HB_TAE_DECODER = 2 };

typedef struct hb_tae hb_tae;

/* Build the model from a checkpoint holding the reference state_dict names (`decoder.1.weight`,
 * `decoder.3.conv.0.weight`, `decoder.7.conv.weight`, `encoder.2.conv.weight`, ...). Every channel count comes
 * from the weight shapes (any width works); `parts` says which halves are required (HB_TAE_ENCODER |
 * HB_TAE_DECODER). A TGrow weight with more rows than its stride needs keeps its last rows (the reference's
 * patch_tgrow_layers). cfg NULL = defaults. The weights point into `ck`, which must outlive the model.
 * NULL + message (naming the file, the tensor and both shapes) on a missing or mis-shaped weight. */
hb_tae *hb_tae_load(const hb_checkpoint *ck, const hb_tae_config *cfg, unsigned parts);
void hb_tae_free(hb_tae *m);

int hb_tae_patch_size(const hb_tae *m);
int hb_tae_latent_channels(const hb_tae *m);
int hb_tae_t_upscale(const hb_tae *m);    /* 4 */
int hb_tae_t_downscale(const hb_tae *m);  /* 4 */
int hb_tae_frames_to_trim(const hb_tae *m); /* t_upscale - 1 */
int hb_tae_space_scale(const hb_tae *m);  /* pixels per latent cell: 8 * patch (decoder), e.g. 8 or 16 */
bool hb_tae_has_encoder(const hb_tae *m);
bool hb_tae_has_decoder(const hb_tae *m);
/* Frame counts: 4T - 3 video frames for T latents (0 for T = 0); ceil(T/4) latents for T frames. */
int64_t hb_tae_decoded_frames(const hb_tae *m, int64_t T);
int64_t hb_tae_encoded_frames(const hb_tae *m, int64_t T);

/* Multiply-accumulates of one decoded latent (decoder: T = 1 latent -> t_upscale frames) or of one encoded
 * latent (encoder: t_downscale frames -> 1 latent), at latent size h x w (decoder) or frame size H x W
 * (encoder). For benchmarks. */
double hb_tae_decoder_macs(const hb_tae *m, int64_t h, int64_t w);
double hb_tae_encoder_macs(const hb_tae *m, int64_t H, int64_t W);

/* ---------- whole clip ----------
 * decode: latent [T, C, h, w] -> video [4T-3, 3, 8Ph, 8Pw] in [0, 1]; raw (optional, NULL to skip)
 *   [4T, 3P^2, 8h, 8w]: the last conv's output before pixel shuffle, clamp and trim.
 * encode: video [T, 3, H, W] (H, W multiples of 8P) -> latent [ceil(T/4), C, H/(8P), W/(8P)].
 * streaming=false runs layer by layer over the whole clip (the reference's parallel=True), streaming=true
 * frame by frame; the results are the same bit for bit. */
int hb_tae_decode_video(const hb_tae *m, const float *latent, int64_t T, int64_t h, int64_t w, float *video,
                        float *raw, bool streaming);
int hb_tae_encode_video(const hb_tae *m, const float *video, int64_t T, int64_t H, int64_t W, float *latent,
                        bool streaming);

/* ---------- streaming decoder ----------
 * Feed latent frames one at a time (or a few); every video frame they determine is handed to the callback
 * before the call returns (each latent gives 4 frames, the first latent 1 after the 3 startup frames are
 * dropped). Memory does not grow with the number of frames. */
typedef struct hb_tae_frame {
    int64_t index;     /* output frame index (after trimming); -1 for a dropped startup frame */
    int64_t raw_index; /* decoder frame index counting the dropped ones */
    const float *rgb;  /* [3, H, W] in [0, 1]; NULL for a dropped startup frame */
    const float *raw;  /* [3P^2, H/P, W/P]: the last conv's output (before pixel shuffle and clamp) */
    int64_t H, W;      /* size of rgb */
} hb_tae_frame;
/* Return 0 to go on, nonzero to stop (the push call then fails with that as an error). The pointers are
 * valid only during the call. */
typedef int (*hb_tae_frame_fn)(void *user, const hb_tae_frame *f);

typedef struct hb_tae_decoder hb_tae_decoder;
/* h, w: latent size. NULL + message on error (no decoder, out of memory). */
hb_tae_decoder *hb_tae_decoder_new(const hb_tae *m, int64_t h, int64_t w, hb_tae_frame_fn fn, void *user);
/* One latent frame [C, h, w] whose channels are `cstride` elements apart (0 = h*w, contiguous). */
int hb_tae_decoder_push(hb_tae_decoder *d, const float *latent, int64_t cstride);
/* n latent frames of a [C, T, h, w] tensor (frame_stride = h*w, cstride = T*h*w) or of [T, C, h, w]
 * (frame_stride = C*h*w, cstride = 0). */
int hb_tae_decoder_push_frames(hb_tae_decoder *d, const float *latent, int64_t n, int64_t frame_stride,
                               int64_t cstride);
/* Forget the past: the next push starts a new clip (startup frames are dropped again). */
void hb_tae_decoder_reset(hb_tae_decoder *d);
int64_t hb_tae_decoder_frames_out(const hb_tae_decoder *d); /* video frames emitted so far */
size_t hb_tae_decoder_bytes(const hb_tae_decoder *d);       /* memory it holds */
void hb_tae_decoder_free(hb_tae_decoder *d);
/* The decoder as a frame decoder (models/frame_decoder.h): frames mapped from [0, 1] to [-1, 1] with 2x - 1
 * (raw is ignored: the frames are clamped). -1 + message when the model has no decoder. */
int hb_tae_frame_decoder(const hb_tae *m, hb_frame_decoder *out);

/* ---------- streaming encoder ----------
 * Feed video frames [3, H, W] in [0, 1]; each 4 frames give one latent [C, H/(8P), W/(8P)] through the
 * callback. flush() pads with copies of the last frame to a multiple of 4 and emits the rest. */
typedef int (*hb_tae_latent_fn)(void *user, int64_t index, const float *latent, int64_t C, int64_t h, int64_t w);
typedef struct hb_tae_encoder hb_tae_encoder;
hb_tae_encoder *hb_tae_encoder_new(const hb_tae *m, int64_t H, int64_t W, hb_tae_latent_fn fn, void *user);
int hb_tae_encoder_push(hb_tae_encoder *e, const float *frame, int64_t cstride);
int hb_tae_encoder_flush(hb_tae_encoder *e);
void hb_tae_encoder_reset(hb_tae_encoder *e);
size_t hb_tae_encoder_bytes(const hb_tae_encoder *e);
void hb_tae_encoder_free(hb_tae_encoder *e);

/* The names and shapes of a TAEHV checkpoint's tensors (encoder and decoder, reference names, default time/space
 * flags) into ts[0..cap), each with its init role: HB_TAE_INIT_*_OUT marks the last decoder conv, which a random
 * writer scales so frames mostly land inside [0, 1]. Widths: enc_width (real 64) and dec_widths (real 256, 128,
 * 64, 64). Returns the count, or -1 + message. */
enum { HB_TAE_INIT_WEIGHT = 0, HB_TAE_INIT_BIAS = 1, HB_TAE_INIT_WEIGHT_OUT = 2, HB_TAE_INIT_BIAS_OUT = 3 };
#define HB_TAE_MAX_TENSORS 160
int hb_tae_weight_list(int patch, int latent_channels, int enc_width, const int dec_widths[4], hb_st_tensor *ts,
                       int cap);

#endif
