/* tokenizer: exact parity with SentencePiece on every line of shared/tokenizers/{spm,t5}/reference.jsonl,
 * and with the real umT5 tokenizer's public goldens when HB_UMT5_SPIECE names the real spiece.model
 * (or a folder holding it). */
#include "testlib.h"
#include "models/tokenizer.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Encode every line of a jsonl file; lines name their model (relative to the jsonl's folder) unless
 * `model` is given. Returns the number of mismatching lines (-1 if the file cannot be read). */
static int run_jsonl(const char *jsonl, const char *dir, hb_tokenizer *model, int *lines) {
    FILE *f = fopen(jsonl, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int bad = 0, n = 0;
    char cur[2048] = "";
    hb_tokenizer *tok = model;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECKF(o != NULL, "%s: bad json line %d", jsonl, n + 1);
        if (!o) { bad++; continue; }
        n++;
        if (!model) {
            const char *m = json_string_value(json_object_get(o, "model"));
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, m ? m : "?");
            if (strcmp(path, cur)) {
                hb_tokenizer_free(tok);
                tok = hb_tokenizer_load(path);
                CHECKF(tok != NULL, "%s", hb_last_error());
                snprintf(cur, sizeof cur, "%s", path);
            }
        }
        json_t *jt = json_object_get(o, "text"), *jids = json_object_get(o, "ids");
        int32_t *ids = NULL;
        int k = 0;
        int rc = tok ? hb_tokenizer_encode(tok, json_string_value(jt), json_string_length(jt), &ids, &k) : -1;
        bool same = rc == 0 && (size_t)k == json_array_size(jids);
        for (int i = 0; same && i < k; i++) same = ids[i] == json_integer_value(json_array_get(jids, i));
        if (!same) {
            bad++;
            if (bad <= 5) {
                fprintf(stderr, "MISMATCH %s line %d: %.80s\n  ours:", jsonl, n, json_string_value(jt));
                for (int i = 0; i < k && i < 40; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n  ref: ");
                for (size_t i = 0; i < json_array_size(jids) && i < 40; i++)
                    fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(jids, i)));
                fprintf(stderr, "\n");
            }
        }
        free(ids);
        json_decref(o);
    }
    if (!model) hb_tokenizer_free(tok);
    free(line);
    fclose(f);
    *lines = n;
    return bad;
}

static bool is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

int main(void) {
    const char *sh = tl_shared_dir();
    if (!sh) tl_skip("shared/ folder not found (set HB_SHARED): reference tokenizations not checked");
    static const char *sets[] = {"tokenizers/spm", "tokenizers/t5"};
    int total = 0, total_bad = 0;
    for (int s = 0; s < 2; s++) {
        char dir[2048], jl[2100];
        snprintf(dir, sizeof dir, "%s/%s", sh, sets[s]);
        snprintf(jl, sizeof jl, "%s/reference.jsonl", dir);
        if (!is_file(jl)) { fprintf(stderr, "note: %s absent, skipped\n", jl); continue; }
        int lines = 0;
        int bad = run_jsonl(jl, dir, NULL, &lines);
        printf("%s: %d lines, %d mismatches\n", jl, lines, bad);
        CHECKF(bad == 0, "%d of %d lines differ from SentencePiece in %s", bad, lines, jl);
        CHECK(lines > 0);
        total += lines;
        total_bad += bad;
    }
    printf("reference tokenizations: %d lines, %d mismatches\n", total, total_bad);

    /* the real T5 model: folder lookup, padding API, and corrupted copies (charsmap bytes flipped,
     * truncations) that must fail cleanly or still encode without a crash */
    char t5[2048];
    snprintf(t5, sizeof t5, "%s/tokenizers/t5/spiece.model", sh);
    if (is_file(t5)) {
        char d[2100], cmd[8400], abs5[4096];
        snprintf(d, sizeof d, "%s/t5dir", tl_tmpdir());
        if (!realpath(t5, abs5)) snprintf(abs5, sizeof abs5, "%s", t5);
        snprintf(cmd, sizeof cmd, "mkdir -p %s/tokenizer && ln -sf %s %s/tokenizer/spiece.model", d, abs5, d);
        CHECK(tl_run(cmd, NULL, 0) == 0);
        char found[4096];
        hb_tokenizer *t = hb_tokenizer_open_dir(d, found, sizeof found);
        CHECKF(t != NULL, "%s", hb_last_error());
        CHECK(strstr(found, "tokenizer/spiece.model") != NULL);
        if (t) {
            CHECK(hb_tokenizer_vocab_size(t) == 32000 && hb_tokenizer_eos_id(t) == 1 && hb_tokenizer_unk_id(t) == 2);
            int32_t ids[512], mask[512];
            char *big = malloc(20001);
            for (int i = 0; i < 20000; i++) big[i] = "snow fox "[i % 9];
            big[20000] = 0;
            CHECK(hb_tokenizer_encode_padded(t, big, true, 512, ids, mask) == 512);
            CHECK(ids[511] == 1 && mask[511] == 1 && ids[510] != 1);
            CHECK(hb_tokenizer_encode_padded(t, "A cat.", true, 512, ids, mask) == 4);
            CHECK(ids[3] == 1 && ids[4] == 0 && mask[3] == 1 && mask[4] == 0);
            free(big);
        }
        hb_tokenizer_free(t);
        FILE *f = fopen(t5, "rb");
        static uint8_t buf[1 << 20];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        hb_rng r;
        hb_rng_seed(&r, tl_seed());
        static uint8_t c[1 << 20];
        int loaded = 0;
        for (int it = 0; it < 40 && n > 300000; it++) {
            memcpy(c, buf, n);
            size_t m = n;
            if (it % 4 == 3) m = (size_t)(hb_rng_u64(&r) % n);
            else for (int k = 0; k < 64; k++) c[n - 1 - hb_rng_u64(&r) % 240000] = (uint8_t)hb_rng_u64(&r);
            hb_tokenizer *x = hb_tokenizer_load_spm_buffer(c, m, "t5-corrupt");
            if (!x) { CHECK(strstr(hb_last_error(), "t5-corrupt") != NULL); continue; }
            loaded++;
            static const char *txt[] = {"Ｆｕｌｌ ｗｉｄｔｈ ①½ ﬁ", "Café  naïve\t\r\n", "日本語 한국어 😀", "a\xff\xc3"};
            for (int k = 0; k < 4; k++) {
                int32_t *ids; int ni;
                CHECK(hb_tokenizer_encode(x, txt[k], strlen(txt[k]), &ids, &ni) == 0 && ni >= 1);
                free(ids);
            }
            hb_tokenizer_free(x);
        }
        printf("corrupted T5 models: %d of 40 loaded and encoded without error\n", loaded);
    }

    /* umT5: only with the real file (4,548,313 bytes) */
    const char *u = getenv("HB_UMT5_SPIECE");
    if (!u || !*u) {
        printf("umT5 public goldens: skipped (set HB_UMT5_SPIECE to the real google/umt5-xxl spiece.model)\n");
    } else {
        char path[2048];
        snprintf(path, sizeof path, "%s", u);
        if (!is_file(path)) snprintf(path, sizeof path, "%s/spiece.model", u);
        struct stat st;
        CHECKF(stat(path, &st) == 0, "HB_UMT5_SPIECE: %s not found", path);
        if (stat(path, &st) == 0) {
            if (st.st_size != 4548313) {
                printf("umT5 public goldens: skipped (%s has %lld bytes, the real file has 4548313)\n", path,
                       (long long)st.st_size);
            } else {
                hb_tokenizer *t = hb_tokenizer_load(path);
                CHECKF(t != NULL, "%s", hb_last_error());
                char jl[2100];
                snprintf(jl, sizeof jl, "%s/tokenizers/umt5/public_goldens.jsonl", sh);
                if (t && is_file(jl)) {
                    CHECK(hb_tokenizer_vocab_size(t) == 256000);
                    CHECK(hb_tokenizer_eos_id(t) == 1);
                    int lines = 0, bad = run_jsonl(jl, NULL, t, &lines);
                    printf("umT5 public goldens: %d lines, %d mismatches\n", lines, bad);
                    CHECK(bad == 0);
                }
                hb_tokenizer_free(t);
            }
        }
    }
    return tl_done();
}
