/* io/image: still images in and out, and the frame-format converters shared with io/video.
 *
 * Pixel layout everywhere in this header: 8-bit RGB, interleaved, row-major, no padding
 * (byte (y*W + x)*3 + c). A clip is T such frames back to back: uint8 [T, H, W, 3].
 * The models produce float video; the converters below map it to that layout with
 * round-to-nearest (see docs/media.md). */
#ifndef HB_IO_IMAGE_H
#define HB_IO_IMAGE_H

#include "core/core.h"

typedef struct hb_image {
    int width, height;
    uint8_t *rgb; /* width*height*3 bytes, owned (hb_malloc); free with hb_image_free */
} hb_image;

/* Largest image read or made: 2^28 pixels (16384 x 16384; an 8K frame has 33 million). A file stating more is
 * refused from its header, before anything is decoded or allocated. */
#define HB_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* Read a PNG or JPEG (chosen by the file's magic bytes, not its name) to 8-bit RGB.
 * Grey, grey+alpha, palette, 1/2/4/16-bit and interlaced PNGs are expanded; alpha is dropped
 * (as PIL's .convert("RGB") does); 16-bit is scaled to 8-bit with rounding. JPEG: grey, YCbCr,
 * CMYK/YCCK (Adobe inverted) are converted to RGB. EXIF orientation is NOT applied.
 * A missing, unreadable, corrupt or truncated file gives one error naming the file. */
int hb_image_load(const char *path, hb_image *out);
void hb_image_free(hb_image *im);
/* Allocate an uninitialised w x h image. */
int hb_image_alloc(hb_image *im, int width, int height);

/* Write RGB as an 8-bit PNG, atomically (temp file in the same folder, fsync, rename).
 * text: optional NULL-terminated list of key, value pairs stored as PNG tEXt chunks. */
int hb_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *const *text);

/* Resize with a Lanczos-3 filter, antialiased when shrinking (support scaled by the shrink factor),
 * separable, horizontal pass first, 8-bit rounding between the passes: the algorithm of
 * PIL's Image.resize(..., Image.LANCZOS) that the Wan I2V pipeline uses (tested against PIL). */
int hb_image_resize(const hb_image *src, int width, int height, hb_image *out);

/* Wan I2V preprocessing: scale = max(W/w, H/h); resize to (round(w*scale), round(h*scale)) with
 * hb_image_resize; crop the centre W x H (offset (rw-W)/2, (rh-H)/2, rounded down). */
int hb_image_cover_crop(const hb_image *src, int width, int height, hb_image *out);

/* Wan's best_output_size: the (ow, oh) with ow % dw == 0, oh % dh == 0, ow*oh <= max_area whose aspect
 * ratio is closest to w/h (tries rounding the width first and the height first). */
int hb_wan_best_output_size(int w, int h, int dw, int dh, int64_t max_area, int *ow, int *oh);

/* ---- converters between model tensors and 8-bit frames ----
 * u8 = round_half_up(clamp((x - lo) / (hi - lo), 0, 1) * 255); NaN -> 0. */
static inline uint8_t hb_float_to_u8(float x, float lo, float hi) {
    float v = (x - lo) * (255.0f / (hi - lo));
    if (!(v > 0.0f)) return 0; /* also NaN */
    if (v >= 255.0f) return 255;
    return (uint8_t)(v + 0.5f);
}
/* Float video [3, T, H, W] (Wan VAE output, range [-1, 1] -> lo=-1, hi=1) to uint8 [T, H, W, 3]. */
void hb_frames_from_cthw(const float *x, int T, int H, int W, float lo, float hi, uint8_t *out);
/* Float video [T, 3, H, W] (TAEHV output, range [0, 1]) to uint8 [T, H, W, 3]. */
void hb_frames_from_tchw(const float *x, int T, int H, int W, float lo, float hi, uint8_t *out);
/* One RGB image to float [3, H, W] in [lo, hi]: x = lo + (hi - lo) * u8 / 255
 * (lo=-1, hi=1 is TF.to_tensor(img).sub_(0.5).div_(0.5) of the Wan I2V pipeline). */
void hb_image_to_chw(const hb_image *im, float lo, float hi, float *out);

#endif
