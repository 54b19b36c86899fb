/**
 * Random but valid QNets: the integer engines' test input, and what `zeroq bench` runs for a cfg
 * without weights (speed depends on shapes, not values). Formats and parameters are drawn so that validation passes while exercising
 * saturation, negative and left shifts, zero-centering, 16-bit heads and look-up tables.
 */
import type { ConvLayer, Layer, Network } from '../model/ir.js';
import type { QConv, QNet, TensorFormat } from './types.js';
import { INT32_MAX, yBound } from './bounds.js';

export type Rng = () => number;

/** mulberry32: a small seeded generator, uniform in [0, 1). */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [lo, hi]. */
export function randInt(r: Rng, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export interface RandomQNetOptions {
  /** Probability that a layer feeding a yolo head gets a 16-bit format. */
  p16?: number;
  /** Force per-channel (true) / per-layer (false) formats; random when undefined. */
  perChannel?: boolean;
  /** Weight bits range. */
  wbits?: [number, number];
}

/**
 * Random QNet for a network: activation fractions in [-2, 9], weight fractions in [0, 9], M in
 * ±2^14 with fm = fw + [-6, 12], biases up to 2^18 — then each conv channel is shrunk until its
 * accumulator bound fits 32 bits, so validation passes.
 */
export function randomQNet(net: Network, r: Rng, opts: RandomQNetOptions = {}): QNet {
  const readers: Layer[][] = net.layers.map(() => []);
  for (const l of net.layers) for (const i of l.inputs) if (i >= 0) readers[i].push(l);
  const formats: TensorFormat[] = [];
  const convs: (QConv | undefined)[] = [];
  const inFmt = (i: number): TensorFormat => (i === -1 ? { bits: 8, frac: 8 } : formats[i]);
  for (const l of net.layers) {
    const onlyHeads = readers[l.index].length > 0 && readers[l.index].every((x) => x.kind === 'yolo');
    let fmt: TensorFormat;
    if (l.kind === 'maxpool' || l.kind === 'upsample' || l.kind === 'dropout' || l.kind === 'yolo') {
      fmt = { ...inFmt(l.inputs[0]) };
    } else {
      const bits = onlyHeads && r() < (opts.p16 ?? 0.5) ? 16 : 8;
      fmt = { bits, frac: randInt(r, -2, bits === 16 ? 12 : 9) };
    }
    formats.push(fmt);
    convs.push(l.kind === 'conv' ? randomConv(net, l, fmt.bits, l.inputs[0] === -1, r, opts) : undefined);
  }
  return { net, formats, convs };
}

function randomConv(net: Network, l: ConvLayer, outBits: number, fromInput: boolean, r: Rng, opts: RandomQNetOptions): QConv {
  const inC = l.inputs[0] === -1 ? net.input.c : net.layers[l.inputs[0]].out.c;
  const O = l.filters;
  const K = (inC / l.groups) * l.size * l.size;
  const [wlo, whi] = opts.wbits ?? [3, 8];
  const wbits = randInt(r, wlo, whi);
  const perChannel = opts.perChannel ?? r() < 0.5;
  const zeroCentered = r() < 0.8;
  const q = new Int8Array(O * K);
  const fw = new Int32Array(O);
  const m = new Int32Array(O);
  const fm = new Int32Array(O);
  const bias = new Int32Array(O);
  const wmax = 2 ** (wbits - 1);
  const xmax = fromInput ? 255 : 128;
  const f0 = randInt(r, 0, 9);
  const m0 = randInt(r, -(2 ** 14), 2 ** 14);
  const d0 = randInt(r, -6, 12);
  for (let o = 0; o < O; o++) {
    fw[o] = perChannel ? randInt(r, 0, 9) : f0;
    m[o] = zeroCentered ? (perChannel ? randInt(r, -(2 ** 14), 2 ** 14) : m0) : 0;
    fm[o] = fw[o] + (perChannel ? randInt(r, -6, 12) : d0);
    let sumAbs = 0;
    for (let j = 0; j < K; j++) {
      const v = randInt(r, -wmax, wmax - 1);
      q[o * K + j] = v;
      sumAbs += Math.abs(v);
    }
    bias[o] = randInt(r, -(2 ** 18), 2 ** 18);
    // Shrink M (then the bias) until the 32-bit bound of the spec holds.
    const bound = (): number => yBound(sumAbs, xmax, K, m[o], fm[o], fw[o], bias[o]);
    while (bound() > INT32_MAX && m[o] !== 0) m[o] = Math.trunc(m[o] / 2);
    while (bound() > INT32_MAX) bias[o] = Math.trunc(bias[o] / 2);
  }
  const qc: QConv = { wbits, perChannel, zeroCentered, q, fw, m, fm, bias };
  if (l.activation === 'mish' || l.activation === 'swish' || l.activation === 'logistic') {
    // Any table in the output range exercises the arithmetic; the quantizer fills real ones.
    const n = randInt(r, 16, 512);
    const bits = outBits;
    qc.lut = Int32Array.from({ length: n }, () => randInt(r, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1));
    qc.lutShift = randInt(r, -2, 10);
    qc.lutOffset = randInt(r, 0, n);
  }
  return qc;
}

/** A random frame of the network's input size. */
export function randomFrame(net: Network, r: Rng): { rgb: Uint8Array; width: number; height: number } {
  const { w, h } = net.input;
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.floor(r() * 256);
  return { rgb, width: w, height: h };
}
