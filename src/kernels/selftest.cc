// Cross-checks every instruction set's kernels against the portable scalar ones on random small
// networks, without Node: for targets this machine cannot run natively (scripts/check-arm64.sh
// builds it with a cross compiler and runs it under qemu). The scalar kernels themselves are
// tested against the JS reference (test/int-layers.test.ts).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "net.h"

using namespace zqint;

namespace {

std::mt19937 rng(12345);
int rnd(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

struct Builder {
  int inC, inH, inW;
  std::vector<LayerIn> layers;
  std::vector<std::vector<int8_t>> q;
  std::vector<std::vector<int32_t>> fw, m, fm, bias;
  std::vector<int> c, h, w;
  int shapeC(int i) { return i < 0 ? inC : c[i]; }
  int shapeH(int i) { return i < 0 ? inH : h[i]; }
  int shapeW(int i) { return i < 0 ? inW : w[i]; }
  int conv(int from, int filters, int k, int stride, int groups, int act, int bits = 8) {
    const int i = (int)layers.size();
    const int pad = k / 2;
    const int H = (shapeH(from) + 2 * pad - k) / stride + 1, W = (shapeW(from) + 2 * pad - k) / stride + 1;
    std::vector<int32_t> d(F_INPUTS + 1, 0);
    d[F_KIND] = K_CONV; d[F_C] = filters; d[F_H] = H; d[F_W] = W; d[F_BITS] = bits; d[F_FRAC] = rnd(-2, 9);
    d[F_ACT] = act; d[F_SIZE] = k; d[F_STRIDE] = stride; d[F_PAD] = pad; d[F_GROUPS] = groups; d[F_NIN] = 1; d[F_INPUTS] = from;
    const int K = shapeC(from) / groups * k * k;
    q.emplace_back(filters * K);
    // Small weights and biases in some layers, so that the kernels' 32-bit fast forms are taken too.
    const int wmax = rnd(0, 1) ? 127 : 3, bmax = wmax == 3 ? 1 << 10 : 1 << 18;
    for (auto& v : q.back()) v = (int8_t)rnd(-wmax, wmax);
    fw.emplace_back(filters); m.emplace_back(filters); fm.emplace_back(filters); bias.emplace_back(filters);
    for (int o = 0; o < filters; o++) {
      fw.back()[o] = rnd(0, 9);
      // Long windows (K > 1000) get M large enough that M*S needs 64 bits (shift >= 2 keeps Y in 32).
      const bool wide = K > 1000;
      m.back()[o] = rnd(0, 3) ? (wmax == 3 ? rnd(-64, 64) : wide ? rnd(-16000, 16000) : rnd(-4096, 4096)) : 0;
      fm.back()[o] = fw.back()[o] + (wide ? rnd(2, 12) : rnd(0, 12));
      bias.back()[o] = rnd(-bmax, bmax);
    }
    layers.push_back({d, {}});
    c.push_back(filters); h.push_back(H); w.push_back(W);
    return i;
  }
  void finish() {
    for (size_t i = 0; i < layers.size(); i++) {
      ConvParamsIn& cp = layers[i].conv;
      cp.q = q[i].data(); cp.qLen = q[i].size(); cp.fw = fw[i].data(); cp.m = m[i].data(); cp.fm = fm[i].data(); cp.bias = bias[i].data();
    }
  }
};

}  // namespace

int main() {
  std::vector<const Kernels*> isas;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) isas.push_back(&kAvx2);
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    isas.push_back(&kAvx512);
    if (__builtin_cpu_supports("avx512vbmi")) isas.push_back(&kAvx512Vbmi);
  }
#elif defined(__aarch64__)
  isas = {&kDotprod, &kNeon};
#endif
  int failures = 0, checks = 0;
  for (int seed = 0; seed < 12; seed++) {
    // Every third network has rows of 40-80 pixels: vectors of 16 full in every kernel.
    Builder b{3, rnd(5, 23), seed % 3 == 0 ? rnd(40, 80) : rnd(5, 23), {}, {}, {}, {}, {}, {}, {}, {}, {}};
    int x = b.conv(-1, 8, 3, 2, 1, A_LEAKY);
    x = b.conv(x, 24, 1, 1, 1, A_LEAKY);
    x = b.conv(x, 24, 3, 1, 24, A_LEAKY);
    x = b.conv(x, 24, 3, 2, 24, A_RELU);
    x = b.conv(x, 13, 1, 1, 1, A_LINEAR);
    x = b.conv(x, 13, 5, 1, 13, A_LEAKY);
    x = b.conv(x, 13, 5, 2, 13, A_RELU);
    x = b.conv(x, 13, 7, 1, 13, A_LEAKY);  // a size without its own instantiation (the runtime-k loops)
    x = b.conv(x, 16, 3, 1, 1, A_LEAKY);
    x = b.conv(x, 16, 1, 1, 2, A_LEAKY);
    x = b.conv(x, 128, 1, 1, 1, A_LEAKY);
    x = b.conv(x, 16, 3, 1, 1, A_LEAKY);  // K = 1152: the 64-bit M*S forms
    x = b.conv(x, 255 % (rnd(0, 1) ? 7 : 255) + 5, 1, 1, 1, A_LINEAR, 16);
    b.finish();
    const int threads = 1 + seed % 2;
    Net ref(b.layers, b.inC, b.inH, b.inW, &kScalar, threads);
    std::vector<uint8_t> rgb(3 * b.inH * b.inW);
    for (auto& v : rgb) v = (uint8_t)rnd(0, 255);
    ref.run(rgb.data());
    for (const Kernels* k : isas) {
      Net net(b.layers, b.inC, b.inH, b.inW, k, threads);
      net.run(rgb.data());
      for (int i = 0; i < (int)b.layers.size(); i++) {
        std::vector<int32_t> a(ref.count(i)), c(net.count(i));
        ref.read(i, a.data());
        net.read(i, c.data());
        checks++;
        if (a != c) {
          size_t j = 0;
          while (a[j] == c[j]) j++;
          printf("FAIL seed %d %s layer %d at %zu: %d vs scalar %d\n", seed, k->name, i, j, c[j], a[j]);
          failures++;
        }
      }
    }
  }
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
