/* hb generate under address-space limits (ulimit -v) from too small to enough, on each GEMM path: every run
 * ends within its time limit (no hang at exit, e.g. in a BLAS thread pool retrying a failed allocation), with
 * either a playable video or one error line, no crash, and no partial output or demo folder left behind. */
#include "testlib.h"
#include "io/video.h"
#include "media_util.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* One run: exit status (124: killed by the time limit), and the checks on what it left. Returns 1 if the
 * video was written. */
static int run_limited(const char *dir, long limit_kib, const char *gemm) {
    char out[600], cmd[2048], log[8192];
    snprintf(out, sizeof out, "%s/x.mp4", dir);
    unlink(out);
    snprintf(cmd, sizeof cmd,
             "ulimit -v %ld; TMPDIR='%s' HB_GEMM=%s timeout -s KILL 60 '%s' generate -p 'a test' -o '%s' 2>&1",
             limit_kib, dir, gemm, tl_hb_bin(), out);
    double t0 = hb_time_now();
    int rc = tl_run(cmd, log, sizeof log);
    double dt = hb_time_now() - t0;
    const char *last = log + strlen(log);
    while (last > log && last[-1] == '\n') last--;
    while (last > log && last[-1] != '\n') last--;
    printf("ulimit -v %6ld KiB, HB_GEMM=%-8s: exit %3d in %5.1f s: %s", limit_kib, gemm, rc, dt, last);
    CHECKF(rc == 0 || rc == 1, "exit status %d (124/137/-1: hung or killed, >128: crashed)\n%s", rc, log);
    CHECKF(mu_count_entries(dir, "hb-demo") == 0, "a demo folder was left in %s", dir);
    CHECKF(mu_count_entries(dir, ".tmp") == 0, "a temporary file was left in %s", dir);
    if (rc != 0) {
        CHECKF(access(out, F_OK) != 0, "failed run left %s", out);
        CHECKF(strstr(last, "hb generate: ") == last, "the last line is not the error: %s", last);
        return 0;
    }
    hb_video v;
    CHECKF(hb_video_read(out, 0, &v) == 0 && v.frames == 17 && v.width == 256, "%s: %s", out, hb_last_error());
    hb_video_free(&v);
    return 1;
}

/* The smallest limit (KiB, to 4 MiB) under which hb starts at all: its shared libraries alone need most of it, and
 * how much depends on the machine's FFmpeg build. */
static long start_limit(void) {
    long lo = 16384, hi = 4 << 20;
    char cmd[1200];
    while (hi - lo > 4096) {
        long mid = (lo + hi) / 2;
        snprintf(cmd, sizeof cmd, "ulimit -v %ld; '%s' --version >/dev/null 2>&1", mid, tl_hb_bin());
        if (tl_run(cmd, NULL, 0) == 0) hi = mid;
        else lo = mid;
    }
    return hi;
}

int main(void) {
#ifdef UNDER_ASAN
    tl_skip("AddressSanitizer needs terabytes of address space: ulimit -v cannot be tested in this build");
#endif
    const char *dir = tl_tmpdir();
    long base = start_limit();
    printf("hb starts under ulimit -v %ld KiB\n", base);
    CHECKF(base < (4 << 20), "%s --version does not run even under a 4 GiB limit", tl_hb_bin());
    /* from just enough to start up to plenty (the 300000 KiB of the original report is base + ~130 MiB here) */
    const long limits[] = {base + 8192, base + 65536, base + 102400, base + 133120, base + 1048576};
    static const char *const gemms[] = {"", "openblas"};
    int written = 0, runs = 0;
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < 5; i++) {
            written += run_limited(dir, limits[i], gemms[g]);
            runs++;
        }
    printf("%d runs under a memory limit: %d videos written, %d clean errors, none hung\n", runs, written,
           runs - written);
    CHECKF(written > 0, "no run succeeded, even at %ld KiB", limits[4]);
    return tl_done();
}
