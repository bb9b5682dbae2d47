/* io/image: PNG/JPEG reading, PNG writing, PIL-compatible Lanczos resize, Wan I2V cover-crop,
 * float <-> uint8 frame converters. */
#include "io/image.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HB_HAVE_PNG
#include <png.h>
#endif
#ifdef HB_HAVE_JPEG
#include <jpeglib.h>
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

int hb_image_alloc(hb_image *im, int width, int height) {
    im->width = im->height = 0;
    im->rgb = NULL;
    if (width <= 0 || height <= 0 || (int64_t)width * height > HB_IMAGE_MAX_PIXELS)
        return hb_error("image size %dx%d is not supported (limit %lld pixels)", width, height,
                        (long long)HB_IMAGE_MAX_PIXELS);
    im->rgb = hb_malloc((size_t)width * height * 3, "image");
    if (!im->rgb) return -1;
    im->width = width;
    im->height = height;
    return 0;
}

void hb_image_free(hb_image *im) {
    if (!im) return;
    hb_free(im->rgb);
    im->rgb = NULL;
    im->width = im->height = 0;
}

/* The stated size against the pixel limit, before decoding. */
static int check_image_size(const char *path, const char *kind, uint64_t w, uint64_t h) {
    if (w == 0 || h == 0 || w * h > (uint64_t)HB_IMAGE_MAX_PIXELS)
        return hb_error("%s: %s states %llux%llu pixels, outside 1 to %lld pixels", path, kind,
                        (unsigned long long)w, (unsigned long long)h, (long long)HB_IMAGE_MAX_PIXELS);
    return 0;
}

/* ---------------- PNG ---------------- */
#ifdef HB_HAVE_PNG
/* Deflate expands at most 1032:1: a PNG whose rows (a filter byte each) cannot come out of the file's bytes
 * is refused before its image buffer is allocated. */
static int check_png_data(const char *path, FILE *f, png_structp png, png_infop info) {
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_image_size(path, "PNG", w, h) != 0) return -1;
    struct stat st;
    uint64_t bits = (uint64_t)w * png_get_channels(png, info) * png_get_bit_depth(png, info);
    uint64_t raw = (uint64_t)h * (1 + (bits + 7) / 8);
    if (fstat(fileno(f), &st) == 0 && raw / 1032 > (uint64_t)st.st_size)
        return hb_error("%s: PNG states %ux%u pixels (%llu bytes of rows), more than its %lld bytes can hold", path,
                        (unsigned)w, (unsigned)h, (unsigned long long)raw, (long long)st.st_size);
    return 0;
}

typedef struct { const char *path; char msg[256]; } png_errctx;

static void png_err_fn(png_structp png, png_const_charp msg) {
    png_errctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}
static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static int load_png(const char *path, FILE *f, hb_image *out) {
    png_errctx ctx = {path, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    hb_image im = {0, 0, NULL};
    volatile hb_image *vim = &im;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return hb_error("%s: out of memory reading PNG", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free((void *)rows);
        hb_image_free((hb_image *)vim);
        return hb_error("%s: corrupt or truncated PNG (%s)", path, ctx.msg[0] ? ctx.msg : "read error");
    }
    png_init_io(png, f);
    png_set_user_limits(png, 1 << 15, 1 << 15);
    png_read_info(png, info);
    if (check_png_data(path, f, png, info) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int ct = png_get_color_type(png, info), bd = png_get_bit_depth(png, info);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bd == 16) png_set_scale_16(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    /* tRNS and alpha are dropped: RGB only, as PIL's convert("RGB") */
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected row layout after conversion");
    if (hb_image_alloc(&im, (int)w, (int)h) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return hb_error_prefix("%s: ", path);
    }
    rows = malloc(sizeof(png_bytep) * h);
    if (!rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = im.rgb + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free((void *)rows);
    *out = im;
    return 0;
}

typedef struct { FILE *f; png_errctx err; } png_wctx;

int hb_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *const *text) {
    if (width <= 0 || height <= 0) return hb_error("%s: cannot write an empty %dx%d image", path, width, height);
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) return hb_error("%s: out of memory", path);
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { int e = errno; free(tmp); return hb_error("%s: cannot create: %s", path, strerror(e)); }
    png_errctx ctx = {path, ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_text *volatile txt = NULL;
    if (!png || !info) { png_destroy_write_struct(&png, &info); fclose(f); unlink(tmp); free(tmp);
        return hb_error("%s: out of memory writing PNG", path); }
    if (setjmp(png_jmpbuf(png))) {
        int e = errno; /* libpng's "Write Error" comes from a failed fwrite: errno says why */
        png_destroy_write_struct(&png, &info);
        fclose(f); unlink(tmp); free(tmp); free((void *)txt);
        if (e == EFBIG || e == ENOSPC)
            return hb_error("%s: write failed: %s (disk full or file-size limit reached)", path, strerror(e));
        return hb_error("%s: write failed: %s", path, ctx.msg[0] ? ctx.msg : strerror(e));
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 3);
    int ntext = 0;
    while (text && text[2 * ntext]) ntext++;
    if (ntext) {
        txt = calloc((size_t)ntext, sizeof(png_text));
        if (!txt) png_error(png, "out of memory");
        for (int i = 0; i < ntext; i++) {
            txt[i].compression = PNG_TEXT_COMPRESSION_NONE;
            txt[i].key = (char *)text[2 * i];
            txt[i].text = (char *)(text[2 * i + 1] ? text[2 * i + 1] : "");
        }
        png_set_text(png, info, txt, ntext);
    }
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, rgb + (size_t)y * width * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free((void *)txt);
    int bad = fflush(f) != 0 || ferror(f);
    int e = errno;
    if (!bad && fsync(fileno(f)) != 0 && errno != EINVAL) { bad = 1; e = errno; }
    if (fclose(f) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) {
        unlink(tmp); free(tmp);
        return hb_error("%s: write failed: %s%s", path, strerror(e),
                        e == EFBIG || e == ENOSPC ? " (disk full or file-size limit reached)" : "");
    }
    if (rename(tmp, path) != 0) { e = errno; unlink(tmp); free(tmp); return hb_error("%s: rename failed: %s", path, strerror(e)); }
    free(tmp);
    return 0;
}
#else
int hb_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *const *text) {
    (void)rgb; (void)width; (void)height; (void)text;
    return hb_error("%s: this build has no PNG support (libpng not found)", path);
}
#endif

/* ---------------- JPEG ---------------- */
#ifdef HB_HAVE_JPEG
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_errctx;

static void jpeg_err_exit(j_common_ptr c) {
    jpeg_errctx *e = (jpeg_errctx *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}
/* Warnings (premature end of data, corrupt entropy data, ...) are treated as errors: a damaged file
 * must not silently decode to grey. */
static void jpeg_emit(j_common_ptr c, int level) {
    if (level < 0) jpeg_err_exit(c);
}

static int load_jpeg(const char *path, FILE *f, hb_image *out) {
    struct jpeg_decompress_struct cinfo;
    jpeg_errctx jerr;
    hb_image im = {0, 0, NULL};
    volatile hb_image *vim = &im;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_err_exit;
    jerr.pub.emit_message = jpeg_emit;
    jerr.msg[0] = 0;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        hb_image_free((hb_image *)vim);
        free((void *)row);
        return hb_error("%s: corrupt or truncated JPEG (%s)", path, jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (check_image_size(path, "JPEG", cinfo.image_width, cinfo.image_height) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, nc = cinfo.output_components;
    if ((cmyk && nc != 4) || (!cmyk && nc != 3)) {
        snprintf(jerr.msg, sizeof jerr.msg, "unsupported colour layout (%d components)", nc);
        longjmp(jerr.jb, 1);
    }
    if (hb_image_alloc(&im, w, h) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return hb_error_prefix("%s: ", path);
    }
    if (cmyk) {
        row = malloc((size_t)w * 4);
        if (!row) { snprintf(jerr.msg, sizeof jerr.msg, "out of memory"); longjmp(jerr.jb, 1); }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = im.rgb + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW r = cmyk ? (JSAMPROW)row : dst;
        jpeg_read_scanlines(&cinfo, &r, 1);
        if (cmyk) /* Adobe CMYK JPEGs store inverted values: R = C*K/255 (as PIL does) */
            for (int x = 0; x < w; x++) {
                int k = row[4 * x + 3];
                for (int c = 0; c < 3; c++) dst[3 * x + c] = (uint8_t)((row[4 * x + c] * k + 127) / 255);
            }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free((void *)row);
    *out = im;
    return 0;
}
#endif

int hb_image_load(const char *path, hb_image *out) {
    out->width = out->height = 0;
    out->rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return hb_error("%s: cannot open image: %s", path, strerror(errno));
    uint8_t magic[8] = {0};
    size_t n = fread(magic, 1, 8, f);
    rewind(f);
    int rc;
    if (n >= 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8)) {
#ifdef HB_HAVE_PNG
        rc = load_png(path, f, out);
#else
        rc = hb_error("%s: this build has no PNG support (libpng not found)", path);
#endif
    } else if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
#ifdef HB_HAVE_JPEG
        rc = load_jpeg(path, f, out);
#else
        rc = hb_error("%s: this build has no JPEG support (libjpeg not found)", path);
#endif
    } else if (n == 0) {
        rc = hb_error("%s: empty file, not an image", path);
    } else {
        rc = hb_error("%s: not a PNG or JPEG image (unrecognised header)", path);
    }
    fclose(f);
    return rc;
}

/* ---------------- resize (PIL's Lanczos resampler, 8-bit path) ---------------- */
#define RS_BITS 22 /* fixed-point precision of PIL's 8-bit resampler: 32 - 8 - 2 */

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}
static double lanczos3(double x) { return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

/* Coefficients of every output sample: bounds[2*i] = first input index, bounds[2*i+1] = count;
 * kk[i*ksize + j] fixed-point weights. */
typedef struct { int ksize; int *bounds; int32_t *kk; } rs_coeffs;

static int rs_precompute(int in_size, int out_size, rs_coeffs *c) {
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 3.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc(sizeof(double) * (size_t)ksize);
    c->ksize = ksize;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->kk = calloc((size_t)out_size * ksize, sizeof(int32_t));
    if (!k || !c->bounds || !c->kk) { free(k); free(c->bounds); free(c->kk); return hb_error("resize: out of memory"); }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = lanczos3((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? k[x] / ww : k[x];
            c->kk[(size_t)xx * ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << RS_BITS) : 0.5 + v * (1 << RS_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return 0;
}

static inline uint8_t rs_clip8(int64_t v) {
    if (v >= ((int64_t)255 << RS_BITS)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> RS_BITS);
}

int hb_image_resize(const hb_image *src, int width, int height, hb_image *out) {
    out->rgb = NULL;
    out->width = out->height = 0;
    if (width <= 0 || height <= 0) return hb_error("resize: bad target size %dx%d", width, height);
    int sw = src->width, sh = src->height;
    if (sw == width && sh == height) {
        if (hb_image_alloc(out, width, height)) return -1;
        memcpy(out->rgb, src->rgb, (size_t)width * height * 3);
        return 0;
    }
    rs_coeffs ch = {0, NULL, NULL}, cv = {0, NULL, NULL};
    int rc = -1;
    const uint8_t *in = src->rgb;
    uint8_t *tmp = NULL;
    int ybox_first = 0, tmp_h = sh;
    if (rs_precompute(sh, height, &cv)) goto done;
    if (sw != width) {
        if (rs_precompute(sw, width, &ch)) goto done;
        /* horizontal pass over the rows the vertical pass will read */
        ybox_first = sh != height ? cv.bounds[0] : 0;
        int ybox_last = sh != height ? cv.bounds[2 * height - 2] + cv.bounds[2 * height - 1] : sh;
        tmp_h = ybox_last - ybox_first;
        tmp = malloc((size_t)width * tmp_h * 3);
        if (!tmp) { hb_error("resize: out of memory"); goto done; }
        for (int y = 0; y < tmp_h; y++) {
            const uint8_t *row = in + (size_t)(y + ybox_first) * sw * 3;
            uint8_t *o = tmp + (size_t)y * width * 3;
            for (int xx = 0; xx < width; xx++) {
                int xmin = ch.bounds[2 * xx], xn = ch.bounds[2 * xx + 1];
                const int32_t *k = ch.kk + (size_t)xx * ch.ksize;
                for (int c = 0; c < 3; c++) {
                    int64_t ss = (int64_t)1 << (RS_BITS - 1);
                    for (int x = 0; x < xn; x++) ss += (int64_t)row[(xmin + x) * 3 + c] * k[x];
                    o[xx * 3 + c] = rs_clip8(ss);
                }
            }
        }
        in = tmp;
    }
    if (hb_image_alloc(out, width, height)) goto done;
    int cur_w = sw != width ? width : sw;
    if (sh != height) {
        for (int yy = 0; yy < height; yy++) {
            int ymin = cv.bounds[2 * yy] - ybox_first, yn = cv.bounds[2 * yy + 1];
            const int32_t *k = cv.kk + (size_t)yy * cv.ksize;
            uint8_t *o = out->rgb + (size_t)yy * width * 3;
            for (int i = 0; i < cur_w * 3; i++) {
                int64_t ss = (int64_t)1 << (RS_BITS - 1);
                for (int y = 0; y < yn; y++) ss += (int64_t)in[(size_t)(ymin + y) * cur_w * 3 + i] * k[y];
                o[i] = rs_clip8(ss);
            }
        }
    } else {
        memcpy(out->rgb, in, (size_t)width * height * 3);
    }
    (void)tmp_h;
    rc = 0;
done:
    free(ch.bounds); free(ch.kk); free(cv.bounds); free(cv.kk); free(tmp);
    return rc;
}

int hb_image_cover_crop(const hb_image *src, int width, int height, hb_image *out) {
    out->rgb = NULL;
    out->width = out->height = 0;
    if (width <= 0 || height <= 0) return hb_error("cover-crop: bad target size %dx%d", width, height);
    double scale = fmax((double)width / src->width, (double)height / src->height);
    /* Python's round(): half to even */
    int rw = (int)nearbyint(src->width * scale), rh = (int)nearbyint(src->height * scale);
    if (rw < width) rw = width;
    if (rh < height) rh = height;
    hb_image big;
    if (hb_image_resize(src, rw, rh, &big)) return -1;
    if (hb_image_alloc(out, width, height)) { hb_image_free(&big); return -1; }
    int x1 = (rw - width) / 2, y1 = (rh - height) / 2;
    for (int y = 0; y < height; y++)
        memcpy(out->rgb + (size_t)y * width * 3, big.rgb + ((size_t)(y + y1) * rw + x1) * 3, (size_t)width * 3);
    hb_image_free(&big);
    return 0;
}

int hb_wan_best_output_size(int w, int h, int dw, int dh, int64_t max_area, int *ow, int *oh) {
    if (w <= 0 || h <= 0 || dw <= 0 || dh <= 0 || max_area < (int64_t)dw * dh)
        return hb_error("best output size: bad arguments (%dx%d, step %dx%d, area %lld)", w, h, dw, dh,
                        (long long)max_area);
    double area = (double)max_area, ratio = (double)w / h;
    double fw = sqrt(area * ratio), fh = area / fw;
    int64_t ow1 = (int64_t)(floor(fw / dw) * dw);
    if (ow1 < dw) ow1 = dw;
    int64_t oh1 = (int64_t)(floor(area / ow1 / dh) * dh);
    int64_t oh2 = (int64_t)(floor(fh / dh) * dh);
    if (oh2 < dh) oh2 = dh;
    int64_t ow2 = (int64_t)(floor(area / oh2 / dw) * dw);
    if (oh1 < dh || ow2 < dw) return hb_error("best output size: %dx%d cannot fit area %lld", w, h, (long long)max_area);
    double r1 = (double)ow1 / oh1, r2 = (double)ow2 / oh2;
    if (fmax(ratio / r1, r1 / ratio) < fmax(ratio / r2, r2 / ratio)) { *ow = (int)ow1; *oh = (int)oh1; }
    else { *ow = (int)ow2; *oh = (int)oh2; }
    return 0;
}

/* ---------------- converters ---------------- */
void hb_frames_from_cthw(const float *x, int T, int H, int W, float lo, float hi, uint8_t *out) {
    size_t plane = (size_t)H * W, vol = (size_t)T * plane;
    for (int t = 0; t < T; t++)
        for (size_t p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                out[((size_t)t * plane + p) * 3 + c] = hb_float_to_u8(x[c * vol + (size_t)t * plane + p], lo, hi);
}

void hb_frames_from_tchw(const float *x, int T, int H, int W, float lo, float hi, uint8_t *out) {
    size_t plane = (size_t)H * W;
    for (int t = 0; t < T; t++)
        for (size_t p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                out[((size_t)t * plane + p) * 3 + c] = hb_float_to_u8(x[((size_t)t * 3 + c) * plane + p], lo, hi);
}

void hb_image_to_chw(const hb_image *im, float lo, float hi, float *out) {
    /* (v - a) / b with v = u8 / 255, a = -lo / (hi - lo), b = 1 / (hi - lo): for [-1, 1] this is exactly
     * PyTorch's to_tensor(img).sub_(0.5).div_(0.5) in float32. */
    float a = -lo / (hi - lo), b = 1.0f / (hi - lo);
    size_t plane = (size_t)im->width * im->height;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) out[c * plane + p] = (im->rgb[p * 3 + c] / 255.0f - a) / b;
}
