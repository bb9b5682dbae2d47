/* Threads under a competing load: how much of the machine a GEMM-bound workload keeps when another process burns
 * cores beside it. Each run is its own child process; the share is its CPU-seconds / wall seconds / cores (1.0 =
 * every core all the time). Runs: hummingbird's pool with its default spin (HB_SPIN_US), hummingbird with workers
 * that sleep at once (HB_SPIN_US=0), and OpenBLAS's own threaded cblas_sgemm, each alone and beside a load.
 * Workloads: "big" = 8 x (1024 x 3072 x 3072), "small" = 60 x (390 x 1536 x 1536), each GEMM followed by ~1 ms of
 * serial work (the single-threaded glue between a forward's parallel loops). The f32 FMA peak is measured first.
 * Usage: bench_load [--burners N] (default 1: one core's worth of competing load) */
#include "bench.h"
#include "ops/ops_internal.h"
#include <dlfcn.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct { int64_t M, N, K, reps; } workload;

static void fill(float *x, int64_t n, uint64_t seed) {
    hb_rng r;
    hb_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = hb_rng_uniform(&r) - 0.5f;
}

/* ~1 ms of serial work between GEMMs */
static float serial_glue(float *y, int64_t n) {
    double t0 = hb_time_now();
    float s = 0;
    while (hb_time_now() - t0 < 1e-3)
        for (int64_t i = 0; i < n && i < 4096; i++) s += y[i] * 1e-9f;
    return s;
}

/* The workload in this (child) process: "hb" through hb_linear, "openblas" through OpenBLAS's threaded sgemm. */
static int child_run(const workload *w, const char *engine) {
    float *x = hb_malloc(sizeof(float) * (size_t)(w->M * w->K), "x"), *b = hb_malloc(sizeof(float) * (size_t)(w->N * w->K), "w");
    float *y = hb_malloc(sizeof(float) * (size_t)(w->M * w->N), "y");
    if (!x || !b || !y) return 1;
    fill(x, w->M * w->K, 1);
    fill(b, w->N * w->K, 2);
    hb_blas_sgemm_fn sgemm = NULL;
    if (!strcmp(engine, "openblas")) {
        void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
        sgemm = h ? (hb_blas_sgemm_fn)dlsym(h, "cblas_sgemm") : NULL;
        if (!sgemm) return 3;
    }
    hb_tensor wt = hb_tensor_2d(HB_F32, w->N, w->K, b);
    volatile float sink = 0;
    for (int64_t r = 0; r < w->reps; r++) {
        if (sgemm) sgemm(101, 111, 112, (int)w->M, (int)w->N, (int)w->K, 1.0f, x, (int)w->K, b, (int)w->K, 0.0f, y, (int)w->N);
        else hb_linear(y, x, w->M, &wt, NULL, false);
        sink += serial_glue(y, w->M * w->N);
    }
    (void)sink;
    return 0;
}

static pid_t start_burner(void) {
    pid_t p = fork();
    if (p == 0) {
        volatile unsigned long v = 0;
        for (;;) v++;
    }
    return p;
}

/* One measured run in a child: wall seconds and CPU seconds (user + sys) of that child. */
static int measure(const workload *w, const char *engine, const char *spin, double *wall, double *cpu) {
    double t0 = hb_time_now();
    pid_t p = fork();
    if (p == 0) {
        if (spin) setenv("HB_SPIN_US", spin, 1);
        char nt[16];
        snprintf(nt, sizeof nt, "%d", hb_threads_count());
        setenv("OPENBLAS_NUM_THREADS", nt, 1);
        hb_threads_init(0);
        _exit(child_run(w, engine));
    }
    int st;
    struct rusage ru;
    if (p < 0 || wait4(p, &st, 0, &ru) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
    *wall = hb_time_now() - t0;
    *cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
    return 0;
}

int main(int argc, char **argv) {
    int burners = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--burners") && i + 1 < argc) burners = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s [--burners N]\n", argv[0]); return 2; }
    }
    int cores = hb_threads_count();
    bench_peak pk = bench_peak_measure();
    hb_threads_shutdown(); /* the children start their own pools */
    printf("cores %d, f32 FMA peak %.1f GFLOP/s; competing load: %d process(es) each burning one core\n", cores,
           pk.wall_gflops, burners);
    const struct { const char *name; workload w; } loads[] = {{"big", {1024, 3072, 3072, 8}}, {"small", {390, 1536, 1536, 60}}};
    const struct { const char *label, *engine, *spin; } runs[] = {
        {"hb (spin default)", "hb", NULL}, {"hb HB_SPIN_US=0", "hb", "0"}, {"OpenBLAS threads", "openblas", NULL}};
    printf("%-6s %-18s %-6s %8s %8s %8s %9s\n", "work", "engine", "load", "wall s", "cpu s", "share", "GFLOP/s");
    for (int l = 0; l < 2; l++)
        for (int withload = 0; withload < 2; withload++)
            for (int r = 0; r < 3; r++) {
                pid_t bp[16];
                int nb = withload ? (burners < 16 ? burners : 16) : 0;
                for (int i = 0; i < nb; i++) bp[i] = start_burner();
                double wall = 0, cpu = 0;
                int rc = measure(&loads[l].w, runs[r].engine, runs[r].spin, &wall, &cpu);
                for (int i = 0; i < nb; i++) { kill(bp[i], SIGKILL); waitpid(bp[i], NULL, 0); }
                const workload *w = &loads[l].w;
                if (rc) { printf("%-6s %-18s %-6s (failed or not available)\n", loads[l].name, runs[r].label, withload ? "yes" : "no"); continue; }
                printf("%-6s %-18s %-6s %8.2f %8.2f %8.3f %9.1f\n", loads[l].name, runs[r].label, withload ? "yes" : "no",
                       wall, cpu, cpu / wall / cores, 2.0 * w->M * w->N * w->K * w->reps / wall * 1e-9);
                fflush(stdout);
            }
    return 0;
}
