// AttentionMma.cu compiled for the CUDA emulator (Emulator.h).
#include "Emulator.h"

#include "../../src/cuda/AttentionMma.cu"
