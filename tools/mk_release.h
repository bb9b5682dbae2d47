/* tools/mk_release: random-weight folders laid out as the Hummingbird-XT / XTX releases ship them
 * (hb mkmodel --arch hummingbird-xt | hummingbird-xtx | hummingbird-xtx-5b). */
#ifndef HB_TOOLS_MK_RELEASE_H
#define HB_TOOLS_MK_RELEASE_H

#include "core/core.h"

/* Fill the existing empty folder dir (see mk_release.c for the layout): the 1.3B release, or the 5B one.
 * -1 + message. */
int mk_xtx_release(const char *dir, bool five_b, bool tiny, hb_dtype dtype, uint64_t seed);
/* The Hummingbird-XT release's models/ folder (see mk_release.c) in the existing empty folder dir. */
int mk_xt_release(const char *dir, bool tiny, hb_dtype dtype, uint64_t seed);

#endif
