#include "tools.h"
#include <stdio.h>

/* Placeholder until this command lands. */
int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "hb %s: not implemented yet\n", argv[0]);
    return 1;
}
