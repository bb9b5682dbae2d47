/* hb train-decoder end to end (CLI): a tiny random Wan2.2 VAE teacher and a tiny light-decoder config (hb mkmodel
 * --tiny), four synthetic 9-frame clips made with ffmpeg's testsrc2 (hue and crop differ; the last is held
 * out), 64x64 crops.
 * - 60 steps at lr 3e-3: the mean training loss of the last 10 steps is below 0.8x the first step's, and the
 *   held-out PSNR of student vs teacher rises by at least 2 dB from step 0 (measured: about +5 dB);
 * - the run writes train_log.csv, loss.png and checkpoint/ that hb generate --light-vae decodes with;
 * - 20 steps, then --resume to 60: a checkpoint byte-identical to the uninterrupted run's (feature distillation
 *   on: heads, teacher features and the heads' moments take part);
 * - kill -9 after the step-20 checkpoint, then --resume: byte-identical again, no duplicate log rows; the same
 *   after SIGINT (exit 130, the last finished step saved);
 * - --init from a checkpoint with --batch 2 --accum 2 runs;
 * - these runs use the default feature blocks 0,1,2: the feature loss of the last 10 steps is below 0.5x the first
 *   step's (measured: about 0.33x) while the PSNR rises as above; --feature-blocks none trains on reconstruction
 *   alone and caches no features, a features run in the same folder refills that cache; resuming with other blocks,
 *   an index the student/teacher pairing lacks (5 with the 4-up-block student), a repeated or malformed index,
 *   are refused with one message naming --feature-blocks;
 * - bad input (--frames 8, a missing --data, a missing --lpips file) fails with one message and no checkpoint.
 * Skips without ffmpeg. */
#include "testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char g_dir[512], g_common[2048];

static int sh(const char *fmt, const char *a, const char *b) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a ? a : "", b ? b : "");
    return tl_run(cmd, NULL, 0);
}

/* the CSV (columns found by name): first step's loss and feature loss, means of the last 10, first and last
 * held-out PSNR; rows counted */
typedef struct { double first_loss, last_loss, first_feat, last_feat, psnr0, psnr_end; int rows, dup; } csvsum;
static int read_csv(const char *path, csvsum *s) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    double losses[1024], feats[1024];
    int nl = 0, seen[1024] = {0}, c_loss = -1, c_feat = -1, c_psnr = -1;
    memset(s, 0, sizeof *s);
    s->psnr0 = NAN;
    while (fgets(line, sizeof line, f)) {
        char *fld[16] = {0}, *p = line;
        for (int i = 0; i < 16 && p; i++) fld[i] = p, p = strpbrk(p, ",\n"), p = p ? (*p = 0, p + 1) : NULL;
        if (!strcmp(fld[0], "step"))
            for (int i = 0; i < 16 && fld[i]; i++) {
                if (!strcmp(fld[i], "loss")) c_loss = i;
                if (!strcmp(fld[i], "loss_feat")) c_feat = i;
                if (!strcmp(fld[i], "eval_psnr")) c_psnr = i;
            }
        if (line[0] < '0' || line[0] > '9' || c_loss < 0 || c_feat < 0 || c_psnr < 0) continue;
        int step = atoi(fld[0]);
        if (step >= 0 && step < 1024) s->dup += seen[step]++ > 0;
        s->rows++;
        if (fld[c_loss] && fld[c_loss][0] && nl < 1024) losses[nl] = atof(fld[c_loss]), feats[nl++] = atof(fld[c_feat]);
        if (fld[c_psnr] && fld[c_psnr][0]) {
            if (isnan(s->psnr0)) s->psnr0 = atof(fld[c_psnr]);
            s->psnr_end = atof(fld[c_psnr]);
        }
    }
    fclose(f);
    s->first_loss = nl ? losses[0] : NAN, s->first_feat = nl ? feats[0] : NAN;
    s->last_loss = s->last_feat = nl >= 10 ? 0 : NAN;
    for (int i = nl - 10; i < nl && nl >= 10; i++) s->last_loss += losses[i] / 10, s->last_feat += feats[i] / 10;
    return c_loss < 0 || c_feat < 0 || c_psnr < 0 ? -1 : 0;
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "%s", tl_tmpdir());
    CHECK(sh("'%s' mkmodel --arch hummingbird-xt --tiny '%s/mk' >/dev/null 2>&1", tl_hb_bin(), g_dir) == 0);
    CHECK(sh("mkdir -p '%s/clips'%s", g_dir, NULL) == 0);
    for (int i = 0; i < 4; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -f lavfi -i testsrc2=size=96x80:rate=8:duration=2 "
                 "-vf hue=h=%d,crop=80:80:%d:0 -pix_fmt yuv420p '%s/clips/c%d.mp4'", i * 60, i * 4, g_dir, i);
        CHECK(tl_run(cmd, NULL, 0) == 0);
    }
    snprintf(g_common, sizeof g_common, "'%s' train-decoder --teacher '%s/mk/hm_2.2_5B/Wan2.2_VAE.pth' "
             "--config '%s/mk/vae/wan22_v1_tiling_16_12/config.json' --data '%s/clips' --frames 9 --size 64 "
             "--lr 3e-3 --ema 0.9 --save-every 20 -q", tl_hb_bin(), g_dir, g_dir, g_dir);
}

static int train(const char *out, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s --out '%s/%s' %s", g_common, g_dir, out, extra);
    return tl_run(cmd, NULL, 0);
}

static bool same_checkpoint(const char *a, const char *b) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cmp -s '%s/%s/checkpoint/diffusion_pytorch_model.safetensors' '%s/%s/checkpoint/diffusion_pytorch_model.safetensors'",
             g_dir, a, g_dir, b);
    return tl_run(cmd, NULL, 0) == 0;
}

static void check_learning(void) {
    CHECK(train("a", "--steps 60") == 0);
    char p[1024];
    csvsum s;
    snprintf(p, sizeof p, "%s/a/train_log.csv", g_dir);
    CHECKF(read_csv(p, &s) == 0, "cannot read %s", p);
    CHECKF(s.last_loss < 0.8 * s.first_loss, "loss %.4f -> %.4f", s.first_loss, s.last_loss);
    CHECKF(s.first_feat > 0 && s.last_feat < 0.5 * s.first_feat, "feature loss %.4f -> %.4f", s.first_feat, s.last_feat);
    CHECKF(s.psnr_end >= s.psnr0 + 2.0, "held-out PSNR %.2f -> %.2f dB", s.psnr0, s.psnr_end);
    CHECK(s.rows == 61 && s.dup == 0);
    printf("  60 steps (feature blocks 0,1,2): loss %.4f -> %.4f, feature loss %.4f -> %.4f (last 10), held-out PSNR "
           "%.2f -> %.2f dB\n", s.first_loss, s.last_loss, s.first_feat, s.last_feat, s.psnr0, s.psnr_end);
    struct stat st;
    snprintf(p, sizeof p, "%s/a/loss.png", g_dir);
    CHECK(stat(p, &st) == 0 && st.st_size > 1000);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' generate -m '%s/mk' --vae light --light-vae '%s/a/checkpoint' -p test -f 9 -W 64 -H 64 "
             "-o '%s/gen.mp4' >/dev/null 2>&1", tl_hb_bin(), g_dir, g_dir, g_dir);
    CHECKF(tl_run(cmd, NULL, 0) == 0, "hb generate --light-vae with the trained checkpoint failed");
}

static void check_resume(void) {
    CHECK(train("b", "--steps 20") == 0);
    CHECK(train("b", "--steps 60 --resume") == 0);
    CHECKF(same_checkpoint("a", "b"), "20 + 40 resumed steps differ from 60 steps");
    /* kill -9 once the step-20 checkpoint and its log row are written */
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "%s --out '%s/c' --steps 60 & p=$!; for i in $(seq 1200); do "
             "grep -q '^2[0-9],' '%s/c/train_log.csv' 2>/dev/null && break; sleep 0.05; done; kill -9 $p; wait $p; true",
             g_common, g_dir, g_dir);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    CHECK(train("c", "--steps 60 --resume") == 0);
    CHECKF(same_checkpoint("a", "c"), "the run resumed after kill -9 differs from the uninterrupted one");
    char p[1024];
    csvsum s;
    snprintf(p, sizeof p, "%s/c/train_log.csv", g_dir);
    CHECK(read_csv(p, &s) == 0 && s.dup == 0 && s.rows == 61);
}

/* SIGINT mid-run: exit 130 after saving the last finished step; --resume then ends byte-identical */
static void check_interrupt(void) {
    char cmd[6000], out[256], extra[1200];
    snprintf(cmd, sizeof cmd, "%s --out '%s/d' --steps 60 & p=$!; for i in $(seq 1200); do "
             "grep -q '^2[2-9],' '%s/d/train_log.csv' 2>/dev/null && break; sleep 0.05; done; kill -INT $p; wait $p; echo $?",
             g_common, g_dir, g_dir);
    CHECK(tl_run(cmd, out, sizeof out) == 0);
    CHECKF(atoi(out) == 130 || atoi(out) == 0, "exit status after SIGINT: %s", out); /* 0: it had already finished */
    CHECK(train("d", "--steps 60 --resume") == 0);
    CHECKF(same_checkpoint("a", "d"), "the run resumed after SIGINT differs from the uninterrupted one");
    /* --init from a checkpoint, with batch and accumulation */
    snprintf(extra, sizeof extra, "--steps 3 --batch 2 --accum 2 --init '%s/a/checkpoint'", g_dir);
    snprintf(cmd, sizeof cmd, "'%s' train-decoder --teacher '%s/mk/hm_2.2_5B/Wan2.2_VAE.pth' %s --data '%s/clips' "
             "--frames 9 --size 64 --out '%s/e' -q", tl_hb_bin(), g_dir, extra, g_dir, g_dir);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    char p[1024];
    csvsum s;
    snprintf(p, sizeof p, "%s/e/train_log.csv", g_dir);
    CHECK(read_csv(p, &s) == 0 && s.rows == 4 && s.dup == 0);
}

/* --feature-blocks none: reconstruction only (loss = rec, loss_feat 0) on a cache without features; a features run
 * in the same folder refills that cache (the teacher's features added beside latent and video) and its state
 * refuses a resume with other blocks; bad block lists are refused naming the flag */
static void check_feature_blocks(void) {
    CHECK(train("n", "--steps 12 --feature-blocks none") == 0);
    char p[1024], cmd[4096], out[4096];
    csvsum s;
    snprintf(p, sizeof p, "%s/n/train_log.csv", g_dir);
    CHECK(read_csv(p, &s) == 0 && s.rows == 13 && s.first_feat == 0 && s.last_feat == 0);
    snprintf(cmd, sizeof cmd, "grep -l -a feature.0 '%s'/n/cache/*.safetensors | wc -l", g_dir);
    CHECKF(tl_run(cmd, out, sizeof out) == 0 && atoi(out) == 0, "a run without feature blocks cached features");
    CHECK(train("n", "--steps 3 --feature-blocks 0,3,4 --feature-weight 2") == 0);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && atoi(out) == 4);
    CHECK(read_csv(p, &s) == 0 && s.rows == 4 && s.first_feat > 0);
    snprintf(cmd, sizeof cmd, "%s --out '%s/n' --steps 5 --resume --feature-blocks 0,3 2>&1", g_common, g_dir);
    CHECKF(tl_run(cmd, out, sizeof out) != 0 && strstr(out, "--feature-blocks 0,3,4"), "resume with other blocks: %s", out);
    const char *bad[] = {"5", "0,0", "1,x", "9"};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s --out '%s/nb' --steps 1 --feature-blocks %s 2>&1", g_common, g_dir, bad[i]);
        int rc = tl_run(cmd, out, sizeof out);
        int lines = 0;
        for (const char *c = out; *c; c++) lines += *c == '\n';
        CHECKF(rc != 0 && strstr(out, "--feature-blocks") && lines == 1, "--feature-blocks %s: rc %d, %s", bad[i], rc, out);
    }
}

static void check_errors(void) {
    char out[4096];
    struct { const char *extra, *want; } bad[] = {
        {"--steps 2 --frames 8", "--frames 8"}, {"--steps 2 --lpips x.safetensors", "x.safetensors"}};
    for (int i = 0; i < 2; i++) {
        char cmd[5000];
        snprintf(cmd, sizeof cmd, "%s --out '%s/bad%d' %s 2>&1", g_common, g_dir, i, bad[i].extra);
        int rc = tl_run(cmd, out, sizeof out);
        CHECKF(rc != 0 && strstr(out, bad[i].want), "%s: rc %d, output %s", bad[i].extra, rc, out);
    }
    snprintf(out, sizeof out, "'%s' train-decoder --teacher '%s/mk/hm_2.2_5B/Wan2.2_VAE.pth' --config x.json --data '%s/none' --out '%s/bad2' 2>&1",
             tl_hb_bin(), g_dir, g_dir, g_dir);
    char res[2048];
    int rc = tl_run(out, res, sizeof res);
    CHECKF(rc != 0 && strstr(res, "x.json"), "missing config: rc %d, %s", rc, res);
    struct stat st;
    snprintf(out, sizeof out, "%s/bad0/checkpoint", g_dir);
    CHECK(stat(out, &st) != 0);
}

int main(void) {
    if (tl_run("command -v ffmpeg >/dev/null", NULL, 0) != 0) tl_skip("ffmpeg not installed");
    setup();
    check_learning();
    check_resume();
    check_interrupt();
    check_feature_blocks();
    check_errors();
    return tl_done();
}
