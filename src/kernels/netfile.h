// A planned network's inputs in one file, for native tools that run without Node (bench_main.cc):
// little-endian int32 words: layers, c, h, w; then per layer: the descriptor length and words
// (plan.h Field order), a flag for conv parameters, and when set: len(q), O, len(lut), q (bytes,
// padded to a multiple of 4), fw, m, fm, bias (O words each), lut. Written by
// scripts/int-net-dump.ts from a .zqw with the engine's own descriptors.
#pragma once
#include <cstdio>
#include <cstdint>
#include <string>
#include <vector>

#include "net.h"

namespace zqint {

struct NetFile {
  int c = 0, h = 0, w = 0;
  std::vector<LayerIn> layers;
  std::vector<int32_t> words;  // the layers' parameters point into this
};

inline NetFile readNetFile(const char* path) {
  NetFile nf;
  FILE* f = fopen(path, "rb");
  if (!f) throw Error{std::string("cannot open ") + path};
  int32_t v;
  while (fread(&v, 4, 1, f) == 1) nf.words.push_back(v);
  fclose(f);
  size_t at = 0;
  auto next = [&]() -> int32_t {
    if (at >= nf.words.size()) throw Error{"truncated network file"};
    return nf.words[at++];
  };
  const int n = next();
  nf.c = next();
  nf.h = next();
  nf.w = next();
  if (n < 0 || n > 100000) throw Error{"bad layer count"};
  nf.layers.resize(n);
  for (int i = 0; i < n; i++) {
    const int dl = next();
    if (dl < F_INPUTS || at + dl > nf.words.size()) throw Error{"bad descriptor"};
    nf.layers[i].desc.assign(nf.words.begin() + at, nf.words.begin() + at + dl);
    at += dl;
    if (!next()) continue;
    const int ql = next(), O = next(), lutl = next();
    const size_t need = (size_t)(ql + 3) / 4 + 4 * (size_t)O + lutl;
    if (ql < 0 || O < 0 || lutl < 0 || at + need > nf.words.size()) throw Error{"bad conv parameters"};
    ConvParamsIn& cp = nf.layers[i].conv;
    const int32_t* p = nf.words.data() + at;
    cp.q = (const int8_t*)p;
    cp.qLen = ql;
    p += (ql + 3) / 4;
    cp.fw = p;
    cp.m = p + O;
    cp.fm = p + 2 * O;
    cp.bias = p + 3 * O;
    p += 4 * O;
    if (lutl) {
      cp.lut = p;
      cp.lutLen = lutl;
    }
    at += need;
  }
  return nf;
}

}  // namespace zqint
