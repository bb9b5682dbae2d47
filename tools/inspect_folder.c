/* hb inspect DIR on a model folder: every part (DiT, VAE, text encoder, tokenizer, decoders), the model
 * family and the generation defaults that family resolves to (pipeline/settings.c), before the DiT's tensors. */
#include "tools.h"
#include "io/checkpoint.h"
#include "models/wan_dit.h"
#include "pipeline/model_folder.h"
#include "pipeline/settings.h"
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One part: its path, and its tensor count and size when it opens as a checkpoint. */
static void print_part(const char *what, const char *path, bool checkpoint) {
    if (!path[0]) { printf("  %-13s (none)\n", what); return; }
    printf("  %-13s %s", what, path);
    hb_checkpoint *ck = checkpoint ? hb_checkpoint_open(path) : NULL;
    if (ck) {
        double bytes = 0;
        int n = hb_checkpoint_count(ck);
        for (int i = 0; i < n; i++) {
            hb_tensor t = hb_checkpoint_tensor(ck, i);
            bytes += (double)hb_tensor_nbytes(&t);
        }
        printf("  (%d tensors, %.1f MiB)", n, bytes / 1048576.0);
        hb_checkpoint_close(ck);
    } else if (checkpoint) printf("  (cannot open: %s)", hb_last_error());
    putchar('\n');
}

/* The DiT's output (latent) channels from its config.json: 48 (Wan2.2) or 16 (Wan2.1); 0 when unknown. */
static int dit_latent_channels(const hb_model_folder *mf) {
    char cfg[HB_MF_PATH + 16], tmp[HB_MF_PATH];
    struct stat st;
    snprintf(tmp, sizeof tmp, "%s", mf->dit);
    if (stat(mf->dit, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(cfg, sizeof cfg, "%s/config.json", mf->dit);
    else snprintf(cfg, sizeof cfg, "%s/config.json", dirname(tmp));
    FILE *f = fopen(cfg, "rb");
    if (!f) return 0;
    char *text = calloc(1, 1 << 16);
    size_t n = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    wan_dit_config c;
    hb_wan_dit_config_preset(&c, "wan2.1-1.3b");
    int ch = n && !hb_wan_dit_config_parse(&c, text, cfg) ? (int)c.out_dim : 0;
    free(text);
    return ch;
}

static void print_steps(const char *what, const int64_t *steps, int n, double shift) {
    printf("  %-13s ", what);
    for (int i = 0; i < n; i++) printf("%s%lld", i ? "," : "", (long long)steps[i]);
    printf(" at shift %g\n", shift);
}

int tool_inspect_model_folder(const char *dir, bool print, char *dit, size_t cap) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    hb_model_folder mf;
    int lvl = hb_log_level;
    hb_log_level = HB_LOG_ERROR;
    int rc = hb_model_folder_scan(dir, &mf);
    hb_log_level = lvl;
    if (rc) { hb_clear_error(); return 0; } /* not a model folder: a plain checkpoint folder */
    snprintf(dit, cap, "%s", mf.dit);
    if (!print) return 1;
    int ch = dit_latent_channels(&mf);
    hb_model_family fam = hb_model_folder_family(&mf, ch);
    printf("model folder: %s\nfamily:       %s (%d-channel latents%s)\n\nparts:\n", dir, hb_model_family_name(fam), ch,
           mf.has_settings ? ", hummingbird.json" : "");
    print_part("DiT", mf.dit, true);
    if (mf.dit_weights[0]) print_part("DiT weights", mf.dit_weights, false);
    print_part("VAE", mf.vae, true);
    print_part("text encoder", mf.text_encoder, true);
    print_part("tokenizer", mf.tokenizer, false);
    print_part("tiny decoder", mf.tae, true);
    print_part("light decoder", mf.light, false);
    printf("\ndefault settings (pipeline/settings.c%s):\n", mf.has_settings ? " + hummingbird.json" : "");
    if (fam == HB_FAMILY_XTX) {
        hb_ar_settings s;
        hb_ar_settings_for(&mf, ch, &s);
        printf("  mode          ar (hb generate --mode ar)\n  size          %d x %d, %lld frames at %g fps\n", s.width,
               s.height, (long long)(4 * s.latent_frames - 3), s.fps);
        print_steps("steps", s.steps_list, s.nsteps, s.shift);
        printf("  cache         chunk %lld, sink %lld, window %lld latent frames, %s RoPE\n", (long long)s.chunk,
               (long long)s.sink, (long long)s.window, s.rope_relative ? "relative" : "absolute");
    } else {
        hb_xt_settings s;
        hb_xt_settings_for(&mf, ch, &s);
        static const char *const samplers[] = {"default", "xt", "unipc", "euler"};
        static const char *const vaes[] = {"default", "tae", "light", "full"};
        printf("  size          %d x %d, %d frames at %g fps\n  sampler       %s\n", s.width, s.height, s.frames, s.fps,
               samplers[s.sampler & 3]);
        if (s.sampler == HB_GEN_SAMPLER_XT) print_steps("steps", s.steps_list, s.nsteps, s.shift);
        else printf("  steps         %d, cfg %g, shift %g\n", s.base_steps, s.cfg, s.shift);
        printf("  decoder       %s\n  image fit     %s\n", vaes[s.vae & 3], s.image_fit == HB_GEN_IMAGE_STRETCH ? "stretch" : "cover");
    }
    printf("\nDiT tensors:\n");
    return 1;
}
