// Attention.cu compiled for the CUDA emulator (Emulator.h).
#include "Emulator.h"

#include "../../src/cuda/Attention.cu"
