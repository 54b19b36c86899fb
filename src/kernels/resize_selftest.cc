// Prints one hash of darknet resizes (8-bit and float outputs) of random images to random sizes,
// letterboxed ones included. The x86-64 build is tested bit for bit against the JS reference
// (test/detect-resize-native.test.ts); scripts/check-arm64.sh checks that an arm64 build prints
// the same hash (a fused multiply-add, for one, would change it).
#include <cstdio>
#include <cstring>
#include <vector>

#include "resize.h"

int main() {
  unsigned long long hash = 1469598103934665603ULL;
  unsigned s = 1;
  auto next = [&](unsigned mod) {
    s = s * 1664525u + 1013904223u;
    return (int)((s >> 8) % mod);
  };
  zqimg::ResizeScratch scratch;
  for (int t = 0; t < 300; t++) {
    const int iw = 1 + next(700), ih = 1 + next(500), w = 1 + next(400), h = 1 + next(400);
    const bool box = t % 3 == 0;
    const int dstW = box ? w + next(9) : w, dstH = box ? h + next(9) : h;
    std::vector<uint8_t> src((size_t)iw * ih * 3);
    for (auto& v : src) v = (uint8_t)next(256);
    std::vector<uint8_t> rgb((size_t)dstW * dstH * 3);
    std::vector<float> planar(rgb.size());
    zqimg::ResizeJob j{src.data(), iw, ih, w, h, rgb.data(), planar.data(), dstW, dstH, (dstW - w) / 2, (dstH - h) / 2};
    zqimg::resizeDarknet(j, scratch);
    for (uint8_t v : rgb) hash = (hash ^ v) * 1099511628211ULL;
    for (float f : planar) {
      uint32_t u;
      memcpy(&u, &f, 4);
      hash = (hash ^ u) * 1099511628211ULL;
    }
  }
  printf("%016llx\n", hash);
  return 0;
}
