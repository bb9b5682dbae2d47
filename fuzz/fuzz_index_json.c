/* libFuzzer target: the input is a *.safetensors.index.json next to two valid shards a.safetensors
 * (tensors x, y) and b.safetensors (tensor z). */
#include "fuzz_common.h"

static void setup(const char *dir) {
    static int done;
    if (done) return;
    done = 1;
    char p[300];
    float x[4] = {1, 2, 3, 4}, y[2] = {5, 6}, z[3] = {7, 8, 9};
    hb_tensor ta[2] = {hb_tensor_2d(HB_F32, 2, 2, x), hb_tensor_1d(HB_F32, 2, y)}, tb = hb_tensor_1d(HB_F32, 3, z);
    const char *na[] = {"x", "y"}, *nb[] = {"z"};
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    if (hb_safetensors_write(p, 2, na, ta, NULL) != 0) abort();
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    if (hb_safetensors_write(p, 1, nb, &tb, NULL) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup(fz_dir());
    fz_check_file("model.safetensors.index.json", data, size);
    return 0;
}
