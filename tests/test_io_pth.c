/* io: PyTorch zip checkpoints. The test writes .pth files itself (libzip + a hand-assembled pickle in
 * the layout torch.save produces) and checks values, views, zero copy, and hostile pickles/zips. */
#include "testlib.h"
#include "io/checkpoint.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

/* ---------- a tiny pickle assembler ---------- */
typedef struct { uint8_t b[8192]; size_t n; } pk;
static void op(pk *p, uint8_t c) { p->b[p->n++] = c; }
static void raw(pk *p, const char *s) { size_t l = strlen(s); memcpy(p->b + p->n, s, l); p->n += l; }
static void u32(pk *p, uint32_t v) { for (int i = 0; i < 4; i++) op(p, (uint8_t)(v >> (8 * i))); }
static void str(pk *p, const char *s) { op(p, 'X'); u32(p, (uint32_t)strlen(s)); raw(p, s); }
static void global(pk *p, const char *mod, const char *name) { op(p, 'c'); raw(p, mod); op(p, '\n'); raw(p, name); op(p, '\n'); }
static void integer(pk *p, int64_t v) {
    if (v >= 0 && v < 256) { op(p, 'K'); op(p, (uint8_t)v); }
    else if (v >= INT32_MIN && v <= INT32_MAX) { op(p, 'J'); u32(p, (uint32_t)v); }
    else { op(p, 0x8a); op(p, 8); for (int i = 0; i < 8; i++) op(p, (uint8_t)((uint64_t)v >> (8 * i))); }
}
static void int_tuple(pk *p, int n, const int64_t *v) {
    op(p, '(');
    for (int i = 0; i < n; i++) integer(p, v[i]);
    op(p, 't');
}
/* value: torch._utils._rebuild_tensor_v2(('storage', torch.<st>, key, 'cpu', numel), off, size, stride, False, OrderedDict()) */
static void tensor(pk *p, const char *st, const char *key, int64_t numel, int64_t off, int nd, const int64_t *size,
                   const int64_t *stride, bool param) {
    if (param) global(p, "torch._utils", "_rebuild_parameter");
    global(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '(');
    op(p, '(');
    str(p, "storage");
    global(p, "torch", st);
    str(p, key);
    str(p, "cpu");
    integer(p, numel);
    op(p, 't');
    op(p, 'Q');
    integer(p, off);
    int_tuple(p, nd, size);
    int_tuple(p, nd, stride);
    op(p, 0x89);
    global(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    op(p, 't');
    op(p, 'R');
    if (param) { op(p, 0x88); global(p, "collections", "OrderedDict"); op(p, ')'); op(p, 'R'); op(p, 0x87); op(p, 'R'); }
}
static void dict_begin(pk *p) {
    op(p, 0x80); op(p, 2);
    global(p, "collections", "OrderedDict");
    op(p, 'q'); op(p, 0);
    op(p, ')');
    op(p, 'R');
    op(p, 'q'); op(p, 1);
    op(p, '(');
}
static void dict_end(pk *p) {
    op(p, 'u');
    /* state = {'_metadata': {'': {'version': 1}}} applied with BUILD, as torch does */
    op(p, '}'); op(p, '('); str(p, "_metadata"); op(p, '}'); op(p, '('); str(p, ""); op(p, '}'); str(p, "version");
    integer(p, 1); op(p, 's'); op(p, 'u'); op(p, 'u'); op(p, 'b');
    op(p, '.');
}

/* ---------- zip writing ---------- */
typedef struct { const char *name; const void *data; size_t n; bool deflate; } zentry;

static void write_zip(const char *path, int n, const zentry *e) {
    int err;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z) { fprintf(stderr, "zip_open %s failed\n", path); exit(1); }
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, e[i].data, e[i].n, 0);
        zip_int64_t idx = zip_file_add(z, e[i].name, s, ZIP_FL_OVERWRITE);
        zip_set_file_compression(z, (zip_uint64_t)idx, e[i].deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    }
    if (zip_close(z) != 0) { fprintf(stderr, "zip_close %s failed\n", path); exit(1); }
}

static void expect_fail(const char *path, const char *what) {
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck == NULL, "%s: opened but should fail (%s)", path, what);
    if (ck) { hb_checkpoint_close(ck); return; }
    const char *e = hb_last_error();
    CHECKF(strstr(e, path) != NULL, "error does not name the file: %s", e);
    CHECKF(strstr(e, what) != NULL, "error '%s' does not say '%s'", e, what);
}

static uint8_t *file_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

/* ---------- a hand-made zip64 archive (stored entries, data 64-byte aligned like torch's writer) ---------- */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}
typedef struct { uint8_t *b; size_t n, cap; } obuf;
static void ob_put(obuf *o, const void *p, size_t n) {
    if (o->n + n > o->cap) { o->cap = (o->n + n) * 2; o->b = realloc(o->b, o->cap); }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void ob_le(obuf *o, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    ob_put(o, t, (size_t)bytes);
}

static void write_zip64(const char *path, int n, const zentry *e) {
    obuf o = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(e[i].name), lho = o.n;
        uint32_t crc = crc32_of(e[i].data, e[i].n);
        size_t base = lho + 30 + nl + 20 + 4, pad = (64 - base % 64) % 64;
        ob_le(&o, 0x04034b50u, 4); ob_le(&o, 45, 2); ob_le(&o, 0, 2); ob_le(&o, 0, 2); ob_le(&o, 0, 2);
        ob_le(&o, 0x21, 2); ob_le(&o, crc, 4); ob_le(&o, 0xffffffffu, 4); ob_le(&o, 0xffffffffu, 4);
        ob_le(&o, nl, 2); ob_le(&o, 20 + 4 + pad, 2); ob_put(&o, e[i].name, nl);
        ob_le(&o, 1, 2); ob_le(&o, 16, 2); ob_le(&o, e[i].n, 8); ob_le(&o, e[i].n, 8);
        ob_le(&o, 0x4246, 2); ob_le(&o, pad, 2);
        for (size_t k = 0; k < pad; k++) ob_le(&o, 0, 1);
        ob_put(&o, e[i].data, e[i].n);
        ob_le(&cd, 0x02014b50u, 4); ob_le(&cd, 45, 2); ob_le(&cd, 45, 2); ob_le(&cd, 0, 2); ob_le(&cd, 0, 2);
        ob_le(&cd, 0, 2); ob_le(&cd, 0x21, 2); ob_le(&cd, crc, 4); ob_le(&cd, 0xffffffffu, 4); ob_le(&cd, 0xffffffffu, 4);
        ob_le(&cd, nl, 2); ob_le(&cd, 28, 2); ob_le(&cd, 0, 2); ob_le(&cd, 0, 2); ob_le(&cd, 0, 2); ob_le(&cd, 0, 4);
        ob_le(&cd, 0xffffffffu, 4); ob_put(&cd, e[i].name, nl);
        ob_le(&cd, 1, 2); ob_le(&cd, 24, 2); ob_le(&cd, e[i].n, 8); ob_le(&cd, e[i].n, 8); ob_le(&cd, lho, 8);
    }
    size_t cdoff = o.n;
    ob_put(&o, cd.b, cd.n);
    size_t z64 = o.n;
    ob_le(&o, 0x06064b50u, 4); ob_le(&o, 44, 8); ob_le(&o, 45, 2); ob_le(&o, 45, 2); ob_le(&o, 0, 4); ob_le(&o, 0, 4);
    ob_le(&o, (uint64_t)n, 8); ob_le(&o, (uint64_t)n, 8); ob_le(&o, cd.n, 8); ob_le(&o, cdoff, 8);
    ob_le(&o, 0x07064b50u, 4); ob_le(&o, 0, 4); ob_le(&o, z64, 8); ob_le(&o, 1, 4);
    ob_le(&o, 0x06054b50u, 4); ob_le(&o, 0, 2); ob_le(&o, 0, 2); ob_le(&o, 0xffff, 2); ob_le(&o, 0xffff, 2);
    ob_le(&o, 0xffffffffu, 4); ob_le(&o, 0xffffffffu, 4); ob_le(&o, 0, 2);
    FILE *f = fopen(path, "wb");
    fwrite(o.b, 1, o.n, f);
    fclose(f);
    free(o.b);
    free(cd.b);
}

/* ---------- an entry claiming far more than the archive holds ---------- */
/* Rewrite the uncompressed size of every header (local and central) naming `name`. */
static int patch_usize(const char *path, const char *name, uint32_t usize) {
    size_t n, nl = strlen(name);
    uint8_t *b = file_bytes(path, &n);
    int patched = 0;
    for (size_t i = 0; i + 46 + nl <= n; i++) {
        uint32_t sig = (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 | (uint32_t)b[i + 3] << 24;
        size_t at = sig == 0x04034b50u ? 22 : sig == 0x02014b50u ? 24 : 0, nm = sig == 0x04034b50u ? 30 : 46;
        if (!at || memcmp(b + i + nm, name, nl) != 0) continue;
        for (int k = 0; k < 4; k++) b[i + at + k] = (uint8_t)(usize >> (8 * k));
        patched++;
    }
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
    free(b);
    return patched;
}

typedef struct { const char *path, *want; } refusal;
static int open_refused(void *arg) {
    const refusal *c = arg;
    hb_checkpoint *ck = hb_checkpoint_open(c->path);
    if (ck) { fprintf(stderr, "%s opened, should be refused\n", c->path); return 1; }
    const char *e = hb_last_error();
    printf("refused: %s\n", e);
    if (!strstr(e, c->path) || !strstr(e, c->want)) { fprintf(stderr, "error '%s' should say '%s'\n", e, c->want); return 1; }
    return 0;
}

/* A deflated storage whose headers claim 2 GiB (its pickle asks for 2^29 floats): refused from the sizes, in a
 * child whose address space is capped at 256 MiB, quickly. */
static void check_claimed_size(hb_rng *r, const char *d) {
    char path[512];
    snprintf(path, sizeof path, "%s/claims2g.pth", d);
    uint8_t junk[600];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)hb_rng_u64(r);
    pk p = {.n = 0};
    dict_begin(&p);
    int64_t size[1] = {(int64_t)1 << 29}, stride[1] = {1};
    str(&p, "w");
    tensor(&p, "FloatStorage", "0", (int64_t)1 << 29, 0, 1, size, stride, false);
    dict_end(&p);
    zentry e[] = {{"archive/data.pkl", p.b, p.n, false}, {"archive/data/0", junk, sizeof junk, true}};
    write_zip(path, 2, e);
    CHECK(patch_usize(path, "archive/data/0", 0x80000000u) == 2);
    refusal c = {path, "claims 2147483648 bytes"};
    double t0 = hb_time_now();
    int rc = tl_run_capped(open_refused, &c, 256);
    double dt = hb_time_now() - t0;
    CHECKF(rc == 0, "2 GiB claim not refused cleanly under a 256 MiB cap (child status %d)", rc);
    CHECKF(dt < 2.0, "refusing took %.2f s", dt);
}

/* Files written by CPython's own pickler (fuzz/gen_corpus.py, protocols 2 and 4) when python3 exists. */
static void check_cpython_pickles(void) {
    const char *src = getenv("HB_SOURCE_DIR");
    char cmd[2048], path[600], out[512];
    if (!src || tl_run("python3 -c 'import pickle, zipfile' 2>/dev/null", NULL, 0) != 0) {
        fprintf(stderr, "python3 or HB_SOURCE_DIR missing: CPython pickle check skipped\n");
        return;
    }
    for (int proto = 2; proto <= 4; proto += 2) {
        snprintf(path, sizeof path, "%s/cpython%d.pth", tl_tmpdir(), proto);
        snprintf(cmd, sizeof cmd, "python3 '%s/fuzz/gen_corpus.py' --pth '%s' --protocol %d 2>&1", src, path, proto);
        int rc = tl_run(cmd, out, sizeof out);
        CHECKF(rc == 0, "%s: %s", cmd, out);
        hb_checkpoint *ck = hb_checkpoint_open(path);
        CHECKF(ck != NULL, "protocol %d: %s", proto, hb_last_error());
        if (!ck) continue;
        hb_tensor t;
        const float want_w[6] = {1.5f, -2.0f, 3.25f, 4.0f, -5.5f, 6.0f};
        CHECK(hb_checkpoint_count(ck) == 4);
        CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.weight", &t) == 0 && t.ndim == 2 && t.shape[1] == 3 &&
              !memcmp(t.data, want_w, 24));
        CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.bias", &t) == 0 && t.shape[0] == 3 && !memcmp(t.data, want_w + 3, 12));
        CHECK(hb_checkpoint_get(ck, "head.modulation", &t) == 0 && t.dtype == HB_BF16 && t.ndim == 3 &&
              hb_bf16_to_f32(((uint16_t *)t.data)[2]) == -3.0f);
        CHECK(hb_checkpoint_get(ck, "steps", &t) == 0 && t.dtype == HB_I64 && t.ndim == 0 &&
              *(int64_t *)t.data == (int64_t)1 << 40);
        hb_checkpoint_close(ck);
    }
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const char *d = tl_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/model.pth", d);

    /* Storages: s0 F32 x 12 (two tensors view it), s1 BF16 x 5 (deflated), s2 U8 x 7, s3 I64 x 3. */
    float s0[12];
    tl_fill_normal(&r, s0, 12, 1.0f);
    uint16_t s1[5];
    for (int i = 0; i < 5; i++) s1[i] = hb_f32_to_bf16(hb_rng_normal(&r));
    uint8_t s2[7];
    for (int i = 0; i < 7; i++) s2[i] = (uint8_t)hb_rng_u64(&r);
    int64_t s3[3] = {(int64_t)(hb_rng_u64(&r) >> 2), -5, 1LL << 40};

    pk p = {.n = 0};
    dict_begin(&p);
    int64_t sz_a[2] = {2, 3}, st_a[2] = {3, 1};
    str(&p, "blocks.0.self_attn.q.weight");
    tensor(&p, "FloatStorage", "0", 12, 0, 2, sz_a, st_a, false);
    int64_t sz_b[1] = {6}, st_b[1] = {1};
    str(&p, "blocks.0.self_attn.q.bias");
    tensor(&p, "FloatStorage", "0", 12, 6, 1, sz_b, st_b, true); /* view at offset 6, wrapped as a Parameter */
    int64_t sz_c[1] = {5}, st_c[1] = {1};
    str(&p, "head.modulation");
    tensor(&p, "BFloat16Storage", "1", 5, 0, 1, sz_c, st_c, false);
    int64_t sz_d[3] = {7, 1, 1}, st_d[3] = {1, 99, 7}; /* size-1 dims may carry any stride */
    str(&p, "bytes");
    tensor(&p, "ByteStorage", "2", 7, 0, 3, sz_d, st_d, false);
    int64_t sz_e[0];
    str(&p, "scalar");
    tensor(&p, "LongStorage", "3", 3, 2, 0, sz_e, sz_e, false);
    dict_end(&p);

    zentry good[] = {
        {"archive/data.pkl", p.b, p.n, false},
        {"archive/data/0", s0, sizeof s0, false},
        {"archive/data/1", s1, sizeof s1, true},
        {"archive/data/2", s2, sizeof s2, false},
        {"archive/data/3", s3, sizeof s3, false},
        {"archive/version", "3\n", 2, false},
    };
    write_zip(path, 6, good);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (ck) {
        CHECK(hb_checkpoint_count(ck) == 5);
        CHECK(!strcmp(hb_checkpoint_name(ck, 0), "blocks.0.self_attn.q.weight"));
        hb_tensor t;
        CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.weight", &t) == 0 && t.dtype == HB_F32 && t.ndim == 2 &&
              t.shape[0] == 2 && t.shape[1] == 3 && !memcmp(t.data, s0, 24));
        CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.bias", &t) == 0 && t.shape[0] == 6 && !memcmp(t.data, s0 + 6, 24));
        /* diffusers naming finds the official name */
        hb_tensor u;
        CHECK(hb_checkpoint_get(ck, "blocks.0.attn1.to_q.bias", &u) == 0 && u.data == t.data);
        CHECK(hb_checkpoint_get(ck, "scale_shift_table", &t) == 0 && t.dtype == HB_BF16 && !memcmp(t.data, s1, 10));
        CHECK(hb_checkpoint_get(ck, "bytes", &t) == 0 && t.dtype == HB_U8 && t.ndim == 3 && !memcmp(t.data, s2, 7));
        /* zero copy: a U8 storage stored uncompressed is always used in place */
        size_t fn;
        uint8_t *fb = file_bytes(path, &fn);
        uint8_t *hit = memmem(fb, fn, s2, 7);
        CHECK(hit != NULL);
        const uint8_t *mapped = (const uint8_t *)t.data - (hit - fb);
        CHECKF(!memcmp(mapped, "PK\3\4", 4), "U8 tensor is not inside the file mapping");
        /* the F32 storage: in place when its offset in the file is aligned, else an aligned copy */
        CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.weight", &t) == 0 && (uintptr_t)t.data % 4 == 0);
        uint8_t *h0 = memmem(fb, fn, s0, sizeof s0);
        if (h0 && (h0 - fb) % 4 == 0) CHECK((const uint8_t *)t.data == mapped + (h0 - fb));
        else CHECK((const uint8_t *)t.data != mapped + (h0 - fb));
        free(fb);
        CHECK(hb_checkpoint_get(ck, "scalar", &t) == 0 && t.ndim == 0 && t.dtype == HB_I64 &&
              !memcmp(t.data, &s3[2], 8));
        CHECK(hb_checkpoint_file_of(ck, 0) && !strcmp(hb_checkpoint_file_of(ck, 0), path));
        hb_checkpoint_close(ck);
    }

    check_claimed_size(&r, d);

    /* zip64 records (as torch writes for files over 4 GB): storages still used in place */
    snprintf(path, sizeof path, "%s/zip64.pth", d);
    write_zip64(path, 5, good);
    ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (ck) {
        hb_tensor t;
        CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.weight", &t) == 0 && !memcmp(t.data, s0, 24));
        CHECK(hb_checkpoint_get(ck, "scale_shift_table", &t) == 0 && !memcmp(t.data, s1, 10));
        int zc = 0;
        for (int i = 0; i < hb_checkpoint_count(ck); i++) zc += hb_checkpoint_zero_copy(ck, i);
        CHECKF(zc == 5, "%d of 5 tensors zero-copy in the zip64 file", zc);
        hb_checkpoint_close(ck);
    }

    /* A state dict nested under "state_dict" (top level: {'epoch': 3, 'state_dict': {...}}). */
    pk q = {.n = 0};
    op(&q, 0x80); op(&q, 2); op(&q, '}'); op(&q, '(');
    str(&q, "epoch"); integer(&q, 3);
    str(&q, "state_dict"); op(&q, '}'); op(&q, '(');
    str(&q, "w"); tensor(&q, "FloatStorage", "0", 12, 0, 2, sz_a, st_a, false);
    op(&q, 'u'); op(&q, 'u'); op(&q, '.');
    zentry nested[] = {{"m/data.pkl", q.b, q.n, false}, {"m/data/0", s0, sizeof s0, false}};
    snprintf(path, sizeof path, "%s/nested.pt", d);
    write_zip(path, 2, nested);
    ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (ck) {
        hb_tensor t;
        CHECK(hb_checkpoint_count(ck) == 1 && hb_checkpoint_get(ck, "w", &t) == 0 && !memcmp(t.data, s0, 24));
        hb_checkpoint_close(ck);
    }

    /* A Hummingbird-XTX / Self-Forcing training dict: {'generator': {...}, 'critic': {...}, 'generator_ema':
     * {...}} with model.-prefixed names and FSDP wrapper segments; generator_ema wins wherever it stands, its
     * names lose every "_fsdp_wrapped_module." segment, "model." is a lookup prefix. */
    {
        uint8_t ge[24], gr[24];
        for (int i = 0; i < 24; i++) ge[i] = (uint8_t)(3 * i + 1), gr[i] = (uint8_t)(200 - i);
        pk t = {.n = 0};
        op(&t, 0x80); op(&t, 2); op(&t, '}'); op(&t, '(');
        str(&t, "generator"); op(&t, '}'); op(&t, '(');
        str(&t, "model.blocks.0.self_attn.q.weight"); tensor(&t, "FloatStorage", "0", 6, 0, 2, sz_a, st_a, false);
        op(&t, 'u');
        str(&t, "critic"); op(&t, '}'); op(&t, '(');
        str(&t, "model.head.head.weight"); tensor(&t, "FloatStorage", "0", 6, 0, 2, sz_a, st_a, false);
        op(&t, 'u');
        str(&t, "generator_ema"); op(&t, '}'); op(&t, '(');
        str(&t, "model._fsdp_wrapped_module.blocks.0._fsdp_wrapped_module.self_attn.q.weight");
        tensor(&t, "FloatStorage", "1", 6, 0, 2, sz_a, st_a, false);
        op(&t, 'u');
        op(&t, 'u'); op(&t, '.');
        zentry tr[] = {{"w/data.pkl", t.b, t.n, false}, {"w/data/0", gr, sizeof gr, false}, {"w/data/1", ge, sizeof ge, false}};
        snprintf(path, sizeof path, "%s/train.pt", d);
        write_zip(path, 3, tr);
        ck = hb_checkpoint_open(path);
        CHECKF(ck != NULL, "%s", hb_last_error());
        if (ck) {
            hb_tensor w;
            CHECK(hb_checkpoint_count(ck) == 1);
            CHECKF(!strcmp(hb_checkpoint_name(ck, 0), "model.blocks.0.self_attn.q.weight"), "%s", hb_checkpoint_name(ck, 0));
            CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.weight", &w) == 0 && !memcmp(w.data, ge, 24));
            CHECK(!hb_checkpoint_has(ck, "head.head.weight"));
            hb_checkpoint_close(ck);
        }
    }

    /* A folder holding one .pth opens it; two are ambiguous. */
    char dir[600], p2[700];
    snprintf(dir, sizeof dir, "%s/pthdir", d);
    mkdir(dir, 0755);
    snprintf(p2, sizeof p2, "%s/a.pth", dir);
    write_zip(p2, 2, nested);
    ck = hb_checkpoint_open(dir);
    CHECKF(ck != NULL && hb_checkpoint_count(ck) == 1 && !strcmp(hb_checkpoint_file_of(ck, 0), p2), "%s", hb_last_error());
    hb_checkpoint_close(ck);
    snprintf(p2, sizeof p2, "%s/b.pt", dir);
    write_zip(p2, 2, nested);
    expect_fail(dir, "2 .pth/.pt files");

    /* ---------- hostile files ---------- */
    snprintf(path, sizeof path, "%s/bad.pth", d);
    /* os.system through GLOBAL + REDUCE */
    pk e = {.n = 0};
    op(&e, 0x80); op(&e, 2); global(&e, "os", "system"); str(&e, "echo pwned"); op(&e, 0x85); op(&e, 'R'); op(&e, '.');
    zentry evil[] = {{"archive/data.pkl", e.b, e.n, false}};
    write_zip(path, 1, evil);
    expect_fail(path, "forbidden global 'os.system'");
    /* the same through STACK_GLOBAL */
    e.n = 0;
    op(&e, 0x80); op(&e, 4); op(&e, 0x8c); op(&e, 8); raw(&e, "builtins"); op(&e, 0x8c); op(&e, 4); raw(&e, "eval");
    op(&e, 0x93); op(&e, '.');
    write_zip(path, 1, evil);
    expect_fail(path, "forbidden global 'builtins.eval'");
    /* a forbidden opcode (BINFLOAT) */
    e.n = 0;
    op(&e, 0x80); op(&e, 2); op(&e, '}'); str(&e, "lr"); op(&e, 'G'); for (int i = 0; i < 8; i++) op(&e, 0); op(&e, 's'); op(&e, '.');
    write_zip(path, 1, evil);
    expect_fail(path, "unsupported pickle opcode 0x47 (BINFLOAT)");
    /* INST, OBJ, NEWOBJ never run */
    e.n = 0;
    op(&e, '('); op(&e, 'i'); raw(&e, "os\nsystem\n"); op(&e, '.');
    write_zip(path, 1, evil);
    expect_fail(path, "INST");
    /* truncated pickle: every proper prefix of the good pickle fails cleanly */
    int trunc_ok = 0;
    for (size_t cut = 0; cut < p.n; cut++) {
        zentry tz[] = {{"archive/data.pkl", p.b, cut, false}, {"archive/data/0", s0, sizeof s0, false},
                       {"archive/data/1", s1, sizeof s1, true}, {"archive/data/2", s2, sizeof s2, false},
                       {"archive/data/3", s3, sizeof s3, false}};
        write_zip(path, 5, tz);
        hb_checkpoint *c = hb_checkpoint_open(path);
        if (c) hb_checkpoint_close(c);
        else if (strstr(hb_last_error(), path)) trunc_ok++;
    }
    CHECKF(trunc_ok == (int)p.n, "%d of %zu truncations failed cleanly", trunc_ok, p.n);
    zentry tz[] = {{"archive/data.pkl", p.b, p.n / 2, false}};
    write_zip(path, 1, tz);
    expect_fail(path, "truncated");
    /* a zip without data.pkl */
    zentry nop[] = {{"archive/data/0", s0, sizeof s0, false}};
    write_zip(path, 1, nop);
    expect_fail(path, "no data.pkl");
    /* a missing storage entry */
    zentry miss[] = {good[0], good[1], good[2], good[3]};
    write_zip(path, 4, miss);
    expect_fail(path, "storage entry 'archive/data/3' is missing");
    /* a storage entry shorter than its numel */
    zentry shortz[] = {good[0], {"archive/data/0", s0, 20, false}, good[2], good[3], good[4]};
    write_zip(path, 5, shortz);
    expect_fail(path, "has 20 bytes");
    /* one storage entry named by two persistent ids of different sizes (found by fuzz_pth): the larger
     * one must be checked against the entry, not served from the cache of the first */
    pk two = {.n = 0};
    dict_begin(&two);
    int64_t one[1] = {1}, unit[1] = {1}, twelve[1] = {12};
    str(&two, "small");
    tensor(&two, "LongStorage", "3", 3, 0, 1, one, unit, false);
    str(&two, "large");
    tensor(&two, "FloatStorage", "3", 12, 0, 1, twelve, unit, false);
    dict_end(&two);
    zentry twoz[] = {{"archive/data.pkl", two.b, two.n, false}, good[4]};
    write_zip(path, 2, twoz);
    expect_fail(path, "has 24 bytes");
    twoz[1].deflate = true; /* the same through a storage read by libzip */
    write_zip(path, 2, twoz);
    expect_fail(path, "has 24 bytes");
    /* big-endian storages */
    zentry bigz[] = {good[0], good[1], good[2], good[3], good[4], {"archive/byteorder", "big", 3, false}};
    write_zip(path, 6, bigz);
    expect_fail(path, "not little-endian");
    bigz[5].data = "little";
    bigz[5].n = 6;
    write_zip(path, 6, bigz);
    ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    hb_checkpoint_close(ck);
    /* non-contiguous strides (a transposed view) */
    pk nc = {.n = 0};
    dict_begin(&nc);
    int64_t st_t[2] = {1, 2};
    str(&nc, "t");
    tensor(&nc, "FloatStorage", "0", 12, 0, 2, sz_a, st_t, false);
    dict_end(&nc);
    zentry ncz[] = {{"archive/data.pkl", nc.b, nc.n, false}, good[1]};
    write_zip(path, 2, ncz);
    expect_fail(path, "non-contiguous");
    /* a view past the end of its storage */
    pk ob = {.n = 0};
    dict_begin(&ob);
    str(&ob, "t");
    tensor(&ob, "FloatStorage", "0", 12, 8, 1, sz_b, st_b, false);
    dict_end(&ob);
    zentry obz[] = {{"archive/data.pkl", ob.b, ob.n, false}, good[1]};
    write_zip(path, 2, obz);
    expect_fail(path, "outside its storage");
    /* not a zip at all but with a zip signature */
    FILE *f = fopen(path, "wb");
    fwrite("PK\3\4garbage", 1, 11, f);
    fclose(f);
    expect_fail(path, "zip");
    check_cpython_pickles();
    return tl_done();
}
