/* models/wan_causal: KV cache and causal forward of the Wan DiT (see wan_causal.h). */
#include "models/wan_causal.h"
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ cache */

int hb_wan_kv_cache_init(wan_kv_cache *c, int layers, int heads, int64_t dim, int64_t cap_tokens, int64_t frame_tokens,
                      int64_t sink_tokens, bool window, hb_dtype dtype, wan_rope_mode rope) {
    memset(c, 0, sizeof *c);
    if (layers <= 0 || heads <= 0 || dim <= 0 || dim % heads || cap_tokens <= 0 || frame_tokens <= 0)
        return hb_error("kv cache: bad size (layers %d, dim %lld, %lld tokens, %lld tokens per frame)", layers,
                        (long long)dim, (long long)cap_tokens, (long long)frame_tokens);
    if (dtype != HB_F32 && dtype != HB_BF16)
        return hb_error("kv cache: storage dtype must be F32 or BF16, not %s", hb_dtype_name(dtype));
    if (sink_tokens < 0 || (window && sink_tokens >= cap_tokens))
        return hb_error("kv cache: the sink (%lld tokens) must be smaller than the cache (%lld tokens)",
                        (long long)sink_tokens, (long long)cap_tokens);
    if (rope == WAN_ROPE_REL && (cap_tokens % frame_tokens || sink_tokens % frame_tokens))
        return hb_error("kv cache: relative RoPE needs whole frames in the cache and the sink");
    c->layers = layers; c->heads = heads; c->dim = dim; c->cap = cap_tokens; c->frame_tokens = frame_tokens;
    c->sink_tokens = window ? sink_tokens : 0;
    c->window = window; c->global_sink = true; c->rope = rope; c->dtype = dtype;
    size_t n = (size_t)layers * (size_t)cap_tokens * (size_t)dim * hb_dtype_size(dtype);
    /* The cache lives with the activations (device memory under a GPU backend). */
    c->k = hb_dev_alloc(n, "KV cache (K)");
    c->v = hb_dev_alloc(n, "KV cache (V)");
    if (!c->k || !c->v || hb_dev_zero(c->k, n) || hb_dev_zero(c->v, n)) { hb_wan_kv_cache_free(c); return -1; }
    if (dtype != HB_F32) {
        size_t s = sizeof(float) * (size_t)cap_tokens * (size_t)dim;
        c->sk = hb_dev_alloc(s, "KV staging (K)");
        c->sv = hb_dev_alloc(s, "KV staging (V)");
        if (!c->sk || !c->sv) { hb_wan_kv_cache_free(c); return -1; }
    }
    return 0;
}

void hb_wan_kv_cache_free(wan_kv_cache *c) {
    hb_dev_free(c->k); hb_dev_free(c->v); hb_dev_free(c->sk); hb_dev_free(c->sv);
    memset(c, 0, sizeof *c);
}

void hb_wan_kv_cache_reset(wan_kv_cache *c) { c->global_end = c->local_end = 0; }

size_t hb_wan_kv_cache_bytes(const wan_kv_cache *c) {
    size_t n = 2 * (size_t)c->layers * (size_t)c->cap * (size_t)c->dim * hb_dtype_size(c->dtype);
    if (c->sk) n += 2 * sizeof(float) * (size_t)c->cap * (size_t)c->dim;
    return n;
}

int hb_wan_kv_cache_plan(const wan_kv_cache *c, int64_t current_start, int64_t n_new, bool recompute, wan_kv_plan *p) {
    memset(p, 0, sizeof *p);
    if (n_new <= 0 || current_start < 0) return hb_error("kv cache: bad call (%lld tokens at %lld)", (long long)n_new,
                                                         (long long)current_start);
    if (current_start > c->global_end)
        return hb_error("kv cache: a call at token %lld leaves a gap after the cached end %lld", (long long)current_start,
                        (long long)c->global_end);
    if (n_new > c->cap) return hb_error("kv cache: %lld new tokens do not fit a %lld-token cache", (long long)n_new,
                                        (long long)c->cap);
    p->current_start = current_start;
    p->n_new = n_new;
    p->current_end = current_start + n_new;
    if (c->window && p->current_end > c->global_end && n_new + c->local_end > c->cap) {
        p->evict = true;
        p->n_evict = n_new + c->local_end - c->cap;
        p->n_roll = c->local_end - p->n_evict - c->sink_tokens;
        p->local_end = c->local_end + p->current_end - c->global_end - p->n_evict;
        if (p->n_roll < 0) return hb_error("kv cache: %lld new tokens would evict sink rows", (long long)n_new);
    } else {
        p->local_end = c->local_end + p->current_end - c->global_end;
    }
    p->local_start = p->local_end - n_new;
    if (p->local_start < 0)
        return hb_error("kv cache: a call at token %lld reaches before the oldest cached row (evicted)",
                        (long long)current_start);
    if (p->local_end > c->cap)
        return hb_error("kv cache: full (%lld tokens, no eviction without a window); a call ending at token %lld "
                        "does not fit", (long long)c->cap, (long long)p->current_end);
    /* LongLive v1.0: is_recompute = current_end <= global_end and current_start > 0; with global_sink the
     * sink rows are then not written */
    bool protect = recompute && c->global_sink && current_start > 0 && p->current_end <= c->global_end;
    p->write_start = (protect && p->local_start < c->sink_tokens) ? c->sink_tokens : p->local_start;
    if (p->write_start > p->local_end) p->write_start = p->local_end;
    return 0;
}

static void *layer_ptr(const wan_kv_cache *c, int which, int layer, int64_t row) {
    uint8_t *base = which ? c->v : c->k;
    return base + (((size_t)layer * (size_t)c->cap + (size_t)row) * (size_t)c->dim) * hb_dtype_size(c->dtype);
}

void hb_wan_kv_rope_shift(float *x, int64_t rows, int64_t dim, int heads, int head_dim, double delta) {
    int c = head_dim / 2;
    hb_rope_shift(x, rows, dim, heads, head_dim, c - 2 * (c / 3), delta);
}

void hb_wan_kv_cache_evict(wan_kv_cache *c, int layer, const wan_kv_plan *p) {
    if (!p->evict || p->n_roll <= 0) return;
    /* Rows roll down by n_evict: copied in blocks of at most n_evict rows, lowest first, so no block reads rows
     * an earlier block wrote (an overlapping move from copies that may run in parallel). Rows are moved as
     * raw bits, dim*size/4 floats each (dim is even). */
    const int64_t rowf = c->dim * (int64_t)hb_dtype_size(c->dtype) / 4;
    for (int which = 0; which < 2; which++)
        for (int64_t r = 0; r < p->n_roll; r += p->n_evict) {
            int64_t n = p->n_roll - r < p->n_evict ? p->n_roll - r : p->n_evict;
            hb_copy(layer_ptr(c, which, layer, c->sink_tokens + r),
                    layer_ptr(c, which, layer, c->sink_tokens + p->n_evict + r), n * rowf);
        }
    if (c->rope == WAN_ROPE_REL) {
        double delta = -(double)(p->n_evict / c->frame_tokens);
        int hd = (int)(c->dim / c->heads);
        void *k = layer_ptr(c, 0, layer, c->sink_tokens);
        if (c->dtype == HB_F32) {
            hb_wan_kv_rope_shift(k, p->n_roll, c->dim, c->heads, hd, delta);
        } else {
            hb_convert(c->sk, HB_F32, k, c->dtype, p->n_roll * c->dim);
            hb_wan_kv_rope_shift(c->sk, p->n_roll, c->dim, c->heads, hd, delta);
            hb_convert(k, c->dtype, c->sk, HB_F32, p->n_roll * c->dim);
        }
    }
}

void hb_wan_kv_cache_commit(wan_kv_cache *c, const wan_kv_plan *p) {
    c->global_end = p->current_end;
    c->local_end = p->local_end;
}

void hb_wan_kv_cache_read(const wan_kv_cache *c, int layer, int which, int64_t row0, int64_t n, float *dst) {
    hb_convert(dst, HB_F32, layer_ptr(c, which, layer, row0), c->dtype, n * c->dim);
}

/* ------------------------------------------------------------------ causal model */

wan_causal *hb_wan_causal_new(const wan_dit *m, const wan_causal_config *cfg) {
    const wan_dit_config *mc = &m->cfg;
    if (mc->patch[0] != 1) { hb_error("wan_causal: the temporal patch must be 1 (got %d)", mc->patch[0]); return NULL; }
    if (cfg->H <= 0 || cfg->W <= 0 || cfg->H % mc->patch[1] || cfg->W % mc->patch[2]) {
        hb_error("wan_causal: latent size %lldx%lld is not a positive multiple of the patch %dx%d", (long long)cfg->H,
                 (long long)cfg->W, mc->patch[1], mc->patch[2]);
        return NULL;
    }
    if (cfg->max_chunk_frames <= 0) { hb_error("wan_causal: max_chunk_frames must be positive"); return NULL; }
    wan_causal *c = hb_calloc(sizeof *c, "wan_causal");
    if (!c) return NULL;
    c->m = m;
    c->cfg = *cfg;
    c->Hp = cfg->H / mc->patch[1];
    c->Wp = cfg->W / mc->patch[2];
    c->frame_tokens = c->Hp * c->Wp;
    int64_t cap = cfg->cache_tokens > 0 ? cfg->cache_tokens : cfg->cache_frames * c->frame_tokens;
    if (cap <= 0) { hb_error("wan_causal: the cache must hold at least one frame"); goto fail; }
    if (cfg->max_chunk_frames * c->frame_tokens > cap) {
        hb_error("wan_causal: the cache (%lld tokens) must hold a chunk (%lld frames)", (long long)cap,
                 (long long)cfg->max_chunk_frames);
        goto fail;
    }
    if (hb_wan_kv_cache_init(&c->cache, mc->num_layers, mc->num_heads, mc->dim, cap, c->frame_tokens, cfg->sink_frames * c->frame_tokens,
                          cfg->window, cfg->cache_dtype, cfg->rope))
        goto fail;
    c->cache.global_sink = cfg->global_sink;
    c->max_tokens = cfg->max_chunk_frames * c->frame_tokens;
    if (hb_arena_init_dev(&c->arena, hb_wan_dit_workspace_bytes(mc, c->max_tokens, cfg->max_chunk_frames, true),
                          "wan_causal activations"))
        goto fail;
    return c;
fail:
    hb_wan_causal_free(c);
    return NULL;
}

void hb_wan_causal_free(wan_causal *c) {
    if (!c) return;
    hb_wan_kv_cache_free(&c->cache);
    if (c->have_text) hb_wan_dit_text_free(&c->text);
    if (c->arena.base) hb_arena_free(&c->arena);
    hb_free(c);
}

size_t hb_wan_causal_bytes(const wan_causal *c) {
    size_t n = hb_wan_kv_cache_bytes(&c->cache) + c->arena.cap;
    if (c->have_text) {
        size_t T = (size_t)c->text.len, D = (size_t)c->m->cfg.dim;
        n += sizeof(float) * T * D * (1 + (c->text.k ? 2 * (size_t)c->m->cfg.num_layers : 0));
    }
    return n;
}

int hb_wan_causal_set_prompt(wan_causal *c, const float *context, int64_t ctx_len) {
    if (c->have_text) { hb_wan_dit_text_free(&c->text); c->have_text = false; }
    if (hb_wan_dit_text_prepare(c->m, context, ctx_len, true, &c->text, NULL, NULL)) return -1;
    c->have_text = true;
    return 0;
}

int64_t hb_wan_causal_recache_skip(const wan_causal *c, int64_t f_start, int64_t f_end) {
    wan_kv_plan p;
    const int64_t ft = c->frame_tokens;
    if (f_end <= f_start) return 0;
    if (hb_wan_kv_cache_plan(&c->cache, f_start * ft, (f_end - f_start) * ft, true, &p)) return 0;
    return (p.write_start - p.local_start + ft - 1) / ft;
}

int hb_wan_causal_forward(wan_causal *c, const float *x, int64_t F, const float *t, int64_t current_start_frame,
                       bool recompute, float *flow, wan_dit_tap_fn tap, void *tap_user) {
    const wan_dit *m = c->m;
    const wan_dit_config *mc = &m->cfg;
    const int64_t D = mc->dim, ft = c->frame_tokens, L = F * ft, T = mc->text_len;
    wan_kv_cache *kc = &c->cache;
    if (!c->have_text) return hb_error("wan_causal: no prompt set");
    if (F <= 0 || L > c->max_tokens)
        return hb_error("wan_causal: %lld frames per call; this state was sized for at most %lld", (long long)F,
                        (long long)c->cfg.max_chunk_frames);
    wan_kv_plan p;
    if (hb_wan_kv_cache_plan(kc, current_start_frame * ft, L, recompute, &p)) return -1;
    if (p.write_start != p.local_start)
        return hb_error("wan_causal: a re-cache call must not cover the protected sink rows (drop the first %lld "
                        "frames)", (long long)((p.write_start - p.local_start) / ft));
    int f0;
    if (kc->rope == WAN_ROPE_ABS) {
        if (current_start_frame + F > WAN_ROPE_TABLE)
            return hb_error("wan_causal: latent frame %lld is past the %d-position RoPE table of absolute mode; use "
                            "relative RoPE (--rope rel) for longer videos", (long long)(current_start_frame + F - 1),
                            WAN_ROPE_TABLE);
        f0 = (int)current_start_frame;
    } else {
        f0 = (int)(p.local_start / ft);
    }
    size_t mark = hb_arena_mark(&c->arena);
    wan_dit_bufs b;
    int rc = -1;
    if (hb_wan_dit_bufs_alloc(m, L, F, true, &c->arena, &b)) goto done;
    hb_wan_dit_patchify(mc, x, F, c->cfg.H, c->cfg.W, b.rows);
    if (hb_linear(b.x, b.rows, L, &m->patch_w, &m->patch_b, false)) goto done;
    if (hb_wan_dit_time_embed(m, t, F, b.e, b.e0, b.ttmp)) goto done;
    const hb_modgroups ge = {ft, D}, ge0 = {ft, 6 * D};
    if (tap) {
        tap(tap_user, "patch_embedding", b.x, L, D, NULL);
        tap(tap_user, "time_embedding", b.e, L, D, &ge);
        tap(tap_user, "time_projection", b.e0, L, 6 * D, &ge0);
    }
    const bool staged = kc->dtype != HB_F32;
    for (int l = 0; l < mc->num_layers; l++) {
        hb_wan_kv_cache_evict(kc, l, &p);
        float *kk, *vv;
        if (staged) {
            kk = kc->sk; vv = kc->sv;
            hb_convert(kk, HB_F32, layer_ptr(kc, 0, l, 0), kc->dtype, p.local_start * D);
            hb_convert(vv, HB_F32, layer_ptr(kc, 1, l, 0), kc->dtype, p.local_start * D);
        } else {
            kk = layer_ptr(kc, 0, l, 0); vv = layer_ptr(kc, 1, l, 0);
        }
        wan_dit_block_args ba = {0};
        ba.L = L; ba.H = c->Hp; ba.W = c->Wp; ba.f0 = f0;
        ba.e0 = b.e0; ba.g = ge0;
        ba.ctx_k = c->text.k + (int64_t)l * T * D;
        ba.ctx_v = c->text.v + (int64_t)l * T * D;
        ba.ctx_len = T;
        ba.kv_k = kk; ba.kv_v = vv;
        ba.kv_write = p.local_start; ba.kv_start = 0; ba.kv_end = p.local_end;
        ba.tap = tap; ba.tap_user = tap_user;
        if (hb_wan_dit_block(m, l, b.x, &ba, &b.ws)) goto done;
        if (staged) {
            hb_convert(layer_ptr(kc, 0, l, p.local_start), kc->dtype, kk + p.local_start * D, HB_F32, L * D);
            hb_convert(layer_ptr(kc, 1, l, p.local_start), kc->dtype, vv + p.local_start * D, HB_F32, L * D);
        }
    }
    hb_wan_kv_cache_commit(kc, &p);
    if (flow) {
        if (hb_wan_dit_head(m, b.x, L, b.e, ge, b.tok, &b.ws)) goto done;
        if (tap) tap(tap_user, "head", b.tok, L, (int64_t)mc->patch[1] * mc->patch[2] * mc->out_dim, NULL);
        hb_wan_dit_unpatchify(mc, b.tok, F, c->cfg.H, c->cfg.W, flow);
    }
    rc = 0;
done:
    hb_arena_reset(&c->arena, mark);
    return rc;
}
