// NEON kernels shared by the arm64 instruction sets (included by kernels_dotprod.cc and
// kernels_neon.cc, each compiled for its own target; internal linkage keeps the copies apart).
// gemm: the panel of a 16-position vector is stored with the bytes flipped to signed (x ^ 0x80 =
// the real value); the multiply-adds of a half tile come from the instruction set's Mac (sdot by
// lane, or smull + sadalp); the accumulators start at 128 * sum(Q) so that they equal what the
// plan's bias expects (the stored bytes' dot product). depthwise: 4 pixels x 4 channels per 16
// bytes, widened to 16 bits, vmlal per tap (plain NEON).
// NEON's rounding shifts (srshl) compute rshr exactly for any value, so the epilogue needs no bounds.
#pragma once
#include <arm_neon.h>

#include <cstring>

#include "finish.h"
#include "plan.h"

namespace {

using namespace zqint;

struct EpiN {
  bool needS, m32, leaky32, anyLeft;
  bool sat8;  // 8-bit outputs without left shifts: the saturating narrows of bytes16 clamp them
  int act, lo, hi;
  explicit EpiN(const ConvPlan& p)
      : needS(p.needS), m32(p.m32), leaky32(p.leaky32), anyLeft(p.anyLeft), sat8(p.outBits == 8 && !p.anyLeft), act(p.act), lo(p.lo), hi(p.hi) {}
};

struct VPN {
  int32x4_t bias, mul, ntsh, nrsh, lsh;  // ntsh, nrsh: negated shifts (srshl shifts right by -n)
};

inline int32x4_t epilogueN(const EpiN& e, const VPN& v, int32x4_t acc, int32x4_t S) {
  int32x4_t y = vaddq_s32(acc, v.bias);
  if (e.needS) {
    int32x4_t t;
    if (e.m32) {
      t = vrshlq_s32(vmulq_s32(S, v.mul), v.ntsh);
    } else {
      const int64x2_t n = vmovl_s32(vget_low_s32(v.ntsh));
      int64x2_t lo = vrshlq_s64(vmull_s32(vget_low_s32(S), vget_low_s32(v.mul)), n);
      int64x2_t hi = vrshlq_s64(vmull_high_s32(S, v.mul), vmovl_high_s32(v.ntsh));
      t = vcombine_s32(vmovn_s64(lo), vmovn_s64(hi));
    }
    y = vaddq_s32(y, t);
  }
  if (e.act == A_LEAKY) {
    int32x4_t l;
    if (e.leaky32) {
      l = vrshrq_n_s32(vmulq_n_s32(y, 3277), 15);
    } else {
      int64x2_t lo = vrshrq_n_s64(vmull_n_s32(vget_low_s32(y), 3277), 15);
      int64x2_t hi = vrshrq_n_s64(vmull_high_n_s32(y, 3277), 15);
      l = vcombine_s32(vmovn_s64(lo), vmovn_s64(hi));
    }
    y = vmaxq_s32(y, l);  // the scaled value is above y exactly when y < 0
  } else if (e.act == A_RELU) {
    y = vmaxq_s32(y, vdupq_n_s32(0));
  }
  if (e.sat8) return vrshlq_s32(y, v.nrsh);  // saturated by bytes16
  const int32x4_t lo = vdupq_n_s32(e.lo), hi = vdupq_n_s32(e.hi);
  int32x4_t r = vminq_s32(vmaxq_s32(vrshlq_s32(y, v.nrsh), lo), hi);
  if (e.anyLeft) r = vminq_s32(vmaxq_s32(vshlq_s32(r, v.lsh), lo), hi);
  return r;
}

// Interleaved RGB into the input words (r, g, b, 0), 16 pixels per de-interleaving load.
inline void loadNeon(const uint8_t* rgb, const Buf& in, int w, int h) {
  for (int y = 0; y < h; y++) {
    const uint8_t* s = rgb + (size_t)y * w * 3;
    uint32_t* row = in.at(0, y, 0);
    int x = 0;
    for (; x + 16 <= w; x += 16) {
      const uint8x16x3_t c = vld3q_u8(s + 3 * x);
      uint8x16x4_t o;
      o.val[0] = c.val[0];
      o.val[1] = c.val[1];
      o.val[2] = c.val[2];
      o.val[3] = vdupq_n_u8(0);
      vst4q_u8((uint8_t*)(row + x), o);
    }
    for (; x < w; x++) row[x] = (uint32_t)s[3 * x] | (uint32_t)s[3 * x + 1] << 8 | (uint32_t)s[3 * x + 2] << 16;
  }
}

inline VPN channelParams(const ConvPlan& p, int c) {
  return {vdupq_n_s32(p.bias[c]), vdupq_n_s32(p.mul[c]), vdupq_n_s32(-(p.tsh[c] > 63 ? 63 : p.tsh[c])), vdupq_n_s32(-p.rsh[c]),
          vdupq_n_s32(p.lsh[c])};
}

// The fast form of a plan: its activation when M*S fits 32 bits (m32), leaky's Y*3277 too, the
// outputs are 8-bit without left shifts, and the bias can start the accumulators; else -1.
inline int fastMode(const ConvPlan& p) {
  const bool act = p.act == A_LINEAR || p.act == A_RELU || (p.act == A_LEAKY && p.leaky32);
  return act && p.needS && p.m32 && p.outBits == 8 && !p.anyLeft ? p.act : -1;
}

// The epilogue with the plan's flags fixed (MODE >= 0: the fast form, acc already holds the bias).
template <int MODE>
inline int32x4_t epilogueT(const EpiN& e, const VPN& v, int32x4_t acc, int32x4_t S) {
  if (MODE < 0) return epilogueN(e, v, acc, S);
  int32x4_t y = vaddq_s32(acc, vrshlq_s32(vmulq_s32(S, v.mul), v.ntsh));
  if (MODE == A_LEAKY) y = vmaxq_s32(y, vrshrq_n_s32(vmulq_n_s32(y, 3277), 15));
  else if (MODE == A_RELU) y = vmaxq_s32(y, vdupq_n_s32(0));
  return vrshlq_s32(y, v.nrsh);
}

// Four int32x4 of outputs + 128 as 16 bytes: saturated to 8 bits by the narrows (sat8), or already
// in -128..127.
inline uint8x16_t bytes16(const int32x4_t* r, bool sat8) {
  if (sat8) {
    const int16x8_t a = vcombine_s16(vqmovn_s32(r[0]), vqmovn_s32(r[1])), b = vcombine_s16(vqmovn_s32(r[2]), vqmovn_s32(r[3]));
    return veorq_u8(vreinterpretq_u8_s8(vcombine_s8(vqmovn_s16(a), vqmovn_s16(b))), vdupq_n_u8(0x80));
  }
  const int32x4_t off = vdupq_n_s32(128);
  const uint16x8_t a = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(vaddq_s32(r[0], off))), vmovn_u32(vreinterpretq_u32_s32(vaddq_s32(r[1], off))));
  const uint16x8_t b = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(vaddq_s32(r[2], off))), vmovn_u32(vreinterpretq_u32_s32(vaddq_s32(r[3], off))));
  return vcombine_u8(vmovn_u16(a), vmovn_u16(b));
}

// Mac: the multiply-adds of one 4-channel half tile, and the window sums of the stored bytes.
//   Mac::sum(uint32x4_t s, uint8x16_t x): s + the sums of x's four 4-byte groups
//   Mac::half(acc[4][4], w, x, chunks): acc[c][q] += the dot products of 4-channel chunks of the
//     signed panel x (16 positions, 64 bytes a chunk) with channel c's weights (w: 8 words a chunk).
template <class Mac, int MODE>
void gemmNeonT(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int v0, int v1, uint32_t* scratch) {
  // Local copies: stores through byte pointers may alias the plan, which would force reloads.
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  const EpiN e(p);
  uint8_t* panel = (uint8_t*)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  const uint8x16_t flip = vdupq_n_u8(0x80);
  const bool lut = p.act == A_LUT;
  for (int v = v0; v < v1; v++) {
    const int pos0 = v * VL;
    const int lanes = p.P - pos0 < VL ? p.P - pos0 : VL;
    for (int g = 0; g < p.G; g++) {
      const uint32_t* base = in.words + (int64_t)g * p.cbg * in.planeStride;
      uint32x4_t su[4] = {vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0)};
      for (int t = 0; t < p.taps; t++) {
        const int64_t toff = (int64_t)(t / p.k) * in.rowStride + (t % p.k);
        for (int b = 0; b < p.cbg; b++) {
          uint8_t* row = panel + (size_t)(t * p.cbg + b) * VL * 4;
          const uint32_t* src = base + b * in.planeStride + toff;
          uint32_t tmp[VL];
          const uint32_t* w;
          if (p.direct && lanes == VL) {
            w = src + pos0;
          } else {
            for (int l = 0; l < VL; l++) tmp[l] = l < lanes ? src[p.pidx[pos0 + l]] : 0x01010101u * in.zero;
            w = tmp;
          }
          for (int q = 0; q < 4; q++) {
            const uint8x16_t x = vld1q_u8((const uint8_t*)(w + 4 * q));
            su[q] = Mac::sum(su[q], x);
            vst1q_u8(row + 16 * q, veorq_u8(x, flip));
          }
        }
      }
      int32x4_t S[4];
      for (int q = 0; q < 4; q++) S[q] = vsubq_s32(vreinterpretq_s32_u32(su[q]), vdupq_n_s32(p.sOff));
      for (int tile = 0; tile < p.ntiles; tile++) {
        const int oc0 = g * p.Og + tile * TILE_O;
        const int32_t* wt = (const int32_t*)p.wgemm + ((size_t)(g * p.ntiles + tile) * p.chunks) * TILE_O;
        for (int half = 0; half < TILE_O / 4; half++) {
          if (tile * TILE_O + 4 * half >= p.Og) break;
          const int pc0 = (g * p.ntiles + tile) * TILE_O + 4 * half;
          int32x4_t acc[4][4];  // [channel][position vector]
          for (int c = 0; c < 4; c++)
            for (int q = 0; q < 4; q++) acc[c][q] = vdupq_n_s32(128 * p.qsum[pc0 + c] + (MODE >= 0 ? p.bias[pc0 + c] : 0));
          Mac::half(acc, wt + 4 * half, (const int8_t*)panel, p.chunks);
          int32x4_t res[4][4];
          for (int c = 0; c < 4; c++) {
            if (MODE < 0 && lut) {
              alignas(16) int32_t av[VL], sv[VL], rv[VL];
              for (int q = 0; q < 4; q++) {
                vst1q_s32(av + 4 * q, acc[c][q]);
                vst1q_s32(sv + 4 * q, S[q]);
              }
              for (int l = 0; l < VL; l++) rv[l] = finishOne(p, p.mul, p.tsh, p.rsh, p.lsh, p.lutsh, pc0 + c, av[l] + p.bias[pc0 + c], sv[l]);
              for (int q = 0; q < 4; q++) res[c][q] = vld1q_s32(rv + 4 * q);
            } else {
              const VPN vp = channelParams(p, pc0 + c);
              for (int q = 0; q < 4; q++) res[c][q] = epilogueT<MODE>(e, vp, acc[c][q], S[q]);
            }
          }
          const int oc = oc0 + 4 * half;
          if (MODE < 0 && out.raw) {
            for (int c = 0; c < 4 && tile * TILE_O + 4 * half + c < p.Og; c++) {
              alignas(16) int32_t rv[VL];
              for (int q = 0; q < 4; q++) vst1q_s32(rv + 4 * q, res[c][q]);
              memcpy(out.raw + (int64_t)(oc + c) * p.P + pos0, rv, 4 * (size_t)lanes);
            }
            continue;
          }
          uint8x16x4_t ch4;
          ch4.val[0] = bytes16(res[0], e.sat8);
          ch4.val[1] = bytes16(res[1], e.sat8);
          ch4.val[2] = bytes16(res[2], e.sat8);
          ch4.val[3] = bytes16(res[3], e.sat8);
          uint32_t* plane = out.words + (int64_t)(oc >> 2) * out.planeStride;
          if (p.segStart[v + 1] - p.segStart[v] == 1 && p.segs[p.segStart[v]].count == VL) {
            vst4q_u8((uint8_t*)(plane + p.segs[p.segStart[v]].off), ch4);  // interleaves the 4 channels: one word per position
            continue;
          }
          alignas(16) uint32_t words[VL];
          vst4q_u8((uint8_t*)words, ch4);
          for (int s = p.segStart[v]; s < p.segStart[v + 1]; s++) {
            const Seg& sg = p.segs[s];
            memcpy(plane + sg.off, words + sg.lane0, sizeof(uint32_t) * sg.count);
          }
        }
      }
    }
  }
}

template <int MODE>
void dwNeonT(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int y0, int y1) {
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  if (p.taps > 64 || p.stride > 2 || p.act == A_LUT || out.raw) {
    zqint::kScalar.dw(plan, inBuf, outBuf, y0, y1);
    return;
  }
  const EpiN e(p);
  const int cb = (p.C + 3) / 4, k = p.k, st = p.stride;
  int16x8_t wv[64];
  for (int b = 0; b < cb; b++) {
    const uint8_t* ip = (const uint8_t*)(in.words + b * in.planeStride);
    for (int t = 0; t < p.taps; t++) {
      int16_t w8[8];
      for (int l = 0; l < 8; l++) w8[l] = (int16_t)p.wdw[((size_t)b * p.taps + t) * 4 + (l & 3)];
      wv[t] = vld1q_s16(w8);
    }
    const VPN vp{vld1q_s32(p.vbias + b * VL), vld1q_s32(p.vmul + b * VL), vnegq_s32(vminq_s32(vld1q_s32(p.vtsh + b * VL), vdupq_n_s32(63))),
                 vnegq_s32(vld1q_s32(p.vrsh + b * VL)), vld1q_s32(p.vlsh + b * VL)};
    const int32x4_t soff = vdupq_n_s32(p.sOff);
    for (int y = y0; y < y1; y++) {
      const int iy0 = y * st - p.pad + in.b;
      for (int x0 = 0; x0 < p.Wo; x0 += 4) {
        const int n = p.Wo - x0 < 4 ? p.Wo - x0 : 4;
        // The window sums in 16 bits (at most 64 taps of 255) until the end.
        int32x4_t acc[4];
        uint16x8_t s16[2] = {vdupq_n_u16(0), vdupq_n_u16(0)};
        for (int q = 0; q < 4; q++) acc[q] = MODE >= 0 ? vp.bias : vdupq_n_s32(0);
        for (int ky = 0; ky < k; ky++) {
          const uint8_t* row = ip + ((int64_t)(iy0 + ky) * in.rowStride + (x0 * st - p.pad + in.b)) * 4;
          for (int kx = 0; kx < k; kx++) {
            uint8x16_t x;
            if (st == 1) x = vld1q_u8(row + kx * 4);
            else x = vreinterpretq_u8_u32(vld2q_u32((const uint32_t*)(row + kx * 4)).val[0]);
            const int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(x)));
            const int16x8_t hi = vreinterpretq_s16_u16(vmovl_high_u8(x));
            const int16x8_t w = wv[ky * k + kx];
            acc[0] = vmlal_s16(acc[0], vget_low_s16(lo), vget_low_s16(w));
            acc[1] = vmlal_high_s16(acc[1], lo, w);
            acc[2] = vmlal_s16(acc[2], vget_low_s16(hi), vget_low_s16(w));
            acc[3] = vmlal_high_s16(acc[3], hi, w);
            if (MODE >= 0 || e.needS) {
              s16[0] = vaddq_u16(s16[0], vreinterpretq_u16_s16(lo));
              s16[1] = vaddq_u16(s16[1], vreinterpretq_u16_s16(hi));
            }
          }
        }
        const int32x4_t S[4] = {vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(s16[0]))), vreinterpretq_s32_u32(vmovl_high_u16(s16[0])),
                                vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(s16[1]))), vreinterpretq_s32_u32(vmovl_high_u16(s16[1]))};
        int32x4_t res[4];
        for (int q = 0; q < 4; q++) res[q] = epilogueT<MODE>(e, vp, acc[q], vsubq_s32(S[q], soff));
        const uint8x16_t bytes = bytes16(res, e.sat8);
        uint8_t* dst = (uint8_t*)out.at(b, y, x0);
        if (n == 4) vst1q_u8(dst, bytes);
        else {
          alignas(16) uint8_t tmp[16];
          vst1q_u8(tmp, bytes);
          memcpy(dst, tmp, 4 * (size_t)n);
        }
      }
    }
  }
}

using DwFn = void (*)(const ConvPlan&, const Buf&, const Buf&, int, int);

template <class Mac>
void gemmNeon(const ConvPlan& p, const Buf& in, const Buf& out, int v0, int v1, uint32_t* scratch) {
  switch (out.raw ? -1 : fastMode(p)) {
    case A_LINEAR: return gemmNeonT<Mac, A_LINEAR>(p, in, out, v0, v1, scratch);
    case A_RELU: return gemmNeonT<Mac, A_RELU>(p, in, out, v0, v1, scratch);
    case A_LEAKY: return gemmNeonT<Mac, A_LEAKY>(p, in, out, v0, v1, scratch);
    default: return gemmNeonT<Mac, -1>(p, in, out, v0, v1, scratch);
  }
}

void dwNeon(const ConvPlan& p, const Buf& in, const Buf& out, int y0, int y1) {
  switch (out.raw ? -1 : fastMode(p)) {
    case A_LINEAR: return dwNeonT<A_LINEAR>(p, in, out, y0, y1);
    case A_RELU: return dwNeonT<A_RELU>(p, in, out, y0, y1);
    case A_LEAKY: return dwNeonT<A_LEAKY>(p, in, out, y0, y1);
    default: return dwNeonT<-1>(p, in, out, y0, y1);
  }
}

}  // namespace
