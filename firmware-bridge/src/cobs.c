#include "cobs.h"

size_t cobs_encode(const uint8_t *in, size_t n, uint8_t *out) {
  size_t o = 1;    /* next output position */
  size_t code = 0; /* position of the current block's code byte */
  uint8_t run = 1; /* code value so far: 1 + bytes in the block */
  for (size_t i = 0; i < n; i++) {
    if (in[i] == 0) {
      out[code] = run;
      code = o++;
      run = 1;
    } else {
      out[o++] = in[i];
      if (++run == 0xFF) { /* a full block of 254 bytes: no zero implied after it */
        out[code] = run;
        code = o++;
        run = 1;
      }
    }
  }
  out[code] = run;
  return o;
}

long cobs_decode(const uint8_t *in, size_t n, uint8_t *out) {
  size_t i = 0, o = 0;
  while (i < n) {
    uint8_t code = in[i++];
    if (code == 0) return -1;
    size_t len = (size_t)code - 1;
    if (len > n - i) return -1;
    for (size_t j = 0; j < len; j++) {
      if (in[i] == 0) return -1;
      out[o++] = in[i++];
    }
    /* A block shorter than 254 bytes stands for a zero after it, except at the very end. */
    if (code != 0xFF && i < n) out[o++] = 0;
  }
  return (long)o;
}
