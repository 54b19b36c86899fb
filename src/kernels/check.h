// The planner's input checks: everything the kernels rely on, checked before anything is allocated.
// Every check mirrors one of the TypeScript side (src/model/network-check.ts for shapes and limits,
// src/qnet/validate.ts for formats, parameters and the accumulator bound), so that a QNet the .zqw
// reader accepts is never refused here, and nothing refused there can reach a kernel from here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace zqint {

struct LayerIn;

// The declared-size limits (the same numbers as LIMITS in src/model/network-check.ts, and the
// ranges of src/qnet/validate.ts; the addon's limits() returns them for a test to compare).
struct Limits {
  int64_t layers = 4096;
  int64_t inputSide = 4096;
  int64_t side = 16384;
  int64_t channels = 65536;
  int64_t tensor = (int64_t)1 << 27;
  int64_t total = (int64_t)1 << 30;
  int64_t convWeights = (int64_t)1 << 27;
  int64_t weights = (int64_t)1 << 28;
  int64_t kernel = 64, stride = 64, pad = 64;
  int64_t inputs = 64;
  int64_t frac = 64;
  int64_t lut = 65536;
  int64_t lutOffset = (int64_t)1 << 20;
  int64_t threads = 64;
};

// Throws Error naming the first problem: layer descriptors (kinds, inputs, shapes by darknet's
// rules, formats, limits) and conv parameters (lengths, fraction-bit ranges, |M| < 2^15, tables,
// and the per-channel bound on |Y| below 2^31).
void checkNet(const std::vector<LayerIn>& layers, int inC, int inH, int inW, const Limits& lim);

}  // namespace zqint
