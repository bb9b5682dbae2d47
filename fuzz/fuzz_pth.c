/* libFuzzer target for PyTorch zip checkpoints. First byte 0: the rest is a whole .pth file (fuzzes the
 * zip layer); otherwise the rest is archive/data.pkl, packed with libzip next to four storages
 * archive/data/0..3 (64 bytes each, stored; storage 3 deflated), which fuzzes the pickle reader. */
#include "fuzz_common.h"
#include <zip.h>

static uint8_t g_storage[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char path[300];
    snprintf(path, sizeof path, "%s/in.pth", fz_dir());
    if (data[0] == 0) {
        fz_write(path, data + 1, size - 1);
    } else {
        for (int i = 0; i < 64; i++) g_storage[i] = (uint8_t)(i * 37 + 11);
        int err;
        zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
        if (!z) abort();
        zip_source_t *s = zip_source_buffer(z, data + 1, size - 1, 0);
        zip_int64_t idx = zip_file_add(z, "archive/data.pkl", s, ZIP_FL_OVERWRITE);
        zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
        for (int k = 0; k < 4; k++) {
            char name[32];
            snprintf(name, sizeof name, "archive/data/%d", k);
            s = zip_source_buffer(z, g_storage, sizeof g_storage, 0);
            idx = zip_file_add(z, name, s, ZIP_FL_OVERWRITE);
            zip_set_file_compression(z, (zip_uint64_t)idx, k == 3 ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
        }
        if (zip_close(z) != 0) abort();
    }
    fz_check_open(path);
    return 0;
}
