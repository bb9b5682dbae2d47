/* libFuzzer target: the input is a whole .gguf file (opened by path: magic sniffing, mapping, validation). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_check_file("in.gguf", data, size);
    return 0;
}
