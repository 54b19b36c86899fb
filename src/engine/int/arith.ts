/**
 * The integer primitives of docs/formats/fixed-point.md, on JS numbers. Every value passed here is
 * an integer below 2^53 in magnitude (validation bounds the accumulators to 32 bits and M·S to 47),
 * so double arithmetic is exact.
 */

/** rshr(v, r): round half up right shift; a negative r shifts left. */
export function rshr(v: number, r: number): number {
  if (r === 0 || v === 0) return v;
  if (r < 0) return v * 2 ** Math.min(-r, 64);
  // |v| < 2^53 <= 2^(r-1) for r > 54: the result is 0, and 2^r must not overflow.
  if (r > 64) return 0;
  return Math.floor((v + 2 ** (r - 1)) / 2 ** r);
}

/** Clamp to the signed `bits`-bit range. */
export function sat(v: number, bits: number): number {
  const hi = 2 ** (bits - 1) - 1;
  const lo = -(2 ** (bits - 1));
  return v > hi ? hi : v < lo ? lo : v;
}

/** Leaky ReLU with slope 3277/32768. */
export function leaky(v: number): number {
  return v >= 0 ? v : rshr(v * 3277, 15);
}

/** An integer tensor, CHW. */
export interface ITensor {
  c: number;
  h: number;
  w: number;
  data: Int32Array;
}

export function tensor(c: number, h: number, w: number): ITensor {
  return { c, h, w, data: new Int32Array(c * h * w) };
}
