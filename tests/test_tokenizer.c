/* tokenizer: unit tests on small models written here (no shared/ needed): Viterbi against an exhaustive
 * search, unknown merging, byte fallback, user-defined and unused pieces, whitespace options, invalid
 * UTF-8, long input, malformed protobuf/JSON, tokenizer.json == spiece.model, padding API, prompt
 * cleaning, and the `hb tokenize` command. */
#include "testlib.h"
#include "models/tokenizer.h"
#include "io/checkpoint.h"
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ a tiny protobuf writer */
typedef struct { uint8_t *p; size_t n, cap; } wb;
static void w_raw(wb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void w_varint(wb *b, uint64_t v) {
    do { uint8_t c = (uint8_t)(v & 0x7F); v >>= 7; if (v) c |= 0x80; w_raw(b, &c, 1); } while (v);
}
static void w_key(wb *b, int f, int wt) { w_varint(b, (uint64_t)f << 3 | (uint64_t)wt); }
static void w_bytes(wb *b, int f, const void *d, size_t n) { w_key(b, f, 2); w_varint(b, n); w_raw(b, d, n); }
static void w_int(wb *b, int f, int64_t v) { w_key(b, f, 0); w_varint(b, (uint64_t)v); }
static void w_f32(wb *b, int f, float v) { w_key(b, f, 5); w_raw(b, &v, 4); } /* little-endian host */

typedef struct { const char *piece; float score; int type; } tp;
typedef struct { bool byte_fallback, add_dummy, remove_extra, escape; int model_type; } mopts;

static void build_model(wb *out, const tp *ps, int n, mopts o) {
    for (int i = 0; i < n; i++) {
        wb s = {0};
        w_bytes(&s, 1, ps[i].piece, strlen(ps[i].piece));
        w_f32(&s, 2, ps[i].score);
        if (ps[i].type != 1) w_int(&s, 3, ps[i].type);
        w_bytes(out, 1, s.p, s.n);
        free(s.p);
    }
    wb t = {0};
    w_int(&t, 3, o.model_type ? o.model_type : 1);
    w_int(&t, 4, n);
    w_int(&t, 35, o.byte_fallback);
    w_int(&t, 40, 2);
    w_int(&t, 41, -1);
    w_int(&t, 42, 1);
    w_int(&t, 43, 0);
    w_bytes(out, 2, t.p, t.n);
    free(t.p);
    wb z = {0};
    w_bytes(&z, 1, "identity", 8);
    w_int(&z, 3, o.add_dummy);
    w_int(&z, 4, o.remove_extra);
    w_int(&z, 5, o.escape);
    w_bytes(out, 3, z.p, z.n);
    free(z.p);
}

#define WS "\xe2\x96\x81"

/* The fixed small model: ids 0..10 */
static const tp k_small[] = {
    {"<pad>", 0, 3}, {"</s>", 0, 3}, {"<unk>", 0, 2}, {WS, -2, 1}, {"a", -3, 1}, {"b", -3, 1},
    {WS "a", -2.5f, 1}, {"ab", -4, 1}, {"<x>", 0, 4}, {"bb", -0.1f, 5}, {"\xc3\xa9", -3.5f, 1}};
enum { SM_WS = 3, SM_A, SM_B, SM_WSA, SM_AB, SM_X, SM_BB, SM_E };

static hb_tokenizer *small_model(mopts o, bool with_bytes) {
    tp ps[11 + 256];
    int n = 11;
    memcpy(ps, k_small, sizeof k_small);
    static char names[256][8];
    if (with_bytes)
        for (int b = 0; b < 256; b++) {
            snprintf(names[b], 8, "<0x%02X>", b);
            ps[n++] = (tp){names[b], 0, 6};
        }
    wb m = {0};
    build_model(&m, ps, n, o);
    hb_tokenizer *t = hb_tokenizer_load_spm_buffer(m.p, m.n, "small.model");
    CHECKF(t != NULL, "%s", hb_last_error());
    free(m.p);
    return t;
}

static bool enc_is(hb_tokenizer *t, const char *text, const int *want, int nw) {
    int32_t *ids;
    int n;
    if (hb_tokenizer_encode(t, text, strlen(text), &ids, &n)) { fprintf(stderr, "%s\n", hb_last_error()); return false; }
    bool ok = n == nw;
    for (int i = 0; ok && i < n; i++) ok = ids[i] == want[i];
    if (!ok) {
        fprintf(stderr, "encode('%s') gave:", text);
        for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}
#define ENC(t, text, ...) do { const int w_[] = {__VA_ARGS__}; \
    CHECKF(enc_is(t, text, w_, (int)(sizeof w_ / sizeof *w_)), "encode '%s'", text); } while (0)

static void test_small(void) {
    mopts o = {.add_dummy = true, .escape = true};
    hb_tokenizer *t = small_model(o, false);
    if (!t) return;
    CHECK(hb_tokenizer_eos_id(t) == 1 && hb_tokenizer_unk_id(t) == 2 && hb_tokenizer_pad_id(t) == 0);
    CHECK(hb_tokenizer_bos_id(t) == -1);
    ENC(t, "", 1);
    ENC(t, "a b", SM_WSA, SM_WS, SM_B, 1);          /* -2.5-2-3 beats -2-3-2-3 */
    ENC(t, "ab", SM_WSA, SM_B, 1);                  /* ▁a+b (-5.5) beats ▁+ab (-6) */
    ENC(t, "zz a", SM_WS, 2, SM_WSA, 1);            /* run of unknowns -> one unk */
    ENC(t, "z\xc3\xa9z", SM_WS, 2, SM_E, 2, 1);     /* unknowns split by a known char stay apart */
    ENC(t, "bb", SM_WS, SM_B, SM_B, 1);             /* UNUSED piece never used */
    ENC(t, "a<x>b", SM_WSA, SM_X, SM_B, 1);         /* user-defined piece wins */
    ENC(t, "\xff", SM_WS, 2, 1);                    /* invalid byte -> U+FFFD -> unk */
    ENC(t, "  a", SM_WS, SM_WS, SM_WSA, 1);         /* spaces kept when remove_extra_whitespaces is off */
    ENC(t, "</s>", SM_WS, 2, 1);                    /* control pieces are not matched in text */
    size_t nl;
    char *nz = hb_tokenizer_normalize(t, "a\xff b", 4, &nl);
    CHECK(nz && nl == strlen(WS "a\xef\xbf\xbd" WS "b") && !memcmp(nz, WS "a\xef\xbf\xbd" WS "b", nl));
    free(nz);
    /* embedded NUL is a character like any other (not in the vocab -> unk) */
    int32_t *ids; int n;
    CHECK(hb_tokenizer_encode(t, "a\0a", 3, &ids, &n) == 0 && n == 4 && ids[0] == SM_WSA && ids[1] == 2 && ids[2] == SM_A);
    free(ids);
    /* padding API: truncation keeps EOS last */
    int32_t pid[8], pm[8];
    CHECK(hb_tokenizer_encode_padded(t, "a a a a", false, 3, pid, pm) == 3);
    CHECK(pid[0] == SM_WSA && pid[1] == SM_WSA && pid[2] == 1 && pm[0] == 1 && pm[2] == 1);
    CHECK(hb_tokenizer_encode_padded(t, "  a \t", true, 8, pid, pm) == 2);
    CHECK(pid[0] == SM_WSA && pid[1] == 1 && pid[2] == 0 && pid[7] == 0 && pm[1] == 1 && pm[2] == 0 && pm[7] == 0);
    CHECK(hb_tokenizer_encode_padded(t, "a", false, 0, pid, pm) < 0);
    int64_t lid[5];
    uint8_t lm[5];
    CHECK(hb_tokenizer_encode_padded_i64(t, " a  b", true, 5, lid, lm) == 4);
    CHECK(lid[0] == SM_WSA && lid[1] == SM_WS && lid[2] == SM_B && lid[3] == 1 && lid[4] == 0);
    CHECK(lm[0] == 1 && lm[3] == 1 && lm[4] == 0);
    hb_tokenizer_free(t);

    /* remove_extra_whitespaces on */
    o.remove_extra = true;
    t = small_model(o, false);
    ENC(t, "   a    b  ", SM_WSA, SM_WS, SM_B, 1);
    ENC(t, "    ", 1);
    nz = hb_tokenizer_normalize(t, "  a   b ", 8, &nl);
    CHECK(nz && nl == strlen(WS "a" WS "b") && !memcmp(nz, WS "a" WS "b", nl));
    free(nz);
    hb_tokenizer_free(t);

    /* no dummy prefix, no escaping */
    o = (mopts){.add_dummy = false, .escape = false};
    t = small_model(o, false);
    nz = hb_tokenizer_normalize(t, "a b", 3, &nl);
    CHECK(nz && nl == 3 && !memcmp(nz, "a b", 3));
    free(nz);
    ENC(t, "ab", SM_AB, 1);
    hb_tokenizer_free(t);

    /* byte fallback */
    o = (mopts){.add_dummy = true, .escape = true, .byte_fallback = true};
    t = small_model(o, true);
    CHECK(hb_tokenizer_byte_fallback(t));
    ENC(t, "z\xc3\xa9", SM_WS, 11 + 0x7A, SM_E, 1);
    ENC(t, "zz", SM_WS, 11 + 0x7A, 11 + 0x7A, 1);   /* no merging with byte fallback */
    ENC(t, "\xe4\xb8\xad", SM_WS, 11 + 0xE4, 11 + 0xB8, 11 + 0xAD, 1);
    ENC(t, "\xff", SM_WS, 11 + 0xEF, 11 + 0xBF, 11 + 0xBD, 1);
    int ty;
    CHECK(!strcmp(hb_tokenizer_piece(t, 11 + 0x41, &ty), "<0x41>") && ty == HB_PIECE_BYTE);
    CHECK(hb_tokenizer_piece(t, -1, NULL) == NULL && hb_tokenizer_piece(t, 100000, NULL) == NULL);
    CHECK(hb_tokenizer_piece_id(t, WS "a") == SM_WSA && hb_tokenizer_piece_id(t, "</s>") == 1);
    CHECK(hb_tokenizer_piece_id(t, "nope") == -1);
    hb_tokenizer_free(t);
}

/* Exact ties of float sums: SentencePiece adds a double piece score to the float path score and compares
 * with the stored float, so "7"+"77" and "77"+"7" (equal in float) resolve differently by context.
 * Scores and expected pieces from sentencepiece 0.1.97 on shared/tokenizers/spm/unigram_bytefallback. */
static void test_float_ties(void) {
    tp ps[7] = {{"<pad>", 0, 3}, {"</s>", 0, 3}, {"<unk>", 0, 2}, {WS, -3.716496706008911f, 1},
                {"7", -6.542412281036377f, 1}, {"77", -8.333904266357422f, 1}, {WS "x", -7.930535316467285f, 1}};
    wb m = {0};
    build_model(&m, ps, 7, (mopts){.add_dummy = true, .escape = true, .remove_extra = true});
    hb_tokenizer *t = hb_tokenizer_load_spm_buffer(m.p, m.n, "ties.model");
    free(m.p);
    CHECKF(t != NULL, "%s", hb_last_error());
    if (!t) return;
    ENC(t, "777", 3, 5, 4, 1);
    ENC(t, "x 777", 6, 3, 4, 5, 1);
    hb_tokenizer_free(t);
}

/* ------------------------------------------------------------ Viterbi vs exhaustive search */

static const char *k_alpha[5] = {"a", "b", "c", WS, "\xc3\xa9"};
typedef struct { char s[32]; float score; } vp;

/* best total score of segmenting chars [i, n) (char indices into cs) by brute force */
static double brute(const int *cs, int i, int n, const vp *v, int nv, int depth) {
    if (i == n) return 0;
    double best = -INFINITY;
    for (int len = 1; len <= 4 && i + len <= n; len++) {
        char s[32] = "";
        for (int k = 0; k < len; k++) strcat(s, k_alpha[cs[i + k]]);
        for (int j = 0; j < nv; j++)
            if (!strcmp(v[j].s, s)) {
                double r = v[j].score + brute(cs, i + len, n, v, nv, depth + 1);
                if (r > best) best = r;
            }
    }
    return best;
}

static void test_viterbi_random(hb_rng *r) {
    int worst = 0;
    for (int trial = 0; trial < 20; trial++) {
        vp v[200];
        int nv = 0;
        for (int a = 0; a < 5; a++) { strcpy(v[nv].s, k_alpha[a]); v[nv].score = -4 - 6 * hb_rng_uniform(r); nv++; }
        while (nv < 60) {
            int len = 2 + (int)(hb_rng_u64(r) % 3);
            char s[32] = "";
            for (int k = 0; k < len; k++) strcat(s, k_alpha[hb_rng_u64(r) % 5]);
            bool dup = false;
            for (int j = 0; j < nv; j++) dup |= !strcmp(v[j].s, s);
            if (dup) continue;
            strcpy(v[nv].s, s);
            v[nv].score = -1 - 14 * hb_rng_uniform(r);
            nv++;
        }
        tp ps[64] = {{"<pad>", 0, 3}, {"</s>", 0, 3}, {"<unk>", 0, 2}};
        for (int j = 0; j < nv; j++) ps[3 + j] = (tp){v[j].s, v[j].score, 1};
        wb m = {0};
        build_model(&m, ps, 3 + nv, (mopts){.add_dummy = true, .escape = true});
        hb_tokenizer *t = hb_tokenizer_load_spm_buffer(m.p, m.n, "random.model");
        free(m.p);
        CHECKF(t != NULL, "%s", hb_last_error());
        if (!t) return;
        for (int q = 0; q < 50; q++) {
            int n = 1 + (int)(hb_rng_u64(r) % 11);
            int cs[16];
            char text[64] = "";
            cs[0] = 3; /* dummy prefix */
            for (int k = 0; k < n; k++) {
                int c = (int)(hb_rng_u64(r) % 5);
                cs[k + 1] = c;
                strcat(text, c == 3 ? " " : k_alpha[c]);
            }
            double best = brute(cs, 0, n + 1, v, nv, 0);
            int32_t *ids; int ni;
            CHECK(hb_tokenizer_encode(t, text, strlen(text), &ids, &ni) == 0);
            char cat[128] = "", want[128] = "";
            double sc = 0;
            for (int i = 0; i + 1 < ni; i++) {
                strcat(cat, hb_tokenizer_piece(t, ids[i], NULL));
                sc += v[ids[i] - 3].score;
            }
            for (int k = 0; k <= n; k++) strcat(want, k_alpha[cs[k]]);
            CHECKF(!strcmp(cat, want), "pieces do not spell the input '%s'", text);
            CHECKF(fabs(sc - best) <= 1e-4 * (1 + fabs(best)), "'%s': score %.6f, best %.6f", text, sc, best);
            CHECK(ids[ni - 1] == 1);
            if (fabs(sc - best) > 1e-4 * (1 + fabs(best))) worst++;
            free(ids);
        }
        hb_tokenizer_free(t);
    }
    printf("viterbi vs exhaustive: 1000 random strings, %d worse than the optimum\n", worst);
}

static void test_long_input(hb_rng *r) {
    hb_tokenizer *t = small_model((mopts){.add_dummy = true, .escape = true, .remove_extra = true}, false);
    if (!t) return;
    size_t L = 1 << 20;
    char *s = malloc(L + 1);
    static const char al[] = "ab  zq\xc3\xa9";
    for (size_t i = 0; i < L; i++) s[i] = al[hb_rng_u64(r) % 6];
    s[L] = 0;
    int32_t *ids; int n;
    CHECK(hb_tokenizer_encode(t, s, L, &ids, &n) == 0);
    CHECK(n > 1000 && ids[n - 1] == 1);
    free(ids);
    /* very long run of unknowns and of spaces */
    memset(s, 'z', L);
    CHECK(hb_tokenizer_encode(t, s, L, &ids, &n) == 0 && n == 3 && ids[0] == SM_WS && ids[1] == 2);
    free(ids);
    memset(s, ' ', L);
    CHECK(hb_tokenizer_encode(t, s, L, &ids, &n) == 0 && n == 1);
    free(ids);
    /* random bytes (mostly invalid UTF-8) */
    for (size_t i = 0; i < L; i++) s[i] = (char)(hb_rng_u64(r) & 0xFF);
    CHECK(hb_tokenizer_encode(t, s, L, &ids, &n) == 0 && n > 1);
    free(ids);
    free(s);
    hb_tokenizer_free(t);
}

/* ------------------------------------------------------------ malformed files */

static bool fails_with(const void *d, size_t n, const char *needle) {
    hb_tokenizer *t = hb_tokenizer_load_spm_buffer(d, n, "bad.model");
    if (t) { hb_tokenizer_free(t); fprintf(stderr, "loaded a malformed model\n"); return false; }
    const char *e = hb_last_error();
    if (!strstr(e, "bad.model") || (needle && !strstr(e, needle))) { fprintf(stderr, "message: %s\n", e); return false; }
    return true;
}

static void test_malformed(hb_rng *r) {
    wb m = {0};
    build_model(&m, k_small, 11, (mopts){.add_dummy = true, .escape = true});
    /* every truncation: no crash; one that cuts a field is an error */
    int loaded = 0;
    for (size_t k = 0; k < m.n; k++) {
        hb_tokenizer *t = hb_tokenizer_load_spm_buffer(m.p, k, "bad.model");
        if (t) loaded++;
        hb_tokenizer_free(t);
    }
    CHECK(loaded < (int)m.n / 4);
    CHECK(fails_with(m.p, m.n - 1, "truncated"));
    CHECK(fails_with(m.p, 0, NULL));
    /* wrong wire types */
    wb w = {0};
    w_int(&w, 1, 5);
    CHECK(fails_with(w.p, w.n, "wire type"));
    w.n = 0;
    { wb s = {0}; w_int(&s, 1, 3); w_bytes(&w, 1, s.p, s.n); free(s.p); }
    CHECK(fails_with(w.p, w.n, "wire type"));
    w.n = 0;
    { wb s = {0}; w_bytes(&s, 1, "x", 1); w_int(&s, 2, 7); w_bytes(&w, 1, s.p, s.n); free(s.p); }
    CHECK(fails_with(w.p, w.n, "wire type"));
    w.n = 0;
    w_key(&w, 7, 3); /* group */
    CHECK(fails_with(w.p, w.n, "wire type"));
    w.n = 0;
    w_raw(&w, "\x0a\xff\xff\xff\xff\x0f", 6); /* length far beyond the end */
    CHECK(fails_with(w.p, w.n, "truncated"));
    free(w.p);
    /* semantic errors */
    tp nounk[3] = {{"<pad>", 0, 3}, {"</s>", 0, 3}, {"a", -1, 1}};
    w = (wb){0};
    build_model(&w, nounk, 3, (mopts){.add_dummy = true});
    CHECK(fails_with(w.p, w.n, "unk"));
    free(w.p);
    tp dup[4] = {{"<pad>", 0, 3}, {"</s>", 0, 3}, {"<unk>", 0, 2}, {"a", -1, 1}};
    tp dup5[5] = {{"<pad>", 0, 3}, {"</s>", 0, 3}, {"<unk>", 0, 2}, {"a", -1, 1}, {"a", -2, 1}};
    w = (wb){0};
    build_model(&w, dup5, 5, (mopts){.add_dummy = true});
    CHECK(fails_with(w.p, w.n, "already defined"));
    free(w.p);
    tp byte[4] = {{"<pad>", 0, 3}, {"</s>", 0, 3}, {"<unk>", 0, 2}, {"<0x41>", 0, 6}};
    w = (wb){0};
    build_model(&w, byte, 4, (mopts){.add_dummy = true});
    CHECK(fails_with(w.p, w.n, "byte"));
    free(w.p);
    w = (wb){0};
    build_model(&w, dup, 4, (mopts){.add_dummy = true, .model_type = 2});
    CHECK(fails_with(w.p, w.n, "model_type"));
    free(w.p);
    tp empty[4] = {{"<pad>", 0, 3}, {"</s>", 0, 3}, {"<unk>", 0, 2}, {"", -1, 1}};
    w = (wb){0};
    build_model(&w, empty, 4, (mopts){.add_dummy = true});
    CHECK(fails_with(w.p, w.n, "empty"));
    free(w.p);
    /* a broken charsmap blob */
    w = (wb){0};
    build_model(&w, dup, 4, (mopts){.add_dummy = true});
    { wb z = {0}; w_bytes(&z, 2, "\xff\xff\x00\x00" "abcd", 8); w_bytes(&w, 3, z.p, z.n); free(z.p); }
    CHECK(fails_with(w.p, w.n, "charsmap"));
    free(w.p);
    /* random corruption of a valid model: never a crash; what loads still encodes */
    for (int it = 0; it < 2000; it++) {
        uint8_t *c = malloc(m.n);
        memcpy(c, m.p, m.n);
        int flips = 1 + (int)(hb_rng_u64(r) % 4);
        for (int f = 0; f < flips; f++) c[hb_rng_u64(r) % m.n] = (uint8_t)hb_rng_u64(r);
        hb_tokenizer *t = hb_tokenizer_load_spm_buffer(c, m.n, "fuzz.model");
        if (t) {
            int32_t *ids; int n;
            CHECK(hb_tokenizer_encode(t, "a b\xffzz<x>", 9, &ids, &n) == 0 && n >= 1);
            free(ids);
            hb_tokenizer_free(t);
        } else {
            CHECK(strstr(hb_last_error(), "fuzz.model") != NULL);
        }
        free(c);
    }
    /* files */
    char p[1024];
    snprintf(p, sizeof p, "%s/none/spiece.model", tl_tmpdir());
    CHECK(hb_tokenizer_load(p) == NULL && strstr(hb_last_error(), p));
    snprintf(p, sizeof p, "%s/empty.model", tl_tmpdir());
    FILE *f = fopen(p, "wb");
    fclose(f);
    CHECK(hb_tokenizer_load(p) == NULL && strstr(hb_last_error(), p));
    snprintf(p, sizeof p, "%s/bad.json", tl_tmpdir());
    f = fopen(p, "wb");
    fputs("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", ", f);
    fclose(f);
    CHECK(hb_tokenizer_load(p) == NULL && strstr(hb_last_error(), p));
    f = fopen(p, "wb");
    fputs("{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", f);
    fclose(f);
    CHECK(hb_tokenizer_load(p) == NULL && strstr(hb_last_error(), "Unigram"));
    CHECK(hb_tokenizer_open_dir(tl_tmpdir(), NULL, 0) == NULL && strstr(hb_last_error(), tl_tmpdir()));
    free(m.p);
}

/* ------------------------------------------------------------ tokenizer.json */

static void json_escape(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void test_json(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", tl_tmpdir());
    FILE *f = fopen(p, "wb");
    fprintf(f, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, \"content\": \"<pad>\", \"special\": true},"
               "{\"id\": 1, \"content\": \"</s>\", \"special\": true}, {\"id\": 2, \"content\": \"<unk>\", \"special\": true},"
               "{\"id\": 8, \"content\": \"<x>\", \"special\": false}],\n"
               "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"" WS "\","
               " \"add_prefix_space\": true},\n\"model\": {\"type\": \"Unigram\", \"unk_id\": 2, \"vocab\": [");
    for (int i = 0; i < 11; i++) {
        fprintf(f, i ? ", [" : "[");
        json_escape(f, k_small[i].piece);
        fprintf(f, ", %.9g]", (double)(i == SM_BB ? -100.0f : k_small[i].score));
    }
    fprintf(f, "]}}\n");
    fclose(f);
    hb_tokenizer *j = hb_tokenizer_load(p);
    CHECKF(j != NULL, "%s", hb_last_error());
    hb_tokenizer *s = small_model((mopts){.add_dummy = true, .escape = true}, false);
    static const char *texts[] = {"a b", "ab", "zz a", "a<x>b", "", "ba\xc3\xa9 ab a b"};
    for (int i = 0; j && s && i < 6; i++) {
        int32_t *a, *b; int na, nb;
        CHECK(hb_tokenizer_encode(j, texts[i], strlen(texts[i]), &a, &na) == 0);
        CHECK(hb_tokenizer_encode(s, texts[i], strlen(texts[i]), &b, &nb) == 0);
        CHECKF(na == nb && !memcmp(a, b, na * sizeof *a), "json != spm on '%s'", texts[i]);
        free(a); free(b);
    }
    if (j) CHECK(hb_tokenizer_eos_id(j) == 1 && hb_tokenizer_unk_id(j) == 2 && hb_tokenizer_pad_id(j) == 0);
    hb_tokenizer_free(j);
    /* the newer converter layout: Prepend + Replace normalisers, no pre-tokeniser, a null charsmap */
    f = fopen(p, "wb");
    fprintf(f, "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Precompiled\", "
               "\"precompiled_charsmap\": null}, {\"type\": \"Prepend\", \"prepend\": \"" WS "\"}, {\"type\": "
               "\"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" WS "\"}]}, \"pre_tokenizer\": null,"
               " \"model\": {\"type\": \"Unigram\", \"unk_id\": 2, \"vocab\": [");
    for (int i = 0; i < 11; i++) {
        fprintf(f, i ? ", [" : "[");
        json_escape(f, k_small[i].piece);
        fprintf(f, ", %.9g]", (double)k_small[i].score);
    }
    fprintf(f, "]}}\n");
    fclose(f);
    j = hb_tokenizer_load(p);
    CHECKF(j != NULL, "%s", hb_last_error());
    if (j) ENC(j, "a  b", SM_WSA, SM_WS, SM_WS, SM_B, 1);
    hb_tokenizer_free(j);
    hb_tokenizer_free(s);
}

/* the model bytes inside a safetensors file (ComfyUI text encoders) */
static void test_safetensors(void) {
    wb m = {0};
    build_model(&m, k_small, 11, (mopts){.add_dummy = true, .escape = true});
    char p[1024];
    snprintf(p, sizeof p, "%s/te.safetensors", tl_tmpdir());
    float w[6] = {1, 2, 3, 4, 5, 6};
    const char *names[2] = {"encoder.final_layer_norm.weight", "spiece_model"};
    hb_tensor ts[2] = {hb_tensor_1d(HB_F32, 6, w), hb_tensor_1d(HB_U8, (int64_t)m.n, m.p)};
    CHECKF(hb_safetensors_write(p, 2, names, ts, NULL) == 0, "%s", hb_last_error());
    hb_tokenizer *t = hb_tokenizer_load(p);
    CHECKF(t != NULL, "%s", hb_last_error());
    if (t) ENC(t, "zz a", SM_WS, 2, SM_WSA, 1);
    hb_tokenizer_free(t);
    /* without the tensor, or with a wrong dtype: one clear error naming the file */
    CHECK(hb_safetensors_write(p, 1, names, ts, NULL) == 0);
    CHECK(hb_tokenizer_load(p) == NULL && strstr(hb_last_error(), p) && strstr(hb_last_error(), "spiece_model"));
    const char *n2[1] = {"spiece_model"};
    CHECK(hb_safetensors_write(p, 1, n2, ts, NULL) == 0);
    CHECK(hb_tokenizer_load(p) == NULL && strstr(hb_last_error(), "uint8"));
    free(m.p);
}

/* ------------------------------------------------------------ cleaning */

static void clean_is(const char *in, const char *want, bool html_only) {
    char *o = html_only ? hb_html_unescape(in) : hb_prompt_clean(in);
    CHECKF(o && !strcmp(o, want), "%s('%s') = '%s', want '%s'", html_only ? "unescape" : "clean", in, o ? o : "(null)", want);
    free(o);
}

static void test_clean(void) {
    clean_is("&amp;lt;b&gt; &#65;&#x42;&#X43; &eacute;&copy &ampfoo &nosuch; &#; & x", "&lt;b> ABC \xc3\xa9\xc2\xa9 &foo &nosuch; &#; & x", true);
    clean_is("&#128;&#0;&#x110000;&#1;&#xD800;&hellip;&rsquo;&nbsp", "\xe2\x82\xac\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xe2\x80\xa6\xe2\x80\x99\xc2\xa0", true);
    clean_is("", "", false);
    clean_is("  a\t\tb\n\n c \r\n ", "a b c", false);
    clean_is("&amp;amp;amp;", "&", false);                 /* ftfy + html.unescape twice */
    clean_is("<b>&amp;amp;amp;</b>", "<b>&amp;</b>", false); /* ftfy leaves HTML-looking text alone */
    clean_is("\xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x80\x98it\xe2\x80\x99s\xe2\x80\x99", "\"quoted\" 'it's'", false);
    clean_is("\xef\xbc\xa1\xef\xbd\x82\xe3\x80\x80" "c\xef\xac\x81", "Ab cfi", false); /* width, U+3000, ligature */
    clean_is("a\xc2\xa0\xe2\x80\x83" "b\x01\x7f", "a b", false);
    clean_is("\xe4\xb8\xad\xe6\x96\x87  \xe6\xb5\x8b\xe8\xaf\x95", "\xe4\xb8\xad\xe6\x96\x87 \xe6\xb5\x8b\xe8\xaf\x95", false);
    clean_is("a\xff" "b", "a\xef\xbf\xbd" "b", false); /* invalid UTF-8 -> U+FFFD as a Python str would hold */
}

/* ------------------------------------------------------------ CLI */

static void test_cli(void) {
    char dir[1024], p[1100], cmd[4096], out[8192];
    snprintf(dir, sizeof dir, "%s/model", tl_tmpdir());
    snprintf(p, sizeof p, "mkdir -p %s/google/umt5-xxl", dir);
    CHECK(tl_run(p, NULL, 0) == 0);
    wb m = {0};
    build_model(&m, k_small, 11, (mopts){.add_dummy = true, .escape = true});
    snprintf(p, sizeof p, "%s/google/umt5-xxl/spiece.model", dir);
    CHECK(hb_write_file_atomic(p, m.p, m.n) == 0);
    free(m.p);
    const char *hb = tl_hb_bin();
    snprintf(cmd, sizeof cmd, "%s tokenize -m %s 'a b' 2>&1", hb, dir);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && !strcmp(out, "6 3 5 1\n"));
    snprintf(cmd, sizeof cmd, "%s tokenize -m %s 'a b' 2>&1", hb, p); /* a file where a folder is expected */
    CHECK(tl_run(cmd, out, sizeof out) == 0 && !strcmp(out, "6 3 5 1\n"));
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s 'zz a' 2>&1", hb, p);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && !strcmp(out, "3 2 6 1\n"));
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --clean '  a  &amp; ' 2>&1", hb, p);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && !strcmp(out, "6 3 2 1\n"));
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --pad 4 'a' 2>&1", hb, p);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && !strcmp(out, "6 1 0 0\n1 1 0 0\n"));
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --pieces 'ab' 2>&1", hb, p);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && !strcmp(out, WS "a b </s>\n"));
    snprintf(cmd, sizeof cmd, "printf 'a b' | %s tokenize --tokenizer %s - 2>&1", hb, p);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && !strcmp(out, "6 3 5 1\n"));
    snprintf(cmd, sizeof cmd, "%s tokenize --help", hb);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && strstr(out, "--tokenizer") && strstr(out, "--clean"));
    /* errors: malformed file, missing folder, no text */
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/broken.model", tl_tmpdir());
    CHECK(hb_write_file_atomic(bad, "\x0a\x50garbage", 9) == 0);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s 'a' 2>&1", hb, bad);
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc != 0 && strstr(out, bad) && !strchr(strchr(out, '\n') + 1, '\n'), "rc %d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "%s tokenize -m %s/nowhere 'a' 2>&1", hb, tl_tmpdir());
    CHECK(tl_run(cmd, out, sizeof out) != 0 && strstr(out, "nowhere"));
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s 2>&1", hb, p);
    CHECK(tl_run(cmd, out, sizeof out) != 0);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    test_small();
    test_float_ties();
    test_viterbi_random(&r);
    test_long_input(&r);
    test_malformed(&r);
    test_json();
    test_safetensors();
    test_clean();
    test_cli();
    return tl_done();
}
