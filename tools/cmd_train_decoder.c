/* hb train-decoder: distil a light VAE decoder from the Wan2.2 VAE (pipeline/train_decoder.h, docs/training.md). */
#include "tools.h"
#include "pipeline/train_decoder.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: hb train-decoder --teacher WAN22_VAE (--config light_config.json | --init LIGHT_VAE)\n"
               "                        --data VIDEO_DIR_OR_LIST --out DIR [options]\n\n"
               "Trains the light decoder to reproduce the frozen Wan2.2 VAE's decode of its own encoding of each clip\n"
               "(L1 loss + feature loss on the teacher decoder's blocks, optionally + LPIPS; AdamW, EMA). Checkpoints in\n"
               "DIR/checkpoint/ load with hb generate --light-vae.\n\n"
               "  --frames N        frames per clip, 1 + 4k (default 17)\n"
               "  --size N          square crop size, a multiple of 16 (default 256)\n"
               "  --steps N         optimiser steps (default 1000)\n"
               "  --lr X            learning rate (default 1e-4); --wd X weight decay (default 1e-4)\n"
               "  --betas B1,B2     AdamW betas (default 0.9,0.95); --eps X (default 1e-15)\n"
               "  --batch N         clips per step (default 1); --accum N micro-batch groups per step (default 1)\n"
               "  --ema X           EMA decay of the saved weights (default 0.999, 0 = off)\n"
               "  --save-every N    checkpoint, evaluation and plot every N steps (default 100)\n"
               "  --holdout N       clips held out for evaluation, the last N (default 1)\n"
               "  --seed N          initialisation and clip order (default 0)\n"
               "  --resume          continue from DIR/train_state.safetensors\n"
               "  --feature-blocks L  feature distillation: student and teacher blocks L (0 = mid block, 1 + i =\n"
               "                    up block i), matched through projection heads (default 0,1,2; none = off)\n"
               "  --feature-weight W  weight of the summed feature MSEs (default 1)\n"
               "  --lpips FILE      add the LPIPS term: lpips.LPIPS(net='alex'|'vgg') state_dict as safetensors or .pth\n"
               "  --lpips-weight W  its weight (default 1.0)\n"
               "  -d DEV            backend: cpu (default), cpu-guard, cuda[:N] in GPU builds; float32 on each\n"
               "  -t N, -v, -q      as every command (-q: no per-step line)\n");
}

static int num_arg(int argc, char **argv, int *i, double *v) {
    char *end = NULL;
    if (*i + 1 < argc) *v = strtod(argv[++*i], &end);
    if (!end || *end) { fprintf(stderr, "hb train-decoder: %s needs a number\n", argv[*i]); return -1; }
    return 0;
}

static int parse(int argc, char **argv, hb_train_opts *o) {
    static const struct { const char *flag; size_t off; } k_str[] = {
        {"--teacher", offsetof(hb_train_opts, teacher)}, {"--config", offsetof(hb_train_opts, config)},
        {"--init", offsetof(hb_train_opts, init)},       {"--data", offsetof(hb_train_opts, data)},
        {"--out", offsetof(hb_train_opts, out)},         {"--lpips", offsetof(hb_train_opts, lpips)},
        {"--feature-blocks", offsetof(hb_train_opts, feature_blocks)}};
    static const struct { const char *flag; size_t off; } k_int[] = {
        {"--frames", offsetof(hb_train_opts, frames)}, {"--size", offsetof(hb_train_opts, size)},
        {"--steps", offsetof(hb_train_opts, steps)},   {"--batch", offsetof(hb_train_opts, batch)},
        {"--accum", offsetof(hb_train_opts, accum)},   {"--save-every", offsetof(hb_train_opts, save_every)},
        {"--holdout", offsetof(hb_train_opts, holdout)}};
    for (int i = 1; i < argc; i++) {
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return -1;
        if (c) continue;
        const char *a = argv[i];
        bool done = false;
        double v = 0;
        for (size_t k = 0; k < sizeof k_str / sizeof k_str[0] && !done; k++)
            if (!strcmp(a, k_str[k].flag)) {
                if (i + 1 >= argc) { fprintf(stderr, "hb train-decoder: %s needs a value\n", a); return -1; }
                *(const char **)((char *)o + k_str[k].off) = argv[++i], done = true;
            }
        for (size_t k = 0; k < sizeof k_int / sizeof k_int[0] && !done; k++)
            if (!strcmp(a, k_int[k].flag)) {
                if (num_arg(argc, argv, &i, &v) || v != (int)v) { fprintf(stderr, "hb train-decoder: %s needs an integer\n", a); return -1; }
                *(int *)((char *)o + k_int[k].off) = (int)v, done = true;
            }
        if (done) continue;
        if (!strcmp(a, "--lr") || !strcmp(a, "--wd") || !strcmp(a, "--eps") || !strcmp(a, "--ema") || !strcmp(a, "--seed") ||
            !strcmp(a, "--feature-weight")) {
            if (num_arg(argc, argv, &i, &v)) return -1;
            if (a[2] == 'f') o->feature_weight = v;
            else if (a[2] == 'l') o->lr = v;
            else if (a[2] == 'w') o->weight_decay = v;
            else if (a[3] == 'p') o->eps = v;
            else if (a[3] == 'm') o->ema = (float)v;
            else o->seed = (uint64_t)v;
        } else if (!strcmp(a, "--lpips-weight")) {
            if (num_arg(argc, argv, &i, &v)) return -1;
            o->lpips_weight = v;
        } else if (!strcmp(a, "--betas") && i + 1 < argc) {
            if (sscanf(argv[++i], "%lf,%lf", &o->beta1, &o->beta2) != 2) { fprintf(stderr, "hb train-decoder: --betas B1,B2\n"); return -1; }
        } else if (!strcmp(a, "--resume")) o->resume = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else { fprintf(stderr, "hb train-decoder: unknown option %s\n", a); usage(stderr); return -1; }
    }
    return 0;
}

int cmd_train_decoder(int argc, char **argv) {
    hb_train_opts o;
    hb_train_opts_default(&o);
    if (parse(argc, argv, &o)) return 2;
    o.quiet = hb_log_level < HB_LOG_INFO;
    tool_catch_interrupts();
    int rc = hb_train_decoder(&o, tool_interrupted);
    if (rc == 1) {
        fprintf(stderr, "hb train-decoder: interrupted; the state after the last finished step is saved (--resume continues)\n");
        return 128 + tool_interrupted();
    }
    return rc ? tool_fail("train-decoder") : 0;
}
