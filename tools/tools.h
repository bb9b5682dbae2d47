/* tools: the `hb` program's subcommands. Each is `int cmd_NAME(int argc, char **argv)` (argv[0] is the
 * subcommand name) returning the process exit code. */
#ifndef HB_TOOLS_H
#define HB_TOOLS_H

#include "core/core.h"

int cmd_inspect(int argc, char **argv);
int cmd_golden(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_metrics(int argc, char **argv);  /* media */
int cmd_generate(int argc, char **argv);     /* pipeline: text/image to video */
int cmd_generate_ar(int argc, char **argv);  /* autoregressive long video (hb generate --mode ar) */

/* Common flags every subcommand accepts: -t/--threads N, -v/--verbose, -q/--quiet.
 * Returns 1 when argv[*i] (and maybe its value) was consumed, 0 when not a common flag, -1 on error. */
int tool_common_flag(int argc, char **argv, int *i);
/* Prints "hb NAME: message" for the last error and returns 1 (the exit code). */
int tool_fail(const char *cmd);
/* "peak device memory (cuda:0): X MiB" on stderr when the backend computes outside host memory (-v). */
void tool_print_device_peak(void);

#endif
