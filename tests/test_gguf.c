/* gguf: the GGUF reader and writer. A written file reads back (types, PyTorch shapes, bytes, zero copy,
 * metadata); hand-built files cover v2, every metadata value type with nested arrays, general.alignment,
 * comfy.gguf.orig_shape and the model. prefixes; hostile files (truncated at every byte, bad magic and
 * version, offsets past the end, overlapping and misaligned tensors, too many dims, overflowing and negative
 * shapes, bad string and array lengths, unknown value and tensor types, partial blocks, duplicate names, bad
 * alignment) are each refused with one message naming the file. The ggml reference files (../shared/quant)
 * run through hb golden when present. */
#include "testlib.h"
#include "io/checkpoint.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

/* ---------- a GGUF byte builder ---------- */

typedef struct { uint8_t *p; size_t n, cap; } buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(1);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { uint8_t x[4]; for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> 8 * i); put(b, x, 4); }
static void u64(buf *b, uint64_t v) { uint8_t x[8]; for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> 8 * i); put(b, x, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void pad(buf *b, size_t a) { while (b->n % a) put(b, "", 1); }

typedef struct { const char *name; int nd; uint64_t dims[8]; uint32_t type; uint64_t off; } tin;

static void tinfo(buf *b, const tin *t) {
    str(b, t->name);
    u32(b, (uint32_t)t->nd);
    for (int i = 0; i < t->nd; i++) u64(b, t->dims[i]);
    u32(b, t->type);
    u64(b, t->off);
}

/* A valid file: two tensors, F32 [4, 8] (dims 8, 4) at 0 and Q8_0 [2, 32] at 128, one string key. Variants
 * change one field through the hooks below. */
typedef struct {
    uint32_t version, align;
    uint64_t ntensors_delta;
    tin t[2];
    const char *extra_key; uint32_t extra_type; buf extra_val;
} spec;

static spec base_spec(void) {
    spec s;
    memset(&s, 0, sizeof s);
    s.version = 3;
    s.align = 32;
    s.t[0] = (tin){"blocks.0.ffn.0.weight", 2, {8, 4}, 0, 0};
    s.t[1] = (tin){"blocks.0.ffn.2.weight", 2, {32, 2}, 8, 128};
    return s;
}

static buf build(const spec *s, hb_rng *r) {
    buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, s->version);
    u64(&b, 2 + s->ntensors_delta);
    u64(&b, 1 + (s->extra_key != NULL));
    str(&b, "general.architecture");
    u32(&b, 8);
    str(&b, "wan");
    if (s->extra_key) {
        str(&b, s->extra_key);
        u32(&b, s->extra_type);
        put(&b, s->extra_val.p, s->extra_val.n);
    }
    for (int i = 0; i < 2; i++) tinfo(&b, &s->t[i]);
    pad(&b, s->align);
    size_t data = b.n;
    uint8_t chunk[256];
    for (int i = 0; i < 256; i++) chunk[i] = (uint8_t)hb_rng_u64(r);
    for (int i = 0; i < 128; i += 4) chunk[i + 3] = 0x3f; /* f32 values in [0.5, 2) */
    chunk[128] = 0x00; chunk[129] = 0x2c;                 /* Q8_0 block scales (f16 0.0625) */
    chunk[128 + 34] = 0x00; chunk[128 + 35] = 0x2c;
    put(&b, chunk, 128 + 68);
    pad(&b, s->align);
    (void)data;
    return b;
}

static const char *write_tmp(const char *name, const buf *b) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", tl_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    if (b->n) fwrite(b->p, 1, b->n, f);
    fclose(f);
    return path;
}

/* The file must be refused with one message naming the file and containing `what`. */
static void expect_refused(const char *label, const buf *b, const char *what) {
    const char *path = write_tmp("hostile.gguf", b);
    hb_clear_error();
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck == NULL, "%s: accepted", label);
    if (ck) { hb_checkpoint_close(ck); return; }
    const char *e = hb_last_error();
    CHECKF(strstr(e, path) != NULL, "%s: message does not name the file: %s", label, e);
    CHECKF(!what || strstr(e, what) != NULL, "%s: message lacks '%s': %s", label, what, e);
    CHECKF(strchr(e, '\n') == NULL, "%s: message is not one line: %s", label, e);
}

static void check_valid_base(hb_rng *r) {
    spec s = base_spec();
    buf b = build(&s, r);
    const char *path = write_tmp("base.gguf", &b);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "base file refused: %s", hb_last_error());
    if (!ck) return;
    hb_tensor t;
    CHECK(hb_checkpoint_get(ck, "blocks.0.ffn.0.weight", &t) == 0 && t.dtype == HB_F32 && t.ndim == 2 &&
          t.shape[0] == 4 && t.shape[1] == 8);
    CHECK(hb_checkpoint_get(ck, "blocks.0.ffn.2.weight", &t) == 0 && t.dtype == HB_Q8_0 && t.shape[0] == 2 &&
          t.shape[1] == 32 && hb_tensor_nbytes(&t) == 68);
    CHECK(hb_checkpoint_metadata(ck, "general.architecture") && !strcmp(hb_checkpoint_metadata(ck, "general.architecture"), "wan"));
    hb_checkpoint_close(ck);
    /* every truncation of a valid file is refused (the data section is needed whole) */
    int refused = 0, total = 0;
    for (size_t cut = 0; cut < b.n - 32; cut++) {
        buf t2 = {b.p, cut, b.n};
        const char *p = write_tmp("cut.gguf", &t2);
        hb_checkpoint *c2 = hb_checkpoint_open(p);
        total++;
        if (!c2 && strstr(hb_last_error(), p)) refused++;
        if (c2) hb_checkpoint_close(c2);
    }
    CHECKF(refused == total, "%d of %d truncated files refused with a message", refused, total);
    free(b.p);
}

static void check_hostile(hb_rng *r) {
    buf b;
    spec s;
#define CASE(label, what, mutate) do { s = base_spec(); mutate; b = build(&s, r); expect_refused(label, &b, what); free(b.p); free(s.extra_val.p); } while (0)
    CASE("version 1", "version 1", s.version = 1);
    CASE("version 4", "version 4", s.version = 4);
    CASE("offset past the end", "past the end", s.t[1].off = 4096);
    CASE("offset overflowing", "past the end", s.t[1].off = UINT64_MAX - 31);
    CASE("overlap", "overlap", s.t[1].off = 96);
    CASE("misaligned offset", "alignment", s.t[1].off = 130);
    CASE("too many dims", "dimensions", (s.t[0].nd = 7, s.t[0].dims[2] = s.t[0].dims[3] = s.t[0].dims[4] = s.t[0].dims[5] = s.t[0].dims[6] = 1));
    CASE("overflowing shape", "overflow", (s.t[0].dims[0] = 1ull << 32, s.t[0].dims[1] = 1ull << 32));
    CASE("wrapping byte size", "overflow", (s.t[0].dims[0] = 1ull << 31, s.t[0].dims[1] = 1ull << 31));
    CASE("negative dim", "negative", s.t[0].dims[1] = (uint64_t)-4);
    CASE("size past the end", "past the end", s.t[0].dims[1] = 1000);
    CASE("partial block", "whole number", s.t[1].dims[0] = 48);
    CASE("removed type", "removed", s.t[0].type = 4);
    CASE("unknown type", "not a ggml type", s.t[0].type = 99);
    CASE("unsupported type", "does not read", s.t[0].type = 16);
    CASE("duplicate names", "duplicate", s.t[1].name = s.t[0].name);
    CASE("empty name", "empty name", s.t[0].name = "");
    CASE("extra tensor count", NULL, s.ntensors_delta = 1);
    CASE("huge tensor count", "tensor count", s.ntensors_delta = 1ull << 60);
    CASE("alignment 0", "power of two", (s.extra_key = "general.alignment", s.extra_type = 4, u32(&s.extra_val, 0)));
    CASE("alignment 48", "power of two", (s.extra_key = "general.alignment", s.extra_type = 4, u32(&s.extra_val, 48)));
    CASE("alignment as u64", "power of two", (s.extra_key = "general.alignment", s.extra_type = 10, u64(&s.extra_val, 32)));
    CASE("duplicate key", "duplicate key", (s.extra_key = "general.architecture", s.extra_type = 8, u64(&s.extra_val, 3), put(&s.extra_val, "wan", 3)));
    CASE("unknown value type", "unknown value type", (s.extra_key = "x", s.extra_type = 13, u32(&s.extra_val, 0)));
    CASE("string length past the end", "length", (s.extra_key = "x", s.extra_type = 8, u64(&s.extra_val, 1ull << 40)));
    CASE("string length huge", "length", (s.extra_key = "x", s.extra_type = 8, u64(&s.extra_val, UINT64_MAX)));
    CASE("array count huge", "does not fit", (s.extra_key = "x", s.extra_type = 9, u32(&s.extra_val, 5), u64(&s.extra_val, 1ull << 62)));
    CASE("array element type", "unknown array element type", (s.extra_key = "x", s.extra_type = 9, u32(&s.extra_val, 77), u64(&s.extra_val, 1)));
    CASE("orig_shape not i32", "array of i32", (s.extra_key = "comfy.gguf.orig_shape.blocks.0.ffn.0.weight", s.extra_type = 9,
                                                u32(&s.extra_val, 4), u64(&s.extra_val, 2), u32(&s.extra_val, 4), u32(&s.extra_val, 8)));
    CASE("orig_shape count", "elements", (s.extra_key = "comfy.gguf.orig_shape.blocks.0.ffn.0.weight", s.extra_type = 9,
                                          u32(&s.extra_val, 5), u64(&s.extra_val, 2), u32(&s.extra_val, 4), u32(&s.extra_val, 9)));
    CASE("orig_shape splits blocks", "split", (s.extra_key = "comfy.gguf.orig_shape.blocks.0.ffn.2.weight", s.extra_type = 9,
                                               u32(&s.extra_val, 5), u64(&s.extra_val, 2), u32(&s.extra_val, 4), u32(&s.extra_val, 16)));
    {   /* arrays nested past the depth limit */
        s = base_spec();
        s.extra_key = "deep";
        s.extra_type = 9;
        for (int i = 0; i < 12; i++) { u32(&s.extra_val, 9); u64(&s.extra_val, 1); }
        u32(&s.extra_val, 0); u64(&s.extra_val, 0);
        b = build(&s, r);
        expect_refused("nested too deep", &b, "nested");
        free(b.p);
        free(s.extra_val.p);
    }
    {   /* bad magic, and a key length running past the end */
        s = base_spec();
        b = build(&s, r);
        memcpy(b.p, "GGUG", 4);
        expect_refused("bad magic", &b, "magic");
        memcpy(b.p, "GGUF", 4);
        b.p[24] = 0xff; b.p[25] = 0xff; b.p[26] = 0xff; /* first key's length */
        expect_refused("key length", &b, "length");
        free(b.p);
    }
#undef CASE
}

/* v2, every value type (nested arrays too), alignment 64, orig_shape, prefixes, a 5-D tensor. */
static void check_conventions(hb_rng *r) {
    buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, 2);
    u64(&b, 3);
    u64(&b, 15);
    str(&b, "general.alignment"); u32(&b, 4); u32(&b, 64);
    str(&b, "k.u8"); u32(&b, 0); put(&b, "\xff", 1);
    str(&b, "k.i8"); u32(&b, 1); put(&b, "\xfe", 1);
    str(&b, "k.u16"); u32(&b, 2); put(&b, "\x34\x12", 2);
    str(&b, "k.i16"); u32(&b, 3); put(&b, "\xff\xff", 2);
    str(&b, "k.u32"); u32(&b, 4); u32(&b, 4000000000u);
    str(&b, "k.i32"); u32(&b, 5); u32(&b, (uint32_t)-7);
    str(&b, "k.f32"); u32(&b, 6); u32(&b, 0x3fc00000u);
    str(&b, "k.bool"); u32(&b, 7); put(&b, "\x01", 1);
    str(&b, "k.str"); u32(&b, 8); str(&b, "hello");
    str(&b, "k.u64"); u32(&b, 10); u64(&b, 1ull << 40);
    str(&b, "k.i64"); u32(&b, 11); u64(&b, (uint64_t)-5);
    str(&b, "k.f64"); u32(&b, 12); u64(&b, 0x4004000000000000ull);
    str(&b, "k.nested"); u32(&b, 9); u32(&b, 9); u64(&b, 2);
    u32(&b, 8); u64(&b, 1); str(&b, "a");
    u32(&b, 0); u64(&b, 2); put(&b, "\x01\x02", 2);
    str(&b, "comfy.gguf.orig_shape.model.diffusion_model.patch_embedding.weight"); u32(&b, 9); u32(&b, 5); u64(&b, 5);
    u32(&b, 4); u32(&b, 2); u32(&b, 1); u32(&b, 2); u32(&b, 2);
    tin t0 = {"model.diffusion_model.patch_embedding.weight", 2, {8, 4}, 0, 0};
    tin t1 = {"model.head.modulation", 3, {8, 2, 1}, 0, 128};
    tin t2 = {"blocks.0.cross_attn.o.weight", 5, {32, 1, 1, 1, 2}, 8, 192};
    tinfo(&b, &t0); tinfo(&b, &t1); tinfo(&b, &t2);
    pad(&b, 64);
    size_t data = b.n;
    for (int i = 0; i < 320; i++) { uint8_t v = (uint8_t)hb_rng_u64(r); put(&b, &v, 1); }
    const char *path = write_tmp("conv.gguf", &b);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "conventions file refused: %s", hb_last_error());
    if (ck) {
        static const char *const want[][2] = {
            {"k.u8", "255"}, {"k.i8", "-2"}, {"k.u16", "4660"}, {"k.i16", "-1"}, {"k.u32", "4000000000"},
            {"k.i32", "-7"}, {"k.f32", "1.5"}, {"k.bool", "true"}, {"k.str", "hello"}, {"k.u64", "1099511627776"},
            {"k.i64", "-5"}, {"k.f64", "2.5"}, {"k.nested", "[[\"a\"], [1, 2]]"}, {"general.alignment", "64"},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            const char *v = hb_checkpoint_metadata(ck, want[i][0]);
            CHECKF(v && !strcmp(v, want[i][1]), "%s = %s, expected %s", want[i][0], v ? v : "(none)", want[i][1]);
        }
        hb_tensor t;
        CHECK(hb_checkpoint_get(ck, "patch_embedding.weight", &t) == 0 && t.ndim == 5 && t.shape[0] == 4 &&
              t.shape[1] == 2 && t.shape[4] == 2 && t.dtype == HB_F32);
        CHECK(!strcmp(hb_checkpoint_name(ck, 0), "patch_embedding.weight"));
        CHECK(hb_checkpoint_get(ck, "head.modulation", &t) == 0 && t.ndim == 3 && t.shape[0] == 1 && t.shape[1] == 2 &&
              t.shape[2] == 8);
        CHECK(hb_checkpoint_get(ck, "blocks.0.cross_attn.o.weight", &t) == 0 && t.dtype == HB_Q8_0 && t.ndim == 5 &&
              t.shape[0] == 2 && t.shape[4] == 32 && hb_tensor_nbytes(&t) == 68);
        /* the data of the second tensor starts 128 bytes into the 64-aligned data section */
        hb_tensor t1v;
        hb_checkpoint_get(ck, "head.modulation", &t1v);
        hb_checkpoint_get(ck, "patch_embedding.weight", &t);
        CHECK((uint8_t *)t1v.data - (uint8_t *)t.data == 128);
        CHECK(!memcmp(t1v.data, b.p + data + 128, 64));
        hb_checkpoint_close(ck);
    }
    free(b.p);
}

/* hb_gguf_write -> hb_checkpoint_open: every GGUF dtype, shapes with trailing 1s and 5 dims, metadata. */
static void check_round_trip(hb_rng *r) {
    const hb_dtype types[] = {HB_F32, HB_F16, HB_BF16, HB_Q4_0, HB_Q4_1, HB_Q5_0, HB_Q5_1, HB_Q8_0,
                              HB_Q2_K, HB_Q3_K, HB_Q4_K, HB_Q5_K, HB_Q6_K};
    enum { N = sizeof types / sizeof types[0] };
    hb_tensor ts[N];
    char names[N][64];
    const char *np[N];
    void *data[N];
    for (int i = 0; i < N; i++) {
        int64_t row = hb_dtype_block_elems(types[i]) * (1 + (int64_t)(hb_rng_u64(r) % 2));
        int64_t sh[5] = {1 + (int64_t)(hb_rng_u64(r) % 3), 2, 1, 1, row};
        int nd = i % 2 ? 5 : 2;
        if (nd == 2) sh[1] = row;
        ts[i] = hb_tensor_make(types[i], nd, sh, NULL);
        size_t nb = hb_tensor_nbytes(&ts[i]);
        data[i] = malloc(nb);
        for (size_t k = 0; k < nb; k++) ((uint8_t *)data[i])[k] = (uint8_t)hb_rng_u64(r);
        ts[i].data = data[i];
        snprintf(names[i], sizeof names[i], "blocks.%d.w", i);
        np[i] = names[i];
    }
    const int32_t orig[] = {3, 4};
    hb_gguf_kv kv[] = {{"general.architecture", HB_GGUF_STRING, "wan", 0, NULL, 0},
                       {"general.file_type", HB_GGUF_U32, NULL, 7, NULL, 0},
                       {"some.array", HB_GGUF_ARRAY_I32, NULL, 0, orig, 2}};
    char path[600];
    snprintf(path, sizeof path, "%s/rt.gguf", tl_tmpdir());
    CHECKF(hb_gguf_write(path, N, np, ts, NULL, NULL, kv, 3, 32) == 0, "%s", hb_last_error());
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (ck) {
        for (int i = 0; i < N; i++) {
            hb_tensor t;
            CHECK(hb_checkpoint_get(ck, names[i], &t) == 0);
            CHECKF(t.dtype == types[i] && hb_tensor_same_shape(&t, &ts[i]), "%s: dtype or shape differs", names[i]);
            CHECKF(!memcmp(t.data, data[i], hb_tensor_nbytes(&ts[i])), "%s: bytes differ", names[i]);
            CHECK(hb_checkpoint_zero_copy(ck, i) && (uintptr_t)t.data % 32 == 0);
        }
        CHECK(!strcmp(hb_checkpoint_metadata(ck, "general.file_type"), "7"));
        CHECK(!strcmp(hb_checkpoint_metadata(ck, "some.array"), "[3, 4]"));
        hb_checkpoint_close(ck);
    }
    /* a folder with one .gguf opens through it */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/gdir", tl_tmpdir());
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/dit.gguf'", dir, path, dir);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    ck = hb_checkpoint_open(dir);
    CHECKF(ck && hb_checkpoint_count(ck) == N, "folder: %s", ck ? "wrong count" : hb_last_error());
    if (ck) hb_checkpoint_close(ck);
    for (int i = 0; i < N; i++) free(data[i]);
}

/* hb_quantize reproduces ggml's quantizer: quantize every tensor of wan_F32.gguf to the type it has in
 * wan_<TYPE>.gguf and compare the bytes (all of them: ggml's reference quantizers are deterministic). */
static void check_quantizer_bytes(const char *qdir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/wan_F32.gguf", qdir);
    hb_checkpoint *src = hb_checkpoint_open(path);
    if (!src) return;
    static const char *const types[] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K",
                                        "Q4_K", "Q5_K", "Q6_K"};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        snprintf(path, sizeof path, "%s/wan_%s.gguf", qdir, types[k]);
        hb_checkpoint *q = hb_checkpoint_open(path);
        CHECKF(q != NULL, "%s", hb_last_error());
        if (!q) continue;
        for (int i = 0; i < hb_checkpoint_count(q); i++) {
            hb_tensor t = hb_checkpoint_tensor(q, i), f;
            CHECK(hb_checkpoint_get(src, hb_checkpoint_name(q, i), &f) == 0 && f.dtype == HB_F32);
            size_t nb = hb_tensor_nbytes(&t);
            uint8_t *ours = malloc(nb + 1);
            CHECK(hb_quantize(ours, f.data, t.dtype, hb_tensor_numel(&f)) == 0);
            size_t differ = 0;
            for (size_t b = 0; b < nb; b++) differ += ours[b] != ((const uint8_t *)t.data)[b];
            CHECKF(differ == 0, "quantize %s to %s: %zu of %zu bytes differ from ggml's", hb_checkpoint_name(q, i),
                   hb_dtype_name(t.dtype), differ, nb);
            free(ours);
        }
        hb_checkpoint_close(q);
    }
    hb_checkpoint_close(src);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_valid_base(&r);
    check_hostile(&r);
    check_conventions(&r);
    check_round_trip(&r);
    /* every reference file of ../shared/quant through the CLI (skipped when absent) */
    const char *sh = tl_shared_dir();
    char qdir[1024];
    snprintf(qdir, sizeof qdir, "%s/quant", sh ? sh : "");
    DIR *d = sh ? opendir(qdir) : NULL;
    int nref = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l < 12 || strcmp(de->d_name + l - 12, ".safetensors")) continue;
        char rel[512];
        snprintf(rel, sizeof rel, "quant/%s", de->d_name);
        tl_check_golden_cli(rel);
        nref++;
    }
    if (d) closedir(d);
    if (nref) check_quantizer_bytes(qdir);
    printf("%d ggml reference files run%s\n", nref, nref ? "" : " (../shared/quant absent)");
    return tl_done();
}
