/* pipeline/longdecode: decode latent videos of any length with bounded memory, for every decoder behind the
 * frame-decoder interface (models/frame_decoder.h: Wan 2.1 / 2.2 VAE, light VAE causal / non-causal, TAEHV):
 * push latent frames in, video frames come out through a callback as soon as they are final. The driver knows
 * the decoder only through that interface: its factors, how many frames its stream holds back, and whether its
 * release has temporal tiles of its own.
 *
 * Modes:
 *  - HB_LD_CAUSAL (causal-cache): the latent is cut into non-overlapping clips of `clip` latent frames,
 *    pushed in order through the decoder's stream, which keeps its state (feature caches) between clips; a
 *    decoder with a lookahead (the light decoder, causal or not) gives its frames a few latents late and the
 *    rest at finish. Exactly equal to the whole-clip decode.
 *  - HB_LD_TILED (temporal tiling, any decoder): clips of `clip` latent frames start every clip - overlap latents;
 *    each is decoded independently and the frames two clips share (F(overlap-1)+1 frames) are blended with
 *    linear ramps whose weights sum to 1. A decoder whose release has its own temporal tiles (the light
 *    decoder) uses that schedule instead (hb_ld_light_tiling below), blending raw decoder outputs and clamping
 *    to [-1, 1] when frames are emitted.
 *  - Both modes can also cut the latent plane into overlapping spatial tiles (`tile`, `tile_overlap` in
 *    latent units; models/tiles.h); tile overlaps are blended with the same ramps (hb_tiles_ramp), normalised by
 *    the per-pixel weight sum.
 * Memory is set by clip and tile sizes only, never by the video length (hb_decoder_bytes).
 *
 * Latents are normalised [z, t, h, w] float32 as the diffusion model produces them; frames come out as
 * [3, n, H, W] in [-1, 1] (TAEHV's [0, 1] output is mapped with 2x - 1).
 *
 * Memory spaces: the latents given to hb_decoder_push / hb_decoder_run are in the current memory space (device
 * memory under a GPU backend), as are the decoder's buffers (pending latents, tiles, clip frames, carried
 * overlap frames, blend weight maps uploaded once), which it touches only through ops. The frames handed to
 * the emit callback are always HOST memory: with a host memory space they are the clip buffer itself (no
 * copy, as before); with a device space they are downloaded into a host stage of at most F frames (one
 * latent's worth, F = the temporal factor) and emitted in runs of at most F frames, so host memory stays
 * bounded and the callback quantises them on the host as before. Create, use and free a decoder under the
 * same backend. */
#ifndef HB_PIPELINE_LONGDECODE_H
#define HB_PIPELINE_LONGDECODE_H

#include "core/core.h"
#include "models/frame_decoder.h"
#include "models/light_vae.h"
#include "models/tae.h"
#include "models/wan_vae.h"

typedef enum { HB_LD_AUTO = 0, HB_LD_CAUSAL = 1, HB_LD_TILED = 2 } hb_ld_mode;
/* Temporal tiles of the light decoder (TILED mode): tiles of t_block_size / F + 1 latents every t_stride / F.
 *  ALIGNED (default): later tiles drop their FIRST decoded frame (the previous tile's last shared frame) and
 *    blend the next t_block_size - t_stride frames, which are aligned, with weights x/b;
 *  RELEASE: exactly the release's _temporal_tiled_decode: later tiles drop their LAST frame, blend
 *    prev[-b + x] (1 - x/b) + tile[x] x/b, stop after the tile with i + S + 1 == T, cut to 1 + F(T-1) frames
 *    (a one-frame shift after the first tile and the last frame lost; docs/light_vae.md). */
typedef enum { HB_LD_LIGHT_ALIGNED = 0, HB_LD_LIGHT_RELEASE = 1 } hb_ld_light_tiling;

typedef struct {
    hb_ld_mode mode;  /* AUTO: CAUSAL (every frame decoder streams) */
    int clip;         /* latent frames per clip (0: 4 causal, 8 tiled; light decoder tiles: t_block_size) */
    int overlap;      /* TILED: latent frames shared by consecutive clips, >= 1, clip >= 2 overlap (0: 2) */
    int tile;         /* spatial tile in latent cells (0: no spatial tiling) */
    int tile_overlap; /* latent cells shared by neighbouring tiles (0: tile / 4) */
    hb_ld_light_tiling light_tiling; /* light decoder, TILED mode */
    int t_block_size, t_stride;      /* light decoder tiles in video frames, multiples of F (0: 16 and 12) */
} hb_longdecode_opts;

/* Frames [t0, t0 + n) of the video, [3, n, H, W] (channel stride n*H*W), in HOST memory, valid during the
 * call. Return nonzero to stop (the push then fails). */
typedef int (*hb_decoder_emit_fn)(void *user, int64_t t0, int64_t n, const float *video, int64_t H, int64_t W);

typedef struct hb_decoder hb_decoder;

/* h, w: latent size. The model behind fd must outlive the decoder. NULL + message on error. The _wan / _light /
 * _tae forms take the model's frame decoder (hb_wan_vae_frame_decoder, ...). */
hb_decoder *hb_decoder_new(const hb_frame_decoder *fd, int64_t h, int64_t w, const hb_longdecode_opts *o,
                           hb_decoder_emit_fn fn, void *user);
hb_decoder *hb_decoder_new_wan(hb_wan_vae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                               hb_decoder_emit_fn fn, void *user);
hb_decoder *hb_decoder_new_light(const hb_light_vae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                                 hb_decoder_emit_fn fn, void *user);
hb_decoder *hb_decoder_new_tae(const hb_tae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                               hb_decoder_emit_fn fn, void *user);

/* n latent frames [z, n, h, w] whose channels are cstride elements apart (0 = n*h*w); frames h*w apart. */
int hb_decoder_push(hb_decoder *d, const float *latent, int64_t n, int64_t cstride);
/* Decode what is pending and emit the last frames. The decoder can then start a new video. */
int hb_decoder_finish(hb_decoder *d);
/* Convenience: push a whole [z, t, h, w] latent clip by clip, then finish. */
int hb_decoder_run(hb_decoder *d, const float *latent, int64_t t);

hb_ld_mode hb_decoder_mode(const hb_decoder *d);        /* the resolved mode */
int64_t hb_decoder_frames_out(const hb_decoder *d);     /* frames emitted so far */
int64_t hb_decoder_video_frames(const hb_decoder *d, int64_t t); /* 1 + F(t-1) */
void hb_decoder_video_size(const hb_decoder *d, int64_t *H, int64_t *W);
/* Bytes of working memory held: own buffers + the decoders' workspaces and caches (peak, all tiles). */
size_t hb_decoder_bytes(const hb_decoder *d);
void hb_decoder_free(hb_decoder *d);


#endif
