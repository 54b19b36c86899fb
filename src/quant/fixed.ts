/**
 * Offline fixed-point helpers shared by the quantizer and its calibration simulation.
 * Values are JS numbers holding integers; every use keeps them below 2^53, so they are exact.
 * The run-time operators (rshr, sat) follow ../../docs/formats/fixed-point.md.
 */

/** Round half away from zero (symmetric, so a range [-m, m] maps to [-round(m), round(m)]). */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** rshr(v, r): r > 0 → floor((v + 2^(r-1)) / 2^r) (round half up); r = 0 → v; r < 0 → v·2^-r. */
export function rshr(v: number, r: number): number {
  if (r > 0) return Math.floor((v + 2 ** (r - 1)) / 2 ** r);
  if (r < 0) return v * 2 ** -r;
  return v;
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
