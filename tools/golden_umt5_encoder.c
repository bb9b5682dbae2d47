#include "golden.h"

/* Placeholder until the umt5_encoder component lands: says so instead of pretending to pass. */
int golden_run_umt5_encoder(golden_case *g) { return hb_error("%s: kind '%s' is not implemented yet", g->path, g->kind); }
