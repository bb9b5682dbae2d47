/* io/pickle: a restricted reader of the pickles torch.save writes for a state dict (data.pkl). It
 * interprets only the opcodes and globals such a pickle needs and never executes anything; everything
 * else is an error naming the opcode or global. Internal to src/io (used by pth.c and the fuzzers). */
#ifndef HB_IO_PICKLE_H
#define HB_IO_PICKLE_H

#include "core/core.h"

typedef struct pkl_tensor {
    char *name;          /* state dict key */
    hb_dtype dtype;      /* from the storage type */
    char *storage_key;   /* the entry <prefix>/data/<key> in the zip */
    int64_t storage_numel;
    int64_t offset;      /* storage offset in elements */
    int ndim;
    int64_t shape[HB_MAX_DIMS];
    int64_t stride[HB_MAX_DIMS];
} pkl_tensor;

/* Parses a state dict pickle. `where` names the file in messages. On success *out holds *n tensors in
 * pickle order (free with hb__pkl_free). A dict nested one level under "state_dict", "model", "module",
 * "generator_ema", "generator" or "ema" (the first present, in this order) is used when the top level holds no
 * tensors. "_fsdp_wrapped_module." segments are deleted from every name. */
int hb__pkl_read_state_dict(const char *where, const uint8_t *buf, size_t len, pkl_tensor **out, int *n);
void hb__pkl_free(pkl_tensor *t, int n);

#endif
