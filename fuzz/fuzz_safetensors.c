/* libFuzzer target: the input is a whole .safetensors file. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_check_file("in.safetensors", data, size);
    return 0;
}
