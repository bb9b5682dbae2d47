/* Shared helpers of the io fuzz targets: a per-process scratch folder, byte files, and a checkpoint walk
 * that reads every byte of every tensor (so a bad pointer shows up under ASan). */
#ifndef HB_FUZZ_COMMON_H
#define HB_FUZZ_COMMON_H

#include "io/checkpoint.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline const char *fz_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof dir, "%s/hbfuzz.XXXXXX", base);
        if (!mkdtemp(dir)) abort();
    }
    return dir;
}

static inline void fz_write(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

static volatile unsigned fz_sink;

static inline void fz_walk(hb_checkpoint *ck) {
    unsigned acc = 0;
    for (int i = 0; i < hb_checkpoint_count(ck); i++) {
        hb_tensor t = hb_checkpoint_tensor(ck, i);
        size_t nb = hb_tensor_nbytes(&t);
        const unsigned char *p = t.data;
        for (size_t k = 0; k < nb; k++) acc += p[k];
        acc += (unsigned)strlen(hb_checkpoint_name(ck, i)) + (unsigned)strlen(hb_checkpoint_file_of(ck, i));
        hb_tensor u;
        if (hb_checkpoint_get(ck, hb_checkpoint_name(ck, i), &u) != 0 || u.data != t.data) abort();
    }
    for (int i = 0; hb_checkpoint_metadata_key(ck, i); i++)
        acc += (unsigned)strlen(hb_checkpoint_metadata(ck, hb_checkpoint_metadata_key(ck, i)));
    fz_sink = acc;
}

/* Open path as a checkpoint: on success read every byte and close it, else the error must name the file. */
static inline void fz_check_open(const char *path) {
    hb_checkpoint *ck = hb_checkpoint_open(path);
    if (ck) {
        fz_walk(ck);
        hb_checkpoint_close(ck);
    } else if (!strstr(hb_last_error(), path)) {
        abort(); /* every error names the file */
    }
}

/* The input as the file `name` in the scratch folder, opened as a checkpoint. */
static inline void fz_check_file(const char *name, const uint8_t *data, size_t size) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    fz_write(path, data, size);
    fz_check_open(path);
}

#endif
