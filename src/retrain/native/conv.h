// Convolution kernels of the retraining core (see conv.cc).
#pragma once
#include <cstddef>
#include <cstdint>

namespace zq {

// One image: input C x H x W, output O x Ho x Wo, square kernel k, stride s, zero padding p per
// side, G groups (C and O divisible by G).
struct ConvGeom {
  int C, H, W, O, k, s, p, G;
  int Ho() const { return (H + 2 * p - k) / s + 1; }
  int Wo() const { return (W + 2 * p - k) / s + 1; }
};

// Integer formats of one conv layer, per output channel (see docs/formats/fixed-point.md):
// Y = ACC + rshr(m*S, mShift) + bias; leaky: Y < 0 -> rshr(Y*3277, 15); out = sat_bits(rshr(Y, outShift)).
struct IntConvParams {
  const int32_t* m;
  const int32_t* mShift;
  const int32_t* bias;
  const int32_t* outShift;
  bool leaky;
  int bits;
};

void convForwardF32(const float* x, const float* w, const float* b, const ConvGeom& g, float* y);
// code[i]: 0 saturated, 1 slope 1, 2 leaky negative slope (what the backward pass needs).
void convForwardInt(const int16_t* x, const int16_t* q, const IntConvParams& qp, const ConvGeom& g,
                    int16_t* y, uint8_t* code);
// A(Y) of every output value (int32, before the output shift): the activated pre-activation that
// calibration requantizes for each candidate output format. act: 0 linear, 1 leaky, 2 relu.
void convActivatedInt(const int16_t* x, const int16_t* q, const int32_t* m, const int32_t* mShift, const int32_t* bias,
                      int act, const ConvGeom& g, int32_t* y);
// Adds x xᵀ (upper triangle, j >= i) of the input window of every `every`-th output position
// p = 0, every, 2*every, ... of one image to H, per group: H[g][i][j] with i, j < d = (C/G)*k*k.
void inputHessianInt(const int16_t* x, const ConvGeom& g, int every, int64_t* H);
// dx is overwritten; dw and db are accumulated.
void convBackwardData(const float* dy, const float* w, const ConvGeom& g, float* dx);
void convBackwardWeight(const float* dy, const float* x, const ConvGeom& g, float* dw, float* db);

}  // namespace zq
