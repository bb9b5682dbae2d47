/* hb mkmodel: a tiny random model is written through the CLI, loaded through the real folder path
 * (config.json + sharded safetensors + index), runs, and is deterministic (repeat, 1 vs 2 threads bitwise,
 * same seed -> same bytes, sharding does not change the result); broken folders give one clear error
 * naming the file (truncated shard, mis-shaped tensor, missing config), and the CLI refuses bad requests. */
#include "testlib.h"
#include "models/wan_dit.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)k + 1);
    *n = fread(s, 1, (size_t)k, f);
    s[*n] = 0;
    fclose(f);
    return s;
}

static void spit(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(s, 1, n, f);
    fclose(f);
}

typedef struct {
    float *x, *t, *ctx;
    int64_t F, H, W, nout;
} rin;

static void make_input(const wan_dit_config *c, hb_rng *r, rin *in) {
    in->F = 3; in->H = 6; in->W = 8;
    int64_t nx = (int64_t)c->in_dim * in->F * in->H * in->W;
    in->x = malloc(sizeof(float) * (size_t)nx);
    tl_fill_normal(r, in->x, nx, 1.0f);
    int64_t L = in->F * (in->H / 2) * (in->W / 2);
    in->t = malloc(sizeof(float) * (size_t)L);
    for (int64_t i = 0; i < L; i++) in->t[i] = 1000.0f * hb_rng_uniform(r); /* genuinely per token */
    in->ctx = malloc(sizeof(float) * (size_t)(5 * c->text_dim));
    tl_fill_normal(r, in->ctx, 5 * c->text_dim, 1.0f);
    in->nout = (int64_t)c->out_dim * in->F * in->H * in->W;
}

static float *run(const wan_dit *m, const rin *in) {
    float *out = malloc(sizeof(float) * (size_t)in->nout);
    int64_t L = in->F * (in->H / 2) * (in->W / 2);
    wan_dit_input wi = {.x = in->x, .F = in->F, .H = in->H, .W = in->W, .t = in->t, .nt = L, .context = in->ctx,
                        .ctx_len = 5};
    int rc = hb_wan_dit_forward(m, &wi, out, NULL);
    CHECKF(rc == 0, "%s", hb_last_error());
    return out;
}

static bool files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x); free(y);
    return eq;
}


/* Official -> diffusers tensor name (written here independently of the io layer's table). */
static void to_diffusers(const char *n, char *out, size_t cap) {
    static const char *const top[][2] = {
        {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
        {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
        {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
        {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
        {"time_projection.1.", "condition_embedder.time_proj."},
        {"head.head.", "proj_out."}, {"head.modulation", "scale_shift_table"}};
    static const char *const blk[][2] = {
        {"self_attn.q.", "attn1.to_q."}, {"self_attn.k.", "attn1.to_k."}, {"self_attn.v.", "attn1.to_v."},
        {"self_attn.o.", "attn1.to_out.0."}, {"self_attn.norm_q.", "attn1.norm_q."}, {"self_attn.norm_k.", "attn1.norm_k."},
        {"cross_attn.q.", "attn2.to_q."}, {"cross_attn.k.", "attn2.to_k."}, {"cross_attn.v.", "attn2.to_v."},
        {"cross_attn.o.", "attn2.to_out.0."}, {"cross_attn.norm_q.", "attn2.norm_q."}, {"cross_attn.norm_k.", "attn2.norm_k."},
        {"norm3.", "norm2."}, {"ffn.0.", "ffn.net.0.proj."}, {"ffn.2.", "ffn.net.2."}, {"modulation", "scale_shift_table"}};
    snprintf(out, cap, "%s", n);
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strncmp(n, top[i][0], strlen(top[i][0]))) { snprintf(out, cap, "%s%s", top[i][1], n + strlen(top[i][0])); return; }
    int b, k = 0;
    if (sscanf(n, "blocks.%d.%n", &b, &k) == 1 && k > 0)
        for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
            if (!strncmp(n + k, blk[i][0], strlen(blk[i][0]))) {
                snprintf(out, cap, "blocks.%d.%s%s", b, blk[i][1], n + k + strlen(blk[i][0]));
                return;
            }
}

int main(void) {
    uint64_t seed = tl_seed();
    hb_rng rng;
    hb_rng_seed(&rng, seed);
    const char *tmp = tl_tmpdir();
    char out[16384], a[1024], b[1024], c2[1024], path[4096], args[8192];

    /* --- write: tiny 5B-arch model in f32 and bf16, the same seed twice, and a sharded copy */
    snprintf(a, sizeof a, "%s/m_a", tmp);
    snprintf(b, sizeof b, "%s/m_b", tmp);
    snprintf(c2, sizeof c2, "%s/m_sharded", tmp);
    snprintf(args, sizeof args, "mkmodel --arch wan2.2-ti2v-5b --tiny --dtype f32 --seed 7 '%s'", a);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "mkmodel --arch wan2.2-ti2v-5b --tiny --dtype f32 --seed 7 '%s'", b);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "mkmodel --arch wan2.2-ti2v-5b --tiny --dtype f32 --seed 7 --shard-mb 1 '%s'", c2);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    char fa[4096], fb[4096];
    snprintf(fa, sizeof fa, "%s/diffusion_pytorch_model-00001-of-00001.safetensors", a);
    snprintf(fb, sizeof fb, "%s/diffusion_pytorch_model-00001-of-00001.safetensors", b);
    CHECK(files_equal(fa, fb));
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model-00002-of-00003.safetensors", c2);
    CHECKF(access(path, F_OK) == 0, "expected 3 shards of <= 1 MiB in %s", c2);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors.index.json", c2);
    CHECK(access(path, F_OK) == 0);
    /* no temp folder left behind */
    snprintf(args, sizeof args, "ls -a '%s' | grep -c 'tmp-' || true", tmp);
    tl_run(args, out, sizeof out);
    CHECKF(atoi(out) == 0, "temp folders left: %s", out);

    /* --- load through the folder path and run */
    wan_dit *m = hb_wan_dit_open(a, NULL);
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) return tl_done();
    CHECK(m->cfg.dim == 128 && m->cfg.in_dim == 48 && m->cfg.num_layers == 2 && m->cfg.text_len == 32);
    rin in;
    make_input(&m->cfg, &rng, &in);
    hb_threads_init(1);
    float *o1 = run(m, &in);
    float *o1b = run(m, &in);
    hb_threads_init(2);
    float *o2 = run(m, &in);
    CHECK(memcmp(o1, o1b, sizeof(float) * (size_t)in.nout) == 0);
    CHECKF(memcmp(o1, o2, sizeof(float) * (size_t)in.nout) == 0, "1 vs 2 threads differ");
    double mx = 0;
    bool finite = true;
    for (int64_t i = 0; i < in.nout; i++) {
        if (!(o1[i] == o1[i]) || o1[i] > 1e30f || o1[i] < -1e30f) finite = false;
        if (o1[i] > mx) mx = o1[i];
    }
    CHECK(finite && mx > 0);
    /* sharded copy (same seed): bitwise the same model */
    wan_dit *ms = hb_wan_dit_open(c2, NULL);
    CHECKF(ms != NULL, "%s", hb_last_error());
    if (ms) {
        float *os = run(ms, &in);
        CHECK(memcmp(o1, os, sizeof(float) * (size_t)in.nout) == 0);
        free(os);
        hb_wan_dit_free(ms);
    }
    /* bf16 copy of the same seed: close to the f32 model (2e-2, the bf16 DiT threshold) */
    snprintf(path, sizeof path, "%s/m_bf16", tmp);
    snprintf(args, sizeof args, "mkmodel --arch wan2.2-ti2v-5b --tiny --seed 7 '%s'", path);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    wan_dit *mb = hb_wan_dit_open(path, NULL);
    CHECKF(mb != NULL, "%s", hb_last_error());
    if (mb) {
        float *ob = run(mb, &in);
        CHECK_REL(ob, o1, in.nout, 2e-2);
        CHECK(memcmp(ob, o1, sizeof(float) * (size_t)in.nout) != 0);
        free(ob);
        hb_wan_dit_free(mb);
    }
    /* a diffusers-style transformer/config.json over the same weights loads the same model */
    {
        char root[1024], tdir[2048], cmd[16384];
        snprintf(root, sizeof root, "%s/diffusers", tmp);
        snprintf(tdir, sizeof tdir, "%s/transformer", root);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/*.safetensors* '%s'/", tdir, a, tdir);
        CHECK(tl_run(cmd, NULL, 0) == 0);
        const char *dj = "{\"_class_name\":\"WanTransformer3DModel\",\"attention_head_dim\":64,\"num_attention_heads\":2,"
                         "\"ffn_dim\":256,\"freq_dim\":64,\"in_channels\":48,\"out_channels\":48,\"num_layers\":2,"
                         "\"text_dim\":64,\"text_len\":32,\"patch_size\":[1,2,2],\"qk_norm\":\"rms_norm_across_heads\","
                         "\"cross_attn_norm\":true,\"eps\":1e-06}";
        snprintf(path, sizeof path, "%s/config.json", tdir);
        spit(path, dj, strlen(dj));
        wan_dit *md = hb_wan_dit_open(tdir, NULL);
        CHECKF(md != NULL, "%s", hb_last_error());
        if (md) {
            float *od = run(md, &in);
            CHECK(memcmp(o1, od, sizeof(float) * (size_t)in.nout) == 0);
            free(od);
            hb_wan_dit_free(md);
        }
    }
    /* the same weights under diffusers names (a transformer/ folder of a diffusers root) load the same model */
    {
        char root[1024], tdir[2048], cmd[4096];
        snprintf(root, sizeof root, "%s/diffusers_names", tmp);
        snprintf(tdir, sizeof tdir, "%s/transformer", root);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tdir);
        CHECK(tl_run(cmd, NULL, 0) == 0);
        int n = hb_checkpoint_count(m->ck);
        char **names = calloc((size_t)n, sizeof *names);
        hb_tensor *ts = calloc((size_t)n, sizeof *ts);
        bool renamed_norm = false;
        for (int i = 0; i < n; i++) {
            names[i] = malloc(256);
            to_diffusers(hb_checkpoint_name(m->ck, i), names[i], 256);
            renamed_norm |= !strcmp(names[i], "blocks.1.norm2.weight");
            ts[i] = hb_checkpoint_tensor(m->ck, i);
        }
        CHECK(renamed_norm);
        snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", tdir);
        CHECKF(hb_safetensors_write(path, n, (const char *const *)names, ts, NULL) == 0, "%s", hb_last_error());
        const char *dj = "{\"_class_name\":\"WanTransformer3DModel\",\"attention_head_dim\":64,\"num_attention_heads\":2,"
                         "\"ffn_dim\":256,\"freq_dim\":64,\"in_channels\":48,\"out_channels\":48,\"num_layers\":2,"
                         "\"text_dim\":64,\"text_len\":32,\"patch_size\":[1,2,2],\"qk_norm\":\"rms_norm_across_heads\","
                         "\"cross_attn_norm\":true,\"eps\":1e-06}";
        snprintf(path, sizeof path, "%s/config.json", tdir);
        spit(path, dj, strlen(dj));
        wan_dit *md = hb_wan_dit_open(tdir, NULL);
        CHECKF(md != NULL, "%s", hb_last_error());
        if (md) {
            float *od = run(md, &in);
            CHECK(memcmp(o1, od, sizeof(float) * (size_t)in.nout) == 0);
            free(od);
            hb_wan_dit_free(md);
        }
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        free(ts);
    }
    hb_wan_dit_free(m);

    /* --- broken folders */
    {
        char bad[2048], cmd[16384];
        /* truncated shard */
        snprintf(bad, sizeof bad, "%s/trunc", tmp);
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && truncate -s 300000 '%s'/diffusion_pytorch_model-00001-of-00001.safetensors",
                 a, bad, bad);
        CHECK(tl_run(cmd, NULL, 0) == 0);
        wan_dit *mt = hb_wan_dit_open(bad, NULL);
        CHECK(mt == NULL);
        CHECKF(strstr(hb_last_error(), "diffusion_pytorch_model-00001-of-00001.safetensors") != NULL, "message: %s",
               hb_last_error());
        printf("truncated shard: %s\n", hb_last_error());
        hb_wan_dit_free(mt);
        /* mis-shaped tensor: the config claims another ffn_dim than the weights have */
        snprintf(bad, sizeof bad, "%s/shape", tmp);
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && sed -i 's/\"ffn_dim\": 256/\"ffn_dim\": 384/' '%s'/config.json", a, bad, bad);
        CHECK(tl_run(cmd, NULL, 0) == 0);
        mt = hb_wan_dit_open(bad, NULL);
        CHECK(mt == NULL);
        CHECKF(strstr(hb_last_error(), "blocks.0.ffn.0.weight") && strstr(hb_last_error(), "shape"), "message: %s",
               hb_last_error());
        printf("mis-shaped tensor: %s\n", hb_last_error());
        hb_wan_dit_free(mt);
        /* missing config */
        snprintf(bad, sizeof bad, "%s/noconfig", tmp);
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && rm '%s'/config.json", a, bad, bad);
        CHECK(tl_run(cmd, NULL, 0) == 0);
        mt = hb_wan_dit_open(bad, NULL);
        CHECK(mt == NULL && strstr(hb_last_error(), "config.json") && strstr(hb_last_error(), bad));
        hb_wan_dit_free(mt);
        /* corrupt config */
        snprintf(path, sizeof path, "%s/shape/config.json", tmp);
        spit(path, "{\"dim\": 128,", 12);
        mt = hb_wan_dit_open(bad, NULL);
        CHECK(mt == NULL);
        snprintf(bad, sizeof bad, "%s/shape", tmp);
        mt = hb_wan_dit_open(bad, NULL);
        CHECK(mt == NULL && strstr(hb_last_error(), "config.json"));
        hb_wan_dit_free(mt);
    }

    /* --- CLI refusals: existing non-empty folder, unknown arch, bad dims; nothing half-written */
    snprintf(args, sizeof args, "mkmodel --arch wan2.1-1.3b --tiny '%s'", a);
    int rc = tl_hb(args, out, sizeof out);
    CHECKF(rc != 0 && strstr(out, "not empty"), "rc %d: %s", rc, out);
    snprintf(args, sizeof args, "mkmodel --arch wan9 '%s/x'", tmp);
    CHECK(tl_hb(args, out, sizeof out) != 0 && strstr(out, "unknown architecture"));
    snprintf(args, sizeof args, "mkmodel --arch wan2.1-1.3b --tiny --dims dim=100,num_heads=3 '%s/y'", tmp);
    rc = tl_hb(args, out, sizeof out);
    CHECKF(rc != 0 && strstr(out, "num_heads"), "rc %d: %s", rc, out);
    snprintf(path, sizeof path, "%s/y", tmp);
    CHECK(access(path, F_OK) != 0);
    snprintf(args, sizeof args, "mkmodel --arch wan2.1-1.3b --tiny --dims dim=96,num_heads=1,num_layers=1 --dtype f16 '%s/z'", tmp);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/z", tmp);
    m = hb_wan_dit_open(path, NULL);
    CHECKF(m && m->cfg.dim == 96 && m->cfg.in_dim == 16 && m->cfg.num_layers == 1 && m->head_w.dtype == HB_F16, "%s",
           hb_last_error());
    hb_wan_dit_free(m);

    free(o1); free(o1b); free(o2);
    free(in.x); free(in.t); free(in.ctx);
    return tl_done();
}
