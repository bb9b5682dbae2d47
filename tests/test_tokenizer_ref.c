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
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
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
                int d0 = 0;
                while (d0 < k && (size_t)d0 < json_array_size(jids) && ids[d0] == json_integer_value(json_array_get(jids, d0))) d0++;
                d0 = d0 > 5 ? d0 - 5 : 0;
                fprintf(stderr, "MISMATCH %s line %d: %.80s\n  ours from id %d:", jsonl, n, json_string_value(jt), d0);
                for (int i = d0; i < k && i < d0 + 30; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n  ref: ");
                for (size_t i = d0; i < json_array_size(jids) && i < (size_t)d0 + 30; i++)
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

/* SHA-256 (FIPS 180-4), to recognise the real umT5 file before trusting the goldens. */
static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
static void sha256_file(const char *path, char hex[65]) {
    static const uint32_t K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    FILE *f = fopen(path, "rb");
    hex[0] = 0;
    if (!f) return;
    uint8_t blk[128];
    uint64_t total = 0;
    bool last = false;
    while (!last) {
        size_t n = fread(blk, 1, 64, f), nb = 1;
        total += n;
        if (n < 64) {
            memset(blk + n, 0, 128 - n);
            blk[n] = 0x80;
            nb = n < 56 ? 1 : 2;
            for (int i = 0; i < 8; i++) blk[nb * 64 - 1 - i] = (uint8_t)((total * 8) >> (8 * i));
            last = true;
        }
        for (size_t b = 0; b < nb; b++) {
            uint32_t w[64], a[8];
            for (int i = 0; i < 16; i++) {
                const uint8_t *q = blk + b * 64 + 4 * i;
                w[i] = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
            }
            for (int i = 16; i < 64; i++) {
                uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
                uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16] + s0 + w[i - 7] + s1;
            }
            memcpy(a, h, sizeof a);
            for (int i = 0; i < 64; i++) {
                uint32_t t1 = a[7] + (ror(a[4], 6) ^ ror(a[4], 11) ^ ror(a[4], 25)) + ((a[4] & a[5]) ^ (~a[4] & a[6])) + K[i] + w[i];
                uint32_t t2 = (ror(a[0], 2) ^ ror(a[0], 13) ^ ror(a[0], 22)) + ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
                memmove(a + 1, a, 7 * sizeof *a);
                a[4] += t1;
                a[0] = t1 + t2;
            }
            for (int i = 0; i < 8; i++) h[i] += a[i];
        }
    }
    fclose(f);
    for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", h[i]);
}

static bool is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

int main(void) {
    /* the fixture shipped with the tests (umT5-like whitespace handling, user-defined pieces) */
    const char *src = getenv("HB_SOURCE_DIR");
    char fdir[2048], fjl[2100];
    snprintf(fdir, sizeof fdir, "%s/tests/data/tokenizer", src && *src ? src : "..");
    snprintf(fjl, sizeof fjl, "%s/keepws_user_bf.jsonl", fdir);
    bool fixture = is_file(fjl);
    if (fixture) {
        int lines = 0, bad = run_jsonl(fjl, fdir, NULL, &lines);
        printf("%s: %d lines, %d mismatches\n", fjl, lines, bad);
        CHECKF(bad == 0 && lines > 100, "%d of %d lines differ from SentencePiece in %s", bad, lines, fjl);
    } else {
        printf("note: %s not found (set HB_SOURCE_DIR), fixture not checked\n", fjl);
    }
    const char *sh = tl_shared_dir();
    if (!sh && !fixture) tl_skip("neither shared/ (set HB_SHARED) nor the test fixture found");
    if (!sh) {
        printf("shared/ folder not found (set HB_SHARED): shared reference tokenizations not checked\n");
        return tl_done();
    }
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
        char hex[65];
        sha256_file(t5, hex);
        CHECKF(!strcmp(hex, "d60acb128cf7b7f2536e8f38a5b18a05535c9e14c7a355904270e15b0945ea86"), "sha256 %s", hex);
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
            char hex[65];
            if (st.st_size == 4548313) sha256_file(path, hex);
            if (st.st_size != 4548313 ||
                strcmp(hex, "e3909a67b780650b35cf529ac782ad2b6b26e6d1f849d3fbb6a872905f452458")) {
                printf("umT5 public goldens: skipped (%s is not the real umT5 spiece.model: size or sha256 differ)\n",
                       path);
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
