/* Hummingbird-XTX benchmark: the steady state of autoregressive generation with the full-size causal
 * Wan-2.1-1.3B at 832x480 (random bf16 weights written by hb_wan_dit_write_random into a temporary folder).
 *
 * One chunk = `steps` denoising forwards + 1 clean refresh forward of `chunk` latent frames (3 frames = 4680
 * tokens) against a full cache (default: the release's window of 6 frames = 9360 tokens, sink 1 + 5 recent, relative
 * RoPE; --window 12 --sink 3 --rope abs is the LongLive layout), i.e.
 * the cost of every chunk once the cache has filled. The cache is pre-filled with random K/V and its indices set
 * to "full" so the steady state is measured without generating the first chunks (attention cost does not
 * depend on the values); the timed calls then run the real eviction/insert path.
 *
 * On a small CPU the 30 layers are slow: --layers N builds an N-layer model and the per-chunk time is scaled
 * by 30/N (the embeddings and the head, < 0.1% of the work, are scaled too: a slight overestimate). The
 * printout says which numbers are measured and which are extrapolated. Optionally (--tae) the TAEHV decoder
 * at its real widths decodes one chunk (3 latents -> 12 frames), which the streaming pipeline adds per chunk.
 *
 * Usage: bench_xtx [--layers N] [--width W] [--height H] [--chunk N] [--sink N] [--window N] [--steps N]
 *                  [--cache bf16|f32] [--rope abs|rel] [--tae] [--tmp DIR] [--keep] [-t N] */
#include "bench.h"
#include "models/wan_causal.h"
#include "models/tae.h"
#include "io/checkpoint.h"
#include "random_models.h"
#include <sys/stat.h>
#include <unistd.h>

static double flops_forward(const wan_dit_config *c, int64_t L, int64_t Lk) {
    const double D = c->dim, FF = c->ffn_dim, T = c->text_len;
    double per_layer = (double)L * (6 * D * D + 2 * D * FF) + 2.0 * L * Lk * D + 2.0 * L * T * D;
    double mac = per_layer * c->num_layers + (double)L * c->in_dim * 4 * D + (double)L * D * 4 * c->out_dim;
    return 2.0 * mac;
}

int main(int argc, char **argv) {
    int layers = 1, width = 832, height = 480, chunk = 3, sink = 1, window = 6, steps = 4, threads = 0;
    bool keep = false, tae_on = false;
    hb_dtype cdt = HB_BF16;
    wan_rope_mode rope = WAN_ROPE_REL;
    const char *tmpbase = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--layers") && v) { layers = atoi(v); i++; }
        else if (!strcmp(a, "--width") && v) { width = atoi(v); i++; }
        else if (!strcmp(a, "--height") && v) { height = atoi(v); i++; }
        else if (!strcmp(a, "--chunk") && v) { chunk = atoi(v); i++; }
        else if (!strcmp(a, "--sink") && v) { sink = atoi(v); i++; }
        else if (!strcmp(a, "--window") && v) { window = atoi(v); i++; }
        else if (!strcmp(a, "--steps") && v) { steps = atoi(v); i++; }
        else if (!strcmp(a, "--cache") && v) { cdt = !strcmp(v, "f32") ? HB_F32 : HB_BF16; i++; }
        else if (!strcmp(a, "--rope") && v) { rope = !strcmp(v, "rel") ? WAN_ROPE_REL : WAN_ROPE_ABS; i++; }
        else if (!strcmp(a, "--tmp") && v) { tmpbase = v; i++; }
        else if (!strcmp(a, "-t") && v) { threads = atoi(v); i++; }
        else if (!strcmp(a, "--keep")) keep = true;
        else if (!strcmp(a, "--tae")) tae_on = true;
        else { fprintf(stderr, "usage: see the comment at the top of bench/xtx.c (unknown %s)\n", a); return 2; }
    }
    if (layers < 1 || layers > 30 || width % 16 || height % 16 || chunk < 1 || steps < 1 || window < chunk + sink) {
        fprintf(stderr, "bench_xtx: bad arguments\n");
        return 2;
    }
    hb_threads_init(threads);
    bench_peak pk = bench_peak_measure();
    printf("machine: %d threads, f32 FMA peak %.1f GFLOP/s (wall), %.1f GFLOP per CPU-second\n", hb_threads_count(),
           pk.wall_gflops, pk.cpu_gflops);

    /* model */
    wan_dit_config cfg;
    hb_wan_dit_config_preset(&cfg, "wan2.1-1.3b");
    const int full_layers = cfg.num_layers;
    cfg.num_layers = layers;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/hb_bench_xtx.XXXXXX", tmpbase ? tmpbase : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp"));
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    double t0 = hb_time_now();
    if (hb_wan_dit_write_random(&cfg, dir, HB_BF16, 1, (int64_t)1 << 30)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    printf("model: Wan2.1-1.3B widths (dim %d, ffn %d, %d heads), %d of %d layers, bf16 random weights (%.1f s to write)\n",
           cfg.dim, cfg.ffn_dim, cfg.num_heads, layers, full_layers, hb_time_now() - t0);
    wan_dit *m = hb_wan_dit_open(dir, NULL);
    if (!m) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }

    const int64_t h = height / 8, w = width / 8, ft = (h / 2) * (w / 2), L = chunk * ft;
    wan_causal_config cc = {0};
    cc.H = h; cc.W = w; cc.max_chunk_frames = chunk; cc.cache_frames = window; cc.sink_frames = sink; cc.window = true;
    cc.global_sink = true; cc.cache_dtype = cdt; cc.rope = rope;
    wan_causal *cs = hb_wan_causal_new(m, &cc);
    if (!cs) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    hb_rng r;
    hb_rng_seed(&r, 42);
    int64_t ctx_len = 64;
    float *ctx = malloc(sizeof(float) * (size_t)(ctx_len * cfg.text_dim));
    for (int64_t i = 0; i < ctx_len * cfg.text_dim; i++) ctx[i] = 0.1f * hb_rng_normal(&r);
    t0 = hb_time_now();
    if (hb_wan_causal_set_prompt(cs, ctx, ctx_len)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    double t_prompt = hb_time_now() - t0;
    /* pre-fill the cache: random K/V, indices = full window after `window` frames */
    wan_kv_cache *kc = &cs->cache;
    {
        size_t n = (size_t)kc->layers * (size_t)kc->cap * (size_t)kc->dim;
        size_t es = hb_dtype_size(kc->dtype);
        float tmp[1024];
        for (size_t off = 0; off < n; off += 1024) {
            size_t k = n - off < 1024 ? n - off : 1024;
            for (size_t j = 0; j < k; j++) tmp[j] = hb_rng_normal(&r);
            hb_convert_from_f32((uint8_t *)kc->k + off * es, kc->dtype, tmp, k);
            hb_convert_from_f32((uint8_t *)kc->v + off * es, kc->dtype, tmp, k);
        }
        kc->global_end = kc->local_end = kc->cap;
    }
    const int64_t nel = (int64_t)cfg.in_dim * chunk * h * w;
    float *x = malloc(sizeof(float) * (size_t)nel), *flow = malloc(sizeof(float) * (size_t)nel);
    for (int64_t i = 0; i < nel; i++) x[i] = hb_rng_normal(&r);
    float tv[64];
    const float tsteps[4] = {1000.f, 937.5f, 833.333f, 625.f};
    int64_t f0 = window;
    double fl = flops_forward(&cfg, L, kc->cap);
    printf("chunk: %d latent frames = %lld tokens (%dx%d video, %lldx%lld latent), cache %d frames = %lld tokens "
           "(sink %d), %s cache, %s RoPE\n", chunk, (long long)L, width, height, (long long)h, (long long)w, window,
           (long long)kc->cap, sink, hb_dtype_name(cdt), rope == WAN_ROPE_ABS ? "absolute" : "relative");
    printf("\n%-28s %10s %10s %10s %8s\n", "call", "wall s", "cpu s", "GFLOP/s", "of peak");
    double wall_chunk = 0, cpu_chunk = 0;
    for (int k = 0; k <= steps; k++) {
        bool refresh = k == steps;
        for (int f = 0; f < chunk; f++) tv[f] = refresh ? 0.f : tsteps[k % 4];
        double w0 = hb_time_now(), c0 = bench_cpu_now();
        if (hb_wan_causal_forward(cs, x, chunk, tv, f0, false, refresh ? NULL : flow, NULL, NULL)) {
            fprintf(stderr, "%s\n", hb_last_error());
            return 1;
        }
        double dw = hb_time_now() - w0, dc = bench_cpu_now() - c0;
        wall_chunk += dw;
        cpu_chunk += dc;
        char nm[64];
        snprintf(nm, sizeof nm, refresh ? "refresh (t=0)" : "denoise step %d", k);
        printf("%-28s %10.2f %10.2f %10.1f %7.1f%%\n", nm, dw, dc, fl / dw * 1e-9, 100.0 * (fl / dc * 1e-9) / pk.cpu_gflops);
    }
    const double scale = (double)full_layers / layers;
    const int video_per_chunk = 4 * chunk;
    printf("\nmeasured (%d layer%s): %.2f s per chunk (%d forwards), %.2f CPU-s\n", layers, layers > 1 ? "s" : "",
           wall_chunk, steps + 1, cpu_chunk);
    double w30 = wall_chunk * scale;
    printf("extrapolated to %d layers (x%.0f): %.1f s per chunk = %.4f video frames/s (%d frames per chunk), "
           "%.4f latent frames/s\n", full_layers, scale, w30, video_per_chunk / w30, video_per_chunk, chunk / w30);
    double c30 = cpu_chunk / hb_threads_count() * scale;
    printf("CPU-time based (the %d cores to ourselves; the machine is shared): %.1f s per chunk = %.4f video frames/s\n",
           hb_threads_count(), c30, video_per_chunk / c30);
    printf("work per chunk (%d layers): %.2f TFLOP; at the FMA peak (%.0f GFLOP/s) it would take %.1f s\n", full_layers,
           fl / layers * full_layers * (steps + 1) * 1e-12, pk.wall_gflops,
           fl / layers * full_layers * (steps + 1) / (pk.wall_gflops * 1e9));
    printf("prompt (cross-attention K/V of %d layers): %.2f s\n", layers, t_prompt);
    size_t cache_b = hb_wan_kv_cache_bytes(kc);
    size_t per_layer = 2 * (size_t)kc->cap * (size_t)kc->dim * hb_dtype_size(kc->dtype);
    size_t staging = cache_b - per_layer * (size_t)layers;
    printf("memory: KV cache %.1f MiB for %d layers -> %.0f MiB for %d (+ %.0f MiB f32 staging), activation arena "
           "%.0f MiB, cross-attention cache %.0f MiB -> %.0f MiB for %d layers\n",
           cache_b / 1048576.0, layers, (per_layer * (double)full_layers) / 1048576.0, full_layers, staging / 1048576.0,
           cs->arena.cap / 1048576.0, 2.0 * cfg.text_len * cfg.dim * 4 * layers / 1048576.0,
           2.0 * cfg.text_len * cfg.dim * 4 * full_layers / 1048576.0, full_layers);
    wan_dit_config cf30 = cfg;
    cf30.num_layers = full_layers;
    printf("peak RSS %.0f MiB (bf16 weights: %.0f MiB for %d layers, %.0f MiB for %d)\n", hb_peak_rss_bytes() / 1048576.0,
           hb_wan_dit_param_count(&cfg) * 2 / 1048576.0, layers, hb_wan_dit_param_count(&cf30) * 2 / 1048576.0, full_layers);

    if (tae_on) {
        char tdir[4200];
        snprintf(tdir, sizeof tdir, "%s/tae", dir);
        mkdir(tdir, 0755);
        const int dw4[4] = {256, 128, 64, 64};
        if (hb_tae_write_random(tdir, 1, 16, 64, dw4, HB_F32, 3)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        hb_checkpoint *tck = hb_checkpoint_open(tdir);
        hb_tae *tae = tck ? hb_tae_load(tck, NULL, HB_TAE_DECODER) : NULL;
        if (!tae) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        float *lat = malloc(sizeof(float) * (size_t)(chunk * 16 * h * w));
        for (int64_t i = 0; i < chunk * 16 * h * w; i++) lat[i] = hb_rng_normal(&r);
        float *vid = malloc(sizeof(float) * (size_t)((4 * chunk) * 3 * height * width));
        double w0 = hb_time_now(), c0t = bench_cpu_now();
        if (hb_tae_decode_video(tae, lat, chunk, h, w, vid, NULL, true)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        double dt = hb_time_now() - w0, dct = bench_cpu_now() - c0t;
        printf("TAEHV (real widths) decode of one chunk (%d latents -> %d frames incl. the 3 startup frames): "
               "%.2f s wall, %.2f CPU-s; with it, %d-layer steady state: %.4f video frames/s (wall), %.4f (CPU-time based)\n",
               chunk, 4 * chunk, dt, dct, full_layers, video_per_chunk / (w30 + dt),
               video_per_chunk / (c30 + dct / hb_threads_count()));
        free(lat); free(vid);
        hb_tae_free(tae);
        hb_checkpoint_close(tck);
    }
    hb_wan_causal_free(cs);
    hb_wan_dit_free(m);
    free(ctx); free(x); free(flow);
    if (!keep) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    } else printf("kept %s\n", dir);
    return 0;
}
