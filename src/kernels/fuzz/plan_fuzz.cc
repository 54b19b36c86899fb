// libFuzzer target of the native planner and its input checks (scripts/fuzz-native.sh builds it
// with -fsanitize=fuzzer,address,undefined). From the fuzz bytes it builds a network of up to 12
// layers — mostly well-formed (shapes by darknet's rules, parameters in ranges that usually pass
// the accumulator bound) with fields overwritten by arbitrary values — and then:
//   - checkNet refuses it (fine), or
//   - the planner must build it (a refusal after the checks passed is a bug: abort), and a frame
//     must run through every kernel and every layer output be readable, without ASan/UBSan reports.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../check.h"
#include "../net.h"

using namespace zqint;

namespace {

// Shapes in 64 bits: the fields of earlier layers may hold any int32 after the fuzzer overwrote them.
struct Shape {
  int64_t c, h, w;
};

int32_t clamp32(int64_t v) { return (int32_t)(v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : v); }

std::vector<const Kernels*> kernelSets() {
  std::vector<const Kernels*> v{&kScalar};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v.push_back(&kAvx2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vnni")) {
    v.push_back(&kAvx512);
    if (__builtin_cpu_supports("avx512vbmi")) v.push_back(&kAvx512Vbmi);
  }
#endif
  return v;
}

int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

// Inputs refused by the checks and networks planned and run, printed when the fuzzer exits.
size_t refusedCount = 0, plannedCount = 0;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("ZEROQ_INT_PARALLEL_MIN", "0", 1);  // split even tiny layers between threads
  atexit([] { fprintf(stderr, "plan_fuzz: %zu inputs refused by the checks, %zu networks planned and run\n", refusedCount, plannedCount); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  static const std::vector<const Kernels*> sets = kernelSets();
  const Kernels* kernels = sets[fdp.ConsumeIntegralInRange<size_t>(0, sets.size() - 1)];
  const int threads = fdp.ConsumeIntegralInRange(1, 3);
  const int inC = fdp.ConsumeProbability<float>() < 0.97f ? 3 : fdp.ConsumeIntegral<int>();
  const int inH = fdp.ConsumeIntegralInRange(1, 20), inW = fdp.ConsumeIntegralInRange(1, 20);
  const int n = fdp.ConsumeIntegralInRange(1, 12);

  std::vector<LayerIn> layers(n);
  std::vector<std::vector<int8_t>> q(n);
  std::vector<std::vector<int32_t>> fw(n), m(n), fm(n), bias(n), lut(n);
  std::vector<Shape> out(n);
  auto shapeOf = [&](int j) { return j < 0 ? Shape{inC, inH, inW} : out[j]; };
  auto pickInput = [&](int i) { return fdp.ConsumeProbability<float>() < 0.8f ? i - 1 : fdp.ConsumeIntegralInRange(-1, i - 1); };

  for (int i = 0; i < n; i++) {
    std::vector<int32_t> d(F_INPUTS, 0);
    const int kind = i == 0 && fdp.ConsumeProbability<float>() < 0.9f ? K_CONV : fdp.ConsumeIntegralInRange(0, (int)K_YOLO);
    std::vector<int> in;
    if (kind == K_ROUTE) {
      const int k = fdp.ConsumeIntegralInRange(1, 3);
      for (int j = 0; j < k; j++) in.push_back(pickInput(i));
    } else if (kind == K_SHORTCUT) {
      in.push_back(i - 1);
      const int k = fdp.ConsumeIntegralInRange(1, 2);
      for (int j = 0; j < k; j++) in.push_back(fdp.ConsumeIntegralInRange(-1, i - 1));
    } else {
      in.push_back(kind == K_CONV ? pickInput(i) : i - 1);
    }
    const Shape s = shapeOf(in[0]);
    Shape o = s;
    d[F_KIND] = kind;
    d[F_BITS] = fdp.ConsumeProbability<float>() < 0.8f ? 8 : 16;
    d[F_FRAC] = fdp.ConsumeIntegralInRange(-4, 12);
    switch (kind) {
      case K_CONV: {
        const int k = fdp.ConsumeIntegralInRange(1, 5), st = fdp.ConsumeIntegralInRange(1, 3), pad = fdp.ConsumeIntegralInRange(0, k / 2 + 1);
        int g = fdp.ConsumeIntegralInRange(1, 4);
        if (fdp.ConsumeBool()) g = s.c;  // depthwise
        const int64_t O = fdp.ConsumeBool() ? s.c : fdp.ConsumeIntegralInRange(1, 20);
        o = {O, floorDiv(s.h + 2 * pad - k, st) + 1, floorDiv(s.w + 2 * pad - k, st) + 1};
        d[F_SIZE] = k, d[F_STRIDE] = st, d[F_PAD] = pad, d[F_GROUPS] = g;
        d[F_ACT] = fdp.ConsumeIntegralInRange(0, 3);
        d[F_LUTSHIFT] = fdp.ConsumeIntegralInRange(-4, 12);
        d[F_LUTOFFSET] = fdp.ConsumeIntegralInRange(-8, 300);
        const size_t K = s.c > 0 && s.c <= 4096 && s.c % g == 0 ? (size_t)(s.c / g) * k * k : 1;
        if (O > 0 && K * O < 100000) {
          const bool wide = fdp.ConsumeProbability<float>() < 0.1f;
          q[i].resize(K * O);
          for (auto& v : q[i]) v = wide ? fdp.ConsumeIntegral<int8_t>() : (int8_t)fdp.ConsumeIntegralInRange(-3, 3);
          for (int64_t c = 0; c < O; c++) {
            const int f = fdp.ConsumeIntegralInRange(-2, 12);
            fw[i].push_back(f);
            m[i].push_back(fdp.ConsumeProbability<float>() < 0.5f ? 0 : fdp.ConsumeIntegralInRange(-1024, 1024));
            fm[i].push_back(f + fdp.ConsumeIntegralInRange(-6, 14));
            bias[i].push_back(fdp.ConsumeIntegralInRange(-(1 << 16), 1 << 16));
          }
          lut[i].resize(fdp.ConsumeIntegralInRange(1, 300));
          for (auto& v : lut[i]) v = fdp.ConsumeIntegralInRange(d[F_BITS] == 8 ? -128 : -32768, d[F_BITS] == 8 ? 127 : 32767);
        }
        break;
      }
      case K_MAXPOOL: {
        const int k = fdp.ConsumeIntegralInRange(1, 4), st = fdp.ConsumeIntegralInRange(1, 3), p = fdp.ConsumeIntegralInRange(0, 2 * k);
        d[F_SIZE] = k, d[F_STRIDE] = st, d[F_PAD] = p;
        o = {s.c, floorDiv(s.h + p - k, st) + 1, floorDiv(s.w + p - k, st) + 1};
        break;
      }
      case K_ROUTE: {
        const int g = fdp.ConsumeIntegralInRange(1, 2);
        d[F_GROUPS] = g, d[F_GROUPID] = fdp.ConsumeIntegralInRange(0, g - 1);
        o.c = 0;
        for (int j : in) o.c += shapeOf(j).c / g;
        break;
      }
      case K_SHORTCUT:
        d[F_ACT] = fdp.ConsumeIntegralInRange(0, 3);
        break;
      case K_UPSAMPLE: {
        const int st = fdp.ConsumeIntegralInRange(1, 3);
        d[F_STRIDE] = st;
        o = {s.c, s.h * st, s.w * st};
        break;
      }
      default:
        break;
    }
    // Formats that the rules tie to the input, mostly kept.
    if ((kind == K_MAXPOOL || kind == K_UPSAMPLE || kind == K_DROPOUT) && in[0] >= 0 && fdp.ConsumeProbability<float>() < 0.9f) {
      d[F_BITS] = layers[in[0]].desc[F_BITS], d[F_FRAC] = layers[in[0]].desc[F_FRAC];
    }
    if (kind == K_YOLO) d[F_BITS] = 8, d[F_FRAC] = 0;
    d[F_C] = clamp32(o.c), d[F_H] = clamp32(o.h), d[F_W] = clamp32(o.w);
    d[F_NIN] = (int)in.size();
    for (int j : in) d.push_back(j);
    // Now and then any field of the descriptor takes any value.
    for (int e = 0; e < 3 && fdp.remaining_bytes() > 0 && fdp.ConsumeProbability<float>() < 0.15f; e++)
      d[fdp.ConsumeIntegralInRange<size_t>(0, d.size() - 1)] = fdp.ConsumeIntegral<int32_t>();
    out[i] = {d[F_C], d[F_H], d[F_W]};
    layers[i].desc = d;
    if (kind == K_CONV && !fw[i].empty()) {
      ConvParamsIn& cp = layers[i].conv;
      if (fdp.ConsumeProbability<float>() < 0.05f) fw[i][0] = fdp.ConsumeIntegral<int32_t>();
      if (fdp.ConsumeProbability<float>() < 0.05f) m[i][0] = fdp.ConsumeIntegral<int32_t>();
      if (fdp.ConsumeProbability<float>() < 0.05f) bias[i][0] = fdp.ConsumeIntegral<int32_t>();
      cp.q = q[i].data(), cp.qLen = q[i].size();
      cp.fw = fw[i].data(), cp.m = m[i].data(), cp.fm = fm[i].data(), cp.bias = bias[i].data();
      cp.lut = lut[i].data(), cp.lutLen = lut[i].size();
    }
  }

  Limits small;  // the fuzzer's budget: small networks, many of them
  small.side = 128, small.tensor = 1 << 16, small.total = 1 << 18, small.convWeights = 1 << 16, small.weights = 1 << 18;
  try {
    checkNet(layers, inC, inH, inW, small);
  } catch (const Error&) {
    refusedCount++;
    return 0;
  }
  Net* net = nullptr;
  try {
    net = new Net(layers, inC, inH, inW, kernels, threads);
  } catch (const Error& e) {
    fprintf(stderr, "the planner refused a network its checks accepted: %s\n", e.msg.c_str());
    abort();
  }
  std::vector<uint8_t> frame(net->inputBytes());
  for (auto& b : frame) b = fdp.ConsumeIntegral<uint8_t>();
  net->run(frame.data());
  std::vector<int32_t> buf;
  for (int i = 0; i < net->layers(); i++) {
    buf.resize(net->count(i));
    net->read(i, buf.data());
  }
  delete net;
  plannedCount++;
  return 0;
}
