/* models/wan_causal: the causal (KV-cache) mode of the Wan DiT used by Self-Forcing / LongLive (Wan-2.1-1.3B
 * "Hummingbird-XTX"): a chunk of F latent frames with per-frame timesteps attends to itself and to the cached
 * self-attention K/V of earlier chunks; the cross-attention K/V are computed once per prompt.
 *
 * The forward is built from the pieces of models/wan_dit.h (time embedding, block with caller-owned K/V
 * cache, head); this file owns the cache (in the backend's memory, like every activation: on the GPU under a
 * GPU backend; rolled and re-roped with ops) and its bookkeeping, which follows the references'
 * CausalWanSelfAttention exactly (Self-Forcing wan/modules/causal_model.py, LongLive v1.0):
 *   - per layer K [cap, dim], V [cap, dim] (K after qk-norm and RoPE), indices global_end (absolute token
 *     index of the end of what has been cached) and local_end (end of the valid rows of the cache);
 *   - a call at token offset current_start with n new tokens: current_end = current_start + n;
 *     eviction (window mode only) when current_end > global_end and n + local_end > cap:
 *       n_evict = n + local_end - cap, n_roll = local_end - n_evict - sink,
 *       rows [sink + n_evict, sink + n_evict + n_roll) move down to [sink, sink + n_roll) (sink rows never move),
 *       local_end += current_end - global_end - n_evict;
 *     otherwise local_end += current_end - global_end (a repeated call on the same chunk overwrites its
 *     slots); the new K/V go to [local_end - n, local_end) and attention covers [0, local_end) (no mask);
 *     then global_end = current_end.
 *   - "recompute" calls (LongLive's KV re-cache after a prompt switch) with global_sink and current_start > 0
 *     (v1.0's is_recompute = current_end <= global_end and current_start > 0) never write the sink rows; the
 *     regular denoise/refresh calls are never treated as recompute (as the golden files were made: the
 *     non-interactive pipeline's cache has no global_sink entry).
 * The attention budget (max_attention_size) is the cache size, as both references configure it.
 *
 * RoPE: WAN_ROPE_ABS ropes every frame at its absolute index (start_frame = current_start / frame tokens;
 * the reference table has 1024 positions, so frames >= 1024 are refused). WAN_ROPE_REL is the Hummingbird-XTX
 * release's cache (keys cached before RoPE, re-roped at 0..n-1 of the attended set every call) and LongLive's
 * "infinity" scheme, computed incrementally: cached keys are roped at their cache slot (frame index inside the cache, sink = 0..s-1,
 * window after it) and queries at the slots they are written to; when eviction moves rows down by e frames,
 * their keys are rotated back by e frame positions (identical offsets to re-roping un-roped keys every
 * forward, at one rotation per eviction). Positions stay below cap frames, so length is unbounded.
 *
 * Storage dtype: F32 or BF16 (default for generation: half the memory). With BF16 the cached rows are
 * expanded into an f32 staging buffer per layer for attention, the new rows are rounded once when stored. */
#ifndef HB_MODELS_WAN_CAUSAL_H
#define HB_MODELS_WAN_CAUSAL_H

#include "models/wan_dit.h"

#define WAN_ROPE_TABLE 1024 /* positions of the reference rope_params tables */

typedef enum { WAN_ROPE_ABS = 0, WAN_ROPE_REL = 1 } wan_rope_mode;

typedef struct wan_kv_cache {
    int layers, heads;
    int64_t dim, cap;          /* tokens per layer */
    int64_t frame_tokens;      /* tokens per latent frame (frame_seq_length) */
    int64_t sink_tokens;
    bool window;               /* local_attn_size != -1: evict when full */
    bool global_sink;          /* recompute calls never write the sink rows (LongLive global_sink) */
    wan_rope_mode rope;
    hb_dtype dtype;            /* HB_F32 or HB_BF16 */
    void *k, *v;               /* [layers, cap, dim] each */
    int64_t global_end, local_end;
    float *sk, *sv;            /* f32 staging [cap, dim] (BF16 storage only) */
} wan_kv_cache;

/* The bookkeeping of one call, the same for every layer. */
typedef struct wan_kv_plan {
    int64_t current_start, current_end, n_new;
    bool evict;
    int64_t n_evict, n_roll;
    int64_t local_start, local_end;   /* rows of the new tokens after the call */
    int64_t write_start;              /* first row written (> local_start only for a sink-protected recompute) */
} wan_kv_plan;

/* cap_tokens per layer; sink_tokens kept forever in window mode. dtype HB_F32 or HB_BF16. */
int hb_wan_kv_cache_init(wan_kv_cache *c, int layers, int heads, int64_t dim, int64_t cap_tokens, int64_t frame_tokens,
                      int64_t sink_tokens, bool window, hb_dtype dtype, wan_rope_mode rope);
void hb_wan_kv_cache_free(wan_kv_cache *c);
/* Empty the cache (indices to 0). */
void hb_wan_kv_cache_reset(wan_kv_cache *c);
/* Bytes held (K/V storage + staging). */
size_t hb_wan_kv_cache_bytes(const wan_kv_cache *c);
/* Plan a call writing n_new tokens at absolute token offset current_start (see the header comment).
 * -1 + message when the call does not fit (global cache full, or current_start beyond global_end). */
int hb_wan_kv_cache_plan(const wan_kv_cache *c, int64_t current_start, int64_t n_new, bool recompute, wan_kv_plan *p);
/* Eviction of one layer (rows roll down after the sink; relative RoPE: rolled keys re-roped). No-op when
 * the plan has no eviction. */
void hb_wan_kv_cache_evict(wan_kv_cache *c, int layer, const wan_kv_plan *p);
/* After all layers: global_end = current_end, local_end = plan's. */
void hb_wan_kv_cache_commit(wan_kv_cache *c, const wan_kv_plan *p);
/* Copy rows [row0, row0+n) of layer's K (which=0) or V (which=1) as f32 into dst [n, dim]. */
void hb_wan_kv_cache_read(const wan_kv_cache *c, int layer, int which, int64_t row0, int64_t n, float *dst);

/* Rotate the frame-axis RoPE channels of keys x [rows, dim] (row stride dim) by `delta` frame positions
 * (angles and products in float64, as hb_rope3d). */
void hb_wan_kv_rope_shift(float *x, int64_t rows, int64_t dim, int heads, int head_dim, double delta);

/* ---------- the causal model ---------- */
typedef struct wan_causal_config {
    int64_t H, W;               /* latent height/width (multiples of the patch) */
    int64_t max_chunk_frames;   /* largest F of one call (workspace size) */
    int64_t cache_frames;       /* cache length in latent frames (window: local_attn_size) */
    int64_t sink_frames;        /* window mode: frames kept forever */
    bool window;                /* evict when full (local_attn_size != -1) */
    bool global_sink;           /* default true (LongLive inference) */
    hb_dtype cache_dtype;       /* HB_F32 or HB_BF16 */
    wan_rope_mode rope;
    int64_t cache_tokens;       /* optional: exact cache length in tokens (golden files); 0 = cache_frames * frame */
} wan_causal_config;

typedef struct wan_causal {
    const wan_dit *m;
    wan_causal_config cfg;
    int64_t Hp, Wp, frame_tokens;
    wan_kv_cache cache;
    wan_dit_text text;
    bool have_text;
    hb_arena arena;
    int64_t max_tokens;
} wan_causal;

/* The model is borrowed (must outlive the causal state). */
wan_causal *hb_wan_causal_new(const wan_dit *m, const wan_causal_config *cfg);
void hb_wan_causal_free(wan_causal *c);
/* Bytes held by the state (cache + workspace + prompt). */
size_t hb_wan_causal_bytes(const wan_causal *c);
/* Set / replace the prompt: text embedding and every layer's cross-attention K/V (context [ctx_len, text_dim]). */
int hb_wan_causal_set_prompt(wan_causal *c, const float *context, int64_t ctx_len);

/* One call: x [in_dim, F, H, W] (the chunk's latent, backend memory), t [F] per-frame timesteps (host), at latent frame
 * current_start_frame. flow [out_dim, F, H, W] (may be NULL: only the cache is updated). recompute: a
 * LongLive KV re-cache call (sink rows protected; the caller passes only frames whose slots lie after the
 * sink, see hb_wan_causal_recache_skip). tap: layer-0 style observer of intermediates (may be NULL). */
int hb_wan_causal_forward(wan_causal *c, const float *x, int64_t F, const float *t, int64_t current_start_frame,
                       bool recompute, float *flow, wan_dit_tap_fn tap, void *tap_user);
/* For a recompute of frames [f_start, f_end) (f_end = frames generated so far): how many leading frames
 * would land in protected sink rows (their K/V are never stored and they do not influence the others, so
 * the caller drops them). */
int64_t hb_wan_causal_recache_skip(const wan_causal *c, int64_t f_start, int64_t f_end);

#endif
