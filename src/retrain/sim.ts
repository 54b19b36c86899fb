/**
 * Runs a network on a batch of frames in two ways: the float model (teacher, calibration) and the
 * quantized model exactly as the integer engine computes it (straight-through training), and
 * back-propagates head gradients through the quantized run to the float shadow parameters.
 *
 * Straight-through estimator: rounding passes gradients unchanged; saturation stops them; the
 * convolution's backward pass uses the weights the forward pass used (Q*2^-fw + M*2^-fm) and the
 * real values of its integer inputs.
 */
import type { ConvLayer, Layer, MaxPoolLayer, Network, RouteLayer, Shape } from '../model/ir.js';
import { inputShape } from '../model/ir.js';
import { INPUT_FRAC } from '../qnet/types.js';
import { unsupportedLayers, unsupportedMessage } from '../model/layer-kinds.js';
import { ZeroqError } from '../util/errors.js';
import { retrainNative } from './native.js';

/** Float parameters of every conv layer (BN folded, OIHW), indexed like net.layers. */
export type ParamSet = ({ weight: Float32Array; bias: Float32Array } | undefined)[];

/** Integer parameters of one conv layer for one forward pass (see docs/formats/fixed-point.md). */
export interface IntConv {
  q: Int16Array;
  m: Int32Array;
  mShift: Int32Array;
  bias: Int32Array;
  outShift: Int32Array;
  /** The real weights the integer layer applies: Q*2^-fw + M*2^-fm (input domain P/256 for layer 0). */
  weff: Float32Array;
}

export interface IntNet {
  /** Output format of every layer. */
  frac: Int32Array;
  bits: Int32Array;
  convs: (IntConv | undefined)[];
}

export interface Batch {
  n: number;
  /** n frames, HWC RGB uint8 at the network's input size, one after the other. */
  rgb: Uint8Array;
}

const size = (s: Shape): number => s.c * s.h * s.w;

function where(layer: Layer): string {
  return layer.source ?? `layer ${layer.index}`;
}

function geom(net: Network, layer: ConvLayer, n: number): Int32Array {
  const i = inputShape(net, layer);
  return Int32Array.of(n, i.c, i.h, i.w, layer.filters, layer.size, layer.stride, layer.pad, layer.groups);
}

/** Layer kinds and activations the trainer supports; throws a clear error otherwise. */
export function checkSupported(net: Network): void {
  const refused = unsupportedLayers(net.layers, 'trainer');
  if (refused.length > 0) throw new ZeroqError('retrain-unsupported', unsupportedMessage(refused), net.name);
  for (const l of net.layers) {
    if (l.kind === 'shortcut') {
      for (const j of l.inputs) {
        const s = j === -1 ? net.input : net.layers[j].out;
        if (s.c !== l.out.c || s.h !== l.out.h || s.w !== l.out.w) {
          throw new ZeroqError('retrain-unsupported', 'shortcut of tensors of different shapes', where(l));
        }
      }
    }
  }
}

/** HWC uint8 frames → CHW, as P/255 (float) or as the integers P (fraction bits 8). */
function planar<T extends Float32Array | Int16Array>(net: Network, batch: Batch, out: T, scale: number): T {
  const { c, h, w } = net.input;
  const hw = h * w;
  for (let n = 0; n < batch.n; n++) {
    const src = n * hw * c;
    const dst = n * hw * c;
    for (let p = 0; p < hw; p++) {
      for (let ch = 0; ch < c; ch++) out[dst + ch * hw + p] = batch.rgb[src + p * c + ch] * scale;
    }
  }
  return out;
}

function maxpoolWindow(l: MaxPoolLayer, inp: Shape) {
  const off = Math.floor(l.padding / 2);
  return { off, H: inp.h, W: inp.w };
}

/** Channel slices a route takes from each input: [input, first channel, count]. */
function routeSlices(net: Network, l: RouteLayer): [number, number, number][] {
  return l.inputs.map((j) => {
    const c = (j === -1 ? net.input : net.layers[j].out).c;
    const part = c / l.groups;
    return [j, part * l.groupId, part];
  });
}

// ---------------------------------------------------------------------------------------------
// Float forward

/** Output of every layer (CHW per image, n images) of the float model; input scaled P/255. */
export function floatForward(net: Network, params: ParamSet, batch: Batch, threads = 1): Float32Array[] {
  const nat = retrainNative();
  const n = batch.n;
  const x0 = planar(net, batch, new Float32Array(n * size(net.input)), 1 / 255);
  const outs: Float32Array[] = [];
  const get = (j: number) => (j === -1 ? x0 : outs[j]);
  const shapeOf = (j: number) => (j === -1 ? net.input : net.layers[j].out);
  for (const l of net.layers) {
    const os = size(l.out);
    let y: Float32Array;
    switch (l.kind) {
      case 'conv': {
        const p = params[l.index];
        if (!p) throw new ZeroqError('retrain-params', 'conv layer without parameters', where(l));
        y = new Float32Array(n * os);
        nat.convForwardF32(get(l.inputs[0]), p.weight, p.bias, geom(net, l, n), y, threads);
        if (l.activation === 'leaky') for (let i = 0; i < y.length; i++) if (y[i] < 0) y[i] *= 0.1;
        break;
      }
      case 'maxpool': {
        const inp = shapeOf(l.inputs[0]);
        const x = get(l.inputs[0]);
        y = new Float32Array(n * os);
        const { off } = maxpoolWindow(l, inp);
        const is = size(inp);
        for (let b = 0; b < n; b++)
          for (let c = 0; c < l.out.c; c++)
            for (let oy = 0; oy < l.out.h; oy++)
              for (let ox = 0; ox < l.out.w; ox++) {
                let m = -Infinity;
                for (let ky = 0; ky < l.size; ky++) {
                  const iy = oy * l.stride - off + ky;
                  if (iy < 0 || iy >= inp.h) continue;
                  for (let kx = 0; kx < l.size; kx++) {
                    const ix = ox * l.stride - off + kx;
                    if (ix < 0 || ix >= inp.w) continue;
                    const v = x[b * is + (c * inp.h + iy) * inp.w + ix];
                    if (v > m) m = v;
                  }
                }
                y[b * os + (c * l.out.h + oy) * l.out.w + ox] = m;
              }
        break;
      }
      case 'route': {
        y = new Float32Array(n * os);
        let at = 0;
        for (const [j, first, count] of routeSlices(net, l)) {
          const s = shapeOf(j);
          const hw = s.h * s.w;
          const x = get(j);
          for (let b = 0; b < n; b++) y.set(x.subarray(b * size(s) + first * hw, b * size(s) + (first + count) * hw), b * os + at * hw);
          at += count;
        }
        break;
      }
      case 'shortcut': {
        y = get(l.inputs[0]).slice();
        for (const j of l.inputs.slice(1)) {
          const x = get(j);
          for (let i = 0; i < y.length; i++) y[i] += x[i];
        }
        break;
      }
      case 'upsample':
        y = upsample(get(l.inputs[0]), shapeOf(l.inputs[0]), l.stride, n, new Float32Array(n * os));
        break;
      case 'dropout':
      case 'yolo':
        y = get(l.inputs[0]);
        break;
    }
    outs.push(y);
  }
  return outs;
}

function upsample<T extends Float32Array | Int16Array>(x: T, s: Shape, k: number, n: number, y: T): T {
  const W = s.w * k;
  const H = s.h * k;
  for (let b = 0; b < n; b++)
    for (let c = 0; c < s.c; c++) {
      const xo = (b * s.c + c) * s.h * s.w;
      const yo = (b * s.c + c) * H * W;
      for (let oy = 0; oy < H; oy++) {
        const xr = xo + Math.floor(oy / k) * s.w;
        for (let ox = 0; ox < W; ox++) y[yo + oy * W + ox] = x[xr + Math.floor(ox / k)];
      }
    }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Quantized forward (what the integer engine computes) and its straight-through backward pass

/**
 * Re-expressing integers of fraction bits `from` with `to` fraction bits, saturated to `bits`: the
 * constants of rshr(v, from − to) computed once per tensor (a call per element was the hot spot).
 * rshr(v, r) for r > 0 is floor((v + 2^(r−1)) / 2^r), which also gives rshr's 0 for r > 64 while
 * |v| < 2^53; for r < 0 it is v·2^min(−r, 64).
 */
class Aligner {
  readonly half: number;
  readonly div: number;
  readonly mul: number;
  readonly hi: number;
  readonly lo: number;
  constructor(from: number, to: number, bits: number) {
    const r = from - to;
    this.half = r > 0 ? 2 ** (r - 1) : 0;
    this.div = r > 0 ? 2 ** r : 1;
    this.mul = r < 0 ? 2 ** Math.min(-r, 64) : 1;
    this.hi = 2 ** (bits - 1) - 1;
    this.lo = -(2 ** (bits - 1));
  }
  /** The value before saturation. */
  shifted(v: number): number {
    return this.div !== 1 ? Math.floor((v + this.half) / this.div) : v * this.mul;
  }
}

/** What the backward pass needs from one quantized forward pass. */
export interface Tape {
  n: number;
  /** Integer output of every layer (the input at index -1 is `input`). */
  outs: Int16Array[];
  input: Int16Array;
  /** Per element of a conv/route/shortcut output: 0 saturated (no gradient), 1 pass, 2 leaky negative side. */
  codes: (Uint8Array | undefined)[];
  /** Per maxpool output element: the index (within the image) of the input element it took. */
  argmax: (Int32Array | undefined)[];
}

/**
 * The quantized forward pass of a batch. With `reuse`, the layers before `reuse.from` are taken from
 * an earlier pass over the same batch (whose parameters of those layers were the same) instead of
 * being computed again.
 */
export function quantForward(net: Network, q: IntNet, batch: Batch, threads = 1, reuse?: { tape: Tape; from: number }): Tape {
  const nat = retrainNative();
  const n = batch.n;
  if (reuse && reuse.tape.n !== n) throw new ZeroqError('retrain-batch', `the reused pass has ${reuse.tape.n} frames, the batch ${n}`);
  const input = reuse ? reuse.tape.input : planar(net, batch, new Int16Array(n * size(net.input)), 1);
  const outs: Int16Array[] = [];
  const codes: (Uint8Array | undefined)[] = [];
  const argmax: (Int32Array | undefined)[] = [];
  const get = (j: number) => (j === -1 ? input : outs[j]);
  const shapeOf = (j: number) => (j === -1 ? net.input : net.layers[j].out);
  const fracOf = (j: number) => (j === -1 ? INPUT_FRAC : q.frac[j]);
  for (const l of net.layers) {
    if (reuse && l.index < reuse.from) {
      outs.push(reuse.tape.outs[l.index]);
      codes.push(reuse.tape.codes[l.index]);
      argmax.push(reuse.tape.argmax[l.index]);
      continue;
    }
    const os = size(l.out);
    const bits = q.bits[l.index];
    let y: Int16Array;
    let code: Uint8Array | undefined;
    let am: Int32Array | undefined;
    switch (l.kind) {
      case 'conv': {
        const c = q.convs[l.index];
        if (!c) throw new ZeroqError('retrain-params', 'conv layer without integer parameters', where(l));
        y = new Int16Array(n * os);
        code = new Uint8Array(n * os);
        nat.convForwardInt(get(l.inputs[0]), c.q, c.m, c.mShift, c.bias, c.outShift, l.activation === 'leaky' ? 1 : 0, bits, geom(net, l, n), y, code, threads);
        break;
      }
      case 'maxpool': {
        const inp = shapeOf(l.inputs[0]);
        if (fracOf(l.inputs[0]) !== q.frac[l.index]) throw new ZeroqError('retrain-format', 'maxpool must keep its input format', where(l));
        const x = get(l.inputs[0]);
        y = new Int16Array(n * os);
        am = new Int32Array(n * os);
        const { off } = maxpoolWindow(l, inp);
        const is = size(inp);
        for (let b = 0; b < n; b++)
          for (let c = 0; c < l.out.c; c++)
            for (let oy = 0; oy < l.out.h; oy++)
              for (let ox = 0; ox < l.out.w; ox++) {
                let m = -Infinity;
                let at = -1;
                for (let ky = 0; ky < l.size; ky++) {
                  const iy = oy * l.stride - off + ky;
                  if (iy < 0 || iy >= inp.h) continue;
                  for (let kx = 0; kx < l.size; kx++) {
                    const ix = ox * l.stride - off + kx;
                    if (ix < 0 || ix >= inp.w) continue;
                    const k = (c * inp.h + iy) * inp.w + ix;
                    const v = x[b * is + k];
                    if (v > m) (m = v), (at = k);
                  }
                }
                const o = b * os + (c * l.out.h + oy) * l.out.w + ox;
                y[o] = m;
                am[o] = at;
              }
        break;
      }
      case 'route': {
        y = new Int16Array(n * os);
        code = new Uint8Array(n * os);
        let at = 0;
        for (const [j, first, count] of routeSlices(net, l)) {
          const s = shapeOf(j);
          const hw = s.h * s.w;
          const x = get(j);
          const from = fracOf(j);
          const a = new Aligner(from, q.frac[l.index], bits);
          for (let b = 0; b < n; b++) {
            const xo = b * size(s) + first * hw;
            const yo = b * os + at * hw;
            for (let i = 0; i < count * hw; i++) {
              const v = a.shifted(x[xo + i]);
              y[yo + i] = v > a.hi ? a.hi : v < a.lo ? a.lo : v;
              code[yo + i] = v > a.hi || v < a.lo ? 0 : 1;
            }
          }
          at += count;
        }
        break;
      }
      case 'shortcut': {
        y = new Int16Array(n * os);
        code = new Uint8Array(n * os);
        const to = q.frac[l.index];
        const hi = 2 ** (bits - 1) - 1;
        const lo = -(2 ** (bits - 1));
        // Each input aligned and saturated on its own, summed, then the sum saturated.
        const sum = new Float64Array(y.length);
        for (const j of l.inputs) {
          const x = get(j);
          const a = new Aligner(fracOf(j), to, bits);
          for (let i = 0; i < sum.length; i++) {
            const v = a.shifted(x[i]);
            sum[i] += v > a.hi ? a.hi : v < a.lo ? a.lo : v;
          }
        }
        for (let i = 0; i < y.length; i++) {
          const s = sum[i];
          if (s > hi) (y[i] = hi), (code[i] = 0);
          else if (s < lo) (y[i] = lo), (code[i] = 0);
          else (y[i] = s), (code[i] = 1);
        }
        break;
      }
      case 'upsample':
        if (fracOf(l.inputs[0]) !== q.frac[l.index]) throw new ZeroqError('retrain-format', 'upsample must keep its input format', where(l));
        y = upsample(get(l.inputs[0]), shapeOf(l.inputs[0]), l.stride, n, new Int16Array(n * os));
        break;
      case 'dropout':
      case 'yolo':
        if (fracOf(l.inputs[0]) !== q.frac[l.index]) throw new ZeroqError('retrain-format', `${l.kind} must keep its input format`, where(l));
        y = get(l.inputs[0]);
        break;
    }
    outs.push(y);
    codes.push(code);
    argmax.push(am);
  }
  return { n, outs, input, codes, argmax };
}

/** The float tensors feeding each head (in net.heads order), from floatForward's outputs. */
export function floatHeadValues(net: Network, outs: Float32Array[]): Float32Array[] {
  return net.heads.map((h) => outs[net.layers[h].inputs[0]]);
}

/** Real values of the integer tensor feeding each head (in net.heads order), batch-major CHW. */
export function headValues(net: Network, q: IntNet, tape: Tape): Float32Array[] {
  return net.heads.map((h) => {
    const j = net.layers[h].inputs[0];
    const raw = tape.outs[j];
    const s = 2 ** -q.frac[j];
    const out = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw[i] * s;
    return out;
  });
}

export interface Grads {
  weight: (Float32Array | undefined)[];
  bias: (Float32Array | undefined)[];
}

/**
 * Back-propagates dL/d(head value) (real units, one array per head in net.heads order) through the
 * quantized run to dL/d(weff) and dL/d(real bias) of every conv layer, accumulated into `grads`.
 * `layerGrads` (indexed like net.layers): dL/d(output) of inner layers, for losses on them (taken
 * over and changed).
 */
export function backward(net: Network, q: IntNet, tape: Tape, headGrads: Float32Array[], grads: Grads, threads = 1, layerGrads?: readonly (Float32Array | undefined)[]): void {
  const nat = retrainNative();
  const n = tape.n;
  const g: (Float32Array | undefined)[] = new Array(net.layers.length);
  const shapeOf = (j: number) => (j === -1 ? net.input : net.layers[j].out);
  const fracOf = (j: number) => (j === -1 ? INPUT_FRAC : q.frac[j]);
  const addTo = (j: number, d: Float32Array) => {
    if (j === -1) return;
    const cur = g[j];
    if (!cur) g[j] = d;
    else for (let i = 0; i < d.length; i++) cur[i] += d[i];
  };
  // Gradients enter at the yolo layers (they pass their input through).
  net.heads.forEach((h, k) => addTo(h, headGrads[k].slice()));
  // Gradients of losses on inner layers' outputs (feature distillation) enter where they apply.
  layerGrads?.forEach((d, j) => d && addTo(j, d));
  for (let i = net.layers.length - 1; i >= 0; i--) {
    const l = net.layers[i];
    const d = g[i];
    if (!d) continue;
    g[i] = undefined;
    switch (l.kind) {
      case 'conv': {
        const code = tape.codes[i]!;
        for (let k = 0; k < d.length; k++) {
          const cd = code[k];
          if (cd === 0) d[k] = 0;
          else if (cd === 2) d[k] *= 0.1;
        }
        const j = l.inputs[0];
        const xi = j === -1 ? tape.input : tape.outs[j];
        const s = 2 ** -fracOf(j);
        const x = new Float32Array(xi.length);
        for (let k = 0; k < xi.length; k++) x[k] = xi[k] * s;
        const gm = geom(net, l, n);
        nat.convBackwardWeight(d, x, gm, grads.weight[i]!, grads.bias[i]!, threads);
        if (j !== -1) {
          const dx = new Float32Array(n * size(shapeOf(j)));
          nat.convBackwardData(d, q.convs[i]!.weff, gm, dx, threads);
          addTo(j, dx);
        }
        break;
      }
      case 'maxpool': {
        const j = l.inputs[0];
        const is = size(shapeOf(j));
        const os = size(l.out);
        const dx = new Float32Array(n * is);
        const am = tape.argmax[i]!;
        for (let b = 0; b < n; b++) for (let k = 0; k < os; k++) dx[b * is + am[b * os + k]] += d[b * os + k];
        addTo(j, dx);
        break;
      }
      case 'route': {
        const code = tape.codes[i]!;
        const os = size(l.out);
        let at = 0;
        for (const [j, first, count] of routeSlices(net, l)) {
          const s = shapeOf(j);
          const hw = s.h * s.w;
          const dx = new Float32Array(n * size(s));
          for (let b = 0; b < n; b++) {
            const xo = b * size(s) + first * hw;
            const yo = b * os + at * hw;
            for (let k = 0; k < count * hw; k++) if (code[yo + k]) dx[xo + k] = d[yo + k];
          }
          addTo(j, dx);
          at += count;
        }
        break;
      }
      case 'shortcut': {
        // Each input was aligned and saturated on its own, then the sum saturated.
        const code = tape.codes[i]!;
        for (let k = 0; k < d.length; k++) if (!code[k]) d[k] = 0;
        const to = q.frac[i];
        const bits = q.bits[i];
        for (const j of l.inputs) {
          const x = j === -1 ? tape.input : tape.outs[j];
          const from = fracOf(j);
          const dx = d.slice();
          if (from !== to) {
            const a = new Aligner(from, to, bits);
            for (let k = 0; k < dx.length; k++) {
              const v = a.shifted(x[k]);
              if (v > a.hi || v < a.lo) dx[k] = 0;
            }
          }
          addTo(j, dx);
        }
        break;
      }
      case 'upsample': {
        const j = l.inputs[0];
        const s = shapeOf(j);
        const dx = new Float32Array(n * size(s));
        const W = l.out.w;
        const k = l.stride;
        for (let b = 0; b < n; b++)
          for (let c = 0; c < s.c; c++) {
            const xo = (b * s.c + c) * s.h * s.w;
            const yo = (b * s.c + c) * l.out.h * W;
            for (let oy = 0; oy < l.out.h; oy++) {
              const xr = xo + Math.floor(oy / k) * s.w;
              for (let ox = 0; ox < W; ox++) dx[xr + Math.floor(ox / k)] += d[yo + oy * W + ox];
            }
          }
        addTo(j, dx);
        break;
      }
      case 'dropout':
      case 'yolo':
        addTo(l.inputs[0], d);
        break;
    }
  }
}
