/* tools: the `hb` program's subcommands. Each is `int cmd_NAME(int argc, char **argv)` (argv[0] is the
 * subcommand name) returning the process exit code. */
#ifndef HB_TOOLS_H
#define HB_TOOLS_H

#include "core/core.h"
#include <stdio.h>

int cmd_inspect(int argc, char **argv);
int cmd_golden(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_metrics(int argc, char **argv);  /* media */
int cmd_generate(int argc, char **argv);     /* pipeline: text/image to video */
int cmd_generate_ar(int argc, char **argv);  /* autoregressive long video (hb generate --mode ar) */
int cmd_serve(int argc, char **argv);        /* HTTP server, OpenAI videos API (tools/serve/) */
int cmd_train_decoder(int argc, char **argv); /* distil the light VAE decoder (pipeline/train_decoder) */

/* Common flags every subcommand accepts: -t/--threads N, -v/--verbose, -q/--quiet.
 * Returns 1 when argv[*i] (and maybe its value) was consumed, 0 when not a common flag, -1 on error. */
int tool_common_flag(int argc, char **argv, int *i);
/* The -d DEV given (NULL when none): commands pass it to the API's device parameters. */
const char *tool_device(void);
/* Prints "hb NAME: message" for the last error and returns 1 (the exit code). */
int tool_fail(const char *cmd);
/* "peak device memory (cuda:0): X MiB" on stderr when the backend computes outside host memory (-v). */
void tool_print_device_peak(void);

/* SIGINT/SIGTERM set a flag (the progress callbacks then cancel the run) instead of killing the process. */
void tool_catch_interrupts(void);
int tool_interrupted(void);  /* the signal number, 0 when none */
/* Prints "hb CMD: interrupted by SIGINT, no output written" and returns 128 + the signal number. */
int tool_interrupt_exit(const char *cmd);
/* s as a JSON string literal (quoted, escaped). */
void tool_json_string(FILE *f, const char *s);

/* hb inspect on a model folder (tools/inspect_folder.c): 1 when dir is one, its DiT's path into dit, and (print)
 * its parts, family and default settings printed; 0 when dir is not a model folder. */
int tool_inspect_model_folder(const char *dir, bool print, char *dit, size_t cap);

#endif
