/* io/gguf: validated, memory-mapped reading of GGUF files (versions 2 and 3; ggml's gguf.cpp / docs/gguf.md).
 * Layout: "GGUF", u32 version, u64 tensor count, u64 key/value count; key/value pairs (string key, u32 type,
 * value); tensor infos (string name, u32 n_dims, u64 dims fastest first, u32 ggml type, u64 offset into the
 * data section); padding to the alignment; the data section. Every count, length, offset and size is checked
 * against the bytes that remain before it is used; tensors point into the mapping (zero copy). Metadata
 * values are kept as text (arrays shortened) for hb_checkpoint_metadata and hb inspect. */
#include "io/io_internal.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_MAX_STRING (1u << 30)   /* ggml's cap on one string */
#define GGUF_MAX_DEPTH 8             /* nested arrays */
#define GGUF_META_TEXT 4096          /* longest rendered metadata value */

enum { GV_U8, GV_I8, GV_U16, GV_I16, GV_U32, GV_I32, GV_F32, GV_BOOL, GV_STRING, GV_ARRAY, GV_U64, GV_I64, GV_F64,
       GV_COUNT };
static const size_t k_vsize[GV_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const k_vname[GV_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string",
                                              "array", "u64", "i64", "f64"};

typedef struct {
    const char *path;
    const uint8_t *base;
    size_t size, pos;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Reads an n-byte little-endian integer; `what` names the field in the message. */
static int get_int(cursor *c, int n, uint64_t *v, const char *what) {
    *v = 0;
    if (left(c) < (size_t)n)
        return hb_error("%s: truncated at byte %zu: %s needs %d bytes, %zu left", c->path, c->pos, what, n, left(c));
    *v = rd_le(c->base + c->pos, n);
    c->pos += (size_t)n;
    return 0;
}

/* A string: u64 length then bytes. *s points into the file (not terminated). */
static int get_str(cursor *c, const char **s, uint64_t *len, uint64_t max, const char *what) {
    *s = NULL;
    if (get_int(c, 8, len, what)) return -1;
    if (*len > max)
        return hb_error("%s: %s has length %llu (at most %llu)", c->path, what, (unsigned long long)*len,
                        (unsigned long long)max);
    if (*len > left(c))
        return hb_error("%s: %s has length %llu but only %zu bytes are left in the file", c->path, what,
                        (unsigned long long)*len, left(c));
    *s = (const char *)c->base + c->pos;
    c->pos += (size_t)*len;
    return 0;
}

/* ---------- metadata values as text ---------- */

typedef struct { char *p; size_t n, cap; } text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    if (t->n + 1 >= t->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
    va_end(ap);
    if (w > 0) t->n = t->n + (size_t)w < t->cap ? t->n + (size_t)w : t->cap - 1;
}

static void put_scalar(text *t, uint32_t type, const uint8_t *p) {
    uint64_t u = rd_le(p, (int)k_vsize[type]);
    switch (type) {
    case GV_U8: case GV_U16: case GV_U32: case GV_U64: put(t, "%llu", (unsigned long long)u); break;
    case GV_I8: put(t, "%d", (int)(int8_t)u); break;
    case GV_I16: put(t, "%d", (int)(int16_t)u); break;
    case GV_I32: put(t, "%d", (int)(int32_t)u); break;
    case GV_I64: put(t, "%lld", (long long)(int64_t)u); break;
    case GV_BOOL: put(t, "%s", u ? "true" : "false"); break;
    case GV_F32: { uint32_t b = (uint32_t)u; float f; memcpy(&f, &b, 4); put(t, "%.9g", (double)f); } break;
    case GV_F64: { double d; memcpy(&d, &u, 8); put(t, "%.17g", d); } break;
    default: break;
    }
}

/* One value of `type` (validated, rendered into t when t is not NULL). */
static int get_value(cursor *c, uint32_t type, text *t, int depth, const char *key) {
    if (type >= GV_COUNT) return hb_error("%s: key '%s': unknown value type %u (known: 0-12)", c->path, key, type);
    if (type == GV_STRING) {
        const char *s;
        uint64_t len;
        if (get_str(c, &s, &len, GGUF_MAX_STRING, "string value")) return hb_error_prefix("key '%s'", key);
        if (t) {
            put(t, "%s", depth ? "\"" : "");
            for (uint64_t i = 0; i < len && t->n + 2 < t->cap; i++) put(t, "%c", s[i] ? s[i] : ' ');
            put(t, "%s", depth ? "\"" : "");
        }
        return 0;
    }
    if (type != GV_ARRAY) {
        if (left(c) < k_vsize[type])
            return hb_error("%s: truncated at byte %zu: key '%s' needs a %s value", c->path, c->pos, key, k_vname[type]);
        if (t) put_scalar(t, type, c->base + c->pos);
        c->pos += k_vsize[type];
        return 0;
    }
    if (depth >= GGUF_MAX_DEPTH) return hb_error("%s: key '%s': arrays nested deeper than %d", c->path, key, GGUF_MAX_DEPTH);
    uint64_t et, n;
    if (get_int(c, 4, &et, "array element type") || get_int(c, 8, &n, "array length")) return hb_error_prefix("key '%s'", key);
    if (et >= GV_COUNT) return hb_error("%s: key '%s': unknown array element type %llu", c->path, key, (unsigned long long)et);
    /* every element takes at least one byte (strings 8, arrays 12): the count cannot exceed what is left */
    size_t min = et == GV_STRING ? 8 : et == GV_ARRAY ? 12 : k_vsize[et];
    if (n > left(c) / min)
        return hb_error("%s: key '%s': array of %llu %s elements does not fit in the %zu bytes left", c->path, key,
                        (unsigned long long)n, k_vname[et], left(c));
    if (t) put(t, "[");
    for (uint64_t i = 0; i < n; i++) {
        bool show = t && i < 16;
        if (show && i) put(t, ", ");
        if (t && i == 16) put(t, ", ... (%llu elements)", (unsigned long long)n);
        if (et < GV_STRING || et > GV_ARRAY) {  /* fixed-size elements: no need to walk each */
            if (!show) { c->pos += (size_t)(n - i) * k_vsize[et]; break; }
            put_scalar(t, (uint32_t)et, c->base + c->pos);
            c->pos += k_vsize[et];
        } else if (get_value(c, (uint32_t)et, show ? t : NULL, depth + 1, key)) return -1;
    }
    if (t) put(t, "]");
    return 0;
}

/* ---------- tensor types ---------- */

/* ggml type id -> hb dtype; -1 with the reason when unsupported. */
static int ggml_type(uint32_t id, hb_dtype *out, const char **why) {
    static const struct { uint32_t id; hb_dtype t; } map[] = {
        {0, HB_F32}, {1, HB_F16}, {2, HB_Q4_0}, {3, HB_Q4_1}, {6, HB_Q5_0}, {7, HB_Q5_1}, {8, HB_Q8_0},
        {10, HB_Q2_K}, {11, HB_Q3_K}, {12, HB_Q4_K}, {13, HB_Q5_K}, {14, HB_Q6_K}, {24, HB_I8}, {25, HB_I16},
        {26, HB_I32}, {27, HB_I64}, {28, HB_F64}, {30, HB_BF16},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].id == id) { *out = map[i].t; return 0; }
    if (id == 4 || id == 5 || (id >= 31 && id <= 33) || (id >= 36 && id <= 38)) *why = "a removed ggml type";
    else if (id == 9 || id == 15 || (id >= 16 && id <= 23) || id == 29 || id == 34 || id == 35 || id == 39)
        *why = "a ggml type hummingbird does not read (IQ*, TQ*, MXFP4 or an activation-only Q8 type)";
    else *why = "not a ggml type";
    return -1;
}

typedef struct {
    char name[HB_NAME_MAX];
    hb_tensor t;
    uint64_t off, nbytes;
} tinfo;

typedef struct { uint64_t begin, end; int idx; } gspan;

static int cmp_gspan(const void *a, const void *b) {
    const gspan *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The name without the "model.diffusion_model." / "model." prefix of some converters. */
static const char *strip_gguf_prefix(const char *s) {
    if (!strncmp(s, "model.diffusion_model.", 22) && s[22]) return s + 22;
    if (!strncmp(s, "model.", 6) && s[6]) return s + 6;
    return s;
}

/* One tensor info record: name, dims (reversed to PyTorch order), type, offset; byte size checked. */
static int get_tinfo(cursor *c, tinfo *ti, uint64_t k) {
    const char *s;
    uint64_t len, nd, d, type;
    char what[64];
    snprintf(what, sizeof what, "name of tensor %llu", (unsigned long long)k);
    if (get_str(c, &s, &len, HB_NAME_MAX - 1, what)) return -1;
    if (len == 0) return hb_error("%s: tensor %llu has an empty name", c->path, (unsigned long long)k);
    if (memchr(s, 0, (size_t)len)) return hb_error("%s: tensor %llu: name holds a NUL byte", c->path, (unsigned long long)k);
    char raw[HB_NAME_MAX];
    memcpy(raw, s, (size_t)len);
    raw[len] = 0;
    snprintf(ti->name, sizeof ti->name, "%s", strip_gguf_prefix(raw));
    if (get_int(c, 4, &nd, "n_dims")) return hb_error_prefix("tensor '%s'", raw);
    if (nd > HB_MAX_DIMS)
        return hb_error("%s: tensor '%s': %llu dimensions (at most %d)", c->path, raw, (unsigned long long)nd, HB_MAX_DIMS);
    int64_t shape[HB_MAX_DIMS];
    uint64_t numel = 1, row = 1;
    for (uint64_t i = 0; i < nd; i++) {
        if (get_int(c, 8, &d, "dim")) return hb_error_prefix("tensor '%s'", raw);
        if (d > (uint64_t)INT64_MAX)
            return hb_error("%s: tensor '%s': dim %llu is negative (%lld)", c->path, raw, (unsigned long long)i, (long long)d);
        if (__builtin_mul_overflow(numel, d, &numel) || numel > (uint64_t)INT64_MAX)
            return hb_error("%s: tensor '%s': element count overflows 63 bits", c->path, raw);
        shape[nd - 1 - i] = (int64_t)d;
        if (i == 0) row = d;
    }
    if (get_int(c, 4, &type, "type") || get_int(c, 8, &ti->off, "offset")) return hb_error_prefix("tensor '%s'", raw);
    hb_dtype dt;
    const char *why;
    if (ggml_type((uint32_t)type, &dt, &why))
        return hb_error("%s: tensor '%s': type id %llu is %s", c->path, raw, (unsigned long long)type, why);
    uint64_t be = (uint64_t)hb_dtype_block_elems(dt);
    if (nd > 0 && row % be)
        return hb_error("%s: tensor '%s': row of %llu elements is not a whole number of %s blocks of %llu", c->path,
                        raw, (unsigned long long)row, hb_dtype_name(dt), (unsigned long long)be);
    if (nd == 0 && be > 1) return hb_error("%s: tensor '%s': a 0-D %s tensor", c->path, raw, hb_dtype_name(dt));
    if (__builtin_mul_overflow(numel / be, (uint64_t)hb_dtype_block_bytes(dt), &ti->nbytes))
        return hb_error("%s: tensor '%s': byte size overflows 64 bits", c->path, raw);
    ti->t = hb_tensor_make(dt, (int)nd, shape, NULL);
    return 0;
}

/* comfy.gguf.orig_shape.<name> = INT32 array in PyTorch order: reshape tensor `ti` (same element count, rows
 * still whole blocks). */
static int apply_orig_shape(cursor *c, tinfo *ti, const uint8_t *arr, uint64_t n) {
    if (n > HB_MAX_DIMS)
        return hb_error("%s: comfy.gguf.orig_shape.%s has %llu dims (at most %d)", c->path, ti->name,
                        (unsigned long long)n, HB_MAX_DIMS);
    int64_t shape[HB_MAX_DIMS];
    uint64_t numel = 1;
    for (uint64_t i = 0; i < n; i++) {
        int32_t v = (int32_t)rd_le(arr + 4 * i, 4);
        if (v < 0) return hb_error("%s: comfy.gguf.orig_shape.%s: dim %llu is negative", c->path, ti->name, (unsigned long long)i);
        shape[i] = v;
        if (__builtin_mul_overflow(numel, (uint64_t)v, &numel))
            return hb_error("%s: comfy.gguf.orig_shape.%s: element count overflows", c->path, ti->name);
    }
    if (numel != (uint64_t)hb_tensor_numel(&ti->t))
        return hb_error("%s: comfy.gguf.orig_shape.%s holds %llu elements but the tensor stores %lld", c->path,
                        ti->name, (unsigned long long)numel, (long long)hb_tensor_numel(&ti->t));
    int64_t be = hb_dtype_block_elems(ti->t.dtype);
    if (be > 1 && (n == 0 || shape[n - 1] % be))
        return hb_error("%s: comfy.gguf.orig_shape.%s: rows of the original shape split %s blocks", c->path, ti->name,
                        hb_dtype_name(ti->t.dtype));
    ti->t = hb_tensor_make(ti->t.dtype, (int)n, shape, NULL);
    return 0;
}

typedef struct { const char *name; size_t nlen; const uint8_t *arr; uint64_t n; } oshape;

/* Key/value section: metadata into ck, the alignment, and the orig_shape keys (pointing into the file). */
static int get_kvs(hb_checkpoint *ck, cursor *c, uint64_t nkv, uint32_t *align, oshape **os, int *nos) {
    char *buf = malloc(GGUF_META_TEXT);
    if (!buf) return hb_error("%s: out of memory", c->path);
    int rc = 0;
    for (uint64_t k = 0; k < nkv && rc == 0; k++) {
        const char *ks;
        uint64_t klen, type;
        char kname[HB_NAME_MAX + 32];
        if ((rc = get_str(c, &ks, &klen, 65535, "metadata key")) != 0) break;
        snprintf(kname, sizeof kname, "%.*s", (int)(klen < HB_NAME_MAX ? klen : HB_NAME_MAX), ks);
        if ((rc = get_int(c, 4, &type, "value type")) != 0) { hb_error_prefix("key '%s'", kname); break; }
        if (ck && hb_checkpoint_metadata(ck, kname)) { rc = hb_error("%s: duplicate key '%s'", c->path, kname); break; }
        size_t at = c->pos;
        text t = {buf, 0, GGUF_META_TEXT};
        buf[0] = 0;
        if ((rc = get_value(c, (uint32_t)type, &t, 0, kname)) != 0) break;
        if (!strcmp(kname, "general.alignment")) {
            uint32_t a = type == GV_U32 ? (uint32_t)rd_le(c->base + at, 4) : 0;
            if (type != GV_U32 || a == 0 || (a & (a - 1)))
                { rc = hb_error("%s: general.alignment must be a u32 power of two (is %s %s)", c->path, k_vname[type], buf); break; }
            *align = a;
        }
        const char *pre = "comfy.gguf.orig_shape.";
        if (klen > strlen(pre) && !strncmp(ks, pre, strlen(pre))) {
            uint64_t et = type == GV_ARRAY ? rd_le(c->base + at, 4) : 0;
            if (type != GV_ARRAY || et != GV_I32) { rc = hb_error("%s: %s must be an array of i32", c->path, kname); break; }
            oshape *no = realloc(*os, (size_t)(*nos + 1) * sizeof **os);
            if (!no) { rc = hb_error("%s: out of memory", c->path); break; }
            *os = no;
            no[*nos] = (oshape){ks + strlen(pre), (size_t)klen - strlen(pre), c->base + at + 12, rd_le(c->base + at + 4, 8)};
            (*nos)++;
        }
        if (ck && hb__ck_add_meta(ck, kname, buf) != 0) { rc = hb_error("%s: out of memory", c->path); break; }
    }
    free(buf);
    return rc;
}

/* Data placement: aligned offsets, inside the data section, no two tensors sharing a byte. */
static int check_spans(cursor *c, tinfo *ti, uint64_t nt, uint64_t data_size, uint32_t align) {
    gspan *sp = malloc((size_t)(nt ? nt : 1) * sizeof *sp);
    if (!sp) return hb_error("%s: out of memory", c->path);
    int rc = 0, ns = 0;
    for (uint64_t i = 0; i < nt && rc == 0; i++) {
        if (ti[i].off % align)
            rc = hb_error("%s: tensor '%s': offset %llu is not a multiple of the alignment %u", c->path, ti[i].name,
                          (unsigned long long)ti[i].off, align);
        else if (ti[i].off > data_size || ti[i].nbytes > data_size - ti[i].off)
            rc = hb_error("%s: tensor '%s': data [%llu, +%llu) runs past the end of the data section (%llu bytes)",
                          c->path, ti[i].name, (unsigned long long)ti[i].off, (unsigned long long)ti[i].nbytes,
                          (unsigned long long)data_size);
        else if (ti[i].nbytes) sp[ns++] = (gspan){ti[i].off, ti[i].off + ti[i].nbytes, (int)i};
    }
    if (rc == 0) qsort(sp, (size_t)ns, sizeof *sp, cmp_gspan);
    for (int i = 1; i < ns && rc == 0; i++)
        if (sp[i].begin < sp[i - 1].end)
            rc = hb_error("%s: tensors '%s' and '%s' overlap in the data section", c->path, ti[sp[i - 1].idx].name,
                          ti[sp[i].idx].name);
    free(sp);
    return rc;
}

static int add_tensors(hb_checkpoint *ck, cursor *c, int file, tinfo *ti, uint64_t nt, const uint8_t *data) {
    for (uint64_t i = 0; i < nt; i++) {
        const uint8_t *p = data + ti[i].off;
        bool copied = false;
        size_t al = hb_dtype_size(ti[i].t.dtype);
        if (al > 1 && ((uintptr_t)p % al) != 0) {
            /* an alignment below the element size: typed loads need an aligned copy */
            void *b = hb__ck_copy_out(ck, file, p, (size_t)ti[i].nbytes, ti[i].name);
            if (!b) return hb_error_prefix("%s", c->path);
            p = b;
            copied = true;
        }
        ti[i].t.data = (void *)p;
        if (hb__ck_add_tensor(ck, c->path, ti[i].name, file, ti[i].t, copied)) return -1;
    }
    return 0;
}

static int get_header(cursor *c, uint64_t *nt, uint64_t *nkv) {
    if (c->size < 4 || memcmp(c->base, "GGUF", 4))
        return hb_error("%s: bad magic: not a GGUF file (the first 4 bytes are not \"GGUF\")", c->path);
    c->pos = 4;
    uint64_t ver;
    if (get_int(c, 4, &ver, "version") || get_int(c, 8, nt, "tensor count") || get_int(c, 8, nkv, "key/value count"))
        return -1;
    if (ver != 2 && ver != 3)
        return hb_error("%s: GGUF version %llu (versions 2 and 3 are read)", c->path, (unsigned long long)ver);
    /* a key/value takes at least 13 bytes and a tensor info 24: bound the counts by the file size */
    if (*nkv > left(c) / 13)
        return hb_error("%s: key/value count %llu does not fit in a %zu-byte file", c->path, (unsigned long long)*nkv, c->size);
    if (*nt > left(c) / 24)
        return hb_error("%s: tensor count %llu does not fit in a %zu-byte file", c->path, (unsigned long long)*nt, c->size);
    return 0;
}

int hb__gguf_parse(hb_checkpoint *ck, const char *path, int file, const uint8_t *base, size_t size) {
    cursor c = {path, base, size, 0};
    uint64_t nt = 0, nkv = 0;
    uint32_t align = 32;
    oshape *os = NULL;
    int nos = 0, rc;
    tinfo *ti = NULL;
    if ((rc = get_header(&c, &nt, &nkv)) != 0 || (rc = get_kvs(ck, &c, nkv, &align, &os, &nos)) != 0) goto done;
    ti = calloc((size_t)(nt ? nt : 1), sizeof *ti);
    if (!ti) { rc = hb_error("%s: out of memory", path); goto done; }
    for (uint64_t i = 0; i < nt && rc == 0; i++) rc = get_tinfo(&c, &ti[i], i);
    if (rc) goto done;
    for (int k = 0; k < nos && rc == 0; k++) {
        uint64_t i = 0;
        for (; i < nt; i++) {
            const char *nm = ti[i].name;
            if (strlen(nm) == os[k].nlen && !memcmp(nm, os[k].name, os[k].nlen)) break;
            /* the key may carry the prefix the tensor name lost */
            char full[HB_NAME_MAX + 32];
            int fl = snprintf(full, sizeof full, "%.*s", (int)(os[k].nlen < HB_NAME_MAX ? os[k].nlen : HB_NAME_MAX), os[k].name);
            if (fl > 0 && !strcmp(strip_gguf_prefix(full), nm)) break;
        }
        if (i == nt) {
            hb_log(HB_LOG_DEBUG, "%s: comfy.gguf.orig_shape.%.*s names no tensor, ignored", path, (int)os[k].nlen, os[k].name);
            continue;
        }
        rc = apply_orig_shape(&c, &ti[i], os[k].arr, os[k].n);
    }
    if (rc) goto done;
    uint64_t data_start = (c.pos + align - 1) / align * align;
    if (nt == 0 && data_start > size) data_start = size; /* no tensors: the final padding may be missing */
    if (data_start > size) {
        rc = hb_error("%s: truncated: the data section would start at byte %llu of a %zu-byte file", path,
                      (unsigned long long)data_start, size);
        goto done;
    }
    if ((rc = check_spans(&c, ti, nt, size - data_start, align)) != 0) goto done;
    if (ck) rc = add_tensors(ck, &c, file, ti, nt, base + data_start);
done:
    free(ti);
    free(os);
    return rc;
}

int hb__gguf_load(hb_checkpoint *ck, const char *path) {
    int f = hb__ck_map_file(ck, path);
    if (f < 0) return -1;
    return hb__gguf_parse(ck, path, f, ck->files[f].map, ck->files[f].size);
}

/* ---------- writing ---------- */

static void w_u32(FILE *f, uint32_t v) { uint8_t b[4]; for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i)); fwrite(b, 1, 4, f); }
static void w_u64(FILE *f, uint64_t v) { uint8_t b[8]; for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i)); fwrite(b, 1, 8, f); }
static void w_str(FILE *f, const char *s) { w_u64(f, strlen(s)); fwrite(s, 1, strlen(s), f); }
static void w_pad(FILE *f, uint64_t n) { static const uint8_t z[64]; while (n) { size_t k = n < 64 ? (size_t)n : 64; fwrite(z, 1, k, f); n -= k; } }

/* ggml type id of an hb dtype; -1 when GGUF cannot hold it. */
static int ggml_id(hb_dtype t) {
    for (uint32_t id = 0; id < 40; id++) {
        hb_dtype d;
        const char *why;
        if (ggml_type(id, &d, &why) == 0 && d == t) return (int)id;
    }
    return -1;
}

static int write_kvs(FILE *f, const char *path, const hb_gguf_kv *kv, int nkv) {
    for (int i = 0; i < nkv; i++) {
        w_str(f, kv[i].key);
        w_u32(f, kv[i].type);
        switch (kv[i].type) {
        case HB_GGUF_U32: w_u32(f, kv[i].u32); break;
        case HB_GGUF_STRING: w_str(f, kv[i].str ? kv[i].str : ""); break;
        case HB_GGUF_ARRAY_I32:
            w_u32(f, GV_I32);
            w_u64(f, (uint64_t)kv[i].narr);
            for (int k = 0; k < kv[i].narr; k++) w_u32(f, (uint32_t)kv[i].arr[k]);
            break;
        default: return hb_error("%s: metadata key '%s': value type %u cannot be written", path, kv[i].key, kv[i].type);
        }
    }
    return 0;
}

/* Header, key/values and tensor infos (offsets are the running sum of padded sizes, in file order). */
static int write_head(FILE *f, const char *path, int n, const char *const *names, const hb_tensor *ts,
                      const hb_gguf_kv *kv, int nkv, uint32_t align) {
    fwrite("GGUF", 1, 4, f);
    w_u32(f, 3);
    w_u64(f, (uint64_t)n);
    w_u64(f, (uint64_t)nkv);
    if (write_kvs(f, path, kv, nkv)) return -1;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        int id = ggml_id(ts[i].dtype);
        if (id < 0) return hb_error("%s: tensor '%s': dtype %s has no GGUF type", path, names[i], hb_dtype_name(ts[i].dtype));
        if (strlen(names[i]) >= HB_NAME_MAX) return hb_error("%s: tensor name '%.40s...' too long", path, names[i]);
        int nd = ts[i].ndim;
        if (nd > 0 && ts[i].shape[nd - 1] % hb_dtype_block_elems(ts[i].dtype))
            return hb_error("%s: tensor '%s': rows are not whole %s blocks", path, names[i], hb_dtype_name(ts[i].dtype));
        w_str(f, names[i]);
        w_u32(f, (uint32_t)nd);
        for (int d = nd - 1; d >= 0; d--) w_u64(f, (uint64_t)ts[i].shape[d]);
        w_u32(f, (uint32_t)id);
        w_u64(f, off);
        uint64_t nb = hb_tensor_nbytes(&ts[i]);
        off += (nb + align - 1) / align * align;
    }
    long pos = ftell(f);
    if (pos < 0) return hb_error("%s: cannot tell the write position", path);
    w_pad(f, ((uint64_t)pos + align - 1) / align * align - (uint64_t)pos);
    return 0;
}

int hb_gguf_write(const char *path, int n, const char *const *names, const hb_tensor *tensors, hb_gguf_fill_fn fill,
                  void *user, const hb_gguf_kv *kv, int nkv, uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1))) return hb_error("%s: alignment %u is not a power of two", path, alignment);
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) return hb_error("%s: out of memory", path);
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { int e = errno; free(tmp); return hb_error("%s: cannot create: %s", path, strerror(e)); }
    int rc = write_head(f, path, n, names, tensors, kv, nkv, alignment);
    void *buf = NULL;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t nb = hb_tensor_nbytes(&tensors[i]);
        const void *src = tensors[i].data;
        if (fill) {
            void *nbuf = hb_malloc(nb ? nb : 1, names[i]);
            hb_free(buf);
            if (!(buf = nbuf) || fill(user, i, buf, nb)) { rc = hb_error_prefix("%s", path); break; }
            src = buf;
        } else if (nb && (!src || !hb_tensor_is_contiguous(&tensors[i]))) {
            rc = hb_error("%s: tensor '%s' is not a contiguous tensor with data", path, names[i]);
            break;
        }
        if (nb && fwrite(src, 1, nb, f) != nb) rc = hb_error("%s: write failed: %s", path, strerror(errno));
        w_pad(f, (nb + alignment - 1) / alignment * alignment - nb);
        if (fill) { hb_free(buf); buf = NULL; }
    }
    hb_free(buf);
    if (rc == 0 && (fflush(f) != 0 || ferror(f))) rc = hb_error("%s: write failed: %s", path, strerror(errno));
    if (rc == 0 && fsync(fileno(f)) != 0 && errno != EINVAL) rc = hb_error("%s: sync failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == 0) rc = hb_error("%s: close failed: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = hb_error("%s: rename failed: %s", path, strerror(errno));
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}
