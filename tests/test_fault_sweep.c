/* Fault injection over hb generate on a tiny random-weight model (SQLite's habit): the malloc-failure injector
 * (tests/fault/malloc_fail.c, LD_PRELOADed) fails the Nth allocation made by the engine's own code, for N
 * spread evenly over every allocation of a run (all of them with HB_FAULT_FULL=1; otherwise as many as fit in
 * HB_FAULT_SECONDS, default 40). Every run must end with exit status 0 and the reference video, or exit status 1
 * and one error line; never a crash, a hang, a partial output file or a leftover temporary file. */
#include "testlib.h"
#include "io/video.h"
#include "media_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *lib, *model, *out_dir, *tmp_dir;
    hb_video ref;
    int runs, videos, errors;
} sweep;

/* Run hb generate failing allocation n (0: none); returns its exit status, the allocation count in *count. */
static int run_one(const sweep *s, unsigned long n, unsigned long *count, char *log, size_t cap) {
    char cmd[4096], rep[600];
    snprintf(rep, sizeof rep, "%s/report", s->tmp_dir);
    unlink(rep);
    snprintf(cmd, sizeof cmd,
             "TMPDIR='%s' timeout -s KILL 60 env LD_PRELOAD='%s' HB_FAULT_FAIL=%lu HB_FAULT_REPORT='%s' '%s' generate "
             "-m '%s' -p 'a red fox' -W 64 -H 64 -f 5 -t 2 -q -o '%s/v.mp4' 2>&1",
             s->tmp_dir, s->lib, n, rep, tl_hb_bin(), s->model, s->out_dir);
    int rc = tl_run(cmd, log, cap);
    *count = 0;
    FILE *f = fopen(rep, "r");
    if (f) {
        if (fscanf(f, "%lu", count) != 1) *count = 0;
        fclose(f);
        unlink(rep);
    }
    return rc;
}

/* The checks on one faulty run. */
static void check_run(sweep *s, unsigned long n, int rc, const char *log) {
    char out[600];
    snprintf(out, sizeof out, "%s/v.mp4", s->out_dir);
    s->runs++;
    CHECKF(rc == 0 || rc == 1, "allocation %lu failed: exit status %d (crash, hang or abort)\n%s", n, rc, log);
    int left = mu_count_entries(s->out_dir, NULL), tmp_left = mu_count_entries(s->tmp_dir, NULL);
    CHECKF(tmp_left == 0, "allocation %lu failed: %d files left in TMPDIR", n, tmp_left);
    if (rc == 1) {
        s->errors++;
        size_t len = strlen(log);
        CHECKF(len > 0 && strchr(log, '\n') == log + len - 1 && !strncmp(log, "hb generate: ", 13),
               "allocation %lu failed: the output is not one error line:\n%s", n, log);
        CHECKF(left == 0, "allocation %lu failed: the failed run left %d files in the output folder", n, left);
    } else if (rc == 0) {
        s->videos++;
        CHECKF(left == 1, "allocation %lu failed: %d files in the output folder, want the video only", n, left);
        hb_video v;
        bool same = hb_video_read(out, 0, &v) == 0 && v.frames == s->ref.frames && v.width == s->ref.width &&
                    v.height == s->ref.height &&
                    !memcmp(v.rgb, s->ref.rgb, (size_t)v.frames * v.height * v.width * 3);
        CHECKF(same, "allocation %lu failed: exit 0 but the video differs from the reference", n);
        if (v.rgb) hb_video_free(&v);
    }
    unlink(out);
}

int main(void) {
    const char *lib = getenv("HB_FAULT_LIB");
    if (!lib || access(lib, R_OK) != 0) tl_skip("no malloc-failure injector (HB_FAULT_LIB; not built under sanitizers)");
    const char *dir = tl_tmpdir();
    char model[512], out_dir[512], tmp_dir[512], cmd[2048], log[16384];
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(out_dir, sizeof out_dir, "%s/out", dir);
    snprintf(tmp_dir, sizeof tmp_dir, "%s/tmp", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s' && '%s' generate --demo-dir '%s' -p x -W 64 -H 64 -f 5 -q -o '%s/warm.mp4' 2>&1",
             out_dir, tmp_dir, tl_hb_bin(), model, dir);
    if (tl_run(cmd, log, sizeof log) != 0) { fprintf(stderr, "%s\n", log); CHECK(!"tiny model written"); return tl_done(); }

    sweep s = {lib, model, out_dir, tmp_dir, {0}, 0, 0, 0};
    unsigned long total;
    double t0 = hb_time_now();
    int rc = run_one(&s, 0, &total, log, sizeof log);
    double t_run = hb_time_now() - t0;
    snprintf(cmd, sizeof cmd, "%s/v.mp4", out_dir);
    CHECKF(rc == 0 && total > 0 && hb_video_read(cmd, 0, &s.ref) == 0, "reference run: exit %d, %lu allocations\n%s",
           rc, total, log);
    if (rc != 0 || !s.ref.rgb) return tl_done();
    unlink(cmd);

    const char *full = getenv("HB_FAULT_FULL"), *secs = getenv("HB_FAULT_SECONDS");
    double budget = secs ? atof(secs) : 40.0;
    /* N spread evenly over [1, total] in a low-discrepancy order (golden-ratio steps from a random phase), so that
     * a sweep cut short by the time budget still covers the whole run */
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    double phase = (double)(hb_rng_u64(&r) >> 11) / 9007199254740992.0;
    t0 = hb_time_now();
    for (unsigned long i = 0; i < total; i++) {
        unsigned long n = full ? i + 1 : 1 + (unsigned long)(fmod(phase + (double)i * 0.6180339887498949, 1.0) * total);
        if (!full && hb_time_now() - t0 > budget) break;
        unsigned long count;
        int rrc = run_one(&s, n, &count, log, sizeof log);
        check_run(&s, n, rrc, log);
        if (tl_failures > 20) break;
    }
    printf("fault sweep: %lu engine allocations per run (a run takes %.2f s); %d runs, each failing one allocation "
           "(%s): %d clean errors, %d runs recovered with the reference video, %d failed checks\n",
           total, t_run, s.runs, full ? "every one" : "spread evenly", s.errors, s.videos, tl_failures);
    hb_video_free(&s.ref);
    return tl_done();
}
