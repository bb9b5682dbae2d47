/* models/frame_decoder: the one interface of the latent-to-video decoders (Wan 2.1 / 2.2 VAE, the light VAE
 * decoder, TAEHV), so that a driver (pipeline/longdecode) runs any of them without knowing which.
 *
 * A decoder model describes itself (latent channels, temporal factor F, spatial factor S, causality, how many
 * frames its stream can hold back) and makes decoder states for a latent plane of h x w. A state decodes a clip
 * pushed piece by piece (push, then finish for the frames held back) or a whole clip at once (decode), into
 * buffers the caller owns:
 *   latents [z, n, h, w] float32, contiguous, normalised as the diffusion model produces them;
 *   frames  [3, nout, S h, S w] float32 in [-1, 1] (unclamped when the state was made raw, for decoders that
 *           have raw frames), contiguous.
 * Both live in the current memory space (device memory under a GPU backend); a state is used and freed under
 * the backend that made it. The first push of a clip gives 1 + F(n-1) frames and later pushes F n, except for a
 * decoder with a lookahead (max_held > 0), whose frames come out up to max_held late, the rest at finish.
 * A whole-clip decode gives 1 + F(n-1) frames. */
#ifndef HB_MODELS_FRAME_DECODER_H
#define HB_MODELS_FRAME_DECODER_H

#include "core/core.h"

typedef struct hb_frame_decoder_ops {
    /* A state for h x w latents; raw: frames not clamped to [-1, 1]. NULL + message on error. */
    void *(*create)(void *model, int64_t h, int64_t w, bool raw);
    /* n latents -> video (room for F n frames); *nout frames written. */
    int (*push)(void *st, const float *latent, int64_t n, float *video, int64_t *nout);
    /* The frames held back (room for max_held); the state then starts a new clip. */
    int (*finish)(void *st, float *video, int64_t *nout);
    /* A whole clip of n latents -> 1 + F(n-1) frames; the state then starts a new clip. */
    int (*decode)(void *st, const float *latent, int64_t n, float *video);
    void (*reset)(void *st); /* forget the clip: the next push starts a new one */
    size_t (*bytes)(const void *st);
    void (*free)(void *st);
    /* Working memory a whole-clip decode of n latents adds to the state's bytes (0: none). */
    int64_t (*decode_bytes)(const void *model, int64_t n, int64_t h, int64_t w);
} hb_frame_decoder_ops;

typedef struct {
    const hb_frame_decoder_ops *ops;
    void *model;          /* must outlive every state */
    const char *name;     /* for messages: "Wan VAE", "light VAE", "TAEHV" */
    int latent_channels;  /* z */
    int temporal_factor;  /* F: frames per latent */
    int spatial_factor;   /* S: pixels per latent cell */
    bool causal;          /* a frame depends only on latents up to its own */
    int64_t max_held;     /* most frames a finish gives (0: every push gives all its frames) */
    /* The release's own temporal tiles in video frames (0: none): long videos are decoded in tiles of
     * tile_frames / F + 1 latents every tile_stride / F, blending raw frames (pipeline/longdecode). */
    int tile_frames, tile_stride;
} hb_frame_decoder;

#endif
