import type { ConvLayer, Layer, Network, Shape } from '../model/ir.js';
import { INPUT_FRAC, type QConv, type QNet, type TensorFormat } from './types.js';
import { ZeroqError } from '../util/errors.js';
import { convInputMax, INT32_MAX, yBound } from './bounds.js';
import { networkProblem, problemWhere } from '../model/network-check.js';

/**
 * Ranges of the integer fields (docs/formats/fixed-point.md "Validation"): every fraction-bit count
 * (formats, fw, fm, lutShift) within ±FRAC_LIMIT, tables of at most LUT_MAX entries, |lutOffset| at
 * most LUT_OFFSET_MAX. The native planner (src/kernels/check.cc) refuses the same.
 */
export const FRAC_LIMIT = 64;
export const LUT_MAX = 65536;
export const LUT_OFFSET_MAX = 2 ** 20;

const inRange = (v: number, lo: number, hi: number): boolean => Number.isInteger(v) && v >= lo && v <= hi;

/** "layer 12 (conv, yolo-fastest-1.1.cfg:88)": how errors name a layer. */
export function layerWhere(layer: Layer): string {
  return `layer ${layer.index} (${layer.kind}${layer.source ? `, ${layer.source}` : ''})`;
}

/** Format of the tensor a layer reads from input index i (-1: the uint8 frame). */
export function inputFormat(qnet: QNet, i: number): TensorFormat {
  return i === -1 ? { bits: 8, frac: INPUT_FRAC } : qnet.formats[i];
}

export function inputShapeOf(net: Network, i: number): Shape {
  return i === -1 ? net.input : net.layers[i].out;
}

/**
 * Checks a QNet against docs/formats/fixed-point.md "Validation"; throws a ZeroqError naming the
 * first offending layer. Every integer implementation relies on these guarantees.
 */
export function validateQNet(qnet: QNet): void {
  const { net } = qnet;
  const problem = networkProblem(net);
  if (problem) throw new ZeroqError(problem.kind === 'limit' ? 'QNET_LIMIT' : 'QNET_NETWORK', problem.message, problemWhere(problem, net.name));
  if (net.input.c !== 3) throw new ZeroqError('QNET_INPUT', `the network input has ${net.input.c} channels; integer engines read RGB frames (3)`, net.name);
  const n = net.layers.length;
  if (qnet.formats.length !== n || qnet.convs.length !== n) {
    throw new ZeroqError('QNET_SHAPE', `formats/convs hold ${qnet.formats.length}/${qnet.convs.length} entries for ${n} layers`, net.name);
  }
  const readers: Layer[][] = net.layers.map(() => []);
  for (const l of net.layers) for (const i of l.inputs) if (i >= 0) readers[i].push(l);

  for (const layer of net.layers) {
    const where = layerWhere(layer);
    const fmt = qnet.formats[layer.index];
    for (const i of layer.inputs) {
      if (i < -1 || i >= layer.index) throw new ZeroqError('QNET_INPUT', `reads layer ${i}`, where);
      if (i === -1 && layer.kind !== 'conv') throw new ZeroqError('QNET_INPUT', 'only a conv layer may read the network input', where);
      // A head is where a tensor leaves the engine; its own format is not one any layer can read.
      if (i >= 0 && net.layers[i].kind === 'yolo') throw new ZeroqError('QNET_INPUT', `reads the yolo layer ${i}`, where);
    }
    if (layer.kind === 'yolo') continue;
    if (fmt.bits !== 8 && fmt.bits !== 16) throw new ZeroqError('QNET_FORMAT', `format bits ${String(fmt.bits)} (8 or 16)`, where);
    if (!inRange(fmt.frac, -FRAC_LIMIT, FRAC_LIMIT)) throw new ZeroqError('QNET_FORMAT', `format frac ${fmt.frac} is not an integer within ±${FRAC_LIMIT}`, where);
    if (fmt.bits === 16) {
      const r = readers[layer.index];
      const bad = r.find((l) => l.kind !== 'yolo');
      if (r.length === 0 || bad) {
        throw new ZeroqError('QNET_16BIT', `16-bit output read by ${bad ? layerWhere(bad) : 'no yolo layer'}; only tensors feeding yolo heads may be 16-bit`, where);
      }
    }
    switch (layer.kind) {
      case 'conv':
        validateConv(qnet, layer, qnet.convs[layer.index], where);
        break;
      case 'maxpool':
      case 'upsample':
      case 'dropout': {
        const f = inputFormat(qnet, layer.inputs[0]);
        if (f.bits !== fmt.bits || f.frac !== fmt.frac) {
          throw new ZeroqError('QNET_FORMAT', `output format {${fmt.bits}, ${fmt.frac}} must equal the input's {${f.bits}, ${f.frac}}`, where);
        }
        break;
      }
      case 'route': {
        if (layer.groups < 1 || layer.groupId < 0 || layer.groupId >= layer.groups) throw new ZeroqError('QNET_ROUTE', `groups ${layer.groups} group_id ${layer.groupId}`, where);
        let c = 0;
        for (const i of layer.inputs) {
          const s = inputShapeOf(net, i);
          if (s.c % layer.groups !== 0) throw new ZeroqError('QNET_ROUTE', `input ${i} has ${s.c} channels, not divisible by groups ${layer.groups}`, where);
          if (s.h !== layer.out.h || s.w !== layer.out.w) throw new ZeroqError('QNET_ROUTE', `input ${i} is ${s.h}x${s.w}, output ${layer.out.h}x${layer.out.w}`, where);
          c += s.c / layer.groups;
        }
        if (c !== layer.out.c) throw new ZeroqError('QNET_ROUTE', `inputs give ${c} channels, output has ${layer.out.c}`, where);
        break;
      }
      case 'shortcut': {
        for (const i of layer.inputs) {
          const s = inputShapeOf(net, i);
          if (s.c !== layer.out.c || s.h !== layer.out.h || s.w !== layer.out.w) {
            throw new ZeroqError('QNET_SHORTCUT', `input ${i} is ${s.c}x${s.h}x${s.w}, output ${layer.out.c}x${layer.out.h}x${layer.out.w}`, where);
          }
        }
        if (!['linear', 'leaky', 'relu'].includes(layer.activation)) {
          throw new ZeroqError('QNET_ACTIVATION', `shortcut activation ${layer.activation} is not supported (linear, leaky, relu)`, where);
        }
        break;
      }
    }
  }
}

function validateConv(qnet: QNet, layer: ConvLayer, q: QConv | undefined, where: string): void {
  if (!q) throw new ZeroqError('QNET_CONV', 'conv layer without integer parameters', where);
  const src = layer.inputs[0];
  const inShape = inputShapeOf(qnet.net, src);
  const inFmt = inputFormat(qnet, src);
  if (inFmt.bits !== 8) throw new ZeroqError('QNET_16BIT', 'conv input must be 8-bit', where);
  const O = layer.filters;
  const G = layer.groups;
  if (inShape.c % G !== 0 || O % G !== 0) throw new ZeroqError('QNET_CONV', `${inShape.c} input / ${O} output channels not divisible by groups ${G}`, where);
  const Cg = inShape.c / G;
  const kk = layer.size * layer.size;
  const K = Cg * kk;
  if (q.q.length !== O * K) throw new ZeroqError('QNET_CONV', `${q.q.length} weights, expected ${O * K}`, where);
  for (const [name, a] of [['fw', q.fw], ['m', q.m], ['fm', q.fm], ['bias', q.bias]] as const) {
    if (a.length !== O) throw new ZeroqError('QNET_CONV', `${name} has ${a.length} entries, expected ${O}`, where);
  }
  if (!Number.isInteger(q.wbits) || q.wbits < 2 || q.wbits > 8) throw new ZeroqError('QNET_CONV', `wbits ${q.wbits} (2..8)`, where);
  for (let o = 0; o < O; o++) {
    if (!inRange(q.fw[o], -FRAC_LIMIT, FRAC_LIMIT) || !inRange(q.fm[o], -FRAC_LIMIT, FRAC_LIMIT)) {
      throw new ZeroqError('QNET_CONV', `fw[${o}] = ${q.fw[o]}, fm[${o}] = ${q.fm[o]}: fraction bits must be integers within ±${FRAC_LIMIT}`, where);
    }
    if (!inRange(q.m[o], -INT32_MAX - 1, INT32_MAX) || !inRange(q.bias[o], -INT32_MAX - 1, INT32_MAX)) {
      throw new ZeroqError('QNET_CONV', `M[${o}] = ${q.m[o]}, B[${o}] = ${q.bias[o]}: not 32-bit integers`, where);
    }
  }
  const wmax = 2 ** (q.wbits - 1);
  const outFmt = qnet.formats[layer.index];
  const xmax = convInputMax(src);
  for (let o = 0; o < O; o++) {
    let sumAbs = 0;
    for (let j = o * K; j < (o + 1) * K; j++) {
      const v = q.q[j];
      if (v < -wmax || v >= wmax) throw new ZeroqError('QNET_WEIGHT', `weight ${v} of output channel ${o} outside ${q.wbits}-bit range`, where);
      sumAbs += Math.abs(v);
    }
    const M = q.m[o];
    if (Math.abs(M) >= 2 ** 15) throw new ZeroqError('QNET_CONV', `M[${o}] = ${M} does not fit 16 bits`, where);
    const bound = yBound(sumAbs, xmax, K, M, q.fm[o], q.fw[o], q.bias[o]);
    if (!(bound <= INT32_MAX)) {
      throw new ZeroqError('QNET_OVERFLOW', `output channel ${o}: accumulator bound ${bound} does not fit 32 bits`, where);
    }
  }
  const act = layer.activation;
  if (act === 'mish' || act === 'swish' || act === 'logistic') {
    if (!q.lut || q.lut.length === 0 || q.lutShift === undefined || q.lutOffset === undefined) {
      throw new ZeroqError('QNET_ACTIVATION', `${act} needs a look-up table (lut, lutShift, lutOffset)`, where);
    }
    if (q.lut.length > LUT_MAX || !inRange(q.lutShift, -FRAC_LIMIT, FRAC_LIMIT) || !inRange(q.lutOffset, -LUT_OFFSET_MAX, LUT_OFFSET_MAX)) {
      throw new ZeroqError(
        'QNET_LUT',
        `table of ${q.lut.length} entries (at most ${LUT_MAX}), lutShift ${q.lutShift} (within ±${FRAC_LIMIT}), lutOffset ${q.lutOffset} (within ±${LUT_OFFSET_MAX})`,
        where,
      );
    }
    const lo = -(2 ** (outFmt.bits - 1));
    const hi = 2 ** (outFmt.bits - 1) - 1;
    for (const v of q.lut) if (v < lo || v > hi) throw new ZeroqError('QNET_LUT', `table entry ${v} outside the ${outFmt.bits}-bit output`, where);
  }
}
