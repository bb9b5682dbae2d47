/* hb generate: text/image to video with Hummingbird-XT (or the Wan 2.2 base sampler), through the public API
 * (include/hummingbird.h); output written atomically with metadata by io/video. Without -m: a demo on a tiny
 * random-weight model folder written on the fly. `--mode ar` hands over to cmd_generate_ar (long video). */
#include "tools.h"
#include "hummingbird.h"
#include "io/video.h"
#include "pipeline/model_folder.h"
#include "pipeline/xt.h"
#include "models/random_weights.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hb generate [-m MODEL_DIR] -p PROMPT [options]\n\n"
            "  -m DIR            model folder (official Wan layout; see docs/pipeline.md). Without -m: a demo on a\n"
            "                    tiny random-weight model (the output is noise)\n"
            "  -p TEXT           prompt\n"
            "  -n TEXT           negative prompt (CFG samplers; default: Wan's)\n"
            "  -i IMAGE          image-to-video: PNG/JPEG, fitted to the size (--image-fit)\n"
            "  --image-fit K     stretch (Lanczos resize to the size: the release, default for Hummingbird-XT) |\n"
            "                    cover (resize to cover, centre crop: Wan; with -i and no size, the image's aspect\n"
            "                    ratio within 1280 x 704 pixels)\n"
            "  -W N, -H N        width, height (multiples of 32; default: the model's, 1280 x 704 for the 5B; demo\n"
            "                    256 x 256)\n"
            "  -f N              frames, 4k+1 (default: the model's, 121 for the 5B; demo 17)\n"
            "  --seed N          noise seed (default 0)\n"
            "  --sampler S       xt (few-step, CFG-free) | unipc | euler (Wan base sampler with CFG); default: the\n"
            "                    model's (xt for Hummingbird-XT, unipc for a base Wan folder)\n"
            "  --steps-list L    xt timesteps (default: the model's, 1000,750,500 for Hummingbird-XT)\n"
            "  --shift S         schedule shift (default: the model's, 10 for Hummingbird-XT)\n"
            "  --noise K         xt noise: torch (the release: PyTorch's generator, one re-noise tensor) | stream\n"
            "  --timestep K      xt timestep the DiT sees: int-bf16 (the release: 1000,968,908) | int-f32 | float\n"
            "  --steps N         unipc/euler steps (default 50)\n"
            "  --cfg X           unipc/euler guidance scale (default 5.0)\n"
            "  --vae K           decoder: light (the release's light decoder; default when the model has one) |\n"
            "                    full (Wan VAE) | tae (tiny, streaming)\n"
            "  --vae-tile N      spatial tile of the Wan VAE decoder, in latent cells (0 = untiled)\n"
            "  --light-vae PATH  light decoder folder (config.json + diffusion_pytorch_model.safetensors) or\n"
            "                    .safetensors file (default: the model folder's vae/wan22_v1_tiling_16_12/);\n"
            "                    selects the light decoder unless --vae says otherwise\n"
            "  --light-tiling M  light decoder: stream (default; equal to the whole-clip decode) | aligned\n"
            "                    (temporal tiles 16/12, frames aligned) | release (the release's tiling exactly)\n"
            "  --offload         keep only one of text encoder / DiT / VAE loaded at a time\n"
            "  -o PATH           out.mp4 (default) | .mkv | .webm | .y4m | FOLDER/ (PNG frames)\n"
            "  --fps X           frames per second of the file (default: the model's, 24 for the 5B)\n"
            "  --demo-dir DIR    demo: write (or reuse) the tiny random model there instead of a temp folder\n"
            "  --mode ar         autoregressive long video (Hummingbird-XTX): see hb generate --mode ar --help\n"
            "  -t N, -v, -q      threads, verbose (stage times, peak memory), quiet\n");
}

typedef struct {
    bool quiet;
    double last_print;
} prog_state;

static int progress_cb(void *user, const char *stage, int step, int total, double el, double eta) {
    prog_state *s = user;
    if (s->quiet || step <= 0) return 0;
    /* the pipeline's own stages only (the models report sub-stages too) */
    if (strcmp(stage, "text") && strcmp(stage, "image") && strcmp(stage, "denoise") && strcmp(stage, "decode")) return 0;
    if (!strcmp(stage, "denoise")) {
        fprintf(stderr, "hb generate: denoise step %d/%d  %.2f s/step  elapsed %.1f s  ETA %.1f s\n", step, total,
                step > 0 ? el / step : 0.0, el, eta);
    } else if (step >= total) {
        fprintf(stderr, "hb generate: %-7s done in %.2f s\n", stage, el);
    }
    return 0;
}

static int parse_int(const char *flag, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) return hb_error("%s: '%s' is not a number in [%ld, %ld]", flag, v, lo, hi);
    *out = (int)x;
    return 0;
}
static int parse_double(const char *flag, const char *v, double lo, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !(x >= lo) || x > 1e9) return hb_error("%s: '%s' is not a number >= %g", flag, v, lo);
    *out = x;
    return 0;
}

/* The output must be writable before any heavy work: its format known, its folder writable. */
static int check_output(const char *out) {
    size_t L = strlen(out);
    struct stat st;
    bool is_dir_out = (L > 0 && out[L - 1] == '/') || (stat(out, &st) == 0 && S_ISDIR(st.st_mode));
    if (!is_dir_out && hb_video_format_for_path(out) == HB_VFMT_AUTO) return -1; /* message names the file */
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", out);
    while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/') buf[strlen(buf) - 1] = 0;
    const char *dir;
    char probe_dir[4096];
    if (is_dir_out && stat(buf, &st) == 0) dir = buf;
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
    if (!is_dir_out && stat(out, &st) == 0 && S_ISDIR(st.st_mode)) return hb_error("-o %s: is a folder", out);
    return 0;
}

static bool folder_has_model(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/hummingbird.json", dir);
    return access(p, F_OK) == 0;
}

int cmd_generate(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            if (!strcmp(argv[i + 1], "ar")) return cmd_generate_ar(argc, argv);
            if (strcmp(argv[i + 1], "xt")) {
                fprintf(stderr, "hb generate: --mode must be xt (default) or ar (got '%s')\n", argv[i + 1]);
                return 2;
            }
        }
    hb_generate_params p;
    hb_generate_params_init(&p);
    const char *model = NULL, *out = "out.mp4", *demo_dir = NULL, *prompt = NULL;
    bool offload = false, size_given = false, frames_given = false;
    double fps = 0;
    prog_state ps = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return tool_fail(argv[0]);
        if (c) continue;
        bool has = i + 1 < argc;
        const char *v = has ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--offload")) offload = true;
        else if (!has) { fprintf(stderr, "hb generate: unknown option or missing value: '%s'\n\n", a); usage(stderr); return 2; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v, i++;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v, i++;
        else if (!strcmp(a, "-n") || !strcmp(a, "--negative")) p.negative = v, i++;
        else if (!strcmp(a, "-i") || !strcmp(a, "--image")) p.image_path = v, i++;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v, i++;
        else if (!strcmp(a, "--demo-dir")) demo_dir = v, i++;
        else if (!strcmp(a, "--mode")) i++;
        else if (!strcmp(a, "-W") || !strcmp(a, "--width")) rc = parse_int(a, v, 1, 8192, &p.width), size_given = true, i++;
        else if (!strcmp(a, "-H") || !strcmp(a, "--height")) rc = parse_int(a, v, 1, 8192, &p.height), size_given = true, i++;
        else if (!strcmp(a, "-f") || !strcmp(a, "--frames")) rc = parse_int(a, v, 1, 4001, &p.frames), frames_given = true, i++;
        else if (!strcmp(a, "--steps")) rc = parse_int(a, v, 1, 1000, &p.steps), i++;
        else if (!strcmp(a, "--vae-tile")) rc = parse_int(a, v, 0, 4096, &p.vae_tile), i++;
        else if (!strcmp(a, "--light-vae")) p.light_vae_path = v, i++;
        else if (!strcmp(a, "--light-tiling")) {
            if (!strcmp(v, "stream")) p.light_tiling = 0;
            else if (!strcmp(v, "aligned")) p.light_tiling = 1;
            else if (!strcmp(v, "release")) p.light_tiling = 2;
            else rc = hb_error("--light-tiling must be stream, aligned or release (got '%s')", v);
            i++;
        }
        else if (!strcmp(a, "--shift")) { rc = parse_double(a, v, 0, &p.shift), i++; if (!rc && p.shift <= 0) rc = hb_error("--shift must be > 0"); }
        else if (!strcmp(a, "--cfg")) rc = parse_double(a, v, 0, &p.cfg), i++;
        else if (!strcmp(a, "--fps")) { rc = parse_double(a, v, 0, &fps), i++; if (!rc && fps <= 0) rc = hb_error("--fps must be > 0"); }
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') rc = hb_error("--seed: '%s' is not a non-negative integer", v);
            p.seed = s, i++;
        } else if (!strcmp(a, "--steps-list")) {
            int n = hb_xt_parse_steps(v, p.steps_list, HB_GEN_MAX_STEPS);
            if (n < 0) rc = -1;
            else p.nsteps = n;
            i++;
        } else if (!strcmp(a, "--sampler")) {
            if (!strcmp(v, "xt")) p.sampler = HB_GEN_SAMPLER_XT;
            else if (!strcmp(v, "unipc")) p.sampler = HB_GEN_SAMPLER_UNIPC;
            else if (!strcmp(v, "euler")) p.sampler = HB_GEN_SAMPLER_EULER;
            else rc = hb_error("--sampler must be xt, unipc or euler (got '%s')", v);
            i++;
        } else if (!strcmp(a, "--image-fit")) {
            if (!strcmp(v, "stretch")) p.image_fit = HB_GEN_IMAGE_STRETCH;
            else if (!strcmp(v, "cover")) p.image_fit = HB_GEN_IMAGE_COVER;
            else rc = hb_error("--image-fit must be stretch or cover (got '%s')", v);
            i++;
        } else if (!strcmp(a, "--noise")) {
            if (!strcmp(v, "torch")) p.noise = HB_GEN_NOISE_TORCH;
            else if (!strcmp(v, "stream")) p.noise = HB_GEN_NOISE_STREAM;
            else rc = hb_error("--noise must be torch or stream (got '%s')", v);
            i++;
        } else if (!strcmp(a, "--timestep")) {
            if (!strcmp(v, "int-bf16")) p.timestep = HB_GEN_T_INT_BF16;
            else if (!strcmp(v, "int-f32")) p.timestep = HB_GEN_T_INT_F32;
            else if (!strcmp(v, "float")) p.timestep = HB_GEN_T_FLOAT;
            else rc = hb_error("--timestep must be int-bf16, int-f32 or float (got '%s')", v);
            i++;
        } else if (!strcmp(a, "--vae")) {
            if (!strcmp(v, "full")) p.vae = HB_GEN_VAE_FULL;
            else if (!strcmp(v, "tae")) p.vae = HB_GEN_VAE_TAE;
            else if (!strcmp(v, "light")) p.vae = HB_GEN_VAE_LIGHT;
            else rc = hb_error("--vae must be full, light or tae (got '%s')", v);
            i++;
        } else { fprintf(stderr, "hb generate: unknown option '%s'\n\n", a); usage(stderr); return 2; }
        if (rc) return tool_fail(argv[0]);
    }
    ps.quiet = hb_log_level < HB_LOG_INFO;
    if (!prompt) { fprintf(stderr, "hb generate: -p PROMPT is required\n\n"); usage(stderr); return 2; }
    p.prompt = prompt;
    p.progress = progress_cb, p.progress_user = &ps;
    if (check_output(out)) return tool_fail(argv[0]);

    /* demo: a tiny random-weight folder */
    char demo[4096] = "";
    bool demo_tmp = false;
    if (!model) {
        if (demo_dir) snprintf(demo, sizeof demo, "%s", demo_dir);
        else {
            const char *td = getenv("TMPDIR");
            snprintf(demo, sizeof demo, "%s/hb-demo-XXXXXX", td && *td ? td : "/tmp");
            if (!mkdtemp(demo)) { hb_error("cannot create a temporary folder %s: %s", demo, strerror(errno)); return tool_fail(argv[0]); }
            rmdir(demo);
            demo_tmp = true;
        }
        fprintf(stderr, "hb generate: no -m given: DEMO on a tiny model with RANDOM weights in %s\n"
                        "hb generate: the video will be noise; pass -m MODEL_DIR for a real model\n", demo);
        if (!folder_has_model(demo)) {
            char tmp[4200];
            hb_mkfolder_opts mo = {.arch = "hummingbird-xt", .tiny = true, .dtype = HB_F32, .seed = 1};
            int lvl = hb_log_level;
            if (hb_log_level == HB_LOG_INFO) hb_log_level = HB_LOG_WARN;
            int rc = rw_begin(demo, tmp, sizeof tmp);
            if (!rc && (rc = hb_model_folder_write_random(tmp, &mo)) != 0) rw_abort(tmp);
            if (!rc) rc = rw_finish(tmp, demo);
            hb_log_level = lvl;
            if (rc) return tool_fail(argv[0]);
        }
        model = demo;
        if (!size_given) p.width = 256, p.height = 256; /* demo: small, also for I2V */
        if (!frames_given) p.frames = 17;
    }

    int ret = 1;
    hb_load_params lp = {.offload = offload};
    double t0 = hb_time_now();
    hb_model *m = hb_model_load(model, &lp);
    double t_load = hb_time_now() - t0;
    hb_video_frames v = {0};
    if (!m) { tool_fail(argv[0]); goto done; }
    if (hb_generate(m, &p, &v)) { tool_fail(argv[0]); goto done; }
    {
        double tw = hb_time_now();
        hb_video_meta meta = {.prompt = prompt, .model = model, .seed = (int64_t)p.seed, .has_seed = true};
        meta.steps = p.sampler == HB_GEN_SAMPLER_UNIPC || p.sampler == HB_GEN_SAMPLER_EULER ? (p.steps > 0 ? p.steps : 50)
                                                                                            : (p.nsteps > 0 ? p.nsteps : 3);
        hb_video_opts vo = {.fps = fps > 0 ? fps : v.fps, .meta = &meta};
        if (hb_video_write(out, v.rgb, v.frames, v.height, v.width, &vo)) { tool_fail(argv[0]); goto done; }
        double t_write = hb_time_now() - tw;
        if (!ps.quiet) fprintf(stderr, "hb generate: write   done in %.2f s\n", t_write);
        if (!ps.quiet)
            printf("wrote %s: %d frames %dx%d at %g fps (%s)\n", out, v.frames, v.width, v.height, vo.fps,
                   demo[0] ? "random-weight demo: noise" : model);
        if (hb_log_level >= HB_LOG_DEBUG)
            fprintf(stderr,
                    "stage times: load %.2f s, text %.2f s, image %.2f s, denoise %.2f s, decode %.2f s, write %.2f s, "
                    "total %.2f s\npeak RSS: %.1f MiB\n",
                    t_load, v.seconds_text, v.seconds_image, v.seconds_denoise, v.seconds_decode, t_write,
                    hb_time_now() - t0, (double)hb_peak_rss_bytes() / (1 << 20));
        if (hb_log_level >= HB_LOG_DEBUG) tool_print_device_peak();
        ret = 0;
    }
done:
    hb_frames_free(&v);
    hb_model_free(m);
    if (demo_tmp) rw_abort(demo);
    return ret;
}
