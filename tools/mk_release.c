/* hb mkmodel --arch hummingbird-xt: the Hummingbird-XT release's models/ folder, as run_t2v.sh / run_i2v.sh read it
 * (shared/spec/hummingbird-release.md section 1):
 *   hm_2.2_5B/                   config.json + diffusion_pytorch_model.safetensors (one file, official names; a
 *                                full-size model beyond 4 GiB stays sharded with its index), Wan2.2_VAE.pth,
 *                                models_t5_umt5-xxl-enc-bf16.pth, google/umt5-xxl/spiece.model
 *   vae/wan22_v1_tiling_16_12/   config.json + diffusion_pytorch_model.safetensors (the light decoder)
 *
 * hb mkmodel --arch hummingbird-xtx: a random-weight Hummingbird-XTX release root, laid out as the release's
 * long_video/ scripts read it (shared/spec/hummingbird-release.md section 1):
 *   wan_models/Wan2.1-T2V-1.3B/   config.json + diffusion_pytorch_model*.safetensors (the base DiT) + Wan2.1_VAE.pth
 *   wan_models/Wan2.2-TI2V-5B/    models_t5_umt5-xxl-enc-bf16.pth + google/umt5-xxl/spiece.model
 *   checkpoints/wan21_model.pt    the training dict: generator_ema (float32; names "model." + the Wan name, every
 *                                 other one with a "_fsdp_wrapped_module." segment), and with --tiny also
 *                                 generator (other values) and critic
 * --arch hummingbird-xtx-5b: the 5B release, checkpoint/wan_22_vsink1_5B_seq_880/model.pt over
 * wan_models/Wan2.2-TI2V-5B/ (config.json + base DiT + Wan2.2_VAE.pth + text encoder + tokenizer).
 * The trained weights differ from the base DiT's (generator_ema = base values negated), so a run that used the
 * base weights instead of the .pt shows. Built from a flat random folder (pipeline/model_folder.h). */
#include "mk_release.h"
#include "models/light_vae.h"
#include "pt_write.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "pipeline/model_folder.h"
#include "random_models.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdirs(const char *root, const char *rel) {
    char p[8400];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST) return hb_error("%s: cannot create folder: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) && errno != EEXIST) return hb_error("%s: cannot create folder: %s", p, strerror(errno));
    return 0;
}

static int move(const char *from_dir, const char *name, const char *to_dir, const char *to_name) {
    char a[8400], b[8400];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, to_name ? to_name : name);
    if (rename(a, b)) return hb_error("%s: cannot move to %s: %s", a, b, strerror(errno));
    return 0;
}

/* Every tensor of a checkpoint as F32 (owned copies), with its names. */
typedef struct { int n; char **names; hb_tensor *t; } tensor_set;

static void set_free(tensor_set *s) {
    for (int i = 0; i < s->n; i++) { free(s->names[i]); free(s->t[i].data); }
    free(s->names); free(s->t);
    memset(s, 0, sizeof *s);
}

/* names: the checkpoint's own, or `official` (the lookup maps them to whatever the file uses). */
static int set_load(const char *path, int n_official, const char *const *official, tensor_set *s) {
    hb_checkpoint *ck = hb_checkpoint_open(path);
    if (!ck) return -1;
    int n = official ? n_official : hb_checkpoint_count(ck), rc = -1;
    if (official && n != hb_checkpoint_count(ck)) {
        hb_error("%s: %d tensors, %d expected", path, hb_checkpoint_count(ck), n);
        goto done;
    }
    s->names = calloc((size_t)n, sizeof *s->names);
    s->t = calloc((size_t)n, sizeof *s->t);
    if (!s->names || !s->t) { hb_error("out of memory"); goto done; }
    for (int i = 0; i < n; i++) {
        hb_tensor src;
        if (official ? hb_checkpoint_get(ck, official[i], &src) : (src = hb_checkpoint_tensor(ck, i), 0)) goto done;
        float *d = malloc(sizeof(float) * (size_t)(hb_tensor_numel(&src) > 0 ? hb_tensor_numel(&src) : 1));
        s->names[i] = strdup(official ? official[i] : hb_checkpoint_name(ck, i));
        if (!d || !s->names[i]) { free(d); hb_error("out of memory"); goto done; }
        hb_convert_to_f32(d, src.data, src.dtype, (size_t)hb_tensor_numel(&src));
        s->t[i] = hb_tensor_make(HB_F32, src.ndim, src.shape, d);
        s->n = i + 1;
    }
    rc = 0;
done:
    hb_checkpoint_close(ck);
    if (rc) set_free(s);
    return rc;
}

/* The official umT5 names (Wan t5.py T5Encoder), as models_t5_umt5-xxl-enc-bf16.pth holds them. */
static int umt5_names(const char *te_dir, char ***out) {
    hb_checkpoint *ck = hb_checkpoint_open(te_dir);
    if (!ck) return -1;
    int total = hb_checkpoint_count(ck), layers = 0;
    char nm[96];
    for (;; layers++) {
        snprintf(nm, sizeof nm, "blocks.%d.norm1.weight", layers);
        if (!hb_checkpoint_has(ck, nm)) break;
    }
    hb_checkpoint_close(ck);
    static const char *const per[] = {"attn.q", "attn.k", "attn.v", "attn.o", "pos_embedding.embedding", "norm1", "norm2",
                                      "ffn.gate.0", "ffn.fc1", "ffn.fc2"};
    const int np = (int)(sizeof per / sizeof per[0]), n = 2 + layers * np;
    if (n != total) return hb_error("%s: %d tensors, the umT5 layout of %d layers has %d", te_dir, total, layers, n);
    char **v = calloc((size_t)n, sizeof *v);
    if (!v) return hb_error("out of memory");
    v[0] = strdup("token_embedding.weight");
    v[1] = strdup("norm.weight");
    for (int l = 0; l < layers; l++)
        for (int k = 0; k < np; k++) {
            snprintf(nm, sizeof nm, "blocks.%d.%s.weight", l, per[k]);
            v[2 + l * np + k] = strdup(nm);
        }
    *out = v;
    return n;
}

static int write_text_encoder(const char *flat, const char *te_dir) {
    char src[8400], dst[8400];
    snprintf(src, sizeof src, "%s/text_encoder", flat);
    char **names = NULL;
    int n = umt5_names(src, &names), rc = -1;
    tensor_set s = {0};
    if (n < 0) return -1;
    if (set_load(src, n, (const char *const *)names, &s) == 0) {
        snprintf(dst, sizeof dst, "%s/models_t5_umt5-xxl-enc-bf16.pth", te_dir);
        pt_group g = {NULL, s.n, (const char *const *)s.names, s.t};
        rc = pt_write(dst, 1, &g);
    }
    set_free(&s);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int write_vae(const char *flat, const char *from, const char *base, const char *to) {
    char src[8400], dst[8400];
    snprintf(src, sizeof src, "%s/%s", flat, from);
    snprintf(dst, sizeof dst, "%s/%s", base, to);
    tensor_set s = {0};
    if (set_load(src, 0, NULL, &s)) return -1;
    pt_group g = {NULL, s.n, (const char *const *)s.names, s.t};
    int rc = pt_write(dst, 1, &g);
    set_free(&s);
    return rc;
}

/* "model." + name, with an FSDP wrapper segment when fsdp (as FSDP-trained checkpoints name them). */
static char *wrapper_name(const char *name, bool fsdp) {
    size_t L = strlen(name) + 32;
    char *s = malloc(L);
    if (s) snprintf(s, L, "model.%s%s", fsdp ? "_fsdp_wrapped_module." : "", name);
    return s;
}

/* checkpoints/wan21_model.pt from the base DiT: generator_ema = -base (float32); with tiny also generator =
 * 0.5 * base and a critic of two tensors. */
static int write_training_dict(const char *base, const char *path, bool tiny) {
    tensor_set ema = {0}, gen = {0};
    int rc = -1;
    if (set_load(base, 0, NULL, &ema) || (tiny && set_load(base, 0, NULL, &gen))) goto done;
    for (int i = 0; i < ema.n; i++) {
        float *e = ema.t[i].data;
        for (int64_t j = 0; j < hb_tensor_numel(&ema.t[i]); j++) e[j] = -e[j];
        char *w = wrapper_name(ema.names[i], i % 2);
        if (!w) { hb_error("out of memory"); goto done; }
        free(ema.names[i]);
        ema.names[i] = w;
    }
    for (int i = 0; i < gen.n; i++) {
        float *g = gen.t[i].data;
        for (int64_t j = 0; j < hb_tensor_numel(&gen.t[i]); j++) g[j] *= 0.5f;
        char *w = wrapper_name(gen.names[i], false);
        if (!w) { hb_error("out of memory"); goto done; }
        free(gen.names[i]);
        gen.names[i] = w;
    }
    pt_group groups[3] = {{"generator", gen.n, (const char *const *)gen.names, gen.t},
                          {"critic", gen.n < 2 ? gen.n : 2, (const char *const *)gen.names, gen.t},
                          {"generator_ema", ema.n, (const char *const *)ema.names, ema.t}};
    rc = tiny ? pt_write(path, 3, groups) : pt_write(path, 1, &groups[2]);
done:
    set_free(&ema);
    set_free(&gen);
    return rc;
}

/* Every diffusion_pytorch_model* file of the flat folder into the base folder. */
static int move_dit(const char *flat, const char *base) {
    DIR *d = opendir(flat);
    if (!d) return hb_error("%s: cannot read folder: %s", flat, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)))
        if (!strncmp(e->d_name, "diffusion_pytorch_model", 23)) rc = move(flat, e->d_name, base, NULL);
    closedir(d);
    return rc ? rc : move(flat, "config.json", base, NULL);
}

/* The two releases: the 1.3B (the write-up's XTX) and the 5B (causal Wan2.2-TI2V-5B, Wan2.2 VAE). */
typedef struct { const char *flat_arch, *base, *vae_from, *vae_to, *pt_dir, *pt; } xtx_layout;
static const xtx_layout k_13b = {"hummingbird-xtx", "wan_models/Wan2.1-T2V-1.3B", "Wan2.1_VAE.safetensors", "Wan2.1_VAE.pth",
                                 "checkpoints", "wan21_model.pt"};
static const xtx_layout k_5b = {"hummingbird-xt", "wan_models/Wan2.2-TI2V-5B", "Wan2.2_VAE.safetensors", "Wan2.2_VAE.pth",
                                "checkpoint/wan_22_vsink1_5B_seq_880", "model.pt"};

int mk_xtx_release(const char *dir, bool five_b, bool tiny, hb_dtype dtype, uint64_t seed) {
    const xtx_layout *L = five_b ? &k_5b : &k_13b;
    char flat[4096], base[4096], te[4096], pt[4096];
    snprintf(flat, sizeof flat, "%s/.flat", dir);
    snprintf(base, sizeof base, "%s/%s", dir, L->base);
    snprintf(te, sizeof te, "%s/wan_models/Wan2.2-TI2V-5B", dir);
    snprintf(pt, sizeof pt, "%s/%s/%s", dir, L->pt_dir, L->pt);
    if (mkdirs(dir, ".flat") || mkdirs(dir, L->base) || mkdirs(dir, "wan_models/Wan2.2-TI2V-5B") || mkdirs(dir, L->pt_dir))
        return -1;
    hb_mkfolder_opts f = {.arch = L->flat_arch, .tiny = tiny, .dtype = dtype, .seed = seed};
    int rc = -1;
    if (hb_model_folder_write_random(flat, &f)) goto done;
    if (move_dit(flat, base) || write_vae(flat, L->vae_from, base, L->vae_to) || write_text_encoder(flat, te) ||
        move(flat, "google", te, NULL))
        goto done;
    if (write_training_dict(base, pt, tiny)) goto done;
    rc = 0;
done:
    hb_folder_stage_abort(flat);
    return rc;
}

/* The DiT as the release merges it: one diffusion_pytorch_model.safetensors when the writer made one shard. */
static int move_dit_single(const char *flat, const char *hm) {
    char one[8400];
    snprintf(one, sizeof one, "%s/diffusion_pytorch_model-00001-of-00001.safetensors", flat);
    if (access(one, F_OK) != 0) return move_dit(flat, hm);
    if (move(flat, "diffusion_pytorch_model-00001-of-00001.safetensors", hm, "diffusion_pytorch_model.safetensors") ||
        move(flat, "config.json", hm, NULL))
        return -1;
    snprintf(one, sizeof one, "%s/diffusion_pytorch_model.safetensors.index.json", flat);
    return unlink(one) == 0 ? 0 : hb_error("%s: cannot remove: %s", one, strerror(errno));
}

int mk_xt_release(const char *dir, bool tiny, hb_dtype dtype, uint64_t seed) {
    char flat[4096], hm[4096], vae[4096];
    snprintf(flat, sizeof flat, "%s/.flat", dir);
    snprintf(hm, sizeof hm, "%s/" HB_XT_RELEASE_DIT_DIR, dir);
    snprintf(vae, sizeof vae, "%s/vae", dir);
    if (mkdirs(dir, ".flat") || mkdirs(dir, HB_XT_RELEASE_DIT_DIR) || mkdirs(dir, "vae")) return -1;
    hb_mkfolder_opts f = {.arch = "hummingbird-xt", .tiny = tiny, .dtype = dtype, .seed = seed};
    int rc = -1;
    char flat_vae[4200];
    snprintf(flat_vae, sizeof flat_vae, "%s/vae", flat);
    if (hb_model_folder_write_random(flat, &f) || move_dit_single(flat, hm) ||
        write_vae(flat, "Wan2.2_VAE.safetensors", hm, "Wan2.2_VAE.pth") || write_text_encoder(flat, hm) ||
        move(flat, "google", hm, NULL) || move(flat_vae, HB_LIGHT_VAE_RELEASE_DIR, vae, NULL))
        goto done;
    rc = 0;
done:
    hb_folder_stage_abort(flat);
    return rc;
}
