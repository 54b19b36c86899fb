/**
 * The integer primitives of docs/formats/fixed-point.md on JS numbers, and the offline helpers that
 * choose formats. Every TypeScript implementation of the contract (the readable reference, the
 * quantizer's simulation, the trainer) calls these. Values are integers below 2^53 in magnitude
 * (validation bounds the accumulators to 32 bits and M·S to 47), so double arithmetic is exact.
 */

/** rshr(v, r): r > 0 → floor((v + 2^(r-1)) / 2^r) (round half up); r = 0 → v; r < 0 → v·2^-r. */
export function rshr(v: number, r: number): number {
  if (r === 0 || v === 0) return v;
  if (r < 0) return v * 2 ** Math.min(-r, 64);
  // |v| < 2^53 <= 2^(r-1) for r > 54: the result is 0, and 2^r must not overflow.
  if (r > 64) return 0;
  return Math.floor((v + 2 ** (r - 1)) / 2 ** r);
}

/** Largest value of a signed word of `bits` bits. */
export function signedMax(bits: number): number {
  return 2 ** (bits - 1) - 1;
}

/** Clamp to the signed `bits`-bit range [-2^(bits-1), 2^(bits-1)-1]. */
export function sat(v: number, bits: number): number {
  const hi = 2 ** (bits - 1) - 1;
  const lo = -hi - 1;
  return v > hi ? hi : v < lo ? lo : v;
}

/** The leaky slope 0.1 as 3277/32768. */
export const LEAKY_MUL = 3277;
export const LEAKY_SHIFT = 15;

/** Leaky ReLU of the contract: v >= 0 ? v : rshr(v·3277, 15). */
export function leaky(v: number): number {
  return v >= 0 ? v : rshr(v * LEAKY_MUL, LEAKY_SHIFT);
}

/** Round half away from zero (symmetric, so a range [-m, m] maps to [-round(m), round(m)]). */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * The largest fraction-bit count f with round(a·2^f) <= limit, for a > 0 (the min/max-aware rule
 * for weights and activations: nothing of magnitude a is clipped). `cap` bounds the answer.
 */
export function largestFrac(a: number, limit: number, cap = 64): number {
  if (!(a > 0) || !Number.isFinite(a)) return cap;
  let f = Math.min(cap, Math.floor(Math.log2(limit / a)));
  while (f < cap && roundHalfAway(a * 2 ** (f + 1)) <= limit) f++;
  while (roundHalfAway(a * 2 ** f) > limit) f--;
  return f;
}
