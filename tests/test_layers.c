/* Layering: every layer library (hb_core, hb_ops, hb_io, hb_models, hb_pipeline) sees only its own headers and
 * those below it. For each layer the build has two probe targets (CMakeLists.txt, tests/layers/probe.c):
 * <layer>_ok includes a header of the layer and must compile; <layer>_up also includes a header of the layer
 * above and must fail, with the compiler naming that header as not found. */
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

/* Builds the probe target; returns the exit status, the output in out. */
static int build_probe(const char *cmake, const char *build, const char *layer, const char *kind, char *out,
                       size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' --build '%s' --target layer_probe_%s_%s 2>&1", cmake, build, layer, kind);
    return tl_run(cmd, out, cap);
}

static void check_layer(const char *cmake, const char *build, const char *probe) {
    char layer[64], own[256], above[256], out[16384];
    if (sscanf(probe, "%63[^|]|%255[^|]|%255s", layer, own, above) != 3) {
        CHECKF(0, "bad probe description '%s'", probe);
        return;
    }
    int rc = build_probe(cmake, build, layer, "ok", out, sizeof out);
    CHECKF(rc == 0, "hb_%s: its own header %s does not compile:\n%s", layer, own, out);
    rc = build_probe(cmake, build, layer, "up", out, sizeof out);
    CHECKF(rc != 0, "hb_%s: including %s (a layer above) compiled", layer, above);
    CHECKF(strstr(out, above) && strstr(out, "No such file"), "hb_%s: the failure does not name %s as missing:\n%s",
           layer, above, out);
    printf("hb_%-9s includes %-18s ok, %-18s refused\n", layer, own, above);
}

int main(void) {
    const char *build = getenv("HB_BUILD_DIR"), *cmake = getenv("HB_CMAKE"), *probes = getenv("HB_LAYER_PROBES");
    if (!build || !cmake || !probes) tl_skip("HB_BUILD_DIR / HB_CMAKE / HB_LAYER_PROBES not set (run through ctest)");
    char list[2048];
    snprintf(list, sizeof list, "%s", probes);
    int n = 0;
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save), n++)
        check_layer(cmake, build, p);
    CHECKF(n == 5, "expected probes for 5 layers, got %d", n);
    return tl_done();
}
