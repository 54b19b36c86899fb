// The C shim around the Verilated model: register access, the external memory with a configurable
// latency and request interval, and a clock that runs while the accelerator is busy.
#include "accel_rtl.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "Vzq_accel.h"
#include "verilated.h"
#ifdef ZQ_TRACE
#include "verilated_vcd_c.h"
#endif

namespace {

struct Response {
  uint64_t due;
  uint32_t data;
};

struct Sim {
  std::unique_ptr<VerilatedContext> ctx;
  std::unique_ptr<Vzq_accel> top;
  std::vector<uint8_t> mem;
  std::deque<Response> pending;
  uint64_t cycle = 0;
  uint64_t last_accept = 0;
  uint32_t latency = 4;
  uint32_t interval = 1;
  rtl_accel_stats_t stats{};
#ifdef ZQ_TRACE
  std::unique_ptr<VerilatedVcdC> vcd;
#endif
};

Sim *sim = nullptr;

uint32_t env_u32(const char *name, uint32_t dflt) {
  const char *v = std::getenv(name);
  if (!v || !*v) return dflt;
  return static_cast<uint32_t>(std::strtoul(v, nullptr, 0));
}

// One clock cycle: present this cycle's memory inputs, serve the request the RTL makes, clock edge.
void tick() {
  Vzq_accel &t = *sim->top;
  const bool ready = sim->cycle - sim->last_accept >= sim->interval || sim->cycle == 0;
  t.mem_ready = ready;
  if (!sim->pending.empty() && sim->pending.front().due <= sim->cycle) {
    t.mem_rvalid = 1;
    t.mem_rdata = sim->pending.front().data;
    sim->pending.pop_front();
  } else {
    t.mem_rvalid = 0;
    t.mem_rdata = 0xdeadbeef;
  }
  t.clk = 0;
  t.eval();
  if (t.mem_valid && ready) {
    sim->last_accept = sim->cycle;
    const uint64_t byte = static_cast<uint64_t>(t.mem_addr) * 4;
    const bool inside = byte + 4 <= sim->mem.size();
    if (!inside) sim->stats.out_of_range++;
    if (t.mem_we) {
      sim->stats.writes++;
      if (inside)
        for (int i = 0; i < 4; i++)
          if (t.mem_wstrb & (1u << i)) sim->mem[byte + i] = static_cast<uint8_t>(t.mem_wdata >> (8 * i));
    } else {
      sim->stats.reads++;
      uint32_t w = 0;
      if (inside) std::memcpy(&w, &sim->mem[byte], 4);
      sim->pending.push_back({sim->cycle + sim->latency, w});
    }
  }
  t.clk = 1;
  t.eval();
#ifdef ZQ_TRACE
  if (sim->vcd) {
    sim->vcd->dump(sim->cycle * 2);
  }
#endif
  sim->cycle++;
  sim->ctx->timeInc(1);
}

}  // namespace

extern "C" {

int rtl_accel_init(uint32_t mem_bytes) {
  if (mem_bytes < 4) return -1;
  if (!sim) {
    sim = new Sim();
    sim->ctx = std::make_unique<VerilatedContext>();
    sim->top = std::make_unique<Vzq_accel>(sim->ctx.get());
    sim->latency = env_u32("ZQ_RTL_MEM_LATENCY", 4);
    sim->interval = env_u32("ZQ_RTL_MEM_INTERVAL", 1);
    if (sim->latency < 1) sim->latency = 1;
    if (sim->interval < 1) sim->interval = 1;
#ifdef ZQ_TRACE
    if (const char *path = std::getenv("ZQ_RTL_VCD")) {
      Verilated::traceEverOn(true);
      sim->vcd = std::make_unique<VerilatedVcdC>();
      sim->top->trace(sim->vcd.get(), 99);
      sim->vcd->open(path);
    }
#endif
  }
  sim->mem.assign(mem_bytes & ~3u, 0);
  sim->pending.clear();
  Vzq_accel &t = *sim->top;
  t.mem_bytes = static_cast<uint32_t>(sim->mem.size());
  t.reg_we = 0;
  t.rst = 1;
  for (int i = 0; i < 4; i++) tick();
  t.rst = 0;
  tick();
  return 0;
}

void rtl_accel_mem_timing(uint32_t latency, uint32_t interval) {
  if (!sim) return;
  sim->latency = latency < 1 ? 1 : latency;
  sim->interval = interval < 1 ? 1 : interval;
}

void rtl_accel_write(uint32_t reg, uint32_t value) {
  if (!sim) return;
  Vzq_accel &t = *sim->top;
  const bool starts = reg == 0 && (value & 1) && !t.busy;
  t.reg_we = 1;
  t.reg_addr = reg & 31;
  t.reg_wdata = value;
  tick();
  t.reg_we = 0;
  if (!starts) return;
  std::memset(&sim->stats, 0, sizeof sim->stats);
  // The layer runs to its end here: a generous bound on its cycles catches a hung design.
  const uint64_t limit = env_u32("ZQ_RTL_MAX_CYCLES", 2000000000u);
  uint64_t n = 0;
  while (t.busy && n < limit) {
    tick();
    n++;
  }
  if (t.busy) std::fprintf(stderr, "accel_rtl: layer still busy after %llu cycles\n", (unsigned long long)n);
  sim->stats.cycles = n;
}

uint32_t rtl_accel_read(uint32_t reg) {
  if (!sim) return 0;
  Vzq_accel &t = *sim->top;
  // the read data is valid the cycle after the address (the small core reads block RAM); reads come
  // while the accelerator is idle, so the extra cycle is not counted
  t.reg_addr = reg & 31;
  tick();
  return t.reg_rdata;
}

uint8_t *rtl_accel_mem(void) { return sim ? sim->mem.data() : nullptr; }

uint32_t rtl_accel_mem_size(void) { return sim ? static_cast<uint32_t>(sim->mem.size()) : 0; }

void rtl_accel_stats(rtl_accel_stats_t *out) {
  if (sim && out) *out = sim->stats;
}

}  // extern "C"
