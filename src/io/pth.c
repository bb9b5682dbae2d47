/* io/pth: PyTorch zip checkpoints (torch.save since 1.6): <prefix>/data.pkl describes the state dict,
 * <prefix>/data/<key> holds each storage's raw little-endian bytes. libzip reads the archive (data.pkl
 * and any compressed storage, with CRC checks); storages stored uncompressed (torch's default) are used
 * in place from the file mapping, located through the zip central directory parsed here. */
#include "io/io_internal.h"
#include "io/pickle.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

/* ---------- where stored entries lie in the file ---------- */

typedef struct { const char *name; size_t namelen; uint64_t data_off, size; } zdir_entry;

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Stored (method 0, unencrypted) entries of the central directory with their data offsets. Any
 * inconsistency just leaves an entry out (it is then read through libzip). */
static int zdir_parse(const uint8_t *m, size_t size, zdir_entry **out, int *nout) {
    *out = NULL;
    *nout = 0;
    if (!m || size < 22) return 0;
    size_t lo = size > 22 + 65535 ? size - 22 - 65535 : 0, eocd = SIZE_MAX;
    for (size_t i = size - 22 + 1; i-- > lo;)
        if (le(m + i, 4) == 0x06054b50u) { eocd = i; break; }
    if (eocd == SIZE_MAX) return 0;
    uint64_t count = le(m + eocd + 10, 2), cdoff = le(m + eocd + 16, 4);
    if ((count == 0xffff || cdoff == 0xffffffffu) && eocd >= 20 && le(m + eocd - 20, 4) == 0x07064b50u) {
        uint64_t z = le(m + eocd - 20 + 8, 8);
        if (z > size - 56 || le(m + z, 4) != 0x06064b50u) return 0;
        count = le(m + z + 32, 8);
        cdoff = le(m + z + 48, 8);
    }
    if (cdoff >= size || count > size / 46) return 0;
    zdir_entry *e = calloc(count ? count : 1, sizeof *e);
    if (!e) return -1;
    int n = 0;
    uint64_t p = cdoff;
    for (uint64_t k = 0; k < count; k++) {
        if (p > size - 46 || le(m + p, 4) != 0x02014b50u) break;
        uint64_t flags = le(m + p + 8, 2), method = le(m + p + 10, 2), csize = le(m + p + 20, 4),
                 usize = le(m + p + 24, 4), nl = le(m + p + 28, 2), xl = le(m + p + 30, 2), cl = le(m + p + 32, 2),
                 lho = le(m + p + 42, 4);
        if (p + 46 + nl + xl + cl > size) break;
        const uint8_t *x = m + p + 46 + nl, *xe = x + xl;
        while (xe - x >= 4) { /* zip64 extended information */
            uint64_t id = le(x, 2), len = le(x + 2, 2);
            if ((uint64_t)(xe - x - 4) < len) break;
            if (id == 1) {
                const uint8_t *q = x + 4, *qe = q + len;
                if (usize == 0xffffffffu && qe - q >= 8) { usize = le(q, 8); q += 8; }
                if (csize == 0xffffffffu && qe - q >= 8) { csize = le(q, 8); q += 8; }
                if (lho == 0xffffffffu && qe - q >= 8) { lho = le(q, 8); q += 8; }
            }
            x += 4 + len;
        }
        if (method == 0 && !(flags & 1) && csize == usize && lho <= size - 30 && le(m + lho, 4) == 0x04034b50u) {
            uint64_t d = lho + 30 + le(m + lho + 26, 2) + le(m + lho + 28, 2);
            if (d <= size && usize <= size - d) {
                e[n].name = (const char *)m + p + 46;
                e[n].namelen = (size_t)nl;
                e[n].data_off = d;
                e[n].size = usize;
                n++;
            }
        }
        p += 46 + nl + xl + cl;
    }
    *out = e;
    *nout = n;
    return 0;
}

static const zdir_entry *zdir_find(const zdir_entry *e, int n, const char *name) {
    size_t l = strlen(name);
    for (int i = 0; i < n; i++) if (e[i].namelen == l && !memcmp(e[i].name, name, l)) return &e[i];
    return NULL;
}

/* ---------- reading through libzip ---------- */

/* Deflate expands at most 1032:1 (a 258-byte match in 2 bits); torch writes storages stored (1:1). */
#define ZIP_MAX_RATIO 1032u

/* An entry's claimed size must fit what the archive can hold, checked before its buffer is allocated: its
 * compressed bytes lie inside the file, and they expand by at most ZIP_MAX_RATIO (stored: exactly 1:1). */
static int entry_size_check(const zip_stat_t *st, uint64_t archive_bytes, const char *path, const char *name) {
    if (!(st->valid & ZIP_STAT_COMP_SIZE) || !(st->valid & ZIP_STAT_COMP_METHOD))
        return hb_error("%s: zip entry '%s': compressed size unknown", path, name);
    uint64_t csize = st->comp_size, usize = st->size;
    if (csize > archive_bytes)
        return hb_error("%s: zip entry '%s' claims %llu compressed bytes, the archive has %llu", path, name,
                        (unsigned long long)csize, (unsigned long long)archive_bytes);
    bool stored = st->comp_method == ZIP_CM_STORE;
    if ((stored && usize != csize) || (!stored && usize / ZIP_MAX_RATIO > csize))
        return hb_error("%s: zip entry '%s' claims %llu bytes from %llu compressed bytes (more than %s allows)", path,
                        name, (unsigned long long)usize, (unsigned long long)csize,
                        stored ? "a stored entry" : "deflate's 1032:1 ratio");
    return 0;
}

static void *read_entry(zip_t *z, zip_uint64_t idx, uint64_t size, const char *path, const char *name) {
    void *buf = hb_malloc(size ? (size_t)size : 1, name);
    if (!buf) { hb_error_prefix("%s", path); return NULL; }
    zip_file_t *zf = zip_fopen_index(z, idx, 0);
    if (!zf) { hb_free(buf); hb_error("%s: cannot read zip entry '%s': %s", path, name, zip_strerror(z)); return NULL; }
    uint64_t got = 0;
    while (got < size) {
        zip_int64_t r = zip_fread(zf, (uint8_t *)buf + got, size - got);
        if (r <= 0) {
            hb_error("%s: zip entry '%s' is truncated or corrupt: %s", path, name, r < 0 ? zip_file_strerror(zf) : "short read");
            zip_fclose(zf);
            hb_free(buf);
            return NULL;
        }
        got += (uint64_t)r;
    }
    zip_fclose(zf);
    return buf;
}

typedef struct { const char *key; const uint8_t *base; uint64_t bytes; bool mapped; } storage_ref; /* bytes: entry size */

static int bind_tensor(hb_checkpoint *ck, const char *path, int file, zip_t *z, const char *prefix,
                       const zdir_entry *zd, int nzd, storage_ref *cache, int *ncache, const pkl_tensor *pt) {
    size_t es = hb_dtype_size(pt->dtype);
    /* Shape: element count without overflow; strides: contiguous only. */
    uint64_t numel = 1;
    for (int d = 0; d < pt->ndim; d++)
        if (__builtin_mul_overflow(numel, (uint64_t)pt->shape[d], &numel))
            return hb_error("%s: tensor '%s': shape too large (element count overflows)", path, pt->name);
    int64_t expect = 1;
    for (int d = pt->ndim - 1; d >= 0; d--) {
        if (pt->shape[d] != 1 && pt->stride[d] != expect && numel != 0)
            return hb_error("%s: tensor '%s': non-contiguous strides (dim %d has stride %lld, contiguous needs %lld); "
                            "re-save it with .contiguous()", path, pt->name, d, (long long)pt->stride[d], (long long)expect);
        if (pt->shape[d] && __builtin_mul_overflow(expect, pt->shape[d], &expect)) expect = INT64_MAX;
    }
    uint64_t sbytes, last;
    if (__builtin_mul_overflow((uint64_t)pt->storage_numel, (uint64_t)es, &sbytes) ||
        __builtin_add_overflow((uint64_t)pt->offset, numel, &last) || last > (uint64_t)pt->storage_numel)
        return hb_error("%s: tensor '%s': elements [%lld, %lld + %llu) outside its storage of %lld elements", path,
                        pt->name, (long long)pt->offset, (long long)pt->offset, (unsigned long long)numel,
                        (long long)pt->storage_numel);
    /* The storage: cached, mapped in place, or read into an aligned buffer. */
    storage_ref *s = NULL;
    for (int i = 0; i < *ncache; i++) if (!strcmp(cache[i].key, pt->storage_key)) { s = &cache[i]; break; }
    if (!s) {
        size_t nl = strlen(prefix) + strlen(pt->storage_key) + 8;
        char *ename = malloc(nl);
        if (!ename) return hb_error("%s: out of memory", path);
        snprintf(ename, nl, "%sdata/%s", prefix, pt->storage_key);
        zip_int64_t idx = zip_name_locate(z, ename, 0);
        zip_stat_t st;
        if (idx < 0 || zip_stat_index(z, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
            hb_error("%s: tensor '%s': storage entry '%s' is missing from the zip", path, pt->name, ename);
            free(ename);
            return -1;
        }
        if (st.size < sbytes) {
            hb_error("%s: tensor '%s': storage entry '%s' has %llu bytes, its %lld %s elements need %llu", path,
                     pt->name, ename, (unsigned long long)st.size, (long long)pt->storage_numel,
                     hb_dtype_name(pt->dtype), (unsigned long long)sbytes);
            free(ename);
            return -1;
        }
        if (entry_size_check(&st, ck->files[file].size, path, ename) != 0) { free(ename); return -1; }
        const zdir_entry *e = zdir_find(zd, nzd, ename);
        s = &cache[(*ncache)++];
        s->key = pt->storage_key;
        s->bytes = st.size;
        if (e && e->size == st.size && ck->files[file].map) {
            s->base = (const uint8_t *)ck->files[file].map + e->data_off;
            s->mapped = true;
            if ((uintptr_t)s->base % es != 0) {
                /* Misaligned for its dtype (torch aligns to 64; other zip writers may not): one copy of
                 * the whole storage serves every view of it. */
                void *buf = hb__ck_copy_out(ck, file, s->base, (size_t)st.size, ename);
                if (!buf) { hb_error_prefix("%s", path); free(ename); (*ncache)--; return -1; }
                hb_log(HB_LOG_DEBUG, "%s: storage '%s' is misaligned for %s in the zip, copied", path, ename,
                       hb_dtype_name(pt->dtype));
                s->base = buf;
                s->mapped = false;
            }
        } else {
            void *buf = read_entry(z, (zip_uint64_t)idx, st.size, path, ename);
            if (!buf || hb__ck_own(ck, buf) != 0) { free(ename); (*ncache)--; return -1; }
            s->base = buf;
            s->mapped = false;
        }
        free(ename);
    }
    /* Two persistent ids may name one entry with different types or sizes: check against the entry. */
    if (sbytes > s->bytes)
        return hb_error("%s: tensor '%s': storage '%s' has %llu bytes, its %lld %s elements need %llu", path, pt->name,
                        pt->storage_key, (unsigned long long)s->bytes, (long long)pt->storage_numel,
                        hb_dtype_name(pt->dtype), (unsigned long long)sbytes);
    const uint8_t *p = s->base + (uint64_t)pt->offset * es;
    bool copied = !s->mapped;
    if ((uintptr_t)p % es != 0) {
        size_t nb = (size_t)(numel * es);
        void *buf = hb__ck_copy_out(ck, file, p, nb, pt->name);
        if (!buf) return hb_error_prefix("%s", path);
        hb_log(HB_LOG_DEBUG, "%s: tensor '%s' is misaligned for %s in the zip, copied", path, pt->name,
               hb_dtype_name(pt->dtype));
        p = buf;
        copied = true;
    }
    hb_tensor t = hb_tensor_make(pt->dtype, pt->ndim, pt->shape, (void *)p);
    return hb__ck_add_tensor(ck, path, pt->name, file, t, copied);
}

int hb__pth_load(hb_checkpoint *ck, const char *path) {
    int file = hb__ck_map_file(ck, path);
    if (file < 0) return -1;
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        hb_error("%s: not a readable zip archive: %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    int rc = -1;
    uint8_t *pkl = NULL;
    pkl_tensor *ts = NULL;
    int nt = 0, nzd = 0;
    zdir_entry *zd = NULL;
    storage_ref *cache = NULL;
    char prefix[512] = "";
    zip_int64_t ne = zip_get_num_entries(z, 0), pidx = -1;
    for (zip_int64_t i = 0; i < ne; i++) {
        const char *nm = zip_get_name(z, (zip_uint64_t)i, 0);
        if (!nm) continue;
        size_t l = strlen(nm);
        if (l < 8 || strcmp(nm + l - 8, "data.pkl") != 0) continue;
        if (l > 8 && nm[l - 9] != '/') continue;
        if (l - 8 >= sizeof prefix) continue;
        if (memchr(nm, '/', l - 8) && (const char *)memchr(nm, '/', l - 8) != nm + l - 9) continue; /* one level */
        memcpy(prefix, nm, l - 8);
        prefix[l - 8] = 0;
        pidx = i;
        break;
    }
    if (pidx < 0) { hb_error("%s: zip archive holds no data.pkl (not a PyTorch checkpoint)", path); goto done; }
    zip_stat_t st;
    if (zip_stat_index(z, (zip_uint64_t)pidx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        hb_error("%s: cannot stat %sdata.pkl: %s", path, prefix, zip_strerror(z));
        goto done;
    }
    if (entry_size_check(&st, ck->files[file].size, path, "data.pkl") != 0) goto done;
    if (st.size > HB_PKL_MAX_BYTES) {
        hb_error("%s: %sdata.pkl is %llu bytes (limit %u MB)", path, prefix, (unsigned long long)st.size, HB_PKL_MAX_BYTES >> 20);
        goto done;
    }
    /* torch >= 1.13 records the byte order of the storages; only little-endian data is read. */
    char bo_name[540];
    snprintf(bo_name, sizeof bo_name, "%sbyteorder", prefix);
    zip_int64_t bidx = zip_name_locate(z, bo_name, 0);
    if (bidx >= 0) {
        zip_stat_t bst;
        if (zip_stat_index(z, (zip_uint64_t)bidx, 0, &bst) == 0 && (bst.valid & ZIP_STAT_SIZE) && bst.size < 16) {
            if (entry_size_check(&bst, ck->files[file].size, path, bo_name) != 0) goto done;
            char *bo = read_entry(z, (zip_uint64_t)bidx, bst.size, path, bo_name);
            if (!bo) goto done;
            bool little = bst.size >= 6 && !memcmp(bo, "little", 6);
            hb_free(bo);
            if (!little) { hb_error("%s: storages are not little-endian (%s)", path, bo_name); goto done; }
        } else {
            hb_error("%s: unreadable %s", path, bo_name);
            goto done;
        }
    }
    if (!(pkl = read_entry(z, (zip_uint64_t)pidx, st.size, path, "data.pkl"))) goto done;
    if (hb__pkl_read_state_dict(path, pkl, (size_t)st.size, &ts, &nt) != 0) goto done;
    if (zdir_parse(ck->files[file].map, ck->files[file].size, &zd, &nzd) != 0) { hb_error("%s: out of memory", path); goto done; }
    cache = calloc((size_t)nt + 1, sizeof *cache);
    if (!cache) { hb_error("%s: out of memory", path); goto done; }
    int ncache = 0;
    for (int i = 0; i < nt; i++)
        if (bind_tensor(ck, path, file, z, prefix, zd, nzd, cache, &ncache, &ts[i]) != 0) goto done;
    rc = 0;
done:
    free(cache);
    free(zd);
    hb__pkl_free(ts, nt);
    hb_free(pkl);
    zip_discard(z);
    return rc;
}
