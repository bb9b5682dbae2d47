/* hb mkmodel: write a random-weight checkpoint folder in the official layout and names, at any size
 * (streaming: shards are generated and written chunk by chunk), atomically (temp folder, then rename).
 *
 * Architectures are rows of k_archs. To add one (a VAE, the text encoder, a whole hummingbird-xt folder):
 * write `static int make_X(const mk_opts *o, const char *dir)` that fills the (already created, empty)
 * folder `dir` — config files plus weights, e.g. through hb_safetensors_write_sharded() of
 * io/safetensors_writer.h or the model's own *_write_random() — honouring o->tiny / o->dims / o->dtype /
 * o->seed / o->shard_bytes where they apply, and add a row {name, help, make_X}. A whole-folder arch calls the
 * component makers into sub-folders (mkdir dir/transformer, dir/vae, ...). The temp folder, rename and error handling are done here. */
#include "tools.h"
#include "models/light_vae.h"
#include "io/safetensors_writer.h"
#include "models/wan_dit.h"
#include "pipeline/model_folder.h"
#include "mk_release.h"
#include "random_models.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mk_opts {
    const char *arch;
    bool tiny;
    const char *dims;        /* "key=value,key=value" or NULL */
    hb_dtype dtype;
    uint64_t seed;
    int64_t shard_bytes;
} mk_opts;

/* Apply --tiny and --dims to a Wan DiT config. */
static int wan_dims(wan_dit_config *c, const mk_opts *o) {
    if (o->tiny) {
        c->dim = 128; c->ffn_dim = 256; c->num_heads = 2; c->num_layers = 2;
        c->freq_dim = 64; c->text_dim = 64; c->text_len = 32;
    }
    if (o->dims) {
        char *s = strdup(o->dims), *save = NULL;
        if (!s) return hb_error("out of memory");
        int rc = 0;
        for (char *tok = strtok_r(s, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq) { rc = hb_error("--dims: '%s' is not key=value", tok); break; }
            *eq = 0;
            char *end;
            long v = strtol(eq + 1, &end, 10);
            if (*end || v <= 0 || v > (1L << 24)) { rc = hb_error("--dims: %s=%s is not a positive integer", tok, eq + 1); break; }
            static const char *const keys[] = {"dim", "ffn_dim", "num_layers", "num_heads", "freq_dim",
                                               "text_dim", "text_len", "in_dim", "out_dim"};
            int *dst[] = {&c->dim, &c->ffn_dim, &c->num_layers, &c->num_heads, &c->freq_dim,
                          &c->text_dim, &c->text_len, &c->in_dim, &c->out_dim};
            size_t k = 0;
            for (; k < sizeof keys / sizeof keys[0]; k++) if (!strcmp(tok, keys[k])) break;
            if (k == sizeof keys / sizeof keys[0])
                rc = hb_error("--dims: unknown key '%s' (known: dim, ffn_dim, num_layers, num_heads, freq_dim, "
                              "text_dim, text_len, in_dim, out_dim)", tok);
            else *dst[k] = (int)v;
        }
        free(s);
        if (rc) return -1;
    }
    if (c->num_heads <= 0 || c->dim % c->num_heads)
        return hb_error("dim %d is not a multiple of num_heads %d", c->dim, c->num_heads);
    c->head_dim = c->dim / c->num_heads;
    return hb_wan_dit_config_check(c, "mkmodel");
}

static int make_wan_dit(const mk_opts *o, const char *dir) {
    wan_dit_config c;
    if (hb_wan_dit_config_preset(&c, o->arch) || wan_dims(&c, o)) return -1;
    hb_log(HB_LOG_INFO, "%s: dim %d, ffn %d, %d heads, %d layers, in/out %d/%d, %.3f B parameters, %s", o->arch, c.dim,
           c.ffn_dim, c.num_heads, c.num_layers, c.in_dim, c.out_dim, (double)hb_wan_dit_param_count(&c) * 1e-9,
           hb_dtype_name(o->dtype));
    return hb_wan_dit_write_random(&c, dir, o->dtype, o->seed, o->shard_bytes);
}

/* (pipeline task) whole model folders: DiT + VAE + umT5 + tokenizer + tiny/light decoders, src/pipeline/model_folder.c */
static int make_hb_folder(const mk_opts *o, const char *dir) {
    if (o->dims) return hb_error("--dims does not apply to %s (use --tiny or the full size)", o->arch);
    /* hummingbird-xt-flat / hummingbird-xtx-flat are the library's folders */
    hb_mkfolder_opts f = {.arch = strcmp(o->arch, "hummingbird-xtx-flat") ? "hummingbird-xt" : "hummingbird-xtx", .tiny = o->tiny,
                          .dtype = o->dtype, .seed = o->seed};
    return hb_model_folder_write_random(dir, &f);
}

/* The Hummingbird-XT / XTX release roots (tools/mk_release.c). */
static int make_release(const mk_opts *o, const char *dir) {
    if (o->dims) return hb_error("--dims does not apply to %s (use --tiny or the full size)", o->arch);
    if (!strcmp(o->arch, "hummingbird-xt")) return mk_xt_release(dir, o->tiny, o->dtype, o->seed);
    return mk_xtx_release(dir, !strcmp(o->arch, "hummingbird-xtx-5b"), o->tiny, o->dtype, o->seed);
}

/* the release's light decoder alone: config.json + diffusion_pytorch_model.safetensors (models/light_vae.h) */
static int make_light_vae(const mk_opts *o, const char *dir) {
    if (o->dims) return hb_error("--dims does not apply to %s (use --tiny or the full size)", o->arch);
    hb_light_vae_config c;
    hb_light_vae_config_default(&c, o->tiny, false);
    hb_log(HB_LOG_INFO, "%s: decoder_block_out_channels [%d, %d, %d, %d], float32", o->arch, c.widths[4], c.widths[3],
           c.widths[2], c.widths[1]);
    return hb_light_vae_write_random(dir, &c, o->seed);
}

static const struct mk_arch {
    const char *name, *help;
    int (*make)(const mk_opts *, const char *dir);
} k_archs[] = {
    {"wan2.2-ti2v-5b", "Wan2.2-TI2V-5B diffusion transformer (config.json + sharded DiT weights)", make_wan_dit},
    {"wan2.1-1.3b", "Wan2.1-T2V-1.3B diffusion transformer (config.json + sharded DiT weights)", make_wan_dit},
    {"hummingbird-xt", "Hummingbird-XT release's models/ folder: hm_2.2_5B/ (config, one DiT safetensors, "
                      "Wan2.2_VAE.pth, umT5 .pth, tokenizer) and vae/" HB_LIGHT_VAE_RELEASE_DIR "/ (light decoder)",
     make_release},
    {"hummingbird-xt-flat", "Hummingbird-XT as one flat folder: Wan2.2-TI2V-5B DiT, Wan2.2 VAE, umT5 + tokenizer, TAEW2.2, "
                           "light decoder (vae/" HB_LIGHT_VAE_RELEASE_DIR "/)",
     make_hb_folder},
    {"hummingbird-xtx", "Hummingbird-XTX release root: checkpoints/wan21_model.pt (training dict), wan_models/"
     "Wan2.1-T2V-1.3B (config, base DiT, Wan2.1_VAE.pth), wan_models/Wan2.2-TI2V-5B (umT5 .pth, tokenizer)",
     make_release},
    {"hummingbird-xtx-5b", "the 5B Hummingbird-XTX release root: checkpoint/wan_22_vsink1_5B_seq_880/model.pt, "
     "wan_models/Wan2.2-TI2V-5B (config, base DiT, Wan2.2_VAE.pth, umT5 .pth, tokenizer)", make_release},
    {"hummingbird-xtx-flat", "Hummingbird-XTX as one flat folder: Wan2.1-1.3B causal DiT, Wan2.1 VAE, umT5 + tokenizer, "
     "TAEW2.1", make_hb_folder},
    {"hummingbird-light-vae", "the release's light decoder alone (config.json + diffusion_pytorch_model.safetensors, as "
                              "vae/" HB_LIGHT_VAE_RELEASE_DIR "/)", make_light_vae},
};
#define NARCHS (sizeof k_archs / sizeof k_archs[0])

static void usage(FILE *f) {
    fprintf(f, "usage: hb mkmodel --arch ARCH [--tiny] [--dims k=v,...] [--dtype bf16|f32|f16] [--seed N]\n"
               "                  [--shard-mb N] OUT_DIR\n\n"
               "Writes a random-weight checkpoint folder in the official layout (streaming, any size).\n"
               "  --tiny        small dims that run in seconds (dim 128, ffn 256, 2 heads, 2 layers, ...)\n"
               "  --dims        override dims: dim, ffn_dim, num_layers, num_heads, freq_dim, text_dim,\n"
               "                text_len, in_dim, out_dim\n"
               "  --dtype       stored dtype (default bf16)\n"
               "  --seed        RNG seed (default 0)\n"
               "  --shard-mb    maximum shard size in MiB (default 4096)\n\narchitectures:\n");
    for (size_t i = 0; i < NARCHS; i++) fprintf(f, "  %-16s %s\n", k_archs[i].name, k_archs[i].help);
}

int cmd_mkmodel(int argc, char **argv) {
    mk_opts o = {.dtype = HB_BF16, .shard_bytes = (int64_t)4096 << 20};
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return tool_fail(argv[0]);
        if (c) continue;
        bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--tiny")) o.tiny = true;
        else if (!strcmp(a, "--arch") && has) o.arch = argv[++i];
        else if (!strcmp(a, "--dims") && has) o.dims = argv[++i];
        else if (!strcmp(a, "--dtype") && has) {
            const char *d = argv[++i];
            if (!strcasecmp(d, "bf16")) o.dtype = HB_BF16;
            else if (!strcasecmp(d, "f32")) o.dtype = HB_F32;
            else if (!strcasecmp(d, "f16")) o.dtype = HB_F16;
            else { fprintf(stderr, "hb mkmodel: --dtype must be bf16, f32 or f16 (got '%s')\n", d); return 2; }
        } else if (!strcmp(a, "--seed") && has) {
            char *end;
            o.seed = strtoull(argv[++i], &end, 10);
            if (*end) { fprintf(stderr, "hb mkmodel: --seed needs a number\n"); return 2; }
        } else if (!strcmp(a, "--shard-mb") && has) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1) { fprintf(stderr, "hb mkmodel: --shard-mb needs a positive number\n"); return 2; }
            o.shard_bytes = (int64_t)v << 20;
        } else if (a[0] == '-') {
            fprintf(stderr, "hb mkmodel: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!out) out = a;
        else { fprintf(stderr, "hb mkmodel: more than one OUT_DIR ('%s', '%s')\n", out, a); return 2; }
    }
    if (!o.arch || !out) { usage(stderr); return 2; }
    const struct mk_arch *arch = NULL;
    for (size_t i = 0; i < NARCHS; i++) if (!strcmp(o.arch, k_archs[i].name)) arch = &k_archs[i];
    if (!arch) {
        fprintf(stderr, "hb mkmodel: unknown architecture '%s'\n\n", o.arch);
        usage(stderr);
        return 2;
    }
    char tmp[4096];
    if (hb_folder_stage_begin(out, tmp, sizeof tmp)) return tool_fail(argv[0]);
    double t0 = hb_time_now();
    if (arch->make(&o, tmp)) {
        hb_folder_stage_abort(tmp);
        return tool_fail(argv[0]);
    }
    if (hb_folder_stage_finish(tmp, out)) return tool_fail(argv[0]);
    hb_log(HB_LOG_INFO, "wrote %s in %.1f s", out, hb_time_now() - t0);
    return 0;
}
