#include "ref_conv.h"

#include <cstddef>

int64_t ref_rshr(int64_t v, int r) {
  if (r == 0) return v;
  if (r < 0) {
    // only values that fit the caller's width are ever shifted left this far (see the bounds in
    // docs/formats/accelerator.md); __int128 keeps the intermediate exact
    if (r < -64) return v == 0 ? 0 : (v > 0 ? INT64_MAX : INT64_MIN);
    __int128 x = static_cast<__int128>(v) * (static_cast<__int128>(1) << -r);
    if (x > INT64_MAX) return INT64_MAX;
    if (x < INT64_MIN) return INT64_MIN;
    return static_cast<int64_t>(x);
  }
  if (r > 100) return 0;
  __int128 x = static_cast<__int128>(v) + (static_cast<__int128>(1) << (r - 1));
  return static_cast<int64_t>(x >> r);  // arithmetic shift: floor
}

static int64_t sat(int64_t v, int bits) {
  const int64_t hi = (int64_t(1) << (bits - 1)) - 1, lo = -(int64_t(1) << (bits - 1));
  return v > hi ? hi : (v < lo ? lo : v);
}

void ref_conv(const uint8_t *mem, const ConvDesc &d, std::vector<uint8_t> &out) {
  const bool u8 = d.flags & 1;
  const unsigned act = (d.flags >> 1) & 3;
  const int bits = (d.flags & 8) ? 16 : 8;
  const uint32_t cg = d.c / d.groups, og = d.o / d.groups, k = d.k;
  out.assign(size_t(d.o) * d.ho * d.wo * (bits / 8), 0);
  for (uint32_t o = 0; o < d.o; o++) {
    const uint32_t g = o / og;
    const uint8_t *pp = mem + d.p_addr + 8 * o;
    const int32_t B = int32_t(pp[0] | pp[1] << 8 | pp[2] << 16 | uint32_t(pp[3]) << 24);
    const int16_t M = int16_t(pp[4] | pp[5] << 8);
    const int8_t TS = int8_t(pp[6]), OS = int8_t(pp[7]);
    for (uint32_t y = 0; y < d.ho; y++)
      for (uint32_t x = 0; x < d.wo; x++) {
        int64_t acc = 0, S = 0;
        for (uint32_t c = 0; c < cg; c++)
          for (uint32_t ky = 0; ky < k; ky++)
            for (uint32_t kx = 0; kx < k; kx++) {
              const int64_t iy = int64_t(y) * d.stride + ky - d.pad, ix = int64_t(x) * d.stride + kx - d.pad;
              if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
              const uint8_t raw = mem[d.in_addr + (size_t(g * cg + c) * d.h + iy) * d.w + ix];
              const int64_t X = u8 ? int64_t(raw) : int64_t(int8_t(raw));
              const int64_t Q = int8_t(mem[d.w_addr + ((size_t(o) * cg + c) * k + ky) * k + kx]);
              acc += Q * X;
              S += X;
            }
        const int64_t Y = acc + ref_rshr(int64_t(M) * S, TS) + B;
        int64_t A = Y;
        if (act == 2 && Y < 0) A = 0;
        if (act == 1 && Y < 0) A = ref_rshr(Y * 3277, 15);
        const int64_t v = sat(ref_rshr(A, OS), bits);
        const size_t i = (size_t(o) * d.ho + y) * d.wo + x;
        if (bits == 8) {
          out[i] = uint8_t(v);
        } else {
          out[2 * i] = uint8_t(v);
          out[2 * i + 1] = uint8_t(uint16_t(v) >> 8);
        }
      }
  }
}
