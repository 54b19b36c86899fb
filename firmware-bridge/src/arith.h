/* The integer primitives of docs/formats/fixed-point.md for the firmware's own layers. */
#ifndef ARITH_H
#define ARITH_H
#include <stdint.h>

/* rshr(v, r): round half up right shift (r > 0), v (r = 0), left shift (r < 0) that saturates
 * at ±2^62 — beyond every 8- and 16-bit range, so saturating the result afterwards is exact. */
static inline int64_t fx_rshr(int64_t v, int r) {
  if (r == 0 || v == 0) return v;
  if (r > 0) {
    if (r > 63) r = 63;
    return (v >> r) + ((v >> (r - 1)) & 1);
  }
  const int64_t guard = (int64_t)1 << 62;
  int s = -r;
  if (s >= 62) return v > 0 ? guard : -guard;
  int64_t lim = guard >> s;
  if (v >= lim) return guard;
  if (v <= -lim) return -guard;
  return v * ((int64_t)1 << s);
}

static inline int32_t fx_sat(int64_t v, int bits) {
  int64_t hi = ((int64_t)1 << (bits - 1)) - 1, lo = -((int64_t)1 << (bits - 1));
  return (int32_t)(v > hi ? hi : v < lo ? lo : v);
}

static inline int64_t fx_leaky(int64_t v) { return v >= 0 ? v : fx_rshr(v * 3277, 15); }

#endif
