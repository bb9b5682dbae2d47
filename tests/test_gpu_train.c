/* Light-decoder training on device backends, through the CLI (docs/training.md):
 *  1. `hb golden -d DEV` on every training golden file of shared/golden/release (metadata kind
 *     hummingbird_light_vae_train), DEV in {cpu-guard, GPU}: PASS at hb golden's float32 tolerance for training
 *     (1e-4 normwise, on a GPU too: its convs take f32 operands there), the AdamW step comparisons included.
 *  2. `hb train-decoder` on a tiny random Wan2.2 VAE teacher and tiny light decoder (hb mkmodel --tiny), two
 *     ffmpeg testsrc2 clips of 5 frames at 32x32 (one held out), 3 steps at lr 3e-3:
 *     cpu-guard: checkpoint and train_state byte-identical to the CPU run's (same kernels);
 *     GPU (with the CPU run's clip cache, so both learn the same teacher video): the first step's loss (same
 *     weights: only the f32 rounding order differs, and the log's 6 digits) within TOL_LOSS1 relative of the CPU's;
 *     the later losses and the held-out L1 within TOL_LOSS (the weights may then differ by up to 2 lr per step,
 *     where a tiny gradient's sign and with it Adam's +-lr update flips; measured 1.1e-4 after 4 steps, about 1% of
 *     one step's loss decrease); the weights within TOL_STEP_LR x lr x steps of the CPU's element-wise
 *     (measured 0.75 lr after 4 steps).
 * The cpu-guard parts run on any machine; without a GPU backend the test then exits 77 (skip) with the reason.
 * Missing golden files skip part 1, a missing ffmpeg part 2. The GPU is HB_TEST_DEVICE (default cuda). */
#include "testlib.h"
#include "io/checkpoint.h"
#include "ops/ops.h"
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL_LOSS1 2e-5
#define TOL_LOSS 1e-3
#define TOL_STEP_LR 2.0
#define LR 3e-3
#define STEPS 3

static char g_dir[512], g_common[2048];

/* ---------- 1. the training golden ---------- */

static void golden_on(const char *dev, const char *path) {
    static char out[1 << 16];
    char args[1400];
    snprintf(args, sizeof args, "golden -d %s '%s'", dev, path);
    double t0 = hb_time_now();
    int rc = tl_hb(args, out, sizeof out);
    bool pass = rc == 0 && strstr(out, "=> PASS") && strstr(out, "out.step2.*") && !strstr(out, "FAIL");
    const char *w = strstr(out, "worst ");
    printf("golden %-10s %s  %s  %.1f s  %.*s\n", dev, path, pass ? "PASS" : "FAIL", hb_time_now() - t0,
           w ? (int)strcspn(w, "\n") : 0, w ? w : "");
    CHECKF(pass, "hb %s: exit %d\n%s", args, rc, out);
}

static void check_golden(const char *gpu) {
    const char *sd = tl_shared_dir();
    char dir[1024], path[1400];
    snprintf(dir, sizeof dir, "%s/golden/release", sd ? sd : ".");
    DIR *d = sd ? opendir(dir) : NULL;
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        hb_checkpoint *ck = hb_checkpoint_open(path);
        const char *kind = ck ? hb_checkpoint_metadata(ck, "kind") : NULL;
        bool train = kind && !strcmp(kind, "hummingbird_light_vae_train");
        hb_checkpoint_close(ck);
        if (!train) continue;
        n++;
        golden_on("cpu-guard", path);
        if (gpu) golden_on(gpu, path);
    }
    if (d) closedir(d);
    if (!n) printf("no training golden file (shared/golden/release not found: set HB_SHARED); skipping part 1\n");
}

/* ---------- 2. hb train-decoder ---------- */

static int sh(const char *cmd) { return tl_run(cmd, NULL, 0); }

static bool setup(void) {
    char cmd[2048];
    bool ok = true;
    snprintf(g_dir, sizeof g_dir, "%s", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' mkmodel --arch hummingbird-xt --tiny '%s/mk' >/dev/null 2>&1", tl_hb_bin(), g_dir);
    ok = ok && sh(cmd) == 0;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/clips'", g_dir);
    ok = ok && sh(cmd) == 0;
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -f lavfi -i testsrc2=size=48x32:rate=8:duration=1 "
                 "-vf hue=h=%d,crop=32:32:%d:0 -pix_fmt yuv420p '%s/clips/c%d.mp4'", i * 90, i * 8, g_dir, i);
        ok = ok && sh(cmd) == 0;
    }
    snprintf(g_common, sizeof g_common, "'%s' train-decoder --teacher '%s/mk/hm_2.2_5B/Wan2.2_VAE.pth' "
             "--config '%s/mk/vae/wan22_v1_tiling_16_12/config.json' --data '%s/clips' --frames 5 --size 32 "
             "--lr %g --ema 0 --steps %d --save-every %d -q", tl_hb_bin(), g_dir, g_dir, g_dir, LR, STEPS, STEPS);
    CHECKF(ok, "making the tiny models or the clips failed");
    return ok;
}

static int train(const char *dev, const char *out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -d %s --out '%s/%s' 2>&1", g_common, dev, g_dir, out);
    static char log[1 << 14];
    double t0 = hb_time_now();
    int rc = tl_run(cmd, log, sizeof log);
    printf("train-decoder -d %-10s exit %d  %.1f s\n", dev, rc, hb_time_now() - t0);
    CHECKF(rc == 0, "%s\n%s", cmd, log);
    return rc;
}

static bool same_file(const char *a, const char *b, const char *name) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cmp -s '%s/%s/%s' '%s/%s/%s'", g_dir, a, name, g_dir, b, name);
    return sh(cmd) == 0;
}

/* column col (0-based) of every data row of OUT/train_log.csv; the number of rows */
static int csv_column(const char *out, int col, double *v, int cap) {
    char p[1024], line[512];
    snprintf(p, sizeof p, "%s/%s/train_log.csv", g_dir, out);
    FILE *f = fopen(p, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f) && n < cap) {
        if (line[0] < '0' || line[0] > '9') continue;
        char *s = line;
        for (int i = 0; i < col && s; i++) s = strchr(s, ','), s = s ? s + 1 : NULL;
        v[n++] = s && *s != ',' && *s != '\n' ? atof(s) : NAN;
    }
    if (f) fclose(f);
    return n;
}

static float *checkpoint_weights(const char *out, int64_t *n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/train_state.safetensors", g_dir, out);
    hb_checkpoint *ck = hb_checkpoint_open(p);
    hb_tensor t;
    float *w = NULL;
    if (ck && hb_checkpoint_get(ck, "weights", &t) == 0 && t.dtype == HB_F32) {
        *n = hb_tensor_numel(&t);
        w = malloc(sizeof(float) * (size_t)*n);
        memcpy(w, t.data, sizeof(float) * (size_t)*n);
    }
    hb_checkpoint_close(ck);
    CHECKF(w, "%s: no F32 tensor 'weights'", p);
    return w;
}

static void compare_gpu_run(const char *gpu) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/gpu' && cp -r '%s/cpu/cache' '%s/gpu/'", g_dir, g_dir, g_dir);
    CHECK(sh(cmd) == 0);
    if (train(gpu, "gpu")) return;
    double lc[64], lg[64], ec[64], eg[64];
    int nc = csv_column("cpu", 1, lc, 64), ng = csv_column("gpu", 1, lg, 64);
    csv_column("cpu", 8, ec, 64), csv_column("gpu", 8, eg, 64);
    CHECKF(nc == STEPS + 1 && ng == nc, "log rows: cpu %d, %s %d", nc, gpu, ng);
    double first = nc > 1 && ng > 1 ? fabs(lg[1] - lc[1]) / lc[1] : NAN, worst = 0, worst_l1 = 0;
    for (int i = 2; i < nc && i < ng; i++) worst = fmax(worst, fabs(lg[i] - lc[i]) / lc[i]);
    for (int i = 0; i < nc && i < ng; i += STEPS) worst_l1 = fmax(worst_l1, fabs(eg[i] - ec[i]) / ec[i]);
    printf("train-decoder %s vs cpu: step 1 loss %.2e (tolerance %.0e), later losses %.2e, held-out L1 %.2e relative "
           "(tolerance %.0e)\n", gpu, first, TOL_LOSS1, worst, worst_l1, TOL_LOSS);
    CHECKF(first <= TOL_LOSS1, "%s: step 1 loss %.3e relative to the CPU run's", gpu, first);
    CHECKF(worst <= TOL_LOSS && worst_l1 <= TOL_LOSS, "%s: loss %.3e, held-out L1 %.3e relative to the CPU run", gpu,
           worst, worst_l1);
    int64_t n1 = 0, n2 = 0;
    float *a = checkpoint_weights("cpu", &n1), *b = checkpoint_weights("gpu", &n2);
    if (a && b && n1 == n2) {
        double d = 0;
        for (int64_t i = 0; i < n1; i++) d = fmax(d, fabs((double)a[i] - b[i]));
        printf("train-decoder %s vs cpu: weights after %d steps max |d| = %.2e lr\n", gpu, STEPS, d / LR);
        CHECKF(d <= TOL_STEP_LR * LR * STEPS, "%s: weights %.3e lr from the CPU run's", gpu, d / LR);
    } else CHECKF(0, "weights missing or of different sizes (%lld, %lld)", (long long)n1, (long long)n2);
    free(a), free(b);
}

static void check_train_decoder(const char *gpu) {
    if (tl_run("command -v ffmpeg >/dev/null", NULL, 0) != 0) { printf("ffmpeg not installed: skipping part 2\n"); return; }
    if (!setup() || train("cpu", "cpu") || train("cpu-guard", "guard")) return;
    CHECKF(same_file("cpu", "guard", "checkpoint/diffusion_pytorch_model.safetensors"), "cpu-guard checkpoint differs from cpu");
    CHECKF(same_file("cpu", "guard", "train_state.safetensors"), "cpu-guard train_state differs from cpu");
    if (gpu) compare_gpu_run(gpu);
}

int main(void) {
    tl_seed();
    const char *gpu = getenv("HB_TEST_DEVICE");
    if (!gpu || !*gpu) gpu = "cuda";
    char why[600] = "";
    if (!hb_backend_find(gpu))
        snprintf(why, sizeof why, "GPU backend '%s' not available (%s); only the cpu-guard runs were checked", gpu,
                 hb_last_error());
    bool have = !why[0];
    check_golden(have ? gpu : NULL);
    check_train_decoder(have ? gpu : NULL);
    if (!have) tl_skip(why);
    return tl_done();
}
