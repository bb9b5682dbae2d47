/* SentencePiece unigram tokenizer (spiece.model / tokenizer.json) for the umT5 text encoder.
 * Behaviour follows SentencePiece's normalizer, unigram model (optimised Viterbi) and processor; the
 * implementation is independent (see docs/tokenizer.md for the facts it relies on). */
#include "models/tokenizer.h"
#include "io/json_file.h"
#include "io/checkpoint.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <errno.h>
#include <sys/stat.h>

struct hb_tokenizer {
    char name[512];
    /* pieces */
    int npieces;
    char *pool;          /* all pieces, NUL-terminated */
    uint32_t *poff;      /* offset of piece i in pool */
    uint32_t *plen;      /* byte length of piece i */
    float *score;
    uint8_t *type;
    int unk_id, eos_id, bos_id, pad_id;
    bool byte_fallback, treat_ws_suffix, has_user_defined;
    float min_score, max_score;
    int byte_id[256];
    /* normaliser */
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    uint32_t *da;        /* Darts double array units (NULL: no charsmap) */
    size_t da_units;
    char *norm_str;      /* normalised strings, each NUL-terminated */
    size_t norm_len;
    /* piece trie: children of a node are contiguous with sorted labels */
    size_t t_nodes;
    uint32_t *t_child;
    uint16_t *t_nchild;
    int32_t *t_value;
    uint8_t *t_label;
    uint32_t root_child[256]; /* 0 = none */
};

/* ---------------------------------------------------------------- UTF-8 (SentencePiece rules) */

static int one_char_len(uint8_t c) {
    static const uint8_t k[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return k[c >> 4];
}

static bool valid_cp(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }
static bool trail(uint8_t c) { return (c & 0xC0) == 0x80; }

/* Decode one code point; returns false for malformed input (then *mblen = 1). */
static bool decode_utf8(const uint8_t *s, size_t len, uint32_t *cp, size_t *mblen) {
    uint8_t c = s[0];
    if (c < 0x80) { *mblen = 1; *cp = c; return true; }
    if (len >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t v = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        if (trail(s[1]) && v >= 0x80 && valid_cp(v)) { *mblen = 2; *cp = v; return true; }
    } else if (len >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t v = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (trail(s[1]) && trail(s[2]) && v >= 0x800 && valid_cp(v)) { *mblen = 3; *cp = v; return true; }
    } else if (len >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t v = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                     ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (trail(s[1]) && trail(s[2]) && trail(s[3]) && v >= 0x10000 && valid_cp(v)) {
            *mblen = 4; *cp = v; return true;
        }
    }
    *mblen = 1;
    *cp = 0xFFFD;
    return false;
}

static size_t put_utf8(char *o, uint32_t c) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 63)); o[2] = (char)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 63));
    o[2] = (char)(0x80 | ((c >> 6) & 63)); o[3] = (char)(0x80 | (c & 63));
    return 4;
}

/* ---------------------------------------------------------------- growable byte buffer */

typedef struct { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_cp(sbuf *b, uint32_t c) { char t[4]; sb_put(b, t, put_utf8(t, c)); }
static char *sb_take(sbuf *b, size_t *len) {
    if (b->oom) { free(b->p); hb_error("tokenizer: out of memory"); return NULL; }
    if (!b->p) { b->p = malloc(1); if (!b->p) { hb_error("tokenizer: out of memory"); return NULL; } b->p[0] = 0; }
    if (len) *len = b->n;
    return b->p;
}

/* ---------------------------------------------------------------- protobuf wire format */

typedef struct { const uint8_t *p, *end; const char *file; const char *msg; } pbuf;

static int pb_fail(const pbuf *b, const char *what) {
    return hb_error("%s: malformed SentencePiece model (%s in %s)", b->file, what, b->msg);
}
static int pb_varint(pbuf *b, uint64_t *v) {
    uint64_t r = 0;
    for (int s = 0; s < 70; s += 7) {
        if (b->p >= b->end) return pb_fail(b, "truncated varint");
        uint8_t c = *b->p++;
        if (s == 63 && c > 1) return pb_fail(b, "varint overflow");
        r |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) { *v = r; return 0; }
    }
    return pb_fail(b, "varint longer than 10 bytes");
}
static int pb_key(pbuf *b, uint32_t *field, int *wt) {
    uint64_t k;
    if (pb_varint(b, &k)) return -1;
    *field = (uint32_t)(k >> 3);
    *wt = (int)(k & 7);
    if (*field == 0 || k >> 32) return pb_fail(b, "invalid field number");
    return 0;
}
static int pb_len(pbuf *b, const uint8_t **data, size_t *n) {
    uint64_t l;
    if (pb_varint(b, &l)) return -1;
    if (l > (uint64_t)(b->end - b->p)) return pb_fail(b, "truncated length-delimited field");
    *data = b->p;
    *n = (size_t)l;
    b->p += l;
    return 0;
}
static int pb_skip(pbuf *b, int wt) {
    uint64_t v;
    const uint8_t *d;
    size_t n;
    switch (wt) {
    case 0: return pb_varint(b, &v);
    case 1: if (b->end - b->p < 8) return pb_fail(b, "truncated fixed64"); b->p += 8; return 0;
    case 2: return pb_len(b, &d, &n);
    case 5: if (b->end - b->p < 4) return pb_fail(b, "truncated fixed32"); b->p += 4; return 0;
    default: return pb_fail(b, "unsupported wire type (groups or invalid)");
    }
}
static int pb_expect(pbuf *b, int wt, int want, const char *field) {
    if (wt == want) return 0;
    char m[160];
    snprintf(m, sizeof m, "field '%s' has wire type %d, expected %d", field, wt, want);
    return pb_fail(b, m);
}
static int pb_int(pbuf *b, int wt, const char *field, int64_t *out) {
    uint64_t v;
    if (pb_expect(b, wt, 0, field) || pb_varint(b, &v)) return -1;
    *out = (int64_t)v;
    return 0;
}

/* ---------------------------------------------------------------- model construction */

typedef struct {
    sbuf pool;
    uint32_t *off, *len;
    float *score;
    uint8_t *type;
    int n, cap;
} piece_list;

static int pl_add(piece_list *l, const char *s, size_t n, float score, int type) {
    if (l->n == l->cap) {
        int c = l->cap ? l->cap * 2 : 1024;
        uint32_t *o = realloc(l->off, c * sizeof *o);
        if (o) l->off = o;
        uint32_t *ln = realloc(l->len, c * sizeof *ln);
        if (ln) l->len = ln;
        float *sc = realloc(l->score, c * sizeof *sc);
        if (sc) l->score = sc;
        uint8_t *t = realloc(l->type, c);
        if (t) l->type = t;
        if (!o || !ln || !sc || !t) return hb_error("tokenizer: out of memory");
        l->cap = c;
    }
    if (l->pool.n + n + 1 > UINT32_MAX) return hb_error("tokenizer: pieces too large");
    l->off[l->n] = (uint32_t)l->pool.n;
    l->len[l->n] = (uint32_t)n;
    l->score[l->n] = score;
    l->type[l->n] = (uint8_t)type;
    sb_put(&l->pool, s, n);
    sb_put(&l->pool, "", 1);
    if (l->pool.oom) return hb_error("tokenizer: out of memory");
    l->n++;
    return 0;
}
static void pl_free(piece_list *l) {
    free(l->pool.p); free(l->off); free(l->len); free(l->score); free(l->type);
    memset(l, 0, sizeof *l);
}

typedef struct {
    int64_t model_type, unk_id, bos_id, eos_id, pad_id;
    bool byte_fallback, treat_ws_suffix;
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    const uint8_t *charsmap;
    size_t charsmap_len;
    char norm_name[64];
} model_spec;

static void spec_defaults(model_spec *s) {
    memset(s, 0, sizeof *s);
    s->model_type = 1;
    s->unk_id = 0; s->bos_id = 1; s->eos_id = 2; s->pad_id = -1;
    s->add_dummy_prefix = s->remove_extra_ws = s->escape_ws = true;
}

static const char *P(const hb_tokenizer *t, int i) { return t->pool + t->poff[i]; }

/* Byte-wise order (a prefix sorts first). `key` holds each piece's first 8 bytes big-endian, zero
 * padded, so most comparisons never touch the strings. */
static int cmp_pieces(const hb_tokenizer *t, const uint64_t *key, int a, int b) {
    if (key[a] != key[b]) return key[a] < key[b] ? -1 : 1;
    uint32_t la = t->plen[a], lb = t->plen[b];
    int c = memcmp(P(t, a), P(t, b), la < lb ? la : lb);
    if (c) return c;
    return la < lb ? -1 : la > lb ? 1 : 0;
}

static void sort_ids(const hb_tokenizer *t, const uint64_t *key, int *ids, int *tmp, int n) {
    if (n < 2) return;
    int h = n / 2;
    sort_ids(t, key, ids, tmp, h);
    sort_ids(t, key, ids + h, tmp, n - h);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp_pieces(t, key, ids[j], ids[i]) < 0 ? ids[j++] : ids[i++];
    while (i < h) tmp[k++] = ids[i++];
    while (j < n) tmp[k++] = ids[j++];
    memcpy(ids, tmp, n * sizeof *ids);
}

static bool in_trie(int type) {
    return type == HB_PIECE_NORMAL || type == HB_PIECE_USER_DEFINED || type == HB_PIECE_UNUSED;
}

/* Build the byte trie over NORMAL/USER_DEFINED/UNUSED pieces. */
static int build_trie(hb_tokenizer *t) {
    int n = 0;
    for (int i = 0; i < t->npieces; i++) n += in_trie(t->type[i]);
    if (n == 0) return hb_error("%s: no pieces are loaded", t->name);
    int *ids = malloc(n * sizeof *ids), *tmp = malloc(n * sizeof *tmp);
    char *spool = NULL;
    uint32_t *soff = NULL;
    size_t total = 1;
    for (int i = 0; i < t->npieces; i++) if (in_trie(t->type[i])) total += t->plen[i];
    uint32_t *lo = malloc(total * sizeof *lo), *hi = malloc(total * sizeof *hi), *dep = malloc(total * sizeof *dep);
    t->t_child = malloc(total * sizeof *t->t_child);
    t->t_nchild = malloc(total * sizeof *t->t_nchild);
    t->t_value = malloc(total * sizeof *t->t_value);
    t->t_label = malloc(total);
    int rc = 0;
    if (!ids || !tmp || !lo || !hi || !dep || !t->t_child || !t->t_nchild || !t->t_value || !t->t_label) {
        rc = hb_error("tokenizer: out of memory");
        goto done;
    }
    n = 0;
    for (int i = 0; i < t->npieces; i++) if (in_trie(t->type[i])) ids[n++] = i;
    {
        uint64_t *key = malloc((size_t)t->npieces * sizeof *key);
        if (!key) { rc = hb_error("tokenizer: out of memory"); goto done; }
        for (int i = 0; i < t->npieces; i++) {
            uint64_t k = 0;
            for (uint32_t j = 0; j < 8; j++) k = k << 8 | (j < t->plen[i] ? (uint8_t)P(t, i)[j] : 0);
            key[i] = k;
        }
        sort_ids(t, key, ids, tmp, n);
        free(key);
    }
    /* the sorted pieces copied contiguously: the breadth-first passes below then read memory in order */
    spool = malloc(total + (size_t)n);
    soff = malloc((size_t)n * sizeof *soff);
    if (!spool || !soff) { rc = hb_error("tokenizer: out of memory"); goto done; }
    size_t so = 0;
    for (int i = 0; i < n; i++) {
        soff[i] = (uint32_t)so;
        memcpy(spool + so, P(t, ids[i]), t->plen[ids[i]]);
        so += t->plen[ids[i]];
    }
#define SB(i, d) ((uint8_t)spool[soff[i] + (d)])
    size_t nn = 1;
    lo[0] = 0; hi[0] = (uint32_t)n; dep[0] = 0; t->t_label[0] = 0; t->t_value[0] = -1;
    for (size_t v = 0; v < nn; v++) {
        uint32_t a = lo[v], b = hi[v], d = dep[v];
        while (a < b && t->plen[ids[a]] == d) {
            if (t->t_value[v] >= 0)
                { rc = hb_error("%s: piece '%s' is already defined", t->name, P(t, ids[a])); goto done; }
            t->t_value[v] = ids[a++];
        }
        t->t_child[v] = (uint32_t)nn;
        uint16_t cnt = 0;
        while (a < b) {
            uint8_t c = SB(a, d);
            uint32_t e = a + 1;
            while (e < b && SB(e, d) == c) e++;
            lo[nn] = a; hi[nn] = e; dep[nn] = d + 1; t->t_label[nn] = c; t->t_value[nn] = -1;
            nn++; cnt++;
            a = e;
        }
        t->t_nchild[v] = cnt;
    }
    t->t_nodes = nn;
    memset(t->root_child, 0, sizeof t->root_child);
    for (uint32_t k = 0; k < t->t_nchild[0]; k++) t->root_child[t->t_label[t->t_child[0] + k]] = t->t_child[0] + k;
#undef SB
done:
    free(ids); free(tmp); free(lo); free(hi); free(dep); free(spool); free(soff);
    return rc;
}

static inline uint32_t trie_next(const hb_tokenizer *t, uint32_t node, uint8_t c) {
    if (node == 0) return t->root_child[c];
    uint32_t a = t->t_child[node], b = a + t->t_nchild[node];
    while (a < b) {
        uint32_t m = (a + b) / 2;
        if (t->t_label[m] < c) a = m + 1; else b = m;
    }
    return (a < t->t_child[node] + t->t_nchild[node] && t->t_label[a] == c) ? a : 0;
}

static int trie_exact(const hb_tokenizer *t, const char *s, size_t n) {
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) if (!(v = trie_next(t, v, (uint8_t)s[i]))) return -1;
    return t->t_value[v];
}

int hb_tokenizer_piece_id(const hb_tokenizer *t, const char *piece) {
    size_t n = strlen(piece);
    for (int i = 0; i < t->npieces; i++)
        if (!in_trie(t->type[i]) && t->plen[i] == n && !memcmp(P(t, i), piece, n)) return i;
    return trie_exact(t, piece, n);
}

static int set_charsmap(hb_tokenizer *t, const uint8_t *blob, size_t n) {
    if (n <= 4) return hb_error("%s: precompiled charsmap is broken (%zu bytes)", t->name, n);
    uint32_t tsz = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 | (uint32_t)blob[3] << 24;
    if (tsz >= n || tsz > n - 4 || tsz % 4 || tsz == 0)
        return hb_error("%s: precompiled charsmap trie size %u does not fit the %zu-byte blob", t->name, tsz, n);
    t->da_units = tsz / 4;
    t->da = malloc(tsz);
    t->norm_len = n - 4 - tsz;
    t->norm_str = malloc(t->norm_len + 1);
    if (!t->da || !t->norm_str) return hb_error("tokenizer: out of memory");
    for (size_t i = 0; i < t->da_units; i++) {
        const uint8_t *q = blob + 4 + 4 * i;
        t->da[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    }
    memcpy(t->norm_str, blob + 4 + tsz, t->norm_len);
    t->norm_str[t->norm_len] = 0;
    return 0;
}

/* Checks and derived tables shared by both loaders (SentencePiece's InitializePieces rules). */
static int finish_model(hb_tokenizer *t, const model_spec *s) {
    if (s->model_type != 1)
        return hb_error("%s: model_type %lld is not supported (only UNIGRAM = 1)", t->name, (long long)s->model_type);
    if (t->npieces == 0) return hb_error("%s: the model has no pieces", t->name);
    t->unk_id = -1;
    t->has_user_defined = false;
    t->min_score = FLT_MAX;
    t->max_score = FLT_MIN;
    for (int i = 0; i < t->npieces; i++) {
        int ty = t->type[i];
        if (t->plen[i] == 0) return hb_error("%s: piece %d is empty", t->name, i);
        if (ty < 1 || ty > 6) return hb_error("%s: piece %d has unknown type %d", t->name, i, ty);
        if (ty == HB_PIECE_UNKNOWN) {
            if (t->unk_id >= 0) return hb_error("%s: unk is already defined (pieces %d and %d)", t->name, t->unk_id, i);
            t->unk_id = i;
        }
        if (ty == HB_PIECE_BYTE && !s->byte_fallback)
            return hb_error("%s: piece %d is a byte piece but byte_fallback is off", t->name, i);
        if (ty == HB_PIECE_USER_DEFINED) t->has_user_defined = true;
        if (ty == HB_PIECE_NORMAL) {
            if (t->score[i] < t->min_score) t->min_score = t->score[i];
            if (t->score[i] > t->max_score) t->max_score = t->score[i];
        }
    }
    if (t->unk_id < 0) return hb_error("%s: unk is not defined (no piece of type UNKNOWN)", t->name);
    t->byte_fallback = s->byte_fallback;
    t->treat_ws_suffix = s->treat_ws_suffix;
    t->add_dummy_prefix = s->add_dummy_prefix;
    t->remove_extra_ws = s->remove_extra_ws;
    t->escape_ws = s->escape_ws;
    if (build_trie(t)) return -1;
    /* duplicates among reserved pieces */
    if (s->charsmap && s->charsmap_len && set_charsmap(t, s->charsmap, s->charsmap_len)) return -1;
    /* PieceToId("<0xXX>"): reserved (non-trie) pieces first, then the trie, else unk */
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int i = 0; i < t->npieces; i++) {
        const char *p = P(t, i);
        if (in_trie(t->type[i]) || t->plen[i] != 6 || strncmp(p, "<0x", 3) || p[5] != '>') continue;
        int hv = 0, ok = 1;
        for (int k = 3; k < 5; k++) {
            char c = p[k];
            if (c >= '0' && c <= '9') hv = hv * 16 + c - '0';
            else if (c >= 'A' && c <= 'F') hv = hv * 16 + c - 'A' + 10;
            else ok = 0;
        }
        if (ok && t->byte_id[hv] < 0) t->byte_id[hv] = i;
    }
    for (int b = 0; b < 256; b++) {
        if (t->byte_id[b] >= 0) continue;
        char nm[8];
        snprintf(nm, sizeof nm, "<0x%02X>", b);
        int id = trie_exact(t, nm, 6);
        t->byte_id[b] = id < 0 ? t->unk_id : id;
    }
    t->eos_id = (s->eos_id >= 0 && s->eos_id < t->npieces) ? (int)s->eos_id : hb_tokenizer_piece_id(t, "</s>");
    t->bos_id = (s->bos_id >= 0 && s->bos_id < t->npieces) ? (int)s->bos_id : -1;
    t->pad_id = (s->pad_id >= 0 && s->pad_id < t->npieces) ? (int)s->pad_id : 0;
    if (t->eos_id < 0) return hb_error("%s: the model has no EOS piece", t->name);
    return 0;
}

static int take_pieces(hb_tokenizer *t, piece_list *l) {
    t->npieces = l->n;
    t->pool = l->pool.p; t->poff = l->off; t->plen = l->len; t->score = l->score; t->type = l->type;
    memset(l, 0, sizeof *l);
    return 0;
}

static hb_tokenizer *tok_new(const char *name) {
    hb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) { hb_error("tokenizer: out of memory"); return NULL; }
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* ---------------------------------------------------------------- SentencePiece ModelProto */

static int parse_piece(pbuf *b, piece_list *l) {
    const uint8_t *s = NULL;
    size_t n = 0;
    float score = 0;
    int64_t type = HB_PIECE_NORMAL;
    const char *msg = b->msg;
    b->msg = "ModelProto.pieces";
    while (b->p < b->end) {
        uint32_t f; int wt;
        if (pb_key(b, &f, &wt)) return -1;
        if (f == 1) { if (pb_expect(b, wt, 2, "piece") || pb_len(b, &s, &n)) return -1; }
        else if (f == 2) {
            if (pb_expect(b, wt, 5, "score")) return -1;
            if (b->end - b->p < 4) return pb_fail(b, "truncated score");
            uint32_t u = (uint32_t)b->p[0] | (uint32_t)b->p[1] << 8 | (uint32_t)b->p[2] << 16 | (uint32_t)b->p[3] << 24;
            memcpy(&score, &u, 4);
            b->p += 4;
        } else if (f == 3) { if (pb_int(b, wt, "type", &type)) return -1; }
        else if (pb_skip(b, wt)) return -1;
    }
    b->msg = msg;
    if (type < 1 || type > 6) return hb_error("%s: piece %d has unknown type %lld", b->file, l->n, (long long)type);
    return pl_add(l, s ? (const char *)s : "", n, score, (int)type);
}

static int parse_trainer(pbuf *b, model_spec *s) {
    b->msg = "TrainerSpec";
    while (b->p < b->end) {
        uint32_t f; int wt;
        int64_t v;
        if (pb_key(b, &f, &wt)) return -1;
        switch (f) {
        case 3: if (pb_int(b, wt, "model_type", &s->model_type)) return -1; break;
        case 24: if (pb_int(b, wt, "treat_whitespace_as_suffix", &v)) return -1; s->treat_ws_suffix = v != 0; break;
        case 35: if (pb_int(b, wt, "byte_fallback", &v)) return -1; s->byte_fallback = v != 0; break;
        case 40: if (pb_int(b, wt, "unk_id", &v)) return -1; s->unk_id = (int32_t)v; break;
        case 41: if (pb_int(b, wt, "bos_id", &v)) return -1; s->bos_id = (int32_t)v; break;
        case 42: if (pb_int(b, wt, "eos_id", &v)) return -1; s->eos_id = (int32_t)v; break;
        case 43: if (pb_int(b, wt, "pad_id", &v)) return -1; s->pad_id = (int32_t)v; break;
        default: if (pb_skip(b, wt)) return -1;
        }
    }
    return 0;
}

static int parse_normalizer(pbuf *b, model_spec *s) {
    b->msg = "NormalizerSpec";
    while (b->p < b->end) {
        uint32_t f; int wt;
        int64_t v;
        const uint8_t *d = NULL;
        size_t n = 0;
        if (pb_key(b, &f, &wt)) return -1;
        switch (f) {
        case 1:
            if (pb_expect(b, wt, 2, "name") || pb_len(b, &d, &n)) return -1;
            snprintf(s->norm_name, sizeof s->norm_name, "%.*s", (int)(n < 63 ? n : 63), (const char *)d);
            break;
        case 2:
            if (pb_expect(b, wt, 2, "precompiled_charsmap") || pb_len(b, &s->charsmap, &s->charsmap_len)) return -1;
            break;
        case 3: if (pb_int(b, wt, "add_dummy_prefix", &v)) return -1; s->add_dummy_prefix = v != 0; break;
        case 4: if (pb_int(b, wt, "remove_extra_whitespaces", &v)) return -1; s->remove_extra_ws = v != 0; break;
        case 5: if (pb_int(b, wt, "escape_whitespaces", &v)) return -1; s->escape_ws = v != 0; break;
        default: if (pb_skip(b, wt)) return -1;
        }
    }
    return 0;
}

static hb_tokenizer *load_spm(const uint8_t *data, size_t n, const char *name) {
    hb_tokenizer *t = tok_new(name);
    if (!t) return NULL;
    piece_list l = {0};
    model_spec s;
    spec_defaults(&s);
    pbuf b = {data, data + n, t->name, "ModelProto"};
    bool have_norm = false;
    while (b.p < b.end) {
        uint32_t f; int wt;
        const uint8_t *d = NULL;
        size_t m = 0;
        b.msg = "ModelProto";
        if (pb_key(&b, &f, &wt)) goto fail;
        if (f >= 1 && f <= 3) {
            const char *nm = f == 1 ? "pieces" : f == 2 ? "trainer_spec" : "normalizer_spec";
            if (pb_expect(&b, wt, 2, nm) || pb_len(&b, &d, &m)) goto fail;
            pbuf sub = {d, d + m, t->name, nm};
            if (f == 1 && parse_piece(&sub, &l)) goto fail;
            if (f == 2 && parse_trainer(&sub, &s)) goto fail;
            if (f == 3) { if (parse_normalizer(&sub, &s)) goto fail; have_norm = true; }
        } else if (pb_skip(&b, wt)) goto fail;
    }
    (void)have_norm;
    if (l.n == 0) { hb_error("%s: not a SentencePiece model (no pieces found)", t->name); goto fail; }
    take_pieces(t, &l);
    if (finish_model(t, &s)) goto fail;
    return t;
fail:
    pl_free(&l);
    hb_tokenizer_free(t);
    return NULL;
}

hb_tokenizer *hb_tokenizer_load_spm_buffer(const void *data, size_t n, const char *name) {
    return load_spm((const uint8_t *)data, n, name ? name : "<memory>");
}

/* ---------------------------------------------------------------- tokenizer.json */

static int b64_val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}
static uint8_t *b64_decode(const char *s, size_t *n) {
    size_t L = strlen(s);
    uint8_t *o = malloc(L / 4 * 3 + 4);
    if (!o) return NULL;
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < L; i++) {
        if (s[i] == '=' ) break;
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) { if (s[i] == '\n' || s[i] == '\r' || s[i] == ' ') continue; free(o); return NULL; }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) { bits -= 8; o[k++] = (uint8_t)(acc >> bits); }
    }
    *n = k;
    return o;
}

/* Map the Hugging Face normaliser / pre-tokeniser onto SentencePiece's normaliser flags. */
static int json_normalizer(hb_tokenizer *t, json_t *nz, model_spec *s, uint8_t **charsmap) {
    if (!json_is_object(nz)) return 0;
    const char *ty = json_string_value(json_object_get(nz, "type"));
    if (!ty) return 0;
    if (!strcmp(ty, "Sequence")) {
        json_t *arr = json_object_get(nz, "normalizers");
        size_t i;
        json_t *x;
        json_array_foreach(arr, i, x) if (json_normalizer(t, x, s, charsmap)) return -1;
    } else if (!strcmp(ty, "Precompiled")) {
        const char *b = json_string_value(json_object_get(nz, "precompiled_charsmap"));
        if (b && *b) {
            free(*charsmap);
            *charsmap = b64_decode(b, &s->charsmap_len);
            if (!*charsmap) return hb_error("%s: precompiled_charsmap is not valid base64", t->name);
            s->charsmap = *charsmap;
        }
    } else if (!strcmp(ty, "Prepend")) {
        const char *pp = json_string_value(json_object_get(nz, "prepend"));
        if (pp && !strcmp(pp, "\xe2\x96\x81")) s->add_dummy_prefix = true;
    } else if (!strcmp(ty, "Replace")) {
        json_t *pat = json_object_get(nz, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *st = json_string_value(json_object_get(pat, "String"));
        if ((re && !strcmp(re, " {2,}")) || (st && !strcmp(st, "  "))) s->remove_extra_ws = true;
    }
    return 0;
}
static void json_pretok(json_t *pt, model_spec *s) {
    if (!json_is_object(pt)) return;
    const char *ty = json_string_value(json_object_get(pt, "type"));
    if (!ty) return;
    if (!strcmp(ty, "Sequence")) {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(pt, "pretokenizers"), i, x) json_pretok(x, s);
    } else if (!strcmp(ty, "Metaspace")) {
        json_t *aps = json_object_get(pt, "add_prefix_space");
        const char *ps = json_string_value(json_object_get(pt, "prepend_scheme"));
        bool add = ps ? strcmp(ps, "never") != 0 : json_is_boolean(aps) ? json_is_true(aps) : true;
        if (add) s->add_dummy_prefix = true;
    } else if (!strcmp(ty, "WhitespaceSplit") || !strcmp(ty, "Whitespace")) {
        s->remove_extra_ws = true;
    }
}

static hb_tokenizer *load_json(const char *text, size_t n, const char *name) {
    hb_tokenizer *t = tok_new(name);
    if (!t) return NULL;
    piece_list l = {0};
    uint8_t *charsmap = NULL;
    json_t *root = hb_json_parse(text, n, 0, name);
    if (!root) goto fail;
    json_t *model = json_object_get(root, "model");
    const char *mt = json_string_value(json_object_get(model, "type"));
    if (!mt || strcmp(mt, "Unigram")) {
        hb_error("%s: model.type is %s, only \"Unigram\" is supported", name, mt ? mt : "missing"); goto fail;
    }
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_array(vocab) || json_array_size(vocab) == 0) { hb_error("%s: model.vocab is missing or empty", name); goto fail; }
    model_spec s;
    spec_defaults(&s);
    s.add_dummy_prefix = false;
    s.remove_extra_ws = false;
    s.escape_ws = true;
    json_t *unk = json_object_get(model, "unk_id");
    s.unk_id = -1;
    if (unk && !json_is_null(unk)) {
        if (!json_is_integer(unk) || json_integer_value(unk) < 0 || (size_t)json_integer_value(unk) >= json_array_size(vocab)) {
            hb_error("%s: model.unk_id is not an index into model.vocab (%zu pieces)", name, json_array_size(vocab));
            goto fail;
        }
        s.unk_id = (int)json_integer_value(unk);
    }
    s.byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    s.bos_id = s.eos_id = s.pad_id = -1;
    size_t nv = json_array_size(vocab);
    uint8_t *special = calloc(nv, 1);
    if (!special) { hb_error("tokenizer: out of memory"); goto fail; }
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(root, "added_tokens"), i, x) {
        json_t *id = json_object_get(x, "id");
        if (json_is_integer(id) && json_integer_value(id) >= 0 && (size_t)json_integer_value(id) < nv)
            special[json_integer_value(id)] = json_is_true(json_object_get(x, "special")) ? 1 : 2;
    }
    json_array_foreach(vocab, i, x) {
        const char *p = json_string_value(json_array_get(x, 0));
        json_t *sc = json_array_get(x, 1);
        if (!p || !json_is_number(sc)) {
            free(special);
            hb_error("%s: model.vocab[%zu] is not a [piece, score] pair", name, i);
            goto fail;
        }
        int ty = HB_PIECE_NORMAL;
        size_t pl = strlen(p);
        if ((int64_t)i == s.unk_id) ty = HB_PIECE_UNKNOWN;
        else if (special[i] == 1) ty = HB_PIECE_CONTROL;
        else if (special[i] == 2) ty = HB_PIECE_USER_DEFINED;
        else if (s.byte_fallback && pl == 6 && !strncmp(p, "<0x", 3) && p[5] == '>') ty = HB_PIECE_BYTE;
        if (!strcmp(p, "</s>")) s.eos_id = (int)i;
        if (!strcmp(p, "<s>")) s.bos_id = (int)i;
        if (!strcmp(p, "<pad>")) s.pad_id = (int)i;
        if (pl_add(&l, p, pl, (float)json_number_value(sc), ty)) { free(special); goto fail; }
    }
    free(special);
    if (json_normalizer(t, json_object_get(root, "normalizer"), &s, &charsmap)) goto fail;
    json_pretok(json_object_get(root, "pre_tokenizer"), &s);
    take_pieces(t, &l);
    if (finish_model(t, &s)) goto fail;
    free(charsmap);
    json_decref(root);
    return t;
fail:
    free(charsmap);
    pl_free(&l);
    if (root) json_decref(root);
    hb_tokenizer_free(t);
    return NULL;
}

/* ---------------------------------------------------------------- loading entry points */

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { hb_error("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        hb_error("%s: not a regular file", path);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) { fclose(f); hb_error("%s: out of memory", path); return NULL; }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != (size_t)st.st_size) { free(buf); hb_error("%s: read error", path); return NULL; }
    buf[got] = 0;
    *n = got;
    return buf;
}

/* Text-encoder safetensors files (ComfyUI's umT5) carry the spiece.model bytes as a uint8 tensor. */
static hb_tokenizer *load_checkpoint(const char *path) {
    hb_checkpoint *ck = hb_checkpoint_open(path);
    if (!ck) return NULL;
    hb_tokenizer *t = NULL;
    hb_tensor x;
    if (!hb_checkpoint_has(ck, "spiece_model")) {
        hb_error("%s: no tensor 'spiece_model' (the SentencePiece model some text-encoder files carry)", path);
    } else if (hb_checkpoint_get(ck, "spiece_model", &x) == 0) {
        if ((x.dtype != HB_U8 && x.dtype != HB_I8) || x.ndim != 1 || !hb_tensor_is_contiguous(&x)) {
            hb_error("%s: tensor 'spiece_model' is not a 1-D uint8 tensor", path);
        } else {
            char name[600];
            snprintf(name, sizeof name, "%s:spiece_model", path);
            t = load_spm((const uint8_t *)x.data, (size_t)x.shape[0], name);
        }
    }
    hb_checkpoint_close(ck);
    return t;
}

hb_tokenizer *hb_tokenizer_load(const char *path) {
    size_t pl = strlen(path);
    if (pl > 12 && !strcmp(path + pl - 12, ".safetensors")) return load_checkpoint(path);
    size_t n;
    char *buf = read_file(path, &n);
    if (!buf) return NULL;
    if (n == 0) { free(buf); hb_error("%s: empty tokenizer file", path); return NULL; }
    size_t i = 0;
    while (i < n && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')) i++;
    hb_tokenizer *t = (i < n && buf[i] == '{') ? load_json(buf, n, path) : load_spm((const uint8_t *)buf, n, path);
    free(buf);
    return t;
}

hb_tokenizer *hb_tokenizer_open_dir(const char *dir, char *found, size_t cap) {
    static const char *subs[] = {"", "/google/umt5-xxl", "/tokenizer"};
    static const char *files[] = {"spiece.model", "tokenizer.json"};
    char p[4096];
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode)) { /* a file given where a folder was expected */
        if (found && cap) snprintf(found, cap, "%s", dir);
        return hb_tokenizer_load(dir);
    }
    for (int f = 0; f < 2; f++)
        for (int s = 0; s < 3; s++) {
            snprintf(p, sizeof p, "%s%s/%s", dir, subs[s], files[f]);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                if (found && cap) snprintf(found, cap, "%s", p);
                return hb_tokenizer_load(p);
            }
        }
    hb_error("%s: no spiece.model or tokenizer.json in the folder, google/umt5-xxl/ or tokenizer/", dir);
    return NULL;
}

void hb_tokenizer_free(hb_tokenizer *t) {
    if (!t) return;
    free(t->pool); free(t->poff); free(t->plen); free(t->score); free(t->type);
    free(t->da); free(t->norm_str);
    free(t->t_child); free(t->t_nchild); free(t->t_value); free(t->t_label);
    free(t);
}

int hb_tokenizer_vocab_size(const hb_tokenizer *t) { return t->npieces; }
int hb_tokenizer_eos_id(const hb_tokenizer *t) { return t->eos_id; }
int hb_tokenizer_pad_id(const hb_tokenizer *t) { return t->pad_id; }
int hb_tokenizer_unk_id(const hb_tokenizer *t) { return t->unk_id; }
int hb_tokenizer_bos_id(const hb_tokenizer *t) { return t->bos_id; }
bool hb_tokenizer_byte_fallback(const hb_tokenizer *t) { return t->byte_fallback; }
const char *hb_tokenizer_piece(const hb_tokenizer *t, int id, int *type) {
    if (id < 0 || id >= t->npieces) return NULL;
    if (type) *type = t->type[id];
    return P(t, id);
}

/* ---------------------------------------------------------------- normaliser */

/* Longest match in the precompiled charsmap (Darts double array); returns matched byte length (0: none)
 * and the offset of the replacement in norm_str. Every array access is bounds-checked. */
static size_t charsmap_match(const hb_tokenizer *t, const uint8_t *s, size_t len, uint32_t *value) {
    const uint32_t *a = t->da;
    size_t U = t->da_units, best = 0;
    uint32_t unit = a[0];
    size_t pos = (unit >> 10) << ((unit & (1u << 9)) >> 6);
    for (size_t i = 0; i < len; i++) {
        pos ^= s[i];
        if (pos >= U) break;
        unit = a[pos];
        if ((unit & ((1u << 31) | 0xFF)) != s[i]) break;
        pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
        if ((unit >> 8) & 1) {
            if (pos >= U) break;
            uint32_t v = a[pos] & 0x7FFFFFFFu;
            if (v < t->norm_len) { best = i + 1; *value = v; }
        }
    }
    return best;
}

/* SentencePiece's NormalizePrefix: the normalised form of the longest prefix and the bytes consumed. */
static size_t normalize_prefix(const hb_tokenizer *t, const uint8_t *s, size_t len, const char **out, size_t *olen) {
    if (t->has_user_defined) {
        uint32_t v = 0;
        size_t best = 0;
        for (size_t i = 0; i < len; i++) {
            if (!(v = trie_next(t, v, s[i]))) break;
            int id = t->t_value[v];
            if (id >= 0 && t->type[id] == HB_PIECE_USER_DEFINED) best = i + 1;
        }
        if (best) { *out = (const char *)s; *olen = best; return best; }
    }
    size_t longest = 0;
    uint32_t val = 0;
    if (t->da) longest = charsmap_match(t, s, len, &val);
    if (longest == 0) {
        uint32_t cp;
        size_t mb;
        if (!decode_utf8(s, len, &cp, &mb)) { *out = "\xEF\xBF\xBD"; *olen = 3; return 1; }
        *out = (const char *)s;
        *olen = mb;
        return mb;
    }
    *out = t->norm_str + val;
    *olen = strlen(*out); /* norm_str is NUL-terminated at norm_len */
    return longest;
}

static char *normalize(const hb_tokenizer *t, const uint8_t *s, size_t len, size_t *out_len) {
    sbuf b = {0};
    static const char ws[] = "\xe2\x96\x81";
    if (len == 0) return sb_take(&b, out_len);
    const char *o;
    size_t ol;
    size_t pos = 0;
    if (t->remove_extra_ws)
        while (pos < len) {
            size_t c = normalize_prefix(t, s + pos, len - pos, &o, &ol);
            if (!(ol == 1 && o[0] == ' ')) break;
            pos += c;
        }
    if (pos == len) return sb_take(&b, out_len);
    if (!t->treat_ws_suffix && t->add_dummy_prefix) sb_put(&b, t->escape_ws ? ws : " ", t->escape_ws ? 3 : 1);
    bool prev_space = t->remove_extra_ws;
    while (pos < len) {
        size_t c = normalize_prefix(t, s + pos, len - pos, &o, &ol);
        while (prev_space && ol > 0 && o[0] == ' ') { o++; ol--; }
        if (ol > 0) {
            if (t->escape_ws) {
                size_t k = 0;
                for (size_t j = 0; j < ol; j++)
                    if (o[j] == ' ') {
                        sb_put(&b, o + k, j - k);
                        sb_put(&b, ws, 3);
                        k = j + 1;
                    }
                sb_put(&b, o + k, ol - k);
            } else {
                sb_put(&b, o, ol);
            }
            prev_space = o[ol - 1] == ' ';
        }
        pos += c;
        if (!t->remove_extra_ws) prev_space = false;
    }
    if (t->remove_extra_ws && !b.oom) {
        size_t sl = t->escape_ws ? 3 : 1;
        const char *sp = t->escape_ws ? ws : " ";
        while (b.n >= sl && !memcmp(b.p + b.n - sl, sp, sl)) b.n -= sl;
        if (b.p) b.p[b.n] = 0;
    }
    if (t->treat_ws_suffix && t->add_dummy_prefix) sb_put(&b, t->escape_ws ? ws : " ", t->escape_ws ? 3 : 1);
    return sb_take(&b, out_len);
}

char *hb_tokenizer_normalize(const hb_tokenizer *t, const char *text, size_t len, size_t *out_len) {
    return normalize(t, (const uint8_t *)text, len, out_len);
}

/* ---------------------------------------------------------------- unigram Viterbi */

typedef struct { int32_t *v; int n, cap; bool oom; } ivec;
static void iv_push(ivec *a, int32_t x) {
    if (a->oom) return;
    if (a->n == a->cap) {
        int c = a->cap ? a->cap * 2 : 64;
        int32_t *q = realloc(a->v, c * sizeof *q);
        if (!q) { a->oom = true; return; }
        a->v = q;
        a->cap = c;
    }
    a->v[a->n++] = x;
}

int hb_tokenizer_encode(const hb_tokenizer *t, const char *text, size_t len, int32_t **ids_out, int *n_out) {
    *ids_out = NULL;
    *n_out = 0;
    if (len > (size_t)INT32_MAX / 8) return hb_error("tokenizer: input of %zu bytes is too long", len);
    size_t N;
    char *norm = normalize(t, (const uint8_t *)text, len, &N);
    if (!norm) return -1;
    const uint8_t *s = (const uint8_t *)norm;
    ivec out = {0};
    if (N > 0) {
        float *best = malloc((N + 1) * sizeof *best);
        int32_t *start = malloc((N + 1) * sizeof *start), *pid = malloc((N + 1) * sizeof *pid);
        if (!best || !start || !pid) {
            free(best); free(start); free(pid); free(norm);
            return hb_error("tokenizer: out of memory");
        }
        for (size_t i = 0; i <= N; i++) { best[i] = 0; start[i] = -1; pid[i] = -1; }
        const float unk_score = t->min_score - 10.0f;
        size_t at = 0;
        while (at < N) {
            const float till = best[at];
            bool single = false;
            size_t mblen = (size_t)one_char_len(s[at]);
            if (mblen > N - at) mblen = N - at;
            uint32_t v = 0;
            for (size_t k = at; k < N;) {
                if (!(v = trie_next(t, v, s[k]))) break;
                k++;
                int id = t->t_value[v];
                if (id < 0 || t->type[id] == HB_PIECE_UNUSED) continue;
                size_t length = k - at;
                /* SentencePiece's piece score has type double (its user-defined branch is double), so
                 * the candidate is a double sum compared with the stored float and rounded when stored;
                 * this decides exact ties of float sums the way SentencePiece does. */
                double sc = t->type[id] == HB_PIECE_USER_DEFINED ? (double)((float)length * t->max_score) - 0.1
                                                                 : (double)t->score[id];
                double cand = sc + (double)till;
                if (start[k] == -1 || cand > (double)best[k]) { best[k] = (float)cand; start[k] = (int32_t)at; pid[k] = id; }
                if (length == mblen) single = true;
            }
            if (!single) {
                size_t k = at + mblen;
                float cand = unk_score + till;
                if (start[k] == -1 || cand > best[k]) { best[k] = cand; start[k] = (int32_t)at; pid[k] = t->unk_id; }
            }
            at += mblen;
        }
        /* backtrack: collect end positions, then emit forward */
        ivec ends = {0};
        for (int64_t e = (int64_t)N; e > 0; e = start[e]) {
            if (start[e] < 0) { free(ends.v); free(best); free(start); free(pid); free(norm);
                                return hb_error("tokenizer: internal error: no path"); }
            iv_push(&ends, (int32_t)e);
        }
        bool prev_unk = false;
        for (int j = ends.n - 1; j >= 0 && !ends.oom; j--) {
            int32_t e = ends.v[j], b0 = start[e], id = pid[e];
            bool is_unk = t->type[id] == HB_PIECE_UNKNOWN;
            if (t->type[id] == HB_PIECE_CONTROL) iv_push(&out, id);
            else if (is_unk && t->byte_fallback) {
                for (int32_t q = b0; q < e; q++) iv_push(&out, t->byte_id[s[q]]);
            } else if (!(is_unk && prev_unk)) iv_push(&out, id);
            prev_unk = is_unk;
        }
        bool oom = ends.oom;
        free(ends.v); free(best); free(start); free(pid);
        if (oom) { free(out.v); free(norm); return hb_error("tokenizer: out of memory"); }
    }
    free(norm);
    iv_push(&out, t->eos_id);
    if (out.oom) { free(out.v); return hb_error("tokenizer: out of memory"); }
    *ids_out = out.v;
    *n_out = out.n;
    return 0;
}

int hb_tokenizer_encode_padded(const hb_tokenizer *t, const char *text, bool clean, int text_len,
                               int32_t *ids, int32_t *mask) {
    if (text_len < 1) return hb_error("tokenizer: text_len %d must be >= 1", text_len);
    char *c = NULL;
    if (clean) { c = hb_prompt_clean(text); if (!c) return -1; text = c; }
    int32_t *v;
    int n;
    int rc = hb_tokenizer_encode(t, text, strlen(text), &v, &n);
    free(c);
    if (rc) return -1;
    if (n > text_len) { v[text_len - 1] = t->eos_id; n = text_len; } /* keep EOS last */
    for (int i = 0; i < text_len; i++) {
        ids[i] = i < n ? v[i] : t->pad_id;
        if (mask) mask[i] = i < n;
    }
    free(v);
    return n;
}

int hb_tokenizer_encode_padded_i64(const hb_tokenizer *t, const char *text, bool clean, int text_len,
                                   int64_t *ids, uint8_t *mask) {
    if (text_len < 1) return hb_error("tokenizer: text_len %d must be >= 1", text_len);
    int32_t *v = malloc((size_t)text_len * sizeof *v), *m = malloc((size_t)text_len * sizeof *m);
    if (!v || !m) { free(v); free(m); return hb_error("tokenizer: out of memory"); }
    int n = hb_tokenizer_encode_padded(t, text, clean, text_len, v, m);
    if (n >= 0)
        for (int i = 0; i < text_len; i++) {
            ids[i] = v[i];
            if (mask) mask[i] = (uint8_t)m[i];
        }
    free(v);
    free(m);
    return n;
}

/* ---------------------------------------------------------------- prompt cleaning */

/* cp1252 for 0x80..0x9F (0 = undefined), used by html numeric references and the C1 fix. */
static const uint16_t k_cp1252[32] = {
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};

typedef struct { const char *name; uint32_t cp; } entity;
/* Latin-1 entities (HTML 4, also accepted without ';' by Python), in code point order from U+00A0. */
static const char *const k_latin1[96] = {
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not",
    "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil", "sup1",
    "ordm", "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml",
    "Aring", "AElig", "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH",
    "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc",
    "Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
    "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute",
    "ocirc", "otilde", "ouml", "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml"};
/* Entities Python accepts without a trailing ';' besides Latin-1. */
static const entity k_legacy[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"AMP", '&'},
                                  {"LT", '<'}, {"GT", '>'}, {"QUOT", '"'}, {"COPY", 0xA9}, {"REG", 0xAE}};
/* Other common named entities (require ';'). */
static const entity k_named[] = {
    {"apos", '\''}, {"OElig", 0x152}, {"oelig", 0x153}, {"Scaron", 0x160}, {"scaron", 0x161}, {"Yuml", 0x178},
    {"fnof", 0x192}, {"circ", 0x2C6}, {"tilde", 0x2DC}, {"ensp", 0x2002}, {"emsp", 0x2003}, {"thinsp", 0x2009},
    {"zwnj", 0x200C}, {"zwj", 0x200D}, {"lrm", 0x200E}, {"rlm", 0x200F}, {"ndash", 0x2013}, {"mdash", 0x2014},
    {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"sbquo", 0x201A}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
    {"bdquo", 0x201E}, {"dagger", 0x2020}, {"Dagger", 0x2021}, {"bull", 0x2022}, {"hellip", 0x2026},
    {"permil", 0x2030}, {"prime", 0x2032}, {"Prime", 0x2033}, {"lsaquo", 0x2039}, {"rsaquo", 0x203A},
    {"oline", 0x203E}, {"frasl", 0x2044}, {"euro", 0x20AC}, {"image", 0x2111}, {"weierp", 0x2118},
    {"real", 0x211C}, {"trade", 0x2122}, {"TRADE", 0x2122}, {"alefsym", 0x2135}, {"larr", 0x2190}, {"uarr", 0x2191},
    {"rarr", 0x2192}, {"darr", 0x2193}, {"harr", 0x2194}, {"crarr", 0x21B5}, {"lArr", 0x21D0}, {"uArr", 0x21D1},
    {"rArr", 0x21D2}, {"dArr", 0x21D3}, {"hArr", 0x21D4}, {"forall", 0x2200}, {"part", 0x2202}, {"exist", 0x2203},
    {"empty", 0x2205}, {"nabla", 0x2207}, {"isin", 0x2208}, {"notin", 0x2209}, {"ni", 0x220B}, {"prod", 0x220F},
    {"sum", 0x2211}, {"minus", 0x2212}, {"lowast", 0x2217}, {"radic", 0x221A}, {"prop", 0x221D},
    {"infin", 0x221E}, {"ang", 0x2220}, {"and", 0x2227}, {"or", 0x2228}, {"cap", 0x2229}, {"cup", 0x222A},
    {"int", 0x222B}, {"there4", 0x2234}, {"sim", 0x223C}, {"cong", 0x2245}, {"asymp", 0x2248}, {"ne", 0x2260},
    {"equiv", 0x2261}, {"le", 0x2264}, {"ge", 0x2265}, {"sub", 0x2282}, {"sup", 0x2283}, {"nsub", 0x2284},
    {"sube", 0x2286}, {"supe", 0x2287}, {"oplus", 0x2295}, {"otimes", 0x2297}, {"perp", 0x22A5},
    {"sdot", 0x22C5}, {"lceil", 0x2308}, {"rceil", 0x2309}, {"lfloor", 0x230A}, {"rfloor", 0x230B},
    {"lang", 0x27E8}, {"rang", 0x27E9}, {"loz", 0x25CA}, {"spades", 0x2660}, {"clubs", 0x2663},
    {"hearts", 0x2665}, {"diams", 0x2666}, {"Alpha", 0x391}, {"Beta", 0x392}, {"Gamma", 0x393}, {"Delta", 0x394},
    {"Epsilon", 0x395}, {"Zeta", 0x396}, {"Eta", 0x397}, {"Theta", 0x398}, {"Iota", 0x399}, {"Kappa", 0x39A},
    {"Lambda", 0x39B}, {"Mu", 0x39C}, {"Nu", 0x39D}, {"Xi", 0x39E}, {"Omicron", 0x39F}, {"Pi", 0x3A0},
    {"Rho", 0x3A1}, {"Sigma", 0x3A3}, {"Tau", 0x3A4}, {"Upsilon", 0x3A5}, {"Phi", 0x3A6}, {"Chi", 0x3A7},
    {"Psi", 0x3A8}, {"Omega", 0x3A9}, {"alpha", 0x3B1}, {"beta", 0x3B2}, {"gamma", 0x3B3}, {"delta", 0x3B4},
    {"epsilon", 0x3B5}, {"zeta", 0x3B6}, {"eta", 0x3B7}, {"theta", 0x3B8}, {"iota", 0x3B9}, {"kappa", 0x3BA},
    {"lambda", 0x3BB}, {"mu", 0x3BC}, {"nu", 0x3BD}, {"xi", 0x3BE}, {"omicron", 0x3BF}, {"pi", 0x3C0},
    {"rho", 0x3C1}, {"sigmaf", 0x3C2}, {"sigma", 0x3C3}, {"tau", 0x3C4}, {"upsilon", 0x3C5}, {"phi", 0x3C6},
    {"chi", 0x3C7}, {"psi", 0x3C8}, {"omega", 0x3C9}, {"thetasym", 0x3D1}, {"upsih", 0x3D2}, {"piv", 0x3D6},
    {"Tab", 9}, {"NewLine", 10}, {"excl", '!'}, {"num", '#'}, {"dollar", '$'}, {"percnt", '%'}, {"lpar", '('},
    {"rpar", ')'}, {"ast", '*'}, {"plus", '+'}, {"comma", ','}, {"period", '.'}, {"sol", '/'}, {"colon", ':'},
    {"semi", ';'}, {"equals", '='}, {"quest", '?'}, {"commat", '@'}, {"lsqb", '['}, {"bsol", '\\'},
    {"rsqb", ']'}, {"Hat", '^'}, {"lowbar", '_'}, {"grave", '`'}, {"lcub", '{'}, {"verbar", '|'}, {"rcub", '}'},
    {"hyphen", 0x2010}, {"dash", 0x2010}, {"star", 0x2606}, {"starf", 0x2605}, {"check", 0x2713},
    {"cross", 0x2717}, {"deg", 0xB0}, {"half", 0xBD}, {"centerdot", 0xB7}};

/* Named entity lookup: exact name (n bytes) with ';' -> any table; without ';' -> legacy tables. */
static bool entity_lookup(const char *nm, size_t n, bool semi, uint32_t *cp) {
    for (int i = 0; i < 96; i++)
        if (strlen(k_latin1[i]) == n && !memcmp(k_latin1[i], nm, n)) { *cp = 0xA0 + (uint32_t)i; return true; }
    for (size_t i = 0; i < sizeof k_legacy / sizeof *k_legacy; i++)
        if (strlen(k_legacy[i].name) == n && !memcmp(k_legacy[i].name, nm, n)) { *cp = k_legacy[i].cp; return true; }
    if (!semi) return false;
    for (size_t i = 0; i < sizeof k_named / sizeof *k_named; i++)
        if (strlen(k_named[i].name) == n && !memcmp(k_named[i].name, nm, n)) { *cp = k_named[i].cp; return true; }
    return false;
}

/* Python html._replace_charref rules for numeric references. Returns false when the reference maps to
 * nothing (invalid code points that Python drops). */
static bool numeric_ref(uint64_t v, uint32_t *cp) {
    if (v >= 0x80 && v <= 0x9F) { *cp = k_cp1252[v - 0x80] ? k_cp1252[v - 0x80] : (uint32_t)v; return true; }
    if (v == 0 || v == 0x0D || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) {
        *cp = v == 0x0D ? 0x0D : 0xFFFD;
        return true;
    }
    if ((v >= 0x1 && v <= 0x8) || (v >= 0xE && v <= 0x1F) || (v >= 0x7F && v <= 0x9F) ||
        (v >= 0xFDD0 && v <= 0xFDEF) || v == 0xB || (v & 0xFFFE) == 0xFFFE)
        return false;
    *cp = (uint32_t)v;
    return true;
}

char *hb_html_unescape(const char *text) {
    sbuf b = {0};
    const char *s = text;
    while (*s) {
        if (*s != '&') {
            const char *amp = strchr(s, '&');
            size_t k = amp ? (size_t)(amp - s) : strlen(s);
            sb_put(&b, s, k);
            s += k;
            continue;
        }
        const char *q = s + 1;
        if (*q == '#') {
            q++;
            bool hex = (*q == 'x' || *q == 'X');
            if (hex) q++;
            const char *d = q;
            uint64_t v = 0;
            while (hex ? ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F'))
                       : (*q >= '0' && *q <= '9')) {
                int dv = *q <= '9' ? *q - '0' : (*q | 32) - 'a' + 10;
                if (v < (1ull << 40)) v = v * (hex ? 16 : 10) + (uint64_t)dv;
                q++;
            }
            if (q == d) { sb_put(&b, "&", 1); s++; continue; }
            if (*q == ';') q++;
            uint32_t cp;
            if (numeric_ref(v, &cp)) sb_cp(&b, cp);
            s = q;
            continue;
        }
        /* named: up to 32 chars not in "\t\n\f <&#;", then optional ';' */
        const char *e = q;
        while (*e && (e - q) < 32 && !strchr("\t\n\f <&#;", *e)) e++;
        size_t n = (size_t)(e - q);
        uint32_t cp;
        if (n && *e == ';' && entity_lookup(q, n, true, &cp)) { sb_cp(&b, cp); s = e + 1; continue; }
        /* longest legacy prefix */
        bool done = false;
        for (size_t k = n; k > 0; k--)
            if (entity_lookup(q, k, false, &cp)) {
                sb_cp(&b, cp);
                s = q + k;
                done = true;
                break;
            }
        if (!done) { sb_put(&b, "&", 1); s++; }
    }
    return sb_take(&b, NULL);
}

/* Python str.isspace (strip) and the regex \s class (Unicode White_Space). */
static bool py_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
static bool re_space(uint32_t c) { return py_isspace(c) && !(c >= 0x1C && c <= 0x1F); }

/* Decode UTF-8 into code points (invalid bytes become U+FFFD, as Python's errors='replace'). */
static uint32_t *to_cps(const char *s, size_t *n) {
    size_t L = strlen(s);
    uint32_t *o = malloc((L + 1) * sizeof *o);
    if (!o) { hb_error("tokenizer: out of memory"); return NULL; }
    size_t k = 0;
    for (size_t i = 0; i < L;) {
        size_t mb;
        decode_utf8((const uint8_t *)s + i, L - i, &o[k++], &mb);
        i += mb;
    }
    *n = k;
    return o;
}

/* The part of ftfy.fix_text that is reproduced (see docs/tokenizer.md). */
static char *ftfy_subset(const char *text) {
    size_t n;
    uint32_t *c = to_cps(text, &n);
    if (!c) return NULL;
    sbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t x = c[i];
        /* fix_c1_controls: C1 controls decoded as Windows-1252 */
        if (x >= 0x80 && x <= 0x9F && k_cp1252[x - 0x80]) x = k_cp1252[x - 0x80];
        /* fix_latin_ligatures */
        static const char *const lig[] = {"ff", "fi", "fl", "ffi", "ffl", "\xc5\xbft", "st"};
        static const char *const dz[] = {"D\xc5\xbd", "D\xc5\xbe", "d\xc5\xbe", "LJ", "Lj", "lj", "NJ", "Nj", "nj"};
        if (x >= 0xFB00 && x <= 0xFB06) { sb_put(&b, lig[x - 0xFB00], strlen(lig[x - 0xFB00])); continue; }
        if (x >= 0x1C4 && x <= 0x1CC) { sb_put(&b, dz[x - 0x1C4], strlen(dz[x - 0x1C4])); continue; }
        if (x == 0x132) { sb_put(&b, "IJ", 2); continue; }
        if (x == 0x133) { sb_put(&b, "ij", 2); continue; }
        if (x == 0x149) { sb_put(&b, "\xca\xbcn", 3); continue; }
        /* fix_character_width: full-width ASCII and signs, the ideographic space */
        static const uint16_t wide_signs[7] = {0xA2, 0xA3, 0xAC, 0xAF, 0xA6, 0xA5, 0x20A9};
        if (x >= 0xFF01 && x <= 0xFF5E) x = x - 0xFF01 + 0x21;
        else if (x >= 0xFFE0 && x <= 0xFFE6) x = wide_signs[x - 0xFFE0];
        else if (x == 0x3000) x = ' ';
        /* uncurl_quotes */
        if (x == 0x2BC || (x >= 0x2018 && x <= 0x201B)) x = '\'';
        else if (x >= 0x201C && x <= 0x201F) x = '"';
        /* fix_line_breaks: \r\n, \r, U+2028, U+2029, U+0085 -> \n */
        if (x == '\r') { if (i + 1 < n && c[i + 1] == '\n') i++; x = '\n'; }
        else if (x == 0x2028 || x == 0x2029 || x == 0x85) x = '\n';
        /* remove_control_chars */
        if (x <= 8 || x == 0x0B || (x >= 0x0E && x <= 0x1F) || x == 0x7F || (x >= 0x206A && x <= 0x206F) ||
            x == 0xFEFF || (x >= 0xFFF9 && x <= 0xFFFC))
            continue;
        sb_cp(&b, x);
    }
    free(c);
    return sb_take(&b, NULL);
}

char *hb_prompt_clean(const char *text) {
    /* ftfy.fix_text: its own HTML unescape first ('auto': only when the text has no '<'), then the
     * reproduced fixes */
    char *u = strchr(text, '<') ? strdup(text) : hb_html_unescape(text);
    if (!u) return NULL;
    char *a = ftfy_subset(u);
    free(u);
    if (!a) return NULL;
    for (int k = 0; k < 2; k++) {
        u = hb_html_unescape(a);
        free(a);
        if (!(a = u)) return NULL;
    }
    size_t n;
    uint32_t *c = to_cps(a, &n);
    free(a);
    if (!c) return NULL;
    /* basic_clean's strip (isspace), then whitespace_clean: \s+ -> ' ', strip */
    size_t lo = 0, hi = n;
    while (lo < hi && py_isspace(c[lo])) lo++;
    while (hi > lo && py_isspace(c[hi - 1])) hi--;
    sbuf b = {0};
    bool in_ws = false;
    for (size_t i = lo; i < hi; i++) {
        if (re_space(c[i])) { in_ws = true; continue; }
        if (in_ws && b.n) sb_put(&b, " ", 1);
        in_ws = false;
        sb_cp(&b, c[i]);
    }
    /* a leading run of \s became ' ' and was stripped; a trailing one too (handled by in_ws) */
    free(c);
    /* the final strip also removes 0x1C..0x1F at the ends, which \s did not collapse */
    char *r = sb_take(&b, NULL);
    if (!r) return NULL;
    size_t m;
    uint32_t *d = to_cps(r, &m);
    if (!d) { free(r); return NULL; }
    size_t a0 = 0, a1 = m;
    while (a0 < a1 && py_isspace(d[a0])) a0++;
    while (a1 > a0 && py_isspace(d[a1 - 1])) a1--;
    if (a0 == 0 && a1 == m) { free(d); return r; }
    sbuf o = {0};
    for (size_t i = a0; i < a1; i++) sb_cp(&o, d[i]);
    free(d);
    free(r);
    return sb_take(&o, NULL);
}
