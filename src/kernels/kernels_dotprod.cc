// The portable kernels compiled for ARMv8.2 with the dot-product extension (sdot/udot).
#include "plan.h"
#define KERNELS_NAME kDotprod
#define KERNELS_LABEL "neon-dotprod"
#include "kernels_portable.inc"
