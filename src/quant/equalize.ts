/**
 * Activation equalization across a pair of conv layers (after "cross-layer equalization", Nagel et
 * al., Data-Free Quantization, 2019): for conv A whose output only conv B reads, and an activation
 * with act(s·x) = s·act(x) for s > 0 (linear, leaky, relu), scaling A's output channel c by s_c
 * (its weights and bias) and B's weights reading channel c by 1/s_c leaves the float network's
 * function unchanged. One fraction-bit count per tensor then serves channels whose ranges differed
 * by orders of magnitude: with s_c = (R / r_c)^α (r_c the channel's largest |x| on the calibration
 * images, R the largest of the tensor), small channels are spread over the tensor's range.
 *
 * With per-channel weight formats, a depthwise B takes 1/s_c in its own channel's format: the
 * scaling is free (α = 1). For other B, the factors change the spread inside each of B's output
 * channels, so a compromise α (default 0.5) is used.
 */
import type { ConvLayer, FloatModel, Network } from '../model/ir.js';
import { readersOf } from './calibrate.js';

export interface EqualizeOptions {
  /** Exponent for pairs whose second layer is depthwise (default 1). */
  depthwise?: number;
  /** Exponent for other pairs (default 0.5; 0 leaves them alone). */
  other?: number;
  /** s_c never exceeds this (channels that are (nearly) always 0). */
  maxScale?: number;
}

export interface EqualizedPair {
  a: number;
  b: number;
  depthwise: boolean;
  /** Largest factor applied. */
  maxScale: number;
}

const HOMOGENEOUS = new Set(['linear', 'leaky', 'relu']);

function isDepthwise(net: Network, b: ConvLayer): boolean {
  const inC = net.layers[b.inputs[0]].out.c;
  return b.groups === inC && b.filters === inC;
}

/** Pairs (A, B) of conv layers where B is the only reader of A and A's activation is homogeneous. */
export function equalizablePairs(net: Network): { a: number; b: number; depthwise: boolean }[] {
  const readers = readersOf(net);
  const pairs: { a: number; b: number; depthwise: boolean }[] = [];
  for (const l of net.layers) {
    if (l.kind !== 'conv' || !HOMOGENEOUS.has(l.activation)) continue;
    const r = readers[l.index];
    if (r.length !== 1 || r[0].kind !== 'conv') continue;
    pairs.push({ a: l.index, b: r[0].index, depthwise: isDepthwise(net, r[0] as ConvLayer) });
  }
  return pairs;
}

/** Scales A's output channel c (weights and bias) by s[c] and B's weights reading c by 1/s[c], in place. */
function scalePair(A: ConvLayer, B: ConvLayer, pa: { weight: Float32Array; bias: Float32Array }, pb: { weight: Float32Array }, s: ArrayLike<number>): void {
  const perA = pa.weight.length / A.filters;
  for (let c = 0; c < A.filters; c++) {
    for (let i = c * perA; i < (c + 1) * perA; i++) pa.weight[i] *= s[c];
    pa.bias[c] *= s[c];
  }
  const cg = A.filters / B.groups;
  const kk = B.size * B.size;
  const og = B.filters / B.groups;
  for (let o = 0; o < B.filters; o++) {
    const g = Math.floor(o / og);
    for (let cl = 0; cl < cg; cl++) {
      const inv = 1 / s[g * cg + cl];
      const base = (o * cg + cl) * kk;
      for (let k = 0; k < kk; k++) pb.weight[base + k] *= inv;
    }
  }
}

/**
 * A function-preserving copy of the model with A's output channels scaled per the statistics
 * (`channelMax[a]`: largest |x| of every channel of A's output).
 */
export function equalizeModel(model: FloatModel, channelMax: Float64Array[], opts: EqualizeOptions = {}): { model: FloatModel; pairs: EqualizedPair[] } {
  const { net } = model;
  const params = model.params.map((p) => (p ? { weight: p.weight.slice(), bias: p.bias.slice() } : undefined));
  const done: EqualizedPair[] = [];
  const cap = opts.maxScale ?? 1024;
  for (const { a, b, depthwise } of equalizablePairs(net)) {
    const alpha = depthwise ? (opts.depthwise ?? 1) : (opts.other ?? 0.5);
    if (alpha <= 0) continue;
    const A = net.layers[a] as ConvLayer;
    const B = net.layers[b] as ConvLayer;
    const pa = params[a]!;
    const pb = params[b]!;
    const r = channelMax[a];
    const R = Math.max(...r);
    if (!(R > 0)) continue;
    const s = Array.from(r, (v) => Math.min(cap, (R / Math.max(v, R / cap)) ** alpha));
    scalePair(A, B, pa, pb, s);
    done.push({ a, b, depthwise, maxScale: Math.max(...s) });
  }
  return { model: { net, params }, pairs: done };
}

/**
 * Weight-range equalization (the cross-layer equalization of the same paper), for per-layer weight
 * formats: for each pair, A's output channel c and B's weights reading c are scaled so that both
 * reach sqrt(r_A,c · r_B,c), where r are the channel's largest |w| in A and among B's weights reading
 * c. One format per layer then no longer has to span channels of very different ranges. Repeated a
 * few times, since a layer can be B of one pair and A of the next.
 */
export function equalizeWeightsModel(model: FloatModel, iterations = 4): { model: FloatModel; pairs: EqualizedPair[] } {
  const { net } = model;
  const params = model.params.map((p) => (p ? { weight: p.weight.slice(), bias: p.bias.slice() } : undefined));
  const pairs = equalizablePairs(net);
  const largest = new Map<string, number>();
  for (let it = 0; it < iterations; it++) {
    for (const { a, b, depthwise } of pairs) {
      const A = net.layers[a] as ConvLayer;
      const B = net.layers[b] as ConvLayer;
      const pa = params[a]!;
      const pb = params[b]!;
      const perA = pa.weight.length / A.filters;
      const cg = A.filters / B.groups;
      const kk = B.size * B.size;
      const og = B.filters / B.groups;
      const rA = new Float64Array(A.filters);
      const rB = new Float64Array(A.filters);
      for (let c = 0; c < A.filters; c++) for (let i = c * perA; i < (c + 1) * perA; i++) rA[c] = Math.max(rA[c], Math.abs(pa.weight[i]));
      for (let o = 0; o < B.filters; o++) {
        const g = Math.floor(o / og);
        for (let cl = 0; cl < cg; cl++) {
          const base = (o * cg + cl) * kk;
          for (let k = 0; k < kk; k++) rB[g * cg + cl] = Math.max(rB[g * cg + cl], Math.abs(pb.weight[base + k]));
        }
      }
      const s = Array.from(rA, (r, c) => (r > 0 && rB[c] > 0 ? Math.sqrt(rB[c] / r) : 1));
      scalePair(A, B, pa, pb, s);
      const key = `${a}:${b}:${depthwise}`;
      largest.set(key, Math.max(largest.get(key) ?? 0, ...s.map((v) => Math.max(v, 1 / v))));
    }
  }
  return {
    model: { net, params },
    pairs: pairs.map(({ a, b, depthwise }) => ({ a, b, depthwise, maxScale: largest.get(`${a}:${b}:${depthwise}`) ?? 1 })),
  };
}

export interface AlignOptions {
  /** Weight width Nw the formats will have (of each layer, where they differ). */
  wbits: number | ((layer: ConvLayer) => number);
  /** Whether the formats subtract each channel's mean first (the range is then that of w − mu). */
  zeroCenter: boolean;
  /**
   * Where a channel's largest |w − mu| lands, in steps below the rounding limit qmax + 0.5
   * (default 0.25: 7.25 steps at 4 bits), leaving room for the weights to grow during retraining.
   */
  margin?: number;
}

/**
 * Grid alignment of per-channel weight formats. A format's step is a power of two, so a channel's
 * largest |w − mu| lands anywhere from about (qmax + 0.5)/2 to qmax + 0.5 steps: in the worst case a
 * 4-bit channel uses only the levels −4..4. For each pair (A, B) this scales A's output channel c by
 * a_c in (0.5, 1], chosen so that channel's range lands just below the top of its grid, and B's
 * weights reading c by 1/a_c; the float function is unchanged. Pairs are taken in network order, so
 * a layer that is B of one pair (a depthwise conv) is aligned again as A of the next. Channels shrink
 * by at most a factor 2 in the activation they produce.
 */
export function alignWeightGrid(model: FloatModel, opts: AlignOptions): { model: FloatModel; pairs: EqualizedPair[] } {
  const { net } = model;
  const params = model.params.map((p) => (p ? { weight: p.weight.slice(), bias: p.bias.slice() } : undefined));
  const done: EqualizedPair[] = [];
  for (const { a, b, depthwise } of equalizablePairs(net)) {
    const A = net.layers[a] as ConvLayer;
    const B = net.layers[b] as ConvLayer;
    const wbits = typeof opts.wbits === 'number' ? opts.wbits : opts.wbits(A);
    const target = 2 ** (wbits - 1) - 1 + 0.5 - (opts.margin ?? 0.25);
    const pa = params[a]!;
    const pb = params[b]!;
    const perA = pa.weight.length / A.filters;
    const s = new Float64Array(A.filters);
    for (let c = 0; c < A.filters; c++) {
      let mu = 0;
      if (opts.zeroCenter) {
        for (let i = c * perA; i < (c + 1) * perA; i++) mu += pa.weight[i];
        mu /= perA;
      }
      let m = 0;
      for (let i = c * perA; i < (c + 1) * perA; i++) m = Math.max(m, Math.abs(pa.weight[i] - mu));
      s[c] = m > 0 ? target / (m * 2 ** Math.ceil(Math.log2(target / m))) : 1;
    }
    scalePair(A, B, pa, pb, s);
    done.push({ a, b, depthwise, maxScale: Math.max(...s) });
  }
  return { model: { net, params }, pairs: done };
}
