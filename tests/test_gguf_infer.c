/* A DiT without config.json (community GGUF files): hb_wan_dit_config_infer reads the config off the tensor shapes.
 * At full size (sparse files holding only the tensors it reads, at the official shapes) it gives the official
 * Wan2.2-TI2V-5B and Wan2.1-1.3B presets field for field and the Wan2.1-14B config; a DiT of another width
 * takes dim / 128 heads, and one whose width has no known head count is refused with one line. End to end: a
 * tiny Hummingbird-XT folder whose DiT is one `hb quantize` GGUF and no config.json generates with `hb generate`
 * the same video, byte for byte, as the folder with the same GGUF beside its config.json, and so does a folder
 * with no DiT given the file with `--dit`; a folder with two .gguf files is refused. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/wan_dit.h"
#include "random_models.h"
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A sparse safetensors file with the tensors the inference reads, at the shapes of config c (bf16). */
static void write_shapes(const char *path, const wan_dit_config *c) {
    json_t *h = json_object();
    size_t off = 0;
    char name[64];
    const int64_t D = c->dim, pp = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    struct { const char *n; int nd; int64_t s[5]; } t[] = {
        {"patch_embedding.weight", 5, {D, c->in_dim, c->patch[0], c->patch[1], c->patch[2]}},
        {"head.head.weight", 2, {pp * c->out_dim, D}},
        {"text_embedding.0.weight", 2, {D, c->text_dim}},
        {"time_embedding.0.weight", 2, {D, c->freq_dim}},
        {"blocks.0.self_attn.norm_q.weight", 1, {D}},
        {"blocks.0.norm3.weight", 1, {D}},
    };
    for (int i = 0; i < (int)(sizeof t / sizeof t[0]) + c->num_layers; i++) {
        const char *n = name;
        int nd = 2;
        int64_t s[5] = {c->ffn_dim, D};
        if (i < (int)(sizeof t / sizeof t[0])) n = t[i].n, nd = t[i].nd, memcpy(s, t[i].s, sizeof s);
        else snprintf(name, sizeof name, "blocks.%d.ffn.0.weight", i - (int)(sizeof t / sizeof t[0]));
        json_t *sh = json_array();
        size_t nb = 2;
        for (int k = 0; k < nd; k++) json_array_append_new(sh, json_integer(s[k])), nb *= (size_t)s[k];
        json_object_set_new(h, n, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "BF16", "shape", sh, "data_offsets",
                                            (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    char *js = json_dumps(h, JSON_COMPACT);
    uint64_t hl = strlen(js);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, &hl, 8) == 8 && write(fd, js, hl) == (ssize_t)hl && ftruncate(fd, (off_t)(8 + hl + off)) == 0);
    if (fd >= 0) close(fd);
    free(js);
    json_decref(h);
}

static bool same_config(const wan_dit_config *a, const wan_dit_config *b) {
    return a->dim == b->dim && a->ffn_dim == b->ffn_dim && a->freq_dim == b->freq_dim && a->num_heads == b->num_heads &&
           a->head_dim == b->head_dim && a->num_layers == b->num_layers && a->in_dim == b->in_dim &&
           a->out_dim == b->out_dim && a->text_len == b->text_len && a->text_dim == b->text_dim &&
           !memcmp(a->patch, b->patch, sizeof a->patch) && a->eps == b->eps && a->qk_norm == b->qk_norm &&
           a->cross_attn_norm == b->cross_attn_norm;
}

static int infer_from(const wan_dit_config *want, const char *tag, wan_dit_config *got) {
    char path[1100];
    snprintf(path, sizeof path, "%s/%s.safetensors", tl_tmpdir(), tag);
    write_shapes(path, want);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return -1;
    int rc = hb_wan_dit_config_infer(got, ck, path);
    hb_checkpoint_close(ck);
    return rc;
}

static void check_full_size(void) {
    const char *presets[] = {"wan2.2-ti2v-5b", "wan2.1-1.3b"};
    wan_dit_config want, got;
    for (int i = 0; i < 2; i++) {
        CHECK(hb_wan_dit_config_preset(&want, presets[i]) == 0);
        CHECKF(infer_from(&want, presets[i], &got) == 0, "%s: %s", presets[i], hb_last_error());
        CHECKF(same_config(&want, &got), "%s: inferred dim %d heads %d layers %d ffn %d in %d out %d", presets[i],
               got.dim, got.num_heads, got.num_layers, got.ffn_dim, got.in_dim, got.out_dim);
    }
    /* Wan2.1-T2V-14B (its config.json): 40 heads of 128 */
    CHECK(hb_wan_dit_config_preset(&want, "wan2.1-1.3b") == 0);
    want.dim = 5120, want.ffn_dim = 13824, want.num_heads = 40, want.head_dim = 128, want.num_layers = 40;
    CHECKF(infer_from(&want, "wan14b", &got) == 0 && same_config(&want, &got), "14B: %d heads, %d layers: %s",
           got.num_heads, got.num_layers, hb_last_error());
    /* another width: heads of 128; one with no head count known: refused */
    want.dim = 640, want.ffn_dim = 1024, want.num_heads = 5, want.head_dim = 128, want.num_layers = 3;
    CHECKF(infer_from(&want, "w640", &got) == 0 && same_config(&want, &got), "dim 640: %d heads", got.num_heads);
    want.dim = 200, want.num_heads = 2, want.head_dim = 100;
    CHECK(infer_from(&want, "w200", &got) != 0 && strstr(hb_last_error(), "head count") && strstr(hb_last_error(), "w200"));
}

static char g_out[16384];

static int hb(const char *args) { return tl_hb(args, g_out, sizeof g_out); }

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long L = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)L + 1);
    *n = b && fread(b, 1, (size_t)L, f) == (size_t)L ? (size_t)L : 0;
    fclose(f);
    return b;
}

/* Tiny Hummingbird-XT folder, its DiT rewritten at dim 256 (two heads of 128) and text_len 512 (Wan's), as a
 * q8_0 GGUF: with config.json and without. */
static void check_generate(hb_rng *r) {
    char dir[1024], args[6000], a[1100], b[1100], nocfg[1100];
    snprintf(dir, sizeof dir, "%s/xt", tl_tmpdir());
    snprintf(args, sizeof args, "mkmodel -q --arch hummingbird-xt-flat --tiny --seed %d '%s'", (int)(hb_rng_u64(r) % 1000), dir);
    CHECKF(hb(args) == 0, "%s", g_out);
    snprintf(args, sizeof args, "rm -f '%s'/diffusion_pytorch_model*", dir);
    CHECK(tl_run(args, NULL, 0) == 0);
    wan_dit_config c;
    CHECK(hb_wan_dit_config_preset(&c, "wan2.2-ti2v-5b") == 0);
    c.dim = 256, c.ffn_dim = 512, c.num_heads = 2, c.head_dim = 128, c.num_layers = 2, c.freq_dim = 64, c.text_dim = 64;
    CHECKF(hb_wan_dit_write_random(&c, dir, HB_BF16, hb_rng_u64(r), 1 << 30) == 0, "%s", hb_last_error());
    snprintf(args, sizeof args, "quantize -q '%s' '%s/dit.gguf' --type q8_0 && rm -f '%s'/diffusion_pytorch_model*", dir,
             dir, dir);
    CHECKF(hb(args) == 0, "%s", g_out);
    snprintf(nocfg, sizeof nocfg, "%s/xt_nocfg", tl_tmpdir());
    snprintf(args, sizeof args, "cp -r '%s' '%s' && rm '%s/config.json'", dir, nocfg, nocfg);
    CHECK(tl_run(args, NULL, 0) == 0);
    const char *gen = "-p 'a boat on a lake' -W 64 -H 64 -f 5 --seed 3";
    snprintf(a, sizeof a, "%s/cfg.y4m", tl_tmpdir());
    snprintf(b, sizeof b, "%s/nocfg.y4m", tl_tmpdir());
    snprintf(args, sizeof args, "generate -q -m '%s' %s -o '%s'", dir, gen, a);
    CHECKF(hb(args) == 0, "%s", g_out);
    snprintf(args, sizeof args, "generate -q -m '%s' %s -o '%s'", nocfg, gen, b);
    CHECKF(hb(args) == 0, "%s", g_out);
    size_t na = 0, nb = 0;
    char *va = slurp(a, &na), *vb = slurp(b, &nb);
    CHECKF(va && vb && na > 1000 && na == nb && !memcmp(va, vb, na), "the folder without config.json made another video");
    free(va), free(vb);
    /* --dit: a folder with no DiT at all (VAE, text encoder, tokenizer) and the file given apart */
    char nodit[1100], ext[1200], vd[1200];
    snprintf(nodit, sizeof nodit, "%s/xt_nodit", tl_tmpdir());
    snprintf(ext, sizeof ext, "%s/community.gguf", tl_tmpdir());
    snprintf(args, sizeof args, "cp -r '%s' '%s' && mv '%s/dit.gguf' '%s'", nocfg, nodit, nodit, ext);
    CHECK(tl_run(args, NULL, 0) == 0);
    snprintf(vd, sizeof vd, "%s/dit.y4m", tl_tmpdir());
    snprintf(args, sizeof args, "generate -q -m '%s' --dit '%s' %s -o '%s'", nodit, ext, gen, vd);
    CHECKF(hb(args) == 0, "%s", g_out);
    va = slurp(a, &na), vb = slurp(vd, &nb);
    CHECKF(va && vb && na > 1000 && na == nb && !memcmp(va, vb, na), "--dit made another video");
    free(va), free(vb);
    snprintf(args, sizeof args, "generate -q -m '%s' %s -o '%s'", nodit, gen, vd); /* without it: no DiT */
    CHECKF(hb(args) != 0 && strstr(g_out, "no diffusion transformer"), "%s", g_out);
    snprintf(args, sizeof args, "generate -q --diffusion-model '%s' %s -o '%s'", ext, gen, vd);
    CHECKF(hb(args) == 2 && strstr(g_out, "-m DIR"), "%s", g_out);
    /* two candidate DiT files: refused, naming the folder */
    snprintf(args, sizeof args, "cp '%s/dit.gguf' '%s/dit2.gguf'", nocfg, nocfg);
    CHECK(tl_run(args, NULL, 0) == 0);
    snprintf(args, sizeof args, "generate -q -m '%s' %s -o '%s'", nocfg, gen, b);
    CHECKF(hb(args) != 0 && strstr(g_out, "2 .gguf files") && strstr(g_out, nocfg), "%s", g_out);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_full_size();
    check_generate(&r);
    return tl_done();
}
