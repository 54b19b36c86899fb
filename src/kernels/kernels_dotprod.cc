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

// Depthwise with sdot on 4-tap windows (the structure of the x86 VBMI kernel): each channel block's
// input rows are made planar once (vld4 de-interleaves 16 pixels of 4 channels) and flipped to
// signed (the real values: inputs whose zero is 128), a ring of rows shared by consecutive output
// rows; tbl builds, for 4 output pixels, the words of 4 horizontally consecutive taps from one
// 16-byte load, and sdot applies 4 taps at once (window sums: sdot with ones on the valid taps).
// Output rows go in bands of two: each input row of a band is loaded and permuted once and feeds
// both rows whose windows hold it (a 3x3 of stride 1: 4 loads and permutes per 4 pixels for the
// two rows instead of 6). The accumulators start at 128 * sum(Q) (+ the bias in the fast form), as
// in the gemm.
template <int K, int ST, int MODE>
void dwDotT(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int y0, int y1) {
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  const EpiN e(p);
  constexpr int NG = (K + 3) / 4, BAND = 2, NIN = (BAND - 1) * ST + K, RING = NIN + ST;
  const int rowWords = in.rowStride;
  const int rowBytes = ((rowWords + 15) / 16) * 16 + 64;
  alignas(16) int8_t planar[RING * 4 * (384 + 64)];
  int tags[RING];
  int8x16_t idx[NG], ones[NG];
  for (int g = 0; g < NG; g++) {
    alignas(16) int8_t ib[16], ob[16];
    for (int l = 0; l < 4; l++)
      for (int j = 0; j < 4; j++) {
        ib[4 * l + j] = (int8_t)(l * ST + 4 * g + j);
        ob[4 * l + j] = 4 * g + j < K ? 1 : 0;
      }
    idx[g] = vld1q_s8(ib);
    ones[g] = vld1q_s8(ob);
  }
  const int cb = (p.C + 3) / 4;
  for (int b = 0; b < cb; b++) {
    const uint32_t* plane = in.words + b * in.planeStride;
    for (int r = 0; r < RING; r++) tags[r] = -1;
    for (int y = y0; y < y1; y += BAND) {
      const int nr = y1 - y < BAND ? y1 - y : BAND;
      const int iy0 = y * ST - p.pad + in.b, last = (nr - 1) * ST + K - 1;  // the band's input rows: iy0 + [0, last]
      const int8_t* rows[NIN];
      bandRows<NIN, RING>(planar, (size_t)4 * rowBytes, tags, iy0, last, rows, [&](int iy, int8_t* dst) {
        const uint8_t* src = (const uint8_t*)(plane + (int64_t)iy * rowWords);
        for (int x = 0; x < rowWords; x += 16) {  // may read past the row: those bytes are never used
          const uint8x16x4_t v = vld4q_u8(src + 4 * x);
          for (int c = 0; c < 4; c++) vst1q_s8(dst + c * rowBytes + x, vreinterpretq_s8_u8(veorq_u8(v.val[c], vdupq_n_u8(0x80))));
        }
      });
      for (int x0 = 0; x0 < p.Wo; x0 += 16) {
        uint8x16x4_t ch4[BAND];
        for (int c = 0; c < 4; c++) {
          const int ch = 4 * b + c;
          const VPN vp = channelParams(p, ch);
          int8x16_t wk[K][NG];
          for (int ky = 0; ky < K; ky++)
            for (int g = 0; g < NG; g++) wk[ky][g] = vreinterpretq_s8_s32(vdupq_n_s32(p.wdwRow[((size_t)ch * K + ky) * NG + g]));
          int32x4_t res[BAND][4];
          for (int q = 0; q < 4; q++) {
            // This column's windows of every input row first, then each output row's products.
            int8x16_t win[NIN][NG];
            for (int i = 0; i < NIN; i++) {
              const int8x16_t t = vld1q_s8(rows[i] + (size_t)c * rowBytes + (x0 * ST - p.pad + in.b) + 4 * ST * q);
              for (int g = 0; g < NG; g++) win[i][g] = vqtbl1q_s8(t, vreinterpretq_u8_s8(idx[g]));
            }
            for (int j = 0; j < BAND; j++) {
              int32x4_t acc = vdupq_n_s32(128 * p.qsum[ch] + (MODE >= 0 ? p.bias[ch] : 0)), S = vdupq_n_s32(0);
              for (int ky = 0; ky < K; ky++)
                for (int g = 0; g < NG; g++) {
                  acc = vdotq_s32(acc, win[j * ST + ky][g], wk[ky][g]);
                  S = vdotq_s32(S, win[j * ST + ky][g], ones[g]);
                }
              res[j][q] = epilogueT<MODE>(e, vp, acc, S);
            }
          }
          for (int j = 0; j < BAND; j++) ch4[j].val[c] = bytes16(res[j], e.sat8);
        }
        const int n = p.Wo - x0 < 16 ? p.Wo - x0 : 16;
        for (int j = 0; j < nr; j++) {
          uint8_t* dst = (uint8_t*)out.at(b, y + j, x0);
          if (n == 16) {
            vst4q_u8(dst, ch4[j]);  // interleaves the 4 channels: one word per pixel
          } else {
            alignas(16) uint8_t tmp[64];
            vst4q_u8(tmp, ch4[j]);
            memcpy(dst, tmp, 4 * (size_t)n);
          }
        }
      }
    }
  }
}

template <int K, int ST>
DwFn dwDotMode(const ConvPlan& p) {
  switch (fastMode(p)) {
    case A_LINEAR: return dwDotT<K, ST, A_LINEAR>;
    case A_RELU: return dwDotT<K, ST, A_RELU>;
    case A_LEAKY: return dwDotT<K, ST, A_LEAKY>;
    default: return dwDotT<K, ST, -1>;
  }
}

void dwDot(const ConvPlan& p, const Buf& in, const Buf& out, int y0, int y1) {
  DwFn f = nullptr;
  if (!out.raw && p.act != A_LUT && p.inZero == 128 && in.rowStride <= 384) {
    if (p.k == 3) f = p.stride == 1 ? dwDotMode<3, 1>(p) : p.stride == 2 ? dwDotMode<3, 2>(p) : nullptr;
    else if (p.k == 5) f = p.stride == 1 ? dwDotMode<5, 1>(p) : p.stride == 2 ? dwDotMode<5, 2>(p) : nullptr;
  }
  if (f) f(p, in, out, y0, y1);
  else dwNeon(p, in, out, y0, y1);
}

}  // namespace

namespace zqint {
extern const Kernels kDotprod;
const Kernels kDotprod = {"neon-dotprod", 0, gemmNeon<DotMac>, dwDot, loadNeon};
}  // namespace zqint
