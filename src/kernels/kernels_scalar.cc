// The portable kernels compiled for the baseline instruction set of the target.
#include "plan.h"
#define KERNELS_NAME kScalar
#define KERNELS_LABEL "scalar"
#include "kernels_portable.inc"
