/* Streaming sharded safetensors writer and deterministic random fill (see random_weights.h). */
#include "io/safetensors_writer.h"
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_CHUNK (1 << 22) /* values generated per write */

/* ---------------------------------------------------------------- staged folders */

int hb_folder_stage_begin(const char *final_dir, char *tmp, size_t cap) {
    struct stat st;
    if (stat(final_dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return hb_error("%s: exists and is not a folder", final_dir);
        DIR *d = opendir(final_dir);
        bool empty = true;
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { empty = false; break; }
            closedir(d);
        }
        if (!empty) return hb_error("%s: folder exists and is not empty (will not overwrite)", final_dir);
    }
    size_t len = strlen(final_dir);
    while (len > 1 && final_dir[len - 1] == '/') len--;
    snprintf(tmp, cap, "%.*s.tmp-%ld", (int)len, final_dir, (long)getpid());
    hb_folder_stage_abort(tmp);
    if (mkdir(tmp, 0755) != 0) return hb_error("%s: cannot create folder: %s", tmp, strerror(errno));
    return 0;
}

void hb_folder_stage_abort(const char *tmp) {
    DIR *d = opendir(tmp);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) hb_folder_stage_abort(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(tmp);
}

int hb_folder_stage_finish(const char *tmp, const char *final_dir) {
    struct stat st;
    if (stat(final_dir, &st) == 0) rmdir(final_dir); /* empty (checked by hb_folder_stage_begin) */
    if (rename(tmp, final_dir) != 0) {
        int e = errno;
        hb_folder_stage_abort(tmp);
        return hb_error("%s: cannot move the finished folder into place: %s", final_dir, strerror(e));
    }
    return 0;
}

/* ---------------------------------------------------------------- writer */

static int64_t numel(const hb_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int write_all(FILE *f, const void *p, size_t n, const char *path) {
    if (n && fwrite(p, 1, n, f) != n) return hb_error("%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int write_shard(const char *path, const hb_st_tensor *ts, int i0, int i1, hb_dtype dtype, hb_st_fill_fn fill,
                       void *user, float *buf, void *conv) {
    const size_t es = hb_dtype_size(dtype);
    json_t *h = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(h, "__metadata__", meta);
    int64_t off = 0;
    for (int i = i0; i < i1; i++) {
        json_t *o = json_object(), *sh = json_array(), *dof = json_array();
        json_object_set_new(o, "dtype", json_string(hb_dtype_name(dtype)));
        for (int d = 0; d < ts[i].ndim; d++) json_array_append_new(sh, json_integer(ts[i].shape[d]));
        json_object_set_new(o, "shape", sh);
        int64_t nb = numel(&ts[i]) * (int64_t)es;
        json_array_append_new(dof, json_integer(off));
        json_array_append_new(dof, json_integer(off + nb));
        json_object_set_new(o, "data_offsets", dof);
        json_object_set_new(h, ts[i].name, o);
        off += nb;
    }
    char *hs = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!hs) return hb_error("%s: cannot build the header", path);
    size_t hl = strlen(hs), padded = (hl + 7) & ~(size_t)7;
    FILE *f = fopen(path, "wb");
    if (!f) { int e = errno; free(hs); return hb_error("%s: cannot create: %s", path, strerror(e)); }
    uint64_t n8 = padded;
    uint8_t le[8];
    for (int k = 0; k < 8; k++) le[k] = (uint8_t)(n8 >> (8 * k));
    int rc = write_all(f, le, 8, path);
    if (!rc) rc = write_all(f, hs, hl, path);
    for (size_t k = hl; !rc && k < padded; k++) rc = write_all(f, " ", 1, path);
    free(hs);
    for (int i = i0; !rc && i < i1; i++) {
        int64_t n = numel(&ts[i]);
        for (int64_t o = 0; !rc && o < n; o += ST_CHUNK) {
            int64_t k = n - o < ST_CHUNK ? n - o : ST_CHUNK;
            if (fill(user, i, &ts[i], o, k, buf)) { rc = -1; break; }
            if (dtype == HB_F32) rc = write_all(f, buf, (size_t)k * 4, path);
            else { hb_convert_from_f32(conv, dtype, buf, (size_t)k); rc = write_all(f, conv, (size_t)k * es, path); }
        }
    }
    if (fflush(f) != 0 && !rc) rc = hb_error("%s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && !rc) rc = hb_error("%s: close failed: %s", path, strerror(errno));
    return rc;
}

int hb_safetensors_write_sharded(const char *dir, const char *prefix, const hb_st_tensor *ts, int n,
                                 hb_dtype dtype, int64_t shard_bytes, hb_st_fill_fn fill, void *user) {
    if (dtype != HB_F32 && dtype != HB_BF16 && dtype != HB_F16) return hb_error("random weights: dtype must be F32, BF16 or F16");
    const int64_t es = (int64_t)hb_dtype_size(dtype);
    int *start = malloc(sizeof(int) * (size_t)(n + 1));
    float *buf = hb_malloc((size_t)ST_CHUNK * sizeof(float), "write buffer");
    void *conv = hb_malloc((size_t)ST_CHUNK * 2, "write buffer");
    json_t *wm = json_object();
    int rc = -1, ns = 0;
    if (!start || !buf || !conv) { hb_error("random weights: out of memory"); goto done; }
    /* shard boundaries */
    int64_t cur = 0, total = 0;
    start[ns++] = 0;
    for (int i = 0; i < n; i++) {
        int64_t nb = numel(&ts[i]) * es;
        if (cur > 0 && cur + nb > shard_bytes) { start[ns++] = i; cur = 0; }
        cur += nb;
        total += nb;
    }
    start[ns] = n;
    char path[4096], fname[512];
    for (int s = 0; s < ns; s++) {
        snprintf(fname, sizeof fname, "%s-%05d-of-%05d.safetensors", prefix, s + 1, ns);
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        hb_log(HB_LOG_INFO, "writing %s (%d tensors)", fname, start[s + 1] - start[s]);
        if (write_shard(path, ts, start[s], start[s + 1], dtype, fill, user, buf, conv)) goto done;
        for (int i = start[s]; i < start[s + 1]; i++) json_object_set_new(wm, ts[i].name, json_string(fname));
    }
    json_t *idx = json_object(), *meta = json_object();
    json_object_set_new(meta, "total_size", json_integer(total));
    json_object_set_new(idx, "metadata", meta);
    json_object_set(idx, "weight_map", wm);
    char *txt = json_dumps(idx, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(idx);
    if (!txt) { hb_error("%s: cannot build the index", dir); goto done; }
    snprintf(path, sizeof path, "%s/%s.safetensors.index.json", dir, prefix);
    rc = hb_write_file_atomic(path, txt, strlen(txt));
    free(txt);
done:
    json_decref(wm);
    free(start);
    hb_free(buf);
    hb_free(conv);
    return rc;
}
