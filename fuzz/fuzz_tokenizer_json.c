/* libFuzzer target for Hugging Face tokenizer.json files (Unigram models): the input is the whole file; a
 * tokenizer that loads must encode a few fixed prompts to ids inside its vocabulary. */
#include "fuzz_common.h"
#include "models/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[300];
    snprintf(path, sizeof path, "%s/tokenizer.json", fz_dir());
    fz_write(path, data, size);
    hb_tokenizer *t = hb_tokenizer_load(path);
    if (!t) return 0;
    static const char *const texts[] = {"a cat on the moon", " \t\xe2\x80\x83 x ", "\xc3\x28 bad", "&amp;&#x1F408;"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL, n = 0, pad[12];
        if (hb_tokenizer_encode(t, texts[i], strlen(texts[i]), &ids, &n) == 0) {
            for (int k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= hb_tokenizer_vocab_size(t)) abort();
            free(ids);
        }
        hb_tokenizer_encode_padded(t, texts[i], true, 12, pad, NULL);
    }
    hb_tokenizer_free(t);
    return 0;
}
