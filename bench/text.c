/* Text-encoder benchmark: the full-size umT5-XXL encoder (vocab 256384, dim 4096, ffn 10240, 64 heads, 24
 * layers; 5.7B parameters, 11.4 GB in bf16) with random bf16 weights in a temporary safetensors file that
 * the encoder memory-maps, as it maps the real checkpoint. Encodes a prompt of --tokens real tokens (default
 * 40) and reports seconds (first encode: weights paged in from the page cache; second: resident), GFLOP/s
 * against the machine's f32 FMA peak and a measured BF16 GEMM peak (both measured in the same run), peak RSS,
 * and the RSS after hb_umt5_release_weights.
 *
 * Usage: bench_text [--layers N] [--tokens T] [--dir DIR] [--keep FILE] [--reuse FILE] [--low-memory]
 *   --low-memory hb_umt5_set_low_memory: each layer's pages are dropped after use (peak RSS ~ one layer).
 *   --layers N   write and run only N of the 24 layers; the table then also shows the 24-layer extrapolation
 *                (per-layer time x 24), marked as such.
 *   --dir DIR    where the temporary file goes (default $TMPDIR or /tmp); it is deleted at the end.
 * The token-embedding table (2.1 GB) is written as a sparse file whose only non-zero rows are the prompt's
 * tokens: the encoder reads only those rows, and the file keeps its real size and layout. */

#include "bench.h"
#include "io/checkpoint.h"
#include "models/umt5.h"
#include "ops/ops.h"
#include <fcntl.h>
#include <math.h>
#include <unistd.h>

typedef struct { char name[96]; int64_t d0, d1; uint64_t off, bytes; } tinfo;

static uint64_t xs_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Random bf16 of magnitude ~[0.5, 1) * 2^e2 with random sign and mantissa (std about 0.76 * 2^e2). */
static void fill_bf16(uint16_t *dst, size_t n, int e2, uint64_t *s) {
    const uint16_t ebits = (uint16_t)((126 + e2) << 7);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t r = xs_next(s);
        for (int k = 0; k < 4; k++) {
            uint16_t b = (uint16_t)(r >> (16 * k));
            dst[i + k] = (uint16_t)((b & 0x8000) | ebits | (b & 0x7f));
        }
    }
    for (; i < n; i++) dst[i] = (uint16_t)(ebits | (xs_next(s) & 0x807f));
}

static int write_all(int fd, const void *p, size_t n, uint64_t off) {
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Writes the checkpoint; returns 0 or -1 (message printed). */
static int write_model(const char *path, const hb_umt5_config *c, const int64_t *ids, int nids) {
    tinfo *t = calloc((size_t)(2 + 10 * c->num_layers), sizeof *t);
    int nt = 0;
#define ADD(nm, a, b) do { snprintf(t[nt].name, sizeof t[nt].name, "%s", nm); t[nt].d0 = a; t[nt].d1 = b; nt++; } while (0)
    ADD("token_embedding.weight", c->vocab, c->dim);
    for (int l = 0; l < c->num_layers; l++) {
        char n[96];
#define L(suf, a, b) do { snprintf(n, sizeof n, "blocks.%d.%s", l, suf); ADD(n, a, b); } while (0)
        L("norm1.weight", c->dim, 0);
        L("attn.q.weight", c->dim_attn, c->dim);
        L("attn.k.weight", c->dim_attn, c->dim);
        L("attn.v.weight", c->dim_attn, c->dim);
        L("attn.o.weight", c->dim, c->dim_attn);
        L("norm2.weight", c->dim, 0);
        L("ffn.gate.0.weight", c->dim_ffn, c->dim);
        L("ffn.fc1.weight", c->dim_ffn, c->dim);
        L("ffn.fc2.weight", c->dim, c->dim_ffn);
        L("pos_embedding.embedding.weight", c->num_buckets, c->num_heads);
#undef L
    }
    ADD("norm.weight", c->dim, 0);
#undef ADD
    size_t hcap = (size_t)nt * 200 + 64, hl = 0;
    char *hdr = malloc(hcap);
    uint64_t off = 0;
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{");
    for (int i = 0; i < nt; i++) {
        t[i].off = off;
        t[i].bytes = (uint64_t)t[i].d0 * (uint64_t)(t[i].d1 ? t[i].d1 : 1) * 2;
        off += t[i].bytes;
        if (t[i].d1)
            hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                   i ? "," : "", t[i].name, (long long)t[i].d0, (long long)t[i].d1,
                                   (unsigned long long)t[i].off, (unsigned long long)(t[i].off + t[i].bytes));
        else
            hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                   i ? "," : "", t[i].name, (long long)t[i].d0, (unsigned long long)t[i].off,
                                   (unsigned long long)(t[i].off + t[i].bytes));
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) { perror(path); free(hdr); free(t); return -1; }
    uint64_t hlen = hl, base = 8 + hl;
    int rc = write_all(fd, &hlen, 8, 0) | write_all(fd, hdr, hl, 8);
    rc |= ftruncate(fd, (off_t)(base + off)); /* sparse: the embedding table stays a hole except its used rows */
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    size_t chunk = (size_t)1 << 24;
    uint16_t *buf = malloc(chunk * 2);
    for (int i = 0; i < nt && rc == 0; i++) {
        uint64_t n = t[i].bytes / 2;
        if (i == 0) { /* embedding: only the prompt's rows, N(0,1)-like */
            for (int k = 0; k < nids && rc == 0; k++) {
                fill_bf16(buf, (size_t)c->dim, 1, &seed);
                rc |= write_all(fd, buf, (size_t)c->dim * 2, base + t[i].off + (uint64_t)ids[k] * (uint64_t)c->dim * 2);
            }
            continue;
        }
        int e2;
        if (!t[i].d1) e2 = 1; /* norm weights: magnitude in [1, 2) */
        else if (strstr(t[i].name, "pos_embedding")) e2 = -1;
        else { /* Linear: ~1/sqrt(fan_in) */
            double sd = 1.0 / sqrt((double)t[i].d1);
            e2 = (int)floor(log2(sd / 0.76)) + 1;
        }
        for (uint64_t done = 0; done < n && rc == 0; done += chunk) {
            size_t m = (size_t)(n - done < chunk ? n - done : chunk);
            fill_bf16(buf, m, e2, &seed);
            rc |= write_all(fd, buf, m * 2, base + t[i].off + done * 2);
        }
    }
    rc |= close(fd);
    free(buf);
    free(hdr);
    free(t);
    if (rc) fprintf(stderr, "bench_text: writing %s failed\n", path);
    return rc ? -1 : 0;
}

static double gemm_peak_bf16(void) {
    const int64_t M = 512, N = 4096, K = 4096;
    float *x = hb_malloc(sizeof(float) * (size_t)(M * K), "x"), *y = hb_malloc(sizeof(float) * (size_t)(M * N), "y");
    uint16_t *w = hb_malloc(2 * (size_t)(N * K), "w");
    uint64_t s = 12345;
    for (int64_t i = 0; i < M * K; i++) x[i] = (float)(xs_next(&s) >> 40) / (float)(1 << 24) - 0.5f;
    fill_bf16(w, (size_t)(N * K), -6, &s);
    hb_tensor wt = hb_tensor_2d(HB_BF16, N, K, w);
    double best = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = hb_time_now();
        hb_linear(y, x, M, &wt, NULL, false);
        double g = 2.0 * M * N * K / (hb_time_now() - t0) * 1e-9;
        if (r > 0 && g > best) best = g;
    }
    hb_free(x);
    hb_free(y);
    hb_free(w);
    return best;
}

int main(int argc, char **argv) {
    int layers = 24, ntok = 40, lowmem = 0;
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", *keep = NULL, *reuse = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) ntok = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc) keep = argv[++i];
        else if (!strcmp(argv[i], "--reuse") && i + 1 < argc) reuse = argv[++i];
        else if (!strcmp(argv[i], "--low-memory")) lowmem = 1;
        else {
            fprintf(stderr, "usage: %s [--layers N (1..24)] [--tokens T (1..512)] [--dir DIR] [--keep FILE] [--reuse FILE] [--low-memory]\n", argv[0]);
            return 2;
        }
    }
    if (layers < 1 || layers > 24 || ntok < 1 || ntok > 512) { fprintf(stderr, "bench_text: bad --layers/--tokens\n"); return 2; }
    hb_threads_init(0);
    hb_umt5_config c = hb_umt5_xxl_config();
    c.num_layers = layers;
    int64_t ids[512];
    uint64_t s = 777;
    for (int i = 0; i < ntok; i++) ids[i] = i == ntok - 1 ? 1 : 2 + (int64_t)(xs_next(&s) % (uint64_t)(c.vocab - 2));

    double fma_peak = bench_peak_gflops(), gpk = gemm_peak_bf16();
    char path[1024];
    snprintf(path, sizeof path, "%s", reuse ? reuse : keep ? keep : "");
    if (!reuse) {
        if (!keep) snprintf(path, sizeof path, "%s/hb_bench_text.%d.safetensors", dir, (int)getpid());
        double t0 = hb_time_now();
        if (write_model(path, &c, ids, ntok) != 0) return 1;
        printf("wrote %s (%d layers) in %.1f s\n", path, layers, hb_time_now() - t0);
    }
    size_t rss0 = hb_current_rss_bytes();
    hb_reset_peak_rss();
    hb_checkpoint *ck = hb_checkpoint_open(path);
    hb_umt5 *m = ck ? hb_umt5_create(ck, &c, true) : NULL;
    if (!m) { fprintf(stderr, "bench_text: %s\n", hb_last_error()); return 1; }
    hb_umt5_set_low_memory(m, lowmem);
    const int64_t D = c.dim, A = c.dim_attn, F = c.dim_ffn, n = ntok;
    float *out = hb_malloc(sizeof(float) * (size_t)(512 * D), "context");
    double times[3];
    for (int r = 0; r < 3; r++) {
        double t0 = hb_time_now();
        if (hb_umt5_encode(m, ids, n, 512, out) != 0) { fprintf(stderr, "bench_text: %s\n", hb_last_error()); return 1; }
        times[r] = hb_time_now() - t0;
    }
    double warm = times[1] < times[2] ? times[1] : times[2];
    double sum = 0;
    for (int64_t i = 0; i < n * D; i++) sum += fabs(out[i]);
    size_t peak = hb_peak_rss_bytes(), before = hb_current_rss_bytes();
    hb_umt5_release_weights(m);
    size_t after = hb_current_rss_bytes();
    /* FLOPs: q,k,v,o (4*D*A), gate+fc1+fc2 (3*D*F) per token, attention 2 * 2*n*n*A per layer */
    double flop_layer = 2.0 * n * (4.0 * D * A + 3.0 * D * F) + 4.0 * n * n * A;
    double flop = flop_layer * layers, params = (double)layers * (4.0 * D * A + 3.0 * D * F);
    printf("\numT5-XXL encoder, %d real tokens (context 512 rows), %d of 24 layers, bf16 weights mmapped%s, %d threads, GEMM path %s\n",
           ntok, layers, lowmem ? " (low-memory mode)" : "", hb_threads_count(), hb_cpu_kernel_name());
    printf("machine: f32 FMA peak %.1f GFLOP/s; BF16 GEMM (hb_linear 512x4096x4096) %.1f GFLOP/s\n\n", fma_peak, gpk);
    printf("%-34s %10s %10s %8s %8s\n", "", "seconds", "GFLOP/s", "vs FMA", "vs GEMM");
    printf("%-34s %10.2f %10.1f %8.3f %8.3f\n", "first encode (weights paged in)", times[0], flop / times[0] * 1e-9,
           flop / times[0] * 1e-9 / fma_peak, flop / times[0] * 1e-9 / gpk);
    printf("%-34s %10.2f %10.1f %8.3f %8.3f\n", "encode, weights resident", warm, flop / warm * 1e-9,
           flop / warm * 1e-9 / fma_peak, flop / warm * 1e-9 / gpk);
    if (layers < 24) {
        printf("%-34s %10.2f %10s %8s %8s\n", "24 layers, EXTRAPOLATED (x24/N)", warm * 24.0 / layers, "", "", "");
        printf("%-34s %10.2f %10s %8s %8s\n", "24 layers first, EXTRAPOLATED", times[0] * 24.0 / layers, "", "", "");
    }
    printf("\nGFLOP per encode %.1f (%.2fB layer params touched; %.2f GB bf16)\n", flop * 1e-9, params * 1e-9, params * 2e-9);
    printf("RSS: before open %.2f GB, peak %.2f GB, after encode %.2f GB, after hb_umt5_release_weights %.2f GB\n",
           rss0 / 1e9, peak / 1e9, before / 1e9, after / 1e9);
    printf("(checksum %.6g)\n", sum);
    hb_umt5_free(m);
    hb_free(out);
    if (!keep && !reuse) unlink(path);
    hb_threads_shutdown();
    return 0;
}
