#include "net.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>

#include "check.h"
#include "finish.h"

namespace zqint {

namespace {

// Below this many multiply-adds a layer runs on one thread (a few tens of microseconds);
// ZEROQ_INT_PARALLEL_MIN overrides it (tests set 0 to split even tiny layers).
int64_t parallelMacs() {
  const char* e = getenv("ZEROQ_INT_PARALLEL_MIN");
  return e && *e ? atoll(e) : (int64_t)1 << 20;
}

int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// sat_bits(rshr(x, r)) for an 8-bit input value x (route and shortcut alignment).
inline int32_t align(int32_t x, int r, int lo, int hi) {
  int64_t v = r >= 0 ? rshr64(x, r > 32 ? 32 : r) : (int64_t)x * ((int64_t)1 << (-r > 24 ? 24 : -r));
  return clampi(v, lo, hi);
}

// Checks the network (check.h) before the pool starts its threads; returns the thread count.
int checkedThreads(const std::vector<LayerIn>& layers, int inC, int inH, int inW, int threads) {
  const Limits lim;
  checkNet(layers, inC, inH, inW, lim);
  if (threads < 1 || threads > lim.threads) throw Error{"threads " + std::to_string(threads) + " (1.." + std::to_string(lim.threads) + ")"};
  return threads;
}

}  // namespace

void* Net::alloc(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes + 256) != 0 || !p) throw Error{"out of memory"};
  mem_.emplace_back(p);
  memset(p, 0, bytes + 256);
  return p;
}

Net::~Net() = default;

Net::Net(const std::vector<LayerIn>& layers, int inC, int inH, int inW, const Kernels* kernels, int threads, bool retainAll)
    : kernels_(kernels), pool_(checkedThreads(layers, inC, inH, inW, threads)), inC_(inC), inH_(inH), inW_(inW), parMin_(parallelMacs()), retainAll_(retainAll) {
  const int n = (int)layers.size();
  // Own copies of the layers for a twin (read()).
  src_ = layers;
  for (auto& l : src_) {
    ConvParamsIn& c = l.conv;
    if (!c.q) continue;
    srcQ_.emplace_back(c.q, c.q + c.qLen);
    c.q = srcQ_.back().data();
    const size_t O = (size_t)l.desc[F_C];
    for (const int32_t** a : {&c.fw, &c.m, &c.fm, &c.bias}) {
      srcI_.emplace_back(*a, *a + O);
      *a = srcI_.back().data();
    }
    if (c.lut) {
      srcI_.emplace_back(c.lut, c.lut + c.lutLen);
      c.lut = srcI_.back().data();
    }
  }
  layers_.resize(n);
  Buf input;
  input.c = inC;
  input.h = inH;
  input.w = inW;
  input.zero = 0;
  bufs_.push_back(input);
  fracOf_.push_back(8);
  std::vector<bool> raw(1, false);
  for (int i = 0; i < n; i++) {
    L& l = layers_[i];
    l.d = layers[i].desc;
    const int nin = l.d[F_NIN];
    if (l.d[F_KIND] == K_SHORTCUT && nin > 64) throw Error{"layer " + std::to_string(i) + ": shortcut with more than 64 inputs"};
    for (int j = 0; j < nin; j++) {
      int src = l.d[F_INPUTS + j];
      if (src < -1 || src >= i) throw Error{"layer " + std::to_string(i) + ": bad input " + std::to_string(src)};
      l.in.push_back(src == -1 ? 0 : layers_[src].buf);
    }
    const int kind = l.d[F_KIND];
    if (kind == K_DROPOUT || kind == K_YOLO) {
      l.buf = l.in[0];
      continue;
    }
    Buf b;
    b.c = l.d[F_C];
    b.h = l.d[F_H];
    b.w = l.d[F_W];
    b.wide = l.d[F_BITS] != 8;
    l.buf = (int)bufs_.size();
    bufs_.push_back(b);
    fracOf_.push_back(l.d[F_FRAC]);
    raw.push_back(l.d[F_BITS] != 8);
  }
  // Borders: the largest padding of the convolutions reading each buffer.
  for (auto& l : layers_)
    if (l.d[F_KIND] == K_CONV) bufs_[l.in[0]].b = std::max(bufs_[l.in[0]].b, l.d[F_PAD]);
  for (size_t i = 0; i < bufs_.size(); i++) {
    Buf& b = bufs_[i];
    b.cb = (b.c + 3) / 4;
    b.rowStride = b.w + 2 * b.b;
    b.planeStride = roundUp((int64_t)(b.h + 2 * b.b) * b.rowStride, 16);
  }
  for (int i = 0; i < n; i++) {
    L& l = layers_[i];
    if (l.d[F_KIND] == K_CONV) planConv(l, layers[i].conv, i);
    if (l.d[F_KIND] == K_SHORTCUT && kernels_->fusesShortcut) planFusedShortcut(i);
    if (l.d[F_KIND] == K_SHORTCUT) scratchWords_ = std::max(scratchWords_, (size_t)4 * l.d[F_W] + 16);
    if (l.d[F_KIND] == K_MAXPOOL) scratchWords_ = std::max(scratchWords_, (size_t)bufs_[l.in[0]].h * l.d[F_W] + 16);
  }
  placeBuffers(raw);
  // The fused shortcuts' buffers, now that they have memory.
  for (int i = 0; i < n; i++) {
    L& s = layers_[i];
    if (!s.fused) continue;
    for (L& c : layers_)
      if (c.d[F_KIND] == K_CONV && c.conv.fuseOut == (uint32_t*)&s) {
        c.conv.fuseOut = bufs_[s.buf].words;
        c.conv.fuseAdd = bufs_[s.in[1]].words;
      }
  }
  scratch_.resize(pool_.size());
  for (auto& s : scratch_) s = (uint32_t*)alloc(sizeof(uint32_t) * std::max<size_t>(scratchWords_, 64));
  layerNs.assign(n, 0.0);
}

void Net::planConv(L& l, const ConvParamsIn& cp, int index) {
  const Buf& in = bufs_[l.in[0]];
  const Buf& out = bufs_[l.buf];
  ConvPlan& p = l.conv;
  const std::string where = "layer " + std::to_string(index);
  p.C = in.c;
  p.O = l.d[F_C];
  p.G = l.d[F_GROUPS];
  p.k = l.d[F_SIZE];
  p.stride = l.d[F_STRIDE];
  p.pad = l.d[F_PAD];
  p.taps = p.k * p.k;
  p.Ho = out.h;
  p.Wo = out.w;
  p.P = p.Ho * p.Wo;
  if (p.G < 1 || p.C % p.G || p.O % p.G) throw Error{where + ": channels not divisible by groups"};
  p.Cg = p.C / p.G;
  p.Og = p.O / p.G;
  const int K = p.Cg * p.taps;
  if (cp.qLen != (size_t)p.O * K) throw Error{where + ": weight count"};
  p.act = l.d[F_ACT];
  p.outBits = l.d[F_BITS];
  p.lo = -(1 << (p.outBits - 1));
  p.hi = (1 << (p.outBits - 1)) - 1;
  p.inZero = in.zero;
  const int faIn = fracOf_[l.in[0]];
  const int faOut = l.d[F_FRAC];
  const int64_t xmax = in.zero == 0 ? 255 : 128;
  if (p.G == p.C && p.G == p.O) p.kind = CONV_DW;
  else if (p.G == 1 || (p.Cg % 4 == 0 && p.Og % 4 == 0)) p.kind = CONV_GEMM;
  else p.kind = CONV_GENERIC;

  int np;  // padded channel count; chanOf(pc) -> oc or -1
  if (p.kind == CONV_GEMM) {
    p.cbg = p.G == 1 ? in.cb : p.Cg / 4;
    p.ntiles = (p.Og + TILE_O - 1) / TILE_O;
    p.chunks = p.taps * p.cbg;
    np = p.G * p.ntiles * TILE_O;
  } else if (p.kind == CONV_DW) {
    np = ((p.C + 3) / 4) * 4;
  } else {
    np = p.O;
  }
  auto chanOf = [&](int pc) -> int {
    if (p.kind != CONV_GEMM) return pc < p.O ? pc : -1;
    int g = pc / (p.ntiles * TILE_O), r = pc % (p.ntiles * TILE_O);
    return r < p.Og ? g * p.Og + r : -1;
  };
  p.bias = (int32_t*)alloc(4 * np);
  p.mul = (int32_t*)alloc(4 * np);
  p.tsh = (int32_t*)alloc(4 * np);
  p.rsh = (int32_t*)alloc(4 * np);
  p.lsh = (int32_t*)alloc(4 * np);
  p.lutsh = (int32_t*)alloc(4 * np);
  p.trnd = (int32_t*)alloc(4 * np);
  p.qsum = (int32_t*)alloc(4 * np);
  p.rrnd = (int32_t*)alloc(4 * np);
  const int64_t smax = (int64_t)K * xmax;
  const int64_t two31 = (int64_t)1 << 31;
  p.leaky32 = p.tAdd = p.rAdd = true;
  for (int pc = 0; pc < np; pc++) {
    int oc = chanOf(pc);
    if (oc < 0) continue;
    int64_t sumq = 0;
    for (int j = 0; j < K; j++) sumq += cp.q[(size_t)oc * K + j];
    p.bias[pc] = (int32_t)(cp.bias[oc] - (int64_t)in.zero * sumq);
    p.qsum[pc] = (int32_t)sumq;
    const int fw = cp.fw[oc];
    const int r = cp.fm[oc] - fw;
    if (cp.m[oc] != 0) {
      p.needS = true;
      int64_t mul = r >= 0 ? cp.m[oc] : (int64_t)cp.m[oc] * ((int64_t)1 << std::min(-r, 40));
      if (mul > INT32_MAX || mul < INT32_MIN) throw Error{where + ": M overflows after the left shift"};
      p.mul[pc] = (int32_t)mul;
      p.tsh[pc] = r >= 0 ? std::min(r, 63) : 0;
      if ((mul < 0 ? -mul : mul) * smax >= ((int64_t)1 << 31)) p.m32 = false;
    }
    const int sh = fw + faIn - faOut;
    p.rsh[pc] = sh >= 0 ? std::min(sh, 32) : 0;
    p.lsh[pc] = sh < 0 ? std::min(-sh, 16) : 0;
    if (p.lsh[pc]) p.anyLeft = true;
    // |Y| bound of this channel, as in validation: the cheaper exact forms hold below it.
    int64_t sumAbs = 0;
    for (int j = 0; j < K; j++) sumAbs += std::abs((int)cp.q[(size_t)oc * K + j]);
    const int64_t tmul = std::abs((int64_t)p.mul[pc]) * smax;
    const int64_t tmax = p.mul[pc] == 0 ? 0 : (tmul >> std::min(p.tsh[pc], 62)) + 1;
    const int64_t ybound = sumAbs * xmax + tmax + std::abs((int64_t)cp.bias[oc]);
    if (ybound * 3277 >= two31) p.leaky32 = false;
    if (p.mul[pc] != 0) {
      const int64_t rnd = p.tsh[pc] > 0 ? (int64_t)1 << (p.tsh[pc] - 1) : 0;
      if (p.tsh[pc] > 31 || tmul + rnd >= two31) p.tAdd = false;
      else p.trnd[pc] = (int32_t)rnd;
    }
    {
      const int64_t rnd = p.rsh[pc] > 0 ? (int64_t)1 << (p.rsh[pc] - 1) : 0;
      if (p.rsh[pc] > 31 || ybound + rnd >= two31) p.rAdd = false;
      else p.rrnd[pc] = (int32_t)rnd;
      // The fast leaky folds rrnd into its constant (Y*3277 + 2^14 + 2^15*rrnd, see the AVX-512
      // epilogue), exact only while that sum fits 32 bits for Y < 0: rrnd up to 2^15 (rsh <= 16).
      // Past it the wide form adds rrnd after the activation.
      if (p.act == A_LEAKY && p.rrnd[pc] > (1 << 15)) p.leaky32 = false;
    }
    // F_LUTSHIFT is checked only for table activations: 64 bits for any other value.
    const int64_t lr = (int64_t)fw + faIn - l.d[F_LUTSHIFT];
    p.lutsh[pc] = (int32_t)std::max<int64_t>(-32, std::min<int64_t>(lr, 32));
  }
  p.fbias = (int32_t*)alloc(4 * np);
  p.fk = (int32_t*)alloc(4 * np);
  for (int pc = 0; pc < np; pc++) {
    p.fbias[pc] = p.bias[pc] + p.rrnd[pc];
    // Leaky: used by the fast form only with leaky32 (rrnd <= 2^15, no overflow); the wide form reads rrnd.
    p.fk[pc] = p.act == A_LEAKY && p.leaky32 ? 16384 + 29491 * p.rrnd[pc] : p.rrnd[pc];
  }
  p.fast = (p.outBits == 8 || out.wide) && (p.act == A_LINEAR || p.act == A_RELU || p.act == A_LEAKY) && p.tAdd && p.rAdd && !p.anyLeft;
  {
    bool m16 = true;
    for (int pc = 0; pc < np; pc++) m16 = m16 && p.mul[pc] >= INT16_MIN && p.mul[pc] <= INT16_MAX;
    const int64_t sBound = p.kind == CONV_DW ? (int64_t)255 * p.taps : xmax * K;
    p.madd = m16 && sBound <= INT16_MAX;
  }
  if (getenv("ZEROQ_INT_DEBUG"))
    fprintf(stderr, "%s: kind %d needS %d m32 %d tAdd %d leaky32 %d rAdd %d anyLeft %d fast %d madd %d\n", where.c_str(), p.kind, p.needS, p.m32, p.tAdd,
            p.leaky32, p.rAdd, p.anyLeft, p.fast, p.madd);
  if (p.act == A_LUT) {
    if (!cp.lut || cp.lutLen == 0) throw Error{where + ": activation table missing"};
    int32_t* t = (int32_t*)alloc(4 * cp.lutLen);
    memcpy(t, cp.lut, 4 * cp.lutLen);
    p.lut = t;
    p.lutN = (int)cp.lutLen;
    p.lutZ = l.d[F_LUTOFFSET];
  }

  if (p.kind == CONV_GEMM) {
    p.sOff = in.zero * p.chunks * 4;
    uint32_t* w = (uint32_t*)alloc(sizeof(uint32_t) * (size_t)p.G * p.ntiles * p.chunks * TILE_O);
    p.wgemm = (int8_t*)w;
    for (int g = 0; g < p.G; g++)
      for (int t = 0; t < p.ntiles; t++)
        for (int tap = 0; tap < p.taps; tap++)
          for (int b = 0; b < p.cbg; b++)
            for (int o = 0; o < TILE_O; o++) {
              const int og = t * TILE_O + o;
              uint32_t word = 0;
              if (og < p.Og)
                for (int j = 0; j < 4; j++) {
                  const int ic = 4 * b + j;
                  if (ic < p.Cg)
                    word |= (uint32_t)(uint8_t)cp.q[((size_t)(g * p.Og + og) * p.Cg + ic) * p.taps + tap] << (8 * j);
                }
              w[(((size_t)(g * p.ntiles + t) * p.chunks) + tap * p.cbg + b) * TILE_O + o] = word;
            }
    const size_t nw = (size_t)p.G * p.ntiles * p.chunks * TILE_O * 4;
    p.wgemm16 = (int16_t*)alloc(2 * nw);
    for (size_t j = 0; j < nw; j++) p.wgemm16[j] = p.wgemm[j];
    p.direct = p.k == 1 && p.stride == 1 && in.b == 0 && p.pad == 0;
    p.nvec = (p.P + VL - 1) / VL;
    p.pidx = (int32_t*)alloc(4 * (size_t)p.nvec * VL);
    for (int pos = 0; pos < p.P; pos++) {
      int y = pos / p.Wo, x = pos % p.Wo;
      p.pidx[pos] = (y * p.stride - p.pad + in.b) * in.rowStride + (x * p.stride - p.pad + in.b);
    }
    p.affine = (uint8_t*)alloc((size_t)p.nvec);
    for (int v = 0; v < p.nvec; v++) {
      bool a = (v + 1) * VL <= p.P;
      for (int lane = 1; a && lane < VL; lane++) a = p.pidx[v * VL + lane] == p.pidx[v * VL] + lane * p.stride;
      p.affine[v] = a;
    }
    std::vector<Seg> segs;
    p.segStart = (int32_t*)alloc(4 * (size_t)(p.nvec + 1));
    for (int v = 0; v < p.nvec; v++) {
      p.segStart[v] = (int32_t)segs.size();
      for (int lane = 0; lane < VL && v * VL + lane < p.P; lane++) {
        int pos = v * VL + lane, y = pos / p.Wo, x = pos % p.Wo;
        int64_t off = (int64_t)(y + out.b) * out.rowStride + (x + out.b);
        if (!segs.empty() && (int)segs.size() > p.segStart[v] && segs.back().off + segs.back().count == off) segs.back().count++;
        else segs.push_back({lane, 1, off});
      }
    }
    p.segStart[p.nvec] = (int32_t)segs.size();
    p.segs = (Seg*)alloc(sizeof(Seg) * std::max<size_t>(segs.size(), 1));
    std::copy(segs.begin(), segs.end(), p.segs);
    scratchWords_ = std::max(scratchWords_, gemmScratchWords(p));
    if (p.direct) scratchWords_ = std::max(scratchWords_, (size_t)p.nvec * VL + 64);  // window sums of every vector
  } else if (p.kind == CONV_DW) {
    const int cb = (p.C + 3) / 4;
    p.sOff = in.zero * p.taps;
    p.wdw = (int32_t*)alloc(4 * (size_t)cb * p.taps * 4);
    for (int c = 0; c < p.C; c++)
      for (int tap = 0; tap < p.taps; tap++) p.wdw[((size_t)(c / 4) * p.taps + tap) * 4 + c % 4] = cp.q[(size_t)c * p.taps + tap];
    p.ng = (p.k + 3) / 4;
    p.wdwRow = (int32_t*)alloc(4 * (size_t)cb * 4 * p.k * p.ng);
    for (int c = 0; c < p.C; c++)
      for (int ky = 0; ky < p.k; ky++)
        for (int kx = 0; kx < p.k; kx++) {
          uint32_t& w = ((uint32_t*)p.wdwRow)[((size_t)c * p.k + ky) * p.ng + kx / 4];
          w |= (uint32_t)(uint8_t)cp.q[(size_t)c * p.taps + ky * p.k + kx] << (8 * (kx % 4));
        }
    int32_t** vs[8] = {&p.vbias, &p.vmul, &p.vtsh, &p.vrsh, &p.vlsh, &p.vlutsh, &p.vtrnd, &p.vrrnd};
    const int32_t* src[8] = {p.bias, p.mul, p.tsh, p.rsh, p.lsh, p.lutsh, p.trnd, p.rrnd};
    for (int a = 0; a < 8; a++) {
      *vs[a] = (int32_t*)alloc(4 * (size_t)cb * VL);
      for (int b = 0; b < cb; b++)
        for (int lane = 0; lane < VL; lane++) (*vs[a])[b * VL + lane] = src[a][b * 4 + lane % 4];
    }
  } else {
    p.sOff = in.zero * p.taps * p.Cg;
    int8_t* q = (int8_t*)alloc(cp.qLen);
    memcpy(q, cp.q, cp.qLen);
    p.q = q;
  }
}

// Buffer memory: one arena (huge pages where the system gives them); a buffer shares memory with
// buffers whose lifetimes [first writer, last reader] do not overlap its own, placed greedily by
// size. The input and every buffer nothing reads (heads, outputs) live for the whole frame.
void Net::placeBuffers(const std::vector<bool>& raw) {
  const int n = (int)layers_.size(), nb = (int)bufs_.size();
  first_.assign(nb, n);
  last_.assign(nb, -1);
  first_[0] = -1;
  for (int i = 0; i < n; i++) {
    const L& l = layers_[i];
    if (l.d[F_KIND] != K_DROPOUT && l.d[F_KIND] != K_YOLO) first_[l.buf] = std::min(first_[l.buf], i);
    for (int b : l.in) last_[b] = std::max(last_[b], i);
    if (l.d[F_KIND] == K_YOLO) last_[l.buf] = n;
    if (l.d[F_KIND] == K_CONV && l.conv.fuseOut) first_[((const L*)l.conv.fuseOut)->buf] = i;
  }
  for (int b = 0; b < nb; b++)
    if (b == 0 || last_[b] < 0 || retainAll_) {
      if (b == 0) first_[b] = -1;
      last_[b] = n;
    }
  bytes_.assign(nb, 0);
  offset_.assign(nb, 0);
  for (int b = 0; b < nb; b++) {
    const Buf& B = bufs_[b];
    bytes_[b] = raw[b] ? sizeof(int32_t) * (size_t)B.c * B.h * B.w : sizeof(uint32_t) * (size_t)(B.cb * B.planeStride);
    bytes_[b] = (size_t)roundUp((int64_t)bytes_[b] + 256, 4096);  // slack: kernels read up to a vector past a plane
  }
  std::vector<int> order(nb);
  for (int b = 0; b < nb; b++) order[b] = b;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bytes_[a] > bytes_[b]; });
  std::vector<int> placed;
  for (int b : order) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (int o : placed)
      if (!(last_[o] < first_[b] || last_[b] < first_[o])) busy.push_back({offset_[o], offset_[o] + bytes_[o]});
    std::sort(busy.begin(), busy.end());
    size_t at = 0;
    for (auto& r : busy) {
      if (r.first >= at + bytes_[b]) break;
      at = std::max(at, r.second);
    }
    offset_[b] = at;
    arenaBytes_ = std::max(arenaBytes_, at + bytes_[b]);
    placed.push_back(b);
  }
  uint8_t* arena = nullptr;
  const size_t huge = (size_t)2 << 20;
  if (posix_memalign((void**)&arena, huge, roundUp((int64_t)arenaBytes_, huge)) != 0 || !arena) throw Error{"out of memory"};
  mem_.emplace_back(arena);
#ifdef MADV_HUGEPAGE
  madvise(arena, roundUp((int64_t)arenaBytes_, huge), MADV_HUGEPAGE);
#endif
  for (int b = 0; b < nb; b++) {
    Buf& B = bufs_[b];
    uint8_t* mem = arena + offset_[b];
    if (raw[b]) B.raw = (int32_t*)mem;
    else B.words = (uint32_t*)mem;
  }
  // Fill every buffer with its zero value in the order of first use, and note the buffers whose
  // memory another one uses between their uses: their borders are refilled before each write.
  std::vector<int> byFirst(nb);
  for (int b = 0; b < nb; b++) byFirst[b] = b;
  std::stable_sort(byFirst.begin(), byFirst.end(), [&](int a, int b) { return first_[a] < first_[b]; });
  for (int b : byFirst) memset(arena + offset_[b], raw[b] ? 0 : bufs_[b].zero, bytes_[b]);
  for (int b = 1; b < nb; b++) {
    if (raw[b] || bufs_[b].b == 0) continue;
    bool shared = false;
    for (int o = 0; o < nb && !shared; o++)
      shared = o != b && offset_[o] < offset_[b] + bytes_[b] && offset_[b] < offset_[o] + bytes_[o];
    if (shared && first_[b] >= 0 && first_[b] < n) layers_[first_[b]].writes.push_back(b);
  }
}

bool Net::retained(int layer) const {
  const int b = layers_.at(layer).buf;
  for (int o = 0; o < (int)bufs_.size(); o++)
    if (o != b && offset_[o] < offset_[b] + bytes_[b] && offset_[b] < offset_[o] + bytes_[o] && first_[o] > first_[b]) return false;
  return true;
}

// The border frame of every block plane at the zero value (the kernels never write it).
static void fillBorder(const Buf& B) {
  const uint32_t z = 0x01010101u * B.zero;
  for (int blk = 0; blk < B.cb; blk++) {
    uint32_t* plane = B.words + blk * B.planeStride;
    for (int y = 0; y < B.h + 2 * B.b; y++) {
      uint32_t* row = plane + (int64_t)y * B.rowStride;
      if (y < B.b || y >= B.h + B.b) {
        std::fill(row, row + B.rowStride, z);
      } else {
        std::fill(row, row + B.b, z);
        std::fill(row + B.w + B.b, row + B.rowStride, z);
      }
    }
  }
}

void Net::load(const uint8_t* rgb) {
  Buf& in = bufs_[0];
  if (kernels_->load && inC_ == 3) {
    kernels_->load(rgb, in, inW_, inH_);
    return;
  }
  for (int y = 0; y < inH_; y++) {
    uint32_t* row = in.at(0, y, 0);
    const uint8_t* s = rgb + (size_t)y * inW_ * 3;
    for (int x = 0; x < inW_; x++) row[x] = (uint32_t)s[3 * x] | (uint32_t)s[3 * x + 1] << 8 | (uint32_t)s[3 * x + 2] << 16;
  }
}

void Net::compute() {
  frames_++;
  for (int i = 0; i < (int)layers_.size(); i++) {
    if (!profile) {
      runLayer(i);
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    runLayer(i);
    layerNs[i] += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
}

// A shortcut whose first input is an 8-bit gemm conv read by nothing else (dropouts between are
// aliases), and whose buffers all share one geometry, runs in that conv's epilogue.
void Net::planFusedShortcut(int i) {
  L& s = layers_[i];
  if (s.in.size() != 2 || s.d[F_BITS] != 8) return;
  int c = s.d[F_INPUTS];
  while (c >= 0 && layers_[c].d[F_KIND] == K_DROPOUT) c = layers_[c].d[F_INPUTS];
  if (c < 0 || layers_[c].d[F_KIND] != K_CONV) return;
  L& conv = layers_[c];
  ConvPlan& p = conv.conv;
  if (p.kind != CONV_GEMM || p.G != 1 || p.act == A_LUT || p.outBits != 8 || c + 1 > i) return;
  if (kernels_->fusesShortcut == 1 && !p.fast) return;
  int readers = 0;
  for (const L& l : layers_)
    if (l.d[F_KIND] != K_DROPOUT)
      for (int b : l.in) readers += b == conv.buf;
  if (readers != 1) return;
  const Buf &co = bufs_[conv.buf], &add = bufs_[s.in[1]], &so = bufs_[s.buf];
  if (s.in[1] == conv.buf || add.wide || add.b != co.b || so.b != co.b || add.c != co.c || so.c != co.c) return;
  // The other input must be ready when the conv runs.
  int other = s.d[F_INPUTS + 1];
  while (other >= 0 && layers_[other].d[F_KIND] == K_DROPOUT) other = layers_[other].d[F_INPUTS];
  if (other >= c) return;
  p.fuseOut = (uint32_t*)&s;  // resolved to the buffers' memory once it is placed
  p.fuseAdd = nullptr;
  p.fusePlane = co.planeStride;
  p.fuseSa = std::max(-24, std::min(conv.d[F_FRAC] - s.d[F_FRAC], 30));
  p.fuseSb = std::max(-24, std::min(fracOf_[s.in[1]] - s.d[F_FRAC], 30));
  p.fuseAct = s.d[F_ACT];
  s.fused = true;
  if (getenv("ZEROQ_INT_DEBUG")) fprintf(stderr, "layer %d: shortcut fused into conv %d\n", i, c);
}

void Net::runLayer(int i) {
  L& l = layers_[i];
  for (int b : l.writes) fillBorder(bufs_[b]);
  if (l.fused) return;  // done by the conv before it
  switch (l.d[F_KIND]) {
    case K_CONV: runConv(l); break;
    case K_MAXPOOL: runMaxpool(l); break;
    case K_ROUTE: runRoute(l); break;
    case K_SHORTCUT: runShortcut(l); break;
    case K_UPSAMPLE: runUpsample(l); break;
    default: break;  // dropout, yolo: aliases
  }
}

// Keeps padded channels of the last block at the zero value (a table may map 0 elsewhere).
static void clearPaddedChannels(const Buf& out) {
  if (out.raw || out.c % 4 == 0) return;
  const int blk = out.cb - 1;
  uint32_t keep = 0;
  for (int j = 0; j < out.c % 4; j++) keep |= 0xffu << (8 * j);
  const uint32_t fill = 0x80808080u & ~keep;
  for (int y = 0; y < out.h; y++) {
    uint32_t* row = out.at(blk, y, 0);
    for (int x = 0; x < out.w; x++) row[x] = (row[x] & keep) | fill;
  }
}

// A depthwise plan restricted to channel blocks [b0, b1): its per-channel arrays from channel 4*b0.
static ConvPlan slicePlan(const ConvPlan& p, int b0, int b1) {
  ConvPlan s = p;
  const int c0 = 4 * b0;
  s.C = s.O = s.G = std::min(p.C, 4 * b1) - c0;
  s.Cg = s.Og = 1;
  for (int32_t** a : {&s.bias, &s.mul, &s.tsh, &s.rsh, &s.lsh, &s.qsum, &s.trnd, &s.rrnd, &s.lutsh, &s.fbias, &s.fk}) *a += c0;
  s.wdw += (size_t)b0 * p.taps * 4;
  s.wdwRow += (size_t)c0 * p.k * p.ng;
  for (int32_t** a : {&s.vbias, &s.vmul, &s.vtsh, &s.vrsh, &s.vlsh, &s.vlutsh, &s.vtrnd, &s.vrrnd}) *a += (size_t)b0 * VL;
  return s;
}

// A gemm plan (one group) restricted to tiles [t0, t1) of output channels.
static ConvPlan sliceTiles(const ConvPlan& p, int t0, int t1) {
  ConvPlan s = p;
  const int c0 = TILE_O * t0;
  s.O = s.Og = std::min(p.O, TILE_O * t1) - c0;
  s.ntiles = t1 - t0;
  for (int32_t** a : {&s.bias, &s.mul, &s.tsh, &s.rsh, &s.lsh, &s.qsum, &s.trnd, &s.rrnd, &s.lutsh, &s.fbias, &s.fk}) *a += c0;
  s.wgemm += (size_t)c0 * p.chunks * 4;
  s.wgemm16 += (size_t)c0 * p.chunks * 4;
  if (p.fuseOut) {
    s.fuseOut += (int64_t)(c0 / 4) * p.fusePlane;
    s.fuseAdd += (int64_t)(c0 / 4) * p.fusePlane;
  }
  return s;
}

// A buffer restricted to channel blocks [b0, b1) holding c channels.
static Buf sliceBuf(const Buf& b, int b0, int b1, int c) {
  Buf s = b;
  s.c = c;
  s.cb = b1 - b0;
  if (b.raw) s.raw += (int64_t)4 * b0 * b.h * b.w;
  else s.words += b0 * b.planeStride;
  return s;
}

void Net::runConv(L& l) {
  const ConvPlan& p = l.conv;
  const Buf& in = bufs_[l.in[0]];
  const Buf& out = bufs_[l.buf];
  if (p.kind == CONV_GEMM) {
    // Small layers stay on the calling thread: waking and waiting for a worker costs more.
    const int64_t macs = (int64_t)p.P * p.O * p.Cg * p.taps;
    if (macs >= parMin_ && pool_.size() > 1 && p.G == 1 && p.nvec < 16 * pool_.size() && p.ntiles >= 2 * pool_.size()) {
      // Few position vectors (small maps): split by tiles of output channels instead.
      pool_.run(p.ntiles, [&](int b, int e, int t) {
        const ConvPlan ps = sliceTiles(p, b, e);
        kernels_->gemm(ps, in, sliceBuf(out, 2 * b, 2 * e, ps.O), 0, p.nvec, scratch_[t]);
      });
    } else {
      pool_.run(macs < parMin_ ? 1 : p.nvec, [&](int b, int e, int t) {
        if (macs < parMin_) e = p.nvec;
        kernels_->gemm(p, in, out, b, e, scratch_[t]);
      });
    }
  } else if (p.kind == CONV_DW) {
    const int64_t macs = (int64_t)p.P * p.O * p.taps * 4;  // depthwise: ~4x the work per MAC of gemm
    const int cb = (p.C + 3) / 4;
    if (macs >= parMin_ && pool_.size() > 1 && p.P <= 400 && cb >= 2 * pool_.size()) {
      // Small maps: split by channel blocks (the row splits' halo rows would be a large share).
      pool_.run(cb, [&](int b, int e, int) {
        const ConvPlan ps = slicePlan(p, b, e);
        kernels_->dw(ps, sliceBuf(in, b, e, ps.C), sliceBuf(out, b, e, ps.C), 0, p.Ho);
      });
    } else {
      // Split in units of four rows: one band of the AVX-512 fast kernel, two of the AVX2 and
      // neon-dotprod ones.
      const int unit = 4, units = (p.Ho + unit - 1) / unit;
      pool_.run(macs < parMin_ ? 1 : units, [&](int b, int e, int) {
        if (macs < parMin_) e = units;
        kernels_->dw(p, in, out, b * unit, std::min(e * unit, p.Ho));
      });
    }
  } else {
    pool_.run(p.O, [&](int b, int e, int) {
      for (int o = b; o < e; o++) {
        const int g = o / p.Og;
        for (int y = 0; y < p.Ho; y++)
          for (int x = 0; x < p.Wo; x++) {
            int32_t acc = 0, s = 0;
            for (int c = 0; c < p.Cg; c++) {
              const int ic = g * p.Cg + c;
              for (int ky = 0; ky < p.k; ky++)
                for (int kx = 0; kx < p.k; kx++) {
                  uint32_t w = *in.at(ic / 4, y * p.stride + ky - p.pad, x * p.stride + kx - p.pad);
                  int32_t v = (w >> (8 * (ic % 4))) & 0xff;
                  acc += v * p.q[(((size_t)o * p.Cg + c) * p.k + ky) * p.k + kx];
                  s += v;
                }
            }
            int32_t r = finishOne(p, p.mul, p.tsh, p.rsh, p.lsh, p.lutsh, o, acc + p.bias[o], s - p.sOff);
            if (out.raw) out.raw[((int64_t)o * p.Ho + y) * p.Wo + x] = r;
            else ((uint8_t*)out.at(o / 4, y, x))[o % 4] = (uint8_t)(r + 128);
          }
      }
    });
  }
  if (p.act == A_LUT || p.kind == CONV_GENERIC) clearPaddedChannels(out);  // LUT: a table may map 0 elsewhere; generic: writes real channels only
}

// Byte-wise max of n bytes (stored values are offset binary: max of the values). Vectorizes.
static void maxBytes(uint8_t* __restrict d, const uint8_t* __restrict s, int n) {
  for (int i = 0; i < n; i++) d[i] = d[i] > s[i] ? d[i] : s[i];
}

void Net::runMaxpool(L& l) {
  const Buf& in = bufs_[l.in[0]];
  const Buf& out = bufs_[l.buf];
  const int size = l.d[F_SIZE], stride = l.d[F_STRIDE], off = l.d[F_PAD] / 2;  // F_PAD holds darknet's padding
  const int Ho = out.h, Wo = out.w;
  pool_.run(in.cb, [&](int b0, int b1, int t) {
    uint8_t* tmp = (uint8_t*)scratch_[t];
    for (int blk = b0; blk < b1; blk++) {
      // Horizontal pass: tmp[iy][x] = max over the valid kx of row iy (0 is below every stored value).
      for (int iy = 0; iy < in.h; iy++) {
        const uint8_t* src = (const uint8_t*)in.at(blk, iy, 0);
        uint8_t* dst = tmp + (size_t)iy * Wo * 4;
        memset(dst, 0, (size_t)Wo * 4);
        for (int kx = 0; kx < size; kx++) {
          // x such that 0 <= x*stride - off + kx < in.w
          int xlo = std::max(0, (off - kx + stride - 1) / stride);
          if (in.w - 1 + off - kx < 0) continue;
          int xhi = std::min(Wo - 1, (in.w - 1 + off - kx) / stride);
          if (xhi < xlo) continue;
          if (stride == 1) {
            maxBytes(dst + (size_t)xlo * 4, src + (size_t)(xlo - off + kx) * 4, (xhi - xlo + 1) * 4);
            continue;
          }
          for (int x = xlo; x <= xhi; x++) {
            const uint8_t* s = src + (size_t)(x * stride - off + kx) * 4;
            uint8_t* d = dst + (size_t)x * 4;
            for (int c = 0; c < 4; c++) d[c] = std::max(d[c], s[c]);
          }
        }
      }
      for (int y = 0; y < Ho; y++) {
        uint8_t* d = (uint8_t*)out.at(blk, y, 0);
        memset(d, 0, (size_t)Wo * 4);
        for (int ky = 0; ky < size; ky++) {
          int iy = y * stride - off + ky;
          if (iy < 0 || iy >= in.h) continue;
          maxBytes(d, tmp + (size_t)iy * Wo * 4, Wo * 4);
        }
      }
    }
  });
}

// Stored bytes re-aligned from one format to another: sat8(rshr(x, r)) or sat8(x * 2^-r). Vectorizes.
static void alignBytes(uint8_t* __restrict d, const uint8_t* __restrict s, int n, int r) {
  if (r > 0) {
    const int rr = r > 15 ? 15 : r, h = 1 << (rr - 1);  // from 9 on every value rounds to 0 either way
    for (int i = 0; i < n; i++) d[i] = (uint8_t)((((int)s[i] - 128 + h) >> rr) + 128);
  } else {
    const int m = 1 << (-r > 8 ? 8 : -r);  // from 8 on every nonzero value saturates either way
    for (int i = 0; i < n; i++) {
      int v = ((int)s[i] - 128) * m;
      v = v < -128 ? -128 : v > 127 ? 127 : v;
      d[i] = (uint8_t)(v + 128);
    }
  }
}

void Net::runRoute(L& l) {
  const Buf& out = bufs_[l.buf];
  const int groups = l.d[F_GROUPS], gid = l.d[F_GROUPID];
  const int lo = out.raw ? -(1 << (l.d[F_BITS] - 1)) : -128, hi = -lo - 1;
  const int fo = l.d[F_FRAC];
  int oc = 0;
  for (int inb : l.in) {
    const Buf& in = bufs_[inb];
    const int cs = in.c / groups, c0 = cs * gid, r = fracOf_[inb] - fo;
    const bool blocks = !out.raw && c0 % 4 == 0 && oc % 4 == 0 && (cs % 4 == 0);
    if (blocks) {
      for (int j = 0; j < cs / 4; j++)
        for (int y = 0; y < in.h; y++) {
          if (r == 0) memcpy(out.at(oc / 4 + j, y, 0), in.at(c0 / 4 + j, y, 0), 4 * (size_t)in.w);
          else alignBytes((uint8_t*)out.at(oc / 4 + j, y, 0), (const uint8_t*)in.at(c0 / 4 + j, y, 0), 4 * in.w, r);
        }
      oc += cs;
      continue;
    }
    for (int c = 0; c < cs; c++, oc++) {
      const int ic = c0 + c;
      for (int y = 0; y < in.h; y++) {
        const uint8_t* s = (const uint8_t*)in.at(ic / 4, y, 0) + ic % 4;
        if (out.raw) {
          int32_t* d = out.raw + ((int64_t)oc * out.h + y) * out.w;
          for (int x = 0; x < in.w; x++) d[x] = align((int32_t)s[4 * x] - 128, r, lo, hi);
        } else {
          uint8_t* d = (uint8_t*)out.at(oc / 4, y, 0) + oc % 4;
          for (int x = 0; x < in.w; x++) d[4 * x] = (uint8_t)(align((int32_t)s[4 * x] - 128, r, lo, hi) + 128);
        }
      }
    }
  }
  clearPaddedChannels(out);  // the per-channel copies write real channels only
}

// The elementwise loops below take plain locals and restrict pointers so that they vectorize.
static void addAligned(int32_t* __restrict sum, const uint8_t* __restrict s, int n, int r, int lo, int hi) {
  if (r == 0) {
    for (int i = 0; i < n; i++) sum[i] += std::min(std::max((int32_t)s[i] - 128, lo), hi);
  } else if (r > 0) {
    const int32_t half = 1 << (r - 1);
    for (int i = 0; i < n; i++) sum[i] += ((int32_t)s[i] - 128 + half) >> r;
  } else {
    const int32_t mul = 1 << -r;
    for (int i = 0; i < n; i++) sum[i] += std::min(std::max(((int32_t)s[i] - 128) * mul, lo), hi);
  }
}

static void finishSum(int32_t* __restrict sum, uint8_t* __restrict d, int n, int act, int lo, int hi) {
  for (int i = 0; i < n; i++) {
    int32_t v = std::min(std::max(sum[i], lo), hi);
    if (act == A_LEAKY) v = v >= 0 ? v : (v * 3277 + 16384) >> 15;
    else if (act == A_RELU) v = v < 0 ? 0 : v;
    sum[i] = v;
    if (d) d[i] = (uint8_t)(v + 128);
  }
}

// Two inputs, both shifted right (or not) into the output format: one pass.
static void add2Right(const uint8_t* __restrict a, const uint8_t* __restrict c, uint8_t* __restrict d, int n, int ra, int rc, int act,
                      int lo, int hi) {
  const int32_t ha = ra > 0 ? 1 << (ra - 1) : 0, hc = rc > 0 ? 1 << (rc - 1) : 0;
  for (int i = 0; i < n; i++) {
    int32_t v = (((int32_t)a[i] - 128 + ha) >> ra) + (((int32_t)c[i] - 128 + hc) >> rc);
    v = v < lo ? lo : v > hi ? hi : v;
    if (act == A_LEAKY) v = v >= 0 ? v : (v * 3277 + 16384) >> 15;
    else if (act == A_RELU) v = v < 0 ? 0 : v;
    d[i] = (uint8_t)(v + 128);
  }
}

static void addBytes(const uint8_t* __restrict a, const uint8_t* __restrict c, uint8_t* __restrict d, int n, bool relu) {
  for (int i = 0; i < n; i++) {
    int v = (int)a[i] + (int)c[i] - 256;
    v = v < -128 ? -128 : v > 127 ? 127 : v;
    if (relu) v = v < 0 ? 0 : v;
    d[i] = (uint8_t)(v + 128);
  }
}

void Net::runShortcut(L& l) {
  const Buf& out = bufs_[l.buf];
  const int bits = l.d[F_BITS];
  const int lo = -(1 << (bits - 1)), hi = -lo - 1;
  const int act = l.d[F_ACT], fo = l.d[F_FRAC];
  const int nin = (int)l.in.size();
  int shifts[64];  // the plan refuses shortcuts with more inputs
  for (int j = 0; j < nin; j++) shifts[j] = std::max(-24, std::min(fracOf_[l.in[j]] - fo, 30));
  const bool fast = !out.raw && nin == 2 && shifts[0] == 0 && shifts[1] == 0 && act != A_LEAKY;
  const bool right2 = !fast && !out.raw && nin == 2 && shifts[0] >= 0 && shifts[1] >= 0;
  pool_.run(out.cb, [&](int b0, int b1, int t) {
    int32_t* sum = (int32_t*)scratch_[t];
    const int n = 4 * out.w;
    for (int blk = b0; blk < b1; blk++)
      for (int y = 0; y < out.h; y++) {
        // Rows of 4*w bytes (every channel of a block).
        uint8_t* d = out.raw ? nullptr : (uint8_t*)out.at(blk, y, 0);
        if (right2) {
          add2Right((const uint8_t*)bufs_[l.in[0]].at(blk, y, 0), (const uint8_t*)bufs_[l.in[1]].at(blk, y, 0), d, n, shifts[0], shifts[1], act,
                    lo, hi);
          continue;
        }
        if (fast) {
          addBytes((const uint8_t*)bufs_[l.in[0]].at(blk, y, 0), (const uint8_t*)bufs_[l.in[1]].at(blk, y, 0), d, n, act == A_RELU);
          continue;
        }
        std::fill(sum, sum + n, 0);
        for (int j = 0; j < nin; j++) addAligned(sum, (const uint8_t*)bufs_[l.in[j]].at(blk, y, 0), n, shifts[j], lo, hi);
        finishSum(sum, d, n, act, lo, hi);
        if (out.raw) {
          for (int i = 0; i < n; i++) {
            const int c = 4 * blk + (i & 3);
            if (c < out.c) out.raw[((int64_t)c * out.h + y) * out.w + (i >> 2)] = sum[i];
          }
        }
      }
  });
}

void Net::runUpsample(L& l) {
  const Buf& in = bufs_[l.in[0]];
  const Buf& out = bufs_[l.buf];
  const int s = l.d[F_STRIDE];
  for (int b = 0; b < out.cb; b++)
    for (int y = 0; y < out.h; y++) {
      const uint32_t* __restrict src = in.at(b, y / s, 0);
      uint32_t* __restrict dst = out.at(b, y, 0);
      if (s == 2 && out.w == 2 * in.w) {
        for (int x = 0; x < in.w; x++) dst[2 * x] = dst[2 * x + 1] = src[x];
        continue;
      }
      for (int x = 0; x < out.w; x++) dst[x] = src[x / s];
    }
}

// Bytes of a tensor's interior in its stored form.
static int64_t tensorBytes(const Buf& b) {
  return b.wide ? (int64_t)4 * b.c * b.h * b.w : (int64_t)4 * b.cb * b.h * b.w;
}

Net::Info Net::info(int i) const {
  const L& l = layers_.at(i);
  Info r;
  const int kind = l.d[F_KIND];
  if (kind == K_DROPOUT || kind == K_YOLO) {
    r.kernel = "alias";
    return r;
  }
  if (l.fused) {
    r.kernel = "fused into the conv before";
    return r;
  }
  const Buf& out = bufs_[l.buf];
  r.bytes = tensorBytes(out);
  for (int b : l.in) r.bytes += tensorBytes(bufs_[b]);
  if (kind == K_CONV) {
    const ConvPlan& p = l.conv;
    const Buf& in = bufs_[l.in[0]];
    r.macs = (int64_t)p.P * p.O * p.Cg * p.taps;
    r.bytes += (int64_t)p.O * p.Cg * p.taps;  // weights
    if (p.fuseOut) r.bytes += 2 * tensorBytes(out);  // the fused shortcut's other input and output
    const char* k = kernels_->path ? kernels_->path(p, in, out) : nullptr;
    r.kernel = k ? k : p.kind == CONV_GEMM ? (p.direct ? "gemm direct" : "gemm panel") : p.kind == CONV_DW ? "depthwise" : "generic";
    if (p.fuseOut) r.kernel += " + shortcut";
    return r;
  }
  static const char* names[] = {"conv", "maxpool", "route", "shortcut", "upsample", "dropout", "yolo"};
  r.kernel = names[kind];
  return r;
}

size_t Net::count(int layer) const {
  const Buf& b = bufs_[layers_.at(layer).buf];
  return (size_t)b.c * b.h * b.w;
}

void Net::read(int layer, int32_t* dst) {
  if (retained(layer)) {
    readOwn(layer, dst);
    return;
  }
  if (!twin_) twin_.reset(new Net(src_, inC_, inH_, inW_, kernels_, pool_.size(), true));
  if (twinFrame_ != frames_) {
    const Buf &a = bufs_[0], &t = twin_->bufs_[0];
    memcpy(t.words, a.words, sizeof(uint32_t) * (size_t)(a.cb * a.planeStride));
    twin_->compute();
    twinFrame_ = frames_;
  }
  twin_->readOwn(layer, dst);
}

void Net::readOwn(int layer, int32_t* dst) const {
  const Buf& b = bufs_[layers_.at(layer).buf];
  if (b.raw) {
    memcpy(dst, b.raw, sizeof(int32_t) * count(layer));
    return;
  }
  for (int c = 0; c < b.c; c++)
    for (int y = 0; y < b.h; y++) {
      const uint8_t* s = (const uint8_t*)b.at(c / 4, y, 0) + c % 4;
      int32_t* d = dst + ((size_t)c * b.h + y) * b.w;
      for (int x = 0; x < b.w; x++) d[x] = (int32_t)s[4 * x] - b.zero;
    }
}

}  // namespace zqint
