/* tools/gen_flags: the flag table shared by both generate modes (see gen_flags.h). */
#include "gen_flags.h"
#include "tools.h"
#include "models/tokenizer.h"
#include "pipeline/model_folder.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    gf_id id;
    const char *names[4]; /* ours first, then aliases (sd.cpp / llama.cpp) */
    const char *metavar;  /* NULL: a switch */
    unsigned modes;
    const char *help;
} gf_spec;

static const gf_spec k_flags[] = {
    {GF_MODEL, {"-m", "--model"}, "DIR", GF_XT | GF_AR, "model folder (docs/pipeline.md, docs/xtx.md); XT mode without -m: a random-weight demo"},
    {GF_PROMPT, {"-p", "--prompt"}, "TEXT", GF_XT | GF_AR, "prompt (UTF-8, not empty)"},
    {GF_NEGATIVE, {"-n", "--negative", "--negative-prompt"}, "TEXT", GF_XT, "negative prompt (CFG samplers; default: Wan's)"},
    {GF_IMAGE, {"-i", "--image", "--init-img"}, "IMAGE", GF_XT, "image-to-video: PNG/JPEG (Wan2.2 families only)"},
    {GF_OUTPUT, {"-o", "--output"}, "PATH", GF_XT | GF_AR, "out.mp4 (default) | .mkv | .webm | .y4m | .png (-f 1) | frame_%04d.png | FOLDER/"},
    {GF_WIDTH, {"-W", "--width"}, "N", GF_XT | GF_AR, "width in pixels (default: the model's)"},
    {GF_HEIGHT, {"-H", "--height"}, "N", GF_XT | GF_AR, "height in pixels (default: the model's)"},
    {GF_FRAMES, {"-f", "--frames", "--video-frames"}, "N", GF_XT | GF_AR, "video frames, 4k+1 (default: the model's)"},
    {GF_SEED, {"-s", "--seed"}, "N", GF_XT | GF_AR, "noise seed (default 0; -1 = random, printed and stored in the file)"},
    {GF_FPS, {"--fps"}, "X", GF_XT | GF_AR, "frames per second of the file (default: the model's)"},
    {GF_CRF, {"--crf"}, "N", GF_XT | GF_AR, "H.264/VP9 quality, 0..51, lower is better (default 18 / 31)"},
    {GF_SAMPLER, {"--sampler", "--sampling-method"}, "S", GF_XT, "xt (few-step, CFG-free) | unipc | euler (default: the model's)"},
    {GF_STEPS, {"--steps"}, "N", GF_XT, "unipc/euler steps (default 50)"},
    {GF_CFG, {"--cfg", "--cfg-scale"}, "X", GF_XT, "unipc/euler guidance scale (default 5.0)"},
    {GF_STEPS_LIST, {"--steps-list"}, "L", GF_XT | GF_AR, "few-step timesteps (default: the model's: XT 1000,750,500; XTX 1000,750,500,250)"},
    {GF_SHIFT, {"--shift", "--flow-shift"}, "X", GF_XT | GF_AR, "schedule shift (default: the model's: XT 10, XTX 5)"},
    {GF_NOISE, {"--noise"}, "K", GF_XT, "xt noise: torch (the release) | stream"},
    {GF_TIMESTEP, {"--timestep"}, "K", GF_XT, "xt timestep the DiT sees: int-bf16 (the release) | int-f32 | float"},
    {GF_DECODER, {"--vae", "--decoder"}, "K", GF_XT | GF_AR, "full (= vae) | light | tae | none (AR: latents only); default: the model's"},
    {GF_VAE_TILE, {"--vae-tile"}, "N", GF_XT, "spatial tile of the Wan VAE decoder in latent cells (0 = untiled)"},
    {GF_LIGHT_VAE, {"--light-vae"}, "PATH", GF_XT, "light decoder folder or .safetensors (default: the folder's)"},
    {GF_LIGHT_TILING, {"--light-tiling"}, "M", GF_XT, "light decoder: stream (default) | aligned | release"},
    {GF_IMAGE_FIT, {"--image-fit"}, "K", GF_XT, "with -i: stretch (the release) | cover (Wan)"},
    {GF_OFFLOAD, {"--offload"}, NULL, GF_XT, "keep only one of text encoder / DiT / VAE loaded at a time"},
    {GF_DEMO_DIR, {"--demo-dir"}, "DIR", GF_XT, "demo: write (or reuse) the tiny random model there"},
    {GF_JSON, {"--json"}, NULL, GF_XT | GF_AR, "print a JSON summary on stdout (file, frames, size, seed, stage times, peak memory)"},
    {GF_MODE, {"--mode"}, "M", GF_XT | GF_AR, "xt (default) | ar: autoregressive long video (Hummingbird-XTX)"},
    {GF_DIT, {"--dit", "--diffusion-model"}, "FILE", GF_XT, "DiT weights instead of the folder's (.gguf / .safetensors; no config.json needed)"},
    {GF_CHECKPOINT, {"--checkpoint"}, "F", GF_AR, "DiT weights (.pt training dict) over the folder's config.json"},
    {GF_TEXT_ENCODER, {"--text-encoder"}, "DIR", GF_AR, "folder with the umT5 + tokenizer"},
    {GF_PROMPTS, {"--prompts"}, "FILE", GF_AR, "prompt switches: lines 'latent_frame<TAB>prompt' (first at 0)"},
    {GF_CHUNK, {"--chunk"}, "N", GF_AR, "latent frames per chunk (default 3)"},
    {GF_WINDOW, {"--window"}, "N", GF_AR, "cache length in latent frames, the sink included (default 6; 0 = global)"},
    {GF_SINK, {"--sink"}, "N", GF_AR, "first latent frames kept forever in the cache (default 1)"},
    {GF_ROPE, {"--rope"}, "rel|abs", GF_AR, "relative positions in the window (default, unbounded) | absolute"},
    {GF_CACHE, {"--cache"}, "bf16|f32", GF_AR, "KV cache storage (default bf16)"},
    {GF_NO_LAST_REFRESH, {"--no-last-refresh"}, NULL, GF_AR, "skip the refresh forward after the last chunk"},
    {GF_HELP, {"-h", "--help"}, NULL, GF_XT | GF_AR, "this help"},
};
#define NFLAGS (sizeof k_flags / sizeof k_flags[0])

/* Why a flag of the other mode is refused (rather than ignored). */
static const char *mode_reason(const gf_spec *s, unsigned mode) {
    if (mode == GF_AR) {
        if (s->id == GF_IMAGE || s->id == GF_IMAGE_FIT) return "AR mode is text-to-video only (Hummingbird-XTX is a Wan2.1 T2V model)";
        if (s->id == GF_NEGATIVE || s->id == GF_CFG || s->id == GF_STEPS || s->id == GF_SAMPLER)
            return "AR mode samples with the CFG-free few-step list (--steps-list)";
        return "AR mode does not use it";
    }
    return "it belongs to --mode ar";
}

static const gf_spec *find_flag(const char *name) {
    for (size_t i = 0; i < NFLAGS; i++)
        for (int k = 0; k < 4 && k_flags[i].names[k]; k++)
            if (!strcmp(name, k_flags[i].names[k])) return &k_flags[i];
    return NULL;
}

static int usage_error(unsigned mode, const char *msg, const char *arg) {
    fprintf(stderr, "hb generate%s: %s '%s' (hb help generate%s lists the flags)\n", mode == GF_AR ? " --mode ar" : "",
            msg, arg, mode == GF_AR ? " --mode ar" : "");
    return 2;
}

int gf_parse(int argc, char **argv, unsigned mode, gf_args *a) {
    memset(a, 0, sizeof *a);
    const char *cmd = mode == GF_AR ? "generate --mode ar" : "generate";
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *inl = NULL; /* --flag=value */
        const char *eq = strncmp(argv[i], "--", 2) ? NULL : strchr(argv[i], '=');
        if (eq && (size_t)(eq - argv[i]) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
            inl = eq + 1;
        } else snprintf(name, sizeof name, "%s", argv[i]);
        char *pair[2] = {name, (char *)(inl ? inl : i + 1 < argc ? argv[i + 1] : NULL)};
        int j = 0, c = tool_common_flag(pair[1] ? 2 : 1, pair, &j);
        if (c < 0) return tool_fail(cmd);
        if (c) { i += inl ? 0 : j; continue; }
        const gf_spec *s = find_flag(name);
        if (!s) return usage_error(mode, "unknown option", argv[i]);
        if (!(s->modes & mode)) {
            hb_error("%s is not used in this mode: %s", name, mode_reason(s, mode));
            return tool_fail(cmd);
        }
        const char *v = "";
        if (s->metavar) {
            if (inl) v = inl;
            else if (i + 1 < argc) v = argv[++i];
            else return usage_error(mode, "missing value for", name);
        } else if (inl) return usage_error(mode, "takes no value:", argv[i]);
        if (a->val[s->id] && strcmp(a->name[s->id], name) && s->id != GF_MODE) {
            hb_error("%s and %s name the same thing: give one", a->name[s->id], name);
            return tool_fail(cmd);
        }
        a->val[s->id] = v;
        for (int k = 0; k < 4 && s->names[k]; k++)
            if (!strcmp(s->names[k], name)) a->name[s->id] = s->names[k];
    }
    return 0;
}

void gf_print_help(FILE *f, unsigned mode) {
    for (size_t i = 0; i < NFLAGS; i++) {
        const gf_spec *s = &k_flags[i];
        if (!(s->modes & mode)) continue;
        char names[96] = "";
        size_t n = 0;
        for (int k = 0; k < 4 && s->names[k]; k++)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", k ? ", " : "", s->names[k]);
        if (s->metavar) snprintf(names + n, sizeof names - n, " %s", s->metavar);
        if (strlen(names) > 34) fprintf(f, "  %s\n  %-34s %s\n", names, "", s->help); /* long names: own line */
        else fprintf(f, "  %-34s %s\n", names, s->help);
    }
    fprintf(f, "  %-34s %s\n", "-t, --threads N", "worker threads (0 = all cores)");
    fprintf(f, "  %-34s %s\n", "-d, --device DEV; -v; -q", "device, verbose (stage times, peak memory), quiet");
    fprintf(f, "  flags take '--flag value' or '--flag=value'; a flag this mode or the chosen sampler/decoder does not\n"
               "  use is an error\n");
}

int gf_int(const gf_args *a, gf_id id, int64_t lo, int64_t hi, int64_t *out) {
    const char *v = a->val[id];
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        return hb_error("%s: '%s' is not an integer in [%lld, %lld]", a->name[id], v, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

int gf_double(const gf_args *a, gf_id id, double lo_excl, double *out) {
    const char *v = a->val[id];
    if (!v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !(x > lo_excl) || x > 1e9)
        return hb_error("%s: '%s' is not a number > %g", a->name[id], v, lo_excl);
    *out = x;
    return 0;
}

int gf_choice(const gf_args *a, gf_id id, const char *const *choices) {
    const char *v = a->val[id];
    if (!v) return -2;
    char list[256] = "";
    size_t n = 0;
    for (int k = 0; choices[k]; k++) {
        if (!strcmp(v, choices[k])) return k;
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", choices[k]);
    }
    return hb_error("%s must be one of %s (got '%s')", a->name[id], list, v);
}

int gf_seed(const gf_args *a, uint64_t *seed, bool *random) {
    const char *v = a->val[GF_SEED];
    *random = false;
    if (!v) return 0;
    if (!strcmp(v, "-1")) {
        uint64_t s = (uint64_t)(hb_time_now() * 1e9) ^ ((uint64_t)getpid() << 32);
        int fd = open("/dev/urandom", O_RDONLY);
        if (fd >= 0) {
            uint64_t u;
            if (read(fd, &u, sizeof u) == (ssize_t)sizeof u) s ^= u;
            close(fd);
        }
        *seed = s >> 1; /* stays a non-negative int64 in the file's metadata */
        *random = true;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || s > (unsigned long long)INT64_MAX)
        return hb_error("%s: '%s' is not a non-negative integer or -1 (random)", a->name[GF_SEED], v);
    *seed = s;
    return 0;
}

int gf_check_frames(int64_t frames64) {
    long long frames = frames64;
    if (frames < 1 || (frames - 1) % 4)
        return hb_error("%lld frames: the frame count must be 4k+1 (the VAE makes 4 frames per latent frame after "
                        "the first), e.g. %lld or %lld", frames, frames < 1 ? 1 : (frames - 1) / 4 * 4 + 1,
                        frames < 1 ? 5 : ((frames - 1) / 4 + 1) * 4 + 1);
    return 0;
}

int gf_refuse(const gf_args *a, gf_id id, const char *why) {
    if (!a->val[id]) return 0;
    return hb_error("%s is not used %s", a->name[id], why);
}

int gf_check_prompt(const char *prompt) {
    const unsigned char *s = (const unsigned char *)prompt;
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') i++;
    if (!s[i]) return hb_error("-p: the prompt is empty");
    for (i = 0; s[i];) {
        int n = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3 : (s[i] & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = n == 1 ? s[i] : n == 2 ? s[i] & 0x1Fu : n == 3 ? s[i] & 0x0Fu : s[i] & 0x07u;
        for (int k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) { n = 0; break; }
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 either */
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (!n || cp < min_cp[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return hb_error("-p: the prompt is not valid UTF-8 at byte %zu (0x%02x)", i, s[i]);
        i += (size_t)n;
    }
    return 0;
}

void gf_warn_prompt_cut(const char *model_dir, const char *te_dir, const char *prompt) {
    enum { TEXT_LEN = 512 }; /* the umT5 length every Wan DiT reads (text_len), EOS included */
    if (strlen(prompt) < TEXT_LEN / 2) return; /* a token covers at least one byte, mostly several */
    hb_model_folder mf;
    char found[HB_MF_PATH];
    int lvl = hb_log_level;
    hb_log_level = HB_LOG_ERROR; /* a folder this cannot read fails later with its own message */
    hb_tokenizer *tok = !hb_model_folder_scan_te(model_dir, te_dir, &mf) ? hb_tokenizer_open_dir(mf.tokenizer, found, sizeof found) : NULL;
    hb_log_level = lvl;
    int32_t *ids = NULL;
    int n = 0;
    if (tok && !hb_tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n) && n > TEXT_LEN)
        hb_log(HB_LOG_WARN, "the prompt has %d tokens (EOS included); the text encoder reads %d: the last %d are cut",
               n, TEXT_LEN, n - TEXT_LEN);
    free(ids);
    hb_tokenizer_free(tok);
    hb_clear_error();
}

void gf_warn_memory(size_t est_bytes, const char *what) {
    const char *src = NULL;
    size_t have = hb_machine_memory_bytes(&src);
    if (est_bytes == 0 || est_bytes <= have) return;
    hb_log(HB_LOG_WARN, "%s needs about %.2f GiB (weights + activations, estimated), more than the %.2f GiB this process "
           "may use (%s): expect it to fail or swap (a smaller size needs less)", what,
           est_bytes / 1073741824.0, have / 1073741824.0, src);
}
