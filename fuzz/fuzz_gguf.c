/* libFuzzer target: the input is a whole .gguf file (opened by path: magic sniffing, mapping, validation). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[300];
    snprintf(path, sizeof path, "%s/in.gguf", fz_dir());
    fz_write(path, data, size);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    if (ck) {
        fz_walk(ck);
        hb_checkpoint_close(ck);
    } else if (!strstr(hb_last_error(), path)) {
        abort(); /* every error names the file */
    }
    return 0;
}
