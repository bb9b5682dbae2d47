/* hb generate --mode ar: autoregressive long video with the causal Wan DiT (Hummingbird-XTX): chunk by chunk
 * with a frame-sink + short-window KV cache, each finished chunk decoded (the streaming Wan VAE decoder by
 * default, TAEHV as an option) and appended to a streamed file (fragmented MP4: a killed run leaves a
 * playable file). */
#include "tools.h"
#include "ops/ops.h"
#include "pipeline/ar.h"
#include "pipeline/model_folder.h"
#include "pipeline/xt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hb generate --mode ar -m MODEL (-p PROMPT | --prompts FILE) [options] -o OUT.mp4\n"
            "  -m DIR            the Hummingbird-XTX release root (checkpoints/wan21_model.pt, wan_models/Wan2.1-T2V-1.3B/,\n"
            "                    wan_models/Wan2.2-TI2V-5B/; hb mkmodel --arch hummingbird-xtx --tiny DIR writes one),\n"
            "                    or a causal Wan model folder (config.json + weights, VAE, umT5 + tokenizer)\n"
            "  --checkpoint F    DiT weights (.pt training dict: generator_ema, else generator), architecture from\n"
            "                    the folder's config.json\n"
            "  --text-encoder D  folder with the umT5 + google/umt5-xxl tokenizer (the release: Wan2.2-TI2V-5B)\n"
            "  -p TEXT           prompt\n"
            "  --prompts FILE    prompt switches: lines 'latent_frame<TAB>prompt' (first at 0), LongLive KV re-cache\n"
            "  -f N              video frames (default 321 = 81 latent frames, 20 s at 16 fps); any length with --rope rel\n"
            "  -o FILE           output (.mp4 fragmented/streamed, .mkv, .y4m, or a folder of PNGs)\n"
            "  --width W --height H   pixels (default 832 x 480; 1280 x 704 for a 48-channel Wan2.2 model)\n"
            "  --chunk N         latent frames per chunk (default 3)\n"
            "  --window N        cache length in latent frames, the sink included: the release's local_attn_size\n"
            "                    (default 6); 0 = global cache of the whole video (Self-Forcing)\n"
            "  --sink N          first latent frames kept forever in the cache (default 1)\n"
            "  --rope rel|abs    relative positions inside the window (default: the release's pre-RoPE cache;\n"
            "                    unbounded length at constant memory) or absolute frame positions (Self-Forcing /\n"
            "                    LongLive; at most 1024 latent frames)\n"
            "  --steps-list L    few-step list (default 1000,750,500,250)\n"
            "  --shift S         FlowMatch shift (default 5)\n"
            "  --seed N          noise seed (default 0)\n"
            "  --cache bf16|f32  KV cache storage (default bf16)\n"
            "  --decoder vae|tae|none   the Wan VAE decoder, streamed chunk by chunk (default: the release's decoder,\n"
            "                    exact), TAEHV (fast), or none (latents only, for timing)\n"
            "  --fps X           frames per second of the file (default 16)\n"
            "  --no-last-refresh skip the clean refresh forward after the last chunk (changes no frame)\n"
            "  -t N, -v, -q      threads, verbose, quiet\n");
}

static int parse_ll(const char *flag, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return hb_error("%s: '%s' is not an integer in [%lld, %lld]", flag, s, lo, hi);
    *out = v;
    return 0;
}

int cmd_generate_ar(int argc, char **argv) {
    hb_ar_run r;
    hb_ar_run_default(&r);
    long long v = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return tool_fail("generate --mode ar");
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (i + 1 >= argc && strcmp(a, "--no-last-refresh")) {
            fprintf(stderr, "hb generate --mode ar: %s needs a value (or is unknown)\n", a);
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--no-last-refresh")) { r.ar.refresh_last = false; continue; }
        const char *val = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--mode")) { if (strcmp(val, "ar")) bad = hb_error("--mode: expected ar"); }
        else if (!strcmp(a, "-m")) r.model_dir = val;
        else if (!strcmp(a, "--checkpoint")) r.checkpoint = val;
        else if (!strcmp(a, "--text-encoder")) r.text_encoder_dir = val;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) r.prompt = val;
        else if (!strcmp(a, "--prompts")) r.prompts_file = val;
        else if (!strcmp(a, "-o")) r.output = val;
        else if (!strcmp(a, "-f") || !strcmp(a, "--frames")) { bad = parse_ll(a, val, 1, (long long)1 << 40, &v); r.video_frames = v; }
        else if (!strcmp(a, "--width")) { bad = parse_ll(a, val, 16, 16384, &v); r.width = (int)v; }
        else if (!strcmp(a, "--height")) { bad = parse_ll(a, val, 16, 16384, &v); r.height = (int)v; }
        else if (!strcmp(a, "--chunk")) { bad = parse_ll(a, val, 1, 1024, &v); r.ar.chunk = v; }
        else if (!strcmp(a, "--sink")) { bad = parse_ll(a, val, 0, 1024, &v); r.ar.sink = v; }
        else if (!strcmp(a, "--window")) { bad = parse_ll(a, val, 0, 1024, &v); r.ar.window = v; }
        else if (!strcmp(a, "--seed")) { bad = parse_ll(a, val, 0, INT64_MAX, &v); r.ar.seed = (uint64_t)v; }
        else if (!strcmp(a, "--rope")) {
            if (!strcmp(val, "abs")) r.ar.rope = WAN_ROPE_ABS;
            else if (!strcmp(val, "rel")) r.ar.rope = WAN_ROPE_REL;
            else bad = hb_error("--rope: expected abs or rel, got '%s'", val);
        } else if (!strcmp(a, "--cache")) {
            if (!strcmp(val, "bf16")) r.ar.cache_dtype = HB_BF16;
            else if (!strcmp(val, "f32")) r.ar.cache_dtype = HB_F32;
            else bad = hb_error("--cache: expected bf16 or f32, got '%s'", val);
        } else if (!strcmp(a, "--decoder")) {
            if (!strcmp(val, "tae")) r.decoder = HB_AR_DEC_TAE;
            else if (!strcmp(val, "vae")) r.decoder = HB_AR_DEC_VAE;
            else if (!strcmp(val, "none")) r.decoder = HB_AR_DEC_NONE;
            else bad = hb_error("--decoder: expected tae, vae or none, got '%s'", val);
        } else if (!strcmp(a, "--steps-list")) {
            int n = hb_xt_parse_steps(val, r.ar.steps_list, HB_AR_MAX_STEPS);
            if (n < 0) bad = -1;
            else r.ar.nsteps = n;
        } else if (!strcmp(a, "--shift")) {
            char *end;
            r.ar.shift = strtod(val, &end);
            if (*end || !(r.ar.shift > 0)) bad = hb_error("--shift: '%s' is not a positive number", val);
        } else if (!strcmp(a, "--fps")) {
            char *end;
            r.fps = strtod(val, &end);
            if (*end || !(r.fps > 0)) bad = hb_error("--fps: '%s' is not a positive number", val);
        } else {
            fprintf(stderr, "hb generate --mode ar: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) return tool_fail("generate --mode ar");
    }
    if (!r.model_dir) { fprintf(stderr, "hb generate --mode ar: -m MODEL_DIR is required\n"); usage(stderr); return 2; }
    if (!r.prompt && !r.prompts_file) { fprintf(stderr, "hb generate --mode ar: give -p PROMPT or --prompts FILE\n"); return 2; }
    if (!r.output && r.decoder != HB_AR_DEC_NONE) { fprintf(stderr, "hb generate --mode ar: -o OUT is required\n"); return 2; }
    if (hb_ar_run_pipeline(&r) || hb_backend_sync()) return tool_fail("generate --mode ar");
    hb_log(HB_LOG_INFO, "wrote %lld frames to %s in %.1f s (text %.1f s), %lld DiT forwards, peak RSS %.0f MiB",
           (long long)r.frames_written, r.output ? r.output : "(nothing)", r.seconds_total, r.seconds_text,
           (long long)r.ar.forwards, r.peak_rss / 1048576.0);
    if (hb_log_level >= HB_LOG_DEBUG) tool_print_device_peak();
    return 0;
}
