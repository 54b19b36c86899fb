// AVX-512 VNNI kernels (compiled with -mavx512f/bw/vl/dq/vnni; selected at run time).
// gemm: 16 output positions per vector; vpdpbusd multiplies the stored bytes (x+128, unsigned)
// by the signed weights, four input channels per 32-bit lane; the +128 is absorbed by the bias
// (plan time). depthwise: 4 pixels x 4 channels per vector, vpdpwssd per tap.
// The epilogue is finishOne (finish.h) in vector form.
#include <immintrin.h>

#include <cstring>

#include "finish.h"
#include "plan.h"

namespace {

using namespace zqint;

// A right shift by r per lane, with r-1 (or 0) and the rounding bit (r > 0) precomputed.
struct Shift {
  __m512i r, rm1, bit;
};

inline Shift shiftOf(__m512i r) {
  const __m512i one = _mm512_set1_epi32(1);
  return {r, _mm512_max_epi32(_mm512_sub_epi32(r, one), _mm512_setzero_si512()), _mm512_min_epi32(r, one)};
}

inline Shift shiftOf(int32_t r) {
  return {_mm512_set1_epi32(r), _mm512_set1_epi32(r > 0 ? r - 1 : 0), _mm512_set1_epi32(r > 0 ? 1 : 0)};
}

struct VP {
  __m512i bias, mul;
  Shift tsh, rsh;
  __m512i lsh, trnd, rrnd;
};

// rshr for per-lane shifts 0..63 on 32-bit lanes: counts above 31 fill with the sign, which gives
// the exact result for |v| < 2^31 (0).
inline __m512i rshrv(__m512i v, const Shift& s) {
  return _mm512_add_epi32(_mm512_srav_epi32(v, s.r), _mm512_and_si512(_mm512_srav_epi32(v, s.rm1), s.bit));
}

inline __m512i rshr64v(__m512i v, __m512i r) {
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i rm1 = _mm512_max_epi64(_mm512_sub_epi64(r, one), _mm512_setzero_si512());
  return _mm512_add_epi64(_mm512_srav_epi64(v, r), _mm512_and_si512(_mm512_srav_epi64(v, rm1), _mm512_min_epi64(r, one)));
}

// rshr(M*S, tsh) with the product in 64 bits; the result fits 32 bits (validation).
inline __m512i t64(__m512i S, __m512i mul, __m512i tsh) {
  const __m512i lo = _mm512_set1_epi64(0xffffffffLL);
  __m512i ev = _mm512_mul_epi32(S, mul);
  __m512i od = _mm512_mul_epi32(_mm512_srli_epi64(S, 32), _mm512_srli_epi64(mul, 32));
  ev = rshr64v(ev, _mm512_and_si512(tsh, lo));
  od = rshr64v(od, _mm512_srli_epi64(tsh, 32));
  return _mm512_mask_blend_epi32(0xAAAA, ev, _mm512_slli_epi64(od, 32));
}

// The epilogue's configuration, copied out of the plan into locals: the kernels store through byte
// pointers, which may alias the plan, and would otherwise reload every flag after every store.
struct Epi {
  bool needS, tAdd, m32, leaky32, rAdd, anyLeft;
  int act, lo, hi;
  explicit Epi(const ConvPlan& p)
      : needS(p.needS), tAdd(p.tAdd), m32(p.m32), leaky32(p.leaky32), rAdd(p.rAdd), anyLeft(p.anyLeft), act(p.act), lo(p.lo), hi(p.hi) {}
};

// acc: ACC + offset correction, S: real window sums. Returns the output values (lo..hi).
inline __m512i epilogue(const Epi& p, const VP& v, __m512i acc, __m512i S) {
  __m512i y = _mm512_add_epi32(acc, v.bias);
  if (p.needS) {
    __m512i t = p.tAdd  ? _mm512_srav_epi32(_mm512_add_epi32(_mm512_mullo_epi32(S, v.mul), v.trnd), v.tsh.r)
                : p.m32 ? rshrv(_mm512_mullo_epi32(S, v.mul), v.tsh)
                        : t64(S, v.mul, v.tsh.r);
    y = _mm512_add_epi32(y, t);
  }
  if (p.act == A_LEAKY && p.leaky32) {
    const __mmask16 neg = _mm512_cmplt_epi32_mask(y, _mm512_setzero_si512());
    const __m512i l = _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(y, _mm512_set1_epi32(3277)), _mm512_set1_epi32(16384)), 15);
    y = _mm512_mask_mov_epi32(y, neg, l);
  } else if (p.act == A_LEAKY) {
    // Branch-free: the sign of a vector of outputs is not predictable.
    const __mmask16 neg = _mm512_cmplt_epi32_mask(y, _mm512_setzero_si512());
    const __m512i k = _mm512_set1_epi32(3277);
    __m512i hi = _mm512_mullo_epi32(_mm512_srai_epi32(y, 15), k);
    __m512i lo = _mm512_srai_epi32(
        _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(y, _mm512_set1_epi32(0x7fff)), k), _mm512_set1_epi32(16384)), 15);
    y = _mm512_mask_mov_epi32(y, neg, _mm512_add_epi32(hi, lo));
  } else if (p.act == A_RELU) {
    y = _mm512_max_epi32(y, _mm512_setzero_si512());
  }
  const __m512i vlo = _mm512_set1_epi32(p.lo), vhi = _mm512_set1_epi32(p.hi);
  const __m512i q = p.rAdd ? _mm512_srav_epi32(_mm512_add_epi32(y, v.rrnd), v.rsh.r) : rshrv(y, v.rsh);
  __m512i r = _mm512_min_epi32(_mm512_max_epi32(q, vlo), vhi);
  if (p.anyLeft) r = _mm512_min_epi32(_mm512_max_epi32(_mm512_sllv_epi32(r, v.lsh), vlo), vhi);
  return r;
}

inline __m512i bcast(const int32_t* a, int i) { return _mm512_set1_epi32(a[i]); }

// Four channels' outputs (each -128..127) as stored words: byte j = value j + 128.
inline __m512i pack4(__m512i r0, __m512i r1, __m512i r2, __m512i r3) {
  const __m512i off = _mm512_set1_epi32(128);
  __m512i w = _mm512_add_epi32(r0, off);
  w = _mm512_or_si512(w, _mm512_slli_epi32(_mm512_add_epi32(r1, off), 8));
  w = _mm512_or_si512(w, _mm512_slli_epi32(_mm512_add_epi32(r2, off), 16));
  return _mm512_or_si512(w, _mm512_slli_epi32(_mm512_add_epi32(r3, off), 24));
}

inline VP channelVP(const ConvPlan& p, int c) {
  return {bcast(p.bias, c), bcast(p.mul, c), shiftOf(p.tsh[c]), shiftOf(p.rsh[c]), bcast(p.lsh, c), bcast(p.trnd, c), bcast(p.rrnd, c)};
}

// Stores a vector of 16 position words by its runs of consecutive pixels.
__attribute__((always_inline)) inline void storeVector(const ConvPlan& p, int v, uint32_t* plane, __m512i word) {
  const int s0 = p.segStart[v], s1 = p.segStart[v + 1];
  if (s1 - s0 == 1 && p.segs[s0].count == VL) {
    _mm512_storeu_si512(plane + p.segs[s0].off, word);
    return;
  }
  for (int s = s0; s < s1; s++) {
    const Seg& sg = p.segs[s];
    const __mmask16 m = (__mmask16)(((1u << sg.count) - 1) << sg.lane0);
    _mm512_mask_storeu_epi32(plane + sg.off - sg.lane0, m, word);
  }
}

// sat8(rshr(x, r)) for |x| <= 128 (route/shortcut alignment): a right shift never leaves 8 bits.
inline __m512i align8(__m512i x, int r) {
  if (r >= 0) return _mm512_srai_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(r > 0 ? 1 << (r - 1) : 0)), r);
  const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
  return _mm512_min_epi32(_mm512_max_epi32(_mm512_sllv_epi32(x, _mm512_set1_epi32(-r)), lo), hi);
}

// The shortcut fused after this conv: its 4 channels of one block at vector v.
inline __m512i fusedShortcut(const ConvPlan& p, int v, const uint32_t* addPlane, const __m512i* res) {
  __m512i bw = _mm512_setzero_si512();
  const int s0 = p.segStart[v], s1 = p.segStart[v + 1];
  if (s1 - s0 == 1 && p.segs[s0].count == VL) {
    bw = _mm512_loadu_si512(addPlane + p.segs[s0].off);
  } else {
    for (int s = s0; s < s1; s++) {
      const Seg& sg = p.segs[s];
      bw = _mm512_mask_loadu_epi32(bw, (__mmask16)(((1u << sg.count) - 1) << sg.lane0), addPlane + sg.off - sg.lane0);
    }
  }
  const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127), ff = _mm512_set1_epi32(0xff), off = _mm512_set1_epi32(128);
  __m512i r[4];
  for (int c = 0; c < 4; c++) {
    const __m512i b = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(bw, 8 * c), ff), off);
    __m512i y = _mm512_add_epi32(align8(res[c], p.fuseSa), align8(b, p.fuseSb));
    y = _mm512_min_epi32(_mm512_max_epi32(y, lo), hi);
    if (p.fuseAct == A_LEAKY) {
      const __m512i l = _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(y, _mm512_set1_epi32(3277)), _mm512_set1_epi32(16384)), 15);
      y = _mm512_mask_mov_epi32(y, _mm512_cmplt_epi32_mask(y, _mm512_setzero_si512()), l);
    } else if (p.fuseAct == A_RELU) {
      y = _mm512_max_epi32(y, _mm512_setzero_si512());
    }
    r[c] = y;
  }
  return pack4(r[0], r[1], r[2], r[3]);
}

// One tile (8 output channels) at one position vector: accumulate over the chunks (chunk c at
// rows + c * rstride), finish and store.
inline void gemmTile(const ConvPlan& p, const Epi& e, const Buf& out, const VP* vp, int g, int tile, int v, const uint32_t* rows,
                     int64_t rstride, __m512i S) {
  const int pos0 = v * VL;
  const int lanes = p.P - pos0 < VL ? p.P - pos0 : VL;
  const __mmask16 lm = (__mmask16)((1u << lanes) - 1);
  const int32_t* w = (const int32_t*)p.wgemm + ((size_t)(g * p.ntiles + tile) * p.chunks) * TILE_O;
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const uint32_t* x = rows;
  for (int c = 0; c < p.chunks; c++, w += TILE_O, x += rstride) {
    const __m512i xv = _mm512_loadu_si512(x);
    a0 = _mm512_dpbusd_epi32(a0, xv, _mm512_set1_epi32(w[0]));
    a1 = _mm512_dpbusd_epi32(a1, xv, _mm512_set1_epi32(w[1]));
    a2 = _mm512_dpbusd_epi32(a2, xv, _mm512_set1_epi32(w[2]));
    a3 = _mm512_dpbusd_epi32(a3, xv, _mm512_set1_epi32(w[3]));
    a4 = _mm512_dpbusd_epi32(a4, xv, _mm512_set1_epi32(w[4]));
    a5 = _mm512_dpbusd_epi32(a5, xv, _mm512_set1_epi32(w[5]));
    a6 = _mm512_dpbusd_epi32(a6, xv, _mm512_set1_epi32(w[6]));
    a7 = _mm512_dpbusd_epi32(a7, xv, _mm512_set1_epi32(w[7]));
  }
  __m512i acc[TILE_O] = {a0, a1, a2, a3, a4, a5, a6, a7};
  const int pc0 = (g * p.ntiles + tile) * TILE_O;
  __m512i res[TILE_O];
  if (p.act == A_LUT) {
    alignas(64) int32_t av[VL], sv[VL], rv[VL];
    _mm512_store_si512(sv, S);
    for (int o = 0; o < TILE_O; o++) {
      _mm512_store_si512(av, acc[o]);
      for (int l = 0; l < VL; l++) rv[l] = finishOne(p, p.mul, p.tsh, p.rsh, p.lsh, p.lutsh, pc0 + o, av[l] + p.bias[pc0 + o], sv[l]);
      res[o] = _mm512_load_si512(rv);
    }
  } else {
    for (int o = 0; o < TILE_O; o++) res[o] = epilogue(e, vp[o], acc[o], S);
  }
  const int oc0 = g * p.Og + tile * TILE_O;
  if (out.raw) {
    for (int o = 0; o < TILE_O && tile * TILE_O + o < p.Og; o++) _mm512_mask_storeu_epi32(out.raw + (int64_t)(oc0 + o) * p.P + pos0, lm, res[o]);
    return;
  }
  for (int j = 0; j < TILE_O / 4; j++) {
    if (tile * TILE_O + 4 * j >= p.Og) break;
    const __m512i word = pack4(res[4 * j], res[4 * j + 1], res[4 * j + 2], res[4 * j + 3]);
    const int64_t poff = (int64_t)((oc0 >> 2) + j) * out.planeStride;
    storeVector(p, v, out.words + poff, word);
    if (p.fuseOut) storeVector(p, v, p.fuseOut + poff, fusedShortcut(p, v, p.fuseAdd + poff, &res[4 * j]));
  }
}

// ---- The fast forms (ConvPlan::fast): 8-bit outputs whose epilogue the plan proved exact in
// 32-bit arithmetic. Y = acc + bias + ((M*S + trnd) >> tsh); leaky as max(Y, rshr(Y*3277, 15))
// (equal to the reference's branch: the scaled value is above Y exactly when Y < 0); the output
// (Y' + rrnd) >> rsh is saturated to 8 bits by the signed packs that build the stored bytes.

// Leaky for values whose product with 3277 may pass 32 bits (the plan's leaky32 false).
constexpr int A_LEAKYW = 4;

// The per-channel constants of the fast epilogue, uniform over the lanes.
struct FastChan {
  __m512i mul, trnd, tsh, rsh, k;
};

// M as the kernel multiplies it: vpmaddwd wants M in the low half of each lane and 0 in the high half.
template <bool MADD>
inline __m512i mulOf(int32_t m) {
  return _mm512_set1_epi32(MADD ? (m & 0xffff) : m);
}

// Linear, relu and leaky start from bias + rrnd (the output's rounding folded in); the wide leaky
// from the bias, adding rrnd after the activation.
template <int ACT>
inline const int32_t* fastBias(const ConvPlan& p) {
  return ACT == A_LEAKYW ? p.bias : p.fbias;
}

template <int ACT, bool MADD>
inline FastChan fastChan(const ConvPlan& p, int c, int32_t trndAdjust = 0) {
  return {mulOf<MADD>(p.mul[c]), _mm512_set1_epi32(p.trnd[c] + trndAdjust), _mm512_set1_epi32(p.tsh[c]), _mm512_set1_epi32(p.rsh[c]),
          _mm512_set1_epi32(ACT == A_LEAKYW ? p.rrnd[c] : p.fk[c])};
}

// N values side by side, one step at a time (independent chains next to each other, so that the
// long latencies of the multiplies overlap): y[i] = acc + fastBias of value i, S[i] its window
// sums, ch[i] its channel. Leaves (A(Y) + rrnd) >> rsh, not yet saturated, in y. With rrnd folded
// in (Y' = Y + rrnd): relu is max(Y', rrnd); leaky is max(Y', (Y'*3277 + k) >> 15) with
// k = 2^14 + 29491*rrnd, which is the reference's rshr(Y*3277, 15) + rrnd. Y*3277 fits 32 bits
// and rrnd <= 2^15 (leaky32), so Y*3277 + 2^14 + 2^15*rrnd does for Y < 0; for Y >= 0 it may not,
// but then it wraps to a negative value and the max still takes Y', as it must.
template <int ACT, bool MADD, int N>
__attribute__((always_inline)) inline void fastEpi(const FastChan* const* ch, __m512i* y, const __m512i* S) {
  __m512i t[N];
  for (int i = 0; i < N; i++) t[i] = MADD ? _mm512_madd_epi16(S[i], ch[i]->mul) : _mm512_mullo_epi32(S[i], ch[i]->mul);
  for (int i = 0; i < N; i++) t[i] = _mm512_add_epi32(t[i], ch[i]->trnd);
  for (int i = 0; i < N; i++) t[i] = _mm512_srav_epi32(t[i], ch[i]->tsh);
  for (int i = 0; i < N; i++) y[i] = _mm512_add_epi32(y[i], t[i]);
  if (ACT == A_LEAKY) {
    for (int i = 0; i < N; i++) t[i] = _mm512_mullo_epi32(y[i], _mm512_set1_epi32(3277));
    for (int i = 0; i < N; i++) t[i] = _mm512_add_epi32(t[i], ch[i]->k);
    for (int i = 0; i < N; i++) t[i] = _mm512_srai_epi32(t[i], 15);
    for (int i = 0; i < N; i++) y[i] = _mm512_max_epi32(y[i], t[i]);
  } else if (ACT == A_LEAKYW) {
    // Y*3277 may pass 32 bits: Y = hi * 2^15 + lo (0 <= lo < 2^15), rshr(Y*3277, 15) = hi*3277 + rshr(lo*3277, 15).
    for (int i = 0; i < N; i++) {
      const __m512i hi = _mm512_mullo_epi32(_mm512_srai_epi32(y[i], 15), _mm512_set1_epi32(3277));
      __m512i lo = _mm512_madd_epi16(_mm512_and_si512(y[i], _mm512_set1_epi32(0x7fff)), _mm512_set1_epi32(3277));
      lo = _mm512_srai_epi32(_mm512_add_epi32(lo, _mm512_set1_epi32(16384)), 15);
      y[i] = _mm512_add_epi32(_mm512_max_epi32(y[i], _mm512_add_epi32(hi, lo)), ch[i]->k);
    }
  } else if (ACT == A_RELU) {
    for (int i = 0; i < N; i++) y[i] = _mm512_max_epi32(y[i], ch[i]->k);
  }
  for (int i = 0; i < N; i++) y[i] = _mm512_srav_epi32(y[i], ch[i]->rsh);
}

// Four channels' values at 16 positions as stored words (byte j: channel j + 128), saturated:
// the packs leave, in each 128-bit lane, 4 positions of r0, then of r1, r2, r3; one byte shuffle
// makes a word per position.
__attribute__((always_inline)) inline __m512i packChannels(__m512i r0, __m512i r1, __m512i r2, __m512i r3) {
  const __m512i t = _mm512_set4_epi32(0x0f0b0703, 0x0e0a0602, 0x0d090501, 0x0c080400);
  const __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(r0, r1), _mm512_packs_epi32(r2, r3));
  return _mm512_xor_si512(_mm512_shuffle_epi8(b, t), _mm512_set1_epi8((char)0x80));
}

// sat8(rshr(x, r)) (r >= 0) or sat8(x * 2^-r) on 16-bit lanes holding 8-bit values.
inline __m512i align16(__m512i x, int r) {
  if (r > 0) {
    const int s = r > 15 ? 15 : r;  // from 9 on every 8-bit value rounds to 0 either way
    return _mm512_sra_epi16(_mm512_add_epi16(x, _mm512_set1_epi16((short)(1 << (s - 1)))), _mm_cvtsi32_si128(s));
  }
  if (r == 0) return x;
  const int s = -r > 8 ? 8 : -r;  // from 8 on every nonzero value saturates either way
  return _mm512_min_epi16(_mm512_max_epi16(_mm512_sll_epi16(x, _mm_cvtsi32_si128(s)), _mm512_set1_epi16(-128)), _mm512_set1_epi16(127));
}

// The shortcut fused after a fast conv, on stored words: a = the conv's words, b = the other input's.
__attribute__((always_inline)) inline __m512i shortcutWords(const ConvPlan& p, __m512i a, __m512i b) {
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  a = _mm512_xor_si512(a, flip);
  b = _mm512_xor_si512(b, flip);
  __m512i y[2];
  for (int h = 0; h < 2; h++) {
    // 16-bit lanes, sign-extended bytes (the unpacks and the final pack keep the byte order).
    const __m512i ah = _mm512_srai_epi16(h ? _mm512_unpackhi_epi8(a, a) : _mm512_unpacklo_epi8(a, a), 8);
    const __m512i bh = _mm512_srai_epi16(h ? _mm512_unpackhi_epi8(b, b) : _mm512_unpacklo_epi8(b, b), 8);
    __m512i v = _mm512_add_epi16(align16(ah, p.fuseSa), align16(bh, p.fuseSb));
    if (p.fuseAct != A_LINEAR) {
      v = _mm512_min_epi16(_mm512_max_epi16(v, _mm512_set1_epi16(-128)), _mm512_set1_epi16(127));
      if (p.fuseAct == A_LEAKY) v = _mm512_max_epi16(v, _mm512_mulhrs_epi16(v, _mm512_set1_epi16(3277)));
      else if (p.fuseAct == A_RELU) v = _mm512_max_epi16(v, _mm512_setzero_si512());
    }
    y[h] = v;
  }
  return _mm512_xor_si512(_mm512_packs_epi16(y[0], y[1]), flip);
}

// The words of vector v at its runs of the plane.
__attribute__((always_inline)) inline __m512i loadVector(const ConvPlan& p, int v, const uint32_t* plane) {
  const int s0 = p.segStart[v], s1 = p.segStart[v + 1];
  if (s1 - s0 == 1 && p.segs[s0].count == VL) return _mm512_loadu_si512(plane + p.segs[s0].off);
  __m512i w = _mm512_setzero_si512();
  for (int s = s0; s < s1; s++) {
    const Seg& sg = p.segs[s];
    w = _mm512_mask_loadu_epi32(w, (__mmask16)(((1u << sg.count) - 1) << sg.lane0), plane + sg.off - sg.lane0);
  }
  return w;
}

// NV position vectors x one tile of 8 output channels: accumulate over the chunks (chunk c of
// vector j at x + c * cstride + j * vstride), finish, store (and the fused shortcut).
template <int ACT, bool MADD, int NV>
__attribute__((always_inline)) inline void gemmTileFast(const ConvPlan& p, const Buf& out, int g, int tile, int v, const uint32_t* x, int64_t cstride, int64_t vstride,
                         const __m512i* S) {
  const int pc0 = (g * p.ntiles + tile) * TILE_O;
  const int32_t* w = (const int32_t*)p.wgemm + (size_t)pc0 * p.chunks;
  const int32_t* bias = fastBias<ACT>(p);
  __m512i acc[NV][TILE_O];
  for (int o = 0; o < TILE_O; o++) {
    const __m512i b = _mm512_set1_epi32(bias[pc0 + o]);
    for (int j = 0; j < NV; j++) acc[j][o] = b;
  }
  for (int c = 0; c < p.chunks; c++, w += TILE_O, x += cstride) {
    __m512i xv[NV];
    for (int j = 0; j < NV; j++) xv[j] = _mm512_loadu_si512(x + j * vstride);
    for (int o = 0; o < TILE_O; o++) {
      const __m512i wv = _mm512_set1_epi32(w[o]);
      for (int j = 0; j < NV; j++) acc[j][o] = _mm512_dpbusd_epi32(acc[j][o], xv[j], wv);
    }
  }
  const int oc0 = g * p.Og + tile * TILE_O;
  for (int h = 0; h < TILE_O / 4; h++) {
    if (tile * TILE_O + 4 * h >= p.Og) break;
    __m512i r[4 * NV];
    for (int c = 0; c < 4; c++) {
      const FastChan fc = fastChan<ACT, MADD>(p, pc0 + 4 * h + c);
      const FastChan* chs[NV];
      __m512i y[NV];
      for (int j = 0; j < NV; j++) {
        chs[j] = &fc;
        y[j] = acc[j][4 * h + c];
      }
      fastEpi<ACT, MADD, NV>(chs, y, S);
      for (int j = 0; j < NV; j++) r[4 * j + c] = y[j];
    }
    if (out.raw) {
      // 16-bit outputs, int32 CHW.
      const __m512i lo = _mm512_set1_epi32(p.lo), hi = _mm512_set1_epi32(p.hi);
      for (int j = 0; j < NV; j++) {
        const int pos0 = (v + j) * VL;
        const __mmask16 lm = (__mmask16)((1u << (p.P - pos0 < VL ? p.P - pos0 : VL)) - 1);
        for (int c = 0; c < 4 && tile * TILE_O + 4 * h + c < p.Og; c++)
          _mm512_mask_storeu_epi32(out.raw + (int64_t)(oc0 + 4 * h + c) * p.P + pos0, lm, _mm512_min_epi32(_mm512_max_epi32(r[4 * j + c], lo), hi));
      }
      continue;
    }
    const int64_t poff = (int64_t)((oc0 >> 2) + h) * out.planeStride;
    for (int j = 0; j < NV; j++) {
      const __m512i word = packChannels(r[4 * j], r[4 * j + 1], r[4 * j + 2], r[4 * j + 3]);
      storeVector(p, v + j, out.words + poff, word);
      if (p.fuseOut) storeVector(p, v + j, p.fuseOut + poff, shortcutWords(p, word, loadVector(p, v + j, p.fuseAdd + poff)));
    }
  }
}

// The windows of vector v (group base) into the panel (chunk c at panel + c * cstride); returns
// the stored-byte sum of each window.
__attribute__((always_inline)) inline __m512i buildPanel(const ConvPlan& p, const Buf& in, const uint32_t* base, int v, uint32_t* panel, int64_t cstride) {
  const __m512i ones = _mm512_set1_epi8(1);
  const int pos0 = v * VL;
  __m512i S = _mm512_setzero_si512();
  const __m512i idx = _mm512_loadu_si512(p.pidx + pos0);
  const int mode = p.affine[v] ? (p.stride == 1 ? 1 : p.stride == 2 ? 2 : 0) : 0;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const int64_t o0 = p.pidx[pos0];
  for (int t = 0; t < p.taps; t++) {
    const int64_t toff = (int64_t)(t / p.k) * in.rowStride + (t % p.k);
    for (int b = 0; b < p.cbg; b++) {
      const uint32_t* src = base + b * in.planeStride + toff;
      __m512i x;
      if (mode == 1) x = _mm512_loadu_si512(src + o0);
      else if (mode == 2) x = _mm512_permutex2var_epi32(_mm512_loadu_si512(src + o0), even, _mm512_loadu_si512(src + o0 + 16));
      else x = _mm512_i32gather_epi32(idx, src, 4);
      _mm512_store_si512(panel + (size_t)(t * p.cbg + b) * cstride, x);
      S = _mm512_dpbusd_epi32(S, x, ones);
    }
  }
  return S;
}

template <int ACT, bool MADD>
void gemmFast(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int v0, int v1, uint32_t* scratch) {
  // Local copies: stores through byte pointers may alias the plan, which would force reloads.
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  uint32_t* panel = (uint32_t*)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  const __m512i ones = _mm512_set1_epi8(1), soff = _mm512_set1_epi32(p.sOff);
  if (p.direct) {
    // Activations read in place: tiles outside, vector pairs inside; the window sums first.
    __m512i* S = (__m512i*)panel;
    for (int g = 0; g < p.G; g++) {
      const uint32_t* base = in.words + (int64_t)g * p.cbg * in.planeStride;
      for (int v = v0; v < v1; v++) {
        __m512i s = _mm512_setzero_si512();
        if (p.needS)
          for (int c = 0; c < p.chunks; c++) s = _mm512_dpbusd_epi32(s, _mm512_loadu_si512(base + v * VL + c * in.planeStride), ones);
        S[v - v0] = _mm512_sub_epi32(s, soff);
      }
      for (int tile = 0; tile < p.ntiles; tile++) {
        int v = v0;
        for (; v + 2 <= v1; v += 2) gemmTileFast<ACT, MADD, 2>(p, out, g, tile, v, base + v * VL, in.planeStride, VL, &S[v - v0]);
        if (v < v1) gemmTileFast<ACT, MADD, 1>(p, out, g, tile, v, base + v * VL, in.planeStride, VL, &S[v - v0]);
      }
    }
    return;
  }
  // Panels of two vectors: [chunk][vector][lane].
  for (int v = v0; v < v1; v += 2) {
    const int nv = v + 2 <= v1 ? 2 : 1;
    for (int g = 0; g < p.G; g++) {
      const uint32_t* base = in.words + (int64_t)g * p.cbg * in.planeStride;
      __m512i S[2];
      for (int j = 0; j < nv; j++) S[j] = _mm512_sub_epi32(buildPanel(p, in, base, v + j, panel + j * VL, 2 * VL), soff);
      for (int tile = 0; tile < p.ntiles; tile++) {
        if (nv == 2) gemmTileFast<ACT, MADD, 2>(p, out, g, tile, v, panel, 2 * VL, VL, S);
        else gemmTileFast<ACT, MADD, 1>(p, out, g, tile, v, panel, 2 * VL, VL, S);
      }
    }
  }
}

using GemmFn = void (*)(const ConvPlan&, const Buf&, const Buf&, int, int, uint32_t*);
template <bool MADD>
GemmFn gemmFastFor(const ConvPlan& p) {
  return p.act == A_LEAKY   ? (p.leaky32 ? gemmFast<A_LEAKY, MADD> : gemmFast<A_LEAKYW, MADD>)
         : p.act == A_RELU ? gemmFast<A_RELU, MADD>
                           : gemmFast<A_LINEAR, MADD>;
}

void gemmAvx512(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int v0, int v1, uint32_t* scratch) {
  if (plan.fast) return (plan.madd ? gemmFastFor<true>(plan) : gemmFastFor<false>(plan))(plan, inBuf, outBuf, v0, v1, scratch);
  // Local copies: stores through byte pointers may alias the plan, which would force reloads.
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  const Epi e(p);
  uint32_t* panel = (uint32_t*)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  const __m512i ones = _mm512_set1_epi8(1), soff = _mm512_set1_epi32(p.sOff);
  VP vp[TILE_O];
  if (p.direct) {
    // Activations read in place: tiles outside, vectors inside, so each tile's parameters are
    // set up once; the window sums of all vectors first (the panel scratch holds them).
    __m512i* S = (__m512i*)panel;
    for (int g = 0; g < p.G; g++) {
      const uint32_t* base = in.words + (int64_t)g * p.cbg * in.planeStride;
      for (int v = v0; v < v1; v++) {
        __m512i s = _mm512_setzero_si512();
        if (e.needS)
          for (int c = 0; c < p.chunks; c++) s = _mm512_dpbusd_epi32(s, _mm512_loadu_si512(base + v * VL + c * in.planeStride), ones);
        S[v - v0] = _mm512_sub_epi32(s, soff);
      }
      for (int tile = 0; tile < p.ntiles; tile++) {
        for (int o = 0; o < TILE_O; o++) vp[o] = channelVP(p, (g * p.ntiles + tile) * TILE_O + o);
        for (int v = v0; v < v1; v++) gemmTile(p, e, out, vp, g, tile, v, base + v * VL, in.planeStride, S[v - v0]);
      }
    }
    return;
  }
  for (int v = v0; v < v1; v++) {
    const int pos0 = v * VL;
    for (int g = 0; g < p.G; g++) {
      const uint32_t* base = in.words + (int64_t)g * p.cbg * in.planeStride;
      __m512i S = _mm512_setzero_si512();
      const __m512i idx = _mm512_loadu_si512(p.pidx + pos0);
      // One input row: stride 1 is a plain load, stride 2 two loads and a permute; else a gather.
      const int mode = p.affine[v] ? (p.stride == 1 ? 1 : p.stride == 2 ? 2 : 0) : 0;
      const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
      for (int t = 0; t < p.taps; t++) {
        const int64_t toff = (int64_t)(t / p.k) * in.rowStride + (t % p.k);
        for (int b = 0; b < p.cbg; b++) {
          const uint32_t* src = base + b * in.planeStride + toff;
          __m512i x;
          if (mode == 1) x = _mm512_loadu_si512(src + p.pidx[pos0]);
          else if (mode == 2) x = _mm512_permutex2var_epi32(_mm512_loadu_si512(src + p.pidx[pos0]), even, _mm512_loadu_si512(src + p.pidx[pos0] + 16));
          else x = _mm512_i32gather_epi32(idx, src, 4);
          _mm512_store_si512(panel + (size_t)(t * p.cbg + b) * VL, x);
          S = _mm512_dpbusd_epi32(S, x, ones);
        }
      }
      S = _mm512_sub_epi32(S, soff);
      for (int tile = 0; tile < p.ntiles; tile++) {
        for (int o = 0; o < TILE_O; o++) vp[o] = channelVP(p, (g * p.ntiles + tile) * TILE_O + o);
        gemmTile(p, e, out, vp, g, tile, v, panel, VL, S);
      }
    }
  }
}

// NV vectors of 4 pixels x 4 channels of one output row: independent accumulators hide the
// latency of vpdpwssd (a single chain over 9 taps would wait on it).
template <int NV>
inline void dwPixels(const ConvPlan& p, const Buf& in, const uint8_t* ip, const int32_t (*wv)[VL], int iy0, int x0,
                     __m512i* acc, __m512i* S) {
  const int s = p.stride;
  for (int v = 0; v < NV; v++) acc[v] = S[v] = _mm512_setzero_si512();
  for (int ky = 0; ky < p.k; ky++) {
    const uint8_t* row = ip + ((int64_t)(iy0 + ky) * in.rowStride + (x0 * s - p.pad + in.b)) * 4;
    for (int kx = 0; kx < p.k; kx++) {
      const __m512i w = _mm512_load_si512(wv[ky * p.k + kx]);
      for (int v = 0; v < NV; v++) {
        const uint8_t* q = row + (kx + 4 * v * s) * 4;
        __m128i px;
        if (s == 1) px = _mm_loadu_si128((const __m128i*)q);
        else if (s == 2) px = _mm256_cvtepi64_epi32(_mm256_loadu_si256((const __m256i*)q));
        else px = _mm_set_epi32(*(const int32_t*)(q + 3 * s * 4), *(const int32_t*)(q + 2 * s * 4), *(const int32_t*)(q + s * 4), *(const int32_t*)q);
        const __m512i xv = _mm512_cvtepu8_epi32(px);
        acc[v] = _mm512_dpwssd_epi32(acc[v], xv, w);
        if (p.needS) S[v] = _mm512_add_epi32(S[v], xv);
      }
    }
  }
}

// The byte indices that give, for 16 output pixels of stride st, the words of taps 4g..4g+3 of a
// k-tap row (vpermb), and the bytes that are 1 on the valid taps (window sums by vpdpbusd).
__attribute__((target("avx512vbmi"))) inline void windowIndices(int k, int st, int ng, __m512i* idx, __m512i* ones) {
  for (int g = 0; g < ng; g++) {
    alignas(64) uint8_t ib[64], ob[64];
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 4; j++) {
        ib[4 * i + j] = (uint8_t)(i * st + 4 * g + j);
        ob[4 * i + j] = 4 * g + j < k ? 1 : 0;
      }
    idx[g] = _mm512_load_si512(ib);
    ones[g] = _mm512_load_si512(ob);
  }
}

// One input row of a channel block made planar: 4 rows of bytes, rowBytes apart. Deinterleaves
// 16 pixels x 4 channels per vector (per 128-bit lane, then across lanes); may read past the row:
// those bytes are never used.
__attribute__((target("avx512vbmi"))) inline void planarRow(const uint32_t* src, int rowWords, uint8_t* dst, int rowBytes) {
  const __m512i deint = _mm512_set4_epi32(0x0f0b0703, 0x0e0a0602, 0x0d090501, 0x0c080400);
  const __m512i lanes = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  for (int x = 0; x < rowWords; x += 16) {
    __m512i v = _mm512_loadu_si512(src + x);
    v = _mm512_permutexvar_epi32(lanes, _mm512_shuffle_epi8(v, deint));
    _mm_storeu_si128((__m128i*)(dst + x), _mm512_castsi512_si128(v));
    _mm_storeu_si128((__m128i*)(dst + rowBytes + x), _mm512_extracti32x4_epi32(v, 1));
    _mm_storeu_si128((__m128i*)(dst + 2 * rowBytes + x), _mm512_extracti32x4_epi32(v, 2));
    _mm_storeu_si128((__m128i*)(dst + 3 * rowBytes + x), _mm512_extracti32x4_epi32(v, 3));
  }
}

// Depthwise with byte permutes (AVX-512 VBMI): each channel's row is made planar, vpermb builds
// for 16 output pixels the dword of 4 horizontally consecutive taps, and vpdpbusd applies 4 taps at
// once; the lanes are pixels of one channel, so the epilogue is the gemm's (uniform parameters).
__attribute__((target("avx512vbmi"))) void dwVbmi(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int y0, int y1) {
  // Local copies: stores through byte pointers may alias the plan, which would force reloads.
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  const Epi e(p);
  const int s = p.stride, k = p.k, ng = p.ng;
  const int cb = (p.C + 3) / 4;
  const bool slow = p.act == A_LUT || out.raw;
  const int rowWords = in.rowStride;
  // Planar rows: [ky][channel][bytes], each padded so a 64-byte load past the end stays inside.
  const int rowBytes = ((rowWords + 63) / 64) * 64 + 128;
  // A ring of planar rows (slot = input row mod ring): consecutive output rows share k - stride
  // input rows, transposed once.
  const int ring = k + s;
  alignas(64) uint8_t planar[18 * 4 * 512];  // k + stride <= 18 rows of up to 384 pixels
  int tags[18];
  __m512i idx[4], ones[4];
  windowIndices(k, s, ng, idx, ones);
  for (int b = 0; b < cb; b++) {
    const uint32_t* plane = in.words + b * in.planeStride;
    const int pc0 = 4 * b;
    VP vps[4];
    for (int c = 0; c < 4; c++) vps[c] = channelVP(p, pc0 + c);
    for (int r = 0; r < ring; r++) tags[r] = -1;
    for (int y = y0; y < y1; y++) {
      const int iy0 = y * s - p.pad + in.b;
      const uint8_t* rows[16];
      for (int ky = 0; ky < k; ky++) {
        const int iy = iy0 + ky, slot = iy % ring;
        uint8_t* dst = planar + (size_t)slot * 4 * rowBytes;
        rows[ky] = dst;
        if (tags[slot] == iy) continue;
        tags[slot] = iy;
        planarRow(plane + (int64_t)iy * rowWords, rowWords, dst, rowBytes);
      }
      for (int x0 = 0; x0 < p.Wo; x0 += 16) {
        const int lanesN = p.Wo - x0 < 16 ? p.Wo - x0 : 16;
        __m512i res[4];
        for (int c = 0; c < 4; c++) {
          __m512i acc = _mm512_setzero_si512(), S = acc;
          const int32_t* w = p.wdwRow + (size_t)(pc0 + c) * k * ng;
          for (int ky = 0; ky < k; ky++) {
            const __m512i row = _mm512_loadu_si512(rows[ky] + (size_t)c * rowBytes + (x0 * s - p.pad + in.b));
            for (int g = 0; g < ng; g++) {
              const __m512i win = _mm512_permutexvar_epi8(idx[g], row);
              acc = _mm512_dpbusd_epi32(acc, win, _mm512_set1_epi32(w[ky * ng + g]));
              if (e.needS) S = _mm512_dpbusd_epi32(S, win, ones[g]);
            }
          }
          S = _mm512_sub_epi32(S, _mm512_set1_epi32(p.sOff));
          const int ch = pc0 + c;
          if (slow) {
            alignas(64) int32_t av[VL], sv[VL];
            _mm512_store_si512(av, acc);
            _mm512_store_si512(sv, S);
            for (int l = 0; l < lanesN; l++) {
              int32_t r = finishOne(p, p.mul, p.tsh, p.rsh, p.lsh, p.lutsh, ch, av[l] + p.bias[ch], sv[l]);
              if (out.raw) {
                if (ch < p.O) out.raw[(int64_t)ch * p.P + y * p.Wo + x0 + l] = r;
              } else {
                ((uint8_t*)out.at(b, y, x0 + l))[c] = (uint8_t)(r + 128);
              }
            }
            continue;
          }
          res[c] = epilogue(e, vps[c], acc, S);
        }
        if (slow) continue;
        _mm512_mask_storeu_epi32(out.at(b, y, x0), (__mmask16)((1u << lanesN) - 1), pack4(res[0], res[1], res[2], res[3]));
      }
    }
  }
}

// Depthwise, fast form, with byte permutes (VBMI). The output rows of the range go in bands of
// four; for each channel block the input rows a band needs are made planar once (a ring of rows,
// as in dwVbmi). Then, for every 16-pixel column of the band and each of the block's four
// channels, each input row of the band is read and permuted once (vpermb builds the words of 4
// horizontally consecutive taps) and feeds, by vpdpbusd, every output row whose window holds it,
// and its horizontal window sum once, added to those rows' window sums (the rows share their
// input rows: 6 permutes and 18 vpdpbusd for the 4 vectors of a 3x3 instead of 12 and 24). The
// four vectors are finished with the channel's constants in registers and saturated to bytes by
// the packs; eight unpacks interleave the four channels into the stored words of the four rows.
// The window sums are the stored bytes' (S + sOff, which fits 16 bits): trnd absorbs -sOff*M.
template <int K, int ST, int ACT, bool MADD>
__attribute__((target("avx512vbmi"))) void dwFast(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int y0, int y1) {
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  constexpr int NG = (K + 3) / 4;
  constexpr int BAND = 4;
  constexpr int NIN = (BAND - 1) * ST + K;  // input rows of a band
  constexpr int RING = NIN + ST;
  const int rowWords = in.rowStride;
  const int rowBytes = ((rowWords + 63) / 64) * 64 + 128;
  alignas(64) uint8_t planar[RING * 4 * 512];
  int tags[RING];
  __m512i idx[NG], ones[NG];
  windowIndices(K, ST, NG, idx, ones);
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  const int vpr = (p.Wo + 15) / 16;
  const int cb = (p.C + 3) / 4;
  for (int b = 0; b < cb; b++) {
    const uint32_t* plane = in.words + b * in.planeStride;
    for (int r = 0; r < RING; r++) tags[r] = -1;
    for (int yb = y0; yb < y1; yb += BAND) {
      const int nr = y1 - yb < BAND ? y1 - yb : BAND;
      const int iyA = yb * ST - p.pad + in.b, last = (nr - 1) * ST + K - 1;  // the band's input rows: iyA + [0, last]
      const uint8_t* rows[NIN];
      bandRows<NIN, RING>(planar, (size_t)4 * rowBytes, tags, iyA, last, rows,
                          [&](int iy, uint8_t* dst) { planarRow(plane + (int64_t)iy * rowWords, rowWords, dst, rowBytes); });
      for (int xv = 0; xv < vpr; xv++) {
        const int x = xv * 16, xin = x * ST - p.pad + in.b;
        __m512i R[4];
        for (int c = 0; c < 4; c++) {
          const int ch = 4 * b + c;
          const FastChan fc = fastChan<ACT, MADD>(p, ch, -p.sOff * p.mul[ch]);
          const __m512i bias = _mm512_set1_epi32(fastBias<ACT>(p)[ch]);
          __m512i wk[K][NG];
          for (int ky = 0; ky < K; ky++)
            for (int g = 0; g < NG; g++) wk[ky][g] = _mm512_set1_epi32(p.wdwRow[((size_t)ch * K + ky) * NG + g]);
          __m512i r[BAND], S[BAND];
          for (int j = 0; j < BAND; j++) {
            r[j] = bias;
            S[j] = _mm512_setzero_si512();
          }
          // The permuted rows first, then the products row by row. (Issuing each row's products as
          // soon as it is permuted, inside one loop with range tests, was miscompiled by GCC 12 at
          // -O3: one output row's first products took another tap's weights; -O2 was right.)
          __m512i win[NIN][NG];
          for (int i = 0; i < NIN; i++) {
            const __m512i row = _mm512_loadu_si512(rows[i] + (size_t)c * rowBytes + xin);
            __m512i h = _mm512_setzero_si512();
            for (int g = 0; g < NG; g++) {
              win[i][g] = _mm512_permutexvar_epi8(idx[g], row);
              h = _mm512_dpbusd_epi32(h, win[i][g], ones[g]);
            }
            for (int j = 0; j < BAND; j++)
              if (i - j * ST >= 0 && i - j * ST < K) S[j] = _mm512_add_epi32(S[j], h);
          }
          for (int j = 0; j < BAND; j++)
            for (int ky = 0; ky < K; ky++)
              for (int g = 0; g < NG; g++) r[j] = _mm512_dpbusd_epi32(r[j], win[j * ST + ky][g], wk[ky][g]);
          const FastChan* chs[4] = {&fc, &fc, &fc, &fc};
          fastEpi<ACT, MADD, 4>(chs, r, S);
          R[c] = _mm512_xor_si512(_mm512_packs_epi16(_mm512_packs_epi32(r[0], r[1]), _mm512_packs_epi32(r[2], r[3])), flip);
        }
        // R[c], lane i: bytes of rows 0..3 at pixels 4i..4i+3. Interleave the channels.
        const __m512i t0 = _mm512_unpacklo_epi8(R[0], R[1]), t1 = _mm512_unpackhi_epi8(R[0], R[1]);
        const __m512i t2 = _mm512_unpacklo_epi8(R[2], R[3]), t3 = _mm512_unpackhi_epi8(R[2], R[3]);
        const __m512i w[4] = {_mm512_unpacklo_epi16(t0, t2), _mm512_unpackhi_epi16(t0, t2), _mm512_unpacklo_epi16(t1, t3),
                              _mm512_unpackhi_epi16(t1, t3)};
        const int n = p.Wo - x < 16 ? p.Wo - x : 16;
        for (int j = 0; j < nr; j++) _mm512_mask_storeu_epi32(out.at(b, yb + j, x), (__mmask16)((1u << n) - 1), w[j]);
      }
    }
  }
}

using DwFn = void (*)(const ConvPlan&, const Buf&, const Buf&, int, int);
template <int K, int ST, bool MADD>
DwFn dwFastAct(const ConvPlan& p) {
  return p.act == A_LEAKY   ? (p.leaky32 ? dwFast<K, ST, A_LEAKY, MADD> : dwFast<K, ST, A_LEAKYW, MADD>)
         : p.act == A_RELU ? dwFast<K, ST, A_RELU, MADD>
                           : dwFast<K, ST, A_LINEAR, MADD>;
}
template <int K, int ST>
DwFn dwFastMadd(const ConvPlan& p) {
  return p.madd ? dwFastAct<K, ST, true>(p) : dwFastAct<K, ST, false>(p);
}
// The fast depthwise for this plan and input, or nullptr.
DwFn dwFastFor(const ConvPlan& p, const Buf& in, const Buf& out) {
  if (!p.fast || out.raw || in.rowStride > 384) return nullptr;
  if (p.k == 3) return p.stride == 1 ? dwFastMadd<3, 1>(p) : p.stride == 2 ? dwFastMadd<3, 2>(p) : nullptr;
  if (p.k == 5) return p.stride == 1 ? dwFastMadd<5, 1>(p) : p.stride == 2 ? dwFastMadd<5, 2>(p) : nullptr;
  return nullptr;
}

void dwAvx512(const ConvPlan& plan, const Buf& inBuf, const Buf& outBuf, int y0, int y1) {
  // Local copies: stores through byte pointers may alias the plan, which would force reloads.
  const ConvPlan p = plan;
  const Buf in = inBuf, out = outBuf;
  if (p.taps > 64) {
    zqint::kScalar.dw(plan, inBuf, outBuf, y0, y1);
    return;
  }
  const Epi e(p);
  const int cb = (p.C + 3) / 4;
  const bool slow = p.act == A_LUT || out.raw;
  alignas(64) int32_t wv[64][VL];
  for (int b = 0; b < cb; b++) {
    const uint8_t* ip = (const uint8_t*)(in.words + b * in.planeStride);
    for (int t = 0; t < p.taps; t++)
      for (int l = 0; l < VL; l++) wv[t][l] = p.wdw[((size_t)b * p.taps + t) * 4 + (l & 3)] & 0xffff;
    VP vp{_mm512_loadu_si512(p.vbias + b * VL), _mm512_loadu_si512(p.vmul + b * VL), shiftOf(_mm512_loadu_si512(p.vtsh + b * VL)),
          shiftOf(_mm512_loadu_si512(p.vrsh + b * VL)), _mm512_loadu_si512(p.vlsh + b * VL), _mm512_loadu_si512(p.vtrnd + b * VL),
          _mm512_loadu_si512(p.vrrnd + b * VL)};
    const __m512i soff = _mm512_set1_epi32(p.sOff);
    const __m512i off = _mm512_set1_epi32(128);
    for (int y = y0; y < y1; y++) {
      const int iy0 = y * p.stride - p.pad + in.b;
      int x0 = 0;
      auto emit = [&](__m512i acc, __m512i S, int x, int npix) {
        S = _mm512_sub_epi32(S, soff);
        if (slow) {
          alignas(64) int32_t av[VL], sv[VL];
          _mm512_store_si512(av, acc);
          _mm512_store_si512(sv, S);
          for (int l = 0; l < 4 * npix; l++) {
            const int ch = b * 4 + (l & 3), xx = x + (l >> 2);
            int32_t r = finishOne(p, p.mul, p.tsh, p.rsh, p.lsh, p.lutsh, ch, av[l] + p.bias[ch], sv[l]);
            if (out.raw) {
              if (ch < p.O) out.raw[(int64_t)ch * p.P + y * p.Wo + xx] = r;
            } else {
              ((uint8_t*)out.at(b, y, xx))[l & 3] = (uint8_t)(r + 128);
            }
          }
          return;
        }
        __m128i bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(epilogue(e, vp, acc, S), off));
        // Keep vpmovdb in registers: its memory form is very slow on some cores (Zen 4).
        asm("" : "+v"(bytes));
        if (npix == 4) _mm_storeu_si128((__m128i*)out.at(b, y, x), bytes);
        else _mm_mask_storeu_epi8(out.at(b, y, x), (__mmask16)((1u << (4 * npix)) - 1), bytes);
      };
      __m512i acc[4], S[4];
      for (; x0 + 16 <= p.Wo; x0 += 16) {
        dwPixels<4>(p, in, ip, wv, iy0, x0, acc, S);
        for (int v = 0; v < 4; v++) emit(acc[v], S[v], x0 + 4 * v, 4);
      }
      for (; x0 < p.Wo; x0 += 4) {
        dwPixels<1>(p, in, ip, wv, iy0, x0, acc, S);
        emit(acc[0], S[0], x0, p.Wo - x0 < 4 ? p.Wo - x0 : 4);
      }
    }
  }
}

}  // namespace

namespace {
void dwAvx512Vbmi(const ConvPlan& p, const Buf& in, const Buf& out, int y0, int y1) {
  if (DwFn f = dwFastFor(p, in, out)) f(p, in, out, y0, y1);
  else if (p.k <= 16 && p.stride <= 2 && p.ng <= 4 && in.rowStride <= 384 && 15 * p.stride + p.k <= 64) dwVbmi(p, in, out, y0, y1);
  else dwAvx512(p, in, out, y0, y1);
}
}  // namespace

namespace {
// 16 pixels of interleaved RGB (48 bytes) into 16 words (r, g, b, 0) with one byte permute.
__attribute__((target("avx512vbmi"))) void loadVbmi(const uint8_t* rgb, const Buf& in, int w, int h) {
  alignas(64) uint8_t ib[64];
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 4; j++) ib[4 * i + j] = (uint8_t)(j < 3 ? 3 * i + j : 0);
  const __m512i idx = _mm512_load_si512(ib);
  const __mmask64 keep = 0x7777777777777777ull;
  for (int y = 0; y < h; y++) {
    const uint8_t* s = rgb + (size_t)y * w * 3;
    uint32_t* row = in.at(0, y, 0);
    int x = 0;
    for (; x + 16 <= w; x += 16) {
      const __m512i v = _mm512_maskz_loadu_epi8(0xffffffffffffull, s + 3 * x);  // 48 bytes
      _mm512_storeu_si512(row + x, _mm512_maskz_permutexvar_epi8(keep, idx, v));
    }
    for (; x < w; x++) row[x] = (uint32_t)s[3 * x] | (uint32_t)s[3 * x + 1] << 8 | (uint32_t)s[3 * x + 2] << 16;
  }
}
}  // namespace

namespace {
const char* pathAvx512(const ConvPlan& p, const Buf&, const Buf&) {
  if (p.kind == CONV_GENERIC) return "generic";
  if (p.kind == CONV_GEMM) return p.fast ? (p.direct ? "gemm direct fast" : "gemm panel fast") : (p.direct ? "gemm direct" : "gemm panel");
  return p.act == A_LUT ? "depthwise, table" : "depthwise";
}
const char* pathVbmi(const ConvPlan& p, const Buf& in, const Buf& out) {
  if (p.kind == CONV_DW) return dwFastFor(p, in, out) ? "depthwise fast" : "depthwise";
  return pathAvx512(p, in, out);
}
}  // namespace

namespace zqint {
extern const Kernels kAvx512, kAvx512Vbmi;
const Kernels kAvx512 = {"avx512-vnni", 2, gemmAvx512, dwAvx512, nullptr, pathAvx512};
const Kernels kAvx512Vbmi = {"avx512-vbmi", 2, gemmAvx512, dwAvx512Vbmi, loadVbmi, pathVbmi};
}  // namespace zqint
