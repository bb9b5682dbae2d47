/* tools/pt_write: torch.save zip files (see pt_write.h). */
#include "pt_write.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

typedef struct { uint8_t *b; size_t n, cap; bool oom; } pbuf;

static void put(pbuf *p, const void *d, size_t n) {
    if (p->oom) return;
    if (p->n + n > p->cap) {
        size_t c = p->cap ? p->cap * 2 : 4096;
        while (c < p->n + n) c *= 2;
        uint8_t *q = realloc(p->b, c);
        if (!q) { p->oom = true; return; }
        p->b = q, p->cap = c;
    }
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void op(pbuf *p, uint8_t c) { put(p, &c, 1); }
static void u32(pbuf *p, uint32_t v) { for (int i = 0; i < 4; i++) op(p, (uint8_t)(v >> (8 * i))); }
static void str(pbuf *p, const char *s) { op(p, 'X'); u32(p, (uint32_t)strlen(s)); put(p, s, strlen(s)); }
static void global(pbuf *p, const char *mod, const char *name) {
    op(p, 'c'); put(p, mod, strlen(mod)); op(p, '\n'); put(p, name, strlen(name)); op(p, '\n');
}
static void integer(pbuf *p, int64_t v) {
    if (v >= 0 && v < 256) { op(p, 'K'); op(p, (uint8_t)v); }
    else if (v >= INT32_MIN && v <= INT32_MAX) { op(p, 'J'); u32(p, (uint32_t)v); }
    else { op(p, 0x8a); op(p, 8); for (int i = 0; i < 8; i++) op(p, (uint8_t)((uint64_t)v >> (8 * i))); }
}
static void ordered_dict(pbuf *p) { global(p, "collections", "OrderedDict"); op(p, ')'); op(p, 'R'); }

static const char *storage_of(hb_dtype dt) {
    switch (dt) {
    case HB_F32: return "FloatStorage";
    case HB_BF16: return "BFloat16Storage";
    case HB_F16: return "HalfStorage";
    case HB_F64: return "DoubleStorage";
    case HB_I64: return "LongStorage";
    case HB_I32: return "IntStorage";
    case HB_U8: return "ByteStorage";
    default: return NULL;
    }
}

/* torch._utils._rebuild_tensor_v2(('storage', torch.<T>, key, 'cpu', numel), 0, size, stride, False,
 * OrderedDict()): a contiguous tensor over its own storage. */
static void tensor(pbuf *p, const hb_tensor *t, const char *key) {
    global(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '(');
    op(p, '('); str(p, "storage"); global(p, "torch", storage_of(t->dtype)); str(p, key); str(p, "cpu");
    integer(p, hb_tensor_numel(t)); op(p, 't'); op(p, 'Q');
    integer(p, 0);
    op(p, '(');
    for (int d = 0; d < t->ndim; d++) integer(p, t->shape[d]);
    op(p, 't');
    op(p, '(');
    int64_t st = 1, stride[HB_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) { stride[d] = st; st *= t->shape[d]; }
    for (int d = 0; d < t->ndim; d++) integer(p, stride[d]);
    op(p, 't');
    op(p, 0x89);
    ordered_dict(p);
    op(p, 't');
    op(p, 'R');
}

/* The pickle of the groups; storage keys are the running tensor index. */
static void pickle(pbuf *p, int ngroups, const pt_group *g) {
    op(p, 0x80); op(p, 2);
    bool nested = g[0].key != NULL;
    if (nested) { op(p, '}'); op(p, '('); }
    int key = 0;
    for (int k = 0; k < ngroups; k++) {
        if (nested) str(p, g[k].key);
        ordered_dict(p);
        op(p, '(');
        for (int i = 0; i < g[k].n; i++) {
            char ks[24];
            snprintf(ks, sizeof ks, "%d", key++);
            str(p, g[k].names[i]);
            tensor(p, &g[k].tensors[i], ks);
        }
        op(p, 'u');
    }
    if (nested) op(p, 'u');
    op(p, '.');
}

static int add_entry(zip_t *z, const char *name, const void *data, size_t n, const char *path) {
    zip_source_t *s = zip_source_buffer(z, data, n, 0);
    zip_int64_t idx = s ? zip_file_add(z, name, s, ZIP_FL_OVERWRITE) : -1;
    if (idx < 0) {
        if (s) zip_source_free(s);
        return hb_error("%s: cannot add '%s' to the zip: %s", path, name, zip_strerror(z));
    }
    zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
    return 0;
}

int pt_write(const char *path, int ngroups, const pt_group *groups) {
    if (ngroups <= 0) return hb_error("%s: nothing to write", path);
    for (int k = 0; k < ngroups; k++) {
        if ((groups[k].key == NULL) != (groups[0].key == NULL) || (groups[k].key == NULL && ngroups > 1))
            return hb_error("%s: either one plain state dict or keyed dicts", path);
        for (int i = 0; i < groups[k].n; i++)
            if (!storage_of(groups[k].tensors[i].dtype))
                return hb_error("%s: tensor '%s': dtype %s has no torch storage here", path, groups[k].names[i],
                                hb_dtype_name(groups[k].tensors[i].dtype));
    }
    pbuf pk = {0};
    pickle(&pk, ngroups, groups);
    if (pk.oom) { free(pk.b); return hb_error("%s: out of memory", path); }
    /* the archive folder is the file's stem, as torch.save names it */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char arch[128], tmp[4200], name[256];
    size_t stem = strcspn(base, ".");
    if (stem == 0 || stem >= sizeof arch) snprintf(arch, sizeof arch, "archive");
    else snprintf(arch, sizeof arch, "%.*s", (int)stem, base);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    int err = 0, rc = -1;
    zip_t *z = zip_open(tmp, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z) { free(pk.b); return hb_error("%s: cannot create the zip (libzip error %d)", tmp, err); }
    snprintf(name, sizeof name, "%s/data.pkl", arch);
    if (add_entry(z, name, pk.b, pk.n, path)) goto fail;
    snprintf(name, sizeof name, "%s/byteorder", arch);
    if (add_entry(z, name, "little", 6, path)) goto fail;
    int key = 0;
    for (int k = 0; k < ngroups; k++)
        for (int i = 0; i < groups[k].n; i++) {
            snprintf(name, sizeof name, "%s/data/%d", arch, key++);
            if (add_entry(z, name, groups[k].tensors[i].data, hb_tensor_nbytes(&groups[k].tensors[i]), path)) goto fail;
        }
    snprintf(name, sizeof name, "%s/version", arch);
    if (add_entry(z, name, "3\n", 2, path)) goto fail;
    if (zip_close(z) != 0) {
        hb_error("%s: cannot write the zip: %s", path, zip_strerror(z));
        zip_discard(z);
        unlink(tmp);
        free(pk.b);
        return -1;
    }
    z = NULL;
    if (rename(tmp, path) != 0) { hb_error("%s: cannot move into place", path); unlink(tmp); }
    else rc = 0;
    free(pk.b);
    return rc;
fail:
    zip_discard(z);
    unlink(tmp);
    free(pk.b);
    return -1;
}
