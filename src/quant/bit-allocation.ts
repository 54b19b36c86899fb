/**
 * Weight widths per layer at a given average: the multiple-choice knapsack "one width per layer,
 * Σ weights·width ≤ average·Σ weights, least summed error", solved exactly by dynamic programming
 * over the bit budget (in units of a few weight-bits, every cost rounded up so that the average is
 * never exceeded). The errors are per layer and width, measured one layer at a time
 * (src/retrain/bit-widths.ts), so the sum assumes that the layers' errors add up.
 */
import { ZeroqError } from '../util/errors.js';

export const MIN_WIDTH = 2;
export const MAX_WIDTH = 8;

export interface LayerErrors {
  /** Network layer index of the conv layer. */
  layer: number;
  /** Its weight count. */
  weights: number;
  /** Error with this layer alone at width b, indexed by b (MIN_WIDTH..MAX_WIDTH); other entries unused. */
  error: number[];
}

export interface AllocateOptions {
  /** Narrowest width any layer may get (default 2). */
  minBits?: number;
  /** Widest (default 8). */
  maxBits?: number;
  /** Budget states of the dynamic programme (default 60000): the unit of cost is total·maxBits/states bits. */
  states?: number;
}

export interface Allocation {
  /** Width per entry of the input, same order. */
  widths: number[];
  /** Average bits per weight of the widths (≤ the target). */
  avgBits: number;
  /** Σ of the (monotone) errors at the widths. */
  error: number;
}

/**
 * Errors made non-increasing in the width (a wider format cannot be worse; measured noise can say
 * otherwise): error(b) = max over b' ≥ b of the measured error(b'), and error(maxBits) ≥ 0.
 */
export function monotoneErrors(e: readonly number[], minBits: number, maxBits: number): number[] {
  const out = e.slice();
  let hi = 0;
  for (let b = maxBits; b >= minBits; b--) {
    const v = Number.isFinite(e[b]) ? e[b] : Infinity;
    hi = Math.max(hi, v);
    out[b] = hi;
  }
  return out;
}

/** Widths whose measured errors fit the model, and the widest measured error that is kept as measured. */
export const FIT_WIDTHS = [3, 4, 5];
export const KEEP_MEASURED_UP_TO = 4;

/**
 * A layer's errors with the wider widths from the model e(b) = s·4^-b (fitted to the measured errors
 * at FIT_WIDTHS that were measured, i.e. not below the narrowest measured width): kept as measured up to
 * KEEP_MEASURED_UP_TO bits, modelled above, 0 at 8 bits. Without a fit point, the errors as measured.
 */
export function fittedErrors(error: readonly number[], minMeasured: number): number[] {
  let num = 0;
  let den = 0;
  for (const b of FIT_WIDTHS) {
    if (b < minMeasured || !Number.isFinite(error[b])) continue;
    const x = 4 ** -b;
    num += error[b] * x;
    den += x * x;
  }
  if (den === 0) return error.slice();
  const s = Math.max(0, num / den);
  return error.map((v, b) => (b <= KEEP_MEASURED_UP_TO || b < minMeasured ? v : b >= MAX_WIDTH ? 0 : s * 4 ** -b));
}

export function allocateBits(layers: readonly LayerErrors[], avgBits: number, opts: AllocateOptions = {}): Allocation {
  const minBits = opts.minBits ?? MIN_WIDTH;
  const maxBits = opts.maxBits ?? MAX_WIDTH;
  if (!(Number.isInteger(minBits) && Number.isInteger(maxBits) && MIN_WIDTH <= minBits && minBits <= maxBits && maxBits <= MAX_WIDTH)) {
    throw new ZeroqError('quant-bits', `widths ${minBits}..${maxBits} are not within ${MIN_WIDTH}..${MAX_WIDTH}`);
  }
  if (!(avgBits >= minBits && avgBits <= MAX_WIDTH)) {
    throw new ZeroqError('quant-bits', `an average of ${avgBits} bits per weight is outside ${minBits}..${MAX_WIDTH}`, '--avg-bits');
  }
  if (layers.length === 0) return { widths: [], avgBits: 0, error: 0 };
  // The narrowest width at the average is the only choice; the budget's rounding (costs up, budget down)
  // would otherwise find it does not fit.
  if (avgBits < minBits + 1e-9) {
    const errs0 = layers.map((l) => monotoneErrors(l.error, minBits, maxBits));
    return { widths: layers.map(() => minBits), avgBits: minBits, error: errs0.reduce((s, e) => s + e[minBits], 0) };
  }
  const total = layers.reduce((s, l) => s + l.weights, 0);
  const states = opts.states ?? 60000;
  const unit = Math.max(1, (total * maxBits) / states);
  const budget = Math.floor((avgBits * total) / unit + 1e-9);
  const errs = layers.map((l) => monotoneErrors(l.error, minBits, maxBits));
  const cost = (k: number, b: number) => Math.ceil((layers[k].weights * b) / unit - 1e-9);
  // best[c]: least error of the layers so far with cost exactly c (Infinity: unreachable).
  let best = new Float64Array(budget + 1).fill(Infinity);
  best[0] = 0;
  const choice: Uint8Array[] = [];
  for (let k = 0; k < layers.length; k++) {
    const next = new Float64Array(budget + 1).fill(Infinity);
    const ch = new Uint8Array(budget + 1);
    for (let b = minBits; b <= maxBits; b++) {
      const c = cost(k, b);
      const e = errs[k][b];
      for (let s = 0; s + c <= budget; s++) {
        if (best[s] === Infinity) continue;
        const v = best[s] + e;
        // Ties go to the wider format.
        if (v < next[s + c] || (v === next[s + c] && b > ch[s + c])) {
          next[s + c] = v;
          ch[s + c] = b;
        }
      }
    }
    choice.push(ch);
    best = next;
  }
  let at = -1;
  for (let s = 0; s <= budget; s++) if (best[s] < Infinity && (at < 0 || best[s] < best[at] || (best[s] === best[at] && s > at))) at = s;
  if (at < 0) throw new ZeroqError('quant-bits', `no widths of ${minBits}..${maxBits} bits fit an average of ${avgBits}`, '--avg-bits');
  const widths = new Array<number>(layers.length);
  let error = 0;
  for (let k = layers.length - 1; k >= 0; k--) {
    const b = choice[k][at];
    widths[k] = b;
    error += errs[k][b];
    at -= cost(k, b);
  }
  const bits = layers.reduce((s, l, k) => s + l.weights * widths[k], 0);
  return { widths, avgBits: bits / total, error };
}
