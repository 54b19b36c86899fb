#include "check.h"

#include <cmath>
#include <cstdlib>

#include "net.h"

namespace zqint {

namespace {

[[noreturn]] void fail(int i, const std::string& msg) {
  throw Error{(i < 0 ? std::string("network") : "layer " + std::to_string(i)) + ": " + msg};
}

bool in(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

// darknet's output sizes (floor division of a possibly negative numerator).
int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

void checkNet(const std::vector<LayerIn>& layers, int inC, int inH, int inW, const Limits& lim) {
  if (inC != 3) fail(-1, "the input must have 3 channels (RGB), not " + std::to_string(inC));
  if (!in(inH, 1, lim.inputSide) || !in(inW, 1, lim.inputSide)) fail(-1, "input size outside the limits");
  const int n = (int)layers.size();
  if (!in(n, 1, lim.layers)) fail(-1, std::to_string(n) + " layers");
  // Per layer: its desc, checked field by field before any field is used to index another layer.
  std::vector<const int32_t*> D(n);
  std::vector<bool> readByNonYolo(n, false);
  int64_t total = 0, weights = 0;
  for (int i = 0; i < n; i++) {
    const std::vector<int32_t>& dv = layers[i].desc;
    if (dv.size() < (size_t)F_INPUTS) fail(i, "descriptor too short");
    const int32_t* d = dv.data();
    const int kind = d[F_KIND];
    if (!in(kind, K_CONV, K_YOLO)) fail(i, "unknown kind " + std::to_string(kind));
    const int nin = d[F_NIN];
    if (dv.size() != (size_t)F_INPUTS + (nin < 0 ? 0 : nin)) fail(i, "descriptor length");
    const bool one = kind != K_ROUTE && kind != K_SHORTCUT;
    if (one ? nin != 1 : !in(nin, kind == K_SHORTCUT ? 2 : 1, lim.inputs)) fail(i, std::to_string(nin) + " inputs");
    for (int j = 0; j < nin; j++) {
      const int src = d[F_INPUTS + j];
      if (!in(src, -1, i - 1)) fail(i, "bad input " + std::to_string(src));
      if (src == -1 && kind != K_CONV) fail(i, "only a conv layer may read the network input");
      if (src >= 0 && D[src][F_KIND] == K_YOLO) fail(i, "reads a yolo layer");
      if (src >= 0 && kind != K_YOLO) readByNonYolo[src] = true;
    }
    const int64_t C = d[F_C], H = d[F_H], W = d[F_W];
    if (!in(C, 1, lim.channels) || !in(H, 1, lim.side) || !in(W, 1, lim.side) || C * H * W > lim.tensor) fail(i, "output size outside the limits");
    total += C * H * W;
    if (total > lim.total) fail(i, "the outputs exceed the limit on all values");
    if (kind != K_YOLO) {
      if (d[F_BITS] != 8 && d[F_BITS] != 16) fail(i, "bits " + std::to_string(d[F_BITS]));
      if (!in(d[F_FRAC], -lim.frac, lim.frac)) fail(i, "frac " + std::to_string(d[F_FRAC]));
    }
    D[i] = d;
    // Shapes of the inputs.
    const int s0 = d[F_INPUTS];
    const int64_t iC = s0 < 0 ? inC : D[s0][F_C], iH = s0 < 0 ? inH : D[s0][F_H], iW = s0 < 0 ? inW : D[s0][F_W];
    auto sameFormat = [&]() {
      if (D[s0][F_BITS] != d[F_BITS] || D[s0][F_FRAC] != d[F_FRAC]) fail(i, "output format must equal the input's");
    };
    switch (kind) {
      case K_CONV: {
        const int64_t k = d[F_SIZE], st = d[F_STRIDE], pad = d[F_PAD], g = d[F_GROUPS];
        if (!in(k, 1, lim.kernel) || !in(st, 1, lim.stride) || !in(pad, 0, lim.pad)) fail(i, "size, stride or pad outside the limits");
        if (!in(g, 1, lim.channels) || iC % g || C % g) fail(i, "channels not divisible by groups");
        if (floorDiv(iH + 2 * pad - k, st) + 1 != H || floorDiv(iW + 2 * pad - k, st) + 1 != W) fail(i, "output size");
        if (!in(d[F_ACT], A_LINEAR, A_LUT)) fail(i, "activation");
        const ConvParamsIn& cp = layers[i].conv;
        const int64_t K = iC / g * k * k;
        if (!cp.q || !cp.fw || !cp.m || !cp.fm || !cp.bias) fail(i, "conv parameters missing");
        if ((int64_t)cp.qLen != C * K) fail(i, "weight count");
        weights += C * K;
        if (C * K > lim.convWeights || weights > lim.weights) fail(i, "weights exceed the limits");
        const int bits = d[F_BITS];
        if (d[F_ACT] == A_LUT) {
          if (!cp.lut || !in((int64_t)cp.lutLen, 1, lim.lut)) fail(i, "activation table missing or too long");
          if (!in(d[F_LUTSHIFT], -lim.frac, lim.frac) || !in(d[F_LUTOFFSET], -lim.lutOffset, lim.lutOffset)) fail(i, "table shift or offset");
          for (size_t j = 0; j < cp.lutLen; j++)
            if (!in(cp.lut[j], -((int64_t)1 << (bits - 1)), ((int64_t)1 << (bits - 1)) - 1)) fail(i, "table entry outside the output");
        }
        // The bound on |Y| of docs/formats/fixed-point.md "Validation", computed as
        // src/qnet/bounds.ts computes it (doubles, exact at these magnitudes).
        const double xmax = s0 < 0 ? 255 : 128;
        for (int64_t o = 0; o < C; o++) {
          if (!in(cp.fw[o], -lim.frac, lim.frac) || !in(cp.fm[o], -lim.frac, lim.frac)) fail(i, "fraction bits of channel " + std::to_string(o));
          if (!in(cp.m[o], -32767, 32767)) fail(i, "M of channel " + std::to_string(o) + " does not fit 16 bits");
          double sumAbs = 0;
          for (int64_t j = o * K; j < (o + 1) * K; j++) sumAbs += std::abs((int)cp.q[j]);
          double corr = 0;
          if (cp.m[o] != 0) {
            const double a = std::abs((double)cp.m[o]) * (double)K * xmax;
            const int r = cp.fm[o] - cp.fw[o];
            corr = r >= 0 ? std::ceil(a / std::ldexp(1.0, r < 64 ? r : 64)) + 1 : a * std::ldexp(1.0, -r < 64 ? -r : 64);
          }
          const double bound = sumAbs * xmax + corr + std::abs((double)cp.bias[o]);
          if (!(bound <= 2147483647.0)) fail(i, "the accumulator of channel " + std::to_string(o) + " can leave 32 bits");
        }
        break;
      }
      case K_MAXPOOL: {
        const int64_t k = d[F_SIZE], st = d[F_STRIDE], p = d[F_PAD];
        if (!in(k, 1, lim.kernel) || !in(st, 1, lim.stride) || !in(p, 0, lim.pad)) fail(i, "size, stride or padding outside the limits");
        if (p > 0 && (p + 1) / 2 > k - 1) fail(i, "windows outside the input");
        if (C != iC || floorDiv(iH + p - k, st) + 1 != H || floorDiv(iW + p - k, st) + 1 != W) fail(i, "output size");
        sameFormat();
        break;
      }
      case K_ROUTE: {
        const int64_t g = d[F_GROUPS];
        if (!in(g, 1, lim.channels) || !in(d[F_GROUPID], 0, g - 1)) fail(i, "groups or group id");
        int64_t c = 0;
        for (int j = 0; j < nin; j++) {
          const int32_t* s = D[d[F_INPUTS + j]];
          if (s[F_H] != iH || s[F_W] != iW || s[F_C] % g) fail(i, "inputs differ in size or do not divide into groups");
          c += s[F_C] / g;
        }
        if (c != C || H != iH || W != iW) fail(i, "output size");
        break;
      }
      case K_SHORTCUT:
        if (!in(d[F_ACT], A_LINEAR, A_RELU)) fail(i, "activation");
        for (int j = 0; j < nin; j++) {
          const int32_t* s = D[d[F_INPUTS + j]];
          if (s[F_C] != C || s[F_H] != H || s[F_W] != W) fail(i, "input shapes differ");
        }
        break;
      case K_UPSAMPLE: {
        const int64_t st = d[F_STRIDE];
        if (!in(st, 1, lim.stride)) fail(i, "stride");
        if (C != iC || H != iH * st || W != iW * st) fail(i, "output size");
        sameFormat();
        break;
      }
      case K_DROPOUT:
        if (C != iC || H != iH || W != iW) fail(i, "output size");
        sameFormat();
        break;
      case K_YOLO:
        if (C != iC || H != iH || W != iW) fail(i, "output size");
        break;
    }
  }
  // A 16-bit tensor is read by yolo heads only (the 8-bit kernels cannot read it).
  for (int i = 0; i < n; i++)
    if (D[i][F_KIND] != K_YOLO && D[i][F_BITS] == 16 && readByNonYolo[i]) fail(i, "16-bit output read by a layer other than yolo");
}

}  // namespace zqint
