/* bench_decode: the video decoders on the same random latents, through pipeline/longdecode (the way the
 * pipeline drives them): Wan-2.2 VAE decoder (full widths), the release's light decoder causal and non-causal
 * (decoder_block_out_channels [32, 64, 256, 512], streamed),
 * TAEW2.2; and at Wan-2.1 geometry the Wan-2.1 VAE and TAEW2.1. All weights random (full widths).
 * Each decoder runs in its own child process so that its peak RSS is its own. Reported: seconds, seconds per
 * output frame, GFLOP, GFLOP/s and % of the machine's f32 FMA peak, peak RSS, the decoder's working memory,
 * and speed / memory ratios against the full Wan decoder of the same latent family.
 *
 * usage: bench_decode [--size HxW] [--latents N] [--only NAME[,NAME]] [--clip N]
 *        bench_decode --full    (21 latents at 480x832 and 31 at 704x1280: hours on 2 cores)
 * Defaults: 2 latents (5 frames) at 128x224: the full Wan decoders need ~20 (2.1) / ~38 (2.2) TFLOP for 2
 * latents at 480x832, minutes on 2 cores. Every decoder's cost is linear in pixels and in frames after the
 * first latent, so per-frame figures and ratios carry over; --size / --latents / --full give the real sizes. */
#include "random_models.h"
#include "bench.h"
#include "io/checkpoint.h"
#include "ops/ops.h"
#include "pipeline/longdecode.h"
#include <unistd.h>

typedef struct { double acc; int64_t frames; } sinkc;
static int sink(void *user, int64_t t0, int64_t n, const float *v, int64_t H, int64_t W) {
    sinkc *s = user;
    (void)t0;
    s->acc += v[0] + v[3 * n * H * W - 1];
    s->frames += n;
    return 0;
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* child: decode with one decoder, print "RESULT sec flops rss bytes frames" */
static int child(const char *name, int64_t H, int64_t W, int nlat, int clip) {
    hb_threads_init(0);
    char dir[256] = "";
    hb_checkpoint *ck = NULL;
    hb_wan_vae *wan = NULL;
    hb_light_vae *lv = NULL;
    hb_tae *tae = NULL;
    hb_decoder *d = NULL;
    sinkc s = {0, 0};
    int z = 48, sf = 16;
    double flops = 0;
    hb_longdecode_opts o = {HB_LD_AUTO, clip, 1, 0, 0, 0, 0, 0};
    if (!strncmp(name, "wan", 3)) {
        hb_wan_vae_config c;
        bool v21 = !strcmp(name, "wan2.1");
        hb_wan_vae_config_default(&c, v21 ? HB_WAN_VAE_21 : HB_WAN_VAE_22);
        if (v21) z = 16, sf = 8;
        wan = hb_wan_vae_create_random(&c, 1);
        if (wan) flops = hb_wan_vae_decode_flops(wan, nlat, H / sf, W / sf, NULL);
        o.clip = clip ? clip : nlat; /* one clip: the plain whole decode (its own chunked causal cache) */
        if (wan) d = hb_decoder_new_wan(wan, H / sf, W / sf, &o, sink, &s);
    } else if (!strncmp(name, "light", 5)) {
        hb_light_vae_config c; /* the release's structure and widths; streamed latent by latent */
        hb_light_vae_config_default(&c, false, !strcmp(name, "light-causal"));
        lv = hb_light_vae_create_random(&c, 1);
        if (lv) flops = hb_light_vae_decode_flops(lv, nlat, H / sf, W / sf);
        o.clip = clip ? clip : 1;
        if (lv) d = hb_decoder_new_light(lv, H / sf, W / sf, &o, sink, &s);
    } else if (!strncmp(name, "taew", 4)) {
        bool v21 = !strcmp(name, "taew2.1");
        if (v21) z = 16, sf = 8;
        snprintf(dir, sizeof dir, "%s/hb_bench_decode.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        const int dw[4] = {256, 128, 64, 64};
        if (!mkdtemp(dir) || hb_tae_write_random(dir, v21 ? 1 : 2, z, 64, dw, HB_F32, 1) ||
            !(ck = hb_checkpoint_open(dir)) || !(tae = hb_tae_load(ck, NULL, HB_TAE_DECODER))) {
            fprintf(stderr, "%s\n", hb_last_error());
            return 1;
        }
        flops = 2 * hb_tae_decoder_macs(tae, H / sf, W / sf) * nlat;
        o.clip = clip ? clip : 1;
        d = hb_decoder_new_tae(tae, H / sf, W / sf, &o, sink, &s);
    }
    if (!d) { fprintf(stderr, "%s: %s\n", name, hb_last_error()); return 1; }
    int64_t h = H / sf, w = W / sf;
    float *lat = hb_malloc(sizeof(float) * (size_t)(z * nlat * h * w), "latents");
    hb_rng r;
    hb_rng_seed(&r, 7);
    for (int64_t i = 0; i < z * nlat * h * w; i++) lat[i] = hb_rng_normal(&r);
    double t0 = hb_time_now(), c0 = bench_cpu_now();
    int rc = hb_decoder_run(d, lat, nlat);
    double sec = hb_time_now() - t0, csec = bench_cpu_now() - c0;
    if (rc) { fprintf(stderr, "%s: %s\n", name, hb_last_error()); return 1; }
    printf("RESULT %.6f %.6f %.6e %zu %zu %lld\n", sec, csec, flops, hb_peak_rss_bytes(), hb_decoder_bytes(d),
           (long long)s.frames);
    hb_decoder_free(d);
    hb_free(lat);
    hb_wan_vae_free(wan), hb_light_vae_free(lv), hb_tae_free(tae);
    if (ck) hb_checkpoint_close(ck);
    if (dir[0]) rm_rf(dir);
    return 0;
}

typedef struct { double sec, csec, flops; size_t rss, bytes; long long frames; bool ok; } result;

static result run_child(const char *self, const char *name, int64_t H, int64_t W, int nlat, int clip) {
    result res = {0};
    char cmd[1400], line[512];
    snprintf(cmd, sizeof cmd, "'%s' --child %s %lld %lld %d %d", self, name, (long long)H, (long long)W, nlat, clip);
    FILE *p = popen(cmd, "r");
    if (!p) return res;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "RESULT %lf %lf %lf %zu %zu %lld", &res.sec, &res.csec, &res.flops, &res.rss, &res.bytes,
                   &res.frames) == 6)
            res.ok = true;
    pclose(p);
    return res;
}

/* peak: f32 FMA GFLOP per CPU-second (one core); the rate column is GFLOP per CPU-second of the decode, so
 * the efficiency does not depend on how busy the machine was */
static void print_row(const char *name, int64_t H, int64_t W, int nlat, result r, const result *base, double peak) {
    if (!r.ok) { printf("%-15s %5lldx%-5lld %3d  failed (see stderr)\n", name, (long long)H, (long long)W, nlat); return; }
    double gfs = r.flops / r.csec * 1e-9;
    printf("%-15s %5lldx%-5lld %3d %4lld %9.2f %9.2f %9.3f %9.1f %8.1f %5.1f%% %9.0f %9.0f", name, (long long)H,
           (long long)W, nlat, r.frames, r.sec, r.csec, r.sec / (double)r.frames, r.flops * 1e-9, gfs, 100 * gfs / peak,
           r.rss / 1048576.0, r.bytes / 1048576.0);
    if (base && base->ok)
        printf(" %7.1fx %7.1fx %6.1fx %6.1fx", base->sec / r.sec, base->csec / r.csec, (double)base->rss / (double)r.rss,
               (double)base->bytes / (double)r.bytes);
    printf("\n");
    fflush(stdout);
}

static void run_set(const char *self, const char *only, int64_t H, int64_t W, int nlat, int clip, bool v21, double peak) {
    const char *names22[] = {"wan2.2", "light-causal", "light-noncausal", "taew2.2"};
    const char *names21[] = {"wan2.1", "taew2.1"};
    const char **names = v21 ? names21 : names22;
    int n = v21 ? 2 : 4;
    result base = {0};
    for (int i = 0; i < n; i++) {
        if (only && !strstr(only, names[i])) continue;
        result r = run_child(self, names[i], H, W, nlat, clip);
        if (i == 0) base = r;
        print_row(names[i], H, W, nlat, r, i == 0 ? NULL : &base, peak);
    }
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[1], "--child"))
        return child(argv[2], atoll(argv[3]), atoll(argv[4]), atoi(argv[5]), atoi(argv[6]));
    int64_t H = 128, W = 224;
    int nlat = 2, clip = 0;
    bool full = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            long long a, b;
            if (sscanf(argv[++i], "%lldx%lld", &a, &b) != 2 || a <= 0 || b <= 0 || a % 16 || b % 16) {
                fprintf(stderr, "--size HxW (multiples of 16)\n");
                return 2;
            }
            H = a, W = b;
        } else if (!strcmp(argv[i], "--latents") && i + 1 < argc) nlat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--clip") && i + 1 < argc) clip = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--full")) full = true;
        else {
            fprintf(stderr, "usage: %s [--size HxW] [--latents N] [--clip N] [--only wan2.2,light-causal,...] [--full]\n",
                    argv[0]);
            return 2;
        }
    }
    if (nlat < 1) nlat = 1;
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) { perror("readlink"); return 1; }
    self[sl] = 0;
    hb_threads_init(0);
    bench_peak pk = bench_peak_measure();
    double peak = pk.cpu_gflops;
    printf("bench_decode: random full-width weights, %d threads, kernels %s, f32 FMA peak %.1f GFLOP/s (wall, all "
           "threads), %.1f GFLOP per CPU-second (one core)\n",
           hb_threads_count(), hb_cpu_kernel_name(), pk.wall_gflops, pk.cpu_gflops);
    printf("causal decoders stream through longdecode's causal-cache mode (clip %d latent), the others decode the\n"
           "latents as one clip. Ratios vs the full Wan decoder on the same latents: speed = wall seconds, cpu spd = CPU\n"
           "seconds (robust on a shared machine), RSS = peak RSS (weights included; the Wan models hold encoder +\n"
           "decoder weights), work = working memory (activations, caches, clip buffers)\n",
           clip ? clip : 1);
    printf("%-15s %11s %3s %4s %9s %9s %9s %9s %8s %6s %9s %9s %8s %8s %7s %7s\n", "decoder", "size", "lat", "frm",
           "seconds", "cpu s", "s/frame", "GFLOP", "GF/cpu-s", "%peak", "RSS MiB", "work MiB", "speed", "cpu spd",
           "RSS", "work");
    if (full) {
        run_set(self, only, 480, 832, 21, clip, false, peak);
        run_set(self, only, 480, 832, 21, clip, true, peak);
        run_set(self, only, 704, 1280, 31, clip, false, peak);
    } else {
        run_set(self, only, H, W, nlat, clip, false, peak);
        if (H % 8 == 0 && W % 8 == 0) run_set(self, only, H, W, nlat, clip, true, peak);
    }
    return 0;
}
