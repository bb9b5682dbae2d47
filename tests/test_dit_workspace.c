/* The DiT's activation arena as planned from shapes (hb_wan_dit_workspace_bytes, hb_wan_dit_ws_bytes) against a
 * real forward: on random tiny models of two configs, token counts on both sides of the FFN's row chunk,
 * one / per-frame / per-token timesteps, with and without a prepared prompt, the forward's high-water mark equals
 * the plan exactly, it runs in an arena holding exactly the plan and fails cleanly (no crash) in one 64 bytes
 * short. The causal mode (global cache, windows with sinks, chunks of several sizes) peaks at its plan too. */
#include "testlib.h"
#include "models/wan_causal.h"
#include "random_models.h"
#include <stdlib.h>
#include <string.h>

static wan_dit *tiny_model(const char *cfg_json, const char *name, uint64_t seed) {
    wan_dit_config c;
    if (hb_wan_dit_config_parse(&c, cfg_json, name)) return NULL;
    char dir[4096], cmd[4200];
    snprintf(dir, sizeof dir, "%s/%s", tl_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (tl_run(cmd, NULL, 0) || hb_wan_dit_write_random(&c, dir, HB_F32, seed, 1 << 20)) return NULL;
    return hb_wan_dit_open(dir, NULL);
}

/* A forward with `spare` bytes of arena beyond the ones taken before it: rc, and the arena's high-water mark above
 * that start in *peak. */
static int forward_in(const wan_dit *m, const wan_dit_input *in, float *out, size_t spare, size_t *peak) {
    hb_arena a;
    if (hb_arena_init(&a, spare, "test arena")) return -1;
    size_t pad = a.cap - spare; /* the cap is rounded up to pages: take the rest first */
    if (pad && !hb_arena_alloc(&a, pad)) return hb_arena_free(&a), -1;
    wan_dit_opts o = {.arena = &a};
    int rc = hb_wan_dit_forward(m, in, out, &o);
    *peak = a.peak - pad;
    hb_arena_free(&a);
    return rc;
}

static void plain_case(const wan_dit *m, hb_rng *r, int64_t F, int64_t H, int64_t W, int tmode, bool prepared) {
    const wan_dit_config *c = &m->cfg;
    const int64_t Fp = F / c->patch[0], L = Fp * (H / c->patch[1]) * (W / c->patch[2]);
    const int64_t nt = tmode == 0 ? 1 : tmode == 1 ? Fp : L, nx = (int64_t)c->in_dim * F * H * W, ctx_len = c->text_len - 1;
    float *x = malloc(sizeof(float) * (size_t)nx), *out = malloc(sizeof(float) * (size_t)(c->out_dim * F * H * W));
    float *t = malloc(sizeof(float) * (size_t)nt), *ctx = malloc(sizeof(float) * (size_t)(ctx_len * c->text_dim));
    tl_fill_normal(r, x, nx, 1.0f);
    tl_fill_normal(r, ctx, ctx_len * c->text_dim, 1.0f);
    for (int64_t i = 0; i < nt; i++) t[i] = (float)(hb_rng_uniform(r) * 1000.0); /* distinct: no grouping */
    wan_dit_text txt = {0};
    if (prepared) CHECK(hb_wan_dit_text_prepare(m, ctx, ctx_len, tmode == 1, &txt, NULL, NULL) == 0);
    wan_dit_input in = {.x = x, .F = F, .H = H, .W = W, .t = t, .nt = nt, .context = ctx, .ctx_len = ctx_len,
                        .text = prepared ? &txt : NULL};
    const size_t plan = hb_wan_dit_workspace_bytes(c, L, nt, prepared);
    size_t peak = 0, short_peak = 0;
    int rc = forward_in(m, &in, out, plan, &peak);
    CHECKF(rc == 0 && peak == plan, "%lldx%lldx%lld, %lld timesteps, prepared %d: rc %d (%s), peak %zu, plan %zu",
           (long long)F, (long long)H, (long long)W, (long long)nt, prepared, rc, rc ? hb_last_error() : "", peak, plan);
    hb_clear_error();
    CHECKF(forward_in(m, &in, out, plan - 64, &short_peak) != 0 && strstr(hb_last_error(), "out of arena memory"),
           "%lld tokens: a forward in 64 bytes less than the plan: %s", (long long)L, hb_last_error());
    printf("  %lldx%lldx%lld (%4lld tokens), %4lld timesteps, prompt %s: peak %8zu = plan\n", (long long)F,
           (long long)H, (long long)W, (long long)L, (long long)nt, prepared ? "prepared" : "raw     ", peak);
    if (prepared) hb_wan_dit_text_free(&txt);
    free(x), free(out), free(t), free(ctx);
}

/* chunks of c frames each (the last one `last` frames) through a causal state sized for c-frame chunks */
static void causal_case(const wan_dit *m, hb_rng *r, int64_t H, int64_t W, int64_t c, int64_t last, int64_t n,
                        int64_t window, int64_t sink) {
    const wan_dit_config *mc = &m->cfg;
    wan_causal_config cc = {.H = H, .W = W, .max_chunk_frames = c, .cache_frames = window ? window : n * c,
                            .sink_frames = sink, .window = window > 0, .global_sink = true, .cache_dtype = HB_F32};
    wan_causal *cs = hb_wan_causal_new(m, &cc);
    CHECKF(cs != NULL, "%s", hb_last_error());
    if (!cs) return;
    const int64_t ft = (H / mc->patch[1]) * (W / mc->patch[2]), nel = mc->in_dim * c * H * W;
    const size_t plan = hb_wan_dit_workspace_bytes(mc, c * ft, c, true);
    float *x = malloc(sizeof(float) * (size_t)nel), *out = malloc(sizeof(float) * (size_t)nel), t[16], ctx[4 * 64];
    tl_fill_normal(r, ctx, 4 * mc->text_dim, 1.0f);
    CHECK(hb_wan_causal_set_prompt(cs, ctx, 4) == 0);
    for (int64_t j = 0, f0 = 0; j < n; j++) {
        int64_t F = j == n - 1 ? last : c;
        tl_fill_normal(r, x, nel, 1.0f);
        for (int64_t f = 0; f < F; f++) t[f] = (float)(hb_rng_uniform(r) * 1000.0);
        CHECKF(hb_wan_causal_forward(cs, x, F, t, f0, false, out, NULL, NULL) == 0, "%s", hb_last_error());
        f0 += F;
    }
    CHECKF(cs->arena.peak == plan && plan <= cs->arena.cap, "causal chunk %lld, window %lld: peak %zu, plan %zu, cap %zu",
           (long long)c, (long long)window, cs->arena.peak, plan, cs->arena.cap);
    printf("  causal %lldx%lld, chunks of %lld (last %lld), window %lld sink %lld: peak %zu = plan\n", (long long)H,
           (long long)W, (long long)c, (long long)last, (long long)window, (long long)sink, cs->arena.peak);
    hb_wan_causal_free(cs);
    free(x), free(out);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    static const char *cfgs[2] = {
        "{\"dim\": 32, \"ffn_dim\": 64, \"freq_dim\": 16, \"num_heads\": 2, \"num_layers\": 2, \"in_dim\": 16, "
        "\"out_dim\": 16, \"text_len\": 8, \"text_dim\": 16, \"patch_size\": [1, 2, 2]}",
        "{\"dim\": 48, \"ffn_dim\": 80, \"freq_dim\": 32, \"num_heads\": 3, \"num_layers\": 1, \"in_dim\": 12, "
        "\"out_dim\": 12, \"text_len\": 12, \"text_dim\": 24, \"patch_size\": [1, 2, 2]}"};
    for (int k = 0; k < 2; k++) {
        char name[16];
        snprintf(name, sizeof name, "dit%d", k);
        wan_dit *m = tiny_model(cfgs[k], name, 11 + (uint64_t)k);
        CHECKF(m != NULL, "%s", hb_last_error());
        if (!m) continue;
        printf("config %d (dim %d, ffn %d):\n", k, m->cfg.dim, m->cfg.ffn_dim);
        for (int tm = 0; tm < 3; tm++) {
            plain_case(m, &r, 2, 4, 6, tm, tm != 1);
            plain_case(m, &r, 3, 28, 28, tm, tm == 1); /* 588 tokens: more than one FFN row chunk */
        }
        causal_case(m, &r, 4, 6, 1, 1, 4, 0, 0);
        causal_case(m, &r, 4, 6, 3, 2, 3, 6, 1);
        causal_case(m, &r, 6, 4, 2, 2, 5, 4, 2);
        hb_wan_dit_free(m);
    }
    return tl_done();
}
