// Convolution kernels of the retraining core: float forward (teacher, calibration), the integer
// forward that quantization-aware training runs (the fixed-point arithmetic of
// docs/formats/fixed-point.md, computed with integers), and the float backward passes that the
// straight-through estimator uses. Tensors are NCHW, weights OIHW; one image at a time, so the
// batch loop lives in the caller's thread.
#include "conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace zq {

namespace {

constexpr int kChunk = 512;  // output positions per block: keeps a block of columns in L1/L2

bool isPointwise(const ConvGeom& g) { return g.k == 1 && g.s == 1 && g.p == 0; }
bool isDepthwise(const ConvGeom& g) { return g.G == g.C && g.G == g.O; }

// Column matrix of one group: col[(c*k + ky)*k + kx][p] for p in [p0, p0+np).
template <typename T>
void im2col(const T* x, const ConvGeom& g, int cBegin, int cCount, int p0, int np, T* col) {
  const int Ho = g.Ho(), Wo = g.Wo();
  (void)Ho;
  for (int c = 0; c < cCount; c++) {
    const T* xc = x + (size_t)(cBegin + c) * g.H * g.W;
    for (int ky = 0; ky < g.k; ky++) {
      for (int kx = 0; kx < g.k; kx++) {
        T* dst = col + ((size_t)(c * g.k + ky) * g.k + kx) * np;
        for (int i = 0; i < np; i++) {
          const int p = p0 + i;
          const int oy = p / Wo, ox = p % Wo;
          const int iy = oy * g.s - g.p + ky, ix = ox * g.s - g.p + kx;
          dst[i] = (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) ? xc[(size_t)iy * g.W + ix] : T(0);
        }
      }
    }
  }
}

// The columns of one block of output positions [p0, p0 + np) of group gi: for a pointwise conv the
// input itself (rows P apart), else im2col into col (rows np apart). Returns the first row; *ld its stride.
template <typename T>
const T* blockColumns(const T* x, const ConvGeom& g, int gi, int cg, int P, int p0, int np, T* col, size_t* ld) {
  if (isPointwise(g)) {
    *ld = P;
    return x + (size_t)gi * cg * P + p0;
  }
  im2col(x, g, gi * cg, cg, p0, np, col);
  *ld = np;
  return col;
}

// Adds col (as produced by im2col for the same block) back into x.
void col2imAdd(const float* col, const ConvGeom& g, int cBegin, int cCount, int p0, int np, float* x) {
  const int Wo = g.Wo();
  for (int c = 0; c < cCount; c++) {
    float* xc = x + (size_t)(cBegin + c) * g.H * g.W;
    for (int ky = 0; ky < g.k; ky++) {
      for (int kx = 0; kx < g.k; kx++) {
        const float* src = col + ((size_t)(c * g.k + ky) * g.k + kx) * np;
        for (int i = 0; i < np; i++) {
          const int p = p0 + i;
          const int oy = p / Wo, ox = p % Wo;
          const int iy = oy * g.s - g.p + ky, ix = ox * g.s - g.p + kx;
          if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) xc[(size_t)iy * g.W + ix] += src[i];
        }
      }
    }
  }
}

inline int64_t rshr(int64_t v, int r) {
  if (r > 0) return (v + (int64_t(1) << (r - 1))) >> r;
  if (r < 0) return v * (int64_t(1) << -r);
  return v;
}

}  // namespace

void convForwardF32(const float* x, const float* w, const float* b, const ConvGeom& g, float* y) {
  const int P = g.Ho() * g.Wo();
  const int cg = g.C / g.G, og = g.O / g.G, K = cg * g.k * g.k;
  if (isDepthwise(g)) {
    const int Wo = g.Wo(), Ho = g.Ho();
    for (int c = 0; c < g.C; c++) {
      const float* xc = x + (size_t)c * g.H * g.W;
      const float* wc = w + (size_t)c * g.k * g.k;
      float* yc = y + (size_t)c * P;
      for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
          float acc = b[c];
          for (int ky = 0; ky < g.k; ky++) {
            const int iy = oy * g.s - g.p + ky;
            if (iy < 0 || iy >= g.H) continue;
            for (int kx = 0; kx < g.k; kx++) {
              const int ix = ox * g.s - g.p + kx;
              if (ix >= 0 && ix < g.W) acc += wc[ky * g.k + kx] * xc[(size_t)iy * g.W + ix];
            }
          }
          yc[(size_t)oy * Wo + ox] = acc;
        }
    }
    return;
  }
  std::vector<float> col(isPointwise(g) ? 0 : (size_t)K * kChunk);
  float acc[kChunk];
  for (int gi = 0; gi < g.G; gi++) {
    for (int p0 = 0; p0 < P; p0 += kChunk) {
      const int np = std::min(kChunk, P - p0);
      size_t ld;
      const float* cm = blockColumns(x, g, gi, cg, P, p0, np, col.data(), &ld);
      for (int o = gi * og; o < (gi + 1) * og; o++) {
        const float* wo = w + (size_t)o * K;
        for (int i = 0; i < np; i++) acc[i] = b[o];
        for (int k = 0; k < K; k++) {
          const float wk = wo[k];
          const float* ck = cm + k * ld;
          for (int i = 0; i < np; i++) acc[i] += wk * ck[i];
        }
        std::memcpy(y + (size_t)o * P + p0, acc, sizeof(float) * np);
      }
    }
  }
}

namespace {

// The integer conv of one image up to the pre-activation Y = ACC + rshr(m*S, mShift) + bias of
// every output value, handed to finish(o, Y, at) (at: the value's index in the O x Ho x Wo output).
template <typename Finish>
void intConv(const int16_t* x, const int16_t* q, const int32_t* m, const int32_t* mShift, const int32_t* bias,
             const ConvGeom& g, Finish&& finish) {
  const int P = g.Ho() * g.Wo();
  const int cg = g.C / g.G, og = g.O / g.G, K = cg * g.k * g.k;
  auto pre = [&](int o, int64_t acc, int64_t s, size_t at) {
    finish(o, acc + rshr(int64_t(m[o]) * s, mShift[o]) + bias[o], at);
  };
  if (isDepthwise(g)) {
    const int Wo = g.Wo(), Ho = g.Ho();
    for (int c = 0; c < g.C; c++) {
      const int16_t* xc = x + (size_t)c * g.H * g.W;
      const int16_t* qc = q + (size_t)c * g.k * g.k;
      for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
          int32_t acc = 0, s = 0;
          for (int ky = 0; ky < g.k; ky++) {
            const int iy = oy * g.s - g.p + ky;
            if (iy < 0 || iy >= g.H) continue;
            for (int kx = 0; kx < g.k; kx++) {
              const int ix = ox * g.s - g.p + kx;
              if (ix < 0 || ix >= g.W) continue;
              const int32_t v = xc[(size_t)iy * g.W + ix];
              acc += int32_t(qc[ky * g.k + kx]) * v;
              s += v;
            }
          }
          pre(c, acc, s, (size_t)c * P + (size_t)oy * Wo + ox);
        }
    }
    return;
  }
  std::vector<int16_t> col(isPointwise(g) ? 0 : (size_t)K * kChunk);
  int32_t acc[kChunk], sum[kChunk];
  for (int gi = 0; gi < g.G; gi++) {
    for (int p0 = 0; p0 < P; p0 += kChunk) {
      const int np = std::min(kChunk, P - p0);
      size_t ld;
      const int16_t* cm = blockColumns(x, g, gi, cg, P, p0, np, col.data(), &ld);
      for (int i = 0; i < np; i++) sum[i] = 0;
      for (int k = 0; k < K; k++) {
        const int16_t* ck = cm + k * ld;
        for (int i = 0; i < np; i++) sum[i] += ck[i];
      }
      for (int o = gi * og; o < (gi + 1) * og; o++) {
        const int16_t* qo = q + (size_t)o * K;
        for (int i = 0; i < np; i++) acc[i] = 0;
        for (int k = 0; k < K; k++) {
          const int32_t qk = qo[k];
          if (qk == 0) continue;
          const int16_t* ck = cm + k * ld;
          for (int i = 0; i < np; i++) acc[i] += qk * int32_t(ck[i]);
        }
        for (int i = 0; i < np; i++) pre(o, acc[i], sum[i], (size_t)o * P + p0 + i);
      }
    }
  }
}

}  // namespace

void convForwardInt(const int16_t* x, const int16_t* q, const IntConvParams& qp, const ConvGeom& g,
                    int16_t* y, uint8_t* code) {
  const int64_t hi = (int64_t(1) << (qp.bits - 1)) - 1, lo = -(int64_t(1) << (qp.bits - 1));
  intConv(x, q, qp.m, qp.mShift, qp.bias, g, [&](int o, int64_t v, size_t at) {
    const bool neg = v < 0;
    if (qp.leaky && neg) v = rshr(v * 3277, 15);
    v = rshr(v, qp.outShift[o]);
    uint8_t cd = (qp.leaky && neg) ? 2 : 1;
    if (v > hi) v = hi, cd = 0;
    else if (v < lo) v = lo, cd = 0;
    y[at] = (int16_t)v;
    code[at] = cd;
  });
}

void convActivatedInt(const int16_t* x, const int16_t* q, const int32_t* m, const int32_t* mShift, const int32_t* bias,
                      int act, const ConvGeom& g, int32_t* y) {
  intConv(x, q, m, mShift, bias, g, [&](int, int64_t v, size_t at) {
    if (v < 0) {
      if (act == 1) v = rshr(v * 3277, 15);
      else if (act == 2) v = 0;
    }
    y[at] = (int32_t)v;
  });
}

void inputHessianInt(const int16_t* x, const ConvGeom& g, int every, int64_t* H) {
  const int Wo = g.Wo(), P = g.Ho() * Wo;
  const int cg = g.C / g.G, kk = g.k * g.k, d = cg * kk;
  std::vector<int32_t> v(d);
  for (int p = 0; p < P; p += every) {
    const int oy = p / Wo, ox = p % Wo;
    for (int gi = 0; gi < g.G; gi++) {
      bool any = false;
      for (int c = 0; c < cg; c++) {
        const int16_t* xc = x + (size_t)(gi * cg + c) * g.H * g.W;
        for (int ky = 0; ky < g.k; ky++) {
          const int iy = oy * g.s - g.p + ky;
          for (int kx = 0; kx < g.k; kx++) {
            const int ix = ox * g.s - g.p + kx;
            const int32_t val = (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) ? xc[(size_t)iy * g.W + ix] : 0;
            v[c * kk + ky * g.k + kx] = val;
            any |= val != 0;
          }
        }
      }
      if (!any) continue;
      int64_t* Hg = H + (size_t)gi * d * d;
      for (int i = 0; i < d; i++) {
        const int64_t vi = v[i];
        if (vi == 0) continue;
        int64_t* row = Hg + (size_t)i * d;
        for (int j = i; j < d; j++) row[j] += vi * v[j];
      }
    }
  }
}

void convBackwardData(const float* dy, const float* w, const ConvGeom& g, float* dx) {
  const int P = g.Ho() * g.Wo();
  const int cg = g.C / g.G, og = g.O / g.G, K = cg * g.k * g.k;
  std::memset(dx, 0, sizeof(float) * (size_t)g.C * g.H * g.W);
  if (isDepthwise(g)) {
    const int Wo = g.Wo(), Ho = g.Ho();
    for (int c = 0; c < g.C; c++) {
      float* xc = dx + (size_t)c * g.H * g.W;
      const float* wc = w + (size_t)c * g.k * g.k;
      const float* dyc = dy + (size_t)c * P;
      for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
          const float d = dyc[(size_t)oy * Wo + ox];
          if (d == 0.f) continue;
          for (int ky = 0; ky < g.k; ky++) {
            const int iy = oy * g.s - g.p + ky;
            if (iy < 0 || iy >= g.H) continue;
            for (int kx = 0; kx < g.k; kx++) {
              const int ix = ox * g.s - g.p + kx;
              if (ix >= 0 && ix < g.W) xc[(size_t)iy * g.W + ix] += d * wc[ky * g.k + kx];
            }
          }
        }
    }
    return;
  }
  std::vector<float> col((size_t)K * kChunk);
  for (int gi = 0; gi < g.G; gi++) {
    for (int p0 = 0; p0 < P; p0 += kChunk) {
      const int np = std::min(kChunk, P - p0);
      float* cm;
      size_t ld;
      if (isPointwise(g)) {
        cm = dx + (size_t)gi * cg * P + p0;
        ld = P;
      } else {
        std::memset(col.data(), 0, sizeof(float) * (size_t)K * np);
        cm = col.data();
        ld = np;
      }
      for (int o = gi * og; o < (gi + 1) * og; o++) {
        const float* wo = w + (size_t)o * K;
        const float* dyo = dy + (size_t)o * P + p0;
        for (int k = 0; k < K; k++) {
          const float wk = wo[k];
          float* ck = cm + k * ld;
          for (int i = 0; i < np; i++) ck[i] += wk * dyo[i];
        }
      }
      if (!isPointwise(g)) col2imAdd(col.data(), g, gi * cg, cg, p0, np, dx);
    }
  }
}

void convBackwardWeight(const float* dy, const float* x, const ConvGeom& g, float* dw, float* db) {
  const int P = g.Ho() * g.Wo();
  const int cg = g.C / g.G, og = g.O / g.G, K = cg * g.k * g.k;
  for (int o = 0; o < g.O; o++) {
    const float* dyo = dy + (size_t)o * P;
    float s = 0.f;
    for (int i = 0; i < P; i++) s += dyo[i];
    db[o] += s;
  }
  if (isDepthwise(g)) {
    const int Wo = g.Wo(), Ho = g.Ho();
    for (int c = 0; c < g.C; c++) {
      const float* xc = x + (size_t)c * g.H * g.W;
      const float* dyc = dy + (size_t)c * P;
      float* wc = dw + (size_t)c * g.k * g.k;
      for (int ky = 0; ky < g.k; ky++)
        for (int kx = 0; kx < g.k; kx++) {
          float s = 0.f;
          for (int oy = 0; oy < Ho; oy++) {
            const int iy = oy * g.s - g.p + ky;
            if (iy < 0 || iy >= g.H) continue;
            const float* xr = xc + (size_t)iy * g.W;
            const float* dr = dyc + (size_t)oy * Wo;
            const int oxLo = std::max(0, (g.p - kx + g.s - 1) / g.s);
            const int oxHi = std::min(Wo, (g.W - 1 + g.p - kx) / g.s + 1);
            if (g.s == 1) {
              const float* xs = xr - g.p + kx;
              for (int ox = oxLo; ox < oxHi; ox++) s += dr[ox] * xs[ox];
            } else {
              for (int ox = oxLo; ox < oxHi; ox++) s += dr[ox] * xr[ox * g.s - g.p + kx];
            }
          }
          wc[ky * g.k + kx] += s;
        }
    }
    return;
  }
  std::vector<float> col(isPointwise(g) ? 0 : (size_t)K * kChunk);
  for (int gi = 0; gi < g.G; gi++) {
    for (int p0 = 0; p0 < P; p0 += kChunk) {
      const int np = std::min(kChunk, P - p0);
      size_t ld;
      const float* cm = blockColumns(x, g, gi, cg, P, p0, np, col.data(), &ld);
      for (int o = gi * og; o < (gi + 1) * og; o++) {
        const float* dyo = dy + (size_t)o * P + p0;
        float* dwo = dw + (size_t)o * K;
        for (int k = 0; k < K; k++) {
          const float* ck = cm + k * ld;
          float s = 0.f;
          for (int i = 0; i < np; i++) s += dyo[i] * ck[i];
          dwo[k] += s;
        }
      }
    }
  }
}

}  // namespace zq
