/**
 * Fixed-point formats during retraining. Before each iteration the weight formats (mu, fw, M, fm)
 * are derived from the current float shadow weights and the activation formats from float
 * activations on calibration frames; during the iteration they stay fixed and every step only
 * re-rounds the shadow weights into them (quantizeStep). The integers follow
 * docs/formats/fixed-point.md; toQNet turns the result into the QNet that .zqw files carry.
 */
import type { ConvLayer, Network } from '../model/ir.js';
import { largestFrac, roundHalfAway, sat, signedMax } from '../quant/fixed.js';
import { quantizeWeights } from '../quant/weights.js';
import { INPUT_FRAC, type QConv, type QNet, type TensorFormat } from '../quant/qnet.js';
import { ZeroqError } from '../util/errors.js';
import type { IntConv, IntNet, ParamSet } from './sim.js';

export interface QuantConfig {
  /** Weight width Nw (2..8). */
  wbits: number;
  /** Activation width (8). */
  abits: 8;
  /** Width of the tensors that only yolo layers read (8 or 16). */
  headBits: 8 | 16;
  perChannel: boolean;
  zeroCentered: boolean;
  /** How activation fraction bits are chosen from calibration values. */
  calibration: 'max' | 'mse';
}

/** Weight formats of one conv layer, per output channel. */
export interface WeightFormat {
  fw: Int32Array;
  m: Int32Array;
  fm: Int32Array;
  /** The float mean the weights are centered on before rounding (0 without zero-centering). */
  mu: Float64Array;
}

export interface Formats {
  /** Output format of every layer (yolo layers: that of their input). */
  tensors: TensorFormat[];
  weights: (WeightFormat | undefined)[];
}

/** Factor folded into the weights of layers reading the frame: the engine reads P/256, the model P/255. */
export function inputScale(layer: ConvLayer): number {
  return layer.inputs[0] === -1 ? 256 / 255 : 1;
}

const FRAC_CAP = 40;

/** mu, fw, M, fm of one conv layer from its float weights: the quantizer's rule (src/quant/weights.ts). */
export function weightFormat(layer: ConvLayer, weight: Float32Array, cfg: QuantConfig): WeightFormat {
  const wq = quantizeWeights(weight, layer.filters, {
    wbits: cfg.wbits,
    perChannel: cfg.perChannel,
    zeroCenter: cfg.zeroCentered,
    inputScale: inputScale(layer),
  }, layer.source ?? `layer ${layer.index}`);
  return { fw: wq.fw, m: wq.m, fm: wq.fm, mu: wq.mu };
}

/**
 * The integer parameters of one conv layer for the current shadow weights in frozen formats:
 * Q = sat(round((w - mu) * 2^fw)), B = round(bias * 2^(fw + fa_in)) and the real weights
 * the integers stand for.
 */
export function quantizeConv(
  layer: ConvLayer, weight: Float32Array, bias: Float32Array, wf: WeightFormat, faIn: number, faOut: number, wbits: number,
): IntConv {
  const O = layer.filters;
  const per = weight.length / O;
  const scale = inputScale(layer);
  const q = new Int16Array(weight.length);
  const weff = new Float32Array(weight.length);
  const B = new Int32Array(O);
  const mShift = new Int32Array(O);
  const outShift = new Int32Array(O);
  for (let o = 0; o < O; o++) {
    const step = 2 ** wf.fw[o];
    const mu = wf.mu[o];
    const muQ = wf.m[o] * 2 ** -wf.fm[o];
    for (let i = o * per; i < (o + 1) * per; i++) {
      const v = sat(roundHalfAway((weight[i] * scale - mu) * step), wbits);
      q[i] = v;
      weff[i] = v / step + muQ;
    }
    B[o] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, roundHalfAway(bias[o] * 2 ** (wf.fw[o] + faIn))));
    mShift[o] = wf.fm[o] - wf.fw[o];
    outShift[o] = wf.fw[o] + faIn - faOut;
  }
  return { q, m: wf.m.slice(), mShift, bias: B, outShift, weff };
}

/** Which tensors only yolo layers read (they may be 16-bit). */
export function headOnly(net: Network): boolean[] {
  const readers = net.layers.map(() => [] as string[]);
  for (const l of net.layers) for (const i of l.inputs) if (i >= 0) readers[i].push(l.kind);
  return readers.map((r) => r.length > 0 && r.every((k) => k === 'yolo'));
}

/** Fraction bits of a tensor from sampled real values. */
export function activationFrac(values: Float32Array, maxAbs: number, bits: number, method: 'max' | 'mse'): number {
  const hi = signedMax(bits);
  const fMax = largestFrac(maxAbs, hi, FRAC_CAP);
  if (method === 'max' || values.length === 0) return fMax;
  const lo = -hi - 1;
  let best = fMax;
  let bestErr = Infinity;
  for (let f = fMax; f <= fMax + 6 && f <= FRAC_CAP; f++) {
    const s = 2 ** f;
    let err = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      const r = Math.min(hi, Math.max(lo, roundHalfAway(v * s))) / s;
      err += (r - v) * (r - v);
    }
    if (err < bestErr) (bestErr = err), (best = f);
  }
  return best;
}

/** Collects, per layer, the largest magnitude and a bounded sample of values of float activations. */
export class ActivationStats {
  readonly maxAbs: Float64Array;
  private readonly samples: number[][];
  private seen: Float64Array;
  constructor(
    private readonly layers: number,
    private readonly perLayer = 20000,
    private rand: () => number = Math.random,
  ) {
    this.maxAbs = new Float64Array(layers);
    this.samples = Array.from({ length: layers }, () => []);
    this.seen = new Float64Array(layers);
  }
  add(layer: number, values: Float32Array): void {
    let m = this.maxAbs[layer];
    for (let i = 0; i < values.length; i++) {
      const a = Math.abs(values[i]);
      if (a > m) m = a;
    }
    this.maxAbs[layer] = m;
    // Reservoir sampling keeps a uniform sample of everything seen.
    const s = this.samples[layer];
    const stride = Math.max(1, Math.floor(values.length / this.perLayer));
    for (let i = 0; i < values.length; i += stride) {
      const seen = ++this.seen[layer];
      if (s.length < this.perLayer) s.push(values[i]);
      else {
        const j = Math.floor(this.rand() * seen);
        if (j < this.perLayer) s[j] = values[i];
      }
    }
  }
  sample(layer: number): Float32Array {
    return Float32Array.from(this.samples[layer]);
  }
}

/** Activation formats from calibration statistics, with the format rules of the integer engine. */
export function tensorFormats(net: Network, stats: ActivationStats, cfg: QuantConfig): TensorFormat[] {
  const head = headOnly(net);
  const out: TensorFormat[] = [];
  const fracOf = (j: number) => (j === -1 ? INPUT_FRAC : out[j].frac);
  for (const l of net.layers) {
    const bits: 8 | 16 = head[l.index] && cfg.headBits === 16 ? 16 : cfg.abits;
    switch (l.kind) {
      case 'maxpool':
      case 'upsample':
      case 'dropout':
      case 'yolo':
        out.push({ bits: l.kind === 'yolo' ? out[l.inputs[0]].bits : bits, frac: fracOf(l.inputs[0]) });
        break;
      default:
        out.push({ bits, frac: activationFrac(stats.sample(l.index), stats.maxAbs[l.index], bits, cfg.calibration) });
    }
  }
  return out;
}

export function weightFormats(net: Network, params: ParamSet, cfg: QuantConfig): (WeightFormat | undefined)[] {
  return net.layers.map((l) => (l.kind === 'conv' ? weightFormat(l, params[l.index]!.weight, cfg) : undefined));
}

/** The integer network for the current shadow parameters in frozen formats. */
export function intNet(net: Network, params: ParamSet, f: Formats, wbits: number): IntNet {
  const frac = Int32Array.from(f.tensors, (t) => t.frac);
  const bits = Int32Array.from(f.tensors, (t) => t.bits);
  const convs = net.layers.map((l) => {
    if (l.kind !== 'conv') return undefined;
    const j = l.inputs[0];
    const faIn = j === -1 ? INPUT_FRAC : frac[j];
    const p = params[l.index]!;
    return quantizeConv(l, p.weight, p.bias, f.weights[l.index]!, faIn, frac[l.index], wbits);
  });
  return { frac, bits, convs };
}

/** The QNet (what .zqw files carry) of an integer network. */
export function toQNet(net: Network, f: Formats, q: IntNet, cfg: QuantConfig): QNet {
  const convs = net.layers.map((l): QConv | undefined => {
    const c = q.convs[l.index];
    const wf = f.weights[l.index];
    if (l.kind !== 'conv' || !c || !wf) return undefined;
    return {
      wbits: cfg.wbits,
      perChannel: cfg.perChannel,
      zeroCentered: cfg.zeroCentered,
      q: Int8Array.from(c.q),
      fw: wf.fw.slice(),
      m: wf.m.slice(),
      fm: wf.fm.slice(),
      bias: c.bias.slice(),
    };
  });
  return { net, formats: f.tensors.map((t) => ({ ...t })), convs };
}

/** The integer network of an existing QNet (to resume from, or to check against the engine). */
export function fromQNet(qnet: QNet): IntNet {
  const { net } = qnet;
  const frac = Int32Array.from(qnet.formats, (t) => t.frac);
  const bits = Int32Array.from(qnet.formats, (t) => t.bits);
  const convs = net.layers.map((l): IntConv | undefined => {
    const c = qnet.convs[l.index];
    if (l.kind !== 'conv' || !c) return undefined;
    const j = l.inputs[0];
    const faIn = j === -1 ? INPUT_FRAC : frac[j];
    const per = c.q.length / l.filters;
    const weff = new Float32Array(c.q.length);
    for (let o = 0; o < l.filters; o++) {
      for (let i = o * per; i < (o + 1) * per; i++) weff[i] = c.q[i] * 2 ** -c.fw[o] + c.m[o] * 2 ** -c.fm[o];
    }
    return {
      q: Int16Array.from(c.q),
      m: c.m.slice(),
      mShift: Int32Array.from(c.fm, (fm, o) => fm - c.fw[o]),
      bias: c.bias.slice(),
      outShift: Int32Array.from(c.fw, (fw) => fw + faIn - frac[l.index]),
      weff,
    };
  });
  return { frac, bits, convs };
}
