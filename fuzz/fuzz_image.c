/* libFuzzer target for still images (PNG and JPEG, chosen by their magic bytes): the input is the whole file; an
 * image that loads is resized and cover-cropped to a small size, reading every pixel. */
#include "fuzz_common.h"
#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[300];
    snprintf(path, sizeof path, "%s/in.img", fz_dir());
    fz_write(path, data, size);
    hb_image im;
    if (hb_image_load(path, &im) != 0) return 0;
    unsigned acc = 0;
    for (size_t i = 0; i < (size_t)im.width * im.height * 3; i++) acc += im.rgb[i];
    fz_sink = acc;
    hb_image out;
    if (hb_image_cover_crop(&im, 16, 12, &out) == 0) hb_image_free(&out);
    hb_image_free(&im);
    return 0;
}
