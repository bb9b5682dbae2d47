/* Wan VAE streaming decoder (hb_wan_vae_decoder_*) on tiny random models, both variants: pushing a latent
 * clip in pieces of 1, 2, 3 (and mixed) latent frames gives BITWISE the video of hb_wan_vae_decode of the
 * whole clip, raw or clamped, also with dec_chunk 2, and also on the cpu-guard backend (pieces and outputs in
 * guarded memory, compared with the CPU's whole decode); reset starts a new clip (same result again); the
 * decoder's bytes do not change with the number of pushes; spatial tiling and bad use give clear errors. */
#include "testlib.h"
#include "models/wan_vae.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

static hb_wan_vae_config tiny(hb_wan_vae_variant v) {
    hb_wan_vae_config c;
    hb_wan_vae_config_default(&c, v);
    c.dim = v == HB_WAN_VAE_22 ? 4 : 8;
    c.dec_dim = 8;
    return c;
}

static const char *vname(hb_wan_vae_variant v) { return v == HB_WAN_VAE_22 ? "2.2" : "2.1"; }

/* Streams lat [z, t, h, w] in pieces (sizes cycle through `pieces`) into out [3, 1+4(t-1), H, W]; returns
 * the number of mismatching values against ref (or -1 on an error). dev: the pieces and the pushes' video go
 * through the current memory space (uploaded / downloaded around each push). */
static int64_t stream_cmp(hb_wan_vae_decoder *d, const float *lat, int64_t z, int64_t t, int64_t h, int64_t w, int sf,
                          const int *pieces, int npieces, const float *ref, size_t *bytes_first, size_t *bytes_last,
                          bool dev) {
    int64_t HW = h * sf * w * sf, T = 1 + 4 * (t - 1), hw = h * w;
    size_t piece_b = sizeof(float) * (size_t)(z * 3 * hw), buf_b = sizeof(float) * (size_t)(3 * 4 * 3 * HW);
    float *piece = malloc(piece_b), *buf = malloc(buf_b);
    float *dpiece = dev ? hb_dev_alloc(piece_b, "test piece") : piece, *dbuf = dev ? hb_dev_alloc(buf_b, "test video") : buf;
    float *out = malloc(sizeof(float) * (size_t)(3 * T * HW));
    int64_t f = 0, t0 = 0, bad = 0;
    for (int k = 0; t0 < t; k++) {
        int64_t n = pieces[k % npieces];
        if (n > t - t0) n = t - t0;
        for (int64_t c = 0; c < z; c++) memcpy(piece + c * n * hw, lat + (c * t + t0) * hw, sizeof(float) * (size_t)(n * hw));
        int64_t got = -1;
        if (dev) CHECK(hb_dev_upload(dpiece, piece, sizeof(float) * (size_t)(z * n * hw)) == 0);
        int rc = hb_wan_vae_decoder_push(d, dpiece, n, dbuf, &got);
        if (!rc && dev && got > 0) CHECK(hb_dev_download(buf, dbuf, sizeof(float) * (size_t)(3 * got * HW)) == 0);
        if (rc) {
            printf("  push: %s\n", hb_last_error());
            bad = -1;
            break;
        }
        int64_t want = t0 == 0 ? 1 + 4 * (n - 1) : 4 * n;
        CHECKF(got == want, "push of %lld latents at %lld: %lld frames, expected %lld", (long long)n, (long long)t0,
               (long long)got, (long long)want);
        if (got != want) { bad = -1; break; }
        for (int64_t c = 0; c < 3; c++) memcpy(out + (c * T + f) * HW, buf + c * got * HW, sizeof(float) * (size_t)(got * HW));
        f += got, t0 += n;
        if (k == 0) *bytes_first = hb_wan_vae_decoder_bytes(d);
    }
    *bytes_last = hb_wan_vae_decoder_bytes(d);
    if (bad == 0)
        for (int64_t i = 0; i < 3 * T * HW; i++) bad += memcmp(&out[i], &ref[i], sizeof(float)) != 0;
    if (dev) hb_dev_free(dpiece), hb_dev_free(dbuf);
    free(piece), free(buf), free(out);
    return bad;
}

static void test_stream(hb_wan_vae_variant v, uint64_t seed) {
    hb_wan_vae_config c = tiny(v);
    hb_wan_vae *m = hb_wan_vae_create_random(&c, seed);
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) return;
    hb_rng r;
    hb_rng_seed(&r, seed + 1);
    int sf = hb_wan_vae_spatial_factor(m);
    int64_t z = c.z_dim, t = 8, h = 3, w = 2, T = 1 + 4 * (t - 1), HW = h * sf * w * sf;
    float *lat = malloc(sizeof(float) * (size_t)(z * t * h * w));
    tl_fill_normal(&r, lat, z * t * h * w, 1.0f);
    float *ref = malloc(sizeof(float) * (size_t)(3 * T * HW));
    for (int raw = 0; raw < 2; raw++) {
        hb_wan_vae_opts o = {.raw = raw};
        CHECKF(hb_wan_vae_decode(m, lat, t, h, w, ref, &o) == 0, "decode: %s", hb_last_error());
        hb_wan_vae_decoder *d = hb_wan_vae_decoder_new(m, h, w, &o);
        CHECKF(d != NULL, "decoder_new: %s", hb_last_error());
        if (!d) continue;
        static const int p1[] = {1}, p2[] = {2}, p3[] = {3}, pm[] = {1, 3, 2};
        const int *ps[] = {p1, p2, p3, pm};
        const int np[] = {1, 1, 1, 3};
        const char *nm[] = {"1", "2", "3", "1,3,2"};
        for (int q = 0; q < 4; q++) {
            hb_wan_vae_decoder_reset(d);
            size_t b0 = 0, b1 = 0;
            int64_t bad = stream_cmp(d, lat, z, t, h, w, sf, ps[q], np[q], ref, &b0, &b1, false);
            printf("  %s raw=%d pieces of %-5s: %lld of %lld values differ from the whole decode, %zu bytes\n", vname(v),
                   raw, nm[q], (long long)bad, (long long)(3 * T * HW), b1);
            CHECKF(bad == 0, "%s raw=%d pieces %s: %lld values differ (bitwise)", vname(v), raw, nm[q], (long long)bad);
            CHECKF(b0 == b1 && b0 > 0, "%s: decoder bytes changed with pushes (%zu -> %zu)", vname(v), b0, b1);
        }
        hb_wan_vae_decoder_free(d);
    }
    /* dec_chunk 2: first push 1 + 2k latents, later pushes multiples of 2 keep the whole decode's chunks */
    {
        hb_wan_vae_opts o = {.dec_chunk = 2, .raw = true};
        int64_t t2 = 7, T2 = 1 + 4 * (t2 - 1);
        /* the first 7 latent frames of the clip */
        float *l7 = malloc(sizeof(float) * (size_t)(z * t2 * h * w));
        for (int64_t q = 0; q < z; q++) memcpy(l7 + q * t2 * h * w, lat + q * t * h * w, sizeof(float) * (size_t)(t2 * h * w));
        CHECKF(hb_wan_vae_decode(m, l7, t2, h, w, ref, &o) == 0, "decode: %s", hb_last_error());
        hb_wan_vae_decoder *d = hb_wan_vae_decoder_new(m, h, w, &o);
        CHECKF(d != NULL, "decoder_new dec_chunk 2: %s", hb_last_error());
        if (d) {
            static const int pc[] = {3, 2};
            size_t b0, b1;
            int64_t bad = stream_cmp(d, l7, z, t2, h, w, sf, pc, 2, ref, &b0, &b1, false);
            printf("  %s dec_chunk 2, pieces 3,2,2: %lld of %lld values differ\n", vname(v), (long long)bad, (long long)(3 * T2 * HW));
            CHECKF(bad == 0, "%s dec_chunk 2: %lld values differ (bitwise)", vname(v), (long long)bad);
            hb_wan_vae_decoder_free(d);
        }
        free(l7);
    }
    /* cpu-guard: the decoder built and pushed on the guarded backend gives bitwise the CPU's whole decode, raw
     * and clamped, in mixed pieces and with dec_chunk 2 */
    for (int k = 0; k < 3; k++) {
        hb_wan_vae_opts o = {.raw = k != 1, .dec_chunk = k == 2 ? 2 : 0};
        int64_t tk = k == 2 ? 7 : t, Tk = 1 + 4 * (tk - 1);
        float *lk = malloc(sizeof(float) * (size_t)(z * tk * h * w));
        for (int64_t q = 0; q < z; q++) memcpy(lk + q * tk * h * w, lat + q * t * h * w, sizeof(float) * (size_t)(tk * h * w));
        CHECKF(hb_wan_vae_decode(m, lk, tk, h, w, ref, &o) == 0, "decode: %s", hb_last_error());
        int64_t nz = 0;
        for (int64_t i = 0; i < 3 * Tk * HW; i++) nz += ref[i] != 0.0f;
        CHECKF(nz > 3 * Tk * HW / 2, "%s: the CPU decode is mostly zeros", vname(v));
        const hb_backend *prev = hb_backend_use(hb_backend_cpu_guard());
        hb_wan_vae_decoder *d = hb_wan_vae_decoder_new(m, h, w, &o);
        CHECKF(d != NULL, "cpu-guard decoder_new: %s", hb_last_error());
        if (d) {
            static const int pm[] = {1, 3, 2}, pc[] = {3, 2};
            size_t b0, b1;
            int64_t bad = stream_cmp(d, lk, z, tk, h, w, sf, k == 2 ? pc : pm, k == 2 ? 2 : 3, ref, &b0, &b1, true);
            printf("  %s cpu-guard raw=%d dec_chunk %d, pieces %s: %lld of %lld values differ from the CPU decode\n", vname(v),
                   o.raw, o.dec_chunk, k == 2 ? "3,2,2" : "1,3,2", (long long)bad, (long long)(3 * Tk * HW));
            CHECKF(bad == 0, "%s cpu-guard streaming (case %d): %lld values differ (bitwise)", vname(v), k, (long long)bad);
            hb_wan_vae_decoder_free(d);
        }
        hb_backend_use(prev);
        free(lk);
    }
    /* a long clip: the decoder's memory is fixed at creation */
    {
        hb_wan_vae_decoder *d = hb_wan_vae_decoder_new(m, h, w, NULL);
        float *buf = malloc(sizeof(float) * (size_t)(3 * 4 * HW));
        size_t b0 = hb_wan_vae_decoder_bytes(d);
        int64_t got = 0, total = 0;
        for (int k = 0; k < 40; k++) {
            CHECKF(hb_wan_vae_decoder_push(d, lat + (k % t) * h * w, 1, buf, &got) == 0, "push: %s", hb_last_error());
            total += got;
        }
        CHECKF(total == 1 + 4 * 39, "%s: %lld frames from 40 pushes of 1", vname(v), (long long)total);
        CHECKF(hb_wan_vae_decoder_bytes(d) == b0, "%s: decoder bytes grew", vname(v));
        free(buf);
        hb_wan_vae_decoder_free(d);
    }
    /* refusals */
    {
        hb_wan_vae_opts o = {.tile = 2, .overlap = 1};
        hb_wan_vae_decoder *d = hb_wan_vae_decoder_new(m, h, w, &o);
        CHECKF(d == NULL && strstr(hb_last_error(), "tiling"), "%s: tiled streaming not refused (%s)", vname(v), hb_last_error());
        hb_wan_vae_decoder_free(d);
        o = (hb_wan_vae_opts){.dec_conv2 = ref};
        d = hb_wan_vae_decoder_new(m, h, w, &o);
        CHECKF(d == NULL && strstr(hb_last_error(), "dec_conv2"), "%s: dec_conv2 streaming not refused", vname(v));
        d = hb_wan_vae_decoder_new(m, 0, w, NULL);
        CHECKF(d == NULL && strstr(hb_last_error(), "empty"), "%s: empty latent not refused (%s)", vname(v), hb_last_error());
        o = (hb_wan_vae_opts){.tile = 8}; /* a tile covering the plane is no tiling */
        d = hb_wan_vae_decoder_new(m, h, w, &o);
        CHECKF(d != NULL, "%s: tile >= latent refused: %s", vname(v), hb_last_error());
        hb_wan_vae_decoder_free(d);
    }
    free(lat), free(ref);
    hb_wan_vae_free(m);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    uint64_t seed = tl_seed();
    for (int v = 0; v < 2; v++) test_stream((hb_wan_vae_variant)v, seed + 100 * v);
    return tl_done();
}
