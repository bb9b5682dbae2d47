/* Quantized-weight benchmark: hb_linear at DiT shapes with bf16, Q8_0, Q4_K and Q6_K weights, then one DiT
 * forward at a fixed token count with bf16, Q8_0 and Q4_K_M weights (random bf16 weights written by the mkmodel
 * code, quantized by hb_gguf_quantize, each forward in its own child process so that its peak RSS is its own).
 * Prints the machine's f32 FMA peak (bench.h) measured in the same run, wall and CPU seconds, GFLOP per CPU-second,
 * the output's normwise error against the bf16 forward, and the peak RSS.
 *
 * Usage: bench_quant [--arch wan2.1-1.3b|wan2.2-ti2v-5b] [--lat FxHxW] [--linear-only] [--rounds N] [--tmp DIR] [-t N]
 *   default: wan2.1-1.3b at latent 2x30x52 (780 tokens), 2 rounds of the three forwards. */
#include "bench.h"
#include <math.h>
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/wan_dit.h"
#include "ops/ops.h"
#include "random_models.h"
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static double linear_seconds(const hb_tensor *w, const float *x, float *y, int64_t M) {
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = hb_time_now();
        hb_linear(y, x, M, w, NULL, false);
        double dt = hb_time_now() - t0;
        if (r > 0 && dt < best) best = dt; /* the first run warms up */
    }
    return best;
}

static void linear_table(void) {
    static const int64_t shapes[][3] = {{1, 3072, 3072}, {320, 3072, 3072}, {1024, 3072, 3072}, {1024, 14336, 3072}};
    static const hb_dtype types[] = {HB_BF16, HB_Q8_0, HB_Q6_K, HB_Q4_K};
    printf("\nhb_linear (best of 2 after a warm-up), GFLOP/s by weight type:\n%-20s", "M x N x K");
    for (size_t t = 0; t < 4; t++) printf(" %9s", hb_dtype_name(types[t]));
    printf("\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = hb_malloc(sizeof(float) * (size_t)(M * K), "x"), *y = hb_malloc(sizeof(float) * (size_t)(M * N), "y");
        float *wf = hb_malloc(sizeof(float) * (size_t)(N * K), "w");
        hb_normal_fill(x, M * K, 3, 1, 0, 0, 1);
        hb_normal_fill(wf, N * K, 3, 2, 0, 0, 0.02f);
        char label[64];
        snprintf(label, sizeof label, "%lldx%lldx%lld", (long long)M, (long long)N, (long long)K);
        printf("%-20s", label);
        for (size_t t = 0; t < 4; t++) {
            hb_tensor w = hb_tensor_2d(types[t], N, K, NULL);
            void *q = hb_malloc(hb_tensor_nbytes(&w), "wq");
            hb_quantize(q, wf, types[t], N * K);
            w.data = q;
            double dt = linear_seconds(&w, x, y, M);
            printf(" %9.1f", 2.0 * M * N * K / dt * 1e-9);
            fflush(stdout);
            hb_free(q);
        }
        printf("\n");
        hb_free(x); hb_free(y); hb_free(wf);
    }
}

/* One forward of the model in `dir`: seconds, peak RSS; the output goes to out_path (raw f32). */
static int forward_child(const char *dir, int64_t F, int64_t H, int64_t W, const char *out_path, int threads) {
    hb_threads_init(threads);
    wan_dit *m = hb_wan_dit_open(dir, NULL);
    if (!m) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    const wan_dit_config *c = &m->cfg;
    int64_t L = F * (H / 2) * (W / 2), nx = (int64_t)c->in_dim * F * H * W, no = (int64_t)c->out_dim * F * H * W;
    float *x = hb_malloc(sizeof(float) * (size_t)nx, "x"), *out = hb_malloc(sizeof(float) * (size_t)no, "out");
    float t = 700.0f;
    int64_t ctx_len = 64;
    float *ctx = hb_malloc(sizeof(float) * (size_t)(ctx_len * c->text_dim), "ctx");
    hb_normal_fill(x, nx, 7, 1, 0, 0, 1);
    hb_normal_fill(ctx, ctx_len * c->text_dim, 7, 2, 0, 0, 0.2f);
    wan_dit_input in = {.x = x, .F = F, .H = H, .W = W, .t = &t, .nt = 1, .context = ctx, .ctx_len = ctx_len};
    double t0 = hb_time_now(), c0 = bench_cpu_now();
    int rc = hb_wan_dit_forward(m, &in, out, NULL);
    double dt = hb_time_now() - t0, dc = bench_cpu_now() - c0;
    if (rc) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(out, sizeof(float), (size_t)no, f) != (size_t)no) return 1;
    fclose(f);
    double fl = hb_wan_dit_forward_flops(c, L, false);
    printf("%8lld %9.1f %9.1f %9.1f %10.0f", (long long)L, dt, dc, fl / dc * 1e-9, (double)hb_peak_rss_bytes() / 1048576.0);
    fflush(stdout);
    return 0;
}

static float *slurp_f32(const char *path, int64_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long b = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = malloc((size_t)b + 4);
    *n = (int64_t)(fread(v, 1, (size_t)b, f) / 4);
    fclose(f);
    return v;
}

int main(int argc, char **argv) {
    const char *arch = "wan2.1-1.3b", *tmpbase = NULL;
    long long F = 2, H = 30, W = 52;
    int threads = 0, rounds = 2;
    bool linear_only = false;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--arch") && has) arch = argv[++i];
        else if (!strcmp(argv[i], "--lat") && has) {
            if (sscanf(argv[++i], "%lldx%lldx%lld", &F, &H, &W) != 3) { fprintf(stderr, "bad --lat\n"); return 2; }
        } else if (!strcmp(argv[i], "--tmp") && has) tmpbase = argv[++i];
        else if (!strcmp(argv[i], "-t") && has) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--linear-only")) linear_only = true;
        else if (!strcmp(argv[i], "--rounds") && has) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--arch wan2.1-1.3b|wan2.2-ti2v-5b] [--lat FxHxW] [--linear-only] [--rounds N] [--tmp DIR] [-t N]\n", argv[0]);
            return 2;
        }
    }
    hb_threads_init(threads);
    printf("threads %d; f32 FMA peak %.1f GFLOP/s (bench.h register loop, all threads)\n", hb_threads_count(),
           bench_peak_gflops());
    linear_table();
    if (linear_only) return 0;
    char dir[1024], path[1200], cmd[4000];
    snprintf(dir, sizeof dir, "%s/hb_bench_quant.XXXXXX", tmpbase ? tmpbase : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    wan_dit_config cfg;
    if (hb_wan_dit_config_preset(&cfg, arch)) { fprintf(stderr, "%s\n", hb_last_error()); return 2; }
    static const char *const kinds[] = {"bf16", "q8_0", "q4_k_m"};
    snprintf(path, sizeof path, "%s/bf16", dir);
    mkdir(path, 0755);
    if (hb_wan_dit_write_random(&cfg, path, HB_BF16, 1, (int64_t)4096 << 20)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    /* the quantized copies first, then the forwards in rounds (bf16, q8_0, q4_k_m, bf16, ...): on a shared
     * machine a load change then hits every kind alike */
    double fbytes[3] = {2.0 * (double)hb_wan_dit_param_count(&cfg), 0, 0};
    for (int k = 1; k < 3; k++) {
        char mdir[1200], gguf[1300];
        snprintf(mdir, sizeof mdir, "%s/%s", dir, kinds[k]);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/bf16/config.json' '%s/'", mdir, dir, mdir);
        if (system(cmd) != 0) return 1;
        snprintf(gguf, sizeof gguf, "%s/model.gguf", mdir);
        double t0 = hb_time_now();
        if (hb_gguf_quantize(path, gguf, kinds[k], NULL)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        struct stat st;
        if (stat(gguf, &st) == 0) fbytes[k] = (double)st.st_size;
        printf("hb_gguf_quantize to %s: %.1f s\n", kinds[k], hb_time_now() - t0);
    }
    printf("\n%s DiT forward, latent %lldx%lldx%lld, t = 700, 64 text tokens (one child process each)\n", arch, F, H, W);
    printf("(cpu_s: CPU seconds of all threads; GF/cpu_s: GFLOP per CPU-second, the rate that does not depend on how "
           "much of the wall time other jobs took)\n");
    printf("%-5s %-8s %10s %8s %9s %9s %9s %10s %12s\n", "round", "weights", "file_MiB", "tokens", "seconds", "cpu_s",
           "GF/cpu_s", "peakRSS_MB", "err_vs_bf16");
    float *ref = NULL;
    int64_t nref = 0;
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < 3; k++) {
            char mdir[1200], outp[1300];
            snprintf(mdir, sizeof mdir, "%s/%s", dir, kinds[k]);
            snprintf(outp, sizeof outp, "%s/out_%s.f32", dir, kinds[k]);
            printf("%-5d %-8s %10.0f ", round + 1, kinds[k], fbytes[k] / 1048576.0);
            fflush(stdout);
            hb_threads_shutdown(); /* a forked child gets no pool threads: it starts its own */
            pid_t pid = fork();
            if (pid == 0) _exit(forward_child(mdir, F, H, W, outp, threads));
            int status = 0;
            waitpid(pid, &status, 0);
            hb_threads_init(threads);
            if (!WIFEXITED(status) || WEXITSTATUS(status)) { printf("  failed\n"); continue; }
            int64_t n = 0;
            float *o = slurp_f32(outp, &n);
            if (!o) { printf("  no output\n"); continue; }
            if (k == 0) { free(ref); ref = o; nref = n; printf(" %12s\n", "-"); continue; }
            double maxd = 0, maxr = 0;
            for (int64_t i = 0; i < n && i < nref; i++) {
                double d = fabs((double)o[i] - ref[i]), r = fabs((double)ref[i]);
                if (d > maxd) maxd = d;
                if (r > maxr) maxr = r;
            }
            printf(" %12.3e\n", maxr > 0 ? maxd / maxr : maxd);
            free(o);
        }
    free(ref);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
