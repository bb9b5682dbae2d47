/* hb generate --mode ar end to end on a tiny random Hummingbird-XTX folder (DiT + umT5 + tokenizer + TAEW2.1
 * + Wan2.1 VAE): frame counts of the streamed outputs (ffprobe), a prompts file, relative RoPE, both decoders,
 * a run killed mid-way leaves a readable file with the finished chunks, and clear errors. The release root
 * that hb mkmodel --arch hummingbird-xtx writes (checkpoints/wan21_model.pt + wan_models/) runs with -m alone
 * (and the 5B one of --arch hummingbird-xtx-5b, 48-channel latents with the Wan2.2 VAE),
 * uses the .pt's generator_ema (not the base weights: --checkpoint / --text-encoder on the base folder give the
 * same video byte for byte, the base weights another); a Hummingbird-XT folder is refused up front with one
 * line and no file, and the same 48-channel DiT given as causal weights runs with a Wan2.2 latent. */
#include "testlib.h"
#include "pipeline/model_folder.h"
#include "io/checkpoint.h"
#include "hummingbird.h"
#include "random_models.h"
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[4096];

static long probe_frames(const char *path) {
    char cmd[8300], out[256];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 '%s'",
             path);
    if (tl_run(cmd, out, sizeof out) != 0) return -1;
    return strtol(out, NULL, 10);
}

static int gen(const char *args, char *out, size_t cap) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' generate --mode ar -q -m '%s' --width 64 --height 48 %s 2>&1", tl_hb_bin(), g_dir, args);
    return tl_run(cmd, out, cap);
}

static void test_basic(void) {
    char args[16384], out[8192], path[4400];
    /* 29 video frames = 8 latent frames = chunks of 3, 3, 2 */
    snprintf(path, sizeof path, "%s/a.mp4", tl_tmpdir());
    snprintf(args, sizeof args, "-p 'a cat on a beach' -f 29 --seed 3 -o '%s'", path);
    int st = gen(args, out, sizeof out);
    CHECKF(st == 0, "%s", out);
    long n = probe_frames(path);
    CHECKF(n == 29, "a.mp4: %ld frames", n);
    /* relative RoPE, prompt switches, f32 cache, y4m */
    char pf[4400];
    snprintf(pf, sizeof pf, "%s/prompts.txt", tl_tmpdir());
    FILE *f = fopen(pf, "w");
    fprintf(f, "0\ta cat\n3\ta dog\n6\ta bird\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/b.y4m", tl_tmpdir());
    snprintf(args, sizeof args, "--prompts '%s' -f 41 --rope rel --sink 1 --window 4 --cache f32 -o '%s'", pf, path);
    st = gen(args, out, sizeof out);
    CHECKF(st == 0, "%s", out);
    n = probe_frames(path);
    CHECKF(n == 41, "b.y4m: %ld frames", n);
    /* the streaming Wan VAE decoder, chunk by chunk through its feature caches: 1 + 4(t-1) frames */
    snprintf(path, sizeof path, "%s/c.mkv", tl_tmpdir());
    snprintf(args, sizeof args, "-p x -f 21 --decoder vae -o '%s'", path);
    st = gen(args, out, sizeof out);
    CHECKF(st == 0, "%s", out);
    n = probe_frames(path);
    CHECKF(n == 21, "c.mkv: %ld frames", n);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = len > 0 ? malloc((size_t)len) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) { free(b); b = NULL; }
    fclose(f);
    *n = b ? (size_t)len : 0;
    return b;
}

/* Any backend: with -d cpu-guard every activation (latents, KV cache, history ring, decoder state) is unreadable
 * outside the ops, so a host access in the AR loop crashes; the lossless y4m must equal the CPU's byte for byte.
 * Covers the TAEHV and the streaming Wan VAE decoders, bf16 and f32 caches, eviction with relative RoPE and
 * prompt switches with the KV re-cache. */
static void test_any_backend(void) {
    char pf[1024], args[8192], out[8192], pa[1024], pb[1024];
    snprintf(pf, sizeof pf, "%s/prompts_guard.txt", tl_tmpdir());
    FILE *f = fopen(pf, "w");
    fprintf(f, "0\ta cat\n3\ta dog\n6\ta bird\n");
    fclose(f);
    char variants[4][1200];
    snprintf(variants[0], sizeof variants[0], "-p 'a cat' -f 29");
    snprintf(variants[1], sizeof variants[1], "--prompts '%s' -f 41 --rope rel --sink 1 --window 4", pf);
    snprintf(variants[2], sizeof variants[2], "-p x -f 37 --cache f32 --sink 1 --window 4");
    snprintf(variants[3], sizeof variants[3], "-p x -f 21 --decoder vae");
    for (int k = 0; k < 4; k++) {
        snprintf(pa, sizeof pa, "%s/g%d_cpu.y4m", tl_tmpdir(), k);
        snprintf(pb, sizeof pb, "%s/g%d_guard.y4m", tl_tmpdir(), k);
        snprintf(args, sizeof args, "%s --seed 9 -o '%s'", variants[k], pa);
        CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
        snprintf(args, sizeof args, "-d cpu-guard %s --seed 9 -o '%s'", variants[k], pb);
        CHECKF(gen(args, out, sizeof out) == 0, "cpu-guard: %s", out);
        size_t na = 0, nb = 0;
        char *a = slurp(pa, &na), *b = slurp(pb, &nb);
        CHECKF(a && b && na > 1000 && na == nb && !memcmp(a, b, na), "variant %d: cpu-guard video differs from the CPU's", k);
        free(a);
        free(b);
    }
}

static void test_errors(void) {
    char args[16384], out[8192];
    snprintf(args, sizeof args, "-p x -f 5001 --rope abs -o '%s/e.mp4'", tl_tmpdir());
    CHECK(gen(args, out, sizeof out) != 0);
    CHECKF(strstr(out, "--rope rel") != NULL, "%s", out);
    snprintf(args, sizeof args, "-p x --sink 3 --window 4 -o '%s/e.mp4'", tl_tmpdir());
    CHECK(gen(args, out, sizeof out) != 0);
    CHECKF(strstr(out, "window") != NULL, "%s", out);
    snprintf(args, sizeof args, "-p x --rope sideways -o '%s/e.mp4'", tl_tmpdir());
    CHECK(gen(args, out, sizeof out) != 0);
    CHECKF(strstr(out, "--rope") != NULL, "%s", out);
    snprintf(args, sizeof args, "--prompts /nonexistent.txt -o '%s/e.mp4'", tl_tmpdir());
    CHECK(gen(args, out, sizeof out) != 0);
    CHECKF(strstr(out, "/nonexistent.txt") != NULL, "%s", out);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' generate --mode ar -m /nonexistent/model -p x -o '%s/e.mp4' 2>&1", tl_hb_bin(), tl_tmpdir());
    CHECK(tl_run(cmd, out, sizeof out) != 0);
    CHECKF(strstr(out, "/nonexistent/model") != NULL, "%s", out);
}

/* Start a long relative-RoPE run, kill it once `min_frames` frames are out, check the file: the frames are in
 * k.partial.EXT (playable), nothing is under the final name k.EXT. */
static void test_kill(const char *ext, long min_frames, long expect_at_least) {
    char path[4400], final[4400];
    snprintf(path, sizeof path, "%s/k.partial.%s", tl_tmpdir(), ext);
    snprintf(final, sizeof final, "%s/k.%s", tl_tmpdir(), ext);
    pid_t pid = fork();
    if (pid == 0) {
        char m[4200];
        snprintf(m, sizeof m, "%s", g_dir);
        int fd = open("/dev/null", 1);
        if (fd >= 0) { dup2(fd, 2); dup2(fd, 1); }
        execl(tl_hb_bin(), "hb", "generate", "--mode", "ar", "-q", "-t", "1", "-m", m, "--width", "64", "--height",
              "48", "-p", "long", "-f", "100001", "--rope", "rel", "--window", "6", "-o", final, (char *)NULL);
        _exit(127);
    }
    /* y4m: frames are fixed size; mp4: wait for the size to pass a few fragments */
    const long frame_bytes = 6 + 64 * 48 * 3 / 2;
    double t0 = hb_time_now();
    for (;;) {
        struct stat st;
        if (stat(path, &st) == 0) {
            if (!strcmp(ext, "y4m") && (st.st_size - 60) / frame_bytes >= min_frames) break;
            if (strcmp(ext, "y4m") && st.st_size > 2000 && hb_time_now() - t0 > 4) break;
        }
        if (hb_time_now() - t0 > 15) break;
        usleep(20000);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    struct stat fst;
    CHECK(stat(final, &fst) != 0);
    long n = probe_frames(path);
    printf("  killed run (.%s): ffprobe reads %ld frames\n", ext, n);
    CHECKF(n >= expect_at_least, "%s: %ld frames after the kill", path, n);
}

static int run_hb(const char *args, char *out, size_t cap) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", tl_hb_bin(), args);
    return tl_run(cmd, out, cap);
}

/* Element i of a F32 or BF16 tensor. */
static float tensor_at(const hb_tensor *t, int64_t i) {
    float v;
    hb_convert_to_f32(&v, (const uint8_t *)t->data + (size_t)i * hb_dtype_size(t->dtype), t->dtype, 1);
    return v;
}

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na > 1000 && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* The release root of hb mkmodel --arch hummingbird-xtx. */
static void test_release_root(void) {
    char root[1024], base[1200], te[1200], pt[1200], args[8192], out[8192], v[3][1200];
    const char *t = tl_tmpdir();
    snprintf(root, sizeof root, "%s/release", t);
    snprintf(args, sizeof args, "mkmodel -q --arch hummingbird-xtx --tiny --seed 3 '%s'", root);
    CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(base, sizeof base, "%s/wan_models/Wan2.1-T2V-1.3B", root);
    snprintf(te, sizeof te, "%s/wan_models/Wan2.2-TI2V-5B", root);
    snprintf(pt, sizeof pt, "%s/checkpoints/wan21_model.pt", root);
    for (int i = 0; i < 3; i++) snprintf(v[i], sizeof v[i], "%s/rel%d.y4m", t, i);
    const char *common = "generate --mode ar -q --width 64 --height 48 -p 'a cat' -f 25 --seed 4";
    snprintf(args, sizeof args, "%s -m '%s' -o '%s'", common, root, v[0]);
    CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
    long n = probe_frames(v[0]);
    CHECKF(n == 25, "release root: %ld frames", n);
    snprintf(args, sizeof args, "%s -m '%s' --checkpoint '%s' --text-encoder '%s' -o '%s'", common, base, pt, te, v[1]);
    CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
    CHECK(same_file(v[0], v[1]));
    snprintf(args, sizeof args, "%s -m '%s' --text-encoder '%s' -o '%s'", common, base, te, v[2]);
    CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
    CHECK(probe_frames(v[2]) == 25 && !same_file(v[0], v[2]));
    /* the .pt: generator_ema (the base weights negated) under Wan names, every storage mapped in place (64-byte
     * aligned as torch writes it) */
    hb_checkpoint *ck = hb_checkpoint_open(pt), *bk = hb_checkpoint_open(base);
    CHECKF(ck && bk, "%s", hb_last_error());
    if (ck && bk) {
        hb_tensor a, b;
        CHECK(hb_checkpoint_get(ck, "blocks.1.ffn.2.weight", &a) == 0 && hb_checkpoint_get(bk, "blocks.1.ffn.2.weight", &b) == 0);
        CHECK(a.dtype == HB_F32 && hb_tensor_numel(&a) == hb_tensor_numel(&b) && hb_tensor_numel(&a) > 0);
        int bad = 0;
        for (int64_t i = 0; i < hb_tensor_numel(&a); i++) bad += ((const float *)a.data)[i] != -tensor_at(&b, i);
        CHECKF(bad == 0, "%d values of generator_ema are not the negated base weights", bad);
        int zc = 0;
        for (int i = 0; i < hb_checkpoint_count(ck); i++) zc += hb_checkpoint_zero_copy(ck, i);
        CHECKF(zc == hb_checkpoint_count(ck), "%d of %d tensors of the .pt mapped in place", zc, hb_checkpoint_count(ck));
    }
    hb_checkpoint_close(ck);
    hb_checkpoint_close(bk);
    /* the base folder alone has no text encoder: named */
    snprintf(args, sizeof args, "%s -m '%s' -o '%s/none.y4m'", common, base, t);
    CHECK(run_hb(args, out, sizeof out) != 0 && strstr(out, "text encoder") != NULL);
    /* the 5B release root: a 48-channel causal DiT, 16x latents, the Wan2.2 VAE */
    snprintf(root, sizeof root, "%s/release5b", t);
    snprintf(args, sizeof args, "mkmodel -q --arch hummingbird-xtx-5b --tiny '%s'", root);
    CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "generate --mode ar -q --width 64 --height 32 -p 'a cat' -f 17 -m '%s' -o '%s/r5.y4m'", root, t);
    CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(v[0], sizeof v[0], "%s/r5.y4m", t);
    n = probe_frames(v[0]);
    CHECKF(n == 17, "5B release root: %ld frames", n);
}

/* A Hummingbird-XT (48-channel, bidirectional) folder: refused up front, no file; its DiT as causal weights runs. */
static void test_xt_folder(void) {
    char xt[1024], args[8192], out[8192], o1[1200], idx[1200];
    const char *t = tl_tmpdir();
    snprintf(xt, sizeof xt, "%s/xt", t);
    snprintf(args, sizeof args, "mkmodel -q --arch hummingbird-xt-flat --tiny '%s' && '%s' mkmodel -q --arch hummingbird-xt "
             "--tiny '%s/xt-release'", xt, tl_hb_bin(), t);
    CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
    /* the release's models/ folder is refused as well */
    snprintf(o1, sizeof o1, "%s/xt.mp4", t);
    snprintf(args, sizeof args, "generate --mode ar -m '%s/xt-release' -p test -o '%s'", t, o1);
    CHECK(run_hb(args, out, sizeof out) != 0 && strstr(out, "Hummingbird-XT"));
    snprintf(args, sizeof args, "generate --mode ar -m '%s' -p test -o '%s'", xt, o1);
    CHECK(run_hb(args, out, sizeof out) != 0);
    CHECKF(strstr(out, "Hummingbird-XT") && strchr(out, '\n') == out + strlen(out) - 1, "%s", out);
    struct stat st;
    CHECK(stat(o1, &st) != 0);
    snprintf(idx, sizeof idx, "%s/diffusion_pytorch_model.safetensors.index.json", xt);
    const char *dec[2] = {"vae", "tae"};
    for (int d = 0; d < 2; d++) {
        snprintf(o1, sizeof o1, "%s/xt%d.y4m", t, d);
        snprintf(args, sizeof args, "generate --mode ar -q -m '%s' --checkpoint '%s' --decoder %s -p test -f 17 --width 64 "
                 "--height 32 -o '%s'", xt, idx, dec[d], o1);
        CHECKF(run_hb(args, out, sizeof out) == 0, "%s", out);
        long n = probe_frames(o1);
        CHECKF(n == 17, "48-channel latent, %s decoder: %ld frames", dec[d], n);
    }
}

typedef struct { int calls; int64_t next; int h, w; } api_cb;
static int api_chunk(void *user, int64_t first, int n, const uint8_t *rgb, int H, int W) {
    api_cb *c = user;
    CHECK(first == c->next);
    CHECK(H == c->h && W == c->w);
    CHECK(rgb != NULL && n > 0 && n <= 12);
    c->next += n;
    c->calls++;
    return 0;
}

/* The public API: one callback per chunk (first chunk 9 frames, then 12). */
static void test_api(void) {
    hb_ar_params p;
    hb_ar_params_init(&p);
    /* the release's cache defaults; length, fps, steps and size 0 = the model's (settings.h) */
    CHECK(p.frames == 0 && p.chunk == 3 && p.window == 6 && p.sink == 1 && p.rope_relative && p.vae == HB_GEN_VAE_FULL &&
          p.fps == 0 && p.nsteps == 0 && p.shift == 0 && p.width == 0 && p.height == 0);
    p.prompt = "a red car";
    p.width = 64; p.height = 48; p.frames = 45; p.rope_relative = 1; p.window = 6;
    api_cb c = {0, 0, 48, 64};
    p.on_chunk = api_chunk;
    p.user = &c;
    int64_t made = 0;
    int rc = hb_generate_ar(g_dir, &p, &made);
    CHECKF(rc == 0, "%s", hb_last_error_message());
    CHECK(made == 45 && c.next == 45);
    CHECK(c.calls == 4); /* 12 latent frames = 4 chunks */
    p.on_chunk = NULL;
    CHECK(hb_generate_ar(g_dir, &p, NULL) != 0); /* neither output nor callback */
}

static int stop_after_first(void *user, int64_t first, int n, const uint8_t *rgb, int H, int W) {
    (void)first, (void)n, (void)rgb, (void)H, (void)W;
    return ++*(int *)user >= 1;
}

/* The parameters hb generate --mode ar needs: stats (chunks, forwards, resolved size/fps, frames), latents only
 * (HB_GEN_VAE_NONE), no last refresh (one forward fewer, same video), keep_partial (a stopped run's frames stay
 * playable in NAME.partial.EXT; without it nothing remains), crf checked. */
static void test_api_cli_params(void) {
    hb_ar_params p;
    hb_ar_stats st;
    hb_ar_params_init(&p);
    p.prompt = "a red car";
    p.width = 64, p.height = 48, p.frames = 29, p.seed = 4, p.nsteps = 2;
    p.steps_list[0] = 1000, p.steps_list[1] = 500;
    p.vae = HB_GEN_VAE_NONE;
    p.stats = &st;
    CHECKF(hb_generate_ar(g_dir, &p, NULL) == 0, "%s", hb_last_error_message());
    /* 29 frames = 8 latent frames = chunks 3, 3, 2; each 2 steps + 1 refresh */
    CHECKF(st.chunks == 3 && st.dit_forwards == 9 && st.frames == 0, "chunks %lld forwards %lld frames %lld",
           (long long)st.chunks, (long long)st.dit_forwards, (long long)st.frames);
    CHECK(st.width == 64 && st.height == 48 && st.fps > 0 && st.seconds_total >= st.seconds_text && st.peak_rss_bytes > 0);
    p.no_last_refresh = 1;
    CHECK(hb_generate_ar(g_dir, &p, NULL) == 0 && st.dit_forwards == 8);
    char a[4400], b[4400], part[4400];
    snprintf(a, sizeof a, "%s/api_a.y4m", tl_tmpdir());
    snprintf(b, sizeof b, "%s/api_b.y4m", tl_tmpdir());
    p.output = b;
    CHECK(hb_generate_ar(g_dir, &p, NULL) != 0); /* NONE writes nothing */
    CHECKF(strstr(hb_last_error_message(), "HB_GEN_VAE_NONE") != NULL, "%s", hb_last_error_message());
    p.vae = HB_GEN_VAE_TAE, p.device = "tpu";
    CHECK(hb_generate_ar(g_dir, &p, NULL) != 0 && strstr(hb_last_error_message(), "'tpu'") != NULL);
    p.device = "cpu-guard", p.crf = 64; /* the runs below on the checking backend (hb -d) */
    CHECK(hb_generate_ar(g_dir, &p, NULL) != 0 && strstr(hb_last_error_message(), "crf") != NULL);
    p.crf = 0;
    p.output = a, p.no_last_refresh = 0;
    CHECKF(hb_generate_ar(g_dir, &p, NULL) == 0, "%s", hb_last_error_message());
    CHECK(st.frames == 29 && probe_frames(a) == 29 && st.partial_path[0] == 0);
    p.output = b, p.no_last_refresh = 1;
    CHECKF(hb_generate_ar(g_dir, &p, NULL) == 0, "%s", hb_last_error_message());
    size_t na = 0, nb = 0;
    char *va = slurp(a, &na), *vb = slurp(b, &nb);
    CHECKF(va && vb && na == nb && !memcmp(va, vb, na), "no_last_refresh changed the video");
    free(va), free(vb);
    /* stopped after the first chunk: kept as api_b.partial.y4m with keep_partial, removed without */
    int calls = 0;
    p.on_chunk = stop_after_first, p.user = &calls, p.keep_partial = 1;
    unlink(b);
    snprintf(part, sizeof part, "%s/api_b.partial.y4m", tl_tmpdir());
    CHECK(hb_generate_ar(g_dir, &p, NULL) == -1);
    CHECKF(!strcmp(st.partial_path, part) && access(b, F_OK) != 0, "partial '%s'", st.partial_path);
    long n = probe_frames(part);
    CHECKF(n > 0 && n == st.frames && n < 29, "partial file %ld frames, stats %lld", n, (long long)st.frames);
    unlink(part);
    calls = 0, p.keep_partial = 0;
    CHECK(hb_generate_ar(g_dir, &p, NULL) == -1 && st.partial_path[0] == 0);
    CHECK(access(part, F_OK) != 0 && access(b, F_OK) != 0);
}

int main(void) {
    hb_threads_init(0);
    (void)tl_seed();
    if (tl_run("ffprobe -version >/dev/null 2>&1", NULL, 0) != 0) tl_skip("ffprobe not found");
    snprintf(g_dir, sizeof g_dir, "%s/xtx", tl_tmpdir());
    mkdir(g_dir, 0755);
    hb_mkfolder_opts o = {.arch = "hummingbird-xtx", .tiny = true, .dtype = HB_F32, .seed = 5};
    int rc = hb_model_folder_write_random(g_dir, &o);
    CHECKF(rc == 0, "%s", hb_last_error());
    if (rc) return tl_done();
    test_api();
    test_api_cli_params();
    test_basic();
    test_any_backend();
    test_errors();
    test_release_root();
    test_xt_folder();
    test_kill("y4m", 30, 30);
    test_kill("mp4", 0, 1);
    return tl_done();
}
