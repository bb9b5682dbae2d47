/* A requested size whose estimated memory exceeds what the process may use gets one warning with the estimate
 * before any work starts (before the first progress line), naming the limit that decided: the HB_MEMORY_LIMIT
 * override, and `ulimit -v` (RLIMIT_AS) for a size whose DiT workspace cannot fit (the run then fails with the
 * allocation's message and writes nothing). Within the machine's memory there is no warning. The same for
 * hb generate --mode ar (before the first chunk line). The library's estimates grow with the size and refuse
 * bad parameters with a message. */
#include "testlib.h"
#include "hummingbird.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[4096], g_xtx[4096], g_out[16384];

static int gen(const char *env_and_ulimit, const char *size, const char *out) {
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "sh -c '%s timeout 60 \"%s\" generate -m \"%s\" -p \"a boat\" %s -o \"%s\"' 2>&1", env_and_ulimit,
             tl_hb_bin(), g_dir, size, out);
    return tl_run(cmd, g_out, sizeof g_out);
}

/* The warning's position, before any progress line, and its parts. */
static void check_warning(const char *source) {
    const char *w = strstr(g_out, "warning: "), *text = strstr(g_out, "hb generate: text");
    CHECKF(w != NULL, "no memory warning in:\n%s", g_out);
    if (!w) return;
    CHECKF(w == g_out && (!text || text > w), "the warning comes after other output:\n%s", g_out);
    CHECKF(strstr(w, "needs about") && strstr(w, "GiB") && strstr(w, source), "%s", g_out);
    double est = strtod(strstr(w, "needs about") + 12, NULL);
    CHECKF(est > 0, "estimate %.3f GiB", est);
}

static void check_cli(void) {
    char out[4300];
    snprintf(out, sizeof out, "%s/a.y4m", tl_tmpdir());
    CHECKF(gen("HB_MEMORY_LIMIT=1M", "-W 64 -H 64 -f 5", out) == 0, "%s", g_out);
    check_warning("(HB_MEMORY_LIMIT)");
    CHECK(access(out, F_OK) == 0); /* a warning, not an error */
    unlink(out);
    CHECKF(gen("", "-W 64 -H 64 -f 5", out) == 0 && !strstr(g_out, "warning"), "%s", g_out);
    unlink(out);
    /* 4096x4096x81 needs ~30 GiB: refused at the DiT's workspace under a 1.1 GiB address space, after the warning */
    CHECK(gen("ulimit -v 1200000;", "-W 4096 -H 4096 -f 81", out) != 0);
    check_warning("(ulimit -v)");
    CHECKF(strstr(g_out, "cannot reserve") != NULL && access(out, F_OK) != 0, "%s", g_out);
}

static void check_ar(void) {
    char cmd[12000], out[4300];
    snprintf(out, sizeof out, "%s/ar.y4m", tl_tmpdir());
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s '%s' generate --mode ar -m '%s' -p 'a cat' -W 64 -H 48 -f 13 -o '%s' 2>&1",
                 k ? "" : "HB_MEMORY_LIMIT=64K", tl_hb_bin(), g_xtx, out);
        CHECKF(tl_run(cmd, g_out, sizeof g_out) == 0, "%s", g_out);
        const char *w = strstr(g_out, "warning: "), *chunk = strstr(g_out, "chunk 1/");
        if (k == 0)
            CHECKF(w == g_out && chunk > w && strstr(w, "the 64x48 run needs about") && strstr(w, "(HB_MEMORY_LIMIT)"),
                   "%s", g_out);
        else
            CHECKF(!w && chunk, "%s", g_out);
    }
    hb_ar_params p;
    hb_ar_params_init(&p);
    p.width = 64, p.height = 48;
    size_t a = hb_ar_estimate_bytes(g_xtx, &p);
    p.width = 128, p.height = 96;
    size_t b = hb_ar_estimate_bytes(g_xtx, &p);
    CHECKF(a > 0 && b > a, "%zu, %zu", a, b);
    CHECK(hb_ar_estimate_bytes("/nonexistent/xtx", &p) == 0 && strstr(hb_last_error_message(), "/nonexistent/xtx"));
}

static void check_api(void) {
    hb_model *m = hb_model_load(g_dir, NULL);
    CHECKF(m != NULL, "%s", hb_last_error_message());
    if (!m) return;
    hb_generate_params p;
    hb_generate_params_init(&p);
    size_t prev = 0;
    const int sizes[3][3] = {{64, 64, 5}, {128, 128, 5}, {128, 128, 17}};
    for (int i = 0; i < 3; i++) {
        p.width = sizes[i][0], p.height = sizes[i][1], p.frames = sizes[i][2];
        size_t e = hb_generate_estimate_bytes(m, &p);
        CHECKF(e > prev, "%dx%dx%d: %zu bytes, not above %zu", p.width, p.height, p.frames, e, prev);
        prev = e;
    }
    p.width = 100;
    CHECK(hb_generate_estimate_bytes(m, &p) == 0 && strstr(hb_last_error_message(), "multiples of"));
    const char *src = NULL;
    size_t have = hb_machine_memory_bytes(&src);
    CHECK(have > 0 && src != NULL);
    hb_model_free(m);
}

int main(void) {
    (void)tl_seed();
    snprintf(g_dir, sizeof g_dir, "%s/xt", tl_tmpdir());
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "'%s' mkmodel -q --arch hummingbird-xt-flat --tiny --seed 2 '%s' 2>&1", tl_hb_bin(), g_dir);
    CHECKF(tl_run(cmd, g_out, sizeof g_out) == 0, "%s", g_out);
    snprintf(g_xtx, sizeof g_xtx, "%s/xtx", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' mkmodel -q --arch hummingbird-xtx-flat --tiny --seed 2 '%s' 2>&1", tl_hb_bin(), g_xtx);
    CHECKF(tl_run(cmd, g_out, sizeof g_out) == 0, "%s", g_out);
    check_cli();
    check_ar();
    check_api();
    return tl_done();
}
