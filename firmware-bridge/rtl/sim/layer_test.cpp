// Random conv layers through the Verilated accelerator, compared byte for byte over the whole memory
// image (so a stray write fails too) with the bridge's C model of the accelerator
// (firmware-bridge/src/accel_model.c) and with a reference written here from
// docs/formats/accelerator.md, plus the error cases of the interface. Usage: layer_test [seed] [layers]
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "accel_rtl.h"
#include "ref_conv.h"
#include "zq_config.h"
extern "C" {
#include "accel_model.h"
}

namespace {

enum Reg : uint32_t {
  CTRL = 0, STATUS, CYCLES, IN_ADDR, OUT_ADDR, W_ADDR, P_ADDR, IN_C, IN_H, IN_W, OUT_C, OUT_H, OUT_W,
  KSIZE, STRIDE, PAD, GROUPS, FLAGS, ID
};

constexpr uint32_t kMem = 4u << 20;
constexpr uint32_t kLanes = ZQ_LANES;
constexpr uint32_t kKmax = ZQ_KMAX;
#ifdef ZQ_SMALL
// the line buffer holds k full rows of every input channel of a group, the weight buffer a channel
constexpr uint32_t kLbBytes = ZQ_LB_BYTES;
constexpr uint32_t kWbBytes = ZQ_WB_BYTES;
#else
// the line buffer holds k rows of a column tile, each (s + 1) words of LANES bytes per channel
constexpr uint32_t kLbWords = ZQ_LB_WORDS;
constexpr uint32_t kWbBytes = ZQ_WB_WORDS * ZQ_LANES;
#endif

std::mt19937_64 rng;

int64_t rnd(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

// Does the layer fit this build's buffers (else the accelerator answers error 1)?
bool fits(const ConvDesc &d) {
  const uint32_t cg = d.c / d.groups;
#ifdef ZQ_SMALL
  return cg * d.k * d.k <= kWbBytes && uint64_t(d.k) * cg * d.w <= kLbBytes;
#else
  const uint32_t e = d.k > 1 ? 1 : 0;
  return cg * d.k * d.k <= kWbBytes && cg * d.k * (d.stride + e) <= kLbWords;
#endif
}

uint32_t out_dim(uint32_t in, uint32_t k, uint32_t s, uint32_t pad) { return (in + 2 * pad - k) / s + 1; }

// A random layer shape; `kind` picks the family.
ConvDesc random_shape(int kind) {
  ConvDesc d{};
  for (;;) {
    d.k = std::vector<uint32_t>{1, 1, 3, 3, 3, 5, 2, 4}[rnd(0, 7)];
    if (d.k > kKmax) continue;
    d.stride = chance(0.3) ? 2 : 1;
    d.pad = chance(0.7) ? d.k / 2 : rnd(0, d.k - 1);
    d.h = rnd(1, 24);
    d.w = rnd(1, 40);
    d.c = rnd(1, 24);
    d.o = rnd(1, 24);
    d.groups = 1;
    d.flags = 0;
    switch (kind) {
      case 0:  // general, grouped
        if (chance(0.4)) {
          const uint32_t g = rnd(1, 6);
          d.c = g * rnd(1, 6);
          d.o = g * rnd(1, 6);
          d.groups = g;
        }
        break;
      case 1:  // depthwise, as in Yolo-Fastest
        d.c = d.o = d.groups = rnd(1, 40);
        d.k = chance(0.5) ? 3 : 5;
        if (d.k > kKmax) d.k = 3;
        d.pad = d.k / 2;
        break;
      case 2:  // pointwise: one long row inside the accelerator
        d.k = 1; d.stride = 1; d.pad = 0;
        d.c = rnd(1, 120);
        d.o = rnd(1, 60);
        break;
      case 3:  // the first layer: uint8 frame
        d.c = 3; d.k = 3; d.stride = 2; d.pad = 1;
        d.o = rnd(1, 16);
        d.h = rnd(4, 40);
        d.w = rnd(4, 120);
        d.flags |= 1;
        break;
      case 4:  // wide rows: several column tiles
        d.w = rnd(100, 700);
        d.h = rnd(1, 6);
        d.c = rnd(1, 12);
        if (chance(0.5)) d.groups = d.c, d.o = d.c;
        break;
      case 5:  // many output channels: several weight chunks
        d.c = rnd(16, 96);
        d.o = rnd(48, 300);
        d.k = chance(0.5) ? 1 : 3;
        d.pad = d.k / 2;
        d.h = rnd(1, 6);
        d.w = rnd(1, 12);
        break;
    }
    if (d.h + 2 * d.pad < d.k || d.w + 2 * d.pad < d.k) continue;
    d.ho = out_dim(d.h, d.k, d.stride, d.pad);
    d.wo = out_dim(d.w, d.k, d.stride, d.pad);
    // the firmware gives Ho and Wo; a smaller or larger one must work too (reads outside are 0)
    if (chance(0.05)) d.ho = rnd(1, d.ho + 2);
    if (chance(0.05)) d.wo = rnd(1, d.wo + 2);
    if (chance(0.15)) d.flags |= 1;
    d.flags |= uint32_t(rnd(0, 2)) << 1;
    if (chance(0.2)) d.flags |= 8;
    if (fits(d)) return d;
  }
}

uint32_t align4(uint64_t v) { return uint32_t((v + 3) & ~uint64_t(3)); }

struct Stats {
  int layers = 0, failures = 0, errors_checked = 0;
  uint64_t cycles = 0, macs = 0;
};

// Writes a random layer (weights, parameters within the validation bounds, input) into the memory,
// runs it, compares.
bool run_layer(const ConvDesc &shape, int kind, Stats &st, bool verbose) {
  ConvDesc d = shape;
  uint8_t *mem = rtl_accel_mem();
  const bool u8 = d.flags & 1;
  const uint32_t cg = d.c / d.groups, kk = d.k * d.k, K = cg * kk;
  const uint32_t bpp = (d.flags & 8) ? 2 : 1;
  const uint64_t in_bytes = uint64_t(d.c) * d.h * d.w, w_bytes = uint64_t(d.o) * K, p_bytes = 8ull * d.o,
                 out_bytes = uint64_t(d.o) * d.ho * d.wo * bpp;
  // layout with random gaps, in a random order
  uint32_t addr = align4(rnd(0, 64) * 4);
  uint32_t *bases[4] = {&d.in_addr, &d.w_addr, &d.p_addr, &d.out_addr};
  const uint64_t sizes[4] = {in_bytes, w_bytes, p_bytes, out_bytes};
  int order[4] = {0, 1, 2, 3};
  std::shuffle(order, order + 4, rng);
  for (int i : order) {
    *bases[i] = addr;
    addr = align4(addr + sizes[i] + rnd(0, 3) * 4);
  }
  const uint32_t top = addr + 64;
  if (top > kMem) return true;  // too large for the test memory: skip

  for (uint32_t i = 0; i < top; i++) mem[i] = uint8_t(rnd(0, 255));
  // input: random, sometimes at the extremes
  const int xmode = rnd(0, 9);
  for (uint64_t i = 0; i < in_bytes; i++) {
    uint8_t v = uint8_t(rnd(0, 255));
    if (xmode == 0) v = u8 ? 255 : 127;
    if (xmode == 1) v = u8 ? 0 : 0x80;
    if (xmode == 2 && chance(0.5)) v = chance(0.5) ? 0x7f : 0x80;
    mem[d.in_addr + i] = v;
  }
  // weights of Nw bits
  const int nw = int(rnd(2, 8));
  const int64_t qmax = (1 << (nw - 1)) - 1, qmin = -(1 << (nw - 1));
  for (uint64_t i = 0; i < w_bytes; i++) mem[d.w_addr + i] = uint8_t(int8_t(rnd(qmin, qmax)));
  // parameters within the bounds validation guarantees: sum|Q|*xmax + |T|max + |B| < 2^31
  const int64_t xmax = u8 ? 255 : 128;
  for (uint32_t o = 0; o < d.o; o++) {
    int64_t sumq = 0;
    for (uint32_t i = 0; i < K; i++) sumq += std::abs(int64_t(int8_t(mem[d.w_addr + uint64_t(o) * K + i])));
    int64_t M = rnd(-32767, 32767);
    if (chance(0.1)) M = chance(0.5) ? 32767 : -32767;
    if (chance(0.1)) M = 0;
    int ts = int(rnd(-32, 63));
    if (chance(0.4)) ts = int(rnd(0, 20));
    auto tmax = [&](int t) -> long double {
      const long double ms = (long double)std::llabs(M) * K * xmax;
      return t >= 0 ? std::ceil(ms / std::ldexp(1.0L, t)) + 1 : ms * std::ldexp(1.0L, -t);
    };
    const long double lim = 2147483647.0L;
    while ((long double)sumq * xmax + tmax(ts) >= lim) ts++;
    const int64_t budget = int64_t(lim - (long double)sumq * xmax - tmax(ts));
    int64_t B = 0;
    if (budget > 0) {
      const int bitsb = int(rnd(0, 31));
      const int64_t span = std::min<int64_t>(budget, (int64_t(1) << bitsb));
      B = rnd(-span, span);
      if (chance(0.03)) B = chance(0.5) ? budget : -budget;
    }
    // output shift: near the scale of Y mostly, sometimes extreme (saturation, all rounding)
    const double ymag = std::max(1.0, std::sqrt(double(K)) * double(qmax) * (u8 ? 128.0 : 50.0));
    int os = int(std::lround(std::log2(ymag))) - 7 + int(rnd(-3, 3));
    if (chance(0.15)) os = int(rnd(-16, 63));
    if (chance(0.05)) os = chance(0.5) ? -16 : 63;
    if (os < -16) os = -16;
    if (os > 63) os = 63;
    if (std::getenv("PARAMS")) {
      // debugging: fixed parameters "B M TS OS"
      long vb, vm; int vts, vos;
      std::sscanf(std::getenv("PARAMS"), "%ld %ld %d %d", &vb, &vm, &vts, &vos);
      B = vb; M = vm; ts = vts; os = vos;
    }
    if (std::getenv("DUMP") && o == 0) std::printf("o0: B %ld M %ld TS %d OS %d sumq %ld\n", (long)B, (long)M, ts, os, (long)sumq);
    uint8_t *pp = mem + d.p_addr + 8 * o;
    const uint32_t b32 = uint32_t(int32_t(B));
    for (int i = 0; i < 4; i++) pp[i] = uint8_t(b32 >> (8 * i));
    pp[4] = uint8_t(uint16_t(int16_t(M)));
    pp[5] = uint8_t(uint16_t(int16_t(M)) >> 8);
    pp[6] = uint8_t(int8_t(ts));
    pp[7] = uint8_t(int8_t(os));
  }

  std::vector<uint8_t> expect(mem, mem + top), ref;
  ref_conv(expect.data(), d, ref);
  std::memcpy(expect.data() + d.out_addr, ref.data(), ref.size());
  // a wrong expectation must be caught (the comparison itself is tested)
  if (std::getenv("PERTURB")) expect[d.out_addr + ref.size() - 1] ^= 1;

  uint32_t lat = uint32_t(rnd(1, 12)), interval = chance(0.7) ? 1 : uint32_t(rnd(2, 3));
  if (std::getenv("LAT")) lat = uint32_t(std::atoi(std::getenv("LAT")));
  if (std::getenv("INTERVAL")) interval = uint32_t(std::atoi(std::getenv("INTERVAL")));
  rtl_accel_mem_timing(lat, interval);
  const uint32_t regs[][2] = {{IN_ADDR, d.in_addr}, {OUT_ADDR, d.out_addr}, {W_ADDR, d.w_addr},
                              {P_ADDR, d.p_addr},   {IN_C, d.c},           {IN_H, d.h},
                              {IN_W, d.w},          {OUT_C, d.o},          {OUT_H, d.ho},
                              {OUT_W, d.wo},        {KSIZE, d.k},          {STRIDE, d.stride},
                              {PAD, d.pad},         {GROUPS, d.groups},    {FLAGS, d.flags}};
  // the bridge's C model on a copy of the same memory image
  std::vector<uint8_t> model_mem(mem, mem + top);
  model_accel_attach(model_mem.data(), top);
  for (auto &r : regs) model_accel_write(r[0], r[1]);
  model_accel_write(CTRL, 1);
  const uint32_t model_status = model_accel_read(STATUS);
  for (auto &r : regs) rtl_accel_write(r[0], r[1]);
  rtl_accel_write(CTRL, 1);
  const uint32_t status = rtl_accel_read(STATUS);
  const uint32_t cycles = rtl_accel_read(CYCLES);
  rtl_accel_stats_t ps;
  rtl_accel_stats(&ps);
  st.layers++;
  st.cycles += cycles;
  st.macs += uint64_t(d.o) * d.ho * d.wo * K;
  char desc[256];
  std::snprintf(desc, sizeof desc,
                "kind %d: %ux%ux%u -> %ux%ux%u k%u s%u p%u g%u flags %x (u8 %d act %u 16bit %d) nw %d mem %u/%u",
                kind, d.c, d.h, d.w, d.o, d.ho, d.wo, d.k, d.stride, d.pad, d.groups, d.flags, u8,
                (d.flags >> 1) & 3, (d.flags >> 3) & 1, nw, lat, interval);
  bool ok = status == 2 && model_status == 2 && ps.out_of_range == 0;
  size_t bad = 0, first_bad = 0, model_bad = 0, ref_bad = 0;
  for (uint32_t i = 0; i < top; i++) {
    if (model_mem[i] != expect[i]) ref_bad++;   // the two references disagree
    if (mem[i] != model_mem[i]) model_bad++;
    if (mem[i] != expect[i]) {
      if (!bad) first_bad = i;
      bad++;
    }
  }
  if (bad || model_bad || ref_bad) ok = false;
  if (!ok) {
    st.failures++;
    std::printf("FAIL %s: status %#x (model %#x), %zu bytes differ (%zu from the model; model vs reference %zu)",
                desc, status, model_status, bad, model_bad, ref_bad);
    if (bad) {
      const bool in_out = first_bad >= d.out_addr && first_bad < d.out_addr + out_bytes;
      std::printf(", first at %#zx (%s, got %02x want %02x)", first_bad,
                  in_out ? "output" : "outside the output", mem[first_bad], expect[first_bad]);
      if (in_out) {
        const size_t px = (first_bad - d.out_addr) / bpp;
        std::printf(" o %zu y %zu x %zu", px / (d.ho * d.wo), px / d.wo % d.ho, px % d.wo);
      }
    }
    std::printf("\n");
  } else if (verbose) {
    std::printf("ok   %s: %u cycles, %" PRIu64 " reads, %" PRIu64 " writes\n", desc, cycles, ps.reads,
                ps.writes);
  }
  return ok;
}

// A layer the interface must refuse with `code`, leaving the memory as it was.
void expect_error(const char *what, ConvDesc d, uint32_t code, Stats &st) {
  uint8_t *mem = rtl_accel_mem();
  std::vector<uint8_t> before(mem, mem + 4096);
  const uint32_t regs[][2] = {{IN_ADDR, d.in_addr}, {OUT_ADDR, d.out_addr}, {W_ADDR, d.w_addr},
                              {P_ADDR, d.p_addr},   {IN_C, d.c},           {IN_H, d.h},
                              {IN_W, d.w},          {OUT_C, d.o},          {OUT_H, d.ho},
                              {OUT_W, d.wo},        {KSIZE, d.k},          {STRIDE, d.stride},
                              {PAD, d.pad},         {GROUPS, d.groups},    {FLAGS, d.flags}};
  for (auto &r : regs) rtl_accel_write(r[0], r[1]);
  rtl_accel_write(CTRL, 1);
  const uint32_t status = rtl_accel_read(STATUS);
  const uint32_t want = 6u | (code << 8);  // done, error, the code
  st.errors_checked++;
  if (status != want || std::memcmp(before.data(), mem, before.size()) != 0) {
    st.failures++;
    std::printf("FAIL error case %s: status %#x, want %#x%s\n", what, status, want,
                std::memcmp(before.data(), mem, before.size()) ? " (memory changed)" : "");
  }
}

void error_cases(Stats &st) {
  ConvDesc ok{};
  ok.in_addr = 0; ok.w_addr = 1024; ok.p_addr = 2048; ok.out_addr = 3072;
  ok.c = 4; ok.h = 5; ok.w = 6; ok.o = 4; ok.ho = 5; ok.wo = 6; ok.k = 3; ok.stride = 1; ok.pad = 1;
  ok.groups = 1; ok.flags = 2;
  struct { const char *what; void (*edit)(ConvDesc &); uint32_t code; } cases[] = {
    {"k 0", [](ConvDesc &d) { d.k = 0; }, 1},
    {"k past KMAX", [](ConvDesc &d) { d.k = kKmax + 1; d.pad = 0; }, 1},
    {"stride 3", [](ConvDesc &d) { d.stride = 3; }, 1},
    {"stride 0", [](ConvDesc &d) { d.stride = 0; }, 1},
    {"pad = k", [](ConvDesc &d) { d.pad = 3; }, 1},
    {"groups 0", [](ConvDesc &d) { d.groups = 0; }, 1},
    {"C not divisible by G", [](ConvDesc &d) { d.groups = 3; d.o = 3; }, 1},
    {"O not divisible by G", [](ConvDesc &d) { d.groups = 2; d.o = 3; }, 1},
    {"height 0", [](ConvDesc &d) { d.h = 0; }, 1},
    {"output width 0", [](ConvDesc &d) { d.wo = 0; }, 1},
    {"width 2^16", [](ConvDesc &d) { d.w = 65536; }, 1},
    {"activation 3", [](ConvDesc &d) { d.flags = 6; }, 1},
    {"weights of a channel past the weight buffer",
     [](ConvDesc &d) { d.c = kWbBytes / 9 + 1; d.groups = 1; d.in_addr = 0; }, 1},
#ifdef ZQ_SMALL
    {"rows past the line buffer",
     [](ConvDesc &d) { d.k = kKmax; d.pad = 0; d.stride = 2; d.c = 2; d.h = 9; d.w = kLbBytes / (2 * kKmax) + 1; d.ho = 3; d.wo = 3; }, 1},
#else
    {"rows past the line buffer",
     [](ConvDesc &d) { d.k = kKmax; d.pad = 0; d.stride = 2; d.c = kLbWords / (kKmax * 3) + 1; d.h = 9; d.w = 9; d.ho = 3; d.wo = 3; }, 1},
#endif
    {"input past the memory", [](ConvDesc &d) { d.in_addr = kMem - 64; }, 2},
    {"output past the memory", [](ConvDesc &d) { d.out_addr = kMem - 100; }, 2},
    {"16-bit output past the memory", [](ConvDesc &d) { d.out_addr = kMem - 200; d.flags = 8; }, 2},
    {"weights past the memory", [](ConvDesc &d) { d.w_addr = kMem - 100; }, 2},
    {"parameters past the memory", [](ConvDesc &d) { d.p_addr = kMem - 24; }, 2},
    {"input wrapping around 2^32", [](ConvDesc &d) { d.in_addr = 0xfffffff0u; }, 2},
    {"an unaligned output base", [](ConvDesc &d) { d.out_addr = 3074; }, 2},
    {"an unaligned parameter base", [](ConvDesc &d) { d.p_addr = 2049; }, 2},
  };
  for (auto &c : cases) {
    ConvDesc d = ok;
    c.edit(d);
    expect_error(c.what, d, c.code, st);
  }
}

}  // namespace

int main(int argc, char **argv) {
  const uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 1;
  const int count = argc > 2 ? std::atoi(argv[2]) : 200;
  const bool verbose = std::getenv("VERBOSE") != nullptr;
  rng.seed(seed);
  if (rtl_accel_init(kMem) != 0) {
    std::printf("FAIL init\n");
    return 1;
  }
  Stats st;
  if (argc > 1 && std::string(argv[1]) == "one") {
    // one layer from the command line: one C H W O k s pad G flags [seed]
    ConvDesc d{};
    uint32_t *f[] = {&d.c, &d.h, &d.w, &d.o, &d.k, &d.stride, &d.pad, &d.groups, &d.flags};
    for (int i = 0; i < 9 && i + 2 < argc; i++) *f[i] = uint32_t(std::strtoul(argv[i + 2], nullptr, 0));
    if (argc > 11) rng.seed(std::strtoull(argv[11], nullptr, 0));
    if (d.k == 0 || d.stride == 0 || d.h + 2 * d.pad < d.k || d.w + 2 * d.pad < d.k) {
      std::printf("no output for this shape\n");
      return 2;
    }
    d.ho = out_dim(d.h, d.k, d.stride, d.pad);
    d.wo = out_dim(d.w, d.k, d.stride, d.pad);
    const bool ok = run_layer(d, -1, st, true);
    return ok ? 0 : 1;
  }
  const uint32_t id = rtl_accel_read(ID);
  if ((id & 0xff) != 1 || ((id >> 8) & 0xff) != kKmax || (id >> 16) != kLanes) {
    std::printf("FAIL ID register %#x\n", id);
    st.failures++;
  }
  error_cases(st);
  // a good layer still runs after the refused ones
  for (int i = 0; i < count; i++) {
    const int kind = i % 6;
    run_layer(random_shape(kind), kind, st, verbose);
  }
  std::printf("%d layers, %d error cases, %d failures; %" PRIu64 " cycles for %" PRIu64
              " MACs (%.2f MAC/cycle), seed %" PRIu64 ", %u lanes\n",
              st.layers, st.errors_checked, st.failures, st.cycles, st.macs,
              st.cycles ? double(st.macs) / double(st.cycles) : 0.0, seed, kLanes);
  if (st.failures == 0) std::printf("all layers bit-exact: RTL = the bridge's C model = reference\n");
  return st.failures ? 1 : 0;
}
