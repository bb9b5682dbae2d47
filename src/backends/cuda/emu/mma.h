/* CPU GPU emulator (HB_GPU_EMU): stands in for the CUDA header of this name; see hb_gpu_emu.h. */
#include "hb_gpu_emu.h"
