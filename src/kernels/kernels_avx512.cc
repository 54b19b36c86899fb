// Placeholder: the portable kernels compiled for AVX-512 VNNI.
#include "plan.h"
#define KERNELS_NAME kAvx512
#define KERNELS_LABEL "avx512-vnni"
#include "kernels_portable.inc"
