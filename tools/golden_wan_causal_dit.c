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

int golden_run_wan_causal_dit(golden_case *g) {
    wan_dit_config cfg;
    if (golden_wan_dit_config(g, &cfg)) return -1;
    int64_t fsl = 0, cache_tokens = 0;
    if (meta_int(g, "frame_seq_length", &fsl) || meta_int(g, "kv_cache_tokens", &cache_tokens)) return -1;
    int64_t local_attn = golden_cfg_int(g, "local_attn_size", -1), sink = golden_cfg_int(g, "sink_size", 0);
    const char *shift_s = hb_checkpoint_metadata(g->ck, "timestep_shift");
    double shift = shift_s ? strtod(shift_s, NULL) : 5.0;
    json_t *calls = golden_meta_json(g, "calls");
    if (!calls || !json_is_array(calls) || json_array_size(calls) == 0) {
        json_decref(calls);
        return hb_error("%s: metadata 'calls' is missing or not a list", g->path);
    }
    hb_flowmatch_table tab;
    wan_dit *m = NULL;
    wan_causal *cs = NULL;
    float *ctx = NULL, *x = NULL, *t = NULL, *flow = NULL, *x0 = NULL, *kv = NULL;
    int rc = -1;
    if (hb_flowmatch_table_init(&tab, shift)) goto done;
    if (!(m = wan_dit_from_checkpoint(g->ck, &cfg))) goto done;
    hb_tensor tc, tx, tt;
    if (!(ctx = golden_tensor_dev(g, "in.context", &tc))) goto done;
    if (tc.ndim != 2 || tc.shape[1] != cfg.text_dim) {
        hb_error("%s: in.context must be [L, %d]", g->path, cfg.text_dim);
        goto done;
    }
    /* Latent size and the largest chunk from the calls' inputs. */
    int64_t H = 0, W = 0, maxF = 0;
    size_t nc = json_array_size(calls);
    for (size_t i = 0; i < nc; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "in.call%02zu.x", i);
        if (golden_tensor(g, nm, &tx)) goto done;
        int64_t xs[4] = {cfg.in_dim, -1, -1, -1};
        if (hb_tensor_expect(&tx, nm, 4, xs)) { hb_error_prefix("%s: ", g->path); goto done; }
        if (i == 0) { H = tx.shape[2]; W = tx.shape[3]; }
        if (tx.shape[2] != H || tx.shape[3] != W) { hb_error("%s: %s changes the latent size", g->path, nm); goto done; }
        if (tx.shape[1] > maxF) maxF = tx.shape[1];
    }
    if ((H / cfg.patch[1]) * (W / cfg.patch[2]) != fsl) {
        hb_error("%s: frame_seq_length %lld does not match the latent %lldx%lld", g->path, (long long)fsl, (long long)H,
                 (long long)W);
        goto done;
    }
    wan_causal_config cc = {0};
    cc.H = H; cc.W = W; cc.max_chunk_frames = maxF;
    cc.cache_tokens = cache_tokens;
    cc.cache_frames = (cache_tokens + fsl - 1) / fsl;
    cc.window = local_attn != -1;
    cc.sink_frames = cc.window ? sink : 0;
    cc.global_sink = true;
    cc.cache_dtype = HB_F32;
    cc.rope = WAN_ROPE_ABS;
    if (!(cs = wan_causal_new(m, &cc))) goto done;
    if (wan_causal_set_prompt(cs, ctx, tc.shape[0])) goto done;
    const int64_t D = cfg.dim, nx = (int64_t)cfg.in_dim * maxF * H * W;
    flow = hb_dev_alloc(sizeof(float) * (size_t)nx, "flow"); /* activations: in the backend's memory */
    x0 = hb_dev_alloc(sizeof(float) * (size_t)nx, "x0");
    kv = hb_dev_alloc(sizeof(float) * (size_t)(cache_tokens * D), "kv0");
    if (!flow || !x0 || !kv) goto done;
    for (size_t i = 0; i < nc; i++) {
        json_t *call = json_array_get(calls, i);
        json_t *jcs = json_object_get(call, "current_start");
        if (!json_is_integer(jcs)) { hb_error("%s: call %zu has no integer current_start", g->path, i); goto done; }
        int64_t current_start = json_integer_value(jcs);
        if (current_start % fsl) { hb_error("%s: call %zu starts inside a frame", g->path, i); goto done; }
        char nm[64];
        hb_dev_free(x); hb_free(t); x = t = NULL;
        snprintf(nm, sizeof nm, "in.call%02zu.x", i);
        if (!(x = golden_tensor_dev(g, nm, &tx))) goto done;
        snprintf(nm, sizeof nm, "in.call%02zu.t", i);
        if (!(t = golden_tensor_f32(g, nm, &tt))) goto done;
        int64_t F = tx.shape[1];
        if (hb_tensor_numel(&tt) != F) { hb_error("%s: %s must hold one timestep per frame (%lld)", g->path, nm, (long long)F); goto done; }
        if (wan_causal_forward(cs, x, F, t, current_start / fsl, false, flow, NULL, NULL)) {
            hb_error_prefix("%s: call %zu: ", g->path, i);
            goto done;
        }
        int64_t n = (int64_t)cfg.out_dim * F * H * W, per = H * W;
        snprintf(nm, sizeof nm, "out.call%02zu.flow", i);
        golden_compare(g, nm, flow, n);
        for (int64_t ch = 0; ch < cfg.out_dim; ch++)
            for (int64_t f = 0; f < F; f++) {
                int64_t o = (ch * F + f) * per;
                hb_flow_to_x0(x0 + o, x + o, flow + o, hb_flowmatch_sigma(&tab, t[f]), per);
            }
        snprintf(nm, sizeof nm, "out.call%02zu.x0", i);
        golden_compare(g, nm, x0, n);
        int64_t nv = cs->cache.local_end;
        for (int which = 0; which < 2; which++) {
            wan_kv_cache_read(&cs->cache, 0, which, 0, nv, kv);
            snprintf(nm, sizeof nm, "mid.call%02zu.kv0_%c", i, which ? 'v' : 'k');
            golden_compare(g, nm, kv, nv * D);
        }
        int64_t idx[2] = {cs->cache.global_end, cs->cache.local_end};
        snprintf(nm, sizeof nm, "mid.call%02zu.kv0_index", i);
        golden_compare_i64(g, nm, idx, 2);
    }
    rc = 0;
done:
    json_decref(calls);
    wan_causal_free(cs);
    wan_dit_free(m);
    hb_dev_free(ctx); hb_dev_free(x); hb_free(t); hb_dev_free(flow); hb_dev_free(x0); hb_dev_free(kv);
    return rc;
}
