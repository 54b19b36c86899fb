// The portable kernels compiled with AVX2 (binding.gyp sets -mavx2 for this file's library).
#include "plan.h"
#define KERNELS_NAME kAvx2
#define KERNELS_LABEL "avx2"
#include "kernels_portable.inc"
