// One conv layer exactly as docs/formats/accelerator.md "What one layer computes" says, on the
// external memory image: the golden result the RTL is compared with.
#ifndef REF_CONV_H
#define REF_CONV_H
#include <cstdint>
#include <vector>

struct ConvDesc {
  uint32_t in_addr, out_addr, w_addr, p_addr;
  uint32_t c, h, w, o, ho, wo, k, stride, pad, groups, flags;
};

// Fills `out` with the bytes the layer writes at out_addr (o*ho*wo pixels, 1 or 2 bytes each).
void ref_conv(const uint8_t *mem, const ConvDesc &d, std::vector<uint8_t> &out);

int64_t ref_rshr(int64_t v, int r);

#endif
