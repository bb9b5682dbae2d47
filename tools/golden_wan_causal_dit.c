/* Golden runner for kind wan_causal_dit: builds the DiT from the file's weights and config, then replays the
 * metadata's `calls` in order on one causal state (KV cache + cross-attention cache) fed with the recorded
 * inputs in.callNN.x / in.callNN.t, and compares every call's out.callNN.flow, out.callNN.x0 (wrapper x0 with
 * the FlowMatch sigma of the file's timestep_shift), mid.callNN.kv0_k / kv0_v (layer 0's valid cache rows)
 * and mid.callNN.kv0_index ([global_end_index, local_end_index], exact). */
#include "golden.h"
#include "models/wan_causal.h"
#include "pipeline/schedule.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int meta_int(golden_case *g, const char *key, int64_t *out) {
    const char *s = hb_checkpoint_metadata(g->ck, key);
    if (!s) return hb_error("%s: metadata '%s' is missing", g->path, key);
    char *end;
    *out = strtoll(s, &end, 10);
    if (end == s) return hb_error("%s: metadata '%s' is not an integer ('%s')", g->path, key, s);
    return 0;
}

/* One replay: the model, its causal state and the activations every call reuses. */
typedef struct {
    golden_case *g;
    wan_dit_config cfg;
    hb_flowmatch_table tab;
    wan_causal *cs;
    int64_t fsl, H, W;
    float *x, *t, *flow, *x0, *kv; /* x, flow, x0, kv in the backend's memory; t on the host */
} causal_replay;

/* The latent size (every call's) and the largest chunk from the calls' inputs. */
static int latent_extent(causal_replay *r, size_t ncalls, int64_t *max_frames) {
    hb_tensor tx;
    *max_frames = 0;
    for (size_t i = 0; i < ncalls; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "in.call%02zu.x", i);
        if (golden_tensor(r->g, nm, &tx)) return -1;
        int64_t xs[4] = {r->cfg.in_dim, -1, -1, -1};
        if (hb_tensor_expect(&tx, nm, 4, xs)) return hb_error_prefix("%s: ", r->g->path);
        if (i == 0) { r->H = tx.shape[2]; r->W = tx.shape[3]; }
        if (tx.shape[2] != r->H || tx.shape[3] != r->W)
            return hb_error("%s: %s changes the latent size", r->g->path, nm);
        if (tx.shape[1] > *max_frames) *max_frames = tx.shape[1];
    }
    if ((r->H / r->cfg.patch[1]) * (r->W / r->cfg.patch[2]) != r->fsl)
        return hb_error("%s: frame_seq_length %lld does not match the latent %lldx%lld", r->g->path,
                        (long long)r->fsl, (long long)r->H, (long long)r->W);
    return 0;
}

/* The causal state as the file's config describes it: cache size, local window and sink, absolute RoPE. */
static wan_causal_config causal_config(causal_replay *r, int64_t max_frames, int64_t cache_tokens) {
    const int64_t local_attn = golden_cfg_int(r->g, "local_attn_size", -1), sink = golden_cfg_int(r->g, "sink_size", 0);
    wan_causal_config cc = {0};
    cc.H = r->H; cc.W = r->W; cc.max_chunk_frames = max_frames;
    cc.cache_tokens = cache_tokens;
    cc.cache_frames = (cache_tokens + r->fsl - 1) / r->fsl;
    cc.window = local_attn != -1;
    cc.sink_frames = cc.window ? sink : 0;
    cc.global_sink = true;
    cc.cache_dtype = HB_F32;
    cc.rope = WAN_ROPE_ABS;
    return cc;
}

/* Call i: its forward on the recorded inputs, then the flow, x0, layer 0's cache rows and the cache indices. */
static int replay_call(causal_replay *r, json_t *call, size_t i) {
    golden_case *g = r->g;
    json_t *jcs = json_object_get(call, "current_start");
    if (!json_is_integer(jcs)) return hb_error("%s: call %zu has no integer current_start", g->path, i);
    int64_t current_start = json_integer_value(jcs);
    if (current_start % r->fsl) return hb_error("%s: call %zu starts inside a frame", g->path, i);
    char nm[64];
    hb_tensor tx, tt;
    hb_dev_free(r->x); hb_free(r->t); r->x = r->t = NULL;
    snprintf(nm, sizeof nm, "in.call%02zu.x", i);
    if (!(r->x = golden_tensor_dev(g, nm, &tx))) return -1;
    snprintf(nm, sizeof nm, "in.call%02zu.t", i);
    if (!(r->t = golden_tensor_f32(g, nm, &tt))) return -1;
    const int64_t F = tx.shape[1];
    if (hb_tensor_numel(&tt) != F)
        return hb_error("%s: %s must hold one timestep per frame (%lld)", g->path, nm, (long long)F);
    if (hb_wan_causal_forward(r->cs, r->x, F, r->t, current_start / r->fsl, false, r->flow, NULL, NULL))
        return hb_error_prefix("%s: call %zu: ", g->path, i);
    const int64_t n = (int64_t)r->cfg.out_dim * F * r->H * r->W, per = r->H * r->W;
    snprintf(nm, sizeof nm, "out.call%02zu.flow", i);
    golden_compare(g, nm, r->flow, n);
    for (int64_t ch = 0; ch < r->cfg.out_dim; ch++)
        for (int64_t f = 0; f < F; f++) {
            int64_t o = (ch * F + f) * per;
            hb_flow_to_x0(r->x0 + o, r->x + o, r->flow + o, hb_flowmatch_sigma(&r->tab, r->t[f]), per);
        }
    snprintf(nm, sizeof nm, "out.call%02zu.x0", i);
    golden_compare(g, nm, r->x0, n);
    const int64_t nv = r->cs->cache.local_end;
    for (int which = 0; which < 2; which++) {
        hb_wan_kv_cache_read(&r->cs->cache, 0, which, 0, nv, r->kv);
        snprintf(nm, sizeof nm, "mid.call%02zu.kv0_%c", i, which ? 'v' : 'k');
        golden_compare(g, nm, r->kv, nv * r->cfg.dim);
    }
    int64_t idx[2] = {r->cs->cache.global_end, r->cs->cache.local_end};
    snprintf(nm, sizeof nm, "mid.call%02zu.kv0_index", i);
    golden_compare_i64(g, nm, idx, 2);
    return 0;
}

int golden_run_wan_causal_dit(golden_case *g) {
    causal_replay r = {.g = g};
    int64_t cache_tokens = 0, max_frames = 0;
    if (golden_wan_dit_config(g, &r.cfg)) return -1;
    if (meta_int(g, "frame_seq_length", &r.fsl) || meta_int(g, "kv_cache_tokens", &cache_tokens)) return -1;
    const char *shift_s = hb_checkpoint_metadata(g->ck, "timestep_shift");
    json_t *calls = golden_meta_json(g, "calls");
    if (!calls || !json_is_array(calls) || json_array_size(calls) == 0) {
        json_decref(calls);
        return hb_error("%s: metadata 'calls' is missing or not a list", g->path);
    }
    const size_t nc = json_array_size(calls);
    wan_dit *m = NULL;
    float *ctx = NULL;
    hb_tensor tc;
    int rc = -1;
    if (hb_flowmatch_table_init(&r.tab, shift_s ? strtod(shift_s, NULL) : 5.0)) goto done;
    if (!(m = hb_wan_dit_from_checkpoint(g->ck, &r.cfg))) goto done;
    if (!(ctx = golden_tensor_dev(g, "in.context", &tc))) goto done;
    if (tc.ndim != 2 || tc.shape[1] != r.cfg.text_dim) {
        hb_error("%s: in.context must be [L, %d]", g->path, r.cfg.text_dim);
        goto done;
    }
    if (latent_extent(&r, nc, &max_frames)) goto done;
    wan_causal_config cc = causal_config(&r, max_frames, cache_tokens);
    if (!(r.cs = hb_wan_causal_new(m, &cc)) || hb_wan_causal_set_prompt(r.cs, ctx, tc.shape[0])) goto done;
    const int64_t nx = (int64_t)r.cfg.in_dim * max_frames * r.H * r.W;
    r.flow = hb_dev_alloc(sizeof(float) * (size_t)nx, "flow"); /* activations: in the backend's memory */
    r.x0 = hb_dev_alloc(sizeof(float) * (size_t)nx, "x0");
    r.kv = hb_dev_alloc(sizeof(float) * (size_t)(cache_tokens * r.cfg.dim), "kv0");
    if (!r.flow || !r.x0 || !r.kv) goto done;
    for (size_t i = 0; i < nc; i++)
        if (replay_call(&r, json_array_get(calls, i), i)) goto done;
    rc = 0;
done:
    json_decref(calls);
    hb_wan_causal_free(r.cs);
    hb_wan_dit_free(m);
    hb_dev_free(ctx); hb_dev_free(r.x); hb_free(r.t); hb_dev_free(r.flow); hb_dev_free(r.x0); hb_dev_free(r.kv);
    return rc;
}
