/**
 * Fixed-point formats during retraining. Before each iteration the quantizer itself
 * (src/quant/quantize.ts, the options of `zeroq quantize`) quantizes the current float shadow
 * weights: its activation formats, weight formats (fw, M, fm) and bias-corrected biases start the
 * iteration, so that the iteration's first integer network is exactly what `zeroq quantize` gives for
 * those weights. During the iteration the formats stay fixed and every step only re-rounds the shadow
 * weights into them (quantizeConv). The integers follow docs/formats/fixed-point.md; toQNet turns the
 * result into the QNet that .zqw files carry.
 */
import type { ConvLayer, Network } from '../model/ir.js';
import type { Frame } from '../engine/engine.js';
import { roundHalfAway } from '../qnet/arith.js';
import { centerAt, centersFor, type CenterRule, type WeightClip, type WeightRounding } from '../quant/weights.js';
import { quantizeDefaults, quantizeModel, type QuantizeOptions } from '../quant/quantize.js';
import type { RoundingTargetRule } from '../quant/float-target.js';
import type { ActCalibMethod } from '../quant/calibrate.js';
import { INPUT_FRAC, type QConv, type QNet, type TensorFormat } from '../qnet/types.js';
import { ZeroqError } from '../util/errors.js';
import type { IntConv, IntNet, ParamSet } from './sim.js';

export interface QuantConfig {
  /** Weight width Nw (2..8) of every conv layer... */
  wbits: number;
  /** ...or per layer (indexed like the network's layers; 0 for layers without weights), when given. */
  layerBits?: number[];
  /** Activation width (8). */
  abits: 8;
  /** Width of the tensors that only yolo layers read (8 or 16). */
  headBits: 8 | 16;
  perChannel: boolean;
  zeroCentered: boolean;
  /** The quantizer's rule for weight fraction bits (`--weight-clip`; absent: min/max). */
  weightClip?: WeightClip;
  /** Where the quantizer centers each channel's integers, by width (`--center`; absent: the mean). */
  center?: CenterRule;
  /** The quantizer's rounding (`--rounding`; absent: to nearest). */
  rounding?: WeightRounding;
  /** With rounding 'output': the error it rounds for (`--rounding-target`; absent: each layer's own). */
  roundingTarget?: RoundingTargetRule;
  /** The quantizer's activation calibration (`zeroq quantize --act-calib`), and its percentile. */
  actCalib: ActCalibMethod;
  percentile?: number;
  /** The quantizer's bias correction, applied to the shadow biases at the start of every iteration. */
  biasCorrection: boolean;
  /** The quantizer's activation equalization, applied once to the float model before the first iteration. */
  equalize: boolean;
  /** The quantizer's weight-grid alignment (`--align-weights`), applied with equalization before the first iteration. */
  alignWeights?: boolean;
  searchObjective: 'exact' | 'float';
}

/** The quantizer's defaults (`zeroq quantize` without options) at a weight width. */
export function defaultQuantConfig(wbits: number): QuantConfig {
  const d = quantizeDefaults();
  return {
    wbits,
    abits: 8,
    headBits: d.headAbits === 8 ? 8 : 16,
    perChannel: d.perChannel,
    zeroCentered: d.zeroCenter,
    actCalib: d.actCalib,
    percentile: d.percentile,
    biasCorrection: d.biasCorrection ?? false,
    equalize: d.perChannel,
    searchObjective: d.searchObjective ?? 'exact',
    ...(d.weightClip === 'mse' ? { weightClip: 'mse' as const } : {}),
    ...(d.center !== undefined && d.center !== 'mean' ? { center: d.center } : {}),
    ...(d.rounding === 'output' ? { rounding: 'output' as const } : {}),
  };
}

/** The options `zeroq quantize` would run with for this configuration. */
export function quantizeOptionsOf(cfg: QuantConfig, equalize: boolean, threads: number, align = false): QuantizeOptions {
  return {
    ...quantizeDefaults(),
    wbits: cfg.wbits,
    ...(cfg.layerBits ? { layerBits: cfg.layerBits } : {}),
    perChannel: cfg.perChannel,
    zeroCenter: cfg.zeroCentered,
    // Absent in a configuration: the rules of before they existed (checkpoints keep resuming alike).
    weightClip: cfg.weightClip ?? 'minmax',
    center: cfg.center ?? 'mean',
    rounding: cfg.rounding ?? 'nearest',
    // Absent: the layer's own error, whatever the quantizer's default (checkpoints keep resuming alike).
    roundingTarget: cfg.roundingTarget ?? 'layer',
    abits: cfg.abits,
    headAbits: cfg.headBits,
    actCalib: cfg.actCalib,
    ...(cfg.percentile !== undefined ? { percentile: cfg.percentile } : {}),
    biasCorrection: cfg.biasCorrection,
    equalize: equalize && cfg.perChannel,
    alignWeights: align && cfg.perChannel,
    searchObjective: cfg.searchObjective,
    threads,
  };
}

/** Weight formats of one conv layer, per output channel. */
export interface WeightFormat {
  /** The layer's weight width (absent in checkpoints written before per-layer widths: the run's width). */
  wbits?: number;
  fw: Int32Array;
  m: Int32Array;
  fm: Int32Array;
  /** The float mean the weights are centered on before rounding (0 without zero-centering). */
  mu: Float64Array;
  /**
   * The quantizer's bias correction for this iteration's rounding (real units), added to the shadow
   * bias before rounding it. Kept apart from the shadow bias so that the next iteration's correction
   * replaces it instead of adding to it.
   */
  biasShift: Float64Array;
}

export interface Formats {
  /** Output format of every layer (yolo layers: that of their input). */
  tensors: TensorFormat[];
  weights: (WeightFormat | undefined)[];
}

export interface IterationFormats {
  formats: Formats;
  /** The shadow parameters to continue from (equalized when asked). */
  params: ParamSet;
  /** The float model the quantizer saw (equalized when asked), before any weight moved onto its grid cell. */
  float: ParamSet;
  /** What `zeroq quantize` gives for the incoming shadow weights. */
  qnet: QNet;
}

/**
 * Runs the quantizer on the shadow weights and takes its formats. The difference between the real
 * value of the quantizer's integer bias and the shadow bias (its bias correction) is kept as the
 * channel's biasShift, so that re-rounding in the frozen formats gives the quantizer's integers back.
 */
export async function quantizerFormats(
  net: Network, params: ParamSet, calib: Frame[], cfg: QuantConfig, opts: { equalize: boolean; align?: boolean; threads: number },
): Promise<IterationFormats> {
  const res = await quantizeModel({ net, params }, calib, quantizeOptionsOf(cfg, opts.equalize, opts.threads, opts.align));
  const out: ParamSet = res.model.params.map((p) => (p ? { weight: Float32Array.from(p.weight), bias: Float32Array.from(p.bias) } : undefined));
  const weights = net.layers.map((l): WeightFormat | undefined => {
    if (l.kind !== 'conv') return undefined;
    const c = res.qnet.convs[l.index];
    const p = out[l.index];
    if (!c || !p) throw new ZeroqError('retrain-params', 'conv layer without parameters', l.source ?? `layer ${l.index}`);
    // mu as the quantizer took it with the fw it chose; fw, M, fm as the quantizer chose them.
    const mu = centersFor(p.weight, l.filters, c.fw, {
      wbits: c.wbits, perChannel: cfg.perChannel, zeroCenter: cfg.zeroCentered, inputScale: inputScale(l), center: centerAt(cfg.center, c.wbits),
    });
    const j = l.inputs[0];
    const faIn = j === -1 ? INPUT_FRAC : res.qnet.formats[j].frac;
    if (cfg.rounding === 'output') {
      // A weight the quantizer rounded to its nearest grid point stays where it is. A weight it rounded
      // elsewhere moves to the centre of the cell of its grid point, so that re-rounding gives the
      // quantizer's integers back. (Moved to the cell's edge instead, keeping its place within its old
      // cell, the moved weights sat where the next iteration's small shift of the channel's mean sent
      // them across a border: the re-quantized network lost what the last iteration had trained.)
      const per = p.weight.length / l.filters;
      const scale = inputScale(l);
      for (let o = 0; o < l.filters; o++) {
        const step = 2 ** c.fw[o];
        for (let i = o * per; i < (o + 1) * per; i++) {
          if (roundHalfAway((p.weight[i] * scale - mu[o]) * step) !== c.q[i]) p.weight[i] = (mu[o] + c.q[i] / step) / scale;
        }
      }
    }
    const biasShift = new Float64Array(l.filters);
    for (let o = 0; o < l.filters; o++) biasShift[o] = c.bias[o] * 2 ** -(c.fw[o] + faIn) - p.bias[o];
    return { wbits: c.wbits, fw: c.fw.slice(), m: c.m.slice(), fm: c.fm.slice(), mu, biasShift };
  });
  return { formats: { tensors: res.qnet.formats.map((t) => ({ ...t })), weights }, params: out, float: res.model.params, qnet: res.qnet };
}

/**
 * Where two QNets of one network differ in their integers (formats, weights, biases): a list of
 * "layer i: what" lines, empty when they are the same.
 */
export function qnetDifferences(a: QNet, b: QNet): string[] {
  const out: string[] = [];
  const same = (x: ArrayLike<number>, y: ArrayLike<number>) => x.length === y.length && Array.prototype.every.call(x, (v: number, i: number) => v === y[i]);
  a.net.layers.forEach((l, i) => {
    const fa = a.formats[i];
    const fb = b.formats[i];
    if (fa.bits !== fb.bits || fa.frac !== fb.frac) out.push(`layer ${i}: format ${fa.bits}/${fa.frac} vs ${fb.bits}/${fb.frac}`);
    const ca = a.convs[i];
    const cb = b.convs[i];
    if (!ca || !cb) {
      if (ca !== cb) out.push(`layer ${i}: conv parameters on one side only`);
      return;
    }
    for (const k of ['q', 'fw', 'm', 'fm', 'bias'] as const) if (!same(ca[k], cb[k])) out.push(`layer ${i}: ${k}`);
    if (ca.wbits !== cb.wbits || ca.perChannel !== cb.perChannel || ca.zeroCentered !== cb.zeroCentered) out.push(`layer ${i}: kind of format`);
  });
  return out;
}

/** Factor folded into the weights of layers reading the frame: the engine reads P/256, the model P/255. */
export function inputScale(layer: ConvLayer): number {
  return layer.inputs[0] === -1 ? 256 / 255 : 1;
}

/**
 * The integer parameters of one conv layer for the current shadow weights in frozen formats:
 * Q = round((w - mu) * 2^fw) clipped to ±(2^(Nw-1) - 1), B = round((bias + biasShift) * 2^(fw + fa_in)) and the real weights
 * the integers stand for. `wbits` is the width when the format does not carry its own.
 */
export function quantizeConv(
  layer: ConvLayer, weight: Float32Array, bias: Float32Array, wf: WeightFormat, faIn: number, faOut: number, wbits: number,
): IntConv {
  const O = layer.filters;
  const per = weight.length / O;
  const scale = inputScale(layer);
  const nw = wf.wbits ?? wbits;
  const qmax = 2 ** (nw - 1) - 1;
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
      // Symmetric, as the quantizer clips (|Q| <= 2^(Nw-1) - 1, the accumulator proof's bound).
      const v = Math.max(-qmax, Math.min(qmax, roundHalfAway((weight[i] * scale - mu) * step)));
      q[i] = v;
      weff[i] = v / step + muQ;
    }
    B[o] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, roundHalfAway((bias[o] + wf.biasShift[o]) * 2 ** (wf.fw[o] + faIn))));
    mShift[o] = wf.fm[o] - wf.fw[o];
    outShift[o] = wf.fw[o] + faIn - faOut;
  }
  return { q, m: wf.m.slice(), mShift, bias: B, outShift, weff };
}

/** The integer network for the current shadow parameters in frozen formats (`wbits`: where a format has no width of its own). */
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
      wbits: wf.wbits ?? cfg.wbits,
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

/** The integer parameters of conv layer `l` of a QNet, reading a tensor of `faIn` fraction bits and writing `faOut`. */
export function intConvOf(l: ConvLayer, c: QConv, faIn: number, faOut: number): IntConv {
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
    outShift: Int32Array.from(c.fw, (fw) => fw + faIn - faOut),
    weff,
  };
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
    return intConvOf(l, c, j === -1 ? INPUT_FRAC : frac[j], frac[l.index]);
  });
  return { frac, bits, convs };
}
