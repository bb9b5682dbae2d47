/* bench_lpips: the LPIPS term of hb train-decoder (models/lpips) at the backbones' real widths (AlexNet 64, 192,
 * 384, 256, 256; VGG16 64 ... 512), random weights (a state_dict written to a temporary safetensors) and frames.
 * Reported: seconds per clip for the distance alone and for distance + input gradient (hb_lpips_video), CPU.
 *
 * usage: bench_lpips [--net alex|vgg] [--frames N] [--size N] [--reps N]   (default alex, 17 frames at 256x256) */
#include "bench.h"
#include "io/checkpoint.h"
#include "models/lpips.h"
#include <math.h>
#include <unistd.h>

static const char *k_alex[] = {"net.slice1.0", "net.slice2.3", "net.slice3.6", "net.slice4.8", "net.slice5.10"};
static const int k_alex_w[] = {64, 192, 384, 256, 256}, k_alex_k[] = {11, 5, 3, 3, 3}, k_alex_tap[] = {0, 1, 2, 3, 4};
static const char *k_vgg[] = {"net.slice1.0",  "net.slice1.2",  "net.slice2.5",  "net.slice2.7",  "net.slice3.10",
                              "net.slice3.12", "net.slice3.14", "net.slice4.17", "net.slice4.19", "net.slice4.21",
                              "net.slice5.24", "net.slice5.26", "net.slice5.28"};
static const int k_vgg_w[] = {64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512};
static const int k_vgg_tap[] = {-1, 0, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4};

/* a random lpips state_dict (He-scaled convs, lin weights in [0, 1)) */
static int write_random(const char *path, bool vgg, hb_rng *r) {
    int n = vgg ? 13 : 5, m = 0;
    const char *names[40];
    char nm[40][48];
    hb_tensor ts[40];
    float *data[40];
    static const float shift[3] = {-.030f, -.088f, -.188f}, scale[3] = {.458f, .448f, .450f};
    int64_t s13[4] = {1, 3, 1, 1}, cin = 3;
    strcpy(nm[m], "scaling_layer.shift"), ts[m] = hb_tensor_make(HB_F32, 4, s13, (void *)shift), data[m++] = NULL;
    strcpy(nm[m], "scaling_layer.scale"), ts[m] = hb_tensor_make(HB_F32, 4, s13, (void *)scale), data[m++] = NULL;
    for (int i = 0; i < n; i++) {
        int64_t co = vgg ? k_vgg_w[i] : k_alex_w[i], k = vgg ? 3 : k_alex_k[i], tap = vgg ? k_vgg_tap[i] : k_alex_tap[i];
        int64_t ws[4] = {co, cin, k, k}, bs[1] = {co}, ls[4] = {1, co, 1, 1}, nw = co * cin * k * k;
        float *w = malloc(sizeof(float) * (size_t)(nw + 2 * co));
        for (int64_t j = 0; j < nw; j++) w[j] = hb_rng_normal(r) * sqrtf(2.0f / (float)(cin * k * k));
        for (int64_t j = 0; j < co; j++) w[nw + j] = 0.05f, w[nw + co + j] = hb_rng_uniform(r);
        snprintf(nm[m], 48, "%s.weight", vgg ? k_vgg[i] : k_alex[i]), ts[m] = hb_tensor_make(HB_F32, 4, ws, w), data[m++] = w;
        snprintf(nm[m], 48, "%s.bias", vgg ? k_vgg[i] : k_alex[i]), ts[m] = hb_tensor_make(HB_F32, 1, bs, w + nw), data[m++] = NULL;
        if (tap >= 0) snprintf(nm[m], 48, "lin%d.model.1.weight", (int)tap), ts[m] = hb_tensor_make(HB_F32, 4, ls, w + nw + co), data[m++] = NULL;
        cin = co;
    }
    for (int i = 0; i < m; i++) names[i] = nm[i];
    int rc = hb_safetensors_write(path, m, names, ts, NULL);
    for (int i = 0; i < m; i++) free(data[i]);
    return rc;
}

int main(int argc, char **argv) {
    int frames = 17, size = 256, reps = 2;
    bool vgg = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--net") && i + 1 < argc) vgg = !strcmp(argv[++i], "vgg");
        else { fprintf(stderr, "usage: bench_lpips [--net alex|vgg] [--frames N] [--size N] [--reps N]\n"); return 2; }
    }
    hb_threads_init(0);
    hb_rng r;
    hb_rng_seed(&r, 7);
    char path[] = "/tmp/bench_lpips_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { perror("mkstemp"); return 1; }
    close(fd);
    hb_lpips *l = write_random(path, vgg, &r) ? NULL : hb_lpips_load(path);
    unlink(path);
    if (!l) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    int64_t n = 3 * (int64_t)frames * size * size;
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n), *g = calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) a[i] = 2 * hb_rng_uniform(&r) - 1, b[i] = 2 * hb_rng_uniform(&r) - 1;
    printf("LPIPS %s at full widths, %d frames at %dx%d, %d threads\n", vgg ? "VGG16" : "AlexNet", frames, size, size, hb_threads_count());
    double fwd[64], both[64], cfwd[64], cboth[64], d = 0;
    if (reps > 64) reps = 64;
    for (int k = 0; k < reps; k++) { /* wall and process CPU seconds (the CPU time does not depend on the load) */
        double t0 = hb_time_now(), c0 = bench_cpu_now();
        if (hb_lpips_video(l, a, b, frames, size, size, NULL, 1.0f, &d)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        double t1 = hb_time_now(), c1 = bench_cpu_now();
        if (hb_lpips_video(l, a, b, frames, size, size, g, 1.0f, &d)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        double t2 = hb_time_now(), c2 = bench_cpu_now();
        fwd[k] = t1 - t0, both[k] = t2 - t1, cfwd[k] = c1 - c0, cboth[k] = c2 - c1;
    }
    printf("per clip (median of %d): distance only %.2f s (CPU %.2f s); distance + input gradient %.2f s (CPU %.2f s); "
           "distance %.4f\n", reps, bench_median(fwd, reps), bench_median(cfwd, reps), bench_median(both, reps),
           bench_median(cboth, reps), d);
    free(a), free(b), free(g);
    hb_lpips_free(l);
    return 0;
}
