/* A full disk and a file-size limit under hb generate: the output goes to a small tmpfs (mounted in a private
 * mount namespace with unshare, where the machine allows it; skipped with a message otherwise) of sizes from far
 * too small to enough, and separately under ulimit -f (EFBIG). Every run must end with exit status 0 and a
 * playable video, or exit status 1 and one error line saying the disk is full, with nothing left behind (no
 * partial file, no temporary file). */
#include "testlib.h"
#include "io/video.h"
#include "media_util.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const k_outputs[] = {"v.mp4", "v.mkv", "v.y4m", "frames/"};

typedef struct { int runs, written, refused; } tally;

/* Check one run's result: exit status, its log, what it left (`left` entries in the output's folder), and the
 * copied-out video `copy` when it succeeded. */
static void check_result(tally *t, const char *label, int rc, const char *log, int left, const char *copy) {
    t->runs++;
    CHECKF(rc == 0 || rc == 1, "%s: exit status %d\n%s", label, rc, log);
    if (rc == 1) {
        t->refused++;
        CHECKF(strstr(log, "disk full") && strchr(log, '\n') == log + strlen(log) - 1,
               "%s: the error should be one line saying the disk is full:\n%s", label, log);
        CHECKF(left == 0, "%s: the failed run left %d entries", label, left);
    } else if (rc == 0) {
        t->written++;
        hb_video v;
        CHECKF(hb_video_read(copy, 0, &v) == 0 && v.frames == 5 && v.width == 64, "%s: %s", label, hb_last_error());
        hb_video_free(&v);
    }
}

static void tmpfs_sweep(const char *tmp, const char *model, tally *t) {
    char cmd[8192], log[4096], mnt[600], copy[700], list[700], lfile[700];
    snprintf(mnt, sizeof mnt, "%s/mnt", tmp);
    snprintf(lfile, sizeof lfile, "%s/log", tmp);
    snprintf(list, sizeof list, "%s/left", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && unshare -r -m sh -c 'mount -t tmpfs -o size=4k none %s' 2>&1", mnt, mnt);
    if (tl_run(cmd, log, sizeof log) != 0) {
        printf("SKIP part: cannot mount a tmpfs here (%s): the full-disk sweep is left out\n", log);
        return;
    }
    static const char *const sizes[] = {"4k", "8k", "12k", "16k", "24k", "32k", "48k", "1m"};
    for (int o = 0; o < 4; o++)
        for (int s = 0; s < 8; s++) {
            const char *out = k_outputs[o];
            snprintf(copy, sizeof copy, "%s/copy_%s", tmp, out);
            snprintf(cmd, sizeof cmd,
                     "rm -rf '%s'; unshare -r -m sh -c 'mount -t tmpfs -o size=%s none %s || exit 99; "
                     "TMPDIR=%s \"%s\" generate -m %s -p fox -W 64 -H 64 -f 5 -q -o %s/%s >%s 2>&1; rc=$?; "
                     "ls -A %s | wc -l >%s; [ $rc = 0 ] && cp -r %s/%s %s; exit $rc'",
                     copy, sizes[s], mnt, mnt, tl_hb_bin(), model, mnt, out, lfile, mnt, list, mnt, out, copy);
            int rc = tl_run(cmd, NULL, 0);
            char label[64];
            snprintf(label, sizeof label, "tmpfs of %s, -o %s", sizes[s], out);
            FILE *f = fopen(lfile, "r");
            size_t n = f ? fread(log, 1, sizeof log - 1, f) : 0;
            log[n] = 0;
            if (f) fclose(f);
            int left = -1;
            f = fopen(list, "r");
            if (f && fscanf(f, "%d", &left) != 1) left = -1;
            if (f) fclose(f);
            check_result(t, label, rc, log, left, copy);
        }
}

/* ulimit -f (KiB): the file-size limit gives EFBIG instead of ENOSPC */
static void fsize_sweep(const char *tmp, const char *model, tally *t) {
    static const int limits[] = {1, 4, 8, 16, 1024};
    char cmd[4096], log[4096], dir[600], path[700];
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 5; i++) {
            snprintf(dir, sizeof dir, "%s/fsize", tmp);
            snprintf(path, sizeof path, "%s/%s", dir, k_outputs[o]);
            snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && (ulimit -f %d; TMPDIR='%s' '%s' generate -m '%s' "
                     "-p fox -W 64 -H 64 -f 5 -q -o '%s') 2>&1",
                     dir, dir, limits[i], dir, tl_hb_bin(), model, path);
            int rc = tl_run(cmd, log, sizeof log);
            char label[64];
            snprintf(label, sizeof label, "ulimit -f %d, -o %s", limits[i], k_outputs[o]);
            check_result(t, label, rc, log, rc == 0 ? 1 : mu_count_entries(dir, NULL), path);
        }
}

int main(void) {
    const char *tmp = tl_tmpdir();
    char model[512], cmd[2048], log[4096];
    snprintf(model, sizeof model, "%s/model", tmp);
    snprintf(cmd, sizeof cmd, "'%s' generate --demo-dir '%s' -p x -W 64 -H 64 -f 5 -q -o '%s/warm.mp4' 2>&1",
             tl_hb_bin(), model, tmp);
    if (tl_run(cmd, log, sizeof log) != 0) { fprintf(stderr, "%s\n", log); CHECK(!"tiny model written"); return tl_done(); }
    tally t = {0, 0, 0};
    tmpfs_sweep(tmp, model, &t);
    int tmpfs_runs = t.runs;
    fsize_sweep(tmp, model, &t);
    printf("full disk: %d runs on a small tmpfs, %d under ulimit -f: %d videos written, %d refused with "
           "\"disk full\", nothing left behind\n", tmpfs_runs, t.runs - tmpfs_runs, t.written, t.refused);
    CHECK(t.written > 0 && t.refused > 0);
    return tl_done();
}
