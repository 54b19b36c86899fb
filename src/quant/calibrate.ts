/**
 * Activation formats: which tensors get a format of their own, their widths, and the fraction bits
 * from float statistics gathered on calibration images (min/max or a percentile of |x|).
 * The search through the integer pipeline is in search.ts.
 *
 * Rules (docs/decisions/quantizer-defaults.md): conv, shortcut and multi-input route outputs are
 * calibrated; max-pool, upsample, dropout and single-input route keep their input's format (the
 * arithmetic requires it for the first three; for a slice it avoids a conversion). Route and shortcut
 * inputs are converted to the output format by the engine (sat(rshr(x, fa_i − fa_out))).
 */
import type { Layer, Network } from '../model/ir.js';
import type { TensorFormat } from '../qnet/types.js';
import { largestFrac, signedMax } from '../qnet/arith.js';
import { ZeroqError } from '../util/errors.js';

export type ActCalibMethod = 'minmax' | 'percentile' | 'search';

/** Activation fraction bits stay within these (an all-zero tensor takes FA_MAX). */
export const FA_MAX = 20;
export const FA_MIN = -20;

/** Whether a layer's output format is chosen by calibration ('own') or copied from its input. */
export function ownsFormat(layer: Layer): boolean {
  switch (layer.kind) {
    case 'conv':
    case 'shortcut':
      return true;
    case 'route':
      return layer.inputs.length > 1;
    default:
      return false;
  }
}

/** For each layer, the layers that read its output. */
export function readersOf(net: Network): Layer[][] {
  const r: Layer[][] = net.layers.map(() => []);
  for (const l of net.layers) for (const i of l.inputs) if (i >= 0) r[i].push(l);
  return r;
}

/** Layers whose output only yolo layers read: they may be 16-bit. */
export function feedsOnlyHeads(net: Network): boolean[] {
  return readersOf(net).map((r) => r.length > 0 && r.every((l) => l.kind === 'yolo'));
}

/** Output width of every layer: headAbits for calibrated tensors read only by yolo layers, else abits. */
export function outputBits(net: Network, abits: number, headAbits: number): (8 | 16)[] {
  if (abits !== 8) throw new ZeroqError('quant-bits', `activation width must be 8 (16 only for head tensors, --head-abits), got ${abits}`);
  if (headAbits !== 8 && headAbits !== 16) throw new ZeroqError('quant-bits', `head activation width must be 8 or 16, got ${headAbits}`);
  const heads = feedsOnlyHeads(net);
  return net.layers.map((l) => (ownsFormat(l) && heads[l.index] ? (headAbits as 8 | 16) : 8));
}

/** The largest frac keeping [min, max] representable in a signed `bits`-bit word (nothing clipped). */
export function fracForRange(min: number, max: number, bits: number): number {
  const hi = signedMax(bits);
  let f = FA_MAX;
  if (max > 0) f = Math.min(f, largestFrac(max, hi, FA_MAX));
  if (min < 0) f = Math.min(f, largestFrac(-min, hi + 1, FA_MAX));
  return Math.max(FA_MIN, f);
}

/** Histogram resolution of log2|x|: 16 bins per octave over [-LOG_SPAN, LOG_SPAN). */
const BINS_PER_OCTAVE = 16;
const LOG_SPAN = 48;
const BINS = 2 * LOG_SPAN * BINS_PER_OCTAVE;

/** Float statistics of every layer's output over the calibration images. */
export class ActivationStats {
  readonly min: Float64Array;
  readonly max: Float64Array;
  /**
   * Per layer: counts of |x| by log2 bin (zeros not counted), and the number of values. Only kept
   * when asked for (the percentile rule reads it): a log2 per value is most of the statistics' cost.
   */
  readonly hist: (Float64Array | undefined)[];
  readonly count: Float64Array;
  /** Per layer: sum of every channel's values (for the channel means bias correction uses). */
  readonly channelSum: Float64Array[];
  /** Per layer: largest |x| of every channel (for equalization). */
  readonly channelMax: Float64Array[];
  /** The same for the network input, in the integer engine's units (P/256). */
  readonly inputSum: Float64Array;
  images = 0;

  constructor(
    readonly net: Network,
    opts: { histogram?: boolean } = {},
  ) {
    const n = net.layers.length;
    this.min = new Float64Array(n).fill(Infinity);
    this.max = new Float64Array(n).fill(-Infinity);
    this.count = new Float64Array(n);
    this.hist = net.layers.map((l) => (opts.histogram !== false && ownsFormat(l) ? new Float64Array(BINS) : undefined));
    this.channelSum = net.layers.map((l) => new Float64Array(l.out.c));
    this.channelMax = net.layers.map((l) => new Float64Array(l.out.c));
    this.inputSum = new Float64Array(net.input.c);
  }

  /** Adds one frame (HWC uint8) to the input channel sums. */
  addInput(rgb: Uint8Array): void {
    const c = this.net.input.c;
    for (let i = 0; i < rgb.length; i++) this.inputSum[i % c] += rgb[i] / 256;
  }

  /** Mean of every channel of layer i's output (-1: the network input as P/256). */
  channelMean(i: number): Float64Array {
    const s = i === -1 ? this.inputSum : this.channelSum[i];
    const shape = i === -1 ? this.net.input : this.net.layers[i].out;
    const n = this.images * shape.h * shape.w;
    return s.map((v) => (n > 0 ? v / n : 0));
  }

  /** Adds one image's output of layer i. */
  add(i: number, data: Float32Array): void {
    let mn = this.min[i];
    let mx = this.max[i];
    const h = this.hist[i];
    const sums = this.channelSum[i];
    const maxs = this.channelMax[i];
    const plane = data.length / sums.length;
    for (let ch = 0; ch < sums.length; ch++) {
      let s = 0;
      let m = maxs[ch];
      for (let k = ch * plane; k < (ch + 1) * plane; k++) {
        s += data[k];
        const a = Math.abs(data[k]);
        if (a > m) m = a;
      }
      sums[ch] += s;
      maxs[ch] = m;
    }
    for (let k = 0; k < data.length; k++) {
      const v = data[k];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    if (h) {
      for (let k = 0; k < data.length; k++) {
        const v = data[k];
        if (v === 0) continue;
        const b = Math.floor((Math.log2(Math.abs(v)) + LOG_SPAN) * BINS_PER_OCTAVE);
        h[b < 0 ? 0 : b >= BINS ? BINS - 1 : b]++;
      }
    }
    this.min[i] = mn;
    this.max[i] = mx;
    this.count[i] += data.length;
  }

  /** The p-th percentile (0..100) of |x| of layer i, as the upper edge of its histogram bin. */
  absPercentile(i: number, p: number): number {
    const h = this.hist[i];
    if (!h) throw new ZeroqError('quant-calib', `no histogram for layer ${i} (statistics gathered without histograms)`);
    const keep = (p / 100) * this.count[i];
    // Values at zero are below every edge.
    let below = this.count[i] - h.reduce((a, b) => a + b, 0);
    for (let b = 0; b < BINS; b++) {
      below += h[b];
      if (below >= keep) return 2 ** ((b + 1) / BINS_PER_OCTAVE - LOG_SPAN);
    }
    return Math.max(Math.abs(this.min[i]), Math.abs(this.max[i]));
  }

  /** Fraction bits for layer i's output by min/max or by percentile. */
  frac(i: number, bits: number, method: 'minmax' | 'percentile', percentile = 99.99): number {
    if (this.count[i] === 0) throw new ZeroqError('quant-calib', `no calibration values for layer ${i}`);
    const min = this.min[i];
    const max = this.max[i];
    if (method === 'minmax') return fracForRange(min, max, bits);
    const a = this.absPercentile(i, percentile);
    return fracForRange(Math.max(min, -a), Math.min(max, a), bits);
  }
}

/**
 * Every layer's output format from the statistics: calibrated layers by `method`, the others copy
 * their input's format (a yolo layer's entry is its input's format).
 */
export function formatsFromStats(
  net: Network,
  stats: ActivationStats,
  bits: (8 | 16)[],
  method: 'minmax' | 'percentile',
  percentile?: number,
): TensorFormat[] {
  const formats: TensorFormat[] = [];
  for (const l of net.layers) {
    if (ownsFormat(l)) formats.push({ bits: bits[l.index], frac: stats.frac(l.index, bits[l.index], method, percentile) });
    else formats.push(inheritedFormat(l, formats));
  }
  return formats;
}

/** The format a non-calibrated layer takes: its input's. */
export function inheritedFormat(layer: Layer, formats: TensorFormat[]): TensorFormat {
  const i = layer.inputs[0];
  if (i === -1) {
    throw new ZeroqError('quant-layer', `only a conv layer may read the network input`, layer.source ?? `layer ${layer.index} (${layer.kind})`);
  }
  return { ...formats[i] };
}
