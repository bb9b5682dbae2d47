/* tools/gen_flags: the one flag table of `hb generate` and `hb generate --mode ar`. Both modes accept the same
 * names for the same things (ours, stable-diffusion.cpp's and llama.cpp's), `--flag=value` forms, and refuse
 * a flag their mode does not use with the reason, instead of ignoring it. */
#ifndef HB_TOOLS_GEN_FLAGS_H
#define HB_TOOLS_GEN_FLAGS_H

#include "core/core.h"
#include <stdio.h>

typedef enum {
    GF_MODEL, GF_PROMPT, GF_NEGATIVE, GF_IMAGE, GF_OUTPUT, GF_WIDTH, GF_HEIGHT, GF_FRAMES, GF_SEED, GF_FPS, GF_CRF,
    GF_SAMPLER, GF_STEPS, GF_CFG, GF_STEPS_LIST, GF_SHIFT, GF_NOISE, GF_TIMESTEP, GF_DECODER, GF_VAE_TILE,
    GF_LIGHT_VAE, GF_LIGHT_TILING, GF_IMAGE_FIT, GF_OFFLOAD, GF_DEMO_DIR, GF_JSON, GF_MODE,
    GF_DIT, GF_CHECKPOINT, GF_TEXT_ENCODER, GF_PROMPTS, GF_CHUNK, GF_WINDOW, GF_SINK, GF_ROPE, GF_CACHE, GF_NO_LAST_REFRESH,
    GF_HELP, GF_COUNT
} gf_id;

#define GF_XT 1u /* hb generate (text/image to video) */
#define GF_AR 2u /* hb generate --mode ar */

typedef struct gf_args {
    const char *val[GF_COUNT];  /* the value ("" for a switch), NULL when not given */
    const char *name[GF_COUNT]; /* the name as typed (for messages) */
} gf_args;

/* Parse argv[1..] for `mode`; the common flags (-t, -d, -v, -q) are applied. 0 on success; else the exit
 * code after printing one line "hb generate: ..." (2: usage). */
int gf_parse(int argc, char **argv, unsigned mode, gf_args *a);
/* The flag table's help lines for `mode` (names, sd.cpp aliases, what it is). */
void gf_print_help(FILE *f, unsigned mode);

/* Typed values: 0 and *out set (untouched when the flag was not given), -1 + message naming the flag. */
int gf_int(const gf_args *a, gf_id id, int64_t lo, int64_t hi, int64_t *out);
int gf_double(const gf_args *a, gf_id id, double lo_excl, double *out);
/* One of `choices` (NULL-terminated): its index, or -1 + message listing them; -2 when not given. */
int gf_choice(const gf_args *a, gf_id id, const char *const *choices);
/* -s/--seed: a non-negative integer, or -1 = random (drawn here from the clock and /dev/urandom, *random set). */
int gf_seed(const gf_args *a, uint64_t *seed, bool *random);
/* Frame count rule of the Wan VAE in both modes (4k + 1; AR's last chunk may be short, so no other multiple). */
int gf_check_frames(int64_t frames);
/* Error "FLAG is not used SO: why" when the flag was given; 0 when not. */
int gf_refuse(const gf_args *a, gf_id id, const char *why);

/* The prompt is not empty and is valid UTF-8 (else -1 + message naming the byte offset). */
int gf_check_prompt(const char *prompt);
/* Warn (one line) when the prompt has more tokens than the text encoder reads (512), saying how many are cut.
 * te_dir: the text encoder folder when not the model folder's (NULL). */
void gf_warn_prompt_cut(const char *model_dir, const char *te_dir, const char *prompt);
/* "warning: ... needs about X GiB, more than the Y GiB this process may use (SOURCE)" when est_bytes exceeds
 * hb_machine_memory_bytes(); what names the run ("1280x704, 121 frames"). Nothing when est_bytes is 0. */
void gf_warn_memory(size_t est_bytes, const char *what);

#endif
