/* Truncation sweep over every file of a tiny random-weight model folder: each file is cut at several offsets
 * (empty, a few bytes, a third, half, all but its last byte) and the folder opened and, when it opens, used to
 * generate with each decoder that reads the file. Every case must fail with one error line naming the cut
 * file (or the folder part it belongs to), never crash, and never produce a video from a damaged file. */
#include "testlib.h"
#include "hummingbird.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 64

static int list_files(const char *dir, const char *rel, char names[][256], int n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    DIR *d = opendir(path);
    if (!d) return n;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_FILES) {
        if (e->d_name[0] == '.') continue;
        char sub[256], full[1300];
        int k = snprintf(sub, sizeof sub, "%s%s%.200s", rel, *rel ? "/" : "", e->d_name);
        if (k < 0 || (size_t)k >= sizeof sub) continue;
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) n = list_files(dir, sub, names, n);
        else memcpy(names[n++], sub, sizeof sub);
    }
    closedir(d);
    return n;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

static void put(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(b, 1, n, f);
    fclose(f);
}

/* Load the folder and generate with each decoder: returns 1 if everything succeeded (the damage went unnoticed),
 * 0 if something failed (the error is then in hb_last_error_message()). */
static int load_and_generate(const char *dir) {
    hb_model *m = hb_model_load(dir, NULL);
    if (!m) return 0;
    static const hb_gen_vae vaes[] = {HB_GEN_VAE_DEFAULT, HB_GEN_VAE_FULL, HB_GEN_VAE_TAE};
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        hb_generate_params p;
        hb_generate_params_init(&p);
        p.prompt = "a red fox";
        p.width = p.height = 64;
        p.frames = 5;
        p.vae = vaes[i];
        hb_video_frames v;
        if (hb_generate(m, &p, &v) != 0) ok = 0;
        else hb_frames_free(&v);
    }
    hb_model_free(m);
    return ok;
}

int main(void) {
    const char *tmp = tl_tmpdir();
    char dir[512], cmd[2048], log[4096];
    snprintf(dir, sizeof dir, "%s/model", tmp);
    snprintf(cmd, sizeof cmd, "'%s' generate --demo-dir '%s' -p x -W 64 -H 64 -f 5 -q -o '%s/warm.mp4' 2>&1",
             tl_hb_bin(), dir, tmp);
    if (tl_run(cmd, log, sizeof log) != 0) { fprintf(stderr, "%s\n", log); CHECK(!"tiny model written"); return tl_done(); }
    CHECKF(load_and_generate(dir) == 1, "the intact folder: %s", hb_last_error_message());

    static char names[MAX_FILES][256];
    int nf = list_files(dir, "", names, 0), cases = 0, files = 0;
    for (int i = 0; i < nf; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%.500s/%.255s", dir, names[i]);
        size_t n;
        uint8_t *orig = slurp(path, &n);
        if (!orig || n == 0) { free(orig); continue; }
        size_t content = n; /* text files: trailing whitespace is not content */
        while (content > 1 && strchr(" \t\r\n", orig[content - 1])) content--;
        size_t cuts[6] = {0, 1, 8, content / 3, content / 2, content - 1};
        files++;
        for (int c = 0; c < 6; c++) {
            if (cuts[c] >= content || (c > 0 && cuts[c] <= cuts[c - 1])) continue;
            put(path, orig, cuts[c]);
            cases++;
            int unnoticed = load_and_generate(dir);
            const char *e = hb_last_error_message();
            const char *base = strrchr(names[i], '/') ? strrchr(names[i], '/') + 1 : names[i];
            CHECKF(!unnoticed, "%s cut to %zu of %zu bytes: loaded and generated", names[i], cuts[c], n);
            if (!unnoticed)
                CHECKF(e && *e && !strchr(e, '\n') && (strstr(e, base) || strstr(e, dir)),
                       "%s cut to %zu bytes: error '%s' should be one line naming the file", names[i], cuts[c], e);
        }
        put(path, orig, n);
        free(orig);
    }
    CHECKF(load_and_generate(dir) == 1, "the restored folder: %s", hb_last_error_message());
    printf("truncation sweep: %d files of a tiny model folder, %d truncated copies, each refused with one error\n",
           files, cases);
    return tl_done();
}
