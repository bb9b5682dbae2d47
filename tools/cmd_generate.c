/* hb generate: text/image to video with Hummingbird-XT (or the Wan 2.2 base sampler), through the public API
 * (include/hummingbird.h); output written atomically with metadata by io/video (or PNG images). Without -m: a
 * demo on a tiny random-weight model folder written on the fly. `--mode ar` hands over to cmd_generate_ar.
 * Flags: tools/gen_flags.c (one table for both modes). SIGINT/SIGTERM cancel through the progress callback
 * and leave no output and no temp file (exit 128 + signal). */
#include "tools.h"
#include "gen_flags.h"
#include "hummingbird.h"
#include "io/image.h"
#include "io/video.h"
#include "pipeline/model_folder.h"
#include "pipeline/settings.h"
#include "pipeline/xt.h"
#include "io/safetensors_writer.h"
#include "random_models.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: hb generate [-m MODEL_DIR] -p PROMPT [options]   (text/image to video; --mode ar: long video)\n\n");
    gf_print_help(f, GF_XT);
}

typedef struct {
    bool quiet;
} prog_state;

static int progress_cb(void *user, const char *stage, int step, int total, double el, double eta) {
    prog_state *s = user;
    if (tool_interrupted()) return 1;
    if (s->quiet || step <= 0) return 0;
    /* the pipeline's own stages only (the models report sub-stages too) */
    if (!strcmp(stage, "denoise") || !strcmp(stage, "decode")) {
        fprintf(stderr, "hb generate: %-7s %s %d/%d  %.2f s each  elapsed %.1f s  ETA %.1f s\n", stage,
                stage[1] == 'e' && stage[2] == 'n' ? "step" : "latent", step, total, el / step, el, eta);
    } else if ((!strcmp(stage, "text") || !strcmp(stage, "image")) && step >= total) {
        fprintf(stderr, "hb generate: %-7s done in %.2f s\n", stage, el);
    }
    return 0;
}

/* How the output is written. */
typedef enum { OUT_VIDEO, OUT_PNG_ONE, OUT_PNG_PATTERN } out_kind;

/* A frame_%04d.png pattern: exactly one integer conversion (%d, %0Nd), no other '%'. */
static bool is_pattern(const char *out) {
    const char *pc = strchr(out, '%');
    if (!pc) return false;
    const char *q = pc + 1;
    while (*q >= '0' && *q <= '9') q++;
    return *q == 'd' && !strchr(q, '%');
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

/* The output must be writable before any heavy work: its kind known, its folder writable. */
static int check_output(const char *out, out_kind *kind) {
    size_t L = strlen(out);
    struct stat st;
    bool slash = L > 0 && out[L - 1] == '/';
    if (!slash && stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        return hb_error("-o %s: is a folder; write '%s/' for PNG frames in it, or name a file", out, out);
    *kind = OUT_VIDEO;
    if (strchr(out, '%')) {
        if (!ends_with(out, ".png") || !is_pattern(out))
            return hb_error("-o %s: a numbered pattern must be like frame_%%04d.png (one %%d, .png)", out);
        *kind = OUT_PNG_PATTERN;
    } else if (ends_with(out, ".png")) *kind = OUT_PNG_ONE;
    else if (!slash && hb_video_format_for_path(out) == HB_VFMT_AUTO) return -1; /* message names the file */
    char buf[4096], probe_dir[4096];
    snprintf(buf, sizeof buf, "%s", out);
    while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/') buf[strlen(buf) - 1] = 0;
    const char *dir;
    if (slash && stat(buf, &st) == 0) dir = buf;
    else {
        snprintf(probe_dir, sizeof probe_dir, "%s", buf);
        dir = dirname(probe_dir);
    }
    if (stat(dir, &st) != 0) return hb_error("-o %s: folder %s does not exist", out, dir);
    if (!S_ISDIR(st.st_mode)) return hb_error("-o %s: %s is not a folder", out, dir);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.hb-write-test-%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return hb_error("-o %s: cannot write in %s: %s", out, dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

/* PNG outputs: one image, or one numbered file per frame (each atomic; all removed again on failure). */
static int write_pngs(const char *out, out_kind kind, const hb_video_frames *v, const hb_video_meta *meta) {
    if (kind == OUT_PNG_ONE && v->frames != 1)
        return hb_error("-o %s: one PNG holds one frame, the video has %d (use -f 1, frame_%%04d.png or FOLDER/)",
                        out, v->frames);
    char seed[32];
    snprintf(seed, sizeof seed, "%lld", (long long)meta->seed);
    const char *text[] = {"Title", meta->prompt, "prompt", meta->prompt, "model", meta->model, "seed", seed, NULL};
    size_t fb = (size_t)v->height * v->width * 3;
    for (int f = 0; f < v->frames; f++) {
        char path[4200];
        if (kind == OUT_PNG_PATTERN) snprintf(path, sizeof path, out, f);
        else snprintf(path, sizeof path, "%s", out);
        if (hb_png_write(path, v->rgb + f * fb, v->width, v->height, text) == 0) continue;
        for (int k = 0; k < f; k++) {
            snprintf(path, sizeof path, out, k);
            unlink(path);
        }
        return -1;
    }
    return 0;
}

/* Remove what a finished write left when a signal came during it (signals were held back). */
static void unlink_outputs(const char *out, out_kind kind, int frames) {
    char path[4200];
    size_t L = strlen(out);
    if (kind == OUT_VIDEO && L && out[L - 1] != '/') { unlink(out); return; }
    for (int k = 0; k < frames; k++) {
        if (kind == OUT_VIDEO) snprintf(path, sizeof path, "%sframe_%05d.png", out, k); /* io/video's names */
        else snprintf(path, sizeof path, out, k);
        unlink(path);
    }
}

static bool folder_has_model(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/hummingbird.json", dir);
    return access(p, F_OK) == 0;
}

/* Flags into the API's parameters (each checked; the sampler/decoder-specific ones in check_unused). */
static int read_params(const gf_args *a, hb_generate_params *p, bool *seed_random, double *fps, int *crf) {
    static const char *const samplers[] = {"xt", "unipc", "euler", NULL};
    static const char *const vaes[] = {"full", "vae", "light", "tae", "none", NULL};
    static const char *const fits[] = {"stretch", "cover", NULL};
    static const char *const noises[] = {"torch", "stream", NULL};
    static const char *const tfeeds[] = {"int-bf16", "int-f32", "float", NULL};
    static const char *const tilings[] = {"stream", "aligned", "release", NULL};
    int64_t x;
    if ((x = -1, gf_int(a, GF_WIDTH, 1, 8192, &x)) || (x > 0 && (p->width = (int)x, 0))) return -1;
    if ((x = -1, gf_int(a, GF_HEIGHT, 1, 8192, &x)) || (x > 0 && (p->height = (int)x, 0))) return -1;
    if ((x = -1, gf_int(a, GF_FRAMES, 1, 4001, &x))) return -1;
    if (x > 0 && gf_check_frames(x)) return -1;
    if (x > 0) p->frames = (int)x;
    if ((x = -1, gf_int(a, GF_STEPS, 1, 1000, &x))) return -1;
    if (x > 0) p->steps = (int)x;
    if ((x = -1, gf_int(a, GF_VAE_TILE, 0, 4096, &x))) return -1;
    if (x >= 0) p->vae_tile = (int)x;
    if ((x = -1, gf_int(a, GF_CRF, 0, 63, &x))) return -1;
    *crf = (int)(x >= 0 ? x : 0);
    if (gf_double(a, GF_SHIFT, 0, &p->shift) || gf_double(a, GF_FPS, 0, fps)) return -1;
    if (a->val[GF_CFG] && gf_double(a, GF_CFG, -1e-12, &p->cfg)) return -1;
    if (gf_seed(a, &p->seed, seed_random)) return -1;
    if (a->val[GF_STEPS_LIST] && (p->nsteps = hb_xt_parse_steps(a->val[GF_STEPS_LIST], p->steps_list, HB_GEN_MAX_STEPS)) < 0)
        return -1;
    int c;
    static const hb_gen_sampler smap[] = {HB_GEN_SAMPLER_XT, HB_GEN_SAMPLER_UNIPC, HB_GEN_SAMPLER_EULER};
    if ((c = gf_choice(a, GF_SAMPLER, samplers)) == -1) return -1;
    if (c >= 0) p->sampler = smap[c];
    static const hb_gen_vae vmap[] = {HB_GEN_VAE_FULL, HB_GEN_VAE_FULL, HB_GEN_VAE_LIGHT, HB_GEN_VAE_TAE};
    if ((c = gf_choice(a, GF_DECODER, vaes)) == -1) return -1;
    if (c == 4) return hb_error("%s none: latents only is for --mode ar (this mode writes a video)", a->name[GF_DECODER]);
    if (c >= 0) p->vae = vmap[c];
    if ((c = gf_choice(a, GF_IMAGE_FIT, fits)) == -1) return -1;
    if (c >= 0) p->image_fit = c == 0 ? HB_GEN_IMAGE_STRETCH : HB_GEN_IMAGE_COVER;
    if ((c = gf_choice(a, GF_NOISE, noises)) == -1) return -1;
    if (c >= 0) p->noise = c == 0 ? HB_GEN_NOISE_TORCH : HB_GEN_NOISE_STREAM;
    static const hb_gen_timestep tmap[] = {HB_GEN_T_INT_BF16, HB_GEN_T_INT_F32, HB_GEN_T_FLOAT};
    if ((c = gf_choice(a, GF_TIMESTEP, tfeeds)) == -1) return -1;
    if (c >= 0) p->timestep = tmap[c];
    if ((c = gf_choice(a, GF_LIGHT_TILING, tilings)) == -1) return -1;
    if (c >= 0) p->light_tiling = c;
    p->negative = a->val[GF_NEGATIVE];
    p->image_path = a->val[GF_IMAGE];
    p->light_vae_path = a->val[GF_LIGHT_VAE];
    return 0;
}

/* No silently ignored flag: refuse what the sampler / decoder in use does not read. DEFAULT (not known yet:
 * before the model is loaded) checks nothing; after loading the model's resolved defaults are passed. */
static int check_unused(const gf_args *a, hb_gen_sampler sampler, hb_gen_vae vae) {
    if (sampler == HB_GEN_SAMPLER_XT) {
        const char *why = "with the xt sampler (few-step and CFG-free: --steps-list sets its steps)";
        if (gf_refuse(a, GF_CFG, why) || gf_refuse(a, GF_STEPS, why) || gf_refuse(a, GF_NEGATIVE, why)) return -1;
    } else if (sampler != HB_GEN_SAMPLER_DEFAULT) {
        const char *why = "with the unipc/euler samplers (--steps sets their steps; it is an xt sampler flag)";
        if (gf_refuse(a, GF_STEPS_LIST, why) || gf_refuse(a, GF_NOISE, why) || gf_refuse(a, GF_TIMESTEP, why)) return -1;
    }
    if (vae != HB_GEN_VAE_DEFAULT && vae != HB_GEN_VAE_LIGHT) {
        const char *why = "with this decoder (it is a light decoder flag; choose --vae light)";
        if (gf_refuse(a, GF_LIGHT_TILING, why) || gf_refuse(a, GF_LIGHT_VAE, why)) return -1;
    }
    if (vae != HB_GEN_VAE_DEFAULT && vae != HB_GEN_VAE_FULL &&
        gf_refuse(a, GF_VAE_TILE, "with this decoder (it tiles the full Wan VAE decoder; choose --vae full)"))
        return -1;
    if (!a->val[GF_IMAGE] && gf_refuse(a, GF_IMAGE_FIT, "without -i (it fits the input image)")) return -1;
    return 0;
}

/* After loading: the model's defaults decide what is used; -i needs an image-to-video family. */
static int check_against_model(const gf_args *a, const hb_generate_params *p, const char *dir, const hb_model *m,
                               hb_xt_settings *s) {
    hb_model_folder mf;
    if (hb_model_folder_scan_dit(dir, a->val[GF_DIT], &mf)) return -1;
    hb_xt_settings_for(&mf, hb_model_latent_channels(m), s);
    if (p->image_path && (s->family == HB_FAMILY_WAN21 || s->family == HB_FAMILY_XTX))
        return hb_error("-i %s: %s is a text-to-video model (%s); image-to-video needs a Wan2.2 TI2V folder",
                        p->image_path, dir, hb_model_family_name(s->family));
    hb_gen_sampler sampler = p->sampler ? p->sampler : s->sampler;
    hb_gen_vae vae = p->vae ? p->vae : p->light_vae_path ? HB_GEN_VAE_LIGHT : s->vae;
    return check_unused(a, sampler, vae);
}

/* -i with only -W or only -H: the other side keeps the image's aspect ratio (rounded to the model's multiple). */
static int fit_other_side(hb_generate_params *p, const gf_args *a, const hb_model *m, bool quiet) {
    if (!p->image_path || !a->val[GF_WIDTH] == !a->val[GF_HEIGHT]) return 0;
    hb_image im;
    if (hb_image_load(p->image_path, &im)) return -1;
    int mult = hb_model_size_multiple(m);
    double ratio = (double)im.height / im.width;
    hb_image_free(&im);
    int *other = a->val[GF_WIDTH] ? &p->height : &p->width;
    double want = a->val[GF_WIDTH] ? p->width * ratio : p->height / ratio;
    *other = (int)(want / mult + 0.5) * mult;
    if (*other < mult) *other = mult;
    if (!quiet) fprintf(stderr, "hb generate: size %d x %d (the image's aspect ratio)\n", p->width, p->height);
    return 0;
}

/* The demo's tiny random-weight folder (in `dir`, written unless already there). */
static int make_demo(const char *demo_dir, char *demo, size_t cap, bool *tmp_made) {
    if (demo_dir) snprintf(demo, cap, "%s", demo_dir);
    else {
        const char *td = getenv("TMPDIR");
        snprintf(demo, cap, "%s/hb-demo-XXXXXX", td && *td ? td : "/tmp");
        if (!mkdtemp(demo)) return hb_error("cannot create a temporary folder %s: %s", demo, strerror(errno));
        rmdir(demo);
        *tmp_made = true;
    }
    fprintf(stderr, "hb generate: no -m given: DEMO on a tiny model with RANDOM weights in %s\n"
                    "hb generate: the video will be noise; pass -m MODEL_DIR for a real model\n", demo);
    if (folder_has_model(demo)) return 0;
    char tmp[4200];
    hb_mkfolder_opts mo = {.arch = "hummingbird-xt", .tiny = true, .dtype = HB_F32, .seed = 1};
    int lvl = hb_log_level;
    if (hb_log_level == HB_LOG_INFO) hb_log_level = HB_LOG_WARN;
    int rc = hb_folder_stage_begin(demo, tmp, sizeof tmp);
    if (!rc && (rc = hb_model_folder_write_random(tmp, &mo)) != 0) hb_folder_stage_abort(tmp);
    if (!rc) rc = hb_folder_stage_finish(tmp, demo);
    hb_log_level = lvl;
    return rc;
}

/* Write the clip with SIGINT/SIGTERM held back, so an interrupt never leaves half a file or a temp file:
 * after the write, a pending signal removes the finished output instead. */
static int write_output(const char *out, out_kind kind, const hb_video_frames *v, const hb_video_meta *meta,
                        double fps, int crf) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    hb_video_opts vo = {.fps = fps, .crf = crf, .meta = meta};
    int rc = kind == OUT_VIDEO ? hb_video_write(out, v->rgb, v->frames, v->height, v->width, &vo)
                               : write_pngs(out, kind, v, meta);
    sigprocmask(SIG_SETMASK, &old, NULL); /* a pending signal is handled here: it only sets the flag */
    if (!rc && tool_interrupted()) unlink_outputs(out, kind, v->frames);
    return rc;
}

static void print_json(const char *out, const hb_video_frames *v, double fps, uint64_t seed, bool seed_random,
                       const double t[3]) {
    printf("{\"file\": ");
    tool_json_string(stdout, out);
    printf(", \"frames\": %d, \"width\": %d, \"height\": %d, \"fps\": %g, \"seed\": %llu, \"seed_random\": %s, "
           "\"seconds\": {\"load\": %.3f, \"text\": %.3f, \"image\": %.3f, \"denoise\": %.3f, \"decode\": %.3f, "
           "\"write\": %.3f, \"total\": %.3f}, \"peak_rss_mib\": %.1f}\n",
           v->frames, v->width, v->height, fps, (unsigned long long)seed, seed_random ? "true" : "false", t[0],
           v->seconds_text, v->seconds_image, v->seconds_denoise, v->seconds_decode, t[1], t[2],
           (double)hb_peak_rss_bytes() / (1 << 20));
}

int cmd_generate(int argc, char **argv) {
    tool_catch_interrupts(); /* from the start: a signal during loading stops the run too */
    gf_args a;
    for (int i = 1; i < argc; i++) /* --mode first: it decides which flags exist */
        if (!strncmp(argv[i], "--mode", 6) && (argv[i][6] == '=' || (!argv[i][6] && i + 1 < argc))) {
            const char *m = argv[i][6] == '=' ? argv[i] + 7 : argv[i + 1];
            if (!strcmp(m, "ar")) return cmd_generate_ar(argc, argv);
            if (strcmp(m, "xt")) { fprintf(stderr, "hb generate: --mode must be xt (default) or ar (got '%s')\n", m); return 2; }
        }
    int rc = gf_parse(argc, argv, GF_XT, &a);
    if (rc) return rc;
    if (a.val[GF_HELP]) { usage(stdout); return 0; }
    hb_generate_params p;
    hb_generate_params_init(&p);
    bool seed_random = false;
    double fps = 0;
    int crf = 0;
    if (read_params(&a, &p, &seed_random, &fps, &crf) || check_unused(&a, p.sampler, p.vae)) return tool_fail(argv[0]);
    if (!a.val[GF_PROMPT]) { fprintf(stderr, "hb generate: -p PROMPT is required\n\n"); usage(stderr); return 2; }
    if (gf_check_prompt(a.val[GF_PROMPT])) return tool_fail(argv[0]);
    if (a.val[GF_DIT] && !a.val[GF_MODEL]) {
        fprintf(stderr, "hb generate: %s replaces the DiT of a model folder: give -m DIR (VAE, text encoder)\n", a.name[GF_DIT]);
        return 2;
    }
    const char *out = a.val[GF_OUTPUT] ? a.val[GF_OUTPUT] : "out.mp4", *model = a.val[GF_MODEL];
    out_kind kind = OUT_VIDEO;
    if (check_output(out, &kind)) return tool_fail(argv[0]);
    if (kind == OUT_PNG_ONE && p.frames != 1) {
        hb_error("-o %s: one PNG holds one frame: give -f 1 (or -o frame_%%04d.png / FOLDER/ for every frame)", out);
        return tool_fail(argv[0]);
    }
    prog_state ps = {.quiet = hb_log_level < HB_LOG_INFO};
    p.prompt = a.val[GF_PROMPT];
    p.progress = progress_cb, p.progress_user = &ps;
    if (seed_random && !ps.quiet) fprintf(stderr, "hb generate: seed %llu (random)\n", (unsigned long long)p.seed);

    char demo[4096] = "";
    bool demo_tmp = false;
    if (!model) {
        if (make_demo(a.val[GF_DEMO_DIR], demo, sizeof demo, &demo_tmp)) { rc = tool_fail(argv[0]); goto done0; }
        model = demo;
        if (!a.val[GF_WIDTH] && !a.val[GF_HEIGHT]) p.width = 256, p.height = 256; /* demo: small, also for I2V */
        if (!a.val[GF_FRAMES]) p.frames = 17;
    }
    rc = 1;
    hb_load_params lp = {.offload = a.val[GF_OFFLOAD] != NULL, .device = tool_device(), .dit = a.val[GF_DIT]};
    double t0 = hb_time_now();
    hb_model *m = hb_model_load(model, &lp);
    double times[3] = {hb_time_now() - t0, 0, 0};
    hb_video_frames v = {0};
    hb_xt_settings s;
    if (!m || check_against_model(&a, &p, model, m, &s) || fit_other_side(&p, &a, m, ps.quiet)) {
        tool_fail(argv[0]);
        goto done;
    }
    gf_warn_prompt_cut(model, NULL, p.prompt);
    {
        char what[96];
        snprintf(what, sizeof what, "%dx%d, %d frames", p.width ? p.width : s.width, p.height ? p.height : s.height,
                 p.frames ? p.frames : s.frames);
        gf_warn_memory(hb_generate_estimate_bytes(m, &p), what);
    }
    int grc = tool_interrupted() ? HB_CANCELLED : hb_generate(m, &p, &v);
    if (grc == HB_CANCELLED && tool_interrupted()) goto done;
    if (grc) { tool_fail(argv[0]); goto done; }
    if (tool_interrupted()) goto done; /* came after the last step: nothing to write */
    double tw = hb_time_now();
    hb_video_meta meta = {.prompt = p.prompt, .model = model, .seed = (int64_t)p.seed, .has_seed = true};
    hb_gen_sampler sampler = p.sampler ? p.sampler : s.sampler;
    meta.steps = sampler == HB_GEN_SAMPLER_XT ? (p.nsteps > 0 ? p.nsteps : s.nsteps) : (p.steps > 0 ? p.steps : s.base_steps);
    if (fps <= 0) fps = v.fps;
    if (write_output(out, kind, &v, &meta, fps, crf)) { tool_fail(argv[0]); goto done; }
    if (tool_interrupted()) goto done;
    times[1] = hb_time_now() - tw, times[2] = hb_time_now() - t0;
    if (!ps.quiet) fprintf(stderr, "hb generate: write   done in %.2f s\n", times[1]);
    if (a.val[GF_JSON]) print_json(out, &v, fps, p.seed, seed_random, times);
    else if (!ps.quiet)
        printf("wrote %s: %d frames %dx%d at %g fps, seed %llu (%s)\n", out, v.frames, v.width, v.height, fps,
               (unsigned long long)p.seed, demo[0] ? "random-weight demo: noise" : model);
    if (hb_log_level >= HB_LOG_DEBUG) {
        fprintf(stderr, "stage times: load %.2f s, text %.2f s, image %.2f s, denoise %.2f s, decode %.2f s, write %.2f s, "
                        "total %.2f s\npeak RSS: %.1f MiB\n", times[0], v.seconds_text, v.seconds_image,
                v.seconds_denoise, v.seconds_decode, times[1], times[2], (double)hb_peak_rss_bytes() / (1 << 20));
        tool_print_device_peak();
    }
    rc = 0;
done:
    hb_frames_free(&v);
    hb_model_free(m);
done0:
    if (demo_tmp) hb_folder_stage_abort(demo);
    if (tool_interrupted()) return tool_interrupt_exit("generate");
    return rc;
}
