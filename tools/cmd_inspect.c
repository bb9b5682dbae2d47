/* hb inspect: list the tensors (name, dtype, shape, bytes, file), the metadata and a folder's
 * config.json of a checkpoint, with parameter and byte totals; --json for machines. */
#include "tools.h"
#include "io/json_file.h"
#include "io/checkpoint.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hb inspect [options] PATH\n"
            "\n"
            "PATH is a .safetensors file, a *.safetensors.index.json, a .gguf file, a PyTorch .pth/.pt zip\n"
            "checkpoint, a model folder (its parts, model family and default settings first, then the DiT's\n"
            "tensors), or a folder holding one of those (index preferred, else its one .gguf, else every\n"
            "*.safetensors in it). Lists every tensor (name, dtype such as BF16 or Q4_K, shape, bytes, and the\n"
            "file holding it), the safetensors __metadata__ or GGUF key/values, the folder's config.json\n"
            "(pretty-printed) when present, and the total parameter count and bytes.\n"
            "\n"
            "options:\n"
            "  --json            one JSON object on stdout instead of text\n"
            "  --filter TEXT     list only tensors whose name contains TEXT (totals still cover all)\n"
            "  --no-tensors      only the summary, metadata and config\n"
            "  -h, --help        this help\n"
            "  -v, --verbose     also print the open time and resident memory after opening (stderr)\n"
            "  (and the common -t/-q flags)\n"
            "\n"
            "exit status: 0 on success, 1 with one message naming the file and the problem otherwise.\n");
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

static void human(double bytes, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) { bytes /= 1024; i++; }
    snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", bytes, u[i]);
}

static void human_count(double n, char *buf, size_t cap) {
    if (n >= 1e9) snprintf(buf, cap, "%.2f B", n / 1e9);
    else if (n >= 1e6) snprintf(buf, cap, "%.2f M", n / 1e6);
    else if (n >= 1e3) snprintf(buf, cap, "%.2f K", n / 1e3);
    else snprintf(buf, cap, "%.0f", n);
}

/* config.json of a folder: NULL + *err=0 when absent; NULL + *err=-1 (message set) when invalid. */
static json_t *load_config(const char *path, char *cfg_path, size_t cap, int *err) {
    *err = 0;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    snprintf(cfg_path, cap, "%s/config.json", path);
    if (stat(cfg_path, &st) != 0) return NULL;
    json_t *j = hb_json_load_file(cfg_path, 0);
    if (!j) { *err = -1; return NULL; }
    return j;
}

typedef struct {
    bool as_json, tensors;
    const char *filter, *path;
} inspect_opts;

/* 0, 1 after --help (exit 0), 2 on a usage error, -1 on a flag error. */
static int parse_args(int argc, char **argv, inspect_opts *o) {
    *o = (inspect_opts){.tensors = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return -1;
        if (c > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 1; }
        if (!strcmp(a, "--json")) o->as_json = true;
        else if (!strcmp(a, "--no-tensors")) o->tensors = false;
        else if (!strcmp(a, "--filter")) {
            if (i + 1 >= argc) return hb_error("--filter needs a text");
            o->filter = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "hb inspect: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (o->path) {
            fprintf(stderr, "hb inspect: one PATH only ('%s' and '%s')\n", o->path, a);
            return 2;
        } else o->path = a;
    }
    if (!o->path) { usage(stderr); return 2; }
    return 0;
}

typedef struct {
    int n, nfiles, copied;
    double params, bytes;
} inspect_totals;

static inspect_totals count_totals(hb_checkpoint *ck) {
    inspect_totals t = {.n = hb_checkpoint_count(ck)};
    const char *last_file = NULL;
    for (int i = 0; i < t.n; i++) {
        hb_tensor w = hb_checkpoint_tensor(ck, i);
        t.params += (double)hb_tensor_numel(&w);
        t.bytes += (double)hb_tensor_nbytes(&w);
        t.copied += !hb_checkpoint_zero_copy(ck, i);
        const char *f = hb_checkpoint_file_of(ck, i);
        if (!last_file || strcmp(f, last_file)) {
            bool seen = false;
            for (int j = 0; j < i && !seen; j++) seen = !strcmp(hb_checkpoint_file_of(ck, j), f);
            if (!seen) t.nfiles++;
            last_file = f;
        }
    }
    return t;
}

static void print_json(const inspect_opts *o, hb_checkpoint *ck, json_t *cfg, const inspect_totals *t) {
    json_t *obj = json_object(), *meta = json_object(), *arr = json_array();
    json_object_set_new(obj, "path", json_string(o->path));
    json_object_set_new(obj, "files", json_integer(t->nfiles));
    json_object_set_new(obj, "tensors_count", json_integer(t->n));
    json_object_set_new(obj, "parameters", json_integer((json_int_t)t->params));
    json_object_set_new(obj, "bytes", json_integer((json_int_t)t->bytes));
    json_object_set_new(obj, "copied_tensors", json_integer(t->copied));
    for (int i = 0; hb_checkpoint_metadata_key(ck, i); i++) {
        const char *k = hb_checkpoint_metadata_key(ck, i);
        json_object_set_new(meta, k, json_string(hb_checkpoint_metadata(ck, k)));
    }
    json_object_set_new(obj, "metadata", meta);
    if (cfg) json_object_set(obj, "config", cfg);
    for (int i = 0; o->tensors && i < t->n; i++) {
        const char *nm = hb_checkpoint_name(ck, i);
        if (o->filter && !strstr(nm, o->filter)) continue;
        hb_tensor w = hb_checkpoint_tensor(ck, i);
        json_t *e = json_object(), *sh = json_array();
        json_object_set_new(e, "name", json_string(nm));
        json_object_set_new(e, "dtype", json_string(hb_dtype_name(w.dtype)));
        for (int d = 0; d < w.ndim; d++) json_array_append_new(sh, json_integer(w.shape[d]));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "bytes", json_integer((json_int_t)hb_tensor_nbytes(&w)));
        json_object_set_new(e, "file", json_string(hb_checkpoint_file_of(ck, i)));
        json_array_append_new(arr, e);
    }
    if (o->tensors) json_object_set_new(obj, "tensors", arr);
    else json_decref(arr);
    char *s = json_dumps(obj, JSON_INDENT(2));
    if (s) { puts(s); free(s); }
    json_decref(obj);
}

/* The tensor table: columns as wide as the longest name and shape shown. */
static void print_tensor_table(const inspect_opts *o, hb_checkpoint *ck, const inspect_totals *t) {
    int wn = 4, ws = 5;
    char shape[160];
    for (int i = 0; i < t->n; i++) {
        const char *nm = hb_checkpoint_name(ck, i);
        if (o->filter && !strstr(nm, o->filter)) continue;
        hb_tensor w = hb_checkpoint_tensor(ck, i);
        int l = (int)strlen(nm);
        if (l > wn) wn = l;
        l = (int)strlen(hb_shape_str(&w, shape, sizeof shape));
        if (l > ws) ws = l;
    }
    printf("\n%-*s  %-5s  %-*s  %14s%s\n", wn, "name", "dtype", ws, "shape", "bytes", t->nfiles > 1 ? "  file" : "");
    for (int i = 0; i < t->n; i++) {
        const char *nm = hb_checkpoint_name(ck, i);
        if (o->filter && !strstr(nm, o->filter)) continue;
        hb_tensor w = hb_checkpoint_tensor(ck, i);
        printf("%-*s  %-5s  %-*s  %14zu", wn, nm, hb_dtype_name(w.dtype), ws, hb_shape_str(&w, shape, sizeof shape),
               hb_tensor_nbytes(&w));
        if (t->nfiles > 1) printf("  %s", base_name(hb_checkpoint_file_of(ck, i)));
        if (!hb_checkpoint_zero_copy(ck, i)) printf("  (copied)");
        putchar('\n');
    }
}

static void print_text(const inspect_opts *o, hb_checkpoint *ck, json_t *cfg, const char *cfg_path,
                       const inspect_totals *t) {
    char hb[32], hp[32];
    human(t->bytes, hb, sizeof hb);
    human_count(t->params, hp, sizeof hp);
    printf("checkpoint: %s\n", o->path);
    printf("files:      %d\n", t->nfiles);
    if (hb_checkpoint_metadata_key(ck, 0)) {
        printf("\nmetadata:\n");
        for (int i = 0; hb_checkpoint_metadata_key(ck, i); i++) {
            const char *k = hb_checkpoint_metadata_key(ck, i);
            printf("  %s: %s\n", k, hb_checkpoint_metadata(ck, k));
        }
    }
    if (cfg) {
        char *s = json_dumps(cfg, JSON_INDENT(2));
        printf("\nconfig (%s):\n%s\n", cfg_path, s ? s : "?");
        free(s);
    }
    if (o->tensors) print_tensor_table(o, ck, t);
    printf("\ntotal: %d tensors, %.0f parameters (%s), %.0f bytes (%s)", t->n, t->params, hp, t->bytes, hb);
    if (t->copied) printf(", %d tensors copied (misaligned, compressed or fp8 in the file)", t->copied);
    putchar('\n');
}

int cmd_inspect(int argc, char **argv) {
    inspect_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc < 0) return tool_fail(argv[0]);
    if (prc > 0) return prc == 1 ? 0 : 2;
    double t0 = hb_time_now();
    char dit[4096];
    const char *ck_path = tool_inspect_model_folder(o.path, !o.as_json, dit, sizeof dit) ? dit : o.path;
    hb_checkpoint *ck = hb_checkpoint_open(ck_path);
    if (!ck) return tool_fail(argv[0]);
    hb_log(HB_LOG_DEBUG, "opened in %.2f ms; resident memory after open %.1f MiB", (hb_time_now() - t0) * 1e3,
           hb_current_rss_bytes() / 1048576.0);
    char cfg_path[4096];
    int cerr;
    json_t *cfg = load_config(o.path, cfg_path, sizeof cfg_path, &cerr);
    if (cerr) { hb_checkpoint_close(ck); return tool_fail(argv[0]); }
    const inspect_totals t = count_totals(ck);
    if (o.as_json) print_json(&o, ck, cfg, &t);
    else print_text(&o, ck, cfg, cfg_path, &t);
    json_decref(cfg);
    hb_checkpoint_close(ck);
    return 0;
}
