/* tools/mk_xtx_release: the Hummingbird-XTX release root of random weights (hb mkmodel --arch hummingbird-xtx). */
#ifndef HB_TOOLS_MK_XTX_RELEASE_H
#define HB_TOOLS_MK_XTX_RELEASE_H

#include "core/core.h"

/* Fill the existing empty folder dir (see mk_xtx_release.c for the layout). -1 + message. */
int mk_xtx_release(const char *dir, bool tiny, hb_dtype dtype, uint64_t seed);

#endif
