// NEON kernels for ARMv8.0 without the dot product (Cortex-A53/A57/A72: Raspberry Pi 3/4, Jetson
// Nano): smull multiplies 8 signed bytes by 8 weights into 16-bit products (|x*q| <= 2^14 fits),
// sadalp adds neighbouring products into 32-bit accumulators, and one pairwise add at the end
// joins the two halves of each position's 4-channel dot product (the rest: neon_common.h).
#include "neon_common.h"

namespace {

struct PlainMac {
  static uint32x4_t sum(uint32x4_t s, uint8x16_t x) { return vpadalq_u16(s, vpaddlq_u8(x)); }
  // Two channels at a time: 16 accumulators of pair sums, [channel][quad][low/high two positions].
  static void half(int32x4_t (&acc)[4][4], const int32_t* w, const int8_t* x0, int chunks) {
    for (int c0 = 0; c0 < 4; c0 += 2) {
      int32x4_t a[2][4][2];
      for (int c = 0; c < 2; c++)
        for (int q = 0; q < 4; q++) a[c][q][0] = a[c][q][1] = vdupq_n_s32(0);
      const int32_t* wp = w;
      const int8_t* x = x0;
      for (int ch = 0; ch < chunks; ch++, wp += TILE_O, x += VL * 4) {
        const int8x16_t xs[4] = {vld1q_s8(x), vld1q_s8(x + 16), vld1q_s8(x + 32), vld1q_s8(x + 48)};
        for (int c = 0; c < 2; c++) {
          const int8x16_t wc = vreinterpretq_s8_s32(vdupq_n_s32(wp[c0 + c]));
          for (int q = 0; q < 4; q++) {
            a[c][q][0] = vpadalq_s16(a[c][q][0], vmull_s8(vget_low_s8(xs[q]), vget_low_s8(wc)));
            a[c][q][1] = vpadalq_s16(a[c][q][1], vmull_high_s8(xs[q], wc));
          }
        }
      }
      // a[c][q][0] = [p0 ch0+1, p0 ch2+3, p1 ch0+1, p1 ch2+3], [1] the same for p2, p3.
      for (int c = 0; c < 2; c++)
        for (int q = 0; q < 4; q++) acc[c0 + c][q] = vaddq_s32(acc[c0 + c][q], vpaddq_s32(a[c][q][0], a[c][q][1]));
    }
  }
};

}  // namespace

namespace zqint {
extern const Kernels kNeon;
const Kernels kNeon = {"neon", 0, gemmNeon<PlainMac>, dwNeon, loadNeon};
}  // namespace zqint
