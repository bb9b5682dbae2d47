/* io internals shared by checkpoint.c (the container and lookup), safetensors.c, pth.c and names.c.
 * Not part of the public API: only src/io/ and the io tests/fuzzers include it. */
#ifndef HB_IO_INTERNAL_H
#define HB_IO_INTERNAL_H

#include "io/checkpoint.h"

/* Limits on untrusted input. */
#define HB_ST_MAX_HEADER (100u << 20) /* safetensors JSON header: 100 MB */
#define HB_PKL_MAX_BYTES (256u << 20) /* data.pkl */

typedef struct ck_file {
    char *path;   /* as opened (for messages and hb inspect) */
    void *map;    /* mmap of the whole file (NULL when size 0 or not mapped) */
    int fd;       /* kept open for hb__ck_copy_out's pread */
    size_t size;
} ck_file;

typedef struct ck_entry {
    char *name;
    int file;     /* index into files */
    hb_tensor t;
    bool copied;  /* data lives in an owned aligned buffer (misaligned, compressed or fp8 source) */
    bool fp8;     /* stored F8_E4M3 (t is U8 until ck_resolve_fp8 dequantizes it) */
} ck_entry;

struct hb_checkpoint {
    char *path;
    ck_file *files;
    int nfiles, capfiles;
    ck_entry *ents;
    int n, cap;
    int *hash;          /* exact names: slot -> entry index + 1, 0 = empty */
    int *hash_strip;    /* names without "model." etc prefixes */
    int hcap;
    void **owned;       /* hb_malloc'd buffers freed on close */
    int nowned, capowned;
    char **meta;        /* key, value pairs */
    int nmeta, capmeta;
};

hb_checkpoint *hb__ck_new(const char *path);
/* Map a whole file read-only and register it; returns the file index or -1 (+ message). */
int hb__ck_map_file(hb_checkpoint *ck, const char *path);
/* Register a tensor; rejects duplicate names (message names `where` and the tensor). */
int hb__ck_add_tensor(hb_checkpoint *ck, const char *where, const char *name, int file, hb_tensor t, bool copied);
int hb__ck_own(hb_checkpoint *ck, void *p); /* frees p itself on failure */
/* An owned, 64-byte aligned copy of n bytes at src (inside the mapping of file `file`), read with pread
 * so the mapping's pages are not faulted in (a copied tensor is not resident twice). */
void *hb__ck_copy_out(hb_checkpoint *ck, int file, const void *src, size_t n, const char *what);
int hb__ck_add_meta(hb_checkpoint *ck, const char *key, const char *value); /* later keys do not override */
int hb__ck_finish(hb_checkpoint *ck); /* builds the hash tables (once; later calls do nothing) */
int hb__ck_find_exact(const hb_checkpoint *ck, const char *name); /* entry index or -1; after hb__ck_finish */
/* Scaled fp8 (io/fp8.c): every F8_E4M3 tensor becomes BF16 = e4m3 x its scale (per tensor or per output channel:
 * NAME.scale_weight for NAME.weight (ComfyUI/Kijai), NAME.weight_scale (LightX2V, newer ComfyUI)); after hb__ck_finish. */
int hb__ck_resolve_fp8(hb_checkpoint *ck);

/* Loaders: add the tensors of one file to ck. */
int hb__st_load(hb_checkpoint *ck, const char *path);
int hb__st_load_index(hb_checkpoint *ck, const char *index_path);
int hb__pth_load(hb_checkpoint *ck, const char *path);
int hb__gguf_load(hb_checkpoint *ck, const char *path);
/* Parse a GGUF image held in memory (used by hb__gguf_load and the fuzzer); ck NULL = validate only. */
int hb__gguf_parse(hb_checkpoint *ck, const char *path, int file, const uint8_t *base, size_t size);

/* Parse a safetensors image held in memory (used by hb__st_load and the fuzzers). base must stay valid. */
int hb__st_parse(hb_checkpoint *ck, const char *path, int file, const uint8_t *base, size_t size);

/* Name mapping. Writes up to `cap` alternative spellings of `name` (official <-> diffusers/transformers,
 * prefixes stripped) into out[] (each HB_NAME_MAX bytes); returns how many. out[0] is the name without
 * training prefixes. */
#define HB_NAME_MAX 256
int hb_name_alternatives(const char *name, char out[][HB_NAME_MAX], int cap);
/* The official name of tensor `name` of ck (prefix stripped, other namings translated; hb quantize). */
void hb_name_official(const hb_checkpoint *ck, const char *name, char out[HB_NAME_MAX]);
/* The name without "model." / "generator." / "model.diffusion_model." (pointer into name). */
const char *hb_name_strip_prefix(const char *name);

#endif
