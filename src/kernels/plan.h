// The planned network of the integer engine: buffers allocated once, weights packed per kernel.
// Arithmetic: docs/formats/fixed-point.md. Layout and kernels: docs/decisions/int-kernels.md.
#pragma once
#include <cstdint>
#include <cstddef>

namespace zqint {

// Layer descriptor fields (an Int32Array per layer, built by src/engine/int/native.ts).
enum Field {
  F_KIND, F_C, F_H, F_W, F_BITS, F_FRAC, F_ACT, F_SIZE, F_STRIDE, F_PAD, F_GROUPS, F_GROUPID,
  F_LUTSHIFT, F_LUTOFFSET, F_HEAD, F_NIN, F_INPUTS
};
enum Kind { K_CONV = 0, K_MAXPOOL, K_ROUTE, K_SHORTCUT, K_UPSAMPLE, K_DROPOUT, K_YOLO };
enum Act { A_LINEAR = 0, A_LEAKY, A_RELU, A_LUT };

// Lanes of a position vector (output positions processed together by the conv kernels).
constexpr int VL = 16;
// Output channels of one gemm tile (two blocks of four).
constexpr int TILE_O = 8;

// An 8-bit activation tensor, channel-blocked: block j holds channels 4j..4j+3 interleaved, one
// 32-bit word per pixel, every byte x+128 (the network input: the pixel value itself). A border of
// b pixels around each plane holds the zero value, so convolutions read padding without checks.
// Channels past c (up to 4*cb) also hold the zero value.
struct Buf {
  int c = 0, h = 0, w = 0, b = 0;
  int cb = 0;               // channel blocks
  int rowStride = 0;        // words per row (w + 2b)
  int64_t planeStride = 0;  // words per block plane
  uint8_t zero = 128;       // stored value of 0 (0 for the uint8 input)
  uint32_t* words = nullptr;
  // 16-bit tensors (read only by yolo heads) live here instead: int32 CHW.
  int32_t* raw = nullptr;
  bool wide = false;  // a 16-bit tensor (raw, once memory is placed)
  uint32_t* at(int blk, int y, int x) const {
    return words + blk * planeStride + (int64_t)(y + b) * rowStride + (x + b);
  }
};

enum ConvKind { CONV_GEMM = 0, CONV_DW, CONV_GENERIC };

// One run of a gemm output vector that is contiguous in the output buffer.
struct Seg {
  int lane0, count;
  int64_t off;  // word offset of lane0 within a block plane
};

struct ConvPlan {
  int kind = CONV_GENERIC;
  int C = 0, O = 0, G = 1, Cg = 0, Og = 0;
  int k = 1, stride = 1, pad = 0, taps = 1;
  int Ho = 0, Wo = 0, P = 0;  // output size, positions
  int act = A_LINEAR;
  int lo = 0, hi = 0;         // output range
  int outBits = 8;
  bool needS = false;         // some M != 0
  bool m32 = true;            // M*S + rounding fits 32 bits for every channel
  bool anyLeft = false;       // some channel shifts left
  // From the per-channel bound on |Y| (plan time), cheaper exact forms are safe:
  bool leaky32 = false;       // Y*3277 fits 32 bits, and (leaky) 2^15*rrnd + 2^14 does too
  bool tAdd = false;          // M*S + 2^(tsh-1) fits 32 bits: T = (M*S + rnd) >> tsh
  bool rAdd = false;          // |A(Y)| + 2^(rsh-1) fits 32 bits: rshr = (A + rnd) >> rsh
  // The fast epilogue applies: linear/leaky/relu, tAdd and rAdd, no left shifts. Its output is
  // sat((A(Y) + rrnd) >> rsh) with Y = acc + bias + T (saturated to 8 bits, or 16 for raw outputs).
  bool fast = false;
  // M*S by vpmaddwd / smull: every M fits 16 bits, and so does every window sum the kernels form
  // (the real S of a gemm window; the stored-byte sum of a depthwise window).
  bool madd = false;
  // The fast forms' output rounding folded in: fbias = bias + rrnd, and fk the constant of the
  // activation on Y + rrnd (leaky: 2^14 + 29491 * rrnd, see the AVX-512 epilogue; relu: rrnd).
  int32_t* fbias = nullptr;
  int32_t* fk = nullptr;
  uint8_t inZero = 128;
  // Per output channel, padded to the kernel's channel count (zeros past O):
  int32_t* bias = nullptr;    // B - inZero * sum(Q): absorbs the input offset
  int32_t* mul = nullptr;     // M, pre-shifted left when fm < fw
  int32_t* tsh = nullptr;     // right shift of M*S (>= 0)
  int32_t* rsh = nullptr;     // right shift of the output (0..32)
  int32_t* lsh = nullptr;     // left shift of the output (0..16)
  int32_t* qsum = nullptr;    // sum of the channel's weights (kernels that add the input offset back)
  int32_t* trnd = nullptr;    // 2^(tsh-1) or 0 (tAdd)
  int32_t* rrnd = nullptr;    // 2^(rsh-1) or 0 (rAdd)
  int32_t* lutsh = nullptr;   // LUT: right shift of Y to the table's fraction (clamped to 0..32 or left)
  int32_t sOff = 0;           // inZero * (number of input bytes in a window, padded channels included)
  const int32_t* lut = nullptr;
  int lutN = 0, lutZ = 0;
  // gemm: weights [g][tile][chunk][TILE_O][4] with chunk = tap * cbg + block, cbg blocks per group
  int cbg = 0, ntiles = 0, chunks = 0;
  int8_t* wgemm = nullptr;
  int16_t* wgemm16 = nullptr;  // the same weights widened to 16 bits (AVX2 vpmaddwd)
  bool direct = false;        // 1x1 stride 1 over a borderless input: lanes read consecutive words
  int nvec = 0;               // position vectors
  int32_t* pidx = nullptr;    // panel: per position, word offset of its window origin in the input plane
  uint8_t* affine = nullptr;  // per vector: 16 positions in one row (pidx[pos0 + l] = pidx[pos0] + l * stride)
  int32_t* segStart = nullptr;  // per vector, first Seg (nvec + 1 entries)
  Seg* segs = nullptr;
  // A following shortcut done in this conv's epilogue (kernels with fusesShortcut): out2 = the
  // shortcut's output words, add = the other input's words (same border and size); the conv output
  // (format -> shortcut format by shift sa) plus the other input (shift sb), saturated, activated.
  const uint32_t* fuseAdd = nullptr;
  uint32_t* fuseOut = nullptr;
  int fuseSa = 0, fuseSb = 0, fuseAct = A_LINEAR;
  int64_t fusePlane = 0;  // words per block plane of the fused buffers
  // depthwise: weights [cb][tap][4] as int32 (16-bit values) repeated for VL/4 pixels
  int32_t* wdw = nullptr;
  // depthwise, by rows of taps: [C padded to 4][k][ng] words of 4 consecutive kx weights (ng = ceil(k/4))
  int32_t* wdwRow = nullptr;
  int ng = 0;
  // generic: the original OIHW weights
  const int8_t* q = nullptr;
  int32_t* wsum = nullptr;
  // parameters repeated per lane for depthwise: [cb][VL] each
  int32_t *vbias = nullptr, *vmul = nullptr, *vtsh = nullptr, *vrsh = nullptr, *vlsh = nullptr, *vlutsh = nullptr;
  int32_t *vtrnd = nullptr, *vrrnd = nullptr;
};

// The fast kernels one instruction set provides.
struct Kernels {
  const char* name;
  // Shortcuts the gemm can do in its epilogue: 0 none, 1 after fast convs only (plan.fast), 2 any.
  int fusesShortcut;
  // Position vectors [v0, v1) of a gemm conv (all groups and tiles).
  void (*gemm)(const ConvPlan& p, const Buf& in, const Buf& out, int v0, int v1, uint32_t* scratch);
  // Output rows [y0, y1) of a depthwise conv (all channel blocks).
  void (*dw)(const ConvPlan& p, const Buf& in, const Buf& out, int y0, int y1);
  // Interleaved RGB (w x h) into the input buffer's words; nullptr: the portable loop.
  void (*load)(const uint8_t* rgb, const Buf& in, int w, int h) = nullptr;
  // The name of the code path gemm/dw take for a conv (profiles); nullptr: "gemm"/"depthwise".
  const char* (*path)(const ConvPlan& p, const Buf& in, const Buf& out) = nullptr;
};

// Scratch words a gemm call needs: the panel of one vector (16-bit in the AVX2 kernel).
inline size_t gemmScratchWords(const ConvPlan& p) { return (size_t)p.chunks * VL * 2 + 64; }

// The input rows of a band of depthwise output rows, in a ring of planar rows shared by the
// bands (slot = input row mod RING; RING >= NIN + stride, so a band's rows never collide and the
// rows the next band shares stay): rows[i] = the planar copy of input row iy0 + i, made by
// planarize(iy, dst) only when the ring does not hold it yet. Past a short band's last input row
// (iy0 + last) the pointers repeat it: those products are computed and not stored.
template <int NIN, int RING, class T, class Planarize>
inline void bandRows(T* planar, size_t slotElems, int* tags, int iy0, int last, const T** rows, Planarize&& planarize) {
  for (int i = 0; i < NIN; i++) {
    const int iy = iy0 + (i < last ? i : last), slot = iy % RING;
    T* dst = planar + slotElems * slot;
    rows[i] = dst;
    if (tags[slot] == iy) continue;
    tags[slot] = iy;
    planarize(iy, dst);
  }
}

extern const Kernels kScalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const Kernels kAvx2;
extern const Kernels kAvx512;
extern const Kernels kAvx512Vbmi;  // kAvx512 with the VBMI depthwise
#endif
#if defined(__aarch64__)
extern const Kernels kDotprod;  // NEON with sdot/udot (ARMv8.2 dot product)
extern const Kernels kNeon;     // NEON of ARMv8.0 (smull/sadalp)
#endif

}  // namespace zqint
