/* Bad inputs through `hb generate`: each gives one clear error line, a non-zero exit, and leaves no output
 * (nor temp files) behind. */
#include "testlib.h"
#include "pipeline/model_folder.h"
#include "io/safetensors_writer.h"
#include "random_models.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Run `hb generate ARGS` with output into a fresh empty folder; expect failure with one line containing
 * `want`, and nothing left in the folder. */
static void expect_fail(const char *name, const char *prefix, const char *args, const char *want) {
    static int k;
    char od[600], cmd[4096], out[8192];
    snprintf(od, sizeof od, "%s/out%d", tl_tmpdir(), k++);
    mkdir(od, 0755);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' generate -q -p 'a cat' -W 64 -H 64 -f 5 %s 2>&1", od, prefix ? prefix : "",
             tl_hb_bin(), args);
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc != 0, "%s: exit 0\n%s", name, out);
    CHECKF(count_lines(out) == 1 && strstr(out, "hb generate") && strstr(out, want), "%s: expected one line with '%s', got:\n%s",
           name, want, out);
    CHECKF(count_entries(od) == 0, "%s: %d files left in the output folder", name, count_entries(od));
    fprintf(stderr, "[%s] %s", name, out);
}

static void copy_model(const char *src, const char *dst) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", src, dst);
    CHECK(tl_run(cmd, NULL, 0) == 0);
}

int main(void) {
    uint64_t seed = tl_seed();
    const char *tmp = tl_tmpdir();
    char model[600], bad[600], args[2048], t[700];
    snprintf(model, sizeof model, "%s/model", tmp);
    hb_mkfolder_opts o = {.arch = "hummingbird-xt", .tiny = true, .dtype = HB_F32, .seed = seed % 1000};
    hb_log_level = HB_LOG_WARN;
    CHECK(hb_folder_stage_begin(model, t, sizeof t) == 0);
    int rc = hb_model_folder_write_random(t, &o);
    CHECKF(rc == 0, "%s", hb_last_error());
    CHECK(hb_folder_stage_finish(t, model) == 0);
    if (rc) return tl_done();

    /* sanity: the good folder works */
    snprintf(args, sizeof args, "-m '%s' -o ok.y4m", model);
    {
        char od[600], cmd[4096], out[4096];
        snprintf(od, sizeof od, "%s/good", tmp);
        mkdir(od, 0755);
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' generate -q -p x -W 64 -H 64 -f 5 %s 2>&1", od, tl_hb_bin(), args);
        CHECKF(tl_run(cmd, out, sizeof out) == 0, "good model failed:\n%s", out);
        CHECK(count_entries(od) == 1);
    }

    /* sizes */
    snprintf(args, sizeof args, "-m '%s' -W 100 -o o.mp4", model);
    expect_fail("width 100", NULL, args, "multiples of 32");
    snprintf(args, sizeof args, "-m '%s' -f 6 -o o.mp4", model);
    expect_fail("6 frames", NULL, args, "4k+1");
    snprintf(args, sizeof args, "-m '%s' -W abc -o o.mp4", model);
    expect_fail("width abc", NULL, args, "-W");
    /* model folder problems */
    expect_fail("no folder", NULL, "-m /nonexistent/model -o o.mp4", "does not exist");
    snprintf(bad, sizeof bad, "%s/m_nove", tmp);
    copy_model(model, bad);
    snprintf(t, sizeof t, "%s/Wan2.2_VAE.safetensors", bad);
    unlink(t);
    snprintf(args, sizeof args, "-m '%s' -o o.mp4", bad);
    expect_fail("missing VAE", NULL, args, "no VAE");
    snprintf(bad, sizeof bad, "%s/m_note", tmp);
    copy_model(model, bad);
    snprintf(t, sizeof t, "rm -rf '%s/text_encoder'", bad);
    CHECK(tl_run(t, NULL, 0) == 0);
    snprintf(args, sizeof args, "-m '%s' -o o.mp4", bad);
    expect_fail("missing text encoder", NULL, args, "no text encoder");
    snprintf(bad, sizeof bad, "%s/m_noshard", tmp);
    copy_model(model, bad);
    snprintf(t, sizeof t, "%s/diffusion_pytorch_model-00001-of-00001.safetensors", bad);
    unlink(t);
    snprintf(args, sizeof args, "-m '%s' -o o.mp4", bad);
    expect_fail("missing DiT shard", NULL, args, "diffusion_pytorch_model-00001-of-00001.safetensors");
    snprintf(bad, sizeof bad, "%s/m_notok", tmp);
    copy_model(model, bad);
    snprintf(t, sizeof t, "rm -rf '%s/google'", bad);
    CHECK(tl_run(t, NULL, 0) == 0);
    snprintf(args, sizeof args, "-m '%s' -o o.mp4", bad);
    expect_fail("missing tokenizer", NULL, args, "tokenizer");
    /* wrong-shaped weights: the config says dim 96, the shards hold dim 128 */
    snprintf(bad, sizeof bad, "%s/m_shape", tmp);
    copy_model(model, bad);
    snprintf(t, sizeof t, "sed -i 's/\"dim\": 128/\"dim\": 96/' '%s/config.json'", bad);
    CHECK(tl_run(t, NULL, 0) == 0);
    snprintf(args, sizeof args, "-m '%s' -o o.mp4", bad);
    expect_fail("wrong-shaped DiT weights", NULL, args, "shape");
    /* a truncated VAE file */
    snprintf(bad, sizeof bad, "%s/m_trunc", tmp);
    copy_model(model, bad);
    snprintf(t, sizeof t, "truncate -s 100000 '%s/Wan2.2_VAE.safetensors'", bad);
    CHECK(tl_run(t, NULL, 0) == 0);
    snprintf(args, sizeof args, "-m '%s' -o o.mp4", bad);
    expect_fail("truncated VAE", NULL, args, "Wan2.2_VAE.safetensors");
    /* images */
    snprintf(args, sizeof args, "-m '%s' -i /nonexistent.png -o o.mp4", model);
    expect_fail("missing image", NULL, args, "/nonexistent.png");
    snprintf(t, sizeof t, "%s/garbage.png", tmp);
    CHECK(hb_write_file_atomic(t, "\x89PNG\r\n\x1a\nnot really a png at all", 32) == 0);
    snprintf(args, sizeof args, "-m '%s' -i '%s' -o o.mp4", model, t);
    expect_fail("corrupt image", NULL, args, "garbage.png");
    /* outputs */
    snprintf(args, sizeof args, "-m '%s' -o /nonexistent/dir/o.mp4", model);
    expect_fail("output folder missing", NULL, args, "does not exist");
    snprintf(args, sizeof args, "-m '%s' -o /proc/hb-test-out.mp4", model);
    expect_fail("unwritable output", NULL, args, "cannot write");
    snprintf(args, sizeof args, "-m '%s' -o o.avi", model);
    expect_fail("unknown format", NULL, args, "o.avi");
    snprintf(bad, sizeof bad, "%s/m_nolight", tmp);
    copy_model(model, bad);
    snprintf(t, sizeof t, "rm -rf '%s/vae'", bad);
    CHECK(tl_run(t, NULL, 0) == 0);
    snprintf(args, sizeof args, "-m '%s' --vae light -o o.mp4", bad);
    expect_fail("no light decoder", NULL, args, "light decoder not available");
    snprintf(t, sizeof t, "%s/taew2_2.safetensors", bad);
    unlink(t);
    snprintf(args, sizeof args, "-m '%s' --vae tae -o o.mp4", bad);
    expect_fail("no tiny decoder", NULL, args, "no tiny decoder");
    snprintf(args, sizeof args, "-m '%s' --sampler ddim -o o.mp4", model);
    expect_fail("bad sampler", NULL, args, "--sampler");
    /* a full disk (file size limit): the writer fails, nothing is left */
    snprintf(args, sizeof args, "-m '%s' -f 9 -o o.y4m", model);
    expect_fail("file size limit", "ulimit -f 8;", args, "o.y4m");
    snprintf(args, sizeof args, "-m '%s' -f 9 -o o.mp4", model);
    expect_fail("file size limit mp4", "ulimit -f 1;", args, "o.mp4");
    return tl_done();
}
