/* wan_dit: the golden files dit21/dit22 through the C API (every mid.* and out.x, with and without
 * timestep grouping, per-frame timesteps, a prepared prompt with cached cross-attention K/V, and the
 * block API driven with a caller-owned self-attention K/V cache as a causal driver will do). */
#include "testlib.h"
#include "models/wan_dit.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hb_checkpoint *ck;
    int compared;
    double worst;
} tapc;

static float *ref_f32(hb_checkpoint *ck, const char *name, int64_t *n) {
    hb_tensor t;
    if (hb_checkpoint_get(ck, name, &t)) return NULL;
    *n = hb_tensor_numel(&t);
    float *f = malloc(sizeof(float) * (size_t)*n);
    hb_convert_to_f32(f, t.data, t.dtype, (size_t)*n);
    return f;
}

static void tap(void *user, const char *name, const float *data, int64_t rows, int64_t cols, const hb_modgroups *g) {
    tapc *t = user;
    char full[96];
    snprintf(full, sizeof full, "mid.%s", name);
    int64_t n;
    float *ref = ref_f32(t->ck, full, &n);
    if (!ref) return; /* only some intermediates are stored */
    int64_t want_rows = n / cols;
    CHECKF(n % cols == 0 && (want_rows == rows || (g && want_rows == 1)), "%s: %lld values for %lld x %lld", full,
           (long long)n, (long long)rows, (long long)cols);
    float *ours = malloc(sizeof(float) * (size_t)n);
    for (int64_t r = 0; r < want_rows; r++)
        memcpy(ours + r * cols, g ? data + (r / g->rows_per_group) * g->group_stride : data + r * cols,
               sizeof(float) * (size_t)cols);
    double e = tl_rel_err(ours, ref, n);
    CHECKF(e <= 1e-4, "%s: rel err %.3e", full, e);
    if (e > t->worst) t->worst = e;
    t->compared++;
    free(ours);
    free(ref);
}

typedef struct {
    float *x, *t, *ctx, *ref;
    int64_t F, H, W, nt, ctx_len, nout;
} golden_in;

static void load_in(hb_checkpoint *ck, const wan_dit_config *c, golden_in *g) {
    hb_tensor x, ctx;
    int64_t n;
    CHECK(hb_checkpoint_get(ck, "in.x", &x) == 0 && hb_checkpoint_get(ck, "in.context", &ctx) == 0);
    g->F = x.shape[1]; g->H = x.shape[2]; g->W = x.shape[3];
    g->ctx_len = ctx.shape[0];
    g->x = ref_f32(ck, "in.x", &n);
    g->t = ref_f32(ck, "in.t", &g->nt);
    g->ctx = ref_f32(ck, "in.context", &n);
    g->ref = ref_f32(ck, "out.x", &g->nout);
    CHECK(g->nout == c->out_dim * g->F * g->H * g->W);
}

static void free_in(golden_in *g) { free(g->x); free(g->t); free(g->ctx); free(g->ref); }

/* Drive the blocks by hand with a caller-owned K/V cache, the way a causal driver would. */
static int manual_forward(const wan_dit *m, const golden_in *g, float *out) {
    const wan_dit_config *c = &m->cfg;
    const int64_t D = c->dim, T = c->text_len, Hp = g->H / c->patch[1], Wp = g->W / c->patch[2], Fp = g->F / c->patch[0];
    const int64_t L = Fp * Hp * Wp, P = (int64_t)c->patch[0] * c->patch[1] * c->patch[2], tpf = Hp * Wp;
    /* timesteps: per frame when the per-token values are constant per frame (they are in both files) */
    int64_t G = g->nt == 1 ? 1 : Fp;
    float *tv = malloc(sizeof(float) * (size_t)G);
    for (int64_t f = 0; f < G; f++) tv[f] = g->t[g->nt == 1 ? 0 : f * tpf];
    hb_modgroups ge = {G == 1 ? L : tpf, D}, ge0 = {G == 1 ? L : tpf, 6 * D};
    float *rows = malloc(sizeof(float) * (size_t)(L * c->in_dim * P)), *x = malloc(sizeof(float) * (size_t)(L * D));
    float *e = malloc(sizeof(float) * (size_t)(G * D)), *e0 = malloc(sizeof(float) * (size_t)(G * 6 * D));
    float *tmp = malloc(sizeof(float) * (size_t)(G * (c->freq_dim + D)));
    float *kc = malloc(sizeof(float) * (size_t)(L * D)), *vc = malloc(sizeof(float) * (size_t)(L * D));
    float *tok = malloc(sizeof(float) * (size_t)(L * P * c->out_dim));
    wan_dit_text txt;
    int rc = -1;
    hb_arena a;
    hb_arena_init(&a, 64 << 20, "test ws");
    wan_dit_ws ws;
    if (hb_wan_dit_ws_alloc(m, L, G, &a, &ws)) goto done;
    if (hb_wan_dit_text_prepare(m, g->ctx, g->ctx_len, true, &txt, NULL, NULL)) goto done;
    hb_wan_dit_patchify(c, g->x, g->F, g->H, g->W, rows);
    if (hb_linear(x, rows, L, &m->patch_w, &m->patch_b, false)) goto done_t;
    if (hb_wan_dit_time_embed(m, tv, G, e, e0, tmp)) goto done_t;
    for (int l = 0; l < c->num_layers; l++) {
        /* all tokens in one call through the cache path (check_f0_cache splits the clip) */
        wan_dit_block_args ba = {0};
        ba.L = L; ba.H = Hp; ba.W = Wp; ba.f0 = 0;
        ba.e0 = e0; ba.g = ge0;
        ba.ctx_k = txt.k + l * T * D; ba.ctx_v = txt.v + l * T * D; ba.ctx_len = T;
        ba.kv_k = kc; ba.kv_v = vc; ba.kv_write = 0; ba.kv_start = 0; ba.kv_end = L;
        if (hb_wan_dit_block(m, l, x, &ba, &ws)) goto done_t;
    }
    if (hb_wan_dit_head(m, x, L, e, ge, tok, &ws)) goto done_t;
    hb_wan_dit_unpatchify(c, tok, g->F, g->H, g->W, out);
    rc = 0;
done_t:
    hb_wan_dit_text_free(&txt);
done:
    hb_arena_free(&a);
    free(rows); free(x); free(e); free(e0); free(tmp); free(kc); free(vc); free(tok); free(tv);
    return rc;
}

/* RoPE with a frame offset: the last frame alone at f0 = F-1 against a K/V cache holding every frame
 * must give that frame's rows of the full forward's block-0 self-attention input... checked through the
 * whole block: the output rows of the last frame equal the full pass' rows. */
static void check_f0_cache(const wan_dit *m, const golden_in *g) {
    const wan_dit_config *c = &m->cfg;
    const int64_t D = c->dim, Hp = g->H / c->patch[1], Wp = g->W / c->patch[2], Fp = g->F / c->patch[0];
    const int64_t tpf = Hp * Wp, L = Fp * tpf, T = c->text_len, P = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    float tv = g->t[g->nt - 1];
    float *rows = malloc(sizeof(float) * (size_t)(L * c->in_dim * P)), *x = malloc(sizeof(float) * (size_t)(L * D));
    float *x2 = malloc(sizeof(float) * (size_t)(L * D)), *e = malloc(sizeof(float) * (size_t)D);
    float *e0 = malloc(sizeof(float) * (size_t)(6 * D)), *tmp = malloc(sizeof(float) * (size_t)(c->freq_dim + D));
    float *kc = malloc(sizeof(float) * (size_t)(L * D)), *vc = malloc(sizeof(float) * (size_t)(L * D));
    hb_arena a;
    hb_arena_init(&a, 64 << 20, "test ws");
    wan_dit_ws ws;
    wan_dit_text txt;
    CHECK(hb_wan_dit_ws_alloc(m, L, 1, &a, &ws) == 0);
    CHECK(hb_wan_dit_text_prepare(m, g->ctx, g->ctx_len, true, &txt, NULL, NULL) == 0);
    hb_wan_dit_patchify(c, g->x, g->F, g->H, g->W, rows);
    CHECK(hb_linear(x, rows, L, &m->patch_w, &m->patch_b, false) == 0);
    memcpy(x2, x, sizeof(float) * (size_t)(L * D));
    CHECK(hb_wan_dit_time_embed(m, &tv, 1, e, e0, tmp) == 0);
    wan_dit_block_args ba = {0};
    ba.H = Hp; ba.W = Wp; ba.e0 = e0;
    ba.ctx_k = txt.k; ba.ctx_v = txt.v; ba.ctx_len = T;
    /* reference: all frames at once (block 0, no cache) */
    ba.L = L; ba.g = (hb_modgroups){L, 6 * D};
    CHECK(hb_wan_dit_block(m, 0, x, &ba, &ws) == 0);
    /* cached: frames [0, F-1) first (they only fill the cache), then the last frame at f0 = F-1 */
    ba.kv_k = kc; ba.kv_v = vc;
    ba.L = L - tpf; ba.g = (hb_modgroups){L - tpf, 6 * D};
    ba.kv_write = 0; ba.kv_start = 0; ba.kv_end = L - tpf;
    CHECK(hb_wan_dit_block(m, 0, x2, &ba, &ws) == 0);
    ba.L = tpf; ba.g = (hb_modgroups){tpf, 6 * D}; ba.f0 = (int)(Fp - 1);
    ba.kv_write = L - tpf; ba.kv_end = L;
    CHECK(hb_wan_dit_block(m, 0, x2 + (L - tpf) * D, &ba, &ws) == 0);
    CHECK_REL(x2 + (L - tpf) * D, x + (L - tpf) * D, tpf * D, 1e-5);
    hb_wan_dit_text_free(&txt);
    hb_arena_free(&a);
    free(rows); free(x); free(x2); free(e); free(e0); free(tmp); free(kc); free(vc);
}

static void run_file(const char *rel) {
    char path[4096];
    tl_shared_file(rel, path, sizeof path);
    /* open through the generic path: config from the file's metadata */
    wan_dit *m = hb_wan_dit_open(path, NULL);
    CHECKF(m != NULL, "%s: %s", path, hb_last_error());
    if (!m) return;
    const wan_dit_config *c = &m->cfg;
    golden_in g;
    load_in(m->ck, c, &g);
    float *out = malloc(sizeof(float) * (size_t)g.nout);
    for (int pass = 0; pass < 2; pass++) {
        tapc tc = {m->ck, 0, 0};
        wan_dit_input in = {.x = g.x, .F = g.F, .H = g.H, .W = g.W, .t = g.t, .nt = g.nt, .context = g.ctx,
                            .ctx_len = g.ctx_len};
        wan_dit_opts o = {.tap = tap, .tap_user = &tc, .no_group = pass == 1};
        CHECKF(hb_wan_dit_forward(m, &in, out, &o) == 0, "%s", hb_last_error());
        CHECK_REL(out, g.ref, g.nout, 1e-4);
        CHECKF(tc.compared >= 9, "%s: only %d intermediates compared", rel, tc.compared);
        printf("%s (%s): out.x %.3e, %d intermediates, worst %.3e\n", rel, pass ? "per-token" : "grouped",
               tl_rel_err(out, g.ref, g.nout), tc.compared, tc.worst);
    }
    /* prepared prompt with cached K/V */
    {
        wan_dit_text txt;
        CHECK(hb_wan_dit_text_prepare(m, g.ctx, g.ctx_len, true, &txt, NULL, NULL) == 0);
        wan_dit_input in = {.x = g.x, .F = g.F, .H = g.H, .W = g.W, .t = g.t, .nt = g.nt, .text = &txt};
        CHECK(hb_wan_dit_forward(m, &in, out, NULL) == 0);
        CHECK_REL(out, g.ref, g.nout, 1e-4);
        hb_wan_dit_text_free(&txt);
    }
    /* per-frame timesteps (the golden per-token values are constant per frame) */
    if (g.nt > 1) {
        int64_t tpf = (g.H / c->patch[1]) * (g.W / c->patch[2]), Fp = g.F / c->patch[0];
        float *tf = malloc(sizeof(float) * (size_t)Fp);
        for (int64_t f = 0; f < Fp; f++) tf[f] = g.t[f * tpf];
        wan_dit_input in = {.x = g.x, .F = g.F, .H = g.H, .W = g.W, .t = tf, .nt = Fp, .context = g.ctx,
                            .ctx_len = g.ctx_len};
        CHECK(hb_wan_dit_forward(m, &in, out, NULL) == 0);
        CHECK_REL(out, g.ref, g.nout, 1e-4);
        free(tf);
    }
    /* the block/head API with a caller-owned K/V cache */
    memset(out, 0, sizeof(float) * (size_t)g.nout);
    CHECKF(manual_forward(m, &g, out) == 0, "%s", hb_last_error());
    CHECK_REL(out, g.ref, g.nout, 1e-4);
    check_f0_cache(m, &g);
    /* bad inputs give errors, not crashes */
    {
        wan_dit_input in = {.x = g.x, .F = g.F, .H = g.H + 1, .W = g.W, .t = g.t, .nt = 1, .context = g.ctx,
                            .ctx_len = g.ctx_len};
        CHECK(hb_wan_dit_forward(m, &in, out, NULL) != 0);
        in.H = g.H; in.nt = 5;
        CHECK(hb_wan_dit_forward(m, &in, out, NULL) != 0 && strstr(hb_last_error(), "timesteps"));
        in.nt = 1; in.ctx_len = c->text_len + 1;
        CHECK(hb_wan_dit_forward(m, &in, out, NULL) != 0 && strstr(hb_last_error(), "text_len"));
    }
    free(out);
    free_in(&g);
    hb_wan_dit_free(m);
}

static void config_parsing(void) {
    wan_dit_config a, b;
    const char *off = "{\"_class_name\":\"WanModel\",\"dim\":3072,\"eps\":1e-06,\"ffn_dim\":14336,\"freq_dim\":256,"
                      "\"in_dim\":48,\"model_type\":\"ti2v\",\"num_heads\":24,\"num_layers\":30,\"out_dim\":48,"
                      "\"text_len\":512}";
    const char *dif = "{\"_class_name\":\"WanTransformer3DModel\",\"attention_head_dim\":128,\"cross_attn_norm\":true,"
                      "\"eps\":1e-06,\"ffn_dim\":14336,\"freq_dim\":256,\"in_channels\":48,\"num_attention_heads\":24,"
                      "\"num_layers\":30,\"out_channels\":48,\"patch_size\":[1,2,2],\"qk_norm\":\"rms_norm_across_heads\","
                      "\"rope_max_seq_len\":1024,\"text_dim\":4096}";
    CHECKF(hb_wan_dit_config_parse(&a, off, "official") == 0, "%s", hb_last_error());
    CHECKF(hb_wan_dit_config_parse(&b, dif, "diffusers") == 0, "%s", hb_last_error());
    wan_dit_config p;
    CHECK(hb_wan_dit_config_preset(&p, "wan2.2-ti2v-5b") == 0);
    CHECK(a.dim == 3072 && a.head_dim == 128 && a.text_dim == 4096 && a.patch[1] == 2 && a.qk_norm && a.cross_attn_norm);
    CHECK(a.dim == b.dim && a.num_heads == b.num_heads && a.ffn_dim == b.ffn_dim && a.in_dim == b.in_dim &&
          a.out_dim == b.out_dim && a.text_len == b.text_len && a.text_dim == b.text_dim && a.num_layers == b.num_layers &&
          b.qk_norm && a.eps == b.eps);
    CHECK(p.dim == a.dim && p.ffn_dim == a.ffn_dim && p.num_layers == a.num_layers && p.in_dim == a.in_dim);
    /* round trip */
    char *js = hb_wan_dit_config_to_json(&p);
    CHECK(js && hb_wan_dit_config_parse(&b, js, "roundtrip") == 0 && memcmp(&b, &p, sizeof b) == 0);
    free(js);
    /* 5B parameter count: 5.0 B */
    int64_t np = hb_wan_dit_param_count(&p);
    CHECKF(np > 4.9e9 && np < 5.1e9, "%lld", (long long)np);
    /* errors */
    CHECK(hb_wan_dit_config_parse(&a, "{\"dim\":100,\"num_heads\":3}", "x.json") != 0 && strstr(hb_last_error(), "x.json"));
    CHECK(hb_wan_dit_config_parse(&a, "{\"dim\":", "y.json") != 0 && strstr(hb_last_error(), "y.json"));
    CHECK(hb_wan_dit_config_preset(&a, "wan9") != 0);
}

int main(void) {
    tl_seed();
    config_parsing();
    run_file("golden/dit21.safetensors");
    run_file("golden/dit22.safetensors");
    return tl_done();
}
