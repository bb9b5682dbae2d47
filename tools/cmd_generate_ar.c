/* hb generate --mode ar: autoregressive long video with the causal Wan DiT (Hummingbird-XTX), through the public
 * API (hb_generate_ar, include/hummingbird.h): chunk by chunk
 * with a frame-sink + short-window KV cache, each finished chunk decoded (the streaming Wan VAE decoder by
 * default, TAEHV as an option) and appended to a streamed file (fragmented MP4: a killed run leaves a
 * playable file). */
#include "tools.h"
#include "gen_flags.h"
#include "hummingbird.h"
#include "pipeline/xt.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: hb generate --mode ar -m MODEL (-p PROMPT | --prompts FILE) [options] [-o OUT.mp4]\n"
               "  MODEL: the Hummingbird-XTX release root (checkpoints/wan21_model.pt + wan_models/; hb mkmodel --arch\n"
               "  hummingbird-xtx --tiny DIR writes one) or a causal Wan model folder. Defaults: the model's (832 x 480,\n"
               "  321 frames, 16 fps for the 1.3B). -o: out.mp4 (default; fragmented, streamed), .mkv, .y4m, FOLDER/.\n"
               "  An interrupt (SIGINT/SIGTERM) stops before the next chunk; the frames made so far stay playable in\n"
               "  NAME.partial.EXT (reported), nothing is written under the final name.\n\n");
    gf_print_help(f, GF_AR);
}

typedef struct {
    bool quiet;
} ar_prog;

/* One line per chunk (the library draws nothing). Interrupts are checked by the frame callback. */
static int chunk_progress(void *user, const char *stage, int step, int total, double el, double eta) {
    ar_prog *s = user;
    if (s->quiet || step <= 0 || strcmp(stage, "chunks")) return 0;
    fprintf(stderr, "hb generate: chunk %d/%d  elapsed %.1f s  ETA %.1f s  RSS %.0f MiB\n", step, total, el, eta,
            hb_current_rss_bytes() / 1048576.0);
    return 0;
}

static int stop_on_signal(void *user, int64_t first, int n, const uint8_t *rgb, int H, int W) {
    (void)user, (void)first, (void)n, (void)rgb, (void)H, (void)W;
    return tool_interrupted() != 0;
}

/* Flags into the API's parameters (sizes, counts and choices checked here; geometry against the model by
 * hb_generate_ar). */
static int read_params(const gf_args *a, hb_ar_params *p, bool *seed_random) {
    static const char *const ropes[] = {"rel", "abs", NULL}, *const caches[] = {"bf16", "f32", NULL};
    static const char *const decs[] = {"full", "vae", "tae", "none", "light", NULL};
    int64_t v;
    p->checkpoint = a->val[GF_CHECKPOINT];
    p->text_encoder_dir = a->val[GF_TEXT_ENCODER];
    p->prompt = a->val[GF_PROMPT];
    p->prompts_file = a->val[GF_PROMPTS];
    p->output = a->val[GF_OUTPUT];
    p->no_last_refresh = a->val[GF_NO_LAST_REFRESH] != NULL;
    if ((v = 0, gf_int(a, GF_FRAMES, 1, (int64_t)1 << 40, &v)) || (v && gf_check_frames(v))) return -1;
    p->frames = v;
    if ((v = 0, gf_int(a, GF_WIDTH, 16, 16384, &v))) return -1;
    p->width = (int)v;
    if ((v = 0, gf_int(a, GF_HEIGHT, 16, 16384, &v))) return -1;
    p->height = (int)v;
    int64_t chunk = p->chunk, sink = p->sink, window = p->window;
    if (gf_int(a, GF_CHUNK, 1, 1024, &chunk) || gf_int(a, GF_SINK, 0, 1024, &sink) || gf_int(a, GF_WINDOW, 0, 1024, &window))
        return -1;
    p->chunk = (int)chunk, p->sink = (int)sink, p->window = (int)window;
    if ((v = -1, gf_int(a, GF_CRF, 0, 63, &v))) return -1;
    if (v >= 0) p->crf = (int)v;
    if (gf_seed(a, &p->seed, seed_random) || gf_double(a, GF_SHIFT, 0, &p->shift) || gf_double(a, GF_FPS, 0, &p->fps))
        return -1;
    if (a->val[GF_STEPS_LIST] && (p->nsteps = hb_xt_parse_steps(a->val[GF_STEPS_LIST], p->steps_list, HB_GEN_MAX_STEPS)) < 0)
        return -1;
    int c;
    if ((c = gf_choice(a, GF_ROPE, ropes)) == -1) return -1;
    if (c >= 0) p->rope_relative = c == 0;
    if ((c = gf_choice(a, GF_CACHE, caches)) == -1) return -1;
    if (c >= 0) p->cache_f32 = c == 1;
    if ((c = gf_choice(a, GF_DECODER, decs)) == -1) return -1;
    if (c == 4) return hb_error("%s light: AR mode decodes with the streaming Wan VAE (full) or tae", a->name[GF_DECODER]);
    if (c >= 0) p->vae = c <= 1 ? HB_GEN_VAE_FULL : c == 2 ? HB_GEN_VAE_TAE : HB_GEN_VAE_NONE;
    if (p->vae == HB_GEN_VAE_NONE && (gf_refuse(a, GF_OUTPUT, "with --decoder none (latents only, nothing is written)") ||
                                      gf_refuse(a, GF_FPS, "with --decoder none (nothing is written)") ||
                                      gf_refuse(a, GF_CRF, "with --decoder none (nothing is written)")))
        return -1;
    if (a->val[GF_PROMPT] && a->val[GF_PROMPTS]) return hb_error("-p and --prompts: give one");
    if (p->prompt && gf_check_prompt(p->prompt)) return -1;
    return 0;
}

static void print_summary(const gf_args *a, const hb_ar_params *p, const hb_ar_stats *st, bool seed_random) {
    if (a->val[GF_JSON]) {
        printf("{\"file\": ");
        tool_json_string(stdout, p->output ? p->output : "");
        printf(", \"frames\": %lld, \"width\": %d, \"height\": %d, \"fps\": %g, \"seed\": %llu, \"seed_random\": %s, "
               "\"seconds\": {\"text\": %.3f, \"total\": %.3f}, \"dit_forwards\": %lld, \"peak_rss_mib\": %.1f}\n",
               (long long)st->frames, st->width, st->height, st->fps, (unsigned long long)p->seed,
               seed_random ? "true" : "false", st->seconds_text, st->seconds_total, (long long)st->dit_forwards,
               st->peak_rss_bytes / 1048576.0);
    } else
        hb_log(HB_LOG_INFO, "wrote %lld frames to %s in %.1f s (text %.1f s), seed %llu, %lld DiT forwards, peak RSS %.0f MiB",
               (long long)st->frames, p->output ? p->output : "(nothing)", st->seconds_total, st->seconds_text,
               (unsigned long long)p->seed, (long long)st->dit_forwards, st->peak_rss_bytes / 1048576.0);
}

int cmd_generate_ar(int argc, char **argv) {
    const char *cmd = "generate --mode ar";
    gf_args a;
    int rc = gf_parse(argc, argv, GF_AR, &a);
    if (rc) return rc;
    if (a.val[GF_HELP]) { usage(stdout); return 0; }
    hb_ar_params p;
    hb_ar_params_init(&p);
    bool seed_random = false;
    if (read_params(&a, &p, &seed_random)) return tool_fail(cmd);
    const char *model = a.val[GF_MODEL];
    if (!model) { fprintf(stderr, "hb %s: -m MODEL_DIR is required\n", cmd); usage(stderr); return 2; }
    if (!p.prompt && !p.prompts_file) { fprintf(stderr, "hb %s: give -p PROMPT or --prompts FILE\n", cmd); return 2; }
    if (!p.output && p.vae != HB_GEN_VAE_NONE) p.output = "out.mp4"; /* as hb generate */
    ar_prog ps = {.quiet = hb_log_level < HB_LOG_INFO};
    if (seed_random && !ps.quiet) fprintf(stderr, "hb %s: seed %llu (random)\n", cmd, (unsigned long long)p.seed);
    if (p.prompt) gf_warn_prompt_cut(model, p.text_encoder_dir, p.prompt);
    {
        char what[96] = "the run at the model's size";
        if (p.width && p.height) snprintf(what, sizeof what, "the %dx%d run", p.width, p.height);
        gf_warn_memory(hb_ar_estimate_bytes(model, &p), what);
        hb_clear_error(); /* a folder the estimate cannot read fails in the run with its own message */
    }
    hb_ar_stats st = {0};
    p.stats = &st;
    p.device = tool_device();
    p.progress = chunk_progress, p.progress_user = &ps;
    if (p.vae != HB_GEN_VAE_NONE) { /* the frame callback stops the run; the library keeps the partial file */
        tool_catch_interrupts();
        p.on_chunk = stop_on_signal;
        p.keep_partial = 1;
    } else { /* latents only: nothing to clean up, a signal ends the process */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
    rc = tool_interrupted() ? -1 : hb_generate_ar(model, &p, NULL);
    if (tool_interrupted()) {
        if (st.partial_path[0])
            fprintf(stderr, "hb %s: interrupted after %lld frames; they are playable in %s\n", cmd,
                    (long long)st.frames, st.partial_path);
        return tool_interrupt_exit(cmd);
    }
    if (rc) return tool_fail(cmd);
    print_summary(&a, &p, &st, seed_random);
    if (hb_log_level >= HB_LOG_DEBUG) tool_print_device_peak();
    return 0;
}
