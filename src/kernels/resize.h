// darknet's image resize (image.c resize_image) on 8-bit RGB, bit-identical with the JS reference
// resizeImageJs of src/detect/preprocess.ts: float32 arithmetic in the same order, the same quirks.
#pragma once
#include <cstdint>
#include <vector>

namespace zqimg {

struct ResizeJob {
  const uint8_t* src;  // interleaved RGB, iw x ih
  int iw, ih;
  int w, h;            // size of the resized image
  // Destination: dstW x dstH, the resized image placed at (ox, oy); the rest is darknet's
  // letterbox grey (0.5, stored as 128). rgb: interleaved, rounded; planar (optional): CHW floats.
  uint8_t* rgb;
  float* planar;
  int dstW, dstH, ox, oy;
};

// Working memory kept by the caller between frames (it grows to what a size needs, once).
struct ResizeScratch {
  std::vector<float> f;
  std::vector<int32_t> i;
};

// The caller has checked the sizes (1 <= w, h; the rectangle inside the destination).
void resizeDarknet(const ResizeJob& j, ResizeScratch& scratch);

}  // namespace zqimg
