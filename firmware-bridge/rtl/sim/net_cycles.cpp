// The conv layers of a network through the Verilated accelerator, one after the other, on random
// weights and inputs (the accelerator's timing does not depend on the values): cycles and memory-port
// words per layer, each layer also checked against the reference.
// stdin: one layer per line, "index C H W O Ho Wo k stride pad groups flags".
// stdout: one line per layer, "index cycles reads writes macs ok".
// Usage: net_cycles [latency interval]
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "accel_rtl.h"
#include "ref_conv.h"

int main(int argc, char **argv) {
  const uint32_t latency = argc > 1 ? uint32_t(std::atoi(argv[1])) : 4;
  const uint32_t interval = argc > 2 ? uint32_t(std::atoi(argv[2])) : 1;
  const uint32_t mem_bytes = 8u << 20;
  if (rtl_accel_init(mem_bytes) != 0) return 1;
  rtl_accel_mem_timing(latency, interval);
  std::mt19937 rng(1);
  auto rnd = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  uint8_t *mem = rtl_accel_mem();
  int failures = 0;
  char line[256];
  while (std::fgets(line, sizeof line, stdin)) {
    unsigned idx;
    ConvDesc d{};
    if (std::sscanf(line, "%u %u %u %u %u %u %u %u %u %u %u %u", &idx, &d.c, &d.h, &d.w, &d.o, &d.ho, &d.wo,
                    &d.k, &d.stride, &d.pad, &d.groups, &d.flags) != 12)
      continue;
    const uint32_t cg = d.c / d.groups, K = cg * d.k * d.k, bpp = (d.flags & 8) ? 2 : 1;
    const uint64_t in_b = uint64_t(d.c) * d.h * d.w, w_b = uint64_t(d.o) * K, out_b = uint64_t(d.o) * d.ho * d.wo * bpp;
    d.in_addr = 0;
    d.w_addr = uint32_t((in_b + 3) & ~3ull);
    d.p_addr = uint32_t((d.w_addr + w_b + 3) & ~3ull);
    d.out_addr = d.p_addr + 8 * d.o;
    if (d.out_addr + out_b > mem_bytes) {
      std::fprintf(stderr, "layer %u does not fit the test memory\n", idx);
      return 1;
    }
    for (uint64_t i = 0; i < in_b; i++) mem[i] = uint8_t(rnd(0, 255));
    // small weights and parameters keep every layer inside the validation bounds
    for (uint64_t i = 0; i < w_b; i++) mem[d.w_addr + i] = uint8_t(int8_t(rnd(-8, 7)));
    for (uint32_t o = 0; o < d.o; o++) {
      uint8_t *p = mem + d.p_addr + 8 * o;
      const int32_t B = rnd(-20000, 20000);
      const int16_t M = int16_t(rnd(-1000, 1000));
      std::memcpy(p, &B, 4);
      std::memcpy(p + 4, &M, 2);
      p[6] = 10;
      p[7] = uint8_t(int8_t(rnd(4, 9)));
    }
    std::vector<uint8_t> ref;
    ref_conv(mem, d, ref);
    const uint32_t regs[][2] = {{3, d.in_addr}, {4, d.out_addr}, {5, d.w_addr}, {6, d.p_addr}, {7, d.c},
                                {8, d.h},       {9, d.w},        {10, d.o},      {11, d.ho},     {12, d.wo},
                                {13, d.k},      {14, d.stride},  {15, d.pad},    {16, d.groups}, {17, d.flags}};
    for (auto &r : regs) rtl_accel_write(r[0], r[1]);
    rtl_accel_write(0, 1);
    const uint32_t status = rtl_accel_read(1), cycles = rtl_accel_read(2);
    rtl_accel_stats_t st;
    rtl_accel_stats(&st);
    const bool ok = status == 2 && std::memcmp(mem + d.out_addr, ref.data(), ref.size()) == 0;
    if (!ok) failures++;
    std::printf("%u %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %d\n", idx, cycles, st.reads, st.writes,
                uint64_t(d.o) * d.ho * d.wo * K, ok ? 1 : 0);
    std::fflush(stdout);
  }
  return failures ? 1 : 0;
}
