/* libFuzzer target for SentencePiece model files (the protobuf ModelProto of spiece.model): the input is the
 * whole file; a model that loads must encode and normalise a few fixed prompts. */
#include "fuzz_common.h"
#include "models/tokenizer.h"

static const char *const k_texts[] = {"a cat", "  Two\tspaces\u3000and\xe2\x80\x8b zero-width ", "\xff\xfe broken utf-8",
                                      "emoji \xf0\x9f\x90\x88 and \xc3\xa9", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hb_tokenizer *t = hb_tokenizer_load_spm_buffer(data, size, "fuzz.model");
    if (!t) return 0;
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
        int32_t *ids = NULL, n = 0, pad[16];
        if (hb_tokenizer_encode(t, k_texts[i], strlen(k_texts[i]), &ids, &n) == 0) {
            for (int k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= hb_tokenizer_vocab_size(t) || !hb_tokenizer_piece(t, ids[k], NULL)) abort();
            free(ids);
        }
        hb_tokenizer_encode_padded(t, k_texts[i], true, 16, pad, NULL);
        size_t nl;
        free(hb_tokenizer_normalize(t, k_texts[i], strlen(k_texts[i]), &nl));
    }
    hb_tokenizer_free(t);
    return 0;
}
