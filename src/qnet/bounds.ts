/**
 * The accumulator proof: for every output channel o of a conv layer,
 *   |Y| = |ACC + rshr(M·S, fm - fw) + B| <= K·(2^(Nw-1) - 1)·xmax + |rshr(M·Smax, fm - fw)| + |B| <= 2^31 - 1,
 * where K = (input channels per group)·size², xmax the largest input magnitude (255 for the uint8
 * network input, 2^(Na-1) for a signed Na-bit tensor) and Smax = K·xmax the largest window sum.
 * The first term depends only on the widths and the kernel, whatever the weights: when it alone
 * exceeds 32 bits the layer cannot be built at those widths and is refused.
 */
import type { ConvLayer, Network } from '../model/ir.js';
import { inputShape } from '../model/ir.js';
import { INPUT_FRAC, type QConv, type TensorFormat } from './types.js';
import { signedMax } from './arith.js';
import { ZeroqError } from '../util/errors.js';

export const INT32_MAX = 2 ** 31 - 1;

/** What a conv reads: the uint8 network input or a signed tensor of `bits` bits. */
export interface ConvInput {
  unsigned: boolean;
  bits: number;
  frac: number;
}

export function networkInput(): ConvInput {
  return { unsigned: true, bits: 8, frac: INPUT_FRAC };
}

export function tensorInput(f: TensorFormat): ConvInput {
  return { unsigned: false, bits: f.bits, frac: f.frac };
}

/** Largest magnitude of one input value. */
export function inputMax(input: ConvInput): number {
  return input.unsigned ? 2 ** input.bits - 1 : 2 ** (input.bits - 1);
}

/** Largest |x| a conv reads from input index i of a validated QNet: 255 for the frame (-1), 128 for 8-bit tensors. */
export function convInputMax(i: number): number {
  return i === -1 ? 255 : 128;
}

/** Products summed per output value: input channels per group × kernel area. */
export function kernelTerms(net: Network, layer: ConvLayer): number {
  return (inputShape(net, layer).c / layer.groups) * layer.size * layer.size;
}

/** Bound of |rshr(v, r)| for |v| <= a, as docs/formats/fixed-point.md "Validation" states it. */
export function roundedShiftBound(a: number, r: number): number {
  return r >= 0 ? Math.ceil(a / 2 ** Math.min(r, 64)) + 1 : a * 2 ** Math.min(-r, 64);
}

/**
 * The bound on |Y| of one output channel: `weightAbs` = Σ|Q[o]| (or its structural maximum
 * K·(2^(Nw-1)-1)), `xmax` the largest input magnitude, then the mean correction and the bias.
 */
export function yBound(weightAbs: number, xmax: number, terms: number, m: number, fm: number, fw: number, bias: number): number {
  const corr = m === 0 ? 0 : roundedShiftBound(Math.abs(m) * terms * xmax, fm - fw);
  return weightAbs * xmax + corr + Math.abs(bias);
}

export interface ChannelBound {
  acc: number;
  corr: number;
  bias: number;
  total: number;
}

/** The structural part K·(2^(Nw-1)-1)·xmax, the same for every channel and every weight set. */
export function accBound(terms: number, wbits: number, input: ConvInput): number {
  return terms * signedMax(wbits) * inputMax(input);
}

export function channelBound(terms: number, wbits: number, input: ConvInput, m: number, fm: number, fw: number, b: number): ChannelBound {
  const xmax = inputMax(input);
  const acc = accBound(terms, wbits, input);
  const total = yBound(terms * signedMax(wbits), xmax, terms, m, fm, fw, b);
  const bias = Math.abs(b);
  return { acc, corr: total - acc - bias, bias, total };
}

function layerName(layer: ConvLayer): string {
  return layer.source ? `layer ${layer.index} (${layer.source})` : `layer ${layer.index} (conv)`;
}

/** Refuses widths and kernels whose products alone may overflow 32 bits. */
export function checkStructural(net: Network, layer: ConvLayer, wbits: number, input: ConvInput): void {
  const terms = kernelTerms(net, layer);
  const acc = accBound(terms, wbits, input);
  if (acc > INT32_MAX) {
    throw new ZeroqError(
      'quant-overflow',
      `the 32-bit accumulator can overflow: ${terms} products of ${wbits}-bit weights and ${input.unsigned ? 'unsigned ' : ''}${input.bits}-bit inputs reach ${acc.toExponential(3)} > 2^31-1; use narrower weights or inputs`,
      layerName(layer),
    );
  }
}

/**
 * Proves a quantized conv cannot overflow; returns the worst channel bound, or throws a ZeroqError
 * naming the layer and channel.
 */
export function proveConv(net: Network, layer: ConvLayer, qc: QConv, input: ConvInput): ChannelBound {
  checkStructural(net, layer, qc.wbits, input);
  const terms = kernelTerms(net, layer);
  let worst: ChannelBound = { acc: 0, corr: 0, bias: 0, total: -1 };
  for (let o = 0; o < layer.filters; o++) {
    const b = channelBound(terms, qc.wbits, input, qc.m[o], qc.fm[o], qc.fw[o], qc.bias[o]);
    if (b.total > INT32_MAX) {
      throw new ZeroqError(
        'quant-overflow',
        `channel ${o}: |Y| can reach ${b.total.toExponential(3)} > 2^31-1 (products ${b.acc}, mean correction ${b.corr}, bias ${b.bias})`,
        layerName(layer),
      );
    }
    if (b.total > worst.total) worst = b;
  }
  return worst;
}
