// darknet's two-pass bilinear resize, in the float32 operations (and order) of image.c
// resize_image, which src/detect/preprocess.ts resizeImageJs reproduces; the two are compared bit
// for bit. Built with -ffp-contract=off (a fused multiply-add would change the last bit) and
// -fno-trapping-math (lets the compiler vectorize the clamps; values are unchanged).
#include "resize.h"

#include <algorithm>
#include <cstring>

namespace zqimg {

namespace {

// darknet's pixel value: (float)p/255 (the division in double, as JS does, then rounded).
struct UnitTable {
  float v[256];
  UnitTable() {
    for (int p = 0; p < 256; p++) v[p] = (float)(p / 255.0);
  }
};
const UnitTable kUnit;

// JS's Uint8ClampedArray store of v*255: NaN and negatives 0, clamped to 255, round half to even.
// Adding and subtracting 1.5*2^52 rounds to the nearest integer (ties to even) in the default mode.
inline uint8_t toByte(float v) {
  double d = (double)v * 255.0;
  d = d > 0.0 ? d : 0.0;
  d = d < 255.0 ? d : 255.0;
  d = (d + 6755399441055744.0) - 6755399441055744.0;
  return (uint8_t)(int)d;
}

// One row of the horizontal pass: 3*w interleaved floats. Columns [0, nInterp) interpolate between
// source columns ix and ix+1 (byte offsets ax); the others copy the source's last column.
void horizontalRow(const uint8_t* __restrict s, int iw, int w, int nInterp, const int32_t* __restrict ax, const float* __restrict tx,
                   const float* __restrict ux, float* __restrict out) {
  const float* U = kUnit.v;
  for (int c = 0; c < nInterp; c++) {
    const uint8_t* a = s + ax[c];
    const float t = tx[c], u = ux[c];
    out[3 * c] = u * U[a[0]] + t * U[a[3]];
    out[3 * c + 1] = u * U[a[1]] + t * U[a[4]];
    out[3 * c + 2] = u * U[a[2]] + t * U[a[5]];
  }
  const uint8_t* last = s + 3 * (iw - 1);
  for (int c = nInterp; c < w; c++) {
    out[3 * c] = U[last[0]];
    out[3 * c + 1] = U[last[1]];
    out[3 * c + 2] = U[last[2]];
  }
}

void storeRow(const float* __restrict v, int w, uint8_t* __restrict rgb, float* __restrict planar, size_t plane) {
  for (int j = 0; j < 3 * w; j++) rgb[j] = toByte(v[j]);
  if (planar)
    for (int c = 0; c < w; c++) {
      planar[c] = v[3 * c];
      planar[plane + c] = v[3 * c + 1];
      planar[2 * plane + c] = v[3 * c + 2];
    }
}

// Darknet's letterbox grey around the rectangle (ox, oy, w, h).
void fillOutside(const ResizeJob& j) {
  const size_t plane = (size_t)j.dstW * j.dstH;
  for (int y = 0; y < j.dstH; y++) {
    const bool inside = y >= j.oy && y < j.oy + j.h;
    auto fill = [&](int x0, int x1) {
      if (x1 <= x0) return;
      memset(j.rgb + ((size_t)y * j.dstW + x0) * 3, 128, (size_t)(x1 - x0) * 3);
      if (j.planar)
        for (int k = 0; k < 3; k++) std::fill_n(j.planar + k * plane + (size_t)y * j.dstW + x0, x1 - x0, 0.5f);
    };
    if (!inside) {
      fill(0, j.dstW);
    } else {
      fill(0, j.ox);
      fill(j.ox + j.w, j.dstW);
    }
  }
}

}  // namespace

void resizeDarknet(const ResizeJob& j, ResizeScratch& scratch) {
  const int iw = j.iw, ih = j.ih, w = j.w, h = j.h;
  const size_t plane = (size_t)j.dstW * j.dstH;
  if (j.ox != 0 || j.oy != 0 || w != j.dstW || h != j.dstH) fillOutside(j);
  auto dstRgb = [&](int r) { return j.rgb + ((size_t)(j.oy + r) * j.dstW + j.ox) * 3; };
  auto dstPlanar = [&](int r) { return j.planar ? j.planar + (size_t)(j.oy + r) * j.dstW + j.ox : nullptr; };

  if (iw == w && ih == h) {
    const float* U = kUnit.v;
    for (int r = 0; r < h; r++) {
      const uint8_t* s = j.src + (size_t)r * iw * 3;
      memcpy(dstRgb(r), s, (size_t)w * 3);
      if (float* p = dstPlanar(r))
        for (int c = 0; c < w; c++) {
          p[c] = U[s[3 * c]];
          p[plane + c] = U[s[3 * c + 1]];
          p[2 * plane + c] = U[s[3 * c + 2]];
        }
    }
    return;
  }

  const float wScale = w > 1 ? (float)((double)(iw - 1) / (w - 1)) : 0.f;
  const float hScale = h > 1 ? (float)((double)(ih - 1) / (h - 1)) : 0.f;
  const int nInterp = iw == 1 ? 0 : w - 1;

  const size_t row = (size_t)3 * w;
  scratch.f.resize(5 * row + 2 * (size_t)w);
  scratch.i.resize(w);
  float* rows[2] = {scratch.f.data(), scratch.f.data() + row};
  float* vals = scratch.f.data() + 2 * row;
  float* tx = vals + row;
  float* ux = tx + w;
  int32_t* ax = scratch.i.data();
  for (int c = 0; c < nInterp; c++) {
    const float sx = (float)c * wScale;
    const int ix = (int)sx;
    tx[c] = sx - (float)ix;
    ux[c] = 1.f - tx[c];
    ax[c] = 3 * ix;
  }

  // The horizontal pass is done only for the source rows the vertical pass reads, two at a time
  // (consecutive output rows read the same or later source rows).
  int rowOf[2] = {-1, -1};
  auto sourceRow = [&](int y, int keep) -> const float* {
    for (int s = 0; s < 2; s++)
      if (rowOf[s] == y) return rows[s];
    const int s = rowOf[0] == keep ? 1 : 0;
    horizontalRow(j.src + (size_t)y * iw * 3, iw, w, nInterp, ax, tx, ux, rows[s]);
    rowOf[s] = y;
    return rows[s];
  };

  for (int r = 0; r < h; r++) {
    const float sy = (float)r * hScale;
    const int iy = (int)sy;
    const float t = sy - (float)iy;
    const float u = 1.f - t;
    const bool lastRow = r == h - 1 || ih == 1;
    const float* __restrict a = sourceRow(iy, lastRow ? -1 : iy + 1);
    if (lastRow) {
      // darknet takes only the (1-dy) share of the last row, even when dy is not 0.
      for (size_t k = 0; k < row; k++) vals[k] = u * a[k];
    } else {
      const float* __restrict b = sourceRow(iy + 1, iy);
      for (size_t k = 0; k < row; k++) vals[k] = u * a[k] + t * b[k];
    }
    storeRow(vals, w, dstRgb(r), dstPlanar(r), plane);
  }
}

}  // namespace zqimg
