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

}  // namespace

namespace zqint {
extern const Kernels kAvx2;
const Kernels kAvx2 = {"avx2", false, gemmAvx2, dwAvx2};
}  // namespace zqint
