/* hb generate --mode ar: autoregressive long video with the causal Wan DiT (Hummingbird-XTX): chunk by chunk
 * with a frame-sink + short-window KV cache, each finished chunk decoded (the streaming Wan VAE decoder by
 * default, TAEHV as an option) and appended to a streamed file (fragmented MP4: a killed run leaves a
 * playable file). */
#include "tools.h"
#include "gen_flags.h"
#include "ops/ops.h"
#include "pipeline/ar.h"
#include "pipeline/model_folder.h"
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
    int64_t frames;
} ar_prog;

/* One line per chunk (the library's own chunk line is off), and the interrupt check. */
static void chunk_progress(void *user, const char *stage, int step, int total, double el, double eta) {
    ar_prog *s = user;
    if (s->quiet || step <= 0 || strcmp(stage, "chunks")) return;
    fprintf(stderr, "hb generate: chunk %d/%d  elapsed %.1f s  ETA %.1f s  RSS %.0f MiB\n", step, total, el, eta,
            hb_current_rss_bytes() / 1048576.0);
}

static int stop_on_signal(void *user, int64_t first, int n, const uint8_t *rgb, int H, int W) {
    (void)user, (void)first, (void)n, (void)rgb, (void)H, (void)W;
    return tool_interrupted() != 0;
}

/* Flags into the run (sizes, counts and choices checked here; geometry against the model in the pipeline). */
static int read_run(const gf_args *a, hb_ar_run *r, bool *seed_random) {
    static const char *const ropes[] = {"rel", "abs", NULL}, *const caches[] = {"bf16", "f32", NULL};
    static const char *const decs[] = {"full", "vae", "tae", "none", "light", NULL};
    int64_t v;
    r->model_dir = a->val[GF_MODEL];
    r->checkpoint = a->val[GF_CHECKPOINT];
    r->text_encoder_dir = a->val[GF_TEXT_ENCODER];
    r->prompt = a->val[GF_PROMPT];
    r->prompts_file = a->val[GF_PROMPTS];
    r->output = a->val[GF_OUTPUT];
    if (a->val[GF_NO_LAST_REFRESH]) r->ar.refresh_last = false;
    if ((v = 0, gf_int(a, GF_FRAMES, 1, (int64_t)1 << 40, &v)) || (v && gf_check_frames(v))) return -1;
    if (v) r->video_frames = v;
    if ((v = 0, gf_int(a, GF_WIDTH, 16, 16384, &v))) return -1;
    if (v) r->width = (int)v;
    if ((v = 0, gf_int(a, GF_HEIGHT, 16, 16384, &v))) return -1;
    if (v) r->height = (int)v;
    if (gf_int(a, GF_CHUNK, 1, 1024, &r->ar.chunk) || gf_int(a, GF_SINK, 0, 1024, &r->ar.sink) ||
        gf_int(a, GF_WINDOW, 0, 1024, &r->ar.window))
        return -1;
    if ((v = -1, gf_int(a, GF_CRF, 0, 63, &v))) return -1;
    if (v >= 0) r->crf = (int)v;
    if (gf_seed(a, &r->ar.seed, seed_random) || gf_double(a, GF_SHIFT, 0, &r->ar.shift) || gf_double(a, GF_FPS, 0, &r->fps))
        return -1;
    if (a->val[GF_STEPS_LIST] && (r->ar.nsteps = hb_xt_parse_steps(a->val[GF_STEPS_LIST], r->ar.steps_list, HB_AR_MAX_STEPS)) < 0)
        return -1;
    int c;
    if ((c = gf_choice(a, GF_ROPE, ropes)) == -1) return -1;
    if (c >= 0) r->ar.rope = c == 0 ? WAN_ROPE_REL : WAN_ROPE_ABS;
    if ((c = gf_choice(a, GF_CACHE, caches)) == -1) return -1;
    if (c >= 0) r->ar.cache_dtype = c == 0 ? HB_BF16 : HB_F32;
    if ((c = gf_choice(a, GF_DECODER, decs)) == -1) return -1;
    if (c == 4) return hb_error("%s light: AR mode decodes with the streaming Wan VAE (full) or tae", a->name[GF_DECODER]);
    if (c >= 0) r->decoder = c <= 1 ? HB_AR_DEC_VAE : c == 2 ? HB_AR_DEC_TAE : HB_AR_DEC_NONE;
    if (r->decoder == HB_AR_DEC_NONE && (gf_refuse(a, GF_OUTPUT, "with --decoder none (latents only, nothing is written)") ||
                                         gf_refuse(a, GF_FPS, "with --decoder none (nothing is written)") ||
                                         gf_refuse(a, GF_CRF, "with --decoder none (nothing is written)")))
        return -1;
    if (a->val[GF_PROMPT] && a->val[GF_PROMPTS]) return hb_error("-p and --prompts: give one");
    if (r->prompt && gf_check_prompt(r->prompt)) return -1;
    return 0;
}

int cmd_generate_ar(int argc, char **argv) {
    const char *cmd = "generate --mode ar";
    gf_args a;
    int rc = gf_parse(argc, argv, GF_AR, &a);
    if (rc) return rc;
    if (a.val[GF_HELP]) { usage(stdout); return 0; }
    hb_ar_run r;
    hb_ar_run_default(&r);
    bool seed_random = false;
    if (read_run(&a, &r, &seed_random)) return tool_fail(cmd);
    if (!r.model_dir) { fprintf(stderr, "hb %s: -m MODEL_DIR is required\n", cmd); usage(stderr); return 2; }
    if (!r.prompt && !r.prompts_file) { fprintf(stderr, "hb %s: give -p PROMPT or --prompts FILE\n", cmd); return 2; }
    if (!r.output && r.decoder != HB_AR_DEC_NONE) r.output = "out.mp4"; /* as hb generate */
    ar_prog ps = {.quiet = hb_log_level < HB_LOG_INFO};
    if (seed_random && !ps.quiet) fprintf(stderr, "hb %s: seed %llu (random)\n", cmd, (unsigned long long)r.ar.seed);
    if (r.prompt) gf_warn_prompt_cut(r.model_dir, r.text_encoder_dir, r.prompt);
    r.quiet = true;
    r.ar.progress = chunk_progress, r.ar.progress_user = &ps;
    if (r.decoder != HB_AR_DEC_NONE) { /* the frame callback stops the run; the pipeline keeps the partial file */
        tool_catch_interrupts();
        r.on_frames = stop_on_signal;
        r.keep_partial = true;
    } else { /* latents only: nothing to clean up, a signal ends the process */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
    rc = tool_interrupted() || hb_ar_run_pipeline(&r) || hb_backend_sync();
    if (tool_interrupted()) {
        if (r.partial_path[0])
            fprintf(stderr, "hb %s: interrupted after %lld frames; they are playable in %s\n", cmd,
                    (long long)r.frames_written, r.partial_path);
        return tool_interrupt_exit(cmd);
    }
    if (rc) return tool_fail(cmd);
    if (a.val[GF_JSON]) {
        printf("{\"file\": ");
        tool_json_string(stdout, r.output ? r.output : "");
        printf(", \"frames\": %lld, \"width\": %d, \"height\": %d, \"fps\": %g, \"seed\": %llu, \"seed_random\": %s, "
               "\"seconds\": {\"text\": %.3f, \"total\": %.3f}, \"dit_forwards\": %lld, \"peak_rss_mib\": %.1f}\n",
               (long long)r.frames_written, r.width, r.height, r.fps, (unsigned long long)r.ar.seed,
               seed_random ? "true" : "false", r.seconds_text, r.seconds_total, (long long)r.ar.forwards,
               r.peak_rss / 1048576.0);
    } else
        hb_log(HB_LOG_INFO, "wrote %lld frames to %s in %.1f s (text %.1f s), seed %llu, %lld DiT forwards, peak RSS %.0f MiB",
               (long long)r.frames_written, r.output ? r.output : "(nothing)", r.seconds_total, r.seconds_text,
               (unsigned long long)r.ar.seed, (long long)r.ar.forwards, r.peak_rss / 1048576.0);
    if (hb_log_level >= HB_LOG_DEBUG) tool_print_device_peak();
    return 0;
}
