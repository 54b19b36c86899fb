// Runs a dumped network (netfile.h) without Node: per-layer times on this machine, or, with
// --marks, one frame with a call to zq_mark(i) before each layer, so that an instruction trace
// (scripts/arm64-counts.sh: qemu, single-stepped) can be cut into layers.
//   bench_main <net file> <isa> [--marks] [frames] [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "netfile.h"

using namespace zqint;

extern "C" __attribute__((noinline)) void zq_mark(int i) { asm volatile("" : : "r"(i) : "memory"); }

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_main <net file> <isa> [--marks] [frames] [threads]\n");
    return 2;
  }
  try {
    NetFile nf = readNetFile(argv[1]);
    std::vector<const Kernels*> all = {&kScalar};
#if defined(__x86_64__)
    all.insert(all.end(), {&kAvx2, &kAvx512, &kAvx512Vbmi});
#elif defined(__aarch64__)
    all.insert(all.end(), {&kDotprod, &kNeon});
#endif
    const Kernels* k = nullptr;
    for (const Kernels* c : all)
      if (!strcmp(c->name, argv[2])) k = c;
    if (!k) throw Error{std::string("no instruction set ") + argv[2]};
    int a = 3;
    const bool marks = argc > a && !strcmp(argv[a], "--marks");
    if (marks) a++;
    const int frames = argc > a ? atoi(argv[a]) : 100;
    const int threads = argc > a + 1 ? atoi(argv[a + 1]) : 1;
    Net net(nf.layers, nf.c, nf.h, nf.w, k, marks ? 1 : threads);
    std::vector<uint8_t> rgb((size_t)nf.c * nf.h * nf.w);
    uint32_t s = 12345;
    for (auto& v : rgb) v = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);
    const int L = net.layers();
    if (marks) {
      for (int i = 0; i < L; i++) {
        const Net::Info li = net.info(i);
        printf("%d\t%s\t%lld\n", i, li.kernel.c_str(), (long long)li.macs);
      }
      fflush(stdout);
      zq_mark(-2);
      net.load(rgb.data());
      for (int i = 0; i < L; i++) {
        zq_mark(i);
        net.computeLayer(i);
      }
      zq_mark(-1);
      return 0;
    }
    for (int i = 0; i < 10; i++) net.run(rgb.data());
    std::vector<std::vector<double>> per(L);
    std::vector<double> whole;
    for (int f = 0; f < frames; f++) {
      net.load(rgb.data());
      double sum = 0;
      for (int i = 0; i < L; i++) {
        auto t0 = std::chrono::steady_clock::now();
        net.computeLayer(i);
        const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        per[i].push_back(us);
        sum += us;
      }
      whole.push_back(sum);
    }
    auto med = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    printf("%s, %d thread(s): %.1f us per frame (median of %d)\n", k->name, threads, med(whole), frames);
    for (int i = 0; i < L; i++) {
      const Net::Info li = net.info(i);
      if (li.macs || li.bytes) printf("%4d %-28s %10.1f us %12lld MAC\n", i, li.kernel.c_str(), med(per[i]), (long long)li.macs);
    }
  } catch (const Error& e) {
    fprintf(stderr, "%s\n", e.msg.c_str());
    return 1;
  }
  return 0;
}
