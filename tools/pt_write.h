/* tools/pt_write: a minimal torch.save writer (zip archive + protocol-2 pickle), for the random-weight
 * folders of `hb mkmodel` in the layouts that PyTorch releases ship (.pth state dicts, .pt training dicts).
 * It writes what torch.save writes for a dict of contiguous tensors: <archive>/data.pkl, one storage per
 * tensor in <archive>/data/<i> (stored, not compressed), <archive>/version and <archive>/byteorder. */
#ifndef HB_TOOLS_PT_WRITE_H
#define HB_TOOLS_PT_WRITE_H

#include "core/core.h"

/* One dict of the file: `key` NULL for the top-level state dict itself, else an entry of the top-level dict
 * (e.g. "generator_ema") holding an OrderedDict of n tensors. */
typedef struct pt_group {
    const char *key;
    int n;
    const char *const *names;
    const hb_tensor *tensors;   /* contiguous; F32, BF16, F16, F64, I64, I32 or U8 */
} pt_group;

/* Write path atomically (temp file + rename). Either one group with key NULL (a plain state dict) or groups
 * that all have keys (a training dict). -1 + message naming the file. */
int pt_write(const char *path, int ngroups, const pt_group *groups);

#endif
