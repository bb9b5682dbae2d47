/* Whole models on device backends, through the CLI:
 *  1. `hb golden -d DEV FILE` for every golden file in shared/golden (*.safetensors), DEV in {cpu-guard, cuda}
 *     (cuda = HB_TEST_DEVICE when set). Tolerances are hb golden's own: 1e-4 normwise for cpu-guard (float32,
 *     the CPU kernels), 5e-2 for a GPU (its default: bf16 operands in the matrix products).
 *  2. End to end: a tiny random-weight Hummingbird-XT folder (`hb mkmodel --arch hummingbird-xt --tiny`, the release layout),
 *     `hb generate -W 64 -H 64 -f 5 --seed 11` to PNG frames (lossless; no FFmpeg needed) on the CPU, on cpu-guard (must give the same frames
 *     bit for bit: same kernels) and on the GPU (mean PSNR over frames >= 30 dB against the CPU video, and
 *     every frame >= 25 dB).
 * The cpu-guard part runs on any machine; without a GPU backend the test then exits 77 (skip) with the reason.
 * A missing shared/golden folder skips part 1 only. */
#include "testlib.h"
#include "io/metrics.h"
#include "io/video.h"
#include "ops/ops.h"
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted *.safetensors names of dir (malloc'ed array of malloc'ed names), count in *n. */
static char **list_golden(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            v = realloc(v, sizeof(char *) * (size_t)cap);
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(v, (size_t)*n, sizeof(char *), cmp_str);
    return v;
}

static void golden_on(const char *dev, const char *dir, char **files, int n) {
    static char out[1 << 16];
    for (int i = 0; i < n; i++) {
        char cmd[2300];
        snprintf(cmd, sizeof cmd, "'%s' golden -d %s '%s/%s' 2>&1", tl_hb_bin(), dev, dir, files[i]);
        double t0 = hb_time_now();
        int rc = tl_run(cmd, out, sizeof out);
        bool pass = rc == 0 && strstr(out, "=> PASS") != NULL;
        const char *w = strstr(out, "worst ");
        int wl = w ? (int)strcspn(w, "\n") : 0;
        printf("golden %-10s %-32s %s  %.1f s  %.*s\n", dev, files[i], pass ? "PASS" : "FAIL", hb_time_now() - t0, wl,
               w ? w : "");
        CHECKF(pass, "hb golden -d %s %s: exit %d\n%s", dev, files[i], rc, out);
    }
}

static bool read_video(const char *path, hb_video *v) {
    int rc = hb_video_read(path, 0, v);
    if (rc) fprintf(stderr, "read %s: %s\n", path, hb_last_error());
    return rc == 0;
}

static int generate(const char *dev, const char *model, const char *outp) {
    static char out[1 << 15];
    char cmd[2300];
    snprintf(cmd, sizeof cmd,
             "'%s' generate -q -d %s -m '%s' -p 'a cat walking on the beach' -W 64 -H 64 -f 5 --seed 11 -o '%s' 2>&1",
             tl_hb_bin(), dev, model, outp);
    double t0 = hb_time_now();
    int rc = tl_run(cmd, out, sizeof out);
    printf("generate on %-10s exit %d  %.1f s\n", dev, rc, hb_time_now() - t0);
    if (rc) fprintf(stderr, "command failed (%d): %s\n%s\n", rc, cmd, out);
    return rc;
}

/* Frames of b against a: mean and minimum PSNR (inf when equal). */
static void video_psnr(const hb_video *a, const hb_video *b, double *mean, double *minp) {
    size_t fsz = (size_t)a->width * (size_t)a->height * 3;
    double s = 0, mn = INFINITY;
    for (int f = 0; f < a->frames; f++) {
        double p = hb_metric_psnr(a->rgb + f * fsz, b->rgb + f * fsz, fsz);
        s += isinf(p) ? 100 : p;
        mn = p < mn ? p : mn;
    }
    *mean = a->frames ? s / a->frames : 0;
    *minp = mn;
}

static void e2e(const char *gpu, bool have_gpu) {
    const char *tmp = tl_tmpdir();
    char model[600], cmd[1400], out[8192], pcpu[700], pdev[700];
    snprintf(model, sizeof model, "%s/model", tmp);
    snprintf(cmd, sizeof cmd, "'%s' mkmodel -q --arch hummingbird-xt --tiny --dtype bf16 --seed 3 '%s' 2>&1", tl_hb_bin(),
             model);
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "hb mkmodel: exit %d\n%s", rc, out);
    if (rc) return;
    snprintf(pcpu, sizeof pcpu, "%s/cpu/", tmp);
    CHECK(generate("cpu", model, pcpu) == 0);
    hb_video ref = {0};
    if (!read_video(pcpu, &ref)) { CHECK(0); return; }
    CHECK(ref.frames == 5 && ref.width == 64 && ref.height == 64);
    const char *devs[2] = {"cpu-guard", gpu};
    for (int i = 0; i < (have_gpu ? 2 : 1); i++) {
        snprintf(pdev, sizeof pdev, "%s/%s/", tmp, i ? "gpu" : "guard");
        rc = generate(devs[i], model, pdev);
        CHECKF(rc == 0, "hb generate -d %s failed", devs[i]);
        hb_video v = {0};
        if (rc || !read_video(pdev, &v)) continue;
        bool same_size = v.frames == ref.frames && v.width == ref.width && v.height == ref.height;
        CHECKF(same_size, "%s: %dx%dx%d frames, CPU %dx%dx%d", devs[i], v.frames, v.width, v.height, ref.frames,
               ref.width, ref.height);
        if (same_size) {
            double mean, mn;
            video_psnr(&ref, &v, &mean, &mn);
            bool equal = !memcmp(v.rgb, ref.rgb, (size_t)ref.frames * ref.width * ref.height * 3);
            if (equal) printf("generate %-10s vs cpu: bitwise equal frames\n", devs[i]);
            else printf("generate %-10s vs cpu: mean PSNR %.2f dB, min %.2f dB\n", devs[i], mean, mn);
            if (i == 0) CHECKF(equal, "cpu-guard video differs from the CPU video (mean PSNR %.2f dB)", mean);
            else CHECKF(mean >= 30 && mn >= 25, "%s video: mean PSNR %.2f dB (need >= 30), min %.2f (need >= 25)",
                        devs[i], mean, mn);
        }
        hb_video_free(&v);
    }
    hb_video_free(&ref);
}

int main(void) {
    tl_seed();
    const char *gpu = getenv("HB_TEST_DEVICE");
    if (!gpu || !*gpu) gpu = "cuda";
    const hb_backend *be = hb_backend_find(gpu);
    char why[600] = "";
    if (!be) snprintf(why, sizeof why, "GPU backend '%s' not available (%s); only the cpu-guard runs were checked", gpu,
                      hb_last_error());
    else printf("device %s: backend '%s'\n", gpu, be->name);

    const char *sd = tl_shared_dir();
    char dir[1024];
    int n = 0;
    char **files = NULL;
    if (sd) {
        snprintf(dir, sizeof dir, "%s/golden", sd);
        files = list_golden(dir, &n);
    }
    if (!n) printf("no golden files (shared/golden not found: set HB_SHARED); skipping the golden runs\n");
    else {
        golden_on("cpu-guard", dir, files, n);
        if (be) golden_on(gpu, dir, files, n);
    }
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);

    e2e(gpu, be != NULL);
    if (!be) tl_skip(why);
    return tl_done();
}
