/* io/pth: PyTorch zip checkpoints (placeholder until the pickle reader lands). */
#include "io/io_internal.h"

int pth_load(hb_checkpoint *ck, const char *path) {
    (void)ck;
    return hb_error("%s: PyTorch .pth checkpoints are not supported yet", path);
}
