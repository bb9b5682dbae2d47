/* hb: one program, many subcommands (as git and ffmpeg users expect). */
#include "tools.h"
#include "ops/ops.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} k_cmds[] = {
    {"inspect", cmd_inspect, "list the tensors and config of a checkpoint file or folder"},
    {"golden", cmd_golden, "run golden reference files and report the error of every output"},
    {"mkmodel", cmd_mkmodel, "write a random-weight checkpoint folder in the official layout"},
    {"quantize", cmd_quantize, "write a checkpoint as a quantized GGUF file (q8_0, q4_k_m, ...)"},
    {"tokenize", cmd_tokenize, "print the token ids of a prompt"},
    {"metrics", cmd_metrics, "PSNR, SSIM and temporal flicker between two videos"},
    {"generate", cmd_generate, "text/image to video (Hummingbird-XT; without -m: random-weight demo)"},
};
#define NCMDS (sizeof k_cmds / sizeof k_cmds[0])

static void usage(FILE *f) {
    fprintf(f, "usage: hb COMMAND [options]   (hb COMMAND --help for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++) fprintf(f, "  %-10s %s\n", k_cmds[i].name, k_cmds[i].help);
    fprintf(f, "\noptions every command takes:\n"
               "  -t, --threads N   worker threads (default: HB_THREADS or all cores)\n"
               "  -d, --device DEV  cpu (default), cuda, cuda:N (GPU builds), cpu-guard (checks)\n"
               "  -v, --verbose     more detail: stage times, peak memory\n"
               "  -q, --quiet       errors only\n");
}

int tool_common_flag(int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { hb_log_level = HB_LOG_DEBUG; return 1; }
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { hb_log_level = HB_LOG_ERROR; return 1; }
    if (!strcmp(a, "-d") || !strcmp(a, "--device")) {
        if (*i + 1 >= argc) return hb_error("%s needs a device (cpu, cuda, cuda:N)", a);
        const hb_backend *b = hb_backend_find(argv[++*i]);
        if (!b) return -1;
        hb_backend_use(b);
        return 1;
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (*i + 1 >= argc) return hb_error("%s needs a number", a);
        char *end;
        long n = strtol(argv[++*i], &end, 10);
        if (*end || n < 1 || n > 256) return hb_error("%s: '%s' is not a thread count (1..256)", a, argv[*i]);
        hb_threads_init((int)n);
        return 1;
    }
    return 0;
}

void tool_print_device_peak(void) {
    const hb_memspace *m = hb_backend_current()->mem;
    if (m && m->peak_bytes)
        fprintf(stderr, "peak device memory (%s): %.1f MiB\n", m->name, (double)m->peak_bytes() / (1 << 20));
}

int tool_fail(const char *cmd) {
    fprintf(stderr, "hb %s: %s\n", cmd, hb_last_error());
    return 1;
}

int main(int argc, char **argv) {
    /* A full disk or a file-size limit must surface as a write error, not kill the process. */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("hb 0.1.0\n"); return 0; }
    for (size_t i = 0; i < NCMDS; i++)
        if (!strcmp(argv[1], k_cmds[i].name)) {
            int rc = k_cmds[i].fn(argc - 1, argv + 1);
            hb_threads_shutdown();
            return rc;
        }
    fprintf(stderr, "hb: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
