/* bench_xt: Hummingbird-XT end to end at full width (Wan2.2-TI2V-5B DiT, Wan2.2 VAE, light VAE, TAEW2.2) with
 * random weights written by the model-folder writer into a temp folder (or reused with --model DIR).
 * Prints seconds per stage (text, denoise per step, decode, total), the DiT's GFLOP/s against the machine's
 * f32 FMA peak, and the peak RSS of each run.
 *
 *   bench_xt [--size WxHxF] [--layers N] [--text-layers N] [--vae full,light,tae] [--steps-list L]
 *            [--model DIR] [--keep DIR] [--offload] [-t N]
 * Defaults: 256x256x17, 30 DiT layers (the real 5B), 2 umT5 layers (the text encoder has its own bench_text),
 * decoders light and full, steps 1000,750,500. --layers N < 30 runs a shallower DiT: the denoise time scales
 * with the layer count (the per-layer cost is the same), and the table prints the 30-layer extrapolation. */
#include "bench.h"
#include "hummingbird.h"
#include "pipeline/model_folder.h"
#include "pipeline/xt.h"
#include "io/safetensors_writer.h"
#include "models/wan_dit.h"
#include "random_models.h"
#include <unistd.h>

/* CPU seconds of the denoise stage, from the progress callback (step 0 = start, step total = end). */
typedef struct { double c0, c1; } den_cpu;
static int on_progress(void *user, const char *stage, int step, int total, double el, double eta) {
    (void)el, (void)eta;
    den_cpu *d = user;
    if (strcmp(stage, "denoise")) return 0;
    if (step == 0) d->c0 = bench_cpu_now();
    if (step == total) d->c1 = bench_cpu_now();
    return 0;
}

int main(int argc, char **argv) {
    int W = 256, H = 256, F = 17, layers = 30, text_layers = 2, threads = 0;
    const char *vaes = "light,full", *model = NULL, *keep = NULL, *steps = "1000,750,500";
    bool offload = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--size") && has) {
            if (sscanf(argv[++i], "%dx%dx%d", &W, &H, &F) != 3) { fprintf(stderr, "--size WxHxF\n"); return 2; }
        } else if (!strcmp(a, "--layers") && has) layers = atoi(argv[++i]);
        else if (!strcmp(a, "--text-layers") && has) text_layers = atoi(argv[++i]);
        else if (!strcmp(a, "--vae") && has) vaes = argv[++i];
        else if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--keep") && has) keep = argv[++i];
        else if (!strcmp(a, "--steps-list") && has) steps = argv[++i];
        else if (!strcmp(a, "--offload")) offload = true;
        else if (!strcmp(a, "-t") && has) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_xt [--size WxHxF] [--layers N] [--text-layers N] [--vae full,light,tae] "
                            "[--steps-list L] [--model DIR] [--keep DIR] [--offload] [-t N]\n");
            return 2;
        }
    }
    hb_threads_init(threads);
    bench_peak pk = bench_peak_measure();
    printf("bench_xt: %d threads, f32 FMA peak %.1f GFLOP/s (%.1f per CPU-second)\n", hb_threads_count(), pk.wall_gflops,
           pk.cpu_gflops);

    char dir[4096], tmp[4200];
    bool made = false;
    if (model) snprintf(dir, sizeof dir, "%s", model);
    else {
        if (keep) snprintf(dir, sizeof dir, "%s", keep);
        else {
            const char *td = getenv("TMPDIR");
            snprintf(dir, sizeof dir, "%s/hb-bench-xt-%ld", td && *td ? td : "/tmp", (long)getpid());
        }
        hb_mkfolder_opts o = {.arch = "hummingbird-xt", .tiny = false, .dtype = HB_BF16, .seed = 1,
                              .dit_layers = layers, .text_layers = text_layers};
        double t0 = hb_time_now();
        if (hb_folder_stage_begin(dir, tmp, sizeof tmp) || hb_model_folder_write_random(tmp, &o) ||
            hb_folder_stage_finish(tmp, dir)) {
            fprintf(stderr, "bench_xt: writing the model folder failed: %s\n", hb_last_error());
            hb_folder_stage_abort(tmp);
            return 1;
        }
        made = !keep;
        printf("wrote the random model folder %s in %.1f s (DiT %d layers bf16, umT5 %d layers bf16, VAE f32)\n", dir,
               hb_time_now() - t0, layers, text_layers);
    }
    hb_reset_peak_rss();
    double t0 = hb_time_now();
    hb_load_params lp = {.offload = offload};
    hb_model *m = hb_model_load(dir, &lp);
    if (!m) { fprintf(stderr, "bench_xt: %s\n", hb_last_error_message()); return 1; }
    double t_load = hb_time_now() - t0;
    hb_model_folder mf;
    wan_dit *probe = hb_model_folder_scan(dir, &mf) ? NULL : hb_wan_dit_open(mf.dit, NULL);
    wan_dit_config dc = probe ? probe->cfg : (wan_dit_config){0};
    hb_wan_dit_free(probe);
    const int64_t L = (int64_t)((F - 1) / 4 + 1) * (H / 32) * (W / 32);
    printf("size %dx%dx%d: latent [48, %d, %d, %d], %lld tokens; DiT dim %d, %d layers; load %.2f s%s\n", W, H, F,
           (F - 1) / 4 + 1, H / 16, W / 16, (long long)L, dc.dim, dc.num_layers, t_load, offload ? " (offload)" : "");
    printf("\n%-6s %8s %9s %9s %10s %8s %8s %9s %10s %9s %10s\n", "vae", "text s", "denoise s", "s/step", "GFLOP/s", "of peak",
           "cpu-eff", "decode s", "total s", "peak GiB", "30L est s");
    char list[256];
    snprintf(list, sizeof list, "%s", vaes);
    int ret = 0;
    for (char *save = NULL, *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        hb_generate_params p;
        hb_generate_params_init(&p);
        p.prompt = "a red fox running through fresh snow in a forest, cinematic";
        p.width = W, p.height = H, p.frames = F, p.seed = 1;
        int n = hb_xt_parse_steps(steps, p.steps_list, HB_GEN_MAX_STEPS);
        if (n < 0) { fprintf(stderr, "bench_xt: %s\n", hb_last_error()); return 2; }
        p.nsteps = n;
        p.vae = !strcmp(k, "full") ? HB_GEN_VAE_FULL : !strcmp(k, "tae") ? HB_GEN_VAE_TAE : HB_GEN_VAE_LIGHT;
        den_cpu dcpu = {0, 0};
        p.progress = on_progress, p.progress_user = &dcpu;
        hb_reset_peak_rss();
        hb_video_frames v;
        if (hb_generate(m, &p, &v)) {
            fprintf(stderr, "bench_xt (%s): %s\n", k, hb_last_error_message());
            ret = 1;
            continue;
        }
        double fl = hb_wan_dit_forward_flops(&dc, L, true) * n; /* flops (2 x multiply-adds) */
        double est30 = dc.num_layers > 0 ? v.seconds_total + v.seconds_denoise * (30.0 / dc.num_layers - 1.0) : 0;
        /* cpu-eff: DiT GFLOP per CPU-second / the FMA loop's per CPU-second (robust on a shared machine) */
        double ceff = dcpu.c1 > dcpu.c0 ? fl / (dcpu.c1 - dcpu.c0) * 1e-9 / pk.cpu_gflops : 0;
        printf("%-6s %8.2f %9.2f %9.2f %10.1f %7.1f%% %7.1f%% %9.2f %10.2f %9.2f %10.1f\n", k, v.seconds_text,
               v.seconds_denoise, v.seconds_denoise / n, fl / v.seconds_denoise * 1e-9,
               100.0 * fl / v.seconds_denoise * 1e-9 / pk.wall_gflops, 100.0 * ceff, v.seconds_decode, v.seconds_total,
               (double)v.peak_rss_bytes / (1 << 30), est30);
        fflush(stdout);
        hb_frames_free(&v);
    }
    hb_model_free(m);
    if (made) hb_folder_stage_abort(dir);
    return ret;
}
