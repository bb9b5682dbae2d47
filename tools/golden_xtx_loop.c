/* Golden runner for kind xtx_loop: the release's Hummingbird-XTX chunk loop (CausalInferencePipeline.inference)
 * run through the engine's own loop, hb_ar_generate, with every noise tensor taken from the file (in.noise for
 * each chunk's start, in.callNN.noise for each re-noise) instead of the generator. The DiT is built from the
 * metadata `config`; chunk, window (local_attn_size, sink included), sink, steps, warp, shift, context noise and
 * chunk count come from the metadata too; tokens per frame from the latent size. The release caches keys before
 * RoPE and re-ropes them at positions 0..n-1 of the attended set: the engine's relative RoPE (keys roped at
 * their cache slot, rotated back on eviction) is the same mathematics, so the loop runs with WAN_ROPE_REL.
 * Compared: out.timesteps, every call's out.callNN.x / .flow / .x0 and mid.callNN.kv0_index, every chunk's
 * out.chunkK.x0 and its cache after the refresh (mid.chunkK.kv0_k_roped: what a slot-roped cache holds,
 * kv0_v, kv0_index), and out.latents. */
#include "golden.h"
#include "pipeline/ar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    golden_case *g;
    json_t *calls;               /* metadata `calls` */
    int64_t C, F, H, W, S, nchunks, ncalls, frames, D;
    float *noise;                /* in.noise [C, frames, H, W] (host) */
    float *slice;                /* one chunk [C, F, H, W] (host) */
    float *ts;                   /* [ncalls, F] timesteps fed */
    float *latents;              /* [C, frames, H, W] (host) */
    float *kv;                   /* layer-0 cache rows (backend memory) */
} xtx_run;

static int64_t meta_i64(golden_case *g, const char *key, int64_t def) {
    json_t *v = golden_meta_json(g, key);
    int64_t r = json_is_integer(v) ? json_integer_value(v) : json_is_real(v) ? (int64_t)json_real_value(v) : def;
    json_decref(v);
    return r;
}

/* The index of the call of chunk k with this kind and step in metadata `calls` (-1 if none). */
static int64_t call_index(const xtx_run *x, int64_t chunk, const char *kind, int step) {
    const bool refresh = !strcmp(kind, "refresh");
    for (size_t i = 0; i < json_array_size(x->calls); i++) {
        json_t *c = json_array_get(x->calls, i);
        const char *k = json_string_value(json_object_get(c, "kind"));
        if (k && !strcmp(k, kind) && json_integer_value(json_object_get(c, "chunk")) == chunk &&
            (refresh || json_integer_value(json_object_get(c, "step")) == step))
            return json_integer_value(json_object_get(c, "index"));
    }
    return -1;
}

/* The release's noise: chunk k starts from in.noise[:, kF:(k+1)F]; re-noise s is in.callNN.noise. */
static int noise_cb(void *user, int64_t chunk, int step, float *dst, int64_t n) {
    xtx_run *x = user;
    const int64_t hw = x->H * x->W, fr = n / (x->C * hw);
    if (step == 0) {
        for (int64_t c = 0; c < x->C; c++)
            memcpy(x->slice + c * fr * hw, x->noise + (c * x->frames + chunk * x->F) * hw, sizeof(float) * (size_t)(fr * hw));
        return hb_dev_upload(dst, x->slice, sizeof(float) * (size_t)n);
    }
    int64_t idx = call_index(x, chunk, "denoise", step);
    char nm[64];
    snprintf(nm, sizeof nm, "in.call%02lld.noise", (long long)idx);
    hb_tensor t;
    float *h = golden_tensor_f32(x->g, nm, &t);
    if (!h) return -1;
    int rc = hb_tensor_numel(&t) != n ? hb_error("%s: %s has %lld values, the chunk %lld", x->g->path, nm,
                                                (long long)hb_tensor_numel(&t), (long long)n)
                                      : hb_dev_upload(dst, h, sizeof(float) * (size_t)n);
    hb_free(h);
    return rc;
}

/* Layer 0's valid cache rows and indices, compared under `prefix` (mid.callNN / mid.chunkK). */
static void compare_cache(xtx_run *x, const wan_causal *cs, const char *prefix, bool rows) {
    char nm[80];
    if (rows) {
        int64_t nv = cs->cache.local_end;
        hb_wan_kv_cache_read(&cs->cache, 0, 0, 0, nv, x->kv);
        snprintf(nm, sizeof nm, "%s.kv0_k_roped", prefix);
        golden_compare(x->g, nm, x->kv, nv * x->D);
        hb_wan_kv_cache_read(&cs->cache, 0, 1, 0, nv, x->kv);
        snprintf(nm, sizeof nm, "%s.kv0_v", prefix);
        golden_compare(x->g, nm, x->kv, nv * x->D);
    }
    int64_t idx[2] = {cs->cache.global_end, cs->cache.local_end};
    snprintf(nm, sizeof nm, "%s.kv0_index", prefix);
    golden_compare_i64(x->g, nm, idx, 2);
}

static int call_cb(void *user, const hb_ar_call *c) {
    xtx_run *x = user;
    const char *kind = c->step == HB_AR_REFRESH ? "refresh" : "denoise";
    int64_t i = c->index;
    if (c->step == HB_AR_RECACHE || i >= x->ncalls || call_index(x, c->chunk, kind, c->step) != i) {
        return hb_error("%s: forward %lld (chunk %lld, %s step %d) is not the file's call %lld", x->g->path, (long long)i,
                        (long long)c->chunk, kind, c->step, (long long)i);
    }
    for (int64_t f = 0; f < c->F && f < x->F; f++) x->ts[i * x->F + f] = c->t[f];
    const int64_t n = x->C * c->F * x->H * x->W;
    char nm[64], pre[32];
    snprintf(nm, sizeof nm, "out.call%02lld.x", (long long)i);
    golden_compare(x->g, nm, c->x, n);
    snprintf(nm, sizeof nm, "out.call%02lld.flow", (long long)i);
    golden_compare(x->g, nm, c->flow, n);
    snprintf(nm, sizeof nm, "out.call%02lld.x0", (long long)i);
    golden_compare(x->g, nm, c->x0, n);
    snprintf(pre, sizeof pre, "mid.call%02lld", (long long)i);
    compare_cache(x, c->state, pre, false);
    if (c->step == HB_AR_REFRESH) {
        snprintf(pre, sizeof pre, "mid.chunk%lld", (long long)c->chunk);
        compare_cache(x, c->state, pre, true);
    }
    return 0;
}

static int chunk_cb(void *user, int64_t chunk, int64_t frame0, int64_t F, const float *x0) {
    xtx_run *x = user;
    char nm[64];
    snprintf(nm, sizeof nm, "out.chunk%lld.x0", (long long)chunk);
    golden_compare(x->g, nm, x0, x->C * F * x->H * x->W);
    const int64_t hw = x->H * x->W;
    if (hb_dev_download(x->slice, x0, sizeof(float) * (size_t)(x->C * F * hw))) return -1;
    for (int64_t c = 0; c < x->C; c++)
        memcpy(x->latents + (c * x->frames + frame0) * hw, x->slice + c * F * hw, sizeof(float) * (size_t)(F * hw));
    return 0;
}

/* The pipeline settings of the metadata into the loop's options. */
static int read_settings(golden_case *g, xtx_run *x, hb_ar_opts *o) {
    json_t *pc = golden_meta_json(g, "pipeline_config"), *steps = golden_meta_json(g, "denoising_step_list");
    int rc = -1;
    x->F = meta_i64(g, "num_frame_per_block", -1);
    x->nchunks = meta_i64(g, "num_chunks", -1);
    int64_t local = meta_i64(g, "local_attn_size", golden_cfg_int(g, "local_attn_size", -1));
    int64_t sink = meta_i64(g, "sink_size", golden_cfg_int(g, "sink_size", 0));
    if (x->F <= 0 || x->nchunks <= 0) { hb_error("%s: metadata num_frame_per_block / num_chunks missing", g->path); goto done; }
    if (!json_is_array(steps) || json_array_size(steps) < 1 || json_array_size(steps) > HB_AR_MAX_STEPS) {
        hb_error("%s: metadata denoising_step_list must be a list of 1..%d timesteps", g->path, HB_AR_MAX_STEPS);
        goto done;
    }
    if (json_is_true(json_object_get(pc, "independent_first_frame"))) {
        hb_error("%s: independent_first_frame is not supported", g->path);
        goto done;
    }
    x->S = (int64_t)json_array_size(steps);
    for (size_t k = 0; k < json_array_size(steps); k++) o->steps_list[k] = (int64_t)json_number_value(json_array_get(steps, k));
    o->nsteps = (int)x->S;
    o->raw_steps = json_is_false(json_object_get(pc, "warp_denoising_step"));
    o->shift = golden_meta_num(g, "timestep_shift", 5.0);
    o->context_noise = (float)golden_meta_num(g, "context_noise", 0.0);
    o->chunk = x->F;
    o->window = local > 0 ? local : 0;
    o->sink = local > 0 ? sink : 0;
    o->rope = WAN_ROPE_REL;
    o->cache_dtype = HB_F32;
    o->refresh_last = true;
    rc = 0;
done:
    json_decref(pc);
    json_decref(steps);
    return rc;
}

int golden_run_xtx_loop(golden_case *g) {
    wan_dit_config cfg;
    if (golden_wan_dit_config(g, &cfg)) return -1;
    xtx_run x = {.g = g, .C = cfg.in_dim, .D = cfg.dim};
    hb_ar_opts o;
    hb_ar_opts_default(&o);
    wan_dit *m = NULL;
    float *ctx = NULL;
    int rc = -1;
    x.calls = golden_meta_json(g, "calls");
    if (!json_is_array(x.calls) || json_array_size(x.calls) == 0) { hb_error("%s: metadata 'calls' is missing", g->path); goto done; }
    x.ncalls = (int64_t)json_array_size(x.calls);
    if (read_settings(g, &x, &o)) goto done;
    hb_tensor tn, tc;
    if (!(x.noise = golden_tensor_f32(g, "in.noise", &tn))) goto done;
    if (tn.ndim != 4 || tn.shape[0] != x.C || tn.shape[1] != x.F * x.nchunks) {
        hb_error("%s: in.noise must be [%lld, %lld, H, W]", g->path, (long long)x.C, (long long)(x.F * x.nchunks));
        goto done;
    }
    x.frames = tn.shape[1]; x.H = tn.shape[2]; x.W = tn.shape[3];
    if (x.ncalls != (x.S + 1) * x.nchunks) { hb_error("%s: %lld calls, expected (steps + 1) * chunks", g->path, (long long)x.ncalls); goto done; }
    if (!(ctx = golden_tensor_dev(g, "in.context", &tc))) goto done;
    if (tc.ndim != 2 || tc.shape[1] != cfg.text_dim) { hb_error("%s: in.context must be [L, %d]", g->path, cfg.text_dim); goto done; }
    const size_t nchunk = sizeof(float) * (size_t)(x.C * x.F * x.H * x.W);
    x.slice = hb_malloc(nchunk, "xtx chunk");
    x.ts = hb_malloc(sizeof(float) * (size_t)(x.ncalls * x.F), "xtx timesteps");
    x.latents = hb_malloc(sizeof(float) * (size_t)(x.C * x.frames * x.H * x.W), "xtx latents");
    x.kv = hb_dev_alloc(sizeof(float) * (size_t)((o.window > 0 ? o.window : x.frames) * (x.H / cfg.patch[1]) *
                                                 (x.W / cfg.patch[2]) * x.D), "xtx kv0");
    if (!x.slice || !x.ts || !x.latents || !x.kv) goto done;
    if (!(m = hb_wan_dit_from_checkpoint(g->ck, &cfg))) goto done;
    hb_ar_cond cond = {0, ctx, tc.shape[0]};
    o.H = x.H; o.W = x.W; o.frames = x.frames;
    o.conds = &cond; o.nconds = 1;
    o.noise = noise_cb; o.noise_user = &x;
    o.on_call = call_cb; o.call_user = &x;
    o.on_chunk = chunk_cb; o.user = &x;
    if (hb_ar_generate(m, &o)) { hb_error_prefix("%s: ", g->path); goto done; }
    if (o.forwards != x.ncalls) { hb_error("%s: %lld forwards, the file has %lld calls", g->path, (long long)o.forwards, (long long)x.ncalls); goto done; }
    golden_compare_host(g, "out.timesteps", x.ts, x.ncalls * x.F);
    golden_compare_host(g, "out.latents", x.latents, x.C * x.frames * x.H * x.W);
    rc = 0;
done:
    json_decref(x.calls);
    hb_wan_dit_free(m);
    hb_dev_free(ctx);
    hb_free(x.noise); hb_free(x.slice); hb_free(x.ts); hb_free(x.latents); hb_dev_free(x.kv);
    return rc;
}
