/* The `hb` command line as a user meets it (issue 16), driving the real binary on tiny random-weight folders
 * (hummingbird-xt-flat for hb generate, hummingbird-xtx-flat for --mode ar) at 64x64 and a few frames:
 * one flag set for both modes, the sd.cpp / llama.cpp aliases giving the very same video as our names, a
 * random seed printed and stored in the file, no silently ignored flag, output path rules (folder, one PNG,
 * numbered PNGs, --crf), input checks (empty / invalid UTF-8 / too long prompt, -i on a text-only model),
 * progress lines and the --json summary, and interrupts (SIGINT/SIGTERM: no output, no temp file, 130/143). */
#include "testlib.h"
#include "io/video.h"
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_xt[600], g_xtx[600];

static int gen(const char *args, char *out, size_t cap) {
    char a[16384];
    snprintf(a, sizeof a, "generate -m '%s' -W 64 -H 64 %s", g_xt, args);
    return tl_hb(a, out, cap);
}

static bool read_video(const char *path, hb_video *v) {
    memset(v, 0, sizeof *v);
    return hb_video_read(path, 0, v) == 0;
}

static bool same_video(const char *pa, const char *pb) {
    hb_video a, b;
    bool ok = read_video(pa, &a) && read_video(pb, &b) && a.frames == b.frames && a.width == b.width &&
              a.height == b.height && !memcmp(a.rgb, b.rgb, (size_t)a.frames * a.height * a.width * 3);
    hb_video_free(&a);
    hb_video_free(&b);
    return ok;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Files in dir whose name contains `part`. */
static int count_named(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, part) != NULL;
    if (d) closedir(d);
    return n;
}

/* 1 + 2: the same names in both modes; the aliases and --flag=value give the same video as our names. */
static void test_flags(void) {
    const char *t = tl_tmpdir();
    char args[8192], out[16384], pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/ours.y4m", t);
    snprintf(pb, sizeof pb, "%s/alias.y4m", t);
    snprintf(args, sizeof args, "-p 'a red fox' -f 5 --seed 7 --sampler unipc --steps 2 --cfg 3 --shift 4 "
             "-n blurry --vae full -o '%s'", pa);
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "-t 2 -q generate --model='%s' --width=64 --height 64 --prompt='a red fox' "
             "--video-frames=5 -s 7 --sampling-method=unipc --steps=2 --cfg-scale 3 --flow-shift=4 "
             "--negative-prompt blurry --decoder vae --output '%s'", g_xt, pb);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    CHECKF(same_video(pa, pb), "sd.cpp names gave another video than ours");
    /* -t 0 = all cores: the same video */
    snprintf(args, sizeof args, "-p 'a red fox' -f 5 -s 7 -t 0 --sampler unipc --steps 2 --cfg 3 --shift 4 -n blurry "
             "--vae full -o '%s'", pb);
    CHECKF(gen(args, out, sizeof out) == 0 && same_video(pa, pb), "-t 0: %s", out);
    /* AR mode: the same size / frames / seed / output names */
    snprintf(pa, sizeof pa, "%s/ar1.y4m", t);
    snprintf(pb, sizeof pb, "%s/ar2.y4m", t);
    snprintf(args, sizeof args, "generate --mode ar -q -m '%s' --width 64 --height 48 --frames 13 --seed 5 "
             "--decoder tae -p x --output '%s'", g_xtx, pa);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "generate --mode=ar -q --model '%s' -W 64 -H=48 -f 13 -s 5 --vae tae -o '%s' -p x",
             g_xtx, pb);
    CHECKF(tl_hb(args, out, sizeof out) != 0 && strstr(out, "-H=48"), "-H=48 is not a long flag: %s", out);
    snprintf(args, sizeof args, "generate --mode=ar -q --model '%s' -W 64 -H 48 -f 13 -s 5 --vae tae -o '%s' -p x",
             g_xtx, pb);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    hb_video va;
    CHECK(read_video(pb, &va) && va.frames == 13 && va.width == 64 && va.height == 48);
    hb_video_free(&va);
    /* the frame rule and its explanation, in both modes */
    CHECK(gen("-p x -f 6", out, sizeof out) != 0 && strstr(out, "4k+1") && strstr(out, "e.g. 5 or 9"));
    snprintf(args, sizeof args, "generate --mode ar -m '%s' -p x -f 14", g_xtx);
    CHECK(tl_hb(args, out, sizeof out) != 0 && strstr(out, "4k+1") && strstr(out, "e.g. 13 or 17"));
    /* help: hb help CMD, both modes list the sd.cpp names */
    CHECK(tl_hb("help generate", out, sizeof out) == 0 && strstr(out, "--cfg-scale") && strstr(out, "--sampling-method"));
    CHECK(tl_hb("help generate --mode ar", out, sizeof out) == 0 && strstr(out, "--window") && strstr(out, "--video-frames"));
    CHECK(tl_hb("-t 2 frobnicate", out, sizeof out) == 2 && strstr(out, "unknown command 'frobnicate'"));
    CHECK(tl_hb("-t x generate", out, sizeof out) != 0 && strstr(out, "thread count"));
}

/* 2: -s -1 draws a seed, prints it and stores it in the file; that seed gives the same video again. */
static void test_random_seed(void) {
    const char *t = tl_tmpdir();
    char args[8192], out[16384], pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/rs.mkv", t);
    snprintf(args, sizeof args, "-p x -f 5 --vae tae -s -1 --crf 0 -o '%s'", pa);
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    const char *s = strstr(out, "seed ");
    unsigned long long seed = s ? strtoull(s + 5, NULL, 10) : 0;
    CHECKF(s && strstr(s, "(random)"), "no printed seed: %s", out);
    char cmd[2000], tag[256] = "";
    snprintf(cmd, sizeof cmd, "ffprobe -v error -show_entries format_tags=seed -of csv=p=0 '%s'", pa);
    CHECK(tl_run(cmd, tag, sizeof tag) == 0 && strtoull(tag, NULL, 10) == seed);
    snprintf(pb, sizeof pb, "%s/rs2.mkv", t);
    snprintf(args, sizeof args, "-p x -f 5 --vae tae -s %llu --crf 0 -o '%s'", seed, pb);
    CHECKF(gen(args, out, sizeof out) == 0 && same_video(pa, pb), "seed %llu does not repeat the video", seed);
    CHECK(gen("-p x -s -2", out, sizeof out) != 0 && strstr(out, "-1 (random)"));
}

/* 3: a flag the sampler / decoder / mode in use does not read is an error saying why, and nothing is written. */
static void test_unused_flags(void) {
    const char *t = tl_tmpdir();
    static const struct { const char *args, *want; } cases[] = {
        {"--cfg 3", "CFG-free"},                       /* the model's default sampler is xt */
        {"--cfg-scale 3", "--cfg-scale is not used"},
        {"--steps 4", "xt sampler"},
        {"-n blurry", "xt sampler"},
        {"--sampler euler --steps-list 1000", "unipc/euler"},
        {"--sampler unipc --noise stream", "unipc/euler"},
        {"--vae full --light-tiling aligned", "light decoder"},
        {"--vae tae --vae-tile 2", "full Wan VAE"},         /* the model's default decoder is light */
        {"--vae-tile 2", "full Wan VAE"},
        {"--image-fit cover", "without -i"},
        {"--vae none", "--mode ar"},
        {"--checkpoint x.pt", "--mode ar"},
        {"--window 4", "--mode ar"},
    };
    char args[8192], out[16384], path[700];
    snprintf(path, sizeof path, "%s/unused.mp4", t);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(args, sizeof args, "-p x -f 5 %s -o '%s'", cases[k].args, path);
        int rc = gen(args, out, sizeof out);
        CHECKF(rc == 1 && strstr(out, cases[k].want) && !exists(path), "'%s': exit %d: %s", cases[k].args, rc, out);
    }
    static const struct { const char *args, *want; } ar_cases[] = {
        {"-i in.png", "text-to-video only"},
        {"--cfg 3", "CFG-free"},
        {"--sampler xt", "CFG-free"},
        {"--light-tiling release", "AR mode does not use it"},
        {"--vae light", "streaming Wan VAE"},
        {"--vae none -o x.mp4", "nothing is written"},
    };
    for (size_t k = 0; k < sizeof ar_cases / sizeof ar_cases[0]; k++) {
        snprintf(args, sizeof args, "generate --mode ar -m '%s' -W 64 -H 48 -f 5 -p x %s", g_xtx, ar_cases[k].args);
        int rc = tl_hb(args, out, sizeof out);
        CHECKF(rc == 1 && strstr(out, ar_cases[k].want), "AR '%s': exit %d: %s", ar_cases[k].args, rc, out);
    }
}

/* 4: output paths. */
static void test_outputs(void) {
    const char *t = tl_tmpdir();
    char args[8192], out[16384], p[700], q[700];
    snprintf(args, sizeof args, "-p x -f 5 -o '%s'", t); /* an existing folder without '/' */
    CHECK(gen(args, out, sizeof out) == 1 && strstr(out, "is a folder"));
    /* every frame: FOLDER/ and frame_%03d.png hold the same PNGs */
    snprintf(p, sizeof p, "%s/frames/", t);
    snprintf(args, sizeof args, "-p x -f 5 -s 3 --vae tae -o '%s'", p);
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    snprintf(q, sizeof q, "%s/pat", t);
    mkdir(q, 0755);
    snprintf(q, sizeof q, "%s/pat/f_%%03d.png", t);
    snprintf(args, sizeof args, "-p x -f 5 -s 3 --vae tae -o '%s'", q);
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    snprintf(q, sizeof q, "%s/pat", t);
    CHECK(count_named(q, "f_0") == 5 && same_video(p, q));
    snprintf(args, sizeof args, "-p x -f 5 -o '%s/bad_%%s.png'", t);
    CHECK(gen(args, out, sizeof out) == 1 && strstr(out, "%04d"));
    /* one image: -f 1 with .png; its pixels are the first frame of the same run as PNG frames */
    snprintf(p, sizeof p, "%s/one.png", t);
    snprintf(args, sizeof args, "-p x -f 1 -s 3 --vae tae -o '%s'", p);
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    snprintf(q, sizeof q, "%s/one/", t);
    snprintf(args, sizeof args, "-p x -f 1 -s 3 --vae tae -o '%s'", q);
    CHECKF(gen(args, out, sizeof out) == 0 && same_video(p, q), "%s", out);
    snprintf(args, sizeof args, "-p x -f 5 -o '%s/five.png'", t);
    CHECK(gen(args, out, sizeof out) == 1 && strstr(out, "-f 1"));
    /* --crf: a lower value keeps more (a bigger file) */
    struct stat s1, s2;
    snprintf(p, sizeof p, "%s/crf10.mp4", t);
    snprintf(q, sizeof q, "%s/crf45.mp4", t);
    snprintf(args, sizeof args, "-p x -f 9 -s 2 --vae tae --crf 10 -o '%s'", p);
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "-p x -f 9 -s 2 --vae tae --crf=45 -o '%s'", q);
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    CHECKF(stat(p, &s1) == 0 && stat(q, &s2) == 0 && s1.st_size > s2.st_size, "crf 10: %lld bytes, crf 45: %lld",
           (long long)s1.st_size, (long long)s2.st_size);
    CHECK(gen("-p x --crf 99", out, sizeof out) == 1 && strstr(out, "--crf"));
    /* the same flag in AR mode (streamed file) */
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "generate --mode ar -q -m '%s' -W 64 -H 48 -f 13 -p x --vae tae --crf %d -o '%s'",
                 g_xtx, k ? 45 : 10, k ? q : p);
        CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    }
    CHECKF(stat(p, &s1) == 0 && stat(q, &s2) == 0 && s1.st_size > s2.st_size, "AR crf 10: %lld bytes, crf 45: %lld",
           (long long)s1.st_size, (long long)s2.st_size);
}

/* 5: inputs. */
static void test_inputs(void) {
    char args[20000], out[16384];
    CHECK(gen("-p ''", out, sizeof out) == 1 && strstr(out, "empty"));
    CHECK(gen("-p '   '", out, sizeof out) == 1 && strstr(out, "empty"));
    CHECK(gen("-p \"$(printf 'caf\\303\\251 \\377x')\"", out, sizeof out) == 1 && strstr(out, "UTF-8 at byte 6"));
    CHECK(gen("-p \"$(printf 'a\\300\\257')\"", out, sizeof out) == 1 && strstr(out, "UTF-8 at byte 1")); /* overlong */
    /* a prompt past the encoder's 512 tokens: a warning with the count cut, the run goes on */
    char longp[6000] = "";
    for (int i = 0; i < 600; i++) strcat(longp, "zq ");
    snprintf(args, sizeof args, "-p '%s' -f 1 --vae tae -o '%s/long.png'", longp, tl_tmpdir());
    CHECKF(gen(args, out, sizeof out) == 0 && strstr(out, "are cut"), "%s", out);
    /* -i with -W alone: the height keeps the image's aspect ratio, rounded to the 32-pixel multiple */
    char img[700], vid[700];
    snprintf(img, sizeof img, "%s/wide.png", tl_tmpdir());
    snprintf(vid, sizeof vid, "%s/wide.y4m", tl_tmpdir());
    snprintf(args, sizeof args, "-q -p x -f 1 --vae tae -W 160 -H 96 -o '%s'", img); /* a 160 x 96 picture */
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "generate -q -m '%s' -p x -f 5 --vae tae -i '%s' -W 128 -o '%s'", g_xt, img, vid);
    hb_video v;
    CHECKF(tl_hb(args, out, sizeof out) == 0 && read_video(vid, &v) && v.width == 128 && v.height == 64,
           "128 x 96/160 = 76.8 -> 64: %s", out); /* 76.8 rounds to 2 x 32 */
    hb_video_free(&v);
    /* -i on a text-only (Wan2.1 / XTX) model */
    char png[700];
    snprintf(png, sizeof png, "%s/one.png", tl_tmpdir());
    snprintf(args, sizeof args, "generate -m '%s' -W 64 -H 48 -f 5 -p x -i '%s' -o '%s/i.mp4'", g_xtx, png, tl_tmpdir());
    CHECKF(tl_hb(args, out, sizeof out) == 1 && strstr(out, "text-to-video model"), "%s", out);
}

/* 6: progress lines (denoise steps, decode per latent with ETA, AR one line per chunk) and --json. */
static void test_progress_json(void) {
    char args[8192], out[16384];
    snprintf(args, sizeof args, "-q -p x -f 9 -s 11 --json -o '%s/j.mkv'", tl_tmpdir());
    CHECKF(gen(args, out, sizeof out) == 0, "%s", out);
    char want[800];
    snprintf(want, sizeof want, "{\"file\": \"%s/j.mkv\", \"frames\": 9, \"width\": 64, \"height\": 64,", tl_tmpdir());
    CHECKF(!strncmp(out, want, strlen(want)) && strstr(out, "\"seed\": 11,") && strstr(out, "\"decode\": ") &&
           strstr(out, "\"peak_rss_mib\": ") && out[strlen(out) - 2] == '}', "%s", out);
    snprintf(args, sizeof args, "-p x -f 9 -o '%s/pr.mkv'", tl_tmpdir());
    CHECKF(gen(args, out, sizeof out) == 0 && strstr(out, "denoise step 3/3") && strstr(out, "decode  latent 3/3") &&
           strstr(out, "ETA"), "%s", out);
    /* -v: stage times and peak memory, not the video encoder's statistics */
    snprintf(args, sizeof args, "-p x -f 9 -v -o '%s/v.mp4'", tl_tmpdir());
    CHECKF(gen(args, out, sizeof out) == 0 && strstr(out, "stage times: load") && strstr(out, "peak RSS: ") &&
           !strstr(out, "libx264"), "%s", out);
    snprintf(args, sizeof args, "generate --mode ar -m '%s' -W 64 -H 48 -f 25 -p x --vae tae -o '%s/pr.y4m'", g_xtx,
             tl_tmpdir());
    CHECKF(tl_hb(args, out, sizeof out) == 0 && strstr(out, "chunk 1/3") && strstr(out, "chunk 3/3  elapsed") &&
           !strstr(out, "\r"), "%s", out);
    snprintf(args, sizeof args, "generate --mode ar -q -m '%s' -W 64 -H 48 -f 25 -p x --vae tae --json -o '%s/j.y4m'",
             g_xtx, tl_tmpdir());
    CHECKF(tl_hb(args, out, sizeof out) == 0 && strstr(out, "\"frames\": 25, \"width\": 64, \"height\": 48"), "%s", out);
}

/* 7: a signal at any moment of a run: either the finished file (signal after the end) or exit 128 + signal with
 * no file under the name and no temp file in the folder. Signals at spread-out delays hit loading, denoising,
 * decoding and writing; SIGINT once the denoise progress is on stderr. */
static int run_signalled(const char *dir, int sig, double delay, bool wait_denoise) {
    char outp[700], errp[700];
    if (snprintf(outp, sizeof outp, "%s/sig.mp4", dir) >= (int)sizeof outp ||
        snprintf(errp, sizeof errp, "%s/../sig.err", dir) >= (int)sizeof errp)
        return -1;
    unlink(errp); /* the last run's progress must not count as this one's */
    pid_t pid = fork();
    if (pid == 0) {
        FILE *e = freopen(errp, "w", stderr);
        (void)e;
        execl(tl_hb_bin(), "hb", "generate", "-t", "1", "-m", g_xt, "-p", "x", "-W", "192", "-H", "192", "-f", "33",
              "--vae", "full", "-o", outp, (char *)NULL);
        _exit(127);
    }
    double t0 = hb_time_now();
    while (hb_time_now() - t0 < delay) {
        if (wait_denoise) {
            char buf[8192] = "";
            FILE *f = fopen(errp, "r");
            size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f) fclose(f);
            buf[n] = 0;
            if (strstr(buf, "denoise step 1/")) break;
        }
        usleep(5000);
    }
    kill(pid, sig);
    int st;
    waitpid(pid, &st, 0);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    bool done = code == 0 && exists(outp);
    /* killed before hb set its handler (process start, slow under load): nothing can have been written either */
    bool early = WIFSIGNALED(st) && WTERMSIG(st) == sig && !wait_denoise;
    CHECKF(done || ((code == 128 + sig || early) && !exists(outp)), "signal %d after %.2f s: exit %d, file %s", sig, delay, code,
           exists(outp) ? "present" : "absent");
    CHECKF(count_named(dir, "hbtmp") == 0 && count_named(dir, ".hb-") == 0, "signal %d after %.2f s: a temp file is left",
           sig, delay);
    unlink(outp);
    return code;
}

static void test_interrupts(void) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/sig", tl_tmpdir());
    mkdir(dir, 0755);
    CHECK(run_signalled(dir, SIGINT, 30, true) == 130); /* during denoising */
    CHECK(run_signalled(dir, SIGTERM, 30, true) == 143);
    static const double delays[] = {0.01, 0.1, 0.3, 0.6, 1.0, 1.4, 1.8, 2.2, 2.6, 3.0, 3.5};
    int interrupted = 0;
    for (size_t k = 0; k < sizeof delays / sizeof delays[0]; k++)
        interrupted += run_signalled(dir, k % 2 ? SIGTERM : SIGINT, delays[k], false) != 0;
    CHECK(interrupted > 0);
    /* AR mode: nothing under the final name; the frames made so far stay playable in ar.partial.y4m, reported */
    char args[8192], out[4096], outp[800], part[800];
    if (snprintf(outp, sizeof outp, "%s/ar.y4m", dir) >= (int)sizeof outp) return;
    snprintf(part, sizeof part, "%s/ar.partial.y4m", dir);
    snprintf(args, sizeof args, "'%s' generate --mode ar -q -t 1 -m '%s' -W 64 -H 48 -f 100001 -p x --vae tae -o '%s' "
             "2>&1 & sleep 3; kill -INT $!; wait $!", tl_hb_bin(), g_xtx, outp);
    int rc = tl_run(args, out, sizeof out);
    CHECKF(rc == 130 && !exists(outp) && count_named(dir, "hbtmp") == 0, "AR SIGINT: exit %d, %s", rc, out);
    if (exists(part)) {
        CHECKF(strstr(out, "playable in") && strstr(out, "ar.partial.y4m"), "%s", out);
        hb_video v = {0};
        CHECKF(hb_video_read(part, 0, &v) == 0 && v.frames > 0, "%s: %s", part, hb_last_error());
        hb_video_free(&v);
    } else { /* stopped before the first chunk was written: nothing to keep */
        CHECKF(!strstr(out, "playable in"), "%s", out);
    }
}

/* 8: hb golden's one-line summary; hb inspect DIR shows every part, the family and its default settings. */
static void test_golden_inspect(void) {
    char args[8192], out[65536];
    CHECK(tl_hb("golden /nonexistent/x.safetensors", out, sizeof out) == 1 &&
          strstr(out, "hb golden: 1 files, 0 checks, 0 failed, 1 could not run") && strstr(out, "=> FAIL"));
    const char *sh = tl_shared_dir();
    char g[1200];
    if (sh) {
        snprintf(g, sizeof g, "%s/golden/sched.safetensors", sh);
        snprintf(args, sizeof args, "golden '%s' '%s'", g, g);
        if (exists(g)) {
            int rc = tl_hb(args, out, sizeof out);
            /* the summary's checks are the sum of the files' "N checked" */
            int sum = 0;
            for (const char *p = out; (p = strstr(p, "=> PASS: ")); p++) sum += atoi(p + 9);
            char want[200];
            snprintf(want, sizeof want, "hb golden: 2 files, %d checks, 0 failed, 0 could not run; worst ", sum);
            const char *line = strstr(out, "hb golden: ");
            CHECKF(rc == 0 && sum > 0 && line && !strncmp(line, want, strlen(want)) && strstr(line, "=> PASS\n"), "%s", out);
        }
    }
    snprintf(args, sizeof args, "inspect --no-tensors '%s'", g_xt);
    CHECKF(tl_hb(args, out, sizeof out) == 0 && strstr(out, "family:       hummingbird-xt (48-channel") &&
           strstr(out, "  VAE           ") && strstr(out, "Wan2.2_VAE") && strstr(out, "  text encoder  ") &&
           strstr(out, "  tokenizer     ") && strstr(out, "  tiny decoder  ") && strstr(out, "taew2_2") &&
           strstr(out, "  light decoder ") && strstr(out, "  sampler       xt") && strstr(out, "DiT tensors:"), "%s", out);
    snprintf(args, sizeof args, "inspect --no-tensors '%s'", g_xtx);
    CHECKF(tl_hb(args, out, sizeof out) == 0 && strstr(out, "family:       hummingbird-xtx (16-channel") &&
           strstr(out, "light decoder (none)") && strstr(out, "mode          ar"), "%s", out);
}

int main(void) {
    char args[2000], out[8192];
    snprintf(g_xt, sizeof g_xt, "%s/xt", tl_tmpdir());
    snprintf(g_xtx, sizeof g_xtx, "%s/xtx", tl_tmpdir());
    snprintf(args, sizeof args, "mkmodel -q --arch hummingbird-xt-flat --tiny '%s'", g_xt);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "mkmodel -q --arch hummingbird-xtx-flat --tiny '%s'", g_xtx);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    test_flags();
    test_random_seed();
    test_unused_flags();
    test_outputs();
    test_inputs();
    test_progress_json();
    test_golden_inspect();
    test_interrupts();
    return tl_done();
}
