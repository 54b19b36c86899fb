// Gradient checks of the retraining core.
// 1. The native convolution kernels: forward against the definition, backward against central
//    differences of the forward, on every geometry the kernels special-case.
// 2. backward() on the real Yolo-Fastest-1.1: against a forward-mode propagation of changes through
//    the same integer run (exact adjoint), that propagation on the float network against finite
//    differences of the float network (in doubles, and floatForward itself where L is linear), and
//    the straight-through gradient against the float network's gradient.
import t from 'tap';
import { loadDarknet } from '../src/model/darknet.js';
import { inputShape, type ConvLayer, type MaxPoolLayer, type Network, type RouteLayer, type Shape } from '../src/model/ir.js';
import { dataPath } from '../src/util/paths.js';
import { loadFrames, readImageList } from '../src/retrain/data.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { retrainNative } from '../src/retrain/native.js';
import { backward, floatForward, headValues, quantForward, type Batch, type Grads, type IntNet, type ParamSet, type Tape } from '../src/retrain/sim.js';
import { rshr } from '../src/qnet/arith.js';
import { defaultQuantConfig, inputScale, intNet, quantizerFormats, type Formats } from '../src/retrain/formats.js';
import { INPUT_FRAC } from '../src/qnet/types.js';
import { rng, type Rng } from './helpers/random-qnet.js';

const nat = retrainNative();
const uniform = (r: Rng, n: number, scale = 1) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);

// ---------------------------------------------------------------------------------------------
// 1. Native kernels

type Geom = [n: number, c: number, h: number, w: number, o: number, k: number, stride: number, pad: number, groups: number];

function outSize(g: ArrayLike<number>): [number, number, number] {
  const [, , h, w, o, k, s, p] = Array.from(g);
  return [o, Math.floor((h + 2 * p - k) / s) + 1, Math.floor((w + 2 * p - k) / s) + 1];
}

/** The convolution in doubles, straight from its definition (geom as the native kernels take it). */
function conv64(g: ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const [N, C, H, W, O, k, s, p, G] = Array.from(g);
  const [, Ho, Wo] = outSize(g);
  const cg = C / G;
  const og = O / G;
  const y = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const yo = (n * O + o) * Ho * Wo;
      y.fill(b[o], yo, yo + Ho * Wo);
      const c0 = Math.floor(o / og) * cg;
      for (let c = 0; c < cg; c++)
        for (let ky = 0; ky < k; ky++)
          for (let kx = 0; kx < k; kx++) {
            const wv = w[((o * cg + c) * k + ky) * k + kx];
            if (wv === 0) continue;
            const xc = (n * C + c0 + c) * H * W;
            for (let oy = 0; oy < Ho; oy++) {
              const iy = oy * s - p + ky;
              if (iy < 0 || iy >= H) continue;
              for (let ox = 0; ox < Wo; ox++) {
                const ix = ox * s - p + kx;
                if (ix >= 0 && ix < W) y[yo + oy * Wo + ox] += wv * x[xc + iy * W + ix];
              }
            }
          }
    }
  return y;
}

const GEOMS: [string, Geom][] = [
  ['3x3 stride 1 pad 1', [1, 3, 6, 7, 4, 3, 1, 1, 1]],
  ['3x3 stride 2 pad 1, odd H/W, batch 2', [2, 4, 9, 7, 5, 3, 2, 1, 1]],
  ['3x3 pad 0', [1, 3, 6, 5, 2, 3, 1, 0, 1]],
  ['1x1 (pointwise path), batch 2', [2, 6, 5, 7, 4, 1, 1, 0, 1]],
  ['1x1 stride 2', [1, 4, 7, 9, 3, 1, 2, 0, 1]],
  ['2x2 stride 2', [2, 3, 6, 5, 4, 2, 2, 0, 1]],
  ['depthwise 3x3 stride 1, batch 2', [2, 5, 7, 6, 5, 3, 1, 1, 5]],
  ['depthwise 3x3 stride 2, odd H/W', [2, 4, 9, 11, 4, 3, 2, 1, 4]],
  ['depthwise 5x5 pad 2 on 2x2 (the net at 64x64)', [2, 3, 2, 2, 3, 5, 1, 2, 3]],
  ['grouped (2 groups), batch 2', [2, 6, 5, 5, 4, 3, 1, 1, 2]],
  ['channel multiplier 2 (groups = C, O = 2C)', [1, 3, 5, 4, 6, 3, 1, 1, 3]],
  ['3x3 with more output positions than one block (625)', [2, 2, 25, 25, 3, 3, 1, 1, 1]],
  ['1x1 with more output positions than one block (552)', [1, 3, 23, 24, 2, 1, 1, 0, 1]],
];

t.test('native kernels: forward = definition, backward = central differences of the forward', async (t) => {
  // L = sum(y * r) is linear in w, in b and in x, so the central difference is its derivative up
  // to float32 rounding of y (about 1e-7 relative per element): with eps 1/64 an exact kernel stays
  // below 1e-4 of the largest derivative. Errors are measured against that largest derivative.
  const eps = 1 / 64;
  const TOL = 1e-3;
  for (const [name, g] of GEOMS) {
    const [N, C, H, W, O, k, , , G] = g;
    const [, Ho, Wo] = outSize(g);
    const r = rng(C * 1000 + H * 31 + W + k * 7 + G);
    const x = uniform(r, N * C * H * W);
    const w = uniform(r, (O * C * k * k) / G, 0.5);
    const b = uniform(r, O);
    const rr = uniform(r, N * O * Ho * Wo);
    const gm = Int32Array.from(g);
    const loss = (xx: Float32Array, ww: Float32Array, bb: Float32Array) => {
      const y = new Float32Array(rr.length);
      nat.convForwardF32(xx, ww, bb, gm, y, 1);
      let L = 0;
      for (let i = 0; i < y.length; i++) L += y[i] * rr[i];
      return L;
    };
    await t.test(name, async (t) => {
      const ref = conv64(g, x, w, b);
      for (const threads of [1, 2]) {
        const y = new Float32Array(rr.length);
        nat.convForwardF32(x, w, b, gm, y, threads);
        let err = 0;
        let big = 0;
        for (let i = 0; i < y.length; i++) (err = Math.max(err, Math.abs(y[i] - ref[i]))), (big = Math.max(big, Math.abs(ref[i])));
        t.ok(err <= 1e-5 * big, `threads ${threads}: forward = definition (max error ${err.toExponential(1)} of ${big.toFixed(2)})`);

        // dw and db are accumulated onto what they hold; dx is overwritten.
        const dw = uniform(rng(1), w.length);
        const db = uniform(rng(2), b.length);
        const dw0 = dw.slice();
        const db0 = db.slice();
        const dx = new Float32Array(x.length).fill(1e6);
        nat.convBackwardWeight(rr, x, gm, dw, db, threads);
        nat.convBackwardData(rr, w, gm, dx, threads);
        for (let i = 0; i < dw.length; i++) dw[i] -= dw0[i];
        for (let i = 0; i < db.length; i++) db[i] -= db0[i];

        const checks: [string, Float32Array, Float32Array, (p: Float32Array) => number][] = [
          ['dW', dw, w, (p) => loss(x, p, b)],
          ['db', db, b, (p) => loss(x, w, p)],
          ['dX', dx, x, (p) => loss(p, w, b)],
        ];
        for (const [what, an, param, f] of checks) {
          const p = param.slice();
          let worst = 0;
          let scale = 0;
          const fd = new Float64Array(p.length);
          for (let i = 0; i < p.length; i++) {
            p[i] = param[i] + eps;
            const up = f(p);
            p[i] = param[i] - eps;
            const down = f(p);
            p[i] = param[i];
            fd[i] = (up - down) / (2 * eps);
            scale = Math.max(scale, Math.abs(fd[i]));
          }
          for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(an[i] - fd[i]) / scale);
          t.ok(scale > 0 && worst <= TOL, `threads ${threads}: ${what}, all ${p.length} elements (max error ${worst.toExponential(1)} of the largest, ${scale.toFixed(2)})`);
        }
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// 2. backward() on the real network

type Vec = Float32Array | Float64Array;

interface Setup {
  net: Network;
  n: number;
  batch: Batch;
  q: IntNet;
  tape: Tape;
  /** backward() of L = sum over heads of sum(head * R). */
  grads: Grads;
  R: Float32Array[];
  /**
   * The float network the integer run stands for: the weights weff the integer layers apply, their
   * real biases B * 2^-(fw + fa_in), the frame read as P/256 (NCHW), like the integer run.
   */
  bias: Float64Array[];
  x0: Float64Array;
}

/** A change h * (dW, db) of the weights (weff) and biases of conv layer k. */
interface Change {
  k: number;
  dW: Float32Array;
  db: Float32Array;
  h: number;
}

const size = (s: Shape) => s.c * s.h * s.w;

function shapeOf(net: Network, j: number): Shape {
  return j === -1 ? net.input : net.layers[j].out;
}

function geomOf(net: Network, l: ConvLayer, n: number): Int32Array {
  const i = inputShape(net, l);
  return Int32Array.of(n, i.c, i.h, i.w, l.filters, l.size, l.stride, l.pad, l.groups);
}

/** Index (within its image) of the input element each maxpool output takes: the first maximum. */
function argmaxOf(net: Network, l: MaxPoolLayer, n: number, x: ArrayLike<number>): Int32Array {
  const inp = shapeOf(net, l.inputs[0]);
  const os = size(l.out);
  const is = size(inp);
  const off = Math.floor(l.padding / 2);
  const am = new Int32Array(n * os);
  for (let b = 0; b < n; b++)
    for (let c = 0; c < l.out.c; c++)
      for (let oy = 0; oy < l.out.h; oy++)
        for (let ox = 0; ox < l.out.w; ox++) {
          let m = -Infinity;
          let at = -1;
          for (let ky = 0; ky < l.size; ky++)
            for (let kx = 0; kx < l.size; kx++) {
              const iy = oy * l.stride - off + ky;
              const ix = ox * l.stride - off + kx;
              if (iy < 0 || iy >= inp.h || ix < 0 || ix >= inp.w) continue;
              const k = (c * inp.h + iy) * inp.w + ix;
              if (x[b * is + k] > m) (m = x[b * is + k]), (at = k);
            }
          am[b * os + (c * l.out.h + oy) * l.out.w + ox] = at;
        }
  return am;
}

function gather<T extends Vec>(x: T, am: Int32Array, n: number, is: number, y: T): T {
  const os = am.length / n;
  for (let b = 0; b < n; b++) for (let e = 0; e < os; e++) y[b * os + e] = x[b * is + am[b * os + e]];
  return y;
}

/** Concatenates the channel slices of the route's inputs (missing inputs stay zero). */
function route<T extends Vec>(net: Network, l: RouteLayer, n: number, get: (j: number) => T | undefined, y: T): T {
  const os = size(l.out);
  let ch = 0;
  for (const j of l.inputs) {
    const sh = shapeOf(net, j);
    const hw = sh.h * sh.w;
    const part = sh.c / l.groups;
    const first = part * l.groupId;
    const x = get(j);
    if (x) for (let b = 0; b < n; b++) y.set(x.subarray(b * size(sh) + first * hw, b * size(sh) + (first + part) * hw), b * os + ch * hw);
    ch += part;
  }
  return y;
}

function upsample<T extends Vec>(x: T, sh: Shape, f: number, n: number, y: T): T {
  const Ho = sh.h * f;
  const Wo = sh.w * f;
  for (let bc = 0; bc < n * sh.c; bc++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) y[(bc * Ho + oy) * Wo + ox] = x[(bc * sh.h + Math.floor(oy / f)) * sh.w + Math.floor(ox / f)];
  return y;
}

/** Every layer's output of the float network in doubles, optionally with one layer's parameters changed. */
function forward64(s: Setup, change?: Change): Float64Array[] {
  const { net, n } = s;
  const outs: Float64Array[] = [];
  const get = (j: number) => (j === -1 ? s.x0 : outs[j]);
  for (const l of net.layers) {
    let y: Float64Array;
    switch (l.kind) {
      case 'conv': {
        let w: ArrayLike<number> = s.q.convs[l.index]!.weff;
        let b: ArrayLike<number> = s.bias[l.index];
        if (change && change.k === l.index) {
          const { dW, db, h } = change;
          w = Float64Array.from(w, (v, i) => v + h * dW[i]);
          b = Float64Array.from(b, (v, i) => v + h * db[i]);
        }
        y = conv64(geomOf(net, l, n), get(l.inputs[0]), w, b);
        if (l.activation === 'leaky') for (let e = 0; e < y.length; e++) if (y[e] < 0) y[e] *= 0.1;
        break;
      }
      case 'maxpool': {
        const x = get(l.inputs[0]);
        y = gather(x, argmaxOf(net, l, n, x), n, size(shapeOf(net, l.inputs[0])), new Float64Array(n * size(l.out)));
        break;
      }
      case 'route':
        y = route(net, l, n, get, new Float64Array(n * size(l.out)));
        break;
      case 'shortcut':
        y = new Float64Array(n * size(l.out));
        for (const j of l.inputs) {
          const x = get(j);
          for (let e = 0; e < y.length; e++) y[e] += x[e];
        }
        break;
      case 'upsample':
        y = upsample(get(l.inputs[0]), shapeOf(net, l.inputs[0]), l.stride, n, new Float64Array(n * size(l.out)));
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

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < b.length; i++) d += a[i] * b[i];
  return d;
}

/** L = sum over heads of sum(head * R), from every layer's output. */
function headLoss(s: Setup, outs: ArrayLike<number>[]): number {
  return s.net.heads.reduce((L, h, m) => L + dot(outs[s.net.layers[h].inputs[0]], s.R[m]), 0);
}

/**
 * Where a network run is linearized: the real values of every tensor (index -1: the input) and
 * the state of every non-linearity.
 */
interface Linearization {
  x(j: number): Float32Array;
  /** Per element of a conv/route/shortcut output: 0 blocked, 1 pass, 2 leaky negative side. */
  code(i: number): Uint8Array | undefined;
  argmax(i: number): Int32Array;
  /** Per element of a shortcut input: 0 where aligning it to the shortcut's format saturated. */
  inputMask(i: number, j: number): Uint8Array | undefined;
}

function cached<T>(make: (i: number) => T): (i: number) => T {
  const m = new Map<number, T>();
  return (i) => {
    if (!m.has(i)) m.set(i, make(i));
    return m.get(i)!;
  };
}

function intLinearization(s: Setup): Linearization {
  const { q, tape } = s;
  const fracOf = (j: number) => (j === -1 ? INPUT_FRAC : q.frac[j]);
  const raw = (j: number) => (j === -1 ? tape.input : tape.outs[j]);
  return {
    x: cached((j) => {
      const scale = 2 ** -fracOf(j);
      return Float32Array.from(raw(j), (a) => a * scale);
    }),
    code: (i) => tape.codes[i],
    argmax: (i) => tape.argmax[i]!,
    inputMask(i, j) {
      const from = fracOf(j);
      const to = q.frac[i];
      if (from === to) return undefined;
      const hi = 2 ** (q.bits[i] - 1) - 1;
      const lo = -(2 ** (q.bits[i] - 1));
      return Uint8Array.from(raw(j), (v) => {
        const a = rshr(v, from - to);
        return a > hi || a < lo ? 0 : 1;
      });
    },
  };
}

/** The float network's linearization at its run `outs` (forward64). */
function floatLinearization(s: Setup, outs: Float64Array[]): Linearization {
  const { net, n } = s;
  return {
    x: cached((j) => Float32Array.from(j === -1 ? s.x0 : outs[j])),
    code: cached((i) => {
      const l = net.layers[i];
      return l.kind === 'conv' && l.activation === 'leaky' ? Uint8Array.from(outs[i], (v) => (v < 0 ? 2 : 1)) : undefined;
    }),
    argmax: cached((i) => {
      const l = net.layers[i] as MaxPoolLayer;
      return argmaxOf(net, l, n, outs[l.inputs[0]]);
    }),
    inputMask: () => undefined,
  };
}

/**
 * dL along a change (dW, db) of conv layer k, by propagating the change forward through the
 * linearization (forward-mode chain rule; independent of backward()).
 */
function tangent(s: Setup, lin: Linearization, k: number, dW: Float32Array, db: Float32Array): number {
  const { net, n, q } = s;
  const t: (Float32Array | undefined)[] = new Array(net.layers.length);
  const at = (j: number) => (j === -1 ? undefined : t[j]);
  const mask = (y: Float32Array, code: Uint8Array | undefined) => {
    if (code) for (let e = 0; e < y.length; e++) y[e] *= code[e] === 0 ? 0 : code[e] === 2 ? 0.1 : 1;
  };
  for (let i = k; i < net.layers.length; i++) {
    const l = net.layers[i];
    const os = n * size(l.out);
    let y: Float32Array | undefined;
    switch (l.kind) {
      case 'conv': {
        const gm = geomOf(net, l, n);
        if (i === k) {
          y = new Float32Array(os);
          nat.convForwardF32(lin.x(l.inputs[0]), dW, db, gm, y, 2);
        }
        const a = at(l.inputs[0]);
        if (a) {
          const z = new Float32Array(os);
          nat.convForwardF32(a, q.convs[i]!.weff, new Float32Array(l.filters), gm, z, 2);
          if (y) for (let e = 0; e < z.length; e++) y[e] += z[e];
          else y = z;
        }
        if (y) mask(y, lin.code(i));
        break;
      }
      case 'maxpool': {
        const a = at(l.inputs[0]);
        if (a) y = gather(a, lin.argmax(i), n, size(shapeOf(net, l.inputs[0])), new Float32Array(os));
        break;
      }
      case 'route':
        if (l.inputs.some((j) => at(j))) mask((y = route(net, l, n, at, new Float32Array(os))), lin.code(i));
        break;
      case 'shortcut':
        if (l.inputs.some((j) => at(j))) {
          y = new Float32Array(os);
          for (const j of l.inputs) {
            const a = at(j);
            const m = lin.inputMask(i, j);
            if (a) for (let e = 0; e < os; e++) if (!m || m[e]) y[e] += a[e];
          }
          mask(y, lin.code(i));
        }
        break;
      case 'upsample': {
        const a = at(l.inputs[0]);
        if (a) y = upsample(a, shapeOf(net, l.inputs[0]), l.stride, n, new Float32Array(os));
        break;
      }
      case 'dropout':
      case 'yolo':
        y = at(l.inputs[0]);
        break;
    }
    t[i] = y;
  }
  return net.heads.reduce((d, h, m) => {
    const y = t[net.layers[h].inputs[0]];
    return y ? d + dot(y, s.R[m]) : d;
  }, 0);
}

/** The integer run of an integer network on the batch, and backward() of L from it. */
function intRun(net: Network, q: IntNet, batch: Batch, R: Float32Array[]): Pick<Setup, 'q' | 'tape' | 'grads'> {
  const tape = quantForward(net, q, batch, 2);
  const grads: Grads = {
    weight: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(q.convs[l.index]!.weff.length) : undefined)),
    bias: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(l.filters) : undefined)),
  };
  backward(net, q, tape, R, grads, 2);
  return { q, tape, grads };
}

/**
 * The fine setup, and the integer network `zeroq retrain` starts from at W4 (the quantizer's own
 * formats: 8-bit activations, saturating in places).
 */
async function setup(): Promise<{ fine: Setup; w4: Setup }> {
  const model = await loadDarknet(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'), undefined, { width: 64, height: 64 });
  const net = model.net;
  const paths = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 2);
  const frames = await loadFrames(net, paths);
  const calib = await Promise.all(paths.map(async (p) => (await prepareFrame(p, net)).frame));
  const n = paths.length;
  const batch: Batch = { n, rgb: frames.rgb };
  const r = rng(2024);
  const R = net.heads.map((h) => uniform(r, n * size(shapeOf(net, net.layers[h].inputs[0]))));
  // The quantizer's weight formats at W8; every 8-bit tensor widened to 16 bits with 7 more
  // fraction bits (twice the calibrated range, so nothing saturates): the integer run then follows
  // the float network that applies its weights closely.
  const cfg = { ...defaultQuantConfig(8), actCalib: 'minmax' as const, biasCorrection: false, equalize: false };
  const it = await quantizerFormats(net, model.params, calib, cfg, { equalize: false, threads: 2 });
  const formats: Formats = { ...it.formats, tensors: it.formats.tensors.map((f) => (f.bits === 8 ? { bits: 16, frac: f.frac + 7 } : f)) };
  const run = intRun(net, intNet(net, it.params, formats, 8), batch, R);
  const bias = net.layers.map((l) => {
    if (l.kind !== 'conv') return new Float64Array(0);
    const j = l.inputs[0];
    const faIn = j === -1 ? INPUT_FRAC : run.q.frac[j];
    const fw = formats.weights[l.index]!.fw;
    return Float64Array.from(run.q.convs[l.index]!.bias, (v, o) => v * 2 ** -(fw[o] + faIn));
  });
  const x0 = Float64Array.from(run.tape.input, (v) => v / 256);
  const fine: Setup = { net, n, batch, R, bias, x0, ...run };
  const cfg4 = defaultQuantConfig(4);
  const it4 = await quantizerFormats(net, model.params, calib, cfg4, { equalize: cfg4.equalize, threads: 2 });
  // Its float network (bias, x0) is not used.
  const w4: Setup = { ...fine, ...intRun(net, intNet(net, it4.params, it4.formats, 4), batch, R) };
  return { fine, w4 };
}

/** floatForward's parameters for the float network of the setup (its layer 0 reads P/255). */
function floatParams(s: Setup): ParamSet {
  return s.net.layers.map((l) =>
    l.kind === 'conv'
      ? { weight: Float32Array.from(s.q.convs[l.index]!.weff, (v) => v / inputScale(l)), bias: Float32Array.from(s.bias[l.index]) }
      : undefined,
  );
}

/** A random change of conv layer k's weights or of its biases, scaled like them. */
function direction(s: Setup, k: number, which: 'weight' | 'bias', r: Rng): { dW: Float32Array; db: Float32Array } {
  const weff = s.q.convs[k]!.weff;
  const bias = s.bias[k];
  const base: ArrayLike<number> = which === 'weight' ? weff : bias;
  const rms = Math.sqrt(dot(base, base) / base.length) || 1;
  const d = uniform(r, base.length, rms);
  return which === 'weight' ? { dW: d, db: new Float32Array(bias.length) } : { dW: new Float32Array(weff.length), db: d };
}

t.test('backward() on Yolo-Fastest-1.1 (64x64, real weights and images)', async (t) => {
  const { fine: s, w4 } = await setup();
  const { net, q, tape, grads } = s;
  const convs = net.layers.filter((l): l is ConvLayer => l.kind === 'conv');
  const base = forward64(s);
  const il = intLinearization(s);
  const fl = floatLinearization(s, base);

  await t.test('the float network in doubles is floatForward, and the 16-bit integer run follows it', async (t) => {
    const outs32 = floatForward(net, floatParams(s), s.batch, 2);
    const hv = headValues(net, q, tape);
    net.heads.forEach((h, m) => {
      const j = net.layers[h].inputs[0];
      let big = 0;
      let e32 = 0;
      let eInt = 0;
      for (let e = 0; e < base[j].length; e++) {
        big = Math.max(big, Math.abs(base[j][e]));
        e32 = Math.max(e32, Math.abs(outs32[j][e] - base[j][e]));
        eInt = Math.max(eInt, Math.abs(hv[m][e] - base[j][e]));
      }
      t.ok(e32 < 1e-4 * big, `head ${m}: floatForward within ${e32.toExponential(1)} of ${big.toFixed(2)}`);
      t.ok(eInt < 1e-2 * big, `head ${m}: the integer run within ${eInt.toExponential(1)}`);
    });
    const saturated = tape.codes.reduce((a, c) => a + (c ? c.filter((v) => v === 0).length : 0), 0);
    t.equal(saturated, 0, 'nothing saturates in the integer run');
    // The non-linearities backward() reads from the tape are those of the float run, but for
    // elements within rounding of the leaky kink or of a maxpool tie.
    const differ = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.prototype.filter.call(a, (v: number, e: number) => v !== b[e]).length;
    const count = { sides: 0, choices: 0 };
    let sides = 0;
    let choices = 0;
    for (const l of net.layers) {
      if (l.kind === 'conv' && l.activation === 'leaky') {
        sides += differ(il.code(l.index)!, fl.code(l.index)!);
        count.sides += s.n * size(l.out);
      }
      if (l.kind === 'maxpool') {
        choices += differ(il.argmax(l.index), fl.argmax(l.index));
        count.choices += s.n * size(l.out);
      }
    }
    t.ok(sides < 0.005 * count.sides, `leaky sides: ${sides} of ${count.sides} differ`);
    t.ok(choices < 0.01 * count.choices, `maxpool choices: ${choices} of ${count.choices} differ`);
  });

  await t.test('backward() is the adjoint of the straight-through linearization of the integer run', async (t) => {
    // Every conv layer, weights and biases apart: <dL/dθ, d> from backward() against the change of
    // L along d propagated forward through the same run. Both are exact but for float32 rounding,
    // measured against sum |dL/dθ_i d_i| (the size of the terms, as their sum may cancel): observed
    // up to 1.2e-6 of it, 1e-5 allowed. A wrong leaky factor, a transposed weight, a gradient sent
    // to the wrong pixel or channel slice, a saturated element passing gradient moves the value by
    // a sizeable part of it.
    const saturated = w4.tape.codes.reduce((a, c) => a + (c ? c.filter((v) => v === 0).length : 0), 0);
    t.ok(saturated > 0, `the W4 run saturates (${saturated} elements), so blocked gradients are checked too`);
    const r = rng(7);
    for (const [name, run] of [['16-bit run', s], ['W4 run', w4]] as const) {
      const lin = intLinearization(run);
      let worst = 0;
      const bad: string[] = [];
      for (const l of convs) {
        for (const which of ['weight', 'bias'] as const) {
          const { dW, db } = direction(run, l.index, which, r);
          const g = which === 'weight' ? run.grads.weight[l.index]! : run.grads.bias[l.index]!;
          const d = which === 'weight' ? dW : db;
          const fromBackward = dot(g, d);
          const terms = g.reduce((a, v, i) => a + Math.abs(v * d[i]), 0);
          const forward = tangent(run, lin, l.index, dW, db);
          const err = Math.abs(fromBackward - forward) / terms;
          worst = Math.max(worst, err);
          if (!(err <= 1e-5)) bad.push(`layer ${l.index} ${which}: ${fromBackward.toExponential(4)} vs ${forward.toExponential(4)} (terms ${terms.toExponential(2)})`);
        }
      }
      t.same(bad, [], `${name}: all ${convs.length} conv layers, weights and biases (max difference ${worst.toExponential(1)} of the terms)`);
    }
  });

  await t.test('that linearization, on the float run, is the float network derivative (finite differences)', async (t) => {
    // Differences of the float network in doubles, at a step of 1e-7 of the parameters' scale.
    // Along one layer's parameters L is piecewise linear (every layer is linear or piecewise
    // linear in its input), so a one-sided difference is exact but for rounding unless a leaky
    // kink or maxpool tie lies within its step: the nearer of the two is compared (an error above
    // 1e-3 on both sides means a wrong derivative). Observed: below 1e-4.
    const r = rng(11);
    const layers = [0, 2, 10, 23, 59, 78, 82, 106, 115, 118, 125, 127];
    const h = 1e-7;
    const L0 = headLoss(s, base);
    for (const k of layers) {
      for (const which of ['weight', 'bias'] as const) {
        const { dW, db } = direction(s, k, which, r);
        const exact = tangent(s, fl, k, dW, db);
        const up = (headLoss(s, forward64(s, { k, dW, db, h })) - L0) / h;
        const down = (L0 - headLoss(s, forward64(s, { k, dW, db, h: -h }))) / h;
        const fd = Math.abs(up - exact) < Math.abs(down - exact) ? up : down;
        const err = Math.abs(exact - fd) / Math.abs(fd);
        t.ok(err < 1e-3, `layer ${k} ${which}: ${exact.toExponential(4)} vs ${fd.toExponential(4)} (relative ${err.toExponential(1)})`);
      }
    }
  });

  await t.test('the straight-through gradient approximates the float network gradient', async (t) => {
    // The integer run's activations differ from the float run's by rounding, and about 300 of
    // 450000 elements sit on the other side of a leaky kink; the gradient of the early layers
    // passes through many of them, so there the two gradients differ by several percent (observed:
    // median 6% over all layers, 90th percentile 37%). Nearer the heads they agree closely.
    const r = rng(13);
    const terms = (g: Float32Array, d: Float32Array) => g.reduce((a, v, i) => a + Math.abs(v * d[i]), 0);
    // floatForward's L is linear in the parameters of the convs whose path to a head is linear, so
    // its central difference is exact but for float32 rounding (step 1e-2 of their scale).
    const params = floatParams(s);
    for (const k of [119, 120, 128, 129]) {
      const p = params[k]!;
      const w0 = p.weight.slice();
      const b0 = p.bias.slice();
      for (const which of ['weight', 'bias'] as const) {
        const { dW, db } = direction(s, k, which, r);
        const h = 1e-2;
        const at = (sign: number) => {
          for (let i = 0; i < w0.length; i++) p.weight[i] = w0[i] + sign * h * dW[i];
          for (let i = 0; i < b0.length; i++) p.bias[i] = b0[i] + sign * h * db[i];
          return headLoss(s, floatForward(net, params, s.batch, 2));
        };
        const fd = (at(1) - at(-1)) / (2 * h);
        p.weight.set(w0);
        p.bias.set(b0);
        const g = which === 'weight' ? grads.weight[k]! : grads.bias[k]!;
        const d = which === 'weight' ? dW : db;
        const err = Math.abs(dot(g, d) - fd) / terms(g, d);
        t.ok(err < 1e-3, `layer ${k} ${which}: backward() ${dot(g, d).toExponential(4)}, floatForward difference ${fd.toExponential(4)} (${err.toExponential(1)} of the terms)`);
      }
    }
    // Every conv layer against the float network's derivative (the propagation checked above); the
    // convs of the two head branches behind the last SPP/upsample routes closely.
    const headBranches = new Set([116, 117, 118, 119, 120, 125, 126, 127, 128, 129]);
    const rel: number[] = [];
    const headSide: string[] = [];
    let headWorst = 0;
    for (const l of convs) {
      for (const which of ['weight', 'bias'] as const) {
        const { dW, db } = direction(s, l.index, which, r);
        const g = which === 'weight' ? grads.weight[l.index]! : grads.bias[l.index]!;
        const d = which === 'weight' ? dW : db;
        const ste = dot(g, d);
        const exact = tangent(s, fl, l.index, dW, db);
        rel.push(Math.abs(ste - exact) / Math.abs(exact));
        if (headBranches.has(l.index)) {
          const err = Math.abs(ste - exact) / terms(g, d);
          headWorst = Math.max(headWorst, err);
          if (!(err < 1e-2)) headSide.push(`layer ${l.index} ${which}: ${ste.toExponential(4)} vs ${exact.toExponential(4)}`);
        }
      }
    }
    t.same(headSide, [], `head branches (layers 116-120, 125-129): within 1e-2 of the terms (max ${headWorst.toExponential(1)})`);
    rel.sort((a, b) => a - b);
    const median = rel[rel.length >> 1];
    t.ok(median < 0.2, `all conv layers: median relative difference ${median.toFixed(3)} (90th percentile ${rel[Math.floor(rel.length * 0.9)].toFixed(2)})`);
  });
});
