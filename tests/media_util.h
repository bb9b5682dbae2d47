/* Helpers shared by the media tests (test_image, test_video, test_metrics): synthetic frames, the
 * python interpreter for the reference scripts, folder listings, hb metrics' PSNR. Header-only (static). */
#ifndef HB_TESTS_MEDIA_UTIL_H
#define HB_TESTS_MEDIA_UTIL_H

#include "testlib.h"
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Non-constant test frames [T, H, W, 3]: per-channel gradients, a disc and a bar that move with t,
 * plus uniform noise of +-noise levels (noise = 0: smooth content that codecs compress well). */
static inline void mu_render(hb_rng *r, uint8_t *rgb, int T, int H, int W, int noise) {
    double ph = hb_rng_uniform(r) * 6.28, cx0 = W * (0.2 + 0.2 * hb_rng_uniform(r)), cy0 = H * (0.3 + 0.3 * hb_rng_uniform(r));
    for (int t = 0; t < T; t++) {
        double cx = cx0 + 1.5 * t, cy = cy0 + 0.7 * t, rad = 0.18 * (H < W ? H : W);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double v[3] = {40 + 170.0 * x / W, 30 + 190.0 * y / H, 128 + 90 * sin(ph + 0.11 * x + 0.07 * y + 0.2 * t)};
                /* soft-edged (about 3 px) disc and bar: smooth content, as decoded video is */
                double d = sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
                double a = fmin(1.0, fmax(0.0, (rad - d) / 3.0 + 0.5));
                double shape[3] = {230, 60 + 3 * t, 40};
                for (int c = 0; c < 3; c++) v[c] = (1 - a) * v[c] + a * shape[c];
                double bx = x - (W / 2 + t + W / 16.0), bw = W / 16.0;
                double b = fmin(1.0, fmax(0.0, (bw - fabs(bx)) / 3.0 + 0.5));
                v[0] = (1 - b) * v[0] + b * 0.4 * v[0];
                v[1] = (1 - b) * v[1] + b * 220;
                for (int c = 0; c < 3; c++) {
                    double n = noise ? (hb_rng_uniform(r) * 2 - 1) * noise : 0;
                    double q = v[c] + n;
                    rgb[(((size_t)t * H + y) * W + x) * 3 + c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : lrint(q));
                }
            }
    }
}

/* A python3 that can import `modules` (e.g. "numpy, skimage, PIL"), or NULL. */
static inline const char *mu_python(const char *modules) {
    static const char *cands[] = {"python3", "/usr/bin/python3"};
    static char ok[64];
    for (int i = 0; i < 2; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -c 'import %s' >/dev/null 2>&1", cands[i], modules);
        if (tl_run(cmd, NULL, 0) == 0) {
            snprintf(ok, sizeof ok, "%s", cands[i]);
            return ok;
        }
    }
    return NULL;
}

/* Path of tests/reference/<name> in the source tree (HB_SOURCE_DIR, set by ctest), or NULL. */
static inline const char *mu_ref_script(const char *name, char *buf, size_t cap) {
    const char *s = getenv("HB_SOURCE_DIR");
    if (!s || !*s) return NULL;
    snprintf(buf, cap, "%s/tests/reference/%s", s, name);
    return buf;
}

/* Number of entries in a folder (excluding . and ..); names containing `needle` only when not NULL. */
static inline int mu_count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!needle || strstr(e->d_name, needle))) n++;
    closedir(d);
    return n;
}

static inline double mu_max_absdiff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) { int d = abs((int)a[i] - (int)b[i]); if (d > m) m = d; }
    return m;
}

/* Mean PSNR of video b against video a by `hb metrics --json` (identical videos: 1e9; a failed run: 0, with
 * its output in out). */
static inline double mu_psnr(const char *a, const char *b, char *out, size_t cap) {
    size_t n = strlen(a) + strlen(b) + 32;
    char *args = malloc(n);
    if (!args) return 0;
    snprintf(args, n, "metrics '%s' '%s' --json", a, b);
    int rc = tl_hb(args, out, cap);
    free(args);
    if (rc != 0) return 0;
    json_t *j = json_loads(strchr(out, '{') ? strchr(out, '{') : out, JSON_DISABLE_EOF_CHECK, NULL);
    json_t *v = json_object_get(j, "psnr_mean");
    double p = json_is_null(v) ? 1e9 : json_is_number(v) ? json_number_value(v) : 0;
    json_decref(j);
    return p;
}

#endif
