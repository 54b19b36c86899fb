// AVX2 kernels (binding.gyp: -mavx2 -mfma for this file; selected at run time), for x86-64 CPUs
// without AVX-512. AVX2 has no byte dot product without saturation (vpmaddubsw saturates at 16
// bits), so the gemm widens the panel to 16-bit signed values once per vector (the stored byte
// ^ 0x80 is the real value) and multiplies pairs of channels with vpmaddwd; the accumulators start
// at 128 * sum(Q) to match the plan's bias (which expects the stored bytes' dot product).
// depthwise: 2 pixels x 4 channels per vector, vpmaddwd per tap. Epilogue: finishOne in 8 lanes.
#include <immintrin.h>

#include <cstring>

#include "finish.h"
#include "plan.h"

namespace {

using namespace zqint;

struct Epi2 {
  bool needS, tAdd, m32, leaky32, rAdd, anyLeft;
  int act, lo, hi;
  explicit Epi2(const ConvPlan& p)
      : needS(p.needS), tAdd(p.tAdd), m32(p.m32), leaky32(p.leaky32), rAdd(p.rAdd), anyLeft(p.anyLeft), act(p.act), lo(p.lo), hi(p.hi) {}
  // The vector epilogue covers everything but look-up tables and 64-bit M*S.
  bool vector() const { return act != A_LUT && (!needS || m32); }
};

struct Shift2 {
  __m256i r, rm1, bit;
};

inline Shift2 shift2(__m256i r) {
  const __m256i one = _mm256_set1_epi32(1);
  return {r, _mm256_max_epi32(_mm256_sub_epi32(r, one), _mm256_setzero_si256()), _mm256_min_epi32(r, one)};
}

// Exact rshr for shifts 0..63 (counts above 31 fill with the sign: the exact 0 for |v| < 2^31).
inline __m256i rshr2(__m256i v, const Shift2& s) {
  return _mm256_add_epi32(_mm256_srav_epi32(v, s.r), _mm256_and_si256(_mm256_srav_epi32(v, s.rm1), s.bit));
}

struct VP2 {
  __m256i bias, mul, trnd, rrnd, lsh;
  Shift2 tsh, rsh;
};

inline __m256i epilogue2(const Epi2& e, const VP2& v, __m256i acc, __m256i S) {
  __m256i y = _mm256_add_epi32(acc, v.bias);
  if (e.needS) {
    const __m256i ms = _mm256_mullo_epi32(S, v.mul);
    y = _mm256_add_epi32(y, e.tAdd ? _mm256_srav_epi32(_mm256_add_epi32(ms, v.trnd), v.tsh.r) : rshr2(ms, v.tsh));
  }
  if (e.act == A_LEAKY) {
    const __m256i neg = _mm256_cmpgt_epi32(_mm256_setzero_si256(), y);
    const __m256i k = _mm256_set1_epi32(3277), half = _mm256_set1_epi32(16384);
    __m256i l;
    if (e.leaky32) {
      l = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(y, k), half), 15);
    } else {
      const __m256i hi = _mm256_mullo_epi32(_mm256_srai_epi32(y, 15), k);
      const __m256i lo = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(y, _mm256_set1_epi32(0x7fff)), k), half), 15);
      l = _mm256_add_epi32(hi, lo);
    }
    y = _mm256_blendv_epi8(y, l, neg);
  } else if (e.act == A_RELU) {
    y = _mm256_max_epi32(y, _mm256_setzero_si256());
  }
  const __m256i vlo = _mm256_set1_epi32(e.lo), vhi = _mm256_set1_epi32(e.hi);
  const __m256i q = e.rAdd ? _mm256_srav_epi32(_mm256_add_epi32(y, v.rrnd), v.rsh.r) : rshr2(y, v.rsh);
  __m256i r = _mm256_min_epi32(_mm256_max_epi32(q, vlo), vhi);
  if (e.anyLeft) r = _mm256_min_epi32(_mm256_max_epi32(_mm256_sllv_epi32(r, v.lsh), vlo), vhi);
  return r;
}

inline VP2 params2(const ConvPlan& p, int c) {
  return {_mm256_set1_epi32(p.bias[c]), _mm256_set1_epi32(p.mul[c]),  _mm256_set1_epi32(p.trnd[c]),
          _mm256_set1_epi32(p.rrnd[c]), _mm256_set1_epi32(p.lsh[c]), shift2(_mm256_set1_epi32(p.tsh[c])),
          shift2(_mm256_set1_epi32(p.rsh[c]))};
}

inline __m256i pack4x(__m256i r0, __m256i r1, __m256i r2, __m256i r3) {
  const __m256i off = _mm256_set1_epi32(128);
  __m256i w = _mm256_add_epi32(r0, off);
  w = _mm256_or_si256(w, _mm256_slli_epi32(_mm256_add_epi32(r1, off), 8));
  w = _mm256_or_si256(w, _mm256_slli_epi32(_mm256_add_epi32(r2, off), 16));
  return _mm256_or_si256(w, _mm256_slli_epi32(_mm256_add_epi32(r3, off), 24));
}

void gemmAvx2(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int v0, int v1, uint32_t* scratch) {
  // Local copies: stores through byte pointers may alias the plan, which would force reloads.
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  const Epi2 e(p);
  const bool vec = e.vector();
  // Panel: per chunk, 16 positions x 4 channels as int16 (4 vectors of 4 positions).
  int16_t* panel = (int16_t*)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  const __m256i flip = _mm256_set1_epi8((char)0x80), ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int v = v0; v < v1; v++) {
    const int pos0 = v * VL;
    const int lanes = p.P - pos0 < VL ? p.P - pos0 : VL;
    for (int g = 0; g < p.G; g++) {
      const uint32_t* base = in.words + (int64_t)g * p.cbg * in.planeStride;
      __m256i Su[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
      for (int t = 0; t < p.taps; t++) {
        const int64_t toff = (int64_t)(t / p.k) * in.rowStride + (t % p.k);
        for (int b = 0; b < p.cbg; b++) {
          int16_t* row = panel + (size_t)(t * p.cbg + b) * VL * 4;
          const uint32_t* src = base + b * in.planeStride + toff;
          alignas(32) uint32_t tmp[VL];
          const uint32_t* w;
          if (p.direct && lanes == VL) {
            w = src + pos0;
          } else {
            for (int l = 0; l < VL; l++) tmp[l] = l < lanes ? src[p.pidx[pos0 + l]] : 0x01010101u * in.zero;
            w = tmp;
          }
          for (int h = 0; h < 2; h++) {
            const __m256i x = _mm256_loadu_si256((const __m256i*)(w + 8 * h));
            Su[h] = _mm256_add_epi32(Su[h], _mm256_madd_epi16(_mm256_maddubs_epi16(x, ones8), ones16));
            const __m256i xs = _mm256_xor_si256(x, flip);
            _mm256_store_si256((__m256i*)(row + 32 * h), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(xs)));
            _mm256_store_si256((__m256i*)(row + 32 * h + 16), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xs, 1)));
          }
        }
      }
      const __m256i soff = _mm256_set1_epi32(p.sOff);
      const __m256i S[2] = {_mm256_sub_epi32(Su[0], soff), _mm256_sub_epi32(Su[1], soff)};
      for (int tile = 0; tile < p.ntiles; tile++) {
        const int oc0 = g * p.Og + tile * TILE_O;
        const int16_t* wt16 = p.wgemm16 + ((size_t)(g * p.ntiles + tile) * p.chunks) * TILE_O * 4;
        for (int half = 0; half < TILE_O / 4; half++) {
          if (tile * TILE_O + 4 * half >= p.Og) break;
          const int pc0 = (g * p.ntiles + tile) * TILE_O + 4 * half;
          __m256i res[4][2];
          for (int h = 0; h < 2; h++) {
            // 4 channels x 8 positions; each accumulator holds 4 positions x 2 partial sums.
            __m256i a[4][2];
            for (int c = 0; c < 4; c++) a[c][0] = a[c][1] = _mm256_setzero_si256();
            const int64_t* w = (const int64_t*)wt16 + 4 * half;
            const int16_t* x = panel + 32 * h;
            for (int ch = 0; ch < p.chunks; ch++, w += TILE_O, x += VL * 4) {
              const __m256i x0 = _mm256_load_si256((const __m256i*)x), x1 = _mm256_load_si256((const __m256i*)(x + 16));
              for (int c = 0; c < 4; c++) {
                const __m256i wv = _mm256_set1_epi64x(w[c]);  // the channel's 4 weights as int16
                a[c][0] = _mm256_add_epi32(a[c][0], _mm256_madd_epi16(x0, wv));
                a[c][1] = _mm256_add_epi32(a[c][1], _mm256_madd_epi16(x1, wv));
              }
            }
            for (int c = 0; c < 4; c++) {
              // Pairs of partial sums -> 8 positions in order, plus the input-offset term.
              __m256i acc = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a[c][0], a[c][1]), 0xd8);
              acc = _mm256_add_epi32(acc, _mm256_set1_epi32(128 * p.qsum[pc0 + c]));
              if (vec) {
                res[c][h] = epilogue2(e, params2(p, pc0 + c), acc, S[h]);
              } else {
                alignas(32) int32_t av[8], sv[8], rv[8];
                _mm256_store_si256((__m256i*)av, acc);
                _mm256_store_si256((__m256i*)sv, S[h]);
                for (int l = 0; l < 8; l++) rv[l] = finishOne(p, p.mul, p.tsh, p.rsh, p.lsh, p.lutsh, pc0 + c, av[l] + p.bias[pc0 + c], sv[l]);
                res[c][h] = _mm256_load_si256((const __m256i*)rv);
              }
            }
          }
          const int oc = oc0 + 4 * half;
          if (out.raw) {
            for (int c = 0; c < 4 && tile * TILE_O + 4 * half + c < p.Og; c++) {
              alignas(32) int32_t rv[VL];
              _mm256_store_si256((__m256i*)rv, res[c][0]);
              _mm256_store_si256((__m256i*)(rv + 8), res[c][1]);
              memcpy(out.raw + (int64_t)(oc + c) * p.P + pos0, rv, 4 * (size_t)lanes);
            }
            continue;
          }
          alignas(32) uint32_t words[VL];
          _mm256_store_si256((__m256i*)words, pack4x(res[0][0], res[1][0], res[2][0], res[3][0]));
          _mm256_store_si256((__m256i*)(words + 8), pack4x(res[0][1], res[1][1], res[2][1], res[3][1]));
          uint32_t* plane = out.words + (int64_t)(oc >> 2) * out.planeStride;
          for (int s = p.segStart[v]; s < p.segStart[v + 1]; s++) {
            const Seg& sg = p.segs[s];
            memcpy(plane + sg.off, words + sg.lane0, sizeof(uint32_t) * sg.count);
          }
        }
      }
    }
  }
}

void dwAvx2(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int y0, int y1) {
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  const Epi2 e(p);
  if (p.taps > 64 || !e.vector() || out.raw) {
    zqint::kScalar.dw(plan, inBuf, outBuf, y0, y1);
    return;
  }
  const int cb = (p.C + 3) / 4, k = p.k, st = p.stride;
  alignas(32) int32_t wv[64][8];
  for (int b = 0; b < cb; b++) {
    const uint8_t* ip = (const uint8_t*)(in.words + b * in.planeStride);
    for (int t = 0; t < p.taps; t++)
      for (int l = 0; l < 8; l++) wv[t][l] = p.wdw[((size_t)b * p.taps + t) * 4 + (l & 3)] & 0xffff;
    auto lanes = [&](const int32_t* a) { return _mm256_loadu_si256((const __m256i*)(a + b * VL)); };
    const VP2 vp{lanes(p.vbias), lanes(p.vmul), lanes(p.vtrnd), lanes(p.vrrnd), lanes(p.vlsh), shift2(lanes(p.vtsh)), shift2(lanes(p.vrsh))};
    const __m256i soff = _mm256_set1_epi32(p.sOff), off = _mm256_set1_epi32(128);
    for (int y = y0; y < y1; y++) {
      const int iy0 = y * st - p.pad + in.b;
      for (int x0 = 0; x0 < p.Wo; x0 += 4) {
        const int n = p.Wo - x0 < 4 ? p.Wo - x0 : 4;
        // Two vectors of 2 pixels x 4 channels.
        __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, S0 = acc0, S1 = acc0;
        for (int ky = 0; ky < k; ky++) {
          const uint8_t* row = ip + ((int64_t)(iy0 + ky) * in.rowStride + (x0 * st - p.pad + in.b)) * 4;
          for (int kx = 0; kx < k; kx++) {
            const uint8_t* q = row + kx * 4;
            __m128i lo, hi;
            if (st == 1) {
              lo = _mm_loadl_epi64((const __m128i*)q);
              hi = _mm_loadl_epi64((const __m128i*)(q + 8));
            } else {
              lo = _mm_set_epi32(0, 0, *(const int32_t*)(q + 4 * st), *(const int32_t*)q);
              hi = _mm_set_epi32(0, 0, *(const int32_t*)(q + 12 * st), *(const int32_t*)(q + 8 * st));
            }
            const __m256i x0v = _mm256_cvtepu8_epi32(lo), x1v = _mm256_cvtepu8_epi32(hi);
            const __m256i w = _mm256_load_si256((const __m256i*)wv[ky * k + kx]);
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(x0v, w));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(x1v, w));
            S0 = _mm256_add_epi32(S0, x0v);
            S1 = _mm256_add_epi32(S1, x1v);
          }
        }
        const __m256i r0 = _mm256_add_epi32(epilogue2(e, vp, acc0, _mm256_sub_epi32(S0, soff)), off);
        const __m256i r1 = _mm256_add_epi32(epilogue2(e, vp, acc1, _mm256_sub_epi32(S1, soff)), off);
        // 16 values 0..255 -> bytes, in order (packs work within 128-bit lanes).
        const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(r0, r1), 0xd8);
        const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
        uint8_t* dst = (uint8_t*)out.at(b, y, x0);
        if (n == 4) _mm_storeu_si128((__m128i*)dst, bytes);
        else {
          alignas(16) uint8_t tmp[16];
          _mm_store_si128((__m128i*)tmp, bytes);
          memcpy(dst, tmp, 4 * (size_t)n);
        }
      }
    }
  }
}


// ---- Fast forms (plan.fast): the AVX-512 fast epilogue in 8 lanes, 16-bit products. ----
// Every product is a vpmaddwd of zero-extended stored bytes (0..255) by 16-bit weights: two taps or
// two input channels per 32-bit lane, exact (vpmaddubsw would be as many multiplies here and can
// saturate). The bias expects the stored bytes' dot product, which this is.

constexpr int A_LEAKYW = 4;  // leaky whose Y*3277 may pass 32 bits (plan.leaky32 false)

struct FastChan2 {
  __m256i mul, trnd, tsh, rsh, k;
};

template <int ACT>
inline const int32_t* fastBias2(const ConvPlan& p) {
  return ACT == A_LEAKYW ? p.bias : p.fbias;
}

template <int ACT, bool MADD>
inline FastChan2 fastChan2(const ConvPlan& p, int c, int32_t trndAdjust = 0) {
  return {_mm256_set1_epi32(MADD ? (p.mul[c] & 0xffff) : p.mul[c]), _mm256_set1_epi32(p.trnd[c] + trndAdjust), _mm256_set1_epi32(p.tsh[c]),
          _mm256_set1_epi32(p.rsh[c]), _mm256_set1_epi32(ACT == A_LEAKYW ? p.rrnd[c] : p.fk[c])};
}

// y = acc + fastBias, S the window sums (real for the gemm; stored-byte with trnd adjusted for the
// depthwise). Leaves (A(Y) + rrnd) >> rsh, not yet saturated (the reasoning: the AVX-512 fastEpi).
template <int ACT, bool MADD>
__attribute__((always_inline)) inline __m256i fastEpi2(const FastChan2& ch, __m256i y, __m256i S) {
  __m256i t = MADD ? _mm256_madd_epi16(S, ch.mul) : _mm256_mullo_epi32(S, ch.mul);
  y = _mm256_add_epi32(y, _mm256_srav_epi32(_mm256_add_epi32(t, ch.trnd), ch.tsh));
  if (ACT == A_LEAKY) {
    t = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(y, _mm256_set1_epi32(3277)), ch.k), 15);
    y = _mm256_max_epi32(y, t);
  } else if (ACT == A_LEAKYW) {
    const __m256i hi = _mm256_mullo_epi32(_mm256_srai_epi32(y, 15), _mm256_set1_epi32(3277));
    __m256i lo = _mm256_madd_epi16(_mm256_and_si256(y, _mm256_set1_epi32(0x7fff)), _mm256_set1_epi32(3277));
    lo = _mm256_srai_epi32(_mm256_add_epi32(lo, _mm256_set1_epi32(16384)), 15);
    y = _mm256_add_epi32(_mm256_max_epi32(y, _mm256_add_epi32(hi, lo)), ch.k);
  } else if (ACT == A_RELU) {
    y = _mm256_max_epi32(y, ch.k);
  }
  return _mm256_srav_epi32(y, ch.rsh);
}

// Four channels' values at 8 positions as stored words (byte j: channel j + 128), saturated.
__attribute__((always_inline)) inline __m256i packChannels2(__m256i r0, __m256i r1, __m256i r2, __m256i r3) {
  const __m256i t = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r0, r1), _mm256_packs_epi32(r2, r3));
  return _mm256_xor_si256(_mm256_shuffle_epi8(b, t), _mm256_set1_epi8((char)0x80));
}

// Stored words (8 positions) -> their channel pairs as zero-extended 16-bit values: lo holds
// channels 0 and 1 of each position, hi channels 2 and 3.
__attribute__((always_inline)) inline void widen2(__m256i x, __m256i& lo, __m256i& hi) {
  const __m256i a = _mm256_setr_epi8(0, -1, 1, -1, 4, -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1, 0, -1, 1, -1, 4, -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1);
  const __m256i b = _mm256_setr_epi8(2, -1, 3, -1, 6, -1, 7, -1, 10, -1, 11, -1, 14, -1, 15, -1, 2, -1, 3, -1, 6, -1, 7, -1, 10, -1, 11, -1, 14, -1, 15, -1);
  lo = _mm256_shuffle_epi8(x, a);
  hi = _mm256_shuffle_epi8(x, b);
}

// sat8(rshr(x, r)) (r >= 0) or sat8(x * 2^-r) on 16-bit lanes holding 8-bit values.
inline __m256i align16x(__m256i x, int r) {
  if (r > 0) {
    const int s = r > 15 ? 15 : r;  // from 9 on every 8-bit value rounds to 0 either way
    return _mm256_sra_epi16(_mm256_add_epi16(x, _mm256_set1_epi16((short)(1 << (s - 1)))), _mm_cvtsi32_si128(s));
  }
  if (r == 0) return x;
  const int s = -r > 8 ? 8 : -r;  // from 8 on every nonzero value saturates either way
  return _mm256_min_epi16(_mm256_max_epi16(_mm256_sll_epi16(x, _mm_cvtsi32_si128(s)), _mm256_set1_epi16(-128)), _mm256_set1_epi16(127));
}

// The shortcut fused after a fast conv, on stored words (8 positions): a = the conv's words, b = the
// other input's (the AVX-512 shortcutWords in 8 lanes).
inline __m256i shortcutWords2(const ConvPlan& p, __m256i a, __m256i b) {
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  a = _mm256_xor_si256(a, flip);
  b = _mm256_xor_si256(b, flip);
  __m256i y[2];
  for (int h = 0; h < 2; h++) {
    const __m256i ah = _mm256_srai_epi16(h ? _mm256_unpackhi_epi8(a, a) : _mm256_unpacklo_epi8(a, a), 8);
    const __m256i bh = _mm256_srai_epi16(h ? _mm256_unpackhi_epi8(b, b) : _mm256_unpacklo_epi8(b, b), 8);
    __m256i v = _mm256_add_epi16(align16x(ah, p.fuseSa), align16x(bh, p.fuseSb));
    if (p.fuseAct != A_LINEAR) {
      v = _mm256_min_epi16(_mm256_max_epi16(v, _mm256_set1_epi16(-128)), _mm256_set1_epi16(127));
      if (p.fuseAct == A_LEAKY) v = _mm256_max_epi16(v, _mm256_mulhrs_epi16(v, _mm256_set1_epi16(3277)));
      else if (p.fuseAct == A_RELU) v = _mm256_max_epi16(v, _mm256_setzero_si256());
    }
    y[h] = v;
  }
  return _mm256_xor_si256(_mm256_packs_epi16(y[0], y[1]), flip);
}

// One position vector (16 positions, two halves of 8) x one tile of 8 output channels, from the
// 16-bit panel ([chunk][half][channel pair][8 lanes]); finished, packed and stored.
template <int ACT, bool MADD>
__attribute__((always_inline)) inline void gemmTileFast2(const ConvPlan& p, const Buf& out, int g, int tile, int v, const int16_t* panel,
                                                         const __m256i* S) {
  const int pc0 = (g * p.ntiles + tile) * TILE_O;
  const int32_t* wt = (const int32_t*)(p.wgemm16 + (size_t)pc0 * p.chunks * 4);  // [chunk][TILE_O][2 pairs]
  const int32_t* bias = fastBias2<ACT>(p);
  const int oc0 = g * p.Og + tile * TILE_O;
  const int pos0 = v * VL;
  for (int q = 0; q < TILE_O / 4; q++) {
    if (tile * TILE_O + 4 * q >= p.Og) break;
    // 4 channels x 2 halves.
    __m256i acc[4][2];
    for (int c = 0; c < 4; c++) acc[c][0] = acc[c][1] = _mm256_set1_epi32(bias[pc0 + 4 * q + c]);
    const int32_t* w = wt + 8 * q;
    const __m256i* x = (const __m256i*)panel;
    for (int ch = 0; ch < p.chunks; ch++, w += 2 * TILE_O, x += 4) {
      const __m256i x00 = _mm256_load_si256(x), x01 = _mm256_load_si256(x + 1);
      const __m256i x10 = _mm256_load_si256(x + 2), x11 = _mm256_load_si256(x + 3);
      for (int c = 0; c < 4; c++) {
        const __m256i w0 = _mm256_set1_epi32(w[2 * c]), w1 = _mm256_set1_epi32(w[2 * c + 1]);
        acc[c][0] = _mm256_add_epi32(acc[c][0], _mm256_add_epi32(_mm256_madd_epi16(x00, w0), _mm256_madd_epi16(x01, w1)));
        acc[c][1] = _mm256_add_epi32(acc[c][1], _mm256_add_epi32(_mm256_madd_epi16(x10, w0), _mm256_madd_epi16(x11, w1)));
      }
    }
    __m256i r[4][2];
    for (int c = 0; c < 4; c++) {
      const FastChan2 fc = fastChan2<ACT, MADD>(p, pc0 + 4 * q + c);
      for (int h = 0; h < 2; h++) r[c][h] = fastEpi2<ACT, MADD>(fc, acc[c][h], S[h]);
    }
    const int lanes = p.P - pos0 < VL ? p.P - pos0 : VL;
    if (out.raw) {
      const __m256i lo = _mm256_set1_epi32(p.lo), hi = _mm256_set1_epi32(p.hi);
      for (int c = 0; c < 4 && tile * TILE_O + 4 * q + c < p.Og; c++) {
        alignas(32) int32_t rv[VL];
        for (int h = 0; h < 2; h++) _mm256_store_si256((__m256i*)(rv + 8 * h), _mm256_min_epi32(_mm256_max_epi32(r[c][h], lo), hi));
        memcpy(out.raw + (int64_t)(oc0 + 4 * q + c) * p.P + pos0, rv, 4 * (size_t)lanes);
      }
      continue;
    }
    const __m256i wd[2] = {packChannels2(r[0][0], r[1][0], r[2][0], r[3][0]), packChannels2(r[0][1], r[1][1], r[2][1], r[3][1])};
    const int64_t poff = (int64_t)((oc0 >> 2) + q) * out.planeStride;
    const int s0 = p.segStart[v], s1 = p.segStart[v + 1];
    const bool whole = s1 - s0 == 1 && p.segs[s0].count == VL;
    // Stores (and loads) a vector of 16 words at its runs of a plane.
    auto store = [&](uint32_t* plane, const __m256i* x) {
      if (whole) {
        _mm256_storeu_si256((__m256i*)(plane + p.segs[s0].off), x[0]);
        _mm256_storeu_si256((__m256i*)(plane + p.segs[s0].off + 8), x[1]);
        return;
      }
      alignas(32) uint32_t words[VL];
      _mm256_store_si256((__m256i*)words, x[0]);
      _mm256_store_si256((__m256i*)(words + 8), x[1]);
      for (int s = s0; s < s1; s++) memcpy(plane + p.segs[s].off, words + p.segs[s].lane0, sizeof(uint32_t) * p.segs[s].count);
    };
    store(out.words + poff, wd);
    if (p.fuseOut) {
      const uint32_t* add = p.fuseAdd + poff;
      __m256i b[2];
      if (whole) {
        b[0] = _mm256_loadu_si256((const __m256i*)(add + p.segs[s0].off));
        b[1] = _mm256_loadu_si256((const __m256i*)(add + p.segs[s0].off + 8));
      } else {
        alignas(32) uint32_t words[VL] = {};
        for (int s = s0; s < s1; s++) memcpy(words + p.segs[s].lane0, add + p.segs[s].off, sizeof(uint32_t) * p.segs[s].count);
        b[0] = _mm256_load_si256((const __m256i*)words);
        b[1] = _mm256_load_si256((const __m256i*)(words + 8));
      }
      const __m256i y[2] = {shortcutWords2(p, wd[0], b[0]), shortcutWords2(p, wd[1], b[1])};
      store(p.fuseOut + poff, y);
    }
  }
}

template <int ACT, bool MADD>
void gemmFast2(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int v0, int v1, uint32_t* scratch) {
  // Local copies: stores through byte pointers may alias the plan, which would force reloads.
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  int16_t* panel = (int16_t*)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1), soff = _mm256_set1_epi32(p.sOff);
  for (int v = v0; v < v1; v++) {
    const int pos0 = v * VL;
    const int lanes = p.P - pos0 < VL ? p.P - pos0 : VL;
    const bool inPlace = (p.direct || p.affine[v]) && lanes == VL;
    for (int g = 0; g < p.G; g++) {
      const uint32_t* base = in.words + (int64_t)g * p.cbg * in.planeStride;
      __m256i Su[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
      __m256i* pv = (__m256i*)panel;
      for (int t = 0; t < p.taps; t++) {
        const int64_t toff = (int64_t)(t / p.k) * in.rowStride + (t % p.k);
        for (int b = 0; b < p.cbg; b++, pv += 4) {
          const uint32_t* src = base + b * in.planeStride + toff;
          __m256i x[2];
          if (inPlace && p.stride == 1) {
            x[0] = _mm256_loadu_si256((const __m256i*)(src + p.pidx[pos0]));
            x[1] = _mm256_loadu_si256((const __m256i*)(src + p.pidx[pos0] + 8));
          } else if (inPlace && p.stride == 2) {
            // The even words of 32 (the last one is read, not used, as in the AVX-512 kernel).
            const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            const uint32_t* q = src + p.pidx[pos0];
            for (int h = 0; h < 2; h++) {
              const __m256i a = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i*)(q + 16 * h)), even);
              const __m256i c = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i*)(q + 16 * h + 8)), even);
              x[h] = _mm256_permute2x128_si256(a, c, 0x20);
            }
          } else {
            alignas(32) uint32_t tmp[VL];
            for (int l = 0; l < VL; l++) tmp[l] = l < lanes ? src[p.pidx[pos0 + l]] : 0x01010101u * in.zero;
            x[0] = _mm256_load_si256((const __m256i*)tmp);
            x[1] = _mm256_load_si256((const __m256i*)(tmp + 8));
          }
          for (int h = 0; h < 2; h++) {
            Su[h] = _mm256_add_epi32(Su[h], _mm256_madd_epi16(_mm256_maddubs_epi16(x[h], ones8), ones16));
            widen2(x[h], pv[2 * h], pv[2 * h + 1]);
          }
        }
      }
      const __m256i S[2] = {_mm256_sub_epi32(Su[0], soff), _mm256_sub_epi32(Su[1], soff)};
      for (int tile = 0; tile < p.ntiles; tile++) gemmTileFast2<ACT, MADD>(p, out, g, tile, v, panel, S);
    }
  }
}

using GemmFn = void (*)(const ConvPlan&, const Buf&, const Buf&, int, int, uint32_t*);
template <bool MADD>
GemmFn gemmFast2For(const ConvPlan& p) {
  return p.act == A_LEAKY   ? (p.leaky32 ? gemmFast2<A_LEAKY, MADD> : gemmFast2<A_LEAKYW, MADD>)
         : p.act == A_RELU ? gemmFast2<A_RELU, MADD>
                           : gemmFast2<A_LINEAR, MADD>;
}

// Depthwise, fast form. Per channel block, the input rows an output row needs are made planar
// (a ring of rows, each transposed once: consecutive output rows share k - stride of them); then
// for 8 output pixels of each channel a byte shuffle builds, per 32-bit lane, the zero-extended
// 16-bit values of two horizontally consecutive taps (pixels 0-3 from one 16-byte load, 4-7 from
// a second one 4*stride further), and vpmaddwd applies two taps at once. The window sums (stored
// bytes) accumulate as 16-bit lanes of the same shuffles; trnd absorbs -sOff*M. Output rows go in
// bands of two: each input row of a band is loaded and shuffled once per 8 pixels and feeds both
// rows whose windows hold it (a 3x3 of stride 1: 4 rows' loads and shuffles for the two output
// rows instead of 6).
template <int K, int ST, int ACT, bool MADD>
void dwFast2(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int y0, int y1) {
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  constexpr int NP = (K + 1) / 2;  // tap pairs per kernel row
  constexpr int BAND = 2, NIN = (BAND - 1) * ST + K, RING = NIN + ST;
  const int rowWords = in.rowStride;
  const int rowBytes = ((rowWords + 31) / 32) * 32 + 64;
  alignas(32) uint8_t planar[RING * 4 * (1024 + 64)];
  int tags[RING];
  __m256i idx[NP];
  for (int g = 0; g < NP; g++) {
    alignas(32) int8_t ib[32];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 2; j++) {
        const int kx = 2 * g + j;
        ib[4 * i + 2 * j] = (int8_t)(kx < K ? i * ST + kx : -1);
        ib[4 * i + 2 * j + 1] = -1;
      }
    for (int i = 0; i < 16; i++) ib[16 + i] = ib[i];
    idx[g] = _mm256_load_si256((const __m256i*)ib);
  }
  // 8 words -> per 128-bit lane 4 bytes of each channel, then the channels' 8 bytes as qwords.
  const __m256i deint = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m256i lanes = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i ones16 = _mm256_set1_epi16(1);
  const int cb = (p.C + 3) / 4;
  for (int b = 0; b < cb; b++) {
    const uint32_t* plane = in.words + b * in.planeStride;
    for (int r = 0; r < RING; r++) tags[r] = -1;
    alignas(32) __m256i wk[4][K][NP];
    FastChan2 fc[4];
    __m256i bias[4];
    for (int c = 0; c < 4; c++) {
      const int ch = 4 * b + c;
      const int8_t* wr = (const int8_t*)(p.wdwRow + (size_t)ch * K * ((K + 3) / 4));
      for (int ky = 0; ky < K; ky++)
        for (int g = 0; g < NP; g++) {
          const int8_t* row = wr + ky * 4 * ((K + 3) / 4);
          const int16_t a = row[2 * g], bb = 2 * g + 1 < K ? row[2 * g + 1] : 0;
          wk[c][ky][g] = _mm256_set1_epi32((int32_t)(uint16_t)a | (int32_t)((uint32_t)(uint16_t)bb << 16));
        }
      fc[c] = fastChan2<ACT, MADD>(p, ch, -p.sOff * p.mul[ch]);
      bias[c] = _mm256_set1_epi32(fastBias2<ACT>(p)[ch]);
    }
    for (int y = y0; y < y1; y += BAND) {
      const int nr = y1 - y < BAND ? y1 - y : BAND;
      const int iy0 = y * ST - p.pad + in.b, last = (nr - 1) * ST + K - 1;  // the band's input rows: iy0 + [0, last]
      const uint8_t* rows[NIN];
      bandRows<NIN, RING>(planar, (size_t)4 * rowBytes, tags, iy0, last, rows, [&](int iy, uint8_t* dst) {
        const uint32_t* src = plane + (int64_t)iy * rowWords;
        for (int x = 0; x < rowWords; x += 8) {
          const int n = rowWords - x;
          __m256i v = n >= 8 ? _mm256_loadu_si256((const __m256i*)(src + x))
                             : _mm256_maskload_epi32((const int*)(src + x), _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
          v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, deint), lanes);
          const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
          _mm_storel_epi64((__m128i*)(dst + x), lo);
          _mm_storeh_pd((double*)(dst + rowBytes + x), _mm_castsi128_pd(lo));
          _mm_storel_epi64((__m128i*)(dst + 2 * rowBytes + x), hi);
          _mm_storeh_pd((double*)(dst + 3 * rowBytes + x), _mm_castsi128_pd(hi));
        }
      });
      for (int x0 = 0; x0 < p.Wo; x0 += 8) {
        const int ix0 = x0 * ST - p.pad + in.b;
        __m256i R[BAND][4];
        for (int c = 0; c < 4; c++) {
          // The band's windows of this column first, then each output row's products.
          __m256i win[NIN][NP];
          for (int i = 0; i < NIN; i++) {
            const uint8_t* q = rows[i] + (size_t)c * rowBytes + ix0;
            const __m256i row = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i*)q)),
                                                        _mm_loadu_si128((const __m128i*)(q + 4 * ST)), 1);
            for (int g = 0; g < NP; g++) win[i][g] = _mm256_shuffle_epi8(row, idx[g]);
          }
          for (int j = 0; j < BAND; j++) {
            __m256i acc = bias[c], s16 = _mm256_setzero_si256();
            for (int ky = 0; ky < K; ky++)
              for (int g = 0; g < NP; g++) {
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(win[j * ST + ky][g], wk[c][ky][g]));
                s16 = _mm256_add_epi16(s16, win[j * ST + ky][g]);
              }
            R[j][c] = fastEpi2<ACT, MADD>(fc[c], acc, _mm256_madd_epi16(s16, ones16));
          }
        }
        const int n = p.Wo - x0;
        for (int j = 0; j < nr; j++) {
          const __m256i words = packChannels2(R[j][0], R[j][1], R[j][2], R[j][3]);
          uint32_t* dst = out.at(b, y + j, x0);
          if (n >= 8) _mm256_storeu_si256((__m256i*)dst, words);
          else _mm256_maskstore_epi32((int*)dst, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), words);
        }
      }
    }
  }
}

using DwFn = void (*)(const ConvPlan&, const Buf&, const Buf&, int, int);
template <int K, int ST, bool MADD>
DwFn dwFast2Act(const ConvPlan& p) {
  return p.act == A_LEAKY   ? (p.leaky32 ? dwFast2<K, ST, A_LEAKY, MADD> : dwFast2<K, ST, A_LEAKYW, MADD>)
         : p.act == A_RELU ? dwFast2<K, ST, A_RELU, MADD>
                           : dwFast2<K, ST, A_LINEAR, MADD>;
}
template <int K, int ST>
DwFn dwFast2Madd(const ConvPlan& p) {
  return p.madd ? dwFast2Act<K, ST, true>(p) : dwFast2Act<K, ST, false>(p);
}
// The fast depthwise for this plan and input, or nullptr.
DwFn dwFast2For(const ConvPlan& p, const Buf& in, const Buf& out) {
  if (!p.fast || out.raw || in.rowStride > 1024) return nullptr;
  if (p.k == 3) return p.stride == 1 ? dwFast2Madd<3, 1>(p) : p.stride == 2 ? dwFast2Madd<3, 2>(p) : nullptr;
  if (p.k == 5) return p.stride == 1 ? dwFast2Madd<5, 1>(p) : p.stride == 2 ? dwFast2Madd<5, 2>(p) : nullptr;
  return nullptr;
}

const char* pathAvx2(const ConvPlan& p, const Buf& in, const Buf& out) {
  if (p.kind == CONV_GENERIC) return "generic";
  if (p.kind == CONV_DW) return dwFast2For(p, in, out) ? "depthwise fast" : "depthwise";
  return p.fast ? (p.direct ? "gemm direct fast" : "gemm panel fast") : (p.direct ? "gemm direct" : "gemm panel");
}

void gemmAvx2Any(const ConvPlan& plan, const Buf& in, const Buf& out, int v0, int v1, uint32_t* scratch) {
  if (plan.fast) return (plan.madd ? gemmFast2For<true>(plan) : gemmFast2For<false>(plan))(plan, in, out, v0, v1, scratch);
  gemmAvx2(plan, in, out, v0, v1, scratch);
}

void dwAvx2Any(const ConvPlan& plan, const Buf& in, const Buf& out, int y0, int y1) {
  if (DwFn f = dwFast2For(plan, in, out)) return f(plan, in, out, y0, y1);
  dwAvx2(plan, in, out, y0, y1);
}

}  // namespace

namespace zqint {
extern const Kernels kAvx2;
const Kernels kAvx2 = {"avx2", 1, gemmAvx2Any, dwAvx2Any, nullptr, pathAvx2};
}  // namespace zqint
