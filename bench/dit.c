/* DiT benchmark: one forward of the full-size Wan DiT (random bf16 weights written by the mkmodel code into
 * a temporary folder, or the folders given) at given video sizes; prints seconds, FLOPs, GFLOP/s, the ratio to
 * the machine's f32 GEMM peak measured in the same run (hb_linear, 2048^3, f32 weights) and to the pure-FMA
 * peak (bench.h), the activation arena and the peak RSS (which includes the mapped weights touched).
 *
 * Usage: bench_dit [-m DIR_5B] [--m13 DIR_1_3B] [--case SPEC]... [--all] [--keep] [--tmp DIR] [-t N]
 *   SPEC: 5b:FxHxW (video frames x height x width, latent via the VAE stride 4x16x16),
 *         1.3b:FxHxW (stride 4x8x8), or ARCH:lat:FxHxW for a latent size directly.
 *   default: 5b:17x256x256 (320 tokens) and 1.3b:lat:3x60x104 (one causal chunk, 4680 tokens).
 *   --all adds 5b:17x480x832 and 5b:lat:5x60x104 (6240 tokens at 1.3B's 480x832 token grid). */
#include "bench.h"
#include "io/safetensors_writer.h"
#include "models/wan_dit.h"
#include "random_models.h"
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

typedef struct {
    char arch[16];
    int64_t F, H, W;        /* latent */
    char label[96];
} bcase;

static int parse_case(const char *s, bcase *c) {
    memset(c, 0, sizeof *c);
    const char *colon = strchr(s, ':');
    if (!colon) return -1;
    snprintf(c->arch, sizeof c->arch, "%.*s", (int)(colon - s), s);
    bool is5 = !strcmp(c->arch, "5b"), is13 = !strcmp(c->arch, "1.3b");
    if (!is5 && !is13) return -1;
    const char *rest = colon + 1;
    bool lat = !strncmp(rest, "lat:", 4);
    if (lat) rest += 4;
    long long f, h, w;
    if (sscanf(rest, "%lldx%lldx%lld", &f, &h, &w) != 3 || f < 1 || h < 1 || w < 1) return -1;
    if (lat) { c->F = f; c->H = h; c->W = w; snprintf(c->label, sizeof c->label, "latent %lldx%lldx%lld", f, h, w); }
    else {
        int st = is5 ? 16 : 8;
        if ((f - 1) % 4 || h % (2 * st) || w % (2 * st)) return -1;
        c->F = 1 + (f - 1) / 4; c->H = h / st; c->W = w / st;
        snprintf(c->label, sizeof c->label, "%lldx%lldx%lld", f, h, w);
    }
    return (c->H % 2 || c->W % 2) ? -1 : 0;
}

/* Free bytes of the file system holding `dir` and of MemAvailable (for /dev/shm, which lives in RAM). */
static double fs_free(const char *dir) {
    struct statvfs v;
    return statvfs(dir, &v) == 0 ? (double)v.f_bavail * (double)v.f_frsize : 0;
}
static double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024.0;
}

/* CPU seconds (user + system) of this process: with other jobs on the machine, wall-clock rates understate
 * what the code does; FLOPs per CPU-second times the thread count estimates the rate on an idle machine. */
static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

/* Best of 3 (after a warm-up): wall GFLOP/s and CPU-time-based GFLOP/s x threads. */
static double gemm_peak(hb_dtype wt, double *cpu_rate) {
    const int64_t n = 2048;
    float *x = hb_malloc(sizeof(float) * (size_t)(n * n), "x"), *y = hb_malloc(sizeof(float) * (size_t)(n * n), "y");
    float *w = hb_malloc(sizeof(float) * (size_t)(n * n), "w");
    uint16_t *wb = hb_malloc(2 * (size_t)(n * n), "wb");
    hb_normal_fill(x, n * n, 1, 1, 0, 0, 1);
    hb_normal_fill(w, n * n, 1, 2, 0, 0, 0.02f);
    hb_convert_from_f32(wb, HB_BF16, w, (size_t)(n * n));
    hb_tensor wt_t = wt == HB_F32 ? hb_tensor_2d(HB_F32, n, n, w) : hb_tensor_2d(HB_BF16, n, n, wb);
    double best = 0, bestc = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = hb_time_now(), c0 = cpu_seconds();
        hb_linear(y, x, n, &wt_t, NULL, false);
        double g = 2.0 * n * n * n / (hb_time_now() - t0) * 1e-9;
        double gc = 2.0 * n * n * n / (cpu_seconds() - c0) * 1e-9 * hb_threads_count();
        if (r > 0 && g > best) best = g; /* first run warms up */
        if (r > 0 && gc > bestc) bestc = gc;
    }
    *cpu_rate = bestc;
    hb_free(x); hb_free(y); hb_free(w); hb_free(wb);
    return best;
}

int main(int argc, char **argv) {
    const char *m5 = NULL, *m13 = NULL, *tmpbase = NULL;
    bcase cases[16];
    int nc = 0, threads = 0;
    bool keep = false, all = false;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "-m") && has) m5 = argv[++i];
        else if (!strcmp(argv[i], "--m13") && has) m13 = argv[++i];
        else if (!strcmp(argv[i], "--tmp") && has) tmpbase = argv[++i];
        else if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) && has) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep")) keep = true;
        else if (!strcmp(argv[i], "--all")) all = true;
        else if (!strcmp(argv[i], "--case") && has && nc < 16) {
            if (parse_case(argv[++i], &cases[nc])) { fprintf(stderr, "bad --case '%s'\n", argv[i]); return 2; }
            nc++;
        } else {
            fprintf(stderr, "usage: %s [-m DIR_5B] [--m13 DIR_1_3B] [--case 5b:17x256x256 | 1.3b:lat:3x60x104]... "
                            "[--all] [--keep] [--tmp DIR] [-t N]\n", argv[0]);
            return 2;
        }
    }
    if (!nc) { parse_case("5b:17x256x256", &cases[nc++]); parse_case("1.3b:lat:3x60x104", &cases[nc++]); }
    if (all) { parse_case("5b:17x480x832", &cases[nc++]); parse_case("5b:lat:5x60x104", &cases[nc++]); }
    hb_threads_init(threads);
    char la[64] = "?";
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) { if (!fgets(la, sizeof la, lf)) la[0] = 0; fclose(lf); la[strcspn(la, "\n")] = 0; }
    printf("threads %d, GEMM kernel %s, load average at start: %s\n", hb_threads_count(), hb_cpu_kernel_name(), la);
    double gpc, gpbc;
    double fma = bench_peak_gflops(), gp = gemm_peak(HB_F32, &gpc), gpb = gemm_peak(HB_BF16, &gpbc);
    printf("peaks: f32 FMA loop %.1f GFLOP/s; GEMM (hb_linear 2048x2048x2048) f32 weights %.1f (per CPU-second x "
           "threads: %.1f), bf16 weights %.1f (%.1f) GFLOP/s\n", fma, gp, gpc, gpb, gpbc);

    /* Temporary models go to /dev/shm when it (and RAM) can hold the 5B bf16 weights with room to spare (no disk
     * traffic: writing and paging 10 GB through a slow disk would dominate), else to $TMPDIR or /tmp. */
    char tmpdir[1024] = "";
    char p5[1200], p13[1200];
    if ((!m5 || !m13)) {
        const char *b = tmpbase;
        double need = 2.0 * 5.0e9 + 6e9;
        if (!b && fs_free("/dev/shm") > need && mem_available() > need) b = "/dev/shm";
        if (!b) b = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/hb_bench_dit.XXXXXX", b);
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
        printf("random bf16 models (mkmodel code, seed 1) are written to %s\n", tmpdir);
    }
    printf("(GFLOP/s: wall clock; cpuGF/s: FLOPs per CPU-second x threads, the idle-machine estimate; /gemm: cpuGF/s "
           "over the f32 GEMM's; /fma: GFLOP/s over the FMA peak)\n");
    printf("\n%-5s %-20s %-10s %6s %8s %8s %8s %8s %8s %7s %7s %8s %8s\n", "arch", "video", "latent", "tokens", "seconds",
           "cpu_s", "TFLOP", "GFLOP/s", "cpuGF/s", "/gemm", "/fma", "arena_MB", "RSS_MB");
    int rc = 0;
    for (int k = 0; k < nc; k++) {
        bcase *c = &cases[k];
        bool is5 = !strcmp(c->arch, "5b");
        const char *dir = is5 ? m5 : m13;
        if (!dir) {
            char *p = is5 ? p5 : p13;
            snprintf(p, 1200, "%s/%s", tmpdir, is5 ? "wan2.2-ti2v-5b" : "wan2.1-1.3b");
            if (access(p, F_OK) != 0) {
                wan_dit_config cfg;
                hb_wan_dit_config_preset(&cfg, is5 ? "wan2.2-ti2v-5b" : "wan2.1-1.3b");
                mkdir(p, 0755);
                double t0 = hb_time_now();
                if (hb_wan_dit_write_random(&cfg, p, HB_BF16, 1, (int64_t)4096 << 20)) {
                    fprintf(stderr, "mkmodel: %s\n", hb_last_error()); rc = 1; break;
                }
                fprintf(stderr, "(wrote random bf16 %s, %.2f B params, in %.1f s)\n", p,
                        hb_wan_dit_param_count(&cfg) * 1e-9, hb_time_now() - t0);
            }
            dir = p;
        }
        wan_dit *m = hb_wan_dit_open(dir, NULL);
        if (!m) { fprintf(stderr, "%s\n", hb_last_error()); rc = 1; break; }
        const wan_dit_config *cf = &m->cfg;
        int64_t L = c->F * (c->H / 2) * (c->W / 2), tpf = (c->H / 2) * (c->W / 2);
        int64_t nx = (int64_t)cf->in_dim * c->F * c->H * c->W, no = (int64_t)cf->out_dim * c->F * c->H * c->W;
        float *x = hb_malloc(sizeof(float) * (size_t)nx, "x"), *out = hb_malloc(sizeof(float) * (size_t)no, "out");
        float *t = hb_malloc(sizeof(float) * (size_t)L, "t");
        int64_t ctx_len = cf->text_len < 64 ? cf->text_len : 64;
        float *ctx = hb_malloc(sizeof(float) * (size_t)(ctx_len * cf->text_dim), "ctx");
        hb_normal_fill(x, nx, 7, 1, 0, 0, 1);
        hb_normal_fill(ctx, ctx_len * cf->text_dim, 7, 2, 0, 0, 0.2f);
        /* 5B: I2V-style per-token t (frame 0 clean); 1.3B: one t */
        for (int64_t i = 0; i < L; i++) t[i] = (is5 && i < tpf) ? 0.0f : 700.0f;
        wan_dit_input in = {.x = x, .F = c->F, .H = c->H, .W = c->W, .t = t, .nt = is5 ? L : 1, .context = ctx,
                            .ctx_len = ctx_len};
        size_t ws = hb_wan_dit_workspace_bytes(cf, L, in.nt, false);
        hb_reset_peak_rss();
        double t0 = hb_time_now(), c0 = cpu_seconds();
        int frc = hb_wan_dit_forward(m, &in, out, NULL);
        double dt = hb_time_now() - t0, dc = cpu_seconds() - c0;
        double cg;
        if (frc) { fprintf(stderr, "%s\n", hb_last_error()); rc = 1; }
        double finite = 0;
        for (int64_t i = 0; i < no; i++) finite += out[i] == out[i] && out[i] < 1e30f && out[i] > -1e30f;
        double fl = hb_wan_dit_forward_flops(cf, L, false);
        cg = fl / dc * 1e-9 * hb_threads_count();
        char lat[32];
        snprintf(lat, sizeof lat, "%lldx%lldx%lld", (long long)c->F, (long long)c->H, (long long)c->W);
        printf("%-5s %-20s %-10s %6lld %8.2f %8.2f %8.2f %8.1f %8.1f %7.3f %7.3f %8.0f %8.0f%s\n", c->arch, c->label, lat,
               (long long)L, dt, dc, fl * 1e-12, fl / dt * 1e-9, cg, cg / gpc, fl / dt * 1e-9 / fma,
               (double)ws / 1048576.0, (double)hb_peak_rss_bytes() / 1048576.0,
               finite == (double)no ? "" : "  (NON-FINITE OUTPUT)");
        fflush(stdout);
        hb_free(x); hb_free(out); hb_free(t); hb_free(ctx);
        hb_wan_dit_free(m);
        /* drop a temporary model no later case needs */
        bool later = false;
        for (int j = k + 1; j < nc; j++) later |= !strcmp(cases[j].arch, c->arch);
        if (dir == p5 || dir == p13) { if (!later && !keep) hb_folder_stage_abort(dir); }
    }
    if (tmpdir[0]) {
        if (keep) printf("models kept in %s\n", tmpdir);
        else hb_folder_stage_abort(tmpdir);
    }
    return rc;
}
