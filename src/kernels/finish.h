// The per-output tail of a convolution, one value at a time: T = rshr(M*S), activation,
// requantization (docs/formats/fixed-point.md "Convolution"). Every kernel's vector epilogue is an
// optimisation of this function and is tested against it through the reference.
// Included by each instruction-set file; internal linkage keeps the copies apart.
#pragma once
#include <cstdint>
#include "plan.h"

namespace {

// rshr for 0 <= r <= 63 on 64-bit values.
inline int64_t rshr64(int64_t v, int r) {
  return r == 0 ? v : (v >> r) + ((v >> (r - 1)) & 1);
}

inline int32_t clampi(int64_t v, int lo, int hi) { return (int32_t)(v < lo ? lo : v > hi ? hi : v); }

// Y0: ACC + B (no T yet); S: the real window sum. Channel parameters: index c of the plan's arrays.
inline int32_t finishOne(const zqint::ConvPlan& p, const int32_t* mul, const int32_t* tsh, const int32_t* rsh,
                         const int32_t* lsh, const int32_t* lutsh, int c, int32_t y0, int32_t s) {
  int64_t Y = y0;
  if (mul[c] != 0) Y += rshr64((int64_t)mul[c] * s, tsh[c]);
  if (p.act == zqint::A_LUT) {
    int r = lutsh[c];
    int64_t idx = r >= 0 ? rshr64(Y, r) : Y * ((int64_t)1 << -r);
    idx += p.lutZ;
    return p.lut[idx < 0 ? 0 : idx >= p.lutN ? p.lutN - 1 : idx];
  }
  if (p.act == zqint::A_LEAKY) {
    if (Y < 0) Y = rshr64(Y * 3277, 15);
  } else if (p.act == zqint::A_RELU) {
    if (Y < 0) Y = 0;
  }
  int64_t v = clampi(rshr64(Y, rsh[c]), p.lo, p.hi);
  if (lsh[c]) v = clampi(v * ((int64_t)1 << lsh[c]), p.lo, p.hi);
  return (int32_t)v;
}

}  // namespace
