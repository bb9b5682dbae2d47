/* bench_tokenizer: load time and encode time of a SentencePiece model on a ~512-token prompt.
 * usage: bench_tokenizer MODEL_FILE [TEXT_FILE] */
#include "models/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_para =
    "A cinematic wide shot of a red fox running through fresh snow at dawn, soft golden light "
    "filtering through tall pine trees, breath visible in the cold air, snow crystals sparkling, "
    "shallow depth of field, the camera tracking smoothly alongside the animal at ground level. ";

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL_FILE [TEXT_FILE]\n", argv[0]); return 2; }
    double t0 = hb_time_now();
    hb_tokenizer *t = hb_tokenizer_load(argv[1]);
    double t1 = hb_time_now();
    if (!t) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    char *text = malloc(1 << 20);
    text[0] = 0;
    if (argc > 2) {
        FILE *f = fopen(argv[2], "rb");
        if (!f) { perror(argv[2]); return 1; }
        size_t n = fread(text, 1, (1 << 20) - 1, f);
        text[n] = 0;
        fclose(f);
    } else {
        /* repeat the paragraph until the prompt has >= 511 pieces */
        for (;;) {
            int32_t *ids; int n;
            strcat(text, k_para);
            hb_tokenizer_encode(t, text, strlen(text), &ids, &n);
            free(ids);
            if (n >= 512) break;
        }
    }
    int32_t *ids; int n = 0;
    int reps = 2000;
    double best = 1e9, sum = 0;
    for (int r = 0; r < reps; r++) {
        double a = hb_time_now();
        hb_tokenizer_encode(t, text, strlen(text), &ids, &n);
        double b = hb_time_now() - a;
        free(ids);
        sum += b;
        if (b < best) best = b;
    }
    printf("| model | pieces | load ms | prompt bytes | ids | encode us (best) | encode us (mean) |\n");
    printf("|---|---|---|---|---|---|---|\n");
    printf("| %s | %d | %.1f | %zu | %d | %.1f | %.1f |\n", argv[1], hb_tokenizer_vocab_size(t), (t1 - t0) * 1e3,
           strlen(text), n, best * 1e6, sum / reps * 1e6);
    hb_tokenizer_free(t);
    free(text);
    return 0;
}
