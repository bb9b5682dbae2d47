/* bench_train: light-decoder training throughput (models/light_vae_train: forward with saved activations,
 * backward, AdamW + EMA) beside the forward-only decode of the same clip size (the inference decoder,
 * hb_light_vae_decode, and the training forward without backward), on the release's structure and widths
 * (decoder_block_out_channels [32, 64, 256, 512], causal), random weights and latents, on the backend of -d
 * (default cpu; every timing ends with hb_backend_sync). Reported: seconds per training step (one clip),
 * samples/s, seconds per decode, the step / decode ratio, peak RSS. Exit 77 when the device is not available.
 *
 * --features: with the projection heads and feature loss of hb train-decoder's default --feature-blocks 0,1,2
 * against the Wan2.2 teacher (teacher widths 1024, 1024, 1024; heads as is, 2x2x2, 2x2x2: docs/training.md), on
 * random teacher features.
 *
 * usage: bench_train [-d DEV] [--frames N] [--size N] [--reps N] [--tiny] [--features]   (default 17 x 256x256, 2 reps) */
#include "bench.h"
#include "models/light_vae_train.h"

static double now(void) { return hb_time_now(); }

int main(int argc, char **argv) {
    int frames = 17, size = 256, reps = 2;
    bool tiny = false, features = false;
    const char *dev = "cpu";
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-d") || !strcmp(argv[i], "--device")) && i + 1 < argc) dev = argv[++i];
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tiny")) tiny = true;
        else if (!strcmp(argv[i], "--features")) features = true;
        else { fprintf(stderr, "usage: bench_train [-d DEV] [--frames 1+4k] [--size 16k] [--reps N] [--tiny] [--features]\n"); return 2; }
    }
    if (frames < 1 || (frames - 1) % 4 || size < 16 || size % 16 || reps < 1) { fprintf(stderr, "bad sizes\n"); return 2; }
    hb_threads_init(0);
    const hb_backend *be = hb_backend_find(dev);
    if (!be) { printf("bench_train: device '%s' is not available: %s\n(exit 77: nothing measured)\n", dev, hb_last_error()); return 77; }
    hb_backend_use(be); /* before the models: their activations live in its memory space */
    hb_light_vae_config c;
    hb_light_vae_config_default(&c, tiny, true);
    hb_light_vae *lv = hb_light_vae_create_random(&c, 1);
    hb_lvt_head heads[3] = {{0, c.widths[0], 1024, 1024, HB_LVT_ALIGN_NONE}, {1, c.widths[1], 8192, 1024, HB_LVT_ALIGN_ST8},
                            {2, c.widths[2], 8192, 1024, HB_LVT_ALIGN_ST8}};
    hb_lvt *m = hb_lvt_new(&c, heads, features ? 3 : 0);
    if (!lv || !m) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    hb_lvt_init_random(m, 1);
    int64_t t = 1 + (frames - 1) / 4, h = size / 16, w = size / 16, s[4];
    hb_lvt_video_shape(m, t, h, w, s);
    int64_t nv = s[0] * s[1] * s[2] * s[3], nl = (int64_t)c.latent_channels * t * h * w;
    float *lat_h = malloc(sizeof(float) * (size_t)nl), *target = malloc(sizeof(float) * (size_t)nv);
    float *lat = hb_dev_alloc(sizeof(float) * (size_t)nl, "latent"), *v = hb_dev_alloc(sizeof(float) * (size_t)nv, "video");
    hb_rng r;
    hb_rng_seed(&r, 7);
    for (int64_t i = 0; i < nl; i++) lat_h[i] = hb_rng_normal(&r);
    for (int64_t i = 0; i < nv; i++) target[i] = 2 * hb_rng_uniform(&r) - 1;
    float *teacher[3] = {0};
    for (int k = 0; k < m->nheads; k++) {
        int64_t hs[4];
        hb_lvt_head_shape(m, k, t, h, w, hs);
        teacher[k] = malloc(sizeof(float) * (size_t)(hs[0] * hs[1] * hs[2] * hs[3]));
        for (int64_t i = 0; i < hs[0] * hs[1] * hs[2] * hs[3]; i++) teacher[k][i] = hb_rng_normal(&r);
    }
    if (!lat || !v || hb_dev_upload(lat, lat_h, sizeof(float) * (size_t)nl)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    printf("light decoder %s%s, %lld parameters, clip %lld x %lld x %lld (latent %lld x %lld x %lld), %s, %d threads\n",
           tiny ? "tiny" : "release widths", features ? " + heads of feature blocks 0,1,2" : "", (long long)m->total, (long long)s[1],
           (long long)s[2], (long long)s[3], (long long)t, (long long)h, (long long)w, be->name, hb_threads_count());
    double *td = malloc(sizeof(double) * (size_t)reps), *tf = malloc(sizeof(double) * (size_t)reps), *ts = malloc(sizeof(double) * (size_t)reps);
    hb_adamw opt = {1e-4, 0.9, 0.95, 1e-15, 1e-4};
    for (int k = 0; k < reps; k++) {
        double a = now();
        if (hb_light_vae_decode(lv, lat, t, h, w, v, NULL, NULL, NULL) || hb_backend_sync()) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        double b = now();
        if (hb_lvt_forward(m, lat, t, h, w, v) || hb_backend_sync()) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        double c2 = now();
        hb_lvt_batch bt = {lat, t, h, w, target, (const float *const *)teacher, 1.0f, m->nheads ? 1.0f : 0.0f, 1.0f};
        hb_lvt_losses L;
        hb_lvt_zero_grad(m);
        if (hb_lvt_train_pass(m, &bt, &L, NULL, NULL) || hb_lvt_step(m, &opt, 0.999f) || hb_backend_sync()) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        double d = now();
        td[k] = b - a, tf[k] = c2 - b, ts[k] = d - c2;
    }
    double dec = bench_median(td, reps), fwd = bench_median(tf, reps), step = bench_median(ts, reps);
    printf("decode (inference decoder)      %8.3f s\n", dec);
    printf("forward (training path, no grad) %7.3f s\n", fwd);
    printf("training step (fwd+bwd+AdamW)   %8.3f s  = %.3f samples/s  (%.1fx the decode)\n", step, 1.0 / step, step / dec);
    printf("peak RSS %.0f MiB\n", (double)hb_peak_rss_bytes() / (1 << 20));
    free(lat_h), free(target), free(td), free(tf), free(ts), free(teacher[0]), free(teacher[1]), free(teacher[2]);
    hb_dev_free(lat), hb_dev_free(v);
    hb_lvt_free(m);
    hb_light_vae_free(lv);
    hb_threads_shutdown();
    return 0;
}
