// NEON kernels for ARMv8.2 with the dot-product extension (binding.gyp: -march=armv8.2-a+dotprod;
// selected at run time when the CPU reports asimddp): sdot by lane multiplies 16 positions by 4
// channels' weights per instruction (the rest: neon_common.h).
#include "neon_common.h"

namespace {

struct DotMac {
  static uint32x4_t sum(uint32x4_t s, uint8x16_t x) { return vdotq_u32(s, x, vdupq_n_u8(1)); }
  static void half(int32x4_t (&acc)[4][4], const int32_t* w, const int8_t* x, int chunks) {
    for (int ch = 0; ch < chunks; ch++, w += TILE_O, x += VL * 4) {
      const int8x16_t w4 = vld1q_s8((const int8_t*)w);
      const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16), x2 = vld1q_s8(x + 32), x3 = vld1q_s8(x + 48);
      acc[0][0] = vdotq_laneq_s32(acc[0][0], x0, w4, 0);
      acc[0][1] = vdotq_laneq_s32(acc[0][1], x1, w4, 0);
      acc[0][2] = vdotq_laneq_s32(acc[0][2], x2, w4, 0);
      acc[0][3] = vdotq_laneq_s32(acc[0][3], x3, w4, 0);
      acc[1][0] = vdotq_laneq_s32(acc[1][0], x0, w4, 1);
      acc[1][1] = vdotq_laneq_s32(acc[1][1], x1, w4, 1);
      acc[1][2] = vdotq_laneq_s32(acc[1][2], x2, w4, 1);
      acc[1][3] = vdotq_laneq_s32(acc[1][3], x3, w4, 1);
      acc[2][0] = vdotq_laneq_s32(acc[2][0], x0, w4, 2);
      acc[2][1] = vdotq_laneq_s32(acc[2][1], x1, w4, 2);
      acc[2][2] = vdotq_laneq_s32(acc[2][2], x2, w4, 2);
      acc[2][3] = vdotq_laneq_s32(acc[2][3], x3, w4, 2);
      acc[3][0] = vdotq_laneq_s32(acc[3][0], x0, w4, 3);
      acc[3][1] = vdotq_laneq_s32(acc[3][1], x1, w4, 3);
      acc[3][2] = vdotq_laneq_s32(acc[3][2], x2, w4, 3);
      acc[3][3] = vdotq_laneq_s32(acc[3][3], x3, w4, 3);
    }
  }
};

}  // namespace

namespace zqint {
extern const Kernels kDotprod;
const Kernels kDotprod = {"neon-dotprod", false, gemmNeon<DotMac>, dwNeon, loadNeon};
}  // namespace zqint
