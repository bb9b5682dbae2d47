#include "testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

int tl_checks, tl_failures;
static char g_tmp[256];

uint64_t tl_seed(void) {
    const char *e = getenv("HB_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    fprintf(stderr, "seed %llu (set HB_TEST_SEED to replay)\n", (unsigned long long)s);
    return s;
}

void tl_fill_normal(hb_rng *r, float *x, int64_t n, float std) { for (int64_t i = 0; i < n; i++) x[i] = std * hb_rng_normal(r); }
void tl_fill_uniform(hb_rng *r, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * hb_rng_uniform(r);
}

double tl_rel_err(const float *ours, const float *ref, int64_t n) {
    double maxd = 0, maxr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        if (!(d <= maxd)) maxd = d;
        if (fabs(ref[i]) > maxr) maxr = fabs(ref[i]);
    }
    return maxr > 0 ? maxd / maxr : maxd;
}

const char *tl_shared_dir(void) {
    const char *c[3] = {getenv("HB_SHARED"), getenv("HB_SHARED_DEFAULT"), "../shared"};
    struct stat st;
    for (int i = 0; i < 3; i++)
        if (c[i] && *c[i] && stat(c[i], &st) == 0 && S_ISDIR(st.st_mode)) return c[i];
    return NULL;
}

void tl_skip(const char *why) {
    /* checks that already ran still count: a failure before the skip fails the test */
    if (tl_failures) {
        printf("SKIP of the rest: %s\n", why);
        exit(tl_done());
    }
    if (tl_checks) printf("(%d checks passed before the skip)\n", tl_checks);
    printf("SKIP: %s\n", why);
    exit(77);
}

const char *tl_shared_file(const char *rel, char *buf, size_t cap) {
    const char *d = tl_shared_dir();
    if (!d) tl_skip("shared/ folder not found (set HB_SHARED to the folder with spec/, golden/, tokenizers/)");
    snprintf(buf, cap, "%s/%s", d, rel);
    if (access(buf, R_OK) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s is missing", buf);
        tl_skip(msg);
    }
    return buf;
}

const char *tl_hb_bin(void) {
    const char *b = getenv("HB_BIN");
    return b && *b ? b : "./hb";
}

const char *tl_tmpdir(void) {
    if (!g_tmp[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmp, sizeof g_tmp, "%s/hbtest.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(g_tmp)) { perror("mkdtemp"); exit(1); }
    }
    return g_tmp;
}

int tl_hb(const char *args, char *out, size_t cap) {
    size_t n = strlen(tl_hb_bin()) + strlen(args) + 16;
    char *cmd = malloc(n);
    if (!cmd) return -1;
    snprintf(cmd, n, "'%s' %s 2>&1", tl_hb_bin(), args);
    int rc = tl_run(cmd, out, cap);
    free(cmd);
    return rc;
}

int tl_run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = 0;
    char tmp[4096];
    size_t got;
    while ((got = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && n + 1 < cap) {
            size_t k = got < cap - 1 - n ? got : cap - 1 - n;
            memcpy(out + n, tmp, k);
            n += k;
        }
    }
    if (out && cap) out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#if defined(__SANITIZE_ADDRESS__)
#define TL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_ASAN 1
#endif
#endif

int tl_run_capped(int (*fn)(void *), void *arg, int as_mib) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
#ifndef TL_ASAN
        struct rlimit rl = {(rlim_t)as_mib << 20, (rlim_t)as_mib << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(99);
#else
        (void)as_mib;
#endif
        int rc = fn(arg);
        fflush(NULL);
        _exit(rc);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tl_check_golden_cli(const char *rel) {
    char path[1024], cmd[2300], out[8192];
    tl_shared_file(rel, path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s golden %s 2>&1", tl_hb_bin(), path);
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "=> PASS") != NULL, "hb golden %s: exit %d\n%s", rel, rc, out);
}

int tl_done(void) {
    if (g_tmp[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    }
    printf("%d passed, %d failed\n", tl_checks - tl_failures, tl_failures);
    hb_threads_shutdown();
    return tl_failures || tl_checks == 0 ? 1 : 0;
}

float *tl_dev_upload(const float *host, int64_t n) {
    float *d = hb_dev_alloc(sizeof(float) * (size_t)n, "test buffer");
    if (d && hb_dev_upload(d, host, sizeof(float) * (size_t)n)) { hb_dev_free(d); d = NULL; }
    CHECKF(d != NULL, "upload of %lld floats: %s", (long long)n, hb_last_error());
    return d;
}

bool tl_dev_same(const float *dev, const float *ref, int64_t n) {
    float *h = malloc(sizeof(float) * (size_t)n);
    bool ok = h && dev && hb_dev_download(h, dev, sizeof(float) * (size_t)n) == 0 &&
              memcmp(h, ref, sizeof(float) * (size_t)n) == 0;
    if (h && dev && !ok) printf("    (rel err %.2e)\n", tl_rel_err(h, ref, n));
    free(h);
    return ok;
}
