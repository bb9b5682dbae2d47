/* The installed library as an integrator uses it: `cmake --install` into a fresh prefix, then a program
 * outside the tree built three ways (pkg-config hummingbird = the shared library, pkg-config
 * hummingbird-static = libhummingbird.a, and a CMake project with find_package(hummingbird)), each run on a
 * tiny random-weight model to make a video without writing anything to the terminal itself; the shared library
 * exports hb_ names only. */
#include "testlib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_app =
    "#include \"hummingbird.h\"\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "int main(int argc, char **argv) {\n"
    "    if (argc < 2) return 2;\n"
    "    if (hb_model_load(\"/nonexistent/model\", NULL) || !strstr(hb_last_error_message(), \"does not exist\")) return 3;\n"
    "    hb_model *m = hb_model_load(argv[1], NULL);\n"
    "    if (!m) { fprintf(stderr, \"%s\\n\", hb_last_error_message()); return 4; }\n"
    "    hb_generate_params p;\n"
    "    hb_generate_params_init(&p);\n"
    "    p.prompt = \"a red fox\";\n"
    "    p.width = 64, p.height = 64, p.frames = 5, p.vae = HB_GEN_VAE_TAE;\n"
    "    hb_video_frames v;\n"
    "    if (hb_generate(m, &p, &v)) { fprintf(stderr, \"%s\\n\", hb_last_error_message()); return 5; }\n"
    "    if (hb_last_error_message()[0]) return 6; /* \"\" after success */\n"
    "    long sum = 0;\n"
    "    for (long i = 0; i < (long)v.frames * v.width * v.height * 3; i++) sum += v.rgb[i];\n"
    "    printf(\"version %s frames %d %dx%d sum %ld\\n\", hb_version(), v.frames, v.width, v.height, sum);\n"
    "    hb_frames_free(&v);\n"
    "    hb_model_free(m);\n"
    "    return 0;\n"
    "}\n";

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECKF(f != NULL, "cannot write %s\n", path);
    if (f) fputs(text, f), fclose(f);
}

/* Runs the built app on the model; its output line must name 5 frames of 64x64 with nonzero pixels. */
static void run_app(const char *how, const char *cmd, char *line, size_t cap) {
    char out[4096];
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "frames 5 64x64") && !strstr(out, "sum 0\n"), "%s: exit %d\n%s\n", how, rc, out);
    /* the library writes nothing to the terminal by itself (no progress lines, no info messages): the app's one line */
    CHECKF(strchr(out, '\n') == out + strlen(out) - 1, "%s: the library wrote to the terminal:\n%s", how, out);
    const char *v = strstr(out, "version ");
    snprintf(line, cap, "%s", v ? v : "");
    printf("%-22s %s", how, v ? v : "(no output)\n");
}

int main(void) {
    const char *build = getenv("HB_BUILD_DIR"), *cmake = getenv("HB_CMAKE");
    if (!build || !cmake) tl_skip("HB_BUILD_DIR / HB_CMAKE not set (run through ctest)");
    if (tl_run("command -v pkg-config >/dev/null && command -v cc >/dev/null", NULL, 0) != 0)
        tl_skip("pkg-config or cc missing");
    const char *tmp = tl_tmpdir();
    char cmd[8192], out[8192], path[1024], pc[1200];
    snprintf(cmd, sizeof cmd, "'%s' --install '%s' --prefix '%s/prefix' 2>&1", cmake, build, tmp);
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "cmake --install: %d\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' mkmodel -q --arch hummingbird-xt-flat --tiny '%s/model' 2>&1", tl_hb_bin(), tmp);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "mkmodel\n%s", out);
    snprintf(path, sizeof path, "%s/app.c", tmp);
    write_text(path, k_app);
    /* the pkg-config file is found under lib/ or lib/<multiarch>/ */
    snprintf(cmd, sizeof cmd, "dirname \"$(find '%s/prefix' -name hummingbird.pc | head -1)\"", tmp);
    CHECK(tl_run(cmd, pc, sizeof pc) == 0);
    pc[strcspn(pc, "\n")] = 0;
    char l1[256], l2[256], l3[256];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && export PKG_CONFIG_PATH='%s' && cc -Wall -Wextra -Werror app.c $(pkg-config --cflags --libs "
             "hummingbird) -o app_shared && LD_LIBRARY_PATH=\"$(pkg-config --variable=libdir hummingbird)\" ./app_shared model 2>&1",
             tmp, pc);
    run_app("pkg-config (shared)", cmd, l1, sizeof l1);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && export PKG_CONFIG_PATH='%s' && cc app.c $(pkg-config --cflags --libs hummingbird-static) -o "
             "app_static && ! ldd app_static | grep -q libhummingbird && ./app_static model 2>&1", tmp, pc);
    run_app("pkg-config (static)", cmd, l2, sizeof l2);
    snprintf(path, sizeof path, "%s/CMakeLists.txt", tmp);
    write_text(path, "cmake_minimum_required(VERSION 3.18)\nproject(app C)\nfind_package(hummingbird 0.5 REQUIRED)\n"
                     "add_executable(app_cmake app.c)\ntarget_link_libraries(app_cmake PRIVATE hummingbird::hummingbird)\n");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' -S . -B cb -DCMAKE_PREFIX_PATH='%s/prefix' >/dev/null 2>&1 && '%s' --build cb "
             ">/dev/null 2>&1 && ./cb/app_cmake model 2>&1", tmp, cmake, tmp, cmake);
    run_app("find_package (CMake)", cmd, l3, sizeof l3);
    /* the three builds make the same video */
    CHECKF(l1[0] && !strcmp(l1, l2) && !strcmp(l1, l3), "outputs differ:\n%s%s%s", l1, l2, l3);
    /* exported symbols: hb_ names only */
    snprintf(cmd, sizeof cmd, "nm -D --defined-only \"$(find '%s/prefix' -name 'libhummingbird.so' | head -1)\" | "
             "awk '{print $3}' | grep -v '^hb_' | grep -v '^$' | head -5", tmp);
    CHECK(tl_run(cmd, out, sizeof out) == 0);
    CHECKF(out[0] == 0, "non-hb_ symbols exported:\n%s", out);
    return tl_done();
}
