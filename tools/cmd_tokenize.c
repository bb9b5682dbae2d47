/* hb tokenize: print the token ids of a prompt (SentencePiece unigram, EOS appended). */
#include "tools.h"
#include "models/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hb tokenize (-m MODEL_DIR | --tokenizer FILE) [options] TEXT\n"
            "\n"
            "Prints the token ids of TEXT on one line, space-separated, EOS included, no padding.\n"
            "TEXT '-' reads the text from standard input (all of it, bytes as they are).\n"
            "\n"
            "  -m, --model DIR      model folder: spiece.model (else tokenizer.json) in DIR,\n"
            "                       DIR/google/umt5-xxl/ or DIR/tokenizer/\n"
            "  --tokenizer FILE     a SentencePiece spiece.model, a Hugging Face tokenizer.json, or a\n"
            "                       .safetensors text encoder holding a uint8 tensor spiece_model\n"
            "  --clean              clean the prompt first as the Wan pipelines do (ftfy subset,\n"
            "                       HTML unescape, whitespace collapsed and stripped)\n"
            "  --pad N              pad/truncate to N ids (EOS kept last) and print the attention mask\n"
            "                       on a second line\n"
            "  --pieces             print the piece strings instead of ids\n"
            "  --normalized         print the normalised text (spaces as U+2581) instead of ids\n"
            "  -t, --threads N, -v, --verbose, -q, --quiet   common flags\n"
            "  -h, --help           this help\n");
}

static char *read_stdin(size_t *n) {
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t got;
    while ((got = fread(b + len, 1, cap - len - 1, stdin)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *q = realloc(b, cap * 2);
            if (!q) { free(b); return NULL; }
            b = q;
            cap *= 2;
        }
    }
    b[len] = 0;
    *n = len;
    return b;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *text = NULL;
    bool clean = false, pieces = false, normalized = false;
    long pad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return tool_fail(argv[0]);
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if ((!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--tokenizer") || !strcmp(a, "--pad"))) {
            if (i + 1 >= argc) { fprintf(stderr, "hb %s: %s needs a value\n", argv[0], a); return 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "--tokenizer")) file = v;
            else if (!strcmp(a, "--pad")) {
                char *end;
                pad = strtol(v, &end, 10);
                if (*end || pad < 1 || pad > 1000000) {
                    fprintf(stderr, "hb %s: --pad '%s' is not a length (1..1000000)\n", argv[0], v);
                    return 2;
                }
            } else dir = v;
            continue;
        }
        if (!strcmp(a, "--clean")) { clean = true; continue; }
        if (!strcmp(a, "--pieces")) { pieces = true; continue; }
        if (!strcmp(a, "--normalized")) { normalized = true; continue; }
        if (a[0] == '-' && a[1] && strcmp(a, "--")) {
            fprintf(stderr, "hb %s: unknown option '%s' (see hb %s --help)\n", argv[0], a, argv[0]);
            return 2;
        }
        if (!strcmp(a, "--")) { if (i + 1 < argc) a = argv[++i]; else break; }
        if (text) { fprintf(stderr, "hb %s: give the text as one argument (quote it)\n", argv[0]); return 2; }
        text = a;
    }
    if (!dir == !file) {
        fprintf(stderr, "hb %s: give exactly one of -m MODEL_DIR or --tokenizer FILE\n", argv[0]);
        usage(stderr);
        return 2;
    }
    if (!text) { fprintf(stderr, "hb %s: no text given\n", argv[0]); usage(stderr); return 2; }

    hb_tokenizer *tok = file ? hb_tokenizer_load(file) : hb_tokenizer_open_dir(dir, NULL, 0);
    if (!tok) return tool_fail(argv[0]);
    int rc = 1;
    char *owned = NULL, *cleaned = NULL;
    int32_t *ids = NULL, *mask = NULL;
    size_t len;
    if (!strcmp(text, "-")) {
        owned = read_stdin(&len);
        if (!owned) { hb_error("cannot read standard input"); goto out; }
        text = owned;
    } else {
        len = strlen(text);
    }
    if (clean) {
        cleaned = hb_prompt_clean(text);
        if (!cleaned) goto out;
        text = cleaned;
        len = strlen(text);
    }
    if (normalized) {
        size_t n;
        char *s = hb_tokenizer_normalize(tok, text, len, &n);
        if (!s) goto out;
        fwrite(s, 1, n, stdout);
        fputc('\n', stdout);
        free(s);
        rc = 0;
        goto out;
    }
    int n;
    if (pad > 0) {
        ids = malloc(pad * sizeof *ids);
        mask = malloc(pad * sizeof *mask);
        if (!ids || !mask) { hb_error("out of memory"); goto out; }
        /* text already cleaned above when asked; embedded NULs end the text here */
        if (hb_tokenizer_encode_padded(tok, text, false, (int)pad, ids, mask) < 0) goto out;
        n = (int)pad;
    } else if (hb_tokenizer_encode(tok, text, len, &ids, &n)) {
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (i) fputc(' ', stdout);
        if (pieces) fputs(hb_tokenizer_piece(tok, ids[i], NULL), stdout);
        else printf("%d", ids[i]);
    }
    fputc('\n', stdout);
    if (mask) {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", mask[i]);
        fputc('\n', stdout);
    }
    rc = 0;
out:
    if (rc) tool_fail(argv[0]);
    free(ids); free(mask); free(owned); free(cleaned);
    hb_tokenizer_free(tok);
    return rc;
}
