/**
 * Zero-centered fixed-point quantization of one conv layer's (BN-folded) weights
 * (S. Kim, H. Kim, IEEE Access 9, 2021; ../../docs/formats/fixed-point.md):
 *   mu = mean of the weights of the layer (or of each output channel), D = w - mu,
 *   m = max(|min D|, |max D|), fw = the largest f with round(m·2^f) <= 2^(Nw-1) - 1,
 *   Q = round(D·2^fw) (Nw bits, nothing clipped), M = round(mu·2^fm) in 16 bits.
 * With zeroCenter off, mu = 0: the plain fixed-point baseline. With center 'fit', mu moves off the mean
 * where that lets a finer grid hold every weight (fittingCenter).
 */
import { largestFrac, roundHalfAway, signedMax } from '../qnet/arith.js';
import { ZeroqError } from '../util/errors.js';
import { roundChannel, type InputHessian } from './gptq.js';

/** Weight fraction bits never exceed this: smaller weights are below any activation's resolution. */
export const FW_MAX = 24;
/** Width of M (signed). */
export const M_BITS = 16;
/** fm - fw never exceeds this: the correction rshr(M·S, fm - fw) is then exact to 2^-30 of an LSB of Y. */
export const FM_SHIFT_MAX = 30;

export interface WeightQuantOptions {
  /** Nw, 2..8. */
  wbits: number;
  perChannel: boolean;
  zeroCenter: boolean;
  /** Factor applied to the float weights first (layer 0 reads P/256 where the float model reads P/255). */
  inputScale?: number;
  /** Upper bound of fw per output channel (from the accumulator proof); FW_MAX when absent. */
  fwCap?: ArrayLike<number>;
  /**
   * 'minmax' (default): fw from the range, nothing clipped (the paper's rule). 'mse': of fw and the
   * next finer WEIGHT_CLIP_STEPS fracs, the one with the least squared error of the group's weights,
   * the weights beyond ±(2^(Nw-1) - 1) steps clipped there.
   */
  clip?: WeightClip;
  /**
   * When given, the weights of each channel are rounded to minimise the error of the layer's output
   * on the calibration inputs (gptq.ts) instead of each to its nearest grid point; the grid is the same.
   */
  hessian?: InputHessian;
  /** Where the integers are centered (with zeroCenter): 'mean' (default, the paper's mu) or 'fit'. */
  center?: WeightCenter;
}

/**
 * 'mean': mu is the mean of the group's weights (the paper). 'fit': the mean, unless a grid one step
 * finer (or more) holds every weight from another point; then the point nearest the mean from which
 * the finest such grid does. Nothing is clipped either way; a channel whose weights sit lopsided about
 * their mean gets half (or a quarter of) the step. docs/decisions/quantizer-defaults.md measures it.
 */
export type WeightCenter = 'mean' | 'fit';

/**
 * The rule a command takes: a center for every width, or 'auto' (`zeroq quantize`'s default): 'fit' up
 * to FIT_CENTER_MAX_BITS bits, where it measured better on both networks and both image lists, the
 * mean above, where the two measured within noise of each other (docs/decisions/quantizer-defaults.md).
 */
export type CenterRule = WeightCenter | 'auto';
export const CENTER_RULES: readonly CenterRule[] = ['auto', 'mean', 'fit'];
export const FIT_CENTER_MAX_BITS = 5;

/** The center of a layer of `wbits` under a rule (absent: the mean, as before the rule existed). */
export function centerAt(rule: CenterRule | undefined, wbits: number): WeightCenter {
  if (rule === 'auto') return wbits <= FIT_CENTER_MAX_BITS ? 'fit' : 'mean';
  return rule ?? 'mean';
}

export type WeightClip = 'minmax' | 'mse';
/** Each weight to its nearest grid point, or for the least error of the layer's output (gptq.ts). */
export type WeightRounding = 'nearest' | 'output';
/** How many fracs finer than the min/max one the 'mse' rule tries. */
export const WEIGHT_CLIP_STEPS = 2;

/** Squared error of D - mean quantized with `frac` fraction bits, clipped to ±qmax. */
function clippedError(weight: Float32Array, from: number, to: number, scale: number, mean: number, frac: number, qmax: number): number {
  const s = 2 ** frac;
  let e = 0;
  for (let i = from; i < to; i++) {
    const d = weight[i] * scale - mean;
    const q = Math.max(-qmax, Math.min(qmax, roundHalfAway(d * s)));
    e += (d - q / s) ** 2;
  }
  return e;
}

/**
 * The point nearest `mean` from which every weight of [from, to) (times scale) rounds to within
 * ±qmax steps of 2^-frac, or undefined when no point does.
 */
export function fittingCenter(weight: Float32Array, from: number, to: number, scale: number, mean: number, frac: number, qmax: number): number | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = from; i < to; i++) {
    const v = weight[i] * scale;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const s = 2 ** frac;
  // |w - c|·2^frac < qmax + 1/2 rounds to within ±qmax; the margin keeps ties (rounded away) out.
  const reach = (qmax + 0.5 - 1e-6) / s;
  if (hi - lo > 2 * reach) return undefined;
  const c = Math.min(Math.max(mean, hi - reach), lo + reach);
  for (let i = from; i < to; i++) if (Math.abs(roundHalfAway((weight[i] * scale - c) * s)) > qmax) return undefined;
  return c;
}

/**
 * From the mean's grid `frac`, the finest grid up to `limit` that some point holds every weight on, and
 * the point nearest the mean that does (the mean itself when no finer grid fits).
 */
function finestFit(weight: Float32Array, from: number, to: number, scale: number, mean: number, frac: number, limit: number, qmax: number): { frac: number; center: number } {
  let out = { frac, center: mean };
  for (let g = frac + 1; g <= limit; g++) {
    const c = fittingCenter(weight, from, to, scale, mean, g, qmax);
    if (c === undefined) break;
    out = { frac: g, center: c };
  }
  return out;
}

/**
 * The centers mu of each output channel for the fraction bits fw it has (one per channel), as
 * quantizeWeights chose them along with those fw.
 */
export function centersFor(
  weight: Float32Array, filters: number, fw: ArrayLike<number>,
  opts: Pick<WeightQuantOptions, 'wbits' | 'perChannel' | 'zeroCenter' | 'inputScale' | 'center'>,
): Float64Array {
  const scale = opts.inputScale ?? 1;
  const qmax = signedMax(opts.wbits);
  const per = weight.length / filters;
  const groups = opts.perChannel ? filters : 1;
  const span = weight.length / groups;
  const mu = new Float64Array(filters);
  if (!opts.zeroCenter) return mu;
  for (let g = 0; g < groups; g++) {
    const from = g * span;
    const to = from + span;
    const mean = meanOf(weight, from, to, scale);
    let c = mean;
    const f = fw[from / per];
    if (opts.center === 'fit') {
      // The quantizer's walk from the mean's grid, no further than the grid it ended on.
      let range = 0;
      for (let i = from; i < to; i++) range = Math.max(range, Math.abs(weight[i] * scale - mean));
      if (range > 0) c = finestFit(weight, from, to, scale, mean, largestFrac(range, qmax, FW_MAX), f, qmax).center;
    }
    for (let o = from / per; o < to / per; o++) mu[o] = c;
  }
  return mu;
}

/** The integer weights of a layer and the real values they stand for. */
export interface WeightQuant {
  q: Int8Array;
  fw: Int32Array;
  m: Int32Array;
  fm: Int32Array;
  /** mu of each output channel (the same value repeated for a per-layer format). */
  mu: Float64Array;
}

export function checkWbits(wbits: number, where?: string): void {
  if (!Number.isInteger(wbits) || wbits < 2 || wbits > 8) {
    throw new ZeroqError('quant-bits', `weight width must be an integer from 2 to 8, got ${wbits}`, where);
  }
}

function meanOf(w: Float32Array, from: number, to: number, scale: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += w[i] * scale;
  return s / (to - from);
}

/** M and fm for a mean mu, given the weight fraction bits fw. */
export function quantizeMean(mu: number, fw: number): { m: number; fm: number } {
  if (mu === 0) return { m: 0, fm: fw };
  const fm = largestFrac(Math.abs(mu), signedMax(M_BITS), fw + FM_SHIFT_MAX);
  const m = roundHalfAway(mu * 2 ** fm);
  return m === 0 ? { m: 0, fm: fw } : { m, fm };
}

/**
 * Quantizes OIHW weights of `filters` output channels. Throws on non-finite weights.
 */
export function quantizeWeights(weight: Float32Array, filters: number, opts: WeightQuantOptions, where?: string): WeightQuant {
  checkWbits(opts.wbits, where);
  if (filters <= 0 || weight.length % filters !== 0) {
    throw new ZeroqError('quant-shape', `${weight.length} weights do not split into ${filters} output channels`, where);
  }
  for (let i = 0; i < weight.length; i++) {
    if (!Number.isFinite(weight[i])) throw new ZeroqError('quant-weights', `weight ${i} is ${weight[i]}`, where);
  }
  const scale = opts.inputScale ?? 1;
  const per = weight.length / filters;
  const qmax = signedMax(opts.wbits);
  const groups = opts.perChannel ? filters : 1;
  const span = weight.length / groups;

  const mu = new Float64Array(filters);
  const fw = new Int32Array(filters);
  for (let g = 0; g < groups; g++) {
    const from = g * span;
    const to = from + span;
    const mean = opts.zeroCenter ? meanOf(weight, from, to, scale) : 0;
    let range = 0;
    for (let i = from; i < to; i++) range = Math.max(range, Math.abs(weight[i] * scale - mean));
    let f = largestFrac(range, qmax, FW_MAX);
    let cap = FW_MAX;
    if (opts.fwCap) {
      for (let o = from / per; o < to / per; o++) cap = Math.min(cap, opts.fwCap[o]);
    }
    f = Math.min(f, cap);
    let center = mean;
    if (opts.center === 'fit' && opts.zeroCenter && range > 0) ({ frac: f, center } = finestFit(weight, from, to, scale, mean, f, cap, qmax));
    if (opts.clip === 'mse' && range > 0) {
      let best = clippedError(weight, from, to, scale, center, f, qmax);
      const f0 = f;
      for (let g = f0 + 1; g <= Math.min(cap, f0 + WEIGHT_CLIP_STEPS); g++) {
        const e = clippedError(weight, from, to, scale, center, g, qmax);
        if (e < best) (best = e), (f = g);
      }
    }
    for (let o = from / per; o < to / per; o++) {
      mu[o] = center;
      fw[o] = f;
    }
  }

  const q = new Int8Array(weight.length);
  const m = new Int32Array(filters);
  const fm = new Int32Array(filters);
  const H = opts.hessian;
  if (H && (H.d !== per || filters % H.factors.length !== 0)) {
    throw new ZeroqError('quant-shape', `input statistics of ${H.factors.length} groups of ${H.d} do not fit ${filters} channels of ${per} weights`, where);
  }
  for (let o = 0; o < filters; o++) {
    const s = 2 ** fw[o];
    if (H) {
      const D = new Float64Array(per);
      for (let i = 0; i < per; i++) D[i] = weight[o * per + i] * scale - mu[o];
      const g = Math.floor((o * H.factors.length) / filters);
      roundChannel(D, H.factors[g], fw[o], qmax, q, o * per, H.orders?.[g]);
      const mq = quantizeMean(mu[o], fw[o]);
      m[o] = mq.m;
      fm[o] = mq.fm;
      continue;
    }
    for (let i = o * per; i < (o + 1) * per; i++) {
      // With a lowered fw (fwCap) nothing can exceed qmax either: the range only shrinks. With 'mse' it can.
      q[i] = Math.max(-qmax, Math.min(qmax, roundHalfAway((weight[i] * scale - mu[o]) * s)));
    }
    const mq = quantizeMean(mu[o], fw[o]);
    m[o] = mq.m;
    fm[o] = mq.fm;
  }
  return { q, fw, m, fm, mu };
}

/** The real weights an integer layer computes with: Q·2^-fw + M·2^-fm. */
export function dequantizeWeights(wq: Pick<WeightQuant, 'q' | 'fw' | 'm' | 'fm'>, filters: number): Float64Array {
  const per = wq.q.length / filters;
  const out = new Float64Array(wq.q.length);
  for (let o = 0; o < filters; o++) {
    const s = 2 ** -wq.fw[o];
    const c = wq.m[o] * 2 ** -wq.fm[o];
    for (let i = o * per; i < (o + 1) * per; i++) out[i] = wq.q[i] * s + c;
  }
  return out;
}

/** Signal-to-quantization-noise ratio in dB (Infinity when exact). */
export function sqnrDb(weight: Float32Array, approx: Float64Array, scale = 1): number {
  let sig = 0;
  let noise = 0;
  for (let i = 0; i < weight.length; i++) {
    const w = weight[i] * scale;
    sig += w * w;
    noise += (w - approx[i]) ** 2;
  }
  if (noise === 0) return Infinity;
  return 10 * Math.log10(sig / noise);
}
