/* hb: one program, many subcommands (as git and ffmpeg users expect). */
#include "tools.h"
#include "ops/ops.h"
#include "hummingbird.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    {"serve", cmd_serve, "HTTP server with the OpenAI videos API (POST /v1/videos, ...)"},
    {"train-decoder", cmd_train_decoder, "distil the light VAE decoder from the Wan2.2 VAE (docs/training.md)"},
};
#define NCMDS (sizeof k_cmds / sizeof k_cmds[0])

static void usage(FILE *f) {
    fprintf(f, "usage: hb [-t N] [-d DEV] [-v|-q] COMMAND [options]   (hb help COMMAND for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++) fprintf(f, "  %-10s %s\n", k_cmds[i].name, k_cmds[i].help);
    fprintf(f, "\noptions every command takes:\n"
               "  -t, --threads N   worker threads (default: HB_THREADS or all cores; 0 = all cores)\n"
               "  -d, --device DEV  cpu (default), cuda, cuda:N (GPU builds), cpu-guard (checks)\n"
               "  -v, --verbose     more detail: stage times, peak memory\n"
               "  -q, --quiet       errors only\n");
}

static const char *g_device; /* -d: handed to the API (hb_load_params.device, hb_ar_params.device) */
const char *tool_device(void) { return g_device; }

int tool_common_flag(int argc, char **argv, int *i) {
    char a[32];
    const char *eq = strncmp(argv[*i], "--", 2) ? NULL : strchr(argv[*i], '='); /* --flag=value */
    snprintf(a, sizeof a, "%.*s", eq ? (int)(eq - argv[*i]) : (int)strlen(argv[*i]), argv[*i]);
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { hb_log_level = HB_LOG_DEBUG; return 1; }
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { hb_log_level = HB_LOG_ERROR; return 1; }
    bool dev = !strcmp(a, "-d") || !strcmp(a, "--device"), thr = !strcmp(a, "-t") || !strcmp(a, "--threads");
    if (!dev && !thr) return 0;
    if (!eq && *i + 1 >= argc) return hb_error("%s needs %s", a, dev ? "a device (cpu, cuda, cuda:N)" : "a number");
    const char *v = eq ? eq + 1 : argv[++*i];
    if (dev) {
        const hb_backend *b = hb_backend_find(v);
        if (!b) return -1;
        hb_backend_use(b); /* the commands that call internals (golden, inspect, ...) */
        g_device = v;
        return 1;
    }
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 0 || n > 256) return hb_error("%s: '%s' is not a thread count (1..256, 0 = all cores)", a, v);
    hb_threads_init(n ? (int)n : (int)sysconf(_SC_NPROCESSORS_ONLN));
    return 1;
}

void tool_print_device_peak(void) {
    const hb_backend *b = g_device ? hb_backend_find(g_device) : hb_backend_current();
    const hb_memspace *m = b ? b->mem : NULL;
    if (m && m->peak_bytes)
        fprintf(stderr, "peak device memory (%s): %.1f MiB\n", m->name, (double)m->peak_bytes() / (1 << 20));
}

static volatile sig_atomic_t g_signal;
static void on_signal(int sig) {
    g_signal = sig;
    signal(sig, SIG_DFL); /* a second one ends the process at once */
}
void tool_catch_interrupts(void) {
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
int tool_interrupted(void) { return g_signal; }
int tool_interrupt_exit(const char *cmd) {
    fprintf(stderr, "hb %s: interrupted by %s, no output written\n", cmd, g_signal == SIGINT ? "SIGINT" : "SIGTERM");
    return 128 + g_signal;
}

void tool_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

int tool_fail(const char *cmd) {
    fprintf(stderr, "hb %s: %s\n", cmd, hb_last_error());
    return 1;
}

int main(int argc, char **argv) {
    /* A full disk or a file-size limit must surface as a write error, not kill the process. */
    signal(SIGXFSZ, SIG_IGN);
    /* the tool talks to its user: progress lines and info messages (the library alone is quiet) */
    hb_log_level = HB_LOG_INFO;
    hb_progress_draw = true;
    signal(SIGPIPE, SIG_IGN);
    int k = 1; /* global flags before the command (hb -t 2 generate ...) */
    while (k < argc && argv[k][0] == '-' && strcmp(argv[k], "--help") && strcmp(argv[k], "-h") &&
           strcmp(argv[k], "--version")) {
        int c = tool_common_flag(argc, argv, &k);
        if (c < 0) return tool_fail("");
        if (!c) { fprintf(stderr, "hb: unknown option '%s' before the command\n\n", argv[k]); usage(stderr); return 2; }
        k++;
    }
    argc -= k - 1, argv += k - 1;
    bool help = argc >= 2 && !strcmp(argv[1], "help");
    if (help && argc >= 3) { /* hb help CMD [--mode ar] = hb CMD [--mode ar] --help */
        char *hargv[5] = {argv[2], NULL, NULL, NULL, NULL};
        int n = 1;
        if (argc >= 5 && !strcmp(argv[3], "--mode")) hargv[n++] = argv[3], hargv[n++] = argv[4];
        hargv[n++] = (char *)"--help";
        for (size_t i = 0; i < NCMDS; i++)
            if (!strcmp(argv[2], k_cmds[i].name)) return k_cmds[i].fn(n, hargv);
        fprintf(stderr, "hb help: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    if (argc < 2 || help || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("hb %s\n", hb_version()); return 0; }
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
