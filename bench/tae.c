/* TAEHV benchmark: streaming decode (and encode) at 480x832 with random full-width weights (encoder 64,
 * decoder 256/128/64/64, i.e. the real TAEW2.1 / TAEW2.2 sizes), against the machine's f32 FMA peak
 * measured in the same run (bench.h).
 * Usage: bench_tae [--model taew2.1|taew2.2|all] [--size HxW] [--latents N] [--div D] [--no-encoder]
 *   --latents: latents decoded (the first one, which gives 1 frame after the trim, is not timed); default 2
 *   --div: divide every internal width by D (quick runs); default 1 */
#include "random_models.h"
#include "bench.h"
#include "io/checkpoint.h"
#include "ops/ops.h"
#include "models/tae.h"
#include <time.h>
#include <unistd.h>

/* CPU seconds of the whole process (all threads): on a shared machine wall time overstates the cost. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { int64_t frames; } count_ctx;
static int count_frame(void *user, const hb_tae_frame *f) { if (f->rgb) ((count_ctx *)user)->frames++; return 0; }
static int count_latent(void *user, int64_t i, const float *z, int64_t C, int64_t h, int64_t w) {
    (void)i, (void)z, (void)C, (void)h, (void)w;
    ((count_ctx *)user)->frames++;
    return 0;
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static int run_model(const char *name, int P, int C, int div, int64_t H, int64_t W, int nlat, bool enc, double peak) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/hb_bench_tae.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    const int dw[4] = {256 / div, 128 / div, 64 / div, 64 / div};
    hb_checkpoint *ck = NULL;
    hb_tae *m = NULL;
    int rc = 1;
    if (hb_tae_write_random(dir, P, C, 64 / div, dw, HB_F32, 1234) || !(ck = hb_checkpoint_open(dir)) ||
        !(m = hb_tae_load(ck, NULL, HB_TAE_ENCODER | HB_TAE_DECODER))) {
        fprintf(stderr, "%s\n", hb_last_error());
        goto out;
    }
    int64_t sc = hb_tae_space_scale(m), h = H / sc, w = W / sc;
    if (h * sc != H || w * sc != W) { fprintf(stderr, "size %lldx%lld is not a multiple of %lld\n", (long long)H, (long long)W, (long long)sc); goto out; }
    /* decoder */
    count_ctx cnt = {0};
    size_t rss0 = hb_current_rss_bytes();
    hb_tae_decoder *d = hb_tae_decoder_new(m, h, w, count_frame, &cnt);
    if (!d) { fprintf(stderr, "%s\n", hb_last_error()); goto out; }
    float *lat = hb_malloc((size_t)(C * h * w) * sizeof(float), "latent");
    hb_rng r;
    hb_rng_seed(&r, 7);
    double t[64], cpu[64];
    int nt = 0;
    for (int i = 0; i < nlat; i++) {
        for (int64_t k = 0; k < C * h * w; k++) lat[k] = hb_rng_normal(&r);
        double t0 = hb_time_now(), c0 = cpu_now();
        if (hb_tae_decoder_push(d, lat, 0)) { fprintf(stderr, "%s\n", hb_last_error()); break; }
        if (i > 0 && nt < 64) cpu[nt] = cpu_now() - c0, t[nt++] = hb_time_now() - t0;
    }
    double macs = hb_tae_decoder_macs(m, h, w), sec = nt ? bench_median(t, nt) : 0, csec = nt ? bench_median(cpu, nt) : 0;
    int up = hb_tae_t_upscale(m);
    printf("%-8s %-8s %5lldx%-5lld %11.1f %9.3f %8.3f %9.3f %8.1f %6.1f%% %9.0f\n", name, "decoder", (long long)h,
           (long long)w, macs * 1e-9, sec, sec / up, csec / up, sec > 0 ? 2 * macs / sec * 1e-9 : 0,
           sec > 0 ? 100 * 2 * macs / sec * 1e-9 / peak : 0, hb_tae_decoder_bytes(d) / 1048576.0);
    (void)rss0;
    hb_tae_decoder_free(d);
    hb_free(lat);
    if (enc) {
        int td = hb_tae_t_downscale(m);
        hb_tae_encoder *e = hb_tae_encoder_new(m, H, W, count_latent, &cnt);
        if (!e) { fprintf(stderr, "%s\n", hb_last_error()); goto out; }
        float *fr = hb_malloc((size_t)(3 * H * W) * sizeof(float), "frame");
        for (int64_t k = 0; k < 3 * H * W; k++) fr[k] = hb_rng_uniform(&r);
        nt = 0;
        for (int i = 0; i < nlat; i++) {
            double t0 = hb_time_now(), c0 = cpu_now();
            for (int f = 0; f < td; f++)
                if (hb_tae_encoder_push(e, fr, 0)) { fprintf(stderr, "%s\n", hb_last_error()); break; }
            if (nt < 64) cpu[nt] = cpu_now() - c0, t[nt++] = hb_time_now() - t0;
        }
        macs = hb_tae_encoder_macs(m, H, W), sec = bench_median(t, nt), csec = bench_median(cpu, nt);
        printf("%-8s %-8s %5lldx%-5lld %11.1f %9.3f %8.3f %9.3f %8.1f %6.1f%% %9.0f\n", name, "encoder", (long long)H,
               (long long)W, macs * 1e-9, sec, sec / td, csec / td, 2 * macs / sec * 1e-9, 100 * 2 * macs / sec * 1e-9 / peak,
               hb_tae_encoder_bytes(e) / 1048576.0);
        hb_tae_encoder_free(e);
        hb_free(fr);
    }
    rc = 0;
out:
    hb_tae_free(m);
    hb_checkpoint_close(ck);
    rm_rf(dir);
    return rc;
}

int main(int argc, char **argv) {
    const char *model = "all";
    int64_t H = 480, W = 832;
    int nlat = 2, div = 1;
    bool enc = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            long long a, b;
            if (sscanf(argv[++i], "%lldx%lld", &a, &b) != 2 || a <= 0 || b <= 0) { fprintf(stderr, "--size HxW\n"); return 2; }
            H = a, W = b;
        } else if (!strcmp(argv[i], "--latents") && i + 1 < argc) nlat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--div") && i + 1 < argc) div = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-encoder")) enc = false;
        else {
            fprintf(stderr, "usage: %s [--model taew2.1|taew2.2|all] [--size HxW] [--latents N] [--div D] [--no-encoder]\n", argv[0]);
            return 2;
        }
    }
    if (nlat < 2) nlat = 2;
    if (div < 1 || 64 % div) { fprintf(stderr, "--div must divide 64\n"); return 2; }
    hb_threads_init(0);
    double peak = bench_peak_gflops();
    printf("TAEHV streaming, %lldx%lld video, widths enc %d dec %d/%d/%d/%d, threads %d, kernels %s, "
           "f32 FMA peak %.1f GFLOP/s\n", (long long)H, (long long)W, 64 / div, 256 / div, 128 / div, 64 / div,
           64 / div, hb_threads_count(), hb_cpu_kernel_name(), peak);
    printf("%-8s %-8s %11s %11s %9s %8s %9s %8s %7s %9s\n", "model", "part", "latent/img", "GMAC/latent", "s/latent",
           "s/frame", "cpu s/fr", "GFLOP/s", "%peak", "state MB");
    printf("(decoder: steady-state latents, 4 frames each; encoder: 4 frames per latent; cpu s/fr = CPU seconds of\n"
           " all threads per frame; GFLOP/s from wall time; GMAC counts the work actually done)\n");
    int rc = 0;
    if (!strcmp(model, "all") || !strcmp(model, "taew2.1")) rc |= run_model("taew2.1", 1, 16, div, H, W, nlat, enc, peak);
    if (!strcmp(model, "all") || !strcmp(model, "taew2.2")) rc |= run_model("taew2.2", 2, 48, div, H, W, nlat, enc, peak);
    return rc;
}
