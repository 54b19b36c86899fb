/**
 * One conv layer → its integer parameters (QConv), given the format of the tensor it reads.
 * Weights as in weights.ts, B = round(bias·2^(fw + faIn)); then the accumulator proof (overflow.ts):
 * a channel whose bias or mean correction would overflow Y gets a smaller fw (only degenerate
 * channels — weights many orders of magnitude below the bias — ever need it; they are counted).
 */
import type { ConvLayer, ConvParams, Network } from '../model/ir.js';
import { convWeightCount } from '../model/ir.js';
import type { QConv } from '../qnet/types.js';
import { roundHalfAway } from '../qnet/arith.js';
import { channelBound, checkStructural, INT32_MAX, kernelTerms, proveConv, type ChannelBound, type ConvInput } from '../qnet/bounds.js';
import { dequantizeWeights, quantizeWeights, sqnrDb, FW_MAX, type WeightCenter, type WeightClip } from './weights.js';
import { ZeroqError } from '../util/errors.js';
import type { InputHessian } from './gptq.js';

/** Lowest fw tried before refusing a layer (far below anything a trained network needs). */
const FW_MIN = -32;

export interface ConvQuantOptions {
  wbits: number;
  perChannel: boolean;
  zeroCenter: boolean;
  /** How fw is chosen (weights.ts): from the range (default) or by the least squared error, clipping. */
  clip?: WeightClip;
  /** Where the integers are centered (weights.ts): the mean (default) or 'fit'. */
  center?: WeightCenter;
  /** Round for the least output error on these input statistics (gptq.ts) instead of to the nearest. */
  hessian?: InputHessian;
  /**
   * Mean of each input channel (real values) over the calibration images: when given, each bias
   * absorbs the mean error the weight rounding causes, Σ (w − ŵ)·E[x] (bias correction).
   */
  inputMean?: Float64Array;
}

/** What the report shows about one conv layer. */
export interface ConvStats {
  layer: number;
  wbits: number;
  count: number;
  /** Mean of the layer's (input-scaled) weights, and the spread of the per-channel means. */
  mu: number;
  muMin: number;
  muMax: number;
  wMin: number;
  wMax: number;
  fwMin: number;
  fwMax: number;
  /** SQNR (dB) of this quantization, and of the same one with centering switched the other way. */
  sqnr: number;
  sqnrCentered: number;
  sqnrPlain: number;
  /** Largest bias correction applied, relative to the largest |bias| of the layer (0 without it). */
  biasCorrection: number;
  /** Channels whose fw was lowered to keep Y within 32 bits. */
  loweredChannels: number;
  /** Worst |Y| bound and the bits of headroom below 2^31. */
  bound: ChannelBound;
  headroomBits: number;
}

function where(layer: ConvLayer): string {
  return layer.source ? `layer ${layer.index} (${layer.source})` : `layer ${layer.index} (conv)`;
}

export function quantizeBias(bias: ArrayLike<number>, fw: Int32Array, faIn: number): Int32Array {
  const out = new Int32Array(bias.length);
  for (let o = 0; o < bias.length; o++) {
    const v = roundHalfAway(bias[o] * 2 ** (fw[o] + faIn));
    // proveConv rejects what does not fit; clamp only so that the Int32Array does not wrap silently.
    out[o] = Math.max(-INT32_MAX - 1, Math.min(INT32_MAX, v));
  }
  return out;
}

/** The factor folded into a layer's weights: 256/255 for a layer reading the uint8 network input. */
export function inputScaleFor(layer: ConvLayer): number {
  return layer.inputs[0] === -1 ? 256 / 255 : 1;
}

/** bias + Σ (w − ŵ)·E[x] per output channel: the mean output error of the rounded weights, removed. */
function correctedBias(
  params: ConvParams,
  wq: { q: Int8Array; fw: Int32Array; m: Int32Array; fm: Int32Array },
  layer: ConvLayer,
  scale: number,
  mean: Float64Array,
  w: string,
): Float64Array {
  const O = layer.filters;
  const per = params.weight.length / O;
  const kk = layer.size * layer.size;
  const cg = per / kk;
  if (mean.length !== cg * layer.groups) throw new ZeroqError('quant-calib', `${mean.length} input means for ${cg * layer.groups} input channels`, w);
  const approx = dequantizeWeights(wq, O);
  const out = Float64Array.from(params.bias);
  for (let o = 0; o < O; o++) {
    const g = Math.floor(o / (O / layer.groups));
    let d = 0;
    for (let c = 0; c < cg; c++) {
      const xm = mean[g * cg + c];
      for (let k = 0; k < kk; k++) {
        const i = o * per + c * kk + k;
        d += (params.weight[i] * scale - approx[i]) * xm;
      }
    }
    out[o] += d;
  }
  return out;
}

export function quantizeConv(
  net: Network,
  layer: ConvLayer,
  params: ConvParams,
  opts: ConvQuantOptions,
  input: ConvInput,
): { qconv: QConv; stats: ConvStats } {
  const w = where(layer);
  const count = convWeightCount(net, layer);
  if (params.weight.length !== count || params.bias.length !== layer.filters) {
    throw new ZeroqError('quant-params', `expected ${count} weights and ${layer.filters} biases, got ${params.weight.length} and ${params.bias.length}`, w);
  }
  if (!['linear', 'leaky', 'relu'].includes(layer.activation)) {
    throw new ZeroqError('quant-unsupported', `activation '${layer.activation}' has no integer form yet`, w);
  }
  for (let o = 0; o < layer.filters; o++) {
    if (!Number.isFinite(params.bias[o])) throw new ZeroqError('quant-weights', `bias ${o} is ${params.bias[o]}`, w);
  }
  checkStructural(net, layer, opts.wbits, input);
  const scale = inputScaleFor(layer);
  const terms = kernelTerms(net, layer);
  const cap = new Int32Array(layer.filters).fill(FW_MAX);
  const lowered = new Set<number>();

  for (;;) {
    const wq = quantizeWeights(params.weight, layer.filters, { ...opts, inputScale: scale, fwCap: cap }, w);
    const realBias = opts.inputMean ? correctedBias(params, wq, layer, scale, opts.inputMean, w) : params.bias;
    const bias = quantizeBias(realBias, wq.fw, input.frac);
    let again = false;
    for (let o = 0; o < layer.filters; o++) {
      const b = channelBound(terms, opts.wbits, input, wq.m[o], wq.fm[o], wq.fw[o], roundHalfAway(realBias[o] * 2 ** (wq.fw[o] + input.frac)));
      if (b.total > INT32_MAX) {
        if (wq.fw[o] <= FW_MIN) {
          throw new ZeroqError('quant-overflow', `channel ${o}: bias ${realBias[o]} cannot be represented with Y in 32 bits`, w);
        }
        // Per-layer formats share one fw: lower it for every channel.
        const targets = opts.perChannel ? [o] : Array.from({ length: layer.filters }, (_, k) => k);
        for (const k of targets) {
          cap[k] = wq.fw[k] - 1;
          lowered.add(k);
        }
        again = true;
      }
    }
    if (again) continue;

    const qconv: QConv = {
      wbits: opts.wbits,
      perChannel: opts.perChannel,
      zeroCentered: opts.zeroCenter,
      q: wq.q,
      fw: wq.fw,
      m: wq.m,
      fm: wq.fm,
      bias,
    };
    const bound = proveConv(net, layer, qconv, input);

    const approx = dequantizeWeights(wq, layer.filters);
    const sqnr = sqnrDb(params.weight, approx, scale);
    const other = quantizeWeights(params.weight, layer.filters, { ...opts, zeroCenter: !opts.zeroCenter, inputScale: scale, fwCap: cap }, w);
    const sqnrOther = sqnrDb(params.weight, dequantizeWeights(other, layer.filters), scale);
    let sum = 0;
    let wMin = Infinity;
    let wMax = -Infinity;
    for (let i = 0; i < count; i++) {
      const v = params.weight[i] * scale;
      sum += v;
      if (v < wMin) wMin = v;
      if (v > wMax) wMax = v;
    }
    let biasMax = 0;
    let shiftMax = 0;
    for (let o = 0; o < layer.filters; o++) {
      biasMax = Math.max(biasMax, Math.abs(params.bias[o]));
      shiftMax = Math.max(shiftMax, Math.abs(realBias[o] - params.bias[o]));
    }
    let muMin = Infinity;
    let muMax = -Infinity;
    let fwMin = Infinity;
    let fwMax = -Infinity;
    for (let o = 0; o < layer.filters; o++) {
      muMin = Math.min(muMin, wq.mu[o]);
      muMax = Math.max(muMax, wq.mu[o]);
      fwMin = Math.min(fwMin, wq.fw[o]);
      fwMax = Math.max(fwMax, wq.fw[o]);
    }
    const stats: ConvStats = {
      layer: layer.index,
      wbits: opts.wbits,
      count,
      mu: sum / count,
      muMin,
      muMax,
      wMin,
      wMax,
      fwMin,
      fwMax,
      sqnr,
      sqnrCentered: opts.zeroCenter ? sqnr : sqnrOther,
      sqnrPlain: opts.zeroCenter ? sqnrOther : sqnr,
      biasCorrection: biasMax > 0 ? shiftMax / biasMax : shiftMax,
      loweredChannels: lowered.size,
      bound,
      headroomBits: Math.log2((INT32_MAX + 1) / Math.max(1, bound.total)),
    };
    return { qconv, stats };
  }
}
