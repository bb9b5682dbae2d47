/* io/checkpoint: the container behind every format (files, tensors, owned buffers, metadata), opening
 * by path (file, index, folder), and lookup by name with the official <-> diffusers/transformers mapping. */
#include "io/io_internal.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return hb_error("out of memory");
    *arr = p;
    *cap = nc;
    return 0;
}

hb_checkpoint *hb__ck_new(const char *path) {
    hb_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->path = dupstr(path))) { free(ck); hb_error("%s: out of memory", path); return NULL; }
    return ck;
}

int hb__ck_map_file(hb_checkpoint *ck, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hb_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) { int e = errno; close(fd); return hb_error("%s: cannot stat: %s", path, strerror(e)); }
    if (!S_ISREG(st.st_mode)) { close(fd); return hb_error("%s: not a regular file", path); }
    void *map = NULL;
    size_t size = (size_t)st.st_size;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) { int e = errno; close(fd); return hb_error("%s: cannot map: %s", path, strerror(e)); }
    }
    if (grow((void **)&ck->files, &ck->capfiles, ck->nfiles + 1, sizeof *ck->files) != 0) {
        if (map) munmap(map, size);
        close(fd);
        return hb_error("%s: out of memory", path);
    }
    ck_file *f = &ck->files[ck->nfiles];
    if (!(f->path = dupstr(path))) { if (map) munmap(map, size); close(fd); return hb_error("%s: out of memory", path); }
    f->fd = fd;
    f->map = map;
    f->size = size;
    return ck->nfiles++;
}

int hb__ck_add_tensor(hb_checkpoint *ck, const char *where, const char *name, int file, hb_tensor t, bool copied) {
    /* Duplicates are found by hb__ck_finish through the hash; a linear check here would be quadratic. */
    if (grow((void **)&ck->ents, &ck->cap, ck->n + 1, sizeof *ck->ents) != 0) return hb_error("%s: out of memory", where);
    ck_entry *e = &ck->ents[ck->n];
    if (!(e->name = dupstr(name))) return hb_error("%s: out of memory", where);
    e->file = file;
    e->t = t;
    e->copied = copied;
    e->fp8 = false;
    ck->n++;
    return 0;
}

int hb__ck_own(hb_checkpoint *ck, void *p) {
    if (grow((void **)&ck->owned, &ck->capowned, ck->nowned + 1, sizeof *ck->owned) != 0) { hb_free(p); return -1; }
    ck->owned[ck->nowned++] = p;
    return 0;
}

void *hb__ck_copy_out(hb_checkpoint *ck, int file, const void *src, size_t n, const char *what) {
    const ck_file *f = &ck->files[file];
    void *buf = hb_malloc(n ? n : 1, what);
    if (!buf) return NULL;
    off_t off = (off_t)((const uint8_t *)src - (const uint8_t *)f->map);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(f->fd, (uint8_t *)buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            hb_free(buf);
            hb_error("%s: read of %s failed: %s", f->path, what, r < 0 ? strerror(errno) : "file shrank");
            return NULL;
        }
        got += (size_t)r;
    }
    if (hb__ck_own(ck, buf) != 0) { hb_error("%s: out of memory", f->path); return NULL; }
    return buf;
}

int hb__ck_add_meta(hb_checkpoint *ck, const char *key, const char *value) {
    for (int i = 0; i < ck->nmeta; i++) if (!strcmp(ck->meta[2 * i], key)) return 0;
    int cap2 = ck->capmeta;
    if (grow((void **)&ck->meta, &cap2, 2 * (ck->nmeta + 1), sizeof *ck->meta) != 0) return -1;
    ck->capmeta = cap2;
    char *k = dupstr(key), *v = dupstr(value);
    if (!k || !v) { free(k); free(v); return hb_error("out of memory"); }
    ck->meta[2 * ck->nmeta] = k;
    ck->meta[2 * ck->nmeta + 1] = v;
    ck->nmeta++;
    return 0;
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Slot of `name` in table (found or empty). */
static int hash_slot(const hb_checkpoint *ck, const int *table, const char *name, bool stripped) {
    uint64_t m = (uint64_t)ck->hcap - 1, h = fnv1a(name) & m;
    for (;;) {
        int v = table[h];
        if (v == 0) return (int)h;
        const char *en = ck->ents[v - 1].name;
        if (stripped) en = hb_name_strip_prefix(en);
        if (!strcmp(en, name)) return (int)h;
        h = (h + 1) & m;
    }
}

int hb__ck_finish(hb_checkpoint *ck) {
    if (ck->hash) return 0;
    int cap = 16;
    while (cap < 2 * ck->n + 2) cap *= 2;
    ck->hcap = cap;
    ck->hash = calloc((size_t)cap, sizeof(int));
    ck->hash_strip = calloc((size_t)cap, sizeof(int));
    if (!ck->hash || !ck->hash_strip) return hb_error("%s: out of memory", ck->path);
    for (int i = 0; i < ck->n; i++) {
        int s = hash_slot(ck, ck->hash, ck->ents[i].name, false);
        if (ck->hash[s]) {
            const ck_entry *a = &ck->ents[ck->hash[s] - 1], *b = &ck->ents[i];
            if (a->file == b->file)
                return hb_error("%s: duplicate tensor name '%s'", ck->files[b->file].path, b->name);
            return hb_error("%s: tensor '%s' appears in two shards: %s and %s", ck->path, b->name,
                            ck->files[a->file].path, ck->files[b->file].path);
        }
        ck->hash[s] = i + 1;
        const char *st = hb_name_strip_prefix(ck->ents[i].name);
        s = hash_slot(ck, ck->hash_strip, st, true);
        if (!ck->hash_strip[s]) ck->hash_strip[s] = i + 1; /* first one wins when two strip alike */
    }
    return 0;
}

int hb__ck_find_exact(const hb_checkpoint *ck, const char *name) {
    if (!ck->hash) return -1;
    int s = hash_slot(ck, ck->hash, name, false);
    return ck->hash[s] - 1;
}

void hb_checkpoint_close(hb_checkpoint *ck) {
    if (!ck) return;
    /* A device backend keeps uploaded copies keyed by host address: they go with the mapping. */
    for (int i = 0; i < ck->nfiles; i++)
        if (ck->files[i].map) hb_host_memory_released(ck->files[i].map, ck->files[i].size);
    for (int i = 0; i < ck->n; i++)
        if (ck->ents[i].copied) hb_host_memory_released(ck->ents[i].t.data, hb_tensor_nbytes(&ck->ents[i].t));
    for (int i = 0; i < ck->nfiles; i++) {
        if (ck->files[i].map) munmap(ck->files[i].map, ck->files[i].size);
        close(ck->files[i].fd);
        free(ck->files[i].path);
    }
    for (int i = 0; i < ck->n; i++) free(ck->ents[i].name);
    for (int i = 0; i < ck->nowned; i++) hb_free(ck->owned[i]);
    for (int i = 0; i < 2 * ck->nmeta; i++) free(ck->meta[i]);
    free(ck->files);
    free(ck->ents);
    free(ck->owned);
    free(ck->meta);
    free(ck->hash);
    free(ck->hash_strip);
    free(ck->path);
    free(ck);
}

/* ---------- opening ---------- */

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Files of a folder whose name ends with suf, sorted. */
static int list_dir(const char *dir, const char *suf, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return hb_error("%s: cannot open folder: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, suf)) continue;
        if (grow((void **)out, &cap, *n + 1, sizeof **out) != 0) break;
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        char *p = malloc(len);
        if (!p) break;
        snprintf(p, len, "%s/%s", dir, de->d_name);
        (*out)[(*n)++] = p;
    }
    closedir(d);
    if (*n) qsort(*out, (size_t)*n, sizeof **out, cmp_str);
    return 0;
}

static void free_list(char **l, int n) {
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

/* The first four bytes of a file decide its format ("PK\3\4" zip = PyTorch, "GGUF"); else safetensors. */
static bool has_magic(const char *path, const char *magic) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char m[4] = {0};
    size_t r = fread(m, 1, 4, f);
    fclose(f);
    return r == 4 && !memcmp(m, magic, 4);
}

static int load_file(hb_checkpoint *ck, const char *path) {
    if (ends_with(path, ".json")) return hb__st_load_index(ck, path);
    if (has_magic(path, "PK\3\4")) return hb__pth_load(ck, path);
    if (has_magic(path, "GGUF") || ends_with(path, ".gguf")) return hb__gguf_load(ck, path);
    return hb__st_load(ck, path);
}

static int load_dir(hb_checkpoint *ck, const char *dir) {
    char **l;
    int n;
    if (list_dir(dir, ".safetensors.index.json", &l, &n) != 0) return -1;
    if (n > 0) {
        if (n > 1) hb_log(HB_LOG_DEBUG, "%s: %d index files, using %s", dir, n, l[0]);
        int rc = hb__st_load_index(ck, l[0]);
        free_list(l, n);
        return rc;
    }
    free_list(l, n);
    /* a quantized DiT: one .gguf in the folder */
    if (list_dir(dir, ".gguf", &l, &n) != 0) return -1;
    if (n > 0) {
        int rc = n == 1 ? hb__gguf_load(ck, l[0])
                        : hb_error("%s: folder holds %d .gguf files; open one of them by path", dir, n);
        free_list(l, n);
        return rc;
    }
    free_list(l, n);
    if (list_dir(dir, ".safetensors", &l, &n) != 0) return -1;
    if (n > 0) {
        int rc = 0;
        for (int i = 0; i < n && rc == 0; i++) rc = hb__st_load(ck, l[i]);
        free_list(l, n);
        return rc;
    }
    free_list(l, n);
    char **a, **b;
    int na, nb;
    if (list_dir(dir, ".pth", &a, &na) != 0) return -1;
    if (list_dir(dir, ".pt", &b, &nb) != 0) { free_list(a, na); return -1; }
    int rc;
    if (na + nb == 1) rc = hb__pth_load(ck, na ? a[0] : b[0]);
    else if (na + nb == 0) rc = hb_error("%s: folder holds no checkpoint (*.safetensors.index.json, *.gguf, *.safetensors, *.pth, *.pt)", dir);
    else rc = hb_error("%s: folder holds %d .pth/.pt files and no safetensors; open one of them by path", dir, na + nb);
    free_list(a, na);
    free_list(b, nb);
    return rc;
}

hb_checkpoint *hb_checkpoint_open(const char *path) {
    if (!path || !*path) { hb_error("checkpoint: empty path"); return NULL; }
    struct stat st;
    if (stat(path, &st) != 0) { hb_error("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    hb_checkpoint *ck = hb__ck_new(path);
    if (!ck) return NULL;
    int rc = S_ISDIR(st.st_mode) ? load_dir(ck, path) : load_file(ck, path);
    if (rc == 0) rc = hb__ck_finish(ck);
    if (rc == 0) rc = hb__ck_resolve_fp8(ck);
    if (rc != 0) { hb_checkpoint_close(ck); return NULL; }
    return ck;
}

/* ---------- queries ---------- */

const char *hb_checkpoint_path(const hb_checkpoint *ck) { return ck->path; }
int hb_checkpoint_count(const hb_checkpoint *ck) { return ck->n; }
const char *hb_checkpoint_name(const hb_checkpoint *ck, int i) { return i >= 0 && i < ck->n ? ck->ents[i].name : NULL; }

hb_tensor hb_checkpoint_tensor(const hb_checkpoint *ck, int i) {
    if (i >= 0 && i < ck->n) return ck->ents[i].t;
    hb_tensor z;
    memset(&z, 0, sizeof z);
    return z;
}

const char *hb_checkpoint_file_of(const hb_checkpoint *ck, int i) {
    return i >= 0 && i < ck->n ? ck->files[ck->ents[i].file].path : NULL;
}

static int find(const hb_checkpoint *ck, const char *name) {
    if (!ck->hash || strlen(name) >= HB_NAME_MAX) return -1;
    int s = hash_slot(ck, ck->hash, name, false);
    if (ck->hash[s]) return ck->hash[s] - 1;
    char alt[16][HB_NAME_MAX];
    int na = hb_name_alternatives(name, alt, 16);
    for (int k = 0; k < na; k++) {
        s = hash_slot(ck, ck->hash, alt[k], false);
        if (ck->hash[s]) return ck->hash[s] - 1;
        s = hash_slot(ck, ck->hash_strip, alt[k], true);
        if (ck->hash_strip[s]) return ck->hash_strip[s] - 1;
    }
    return -1;
}

bool hb_checkpoint_has(const hb_checkpoint *ck, const char *name) { return ck && name && find(ck, name) >= 0; }

int hb_checkpoint_get(const hb_checkpoint *ck, const char *name, hb_tensor *out) {
    int i = find(ck, name);
    if (i < 0) {
        if (ck->nfiles == 1) return hb_error("%s: no tensor '%s'", ck->files[0].path, name);
        return hb_error("%s: no tensor '%s' in any of its %d files", ck->path, name, ck->nfiles);
    }
    *out = ck->ents[i].t;
    return 0;
}

int hb_checkpoint_get_shaped(const hb_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                             hb_tensor *out) {
    int i = find(ck, name);
    if (i < 0) return hb_checkpoint_get(ck, name, out);
    const ck_entry *e = &ck->ents[i];
    char what[HB_NAME_MAX * 2 + 64];
    if (strcmp(e->name, name)) snprintf(what, sizeof what, "tensor '%s' (stored as '%s')", name, e->name);
    else snprintf(what, sizeof what, "tensor '%s'", name);
    if (hb_tensor_expect(&e->t, what, ndim, shape) != 0)
        return hb_error_prefix("%s", ck->files[e->file].path);
    *out = e->t;
    return 0;
}

const char *hb_checkpoint_metadata(const hb_checkpoint *ck, const char *key) {
    for (int i = 0; i < ck->nmeta; i++) if (!strcmp(ck->meta[2 * i], key)) return ck->meta[2 * i + 1];
    return NULL;
}

const char *hb_checkpoint_metadata_key(const hb_checkpoint *ck, int i) {
    return i >= 0 && i < ck->nmeta ? ck->meta[2 * i] : NULL;
}

bool hb_checkpoint_zero_copy(const hb_checkpoint *ck, int i) { return i >= 0 && i < ck->n && !ck->ents[i].copied; }
