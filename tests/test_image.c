/* Image input: PNG (all colour types), JPEG, corrupt files, PIL-exact Lanczos resize and Wan cover-crop,
 * Wan best_output_size, float <-> uint8 converters. */
#include "testlib.h"
#include "media_util.h"
#include "io/image.h"
#ifdef HB_HAVE_JPEG
#include <jpeglib.h>
#endif
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write a PNG of any colour type with libpng directly (rows already in the target layout). */
static int write_png_raw(const char *path, int w, int h, int color_type, int bit_depth, const uint8_t *data,
                         size_t rowbytes, const png_color *pal, int npal, const uint8_t *trns, int ntrns) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) { png_destroy_write_struct(&p, &info); fclose(f); return -1; }
    png_init_io(p, f);
    png_set_IHDR(p, info, w, h, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(p, info, pal, npal);
    if (trns) png_set_tRNS(p, info, trns, ntrns, NULL);
    png_write_info(p, info);
    for (int y = 0; y < h; y++) png_write_row(p, data + (size_t)y * rowbytes);
    png_write_end(p, info);
    png_destroy_write_struct(&p, &info);
    return fclose(f);
}

#ifdef HB_HAVE_JPEG
static int write_jpeg(const char *path, const uint8_t *px, int w, int h, int comps, int quality) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w;
    c.image_height = h;
    c.input_components = comps;
    c.in_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    for (int i = 0; i < c.num_components; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f);
}
#endif

static void truncate_copy(const char *src, const char *dst, double frac) {
    FILE *f = fopen(src, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc(n);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    f = fopen(dst, "wb");
    fwrite(buf, 1, (size_t)(got * frac), f);
    fclose(f);
    free(buf);
}

static void expect_load_error(const char *path, const char *what) {
    hb_image im;
    hb_clear_error();
    int rc = hb_image_load(path, &im);
    CHECKF(rc == -1, "%s: loading should fail", what);
    CHECKF(strstr(hb_last_error(), path) != NULL, "%s: message does not name the file: %s", what, hb_last_error());
    CHECK(im.rgb == NULL);
    printf("  %-16s -> %s\n", what, hb_last_error());
}

/* ---------- hostile headers: huge stated sizes in tiny files ---------- */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}
static void be32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }
static size_t png_chunk(uint8_t *o, const char *type, const uint8_t *data, uint32_t n) {
    be32(o, n);
    memcpy(o + 4, type, 4);
    if (n) memcpy(o + 8, data, n);
    be32(o + 8 + n, crc32_of(o + 4, n + 4));
    return 12 + n;
}
/* An RGB PNG stating w x h: signature, IHDR, an IDAT of random bytes, IEND; `total` bytes in all. */
static void write_hostile_png(hb_rng *r, const char *path, uint32_t w, uint32_t h, size_t total) {
    uint8_t b[4096], ihdr[13] = {0}, idat[4096];
    be32(ihdr, w);
    be32(ihdr + 4, h);
    ihdr[8] = 8;
    ihdr[9] = 2;
    size_t n = 8, nidat = total - 8 - 25 - 12 - 12;
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    n += png_chunk(b + n, "IHDR", ihdr, 13);
    for (size_t i = 0; i < nidat; i++) idat[i] = (uint8_t)hb_rng_u64(r);
    idat[0] = 0x78;
    idat[1] = 0x01;
    n += png_chunk(b + n, "IDAT", idat, (uint32_t)nidat);
    n += png_chunk(b + n, "IEND", NULL, 0);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

typedef struct { const char *path, *want; } hostile_case;
/* In a child capped at 256 MiB: the load fails, naming the file and the problem. */
static int load_refused(void *arg) {
    const hostile_case *c = arg;
    hb_image im;
    if (hb_image_load(c->path, &im) == 0) { fprintf(stderr, "%s: loaded, should be refused\n", c->path); return 1; }
    const char *e = hb_last_error();
    printf("refused: %s\n", e);
    if (!strstr(e, c->path) || !strstr(e, c->want) || strchr(e, '\n')) {
        fprintf(stderr, "error '%s' should name %s and say '%s' on one line\n", e, c->path, c->want);
        return 1;
    }
    return 0;
}
static void expect_refused_quickly(const char *path, const char *want) {
    hostile_case c = {path, want};
    double t0 = hb_time_now();
    int rc = tl_run_capped(load_refused, &c, 256);
    double dt = hb_time_now() - t0;
    CHECKF(rc == 0, "%s: not refused cleanly under a 256 MiB address-space cap (child status %d)", path, rc);
    CHECKF(dt < 2.0, "%s: refusing took %.2f s", path, dt);
}

static void check_hostile_headers(hb_rng *r, const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/huge.png", dir);
    write_hostile_png(r, p, 32768, 32768, 175);
    expect_refused_quickly(p, "32768x32768 pixels");
    /* within the pixel limit, but 8000x8000 rows cannot come out of 175 bytes of deflate */
    snprintf(p, sizeof p, "%s/hollow.png", dir);
    write_hostile_png(r, p, 8000, 8000, 175);
    expect_refused_quickly(p, "more than its 175 bytes can hold");
#ifdef HB_HAVE_JPEG
    /* a real 16x16 JPEG whose frame header (SOF0) is patched to state 46000x46000 */
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++) px[i] = (uint8_t)hb_rng_u64(r);
    snprintf(p, sizeof p, "%s/huge.jpg", dir);
    CHECK(write_jpeg(p, px, 16, 16, 3, 90) == 0);
    FILE *f = fopen(p, "r+b");
    uint8_t b[4096];
    size_t n = fread(b, 1, sizeof b, f);
    int patched = 0;
    for (size_t i = 0; i + 9 < n && !patched; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xC0) {
            b[i + 5] = 46000 >> 8; b[i + 6] = 46000 & 255; b[i + 7] = 46000 >> 8; b[i + 8] = 46000 & 255;
            patched = 1;
        }
    CHECK(patched);
    fseek(f, 0, SEEK_SET);
    fwrite(b, 1, n, f);
    fclose(f);
    expect_refused_quickly(p, "46000x46000 pixels");
#endif
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const char *dir = tl_tmpdir();
    char p[512], q[512];
    int W = 37, H = 23;
    uint8_t *img = malloc((size_t)W * H * 3);
    mu_render(&r, img, 1, H, W, 20);

    /* PNG RGB round trip, exact, with text chunks */
    snprintf(p, sizeof p, "%s/rgb.png", dir);
    const char *text[] = {"prompt", "a cat", NULL};
    CHECK(hb_png_write(p, img, W, H, text) == 0);
    hb_image im;
    CHECK(hb_image_load(p, &im) == 0);
    CHECK(im.width == W && im.height == H);
    CHECK(im.rgb && !memcmp(im.rgb, img, (size_t)W * H * 3));
    hb_image_free(&im);

    /* grey 8-bit, grey 16-bit + alpha, palette + tRNS, grey 1-bit */
    {
        uint8_t g8[23 * 37], ga16[23 * 37 * 4], pal8[23 * 37], g1[23 * 5] = {0};
        for (int i = 0; i < W * H; i++) {
            g8[i] = img[3 * i];
            int v16 = img[3 * i + 1] * 257 + (i % 200); /* 16-bit values that do not all end in a multiple of 257 */
            ga16[4 * i] = (uint8_t)(v16 >> 8); ga16[4 * i + 1] = (uint8_t)v16;
            ga16[4 * i + 2] = 0x12; ga16[4 * i + 3] = 0x34;
            pal8[i] = (uint8_t)(i % 5);
        }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if ((x + y) % 3 == 0) g1[y * 5 + x / 8] |= (uint8_t)(0x80 >> (x % 8));
        png_color pal[5] = {{1, 2, 3}, {250, 0, 10}, {0, 255, 0}, {9, 99, 199}, {128, 128, 128}};
        uint8_t trns[5] = {0, 255, 128, 7, 255};
        snprintf(p, sizeof p, "%s/g8.png", dir);
        CHECK(write_png_raw(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g8, W, NULL, 0, NULL, 0) == 0);
        CHECK(hb_image_load(p, &im) == 0);
        int ok = 1;
        for (int i = 0; i < W * H; i++) ok &= im.rgb[3 * i] == g8[i] && im.rgb[3 * i + 1] == g8[i] && im.rgb[3 * i + 2] == g8[i];
        CHECKF(ok, "grey PNG not expanded to RGB");
        hb_image_free(&im);
        snprintf(p, sizeof p, "%s/ga16.png", dir);
        CHECK(write_png_raw(p, W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 16, ga16, (size_t)W * 4, NULL, 0, NULL, 0) == 0);
        CHECK(hb_image_load(p, &im) == 0);
        ok = 1;
        for (int i = 0; i < W * H; i++) {
            int v16 = ga16[4 * i] << 8 | ga16[4 * i + 1];
            int want = (v16 * 255 + 32767) / 65535; /* rounded scaling */
            ok &= abs(im.rgb[3 * i] - want) <= 0 && im.rgb[3 * i + 2] == im.rgb[3 * i];
        }
        CHECKF(ok, "16-bit grey+alpha PNG not scaled to 8-bit with rounding");
        hb_image_free(&im);
        snprintf(p, sizeof p, "%s/pal.png", dir);
        CHECK(write_png_raw(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, pal8, W, pal, 5, trns, 5) == 0);
        CHECK(hb_image_load(p, &im) == 0);
        ok = 1;
        for (int i = 0; i < W * H; i++)
            ok &= im.rgb[3 * i] == pal[pal8[i]].red && im.rgb[3 * i + 1] == pal[pal8[i]].green &&
                  im.rgb[3 * i + 2] == pal[pal8[i]].blue;
        CHECKF(ok, "palette PNG with tRNS not expanded to its RGB colours");
        hb_image_free(&im);
        snprintf(p, sizeof p, "%s/g1.png", dir);
        CHECK(write_png_raw(p, W, H, PNG_COLOR_TYPE_GRAY, 1, g1, 5, NULL, 0, NULL, 0) == 0);
        CHECK(hb_image_load(p, &im) == 0);
        ok = 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) ok &= im.rgb[(y * W + x) * 3 + 1] == ((x + y) % 3 == 0 ? 255 : 0);
        CHECKF(ok, "1-bit grey PNG not expanded to 0/255");
        hb_image_free(&im);
    }

#ifdef HB_HAVE_JPEG
    /* JPEG colour and grey */
    {
        int JW = 64, JH = 48;
        uint8_t *sm = malloc((size_t)JW * JH * 3), *g = malloc((size_t)JW * JH);
        mu_render(&r, sm, 1, JH, JW, 0);
        for (int i = 0; i < JW * JH; i++) g[i] = sm[3 * i + 1];
        snprintf(p, sizeof p, "%s/c.jpg", dir);
        CHECK(write_jpeg(p, sm, JW, JH, 3, 95) == 0);
        CHECK(hb_image_load(p, &im) == 0);
        CHECK(im.width == JW && im.height == JH);
        double psnr = 0;
        if (im.rgb) {
            double se = 0;
            for (int i = 0; i < JW * JH * 3; i++) se += (double)(im.rgb[i] - sm[i]) * (im.rgb[i] - sm[i]);
            psnr = 10 * log10(255.0 * 255.0 * JW * JH * 3 / (se + 1e-9));
        }
        printf("JPEG q95 4:4:4 round trip PSNR %.2f dB\n", psnr);
        CHECKF(psnr > 30, "JPEG decode PSNR %.2f too low", psnr);
        hb_image_free(&im);
        snprintf(q, sizeof q, "%s/trunc.jpg", dir);
        truncate_copy(p, q, 0.6);
        expect_load_error(q, "truncated JPEG");
        snprintf(p, sizeof p, "%s/g.jpg", dir);
        CHECK(write_jpeg(p, g, JW, JH, 1, 95) == 0);
        CHECK(hb_image_load(p, &im) == 0);
        int ok = im.rgb != NULL;
        for (int i = 0; ok && i < JW * JH; i++) ok &= im.rgb[3 * i] == im.rgb[3 * i + 1] && abs(im.rgb[3 * i] - g[i]) < 12;
        CHECKF(ok, "grey JPEG not expanded to RGB");
        hb_image_free(&im);
        free(sm);
        free(g);
    }
#else
    printf("built without libjpeg: the JPEG cases are left out\n");
#endif

    check_hostile_headers(&r, dir);

    /* corrupt / truncated / missing / not an image */
    snprintf(p, sizeof p, "%s/rgb.png", dir);
    snprintf(q, sizeof q, "%s/trunc.png", dir);
    truncate_copy(p, q, 0.5);
    expect_load_error(q, "truncated PNG");
    {
        snprintf(q, sizeof q, "%s/flipped.png", dir);
        truncate_copy(p, q, 1.0);
        FILE *f = fopen(q, "r+b");
        fseek(f, 60, SEEK_SET);
        fputc(0x5a, f);
        fputc(0xa5, f);
        fclose(f);
        expect_load_error(q, "corrupt PNG");
    }
    snprintf(q, sizeof q, "%s/missing.png", dir);
    expect_load_error(q, "missing file");
    snprintf(q, sizeof q, "%s/text.png", dir);
    FILE *f = fopen(q, "w");
    fputs("hello, not an image\n", f);
    fclose(f);
    expect_load_error(q, "text file");
    snprintf(q, sizeof q, "%s/empty.jpg", dir);
    fclose(fopen(q, "w"));
    expect_load_error(q, "empty file");

    /* Wan best_output_size: values from the reference formula (tests/reference/resize_ref.py best) */
    {
        static const int cases[][7] = {{1280, 720, 32, 32, 901120, 1248, 704}, {720, 1280, 32, 32, 901120, 704, 1248},
                                       {1000, 1000, 32, 32, 901120, 960, 928}, {1920, 817, 16, 16, 399360, 960, 416},
                                       {333, 777, 32, 32, 901120, 608, 1440}, {640, 480, 16, 16, 100000, 352, 272}};
        for (int i = 0; i < 6; i++) {
            int ow = 0, oh = 0;
            CHECK(hb_wan_best_output_size(cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4], &ow, &oh) == 0);
            CHECKF(ow == cases[i][5] && oh == cases[i][6], "best size of %dx%d: %dx%d, want %dx%d", cases[i][0],
                   cases[i][1], ow, oh, cases[i][5], cases[i][6]);
        }
    }

    /* converters */
    {
        float x[3 * 2 * 1 * 3], y[2 * 3 * 1 * 3];
        tl_fill_uniform(&r, x, 18, -1.3f, 1.3f);
        x[0] = -1; x[1] = 1; x[2] = 0; x[3] = NAN;
        uint8_t o[18];
        hb_frames_from_cthw(x, 2, 1, 3, -1, 1, o);
        int ok = o[0] == 0 && o[3 * 1] == 255 && o[3 * 2] == 128 && o[3 * 3] == 0; /* c=0, t=0, p=0..2; t=1,p=0 */
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < 2; t++)
                for (int pp = 0; pp < 3; pp++) {
                    double v = x[(c * 2 + t) * 3 + pp];
                    double s = (v + 1) / 2 * 255;
                    int want = isnan(v) ? 0 : s <= 0 ? 0 : s >= 255 ? 255 : (int)floor(s + 0.5);
                    ok &= abs(o[(t * 3 + pp) * 3 + c] - want) <= (fabs(s - floor(s) - 0.5) < 1e-4 ? 1 : 0);
                }
        CHECKF(ok, "cthw converter");
        tl_fill_uniform(&r, y, 18, -0.2f, 1.2f);
        hb_frames_from_tchw(y, 2, 1, 3, 0, 1, o);
        ok = 1;
        for (int t = 0; t < 2; t++)
            for (int c = 0; c < 3; c++)
                for (int pp = 0; pp < 3; pp++) {
                    double s = y[(t * 3 + c) * 3 + pp] * 255.0;
                    int want = s <= 0 ? 0 : s >= 255 ? 255 : (int)floor(s + 0.5);
                    ok &= abs(o[(t * 3 + pp) * 3 + c] - want) <= (fabs(s - floor(s) - 0.5) < 1e-4 ? 1 : 0);
                }
        CHECKF(ok, "tchw converter");
        hb_image one = {3, 1, o};
        float back[9];
        hb_image_to_chw(&one, -1, 1, back);
        ok = 1;
        for (int c = 0; c < 3; c++)
            for (int pp = 0; pp < 3; pp++) ok &= back[c * 3 + pp] == (o[pp * 3 + c] / 255.0f - 0.5f) / 0.5f;
        CHECKF(ok, "image to chw");
    }

    /* resize and cover-crop against PIL */
    {
        int SW = 97, SH = 61;
        uint8_t *src = malloc((size_t)SW * SH * 3);
        mu_render(&r, src, 1, SH, SW, 40);
        snprintf(p, sizeof p, "%s/src.png", dir);
        CHECK(hb_png_write(p, src, SW, SH, NULL) == 0);
        hb_image s = {SW, SH, src};
        char script[512];
        const char *py = mu_python("PIL");
        if (!py || !mu_ref_script("resize_ref.py", script, sizeof script)) {
            printf("SKIP part: %s, resize not compared with PIL\n",
                   py ? "HB_SOURCE_DIR not set (run through ctest)" : "no python3 with PIL (python3-pil)");
        } else {
            static const int sizes[][3] = {{0, 40, 30}, {0, 200, 150}, {0, 97, 30}, {0, 31, 61}, {0, 150, 20},
                                           {1, 64, 64}, {1, 48, 80}, {1, 160, 96}, {1, 97, 61}};
            for (int i = 0; i < 9; i++) {
                int cover = sizes[i][0], ow = sizes[i][1], oh = sizes[i][2];
                snprintf(q, sizeof q, "%s/pil_%d.png", dir, i);
                char cmd[2048];
                snprintf(cmd, sizeof cmd, "%s %s %s %s %d %d %s", py, script, cover ? "cover" : "resize", p, ow, oh, q);
                CHECKF(tl_run(cmd, NULL, 0) == 0, "%s", cmd);
                hb_image ref, ours;
                CHECK(hb_image_load(q, &ref) == 0);
                int rc = cover ? hb_image_cover_crop(&s, ow, oh, &ours) : hb_image_resize(&s, ow, oh, &ours);
                CHECK(rc == 0);
                if (!rc && ref.rgb) {
                    CHECK(ours.width == ref.width && ours.height == ref.height);
                    double md = mu_max_absdiff(ours.rgb, ref.rgb, (size_t)ow * oh * 3);
                    printf("%s %dx%d -> %dx%d: max |ours - PIL| = %.0f\n", cover ? "cover-crop" : "resize", SW, SH, ow,
                           oh, md);
                    CHECKF(md == 0, "resize differs from PIL by %.0f levels", md);
                }
                hb_image_free(&ref);
                hb_image_free(&ours);
            }
        }
        free(src);
    }
    free(img);
    return tl_done();
}
