/* A small test harness: CHECK macros that count, fresh random data, the shared/ folder, skips. */
#ifndef HB_TESTLIB_H
#define HB_TESTLIB_H

#include "core/core.h"
#include <stdio.h>

extern int tl_checks, tl_failures;

#define CHECK(cond) do { tl_checks++; if (!(cond)) { tl_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { tl_checks++; if (!(cond)) { tl_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); fprintf(stderr, __VA_ARGS__); \
    fputc('\n', stderr); } } while (0)
/* |err| <= tol where err is a normwise relative error. */
#define CHECK_REL(ours, ref, n, tol) do { double e_ = tl_rel_err((ours), (ref), (n)); \
    CHECKF(e_ <= (tol), "rel err %.3e > %.1e", e_, (double)(tol)); } while (0)

/* Random seed: HB_TEST_SEED or fresh from the clock (printed so a failure can be replayed). */
uint64_t tl_seed(void);
void tl_fill_normal(hb_rng *r, float *x, int64_t n, float std);
void tl_fill_uniform(hb_rng *r, float *x, int64_t n, float lo, float hi);
double tl_rel_err(const float *ours, const float *ref, int64_t n);
/* The shared/ folder (HB_SHARED, else the path CMake recorded, else ../shared) or NULL if absent. */
const char *tl_shared_dir(void);
/* Path of shared/<rel> into buf, or exit 77 (skip) with a message when shared/ or the file is missing. */
const char *tl_shared_file(const char *rel, char *buf, size_t cap);
/* The hb binary (HB_BIN, set by ctest). */
const char *tl_hb_bin(void);
/* A fresh temporary directory (removed by tl_done). */
const char *tl_tmpdir(void);
/* Run a shell command, return its exit status (-1 if it did not exit). Output goes to `out` if not NULL. */
int tl_run(const char *cmd, char *out, size_t cap);
/* Run the hb binary with ARGS (shell-quoted by the caller; stderr joined to stdout into out); its exit status. */
int tl_hb(const char *args, char *out, size_t cap);
/* Run fn(arg) in a child process whose address space is capped at as_mib MiB (RLIMIT_AS; no cap under
 * AddressSanitizer, whose shadow memory needs terabytes of address space) and return fn's return value, or -1
 * if the child crashed. A hostile file must then fail cleanly without a big allocation. */
int tl_run_capped(int (*fn)(void *), void *arg, int as_mib);
/* Run `hb golden` on shared/<rel> through the CLI and check it exits 0 with PASS (skips when absent). */
void tl_check_golden_cli(const char *rel);
/* Buffers in the current backend's memory (tests of models under cpu-guard or a GPU): a fresh buffer holding n
 * uploaded floats (NULL and a failed check on error; free with hb_dev_free), and whether a buffer there holds
 * exactly ref (bitwise; the relative error is printed otherwise). */
float *tl_dev_upload(const float *host, int64_t n);
bool tl_dev_same(const float *dev, const float *ref, int64_t n);
/* Print the summary line ("N passed, N failed") and return the exit code. */
int tl_done(void);
/* Skip the whole test (exit 77) with a reason. */
void tl_skip(const char *why) __attribute__((noreturn));

#endif
