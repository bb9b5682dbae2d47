/* io/safetensors: validated, memory-mapped reading of .safetensors files and sharded indexes, and writing.
 * Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, ...,
 * "__metadata__": {str: str}}, then the data area; offsets are relative to the data area. */
#include "io/io_internal.h"
#include "io/json_file.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { uint64_t begin, end; int idx; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static bool get_u64(json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* One tensor entry of the header: fills t (data = NULL) and [begin, end). */
static int parse_entry(const char *path, const char *name, json_t *v, uint64_t data_size, hb_tensor *t,
                       uint64_t *begin, uint64_t *end, bool *fp8) {
    if (!json_is_object(v)) return hb_error("%s: tensor '%s': header entry is not an object", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"), *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) return hb_error("%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (!json_is_array(js)) return hb_error("%s: tensor '%s': missing or non-array \"shape\"", path, name);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return hb_error("%s: tensor '%s': \"data_offsets\" must be an array of two integers", path, name);
    hb_dtype dt;
    const char *dname = json_string_value(jd);
    *fp8 = !strcmp(dname, "F8_E4M3"); /* one byte each; dequantized with its scale once the file is read */
    if (*fp8) dt = HB_U8;
    else if (!strcmp(dname, "F8_E5M2"))
        return hb_error("%s: tensor '%s': dtype F8_E5M2 is not supported (F8_E4M3 with a scale is)", path, name);
    else if (hb_dtype_from_name(dname, &dt) != 0)
        return hb_error("%s: tensor '%s': unknown dtype \"%.32s\" (known: F32 F16 BF16 F8_E4M3 F64 I64 I32 I16 I8 U8 "
                        "BOOL)", path, name, dname);
    size_t nd = json_array_size(js);
    if (nd > HB_MAX_DIMS)
        return hb_error("%s: tensor '%s': %zu dimensions (at most %d supported)", path, name, nd, HB_MAX_DIMS);
    int64_t shape[HB_MAX_DIMS];
    uint64_t numel = 1;
    bool overflow = false;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!get_u64(json_array_get(js, i), &d) || d > (uint64_t)INT64_MAX)
            return hb_error("%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        shape[i] = (int64_t)d;
        if (__builtin_mul_overflow(numel, d, &numel)) overflow = true;
    }
    uint64_t nbytes;
    if (overflow || numel > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, (uint64_t)hb_dtype_size(dt), &nbytes))
        return hb_error("%s: tensor '%s': shape too large (element count overflows)", path, name);
    if (!get_u64(json_array_get(jo, 0), begin) || !get_u64(json_array_get(jo, 1), end))
        return hb_error("%s: tensor '%s': \"data_offsets\" must be non-negative integers", path, name);
    if (*begin > *end)
        return hb_error("%s: tensor '%s': data_offsets [%llu, %llu] end before begin", path, name,
                        (unsigned long long)*begin, (unsigned long long)*end);
    if (*end > data_size)
        return hb_error("%s: tensor '%s': data_offsets [%llu, %llu] outside the data area of %llu bytes", path, name,
                        (unsigned long long)*begin, (unsigned long long)*end, (unsigned long long)data_size);
    if (*end - *begin != nbytes)
        return hb_error("%s: tensor '%s': %llu bytes in data_offsets but shape x dtype %s needs %llu", path, name,
                        (unsigned long long)(*end - *begin), hb_dtype_name(dt), (unsigned long long)nbytes);
    *t = hb_tensor_make(dt, (int)nd, shape, NULL);
    return 0;
}

static int parse_metadata(hb_checkpoint *ck, const char *path, json_t *m) {
    if (json_is_null(m)) return 0;
    if (!json_is_object(m)) return hb_error("%s: \"__metadata__\" is not an object", path);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v)) {
            hb_log(HB_LOG_DEBUG, "%s: __metadata__ key '%s' is not a string, ignored", path, k);
            continue;
        }
        if (hb__ck_add_meta(ck, k, json_string_value(v)) != 0) return hb_error("%s: out of memory", path);
    }
    return 0;
}

int hb__st_parse(hb_checkpoint *ck, const char *path, int file, const uint8_t *base, size_t size) {
    if (size < 8) return hb_error("%s: truncated: %zu bytes, a safetensors file needs at least 8", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (size >= sizeof legacy && !memcmp(base, legacy, sizeof legacy))
        return hb_error("%s: a legacy (pre-1.6, non-zip) PyTorch file; re-save it with torch.save (zip format) "
                        "or as safetensors", path);
    if (hlen > HB_ST_MAX_HEADER)
        return hb_error("%s: header length %llu exceeds the %u MB limit (not a safetensors file?)", path,
                        (unsigned long long)hlen, HB_ST_MAX_HEADER >> 20);
    if (hlen > size - 8)
        return hb_error("%s: truncated: header length %llu but only %zu bytes follow", path,
                        (unsigned long long)hlen, size - 8);
    if (hlen < 2) return hb_error("%s: header of %llu bytes is too short for JSON", path, (unsigned long long)hlen);
    json_t *root = hb_json_parse((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, path);
    if (!root) return -1;
    int rc = 0;
    span *sp = NULL;
    if (!json_is_object(root)) { rc = hb_error("%s: JSON header is not an object", path); goto done; }
    const uint8_t *data = base + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    size_t nt = json_object_size(root);
    sp = malloc((nt ? nt : 1) * sizeof *sp);
    if (!sp) { rc = hb_error("%s: out of memory", path); goto done; }
    int ns = 0;
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v) {
        if (!strcmp(name, "__metadata__")) {
            if ((rc = parse_metadata(ck, path, v)) != 0) goto done;
            continue;
        }
        if (strlen(name) >= HB_NAME_MAX) {
            rc = hb_error("%s: tensor name of %zu bytes (at most %d)", path, strlen(name), HB_NAME_MAX - 1);
            goto done;
        }
        hb_tensor t;
        uint64_t b, e;
        bool fp8 = false;
        if ((rc = parse_entry(path, name, v, data_size, &t, &b, &e, &fp8)) != 0) goto done;
        const uint8_t *p = data + b;
        bool copied = false;
        size_t al = hb_dtype_size(t.dtype);
        if (((uintptr_t)p % al) != 0) {
            /* A misaligned tensor cannot be read in place by typed loads: copy it to an aligned buffer. */
            void *buf = hb__ck_copy_out(ck, file, p, (size_t)(e - b), name);
            if (!buf) { rc = hb_error_prefix("%s", path); goto done; }
            hb_log(HB_LOG_DEBUG, "%s: tensor '%s' is misaligned for %s, copied", path, name, hb_dtype_name(t.dtype));
            p = buf;
            copied = true;
        }
        t.data = (void *)p;
        if ((rc = hb__ck_add_tensor(ck, path, name, file, t, copied)) != 0) goto done;
        ck->ents[ck->n - 1].fp8 = fp8;
        sp[ns].begin = b;
        sp[ns].end = e;
        sp[ns].idx = ck->n - 1;
        ns++;
    }
    /* No two tensors may share bytes (empty tensors overlap nothing). */
    qsort(sp, (size_t)ns, sizeof *sp, cmp_span);
    uint64_t prev_end = 0;
    int prev = -1;
    for (int i = 0; i < ns; i++) {
        if (sp[i].begin == sp[i].end) continue;
        if (prev >= 0 && sp[i].begin < prev_end) {
            rc = hb_error("%s: tensors '%s' and '%s' overlap in the data area ([%llu, %llu] and [%llu, %llu])", path,
                          ck->ents[prev].name, ck->ents[sp[i].idx].name, (unsigned long long)sp[i - 1].begin,
                          (unsigned long long)prev_end, (unsigned long long)sp[i].begin,
                          (unsigned long long)sp[i].end);
            goto done;
        }
        prev_end = sp[i].end;
        prev = sp[i].idx;
    }
done:
    free(sp);
    json_decref(root);
    return rc;
}

int hb__st_load(hb_checkpoint *ck, const char *path) {
    int f = hb__ck_map_file(ck, path);
    if (f < 0) return -1;
    return hb__st_parse(ck, path, f, ck->files[f].map, ck->files[f].size);
}

/* A shard name from an index must be a plain relative path inside the index's folder. */
static bool safe_rel_path(const char *s) {
    if (!*s || s[0] == '/') return false;
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if ((len == 2 && p[0] == '.' && p[1] == '.') || len == 0) return false;
        if (!q) break;
        p = q + 1;
    }
    return true;
}

int hb__st_load_index(hb_checkpoint *ck, const char *index_path) {
    /* Read it whole (bounded) and parse from memory: faster than jansson's getc-based file reader. */
    FILE *f = fopen(index_path, "rb");
    if (!f) return hb_error("%s: cannot open: %s", index_path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= HB_ST_MAX_HEADER) { fclose(f); free(text); return hb_error("%s: index larger than %u MB", index_path, HB_ST_MAX_HEADER >> 20); }
            cap = cap ? cap * 2 : 65536;
            char *t = realloc(text, cap);
            if (!t) { fclose(f); free(text); return hb_error("%s: out of memory", index_path); }
            text = t;
        }
        size_t r = fread(text + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    bool rerr = ferror(f);
    fclose(f);
    if (rerr) { free(text); return hb_error("%s: read error", index_path); }
    json_t *root = hb_json_parse(text, len, JSON_REJECT_DUPLICATES, index_path);
    free(text);
    if (!root) return -1;
    int rc = 0;
    char **shards = NULL;
    int nsh = 0;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root) || !json_is_object(wm)) {
        rc = hb_error("%s: not a safetensors index (no \"weight_map\" object)", index_path);
        goto done;
    }
    json_t *meta = json_object_get(root, "metadata");
    if (json_is_object(meta)) {
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) {
            if (json_is_string(v)) hb__ck_add_meta(ck, k, json_string_value(v));
            else if (json_is_integer(v)) {
                char buf[32];
                snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
                hb__ck_add_meta(ck, k, buf);
            }
        }
    }
    /* Folder of the index. */
    const char *slash = strrchr(index_path, '/');
    size_t dlen = slash ? (size_t)(slash - index_path) : 0;
    size_t nw = json_object_size(wm);
    shards = calloc(nw ? nw : 1, sizeof *shards);
    if (!shards) { rc = hb_error("%s: out of memory", index_path); goto done; }
    const char *k;
    json_t *v;
    json_object_foreach(wm, k, v) {
        if (!json_is_string(v)) { rc = hb_error("%s: weight_map entry '%s' is not a file name", index_path, k); goto done; }
        const char *s = json_string_value(v);
        if (!safe_rel_path(s)) {
            rc = hb_error("%s: weight_map entry '%s' names shard \"%s\", which is not a plain relative path", index_path, k, s);
            goto done;
        }
        bool seen = false;
        for (int i = 0; i < nsh && !seen; i++) seen = !strcmp(shards[i], s);
        if (seen) continue;
        size_t len = dlen + strlen(s) + 2;
        char *p = malloc(len);
        if (!p) { rc = hb_error("%s: out of memory", index_path); goto done; }
        if (slash) snprintf(p, len, "%.*s/%s", (int)dlen, index_path, s);
        else snprintf(p, len, "%s", s);
        rc = hb__st_load(ck, p);
        free(p);
        if (rc != 0) { hb_error_prefix("%s: shard \"%s\"", index_path, s); goto done; }
        shards[nsh++] = (char *)s;
    }
    if (nsh == 0) { rc = hb_error("%s: weight_map is empty", index_path); goto done; }
    /* Every name in the weight map must be in the shard it names (looked up through the hash table). */
    if ((rc = hb__ck_finish(ck)) != 0) goto done;
    json_object_foreach(wm, k, v) {
        const char *s = json_string_value(v);
        int i = hb__ck_find_exact(ck, k);
        const char *fp = i >= 0 ? ck->files[ck->ents[i].file].path : "";
        size_t fl = strlen(fp), sl = strlen(s);
        if (i < 0 || fl < sl || strcmp(fp + fl - sl, s) != 0 || (fl > sl && fp[fl - sl - 1] != '/')) {
            rc = hb_error("%s: weight_map says tensor '%s' is in \"%s\" but that shard lacks it", index_path, k, s);
            goto done;
        }
    }
done:
    free(shards);
    json_decref(root);
    return rc;
}

/* ---------- writing ---------- */

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes tensor x contiguously (gathering strided views) through a small buffer. */
static int write_tensor(int fd, const hb_tensor *x) {
    size_t es = hb_dtype_size(x->dtype), nb = hb_tensor_nbytes(x);
    if (nb == 0) return 0;
    if (hb_tensor_is_contiguous(x)) return write_all(fd, x->data, nb);
    uint8_t buf[1 << 16];
    size_t used = 0;
    int64_t idx[HB_MAX_DIMS] = {0}, n = hb_tensor_numel(x);
    for (int64_t k = 0; k < n; k++) {
        int64_t off = 0;
        for (int d = 0; d < x->ndim; d++) off += idx[d] * x->stride[d];
        memcpy(buf + used, (const uint8_t *)x->data + off * (int64_t)es, es);
        used += es;
        if (used + es > sizeof buf) { if (write_all(fd, buf, used)) return -1; used = 0; }
        for (int d = x->ndim - 1; d >= 0; d--) { if (++idx[d] < x->shape[d]) break; idx[d] = 0; }
    }
    return used ? write_all(fd, buf, used) : 0;
}

int hb_safetensors_write(const char *path, int n, const char *const *names, const hb_tensor *tensors,
                         const char *const *metadata) {
    if (n < 0) return hb_error("%s: negative tensor count", path);
    /* Data order: widest dtype first (stable), so every tensor stays aligned without padding holes. */
    int *order = malloc(((size_t)n + 1) * sizeof *order);
    if (!order) return hb_error("%s: out of memory", path);
    int no = 0;
    for (size_t w = 8; w >= 1; w /= 2)
        for (int i = 0; i < n; i++) if (hb_dtype_size(tensors[i].dtype) == w) order[no++] = i;
    if (no != n) { free(order); return hb_error("%s: a tensor has an invalid dtype", path); }
    uint64_t *off = malloc(((size_t)n + 1) * sizeof *off);
    json_t *root = json_object(), *jm = NULL;
    char *hdr = NULL;
    int rc = -1, fd = -1;
    char *tmp = NULL;
    if (!off || !root) { hb_error("%s: out of memory", path); goto done; }
    if (metadata && metadata[0]) {
        jm = json_object();
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) { hb_error("%s: metadata key '%s' has no value", path, metadata[i]); goto done; }
            json_object_set_new(jm, metadata[i], json_string(metadata[i + 1]));
        }
        json_object_set_new(root, "__metadata__", jm);
    }
    uint64_t pos = 0;
    for (int k = 0; k < n; k++) { off[order[k]] = pos; pos += hb_tensor_nbytes(&tensors[order[k]]); }
    for (int i = 0; i < n; i++) {
        const hb_tensor *x = &tensors[i];
        if (!names[i] || !*names[i] || !strcmp(names[i], "__metadata__")) { hb_error("%s: tensor %d has an invalid name", path, i); goto done; }
        if (x->ndim < 0 || x->ndim > HB_MAX_DIMS || (!x->data && hb_tensor_nbytes(x))) {
            hb_error("%s: tensor '%s' is not a valid tensor", path, names[i]);
            goto done;
        }
        if (json_object_get(root, names[i])) { hb_error("%s: duplicate tensor name '%s'", path, names[i]); goto done; }
        json_t *e = json_object(), *sh = json_array(), *of = json_array();
        json_object_set_new(e, "dtype", json_string(hb_dtype_name(x->dtype)));
        for (int d = 0; d < x->ndim; d++) json_array_append_new(sh, json_integer(x->shape[d]));
        json_object_set_new(e, "shape", sh);
        json_array_append_new(of, json_integer((json_int_t)off[i]));
        json_array_append_new(of, json_integer((json_int_t)(off[i] + hb_tensor_nbytes(x))));
        json_object_set_new(e, "data_offsets", of);
        json_object_set_new(root, names[i], e);
    }
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) { hb_error("%s: cannot encode the header", path); goto done; }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    size_t tl = strlen(path) + 32;
    tmp = malloc(tl);
    if (!tmp) { hb_error("%s: out of memory", path); goto done; }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { hb_error("%s: cannot create: %s", path, strerror(errno)); goto done; }
    static const char spaces[8] = "        ";
    bool ok = !write_all(fd, lenb, 8) && !write_all(fd, hdr, hl) && !write_all(fd, spaces, padded - hl);
    for (int k = 0; k < n && ok; k++) ok = !write_tensor(fd, &tensors[order[k]]);
    if (!ok) { hb_error("%s: write failed: %s", path, strerror(errno)); goto done; }
    if (fsync(fd) != 0 && errno != EINVAL) { hb_error("%s: sync failed: %s", path, strerror(errno)); goto done; }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) { hb_error("%s: close failed: %s", path, strerror(errno)); goto done; }
    if (rename(tmp, path) != 0) { hb_error("%s: rename failed: %s", path, strerror(errno)); goto done; }
    free(tmp);
    tmp = NULL;
    rc = 0;
done:
    if (fd >= 0) close(fd);
    if (tmp) { unlink(tmp); free(tmp); }
    free(hdr);
    json_decref(root);
    free(off);
    free(order);
    return rc;
}
