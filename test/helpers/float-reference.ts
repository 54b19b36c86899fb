/**
 * A plain, slow JS forward pass of the IR (double precision), written from darknet's layer
 * semantics, to check the ONNX graph against; and a small builder of hand-made networks.
 */
import type { Activation, ConvLayer, FloatModel, Layer, Network, Shape } from '../../src/model/ir.js';

export interface Tensor {
  shape: Shape;
  data: Float64Array;
}

function act(x: number, a: Activation): number {
  switch (a) {
    case 'linear':
      return x;
    case 'leaky':
      return x > 0 ? x : 0.1 * x;
    case 'relu':
      return x > 0 ? x : 0;
    case 'logistic':
      return 1 / (1 + Math.exp(-x));
    case 'swish':
      return x / (1 + Math.exp(-x));
    case 'mish': {
      const sp = x > 20 ? x : x < -20 ? Math.exp(x) : Math.log(Math.exp(x) + 1);
      return x * Math.tanh(sp);
    }
  }
}

/** Output of every layer (yolo layers pass their input through). */
export function referenceForward(model: FloatModel, input: Float32Array): Tensor[] {
  const net = model.net;
  const outs: Tensor[] = [];
  const get = (i: number): Tensor => (i === -1 ? { shape: net.input, data: Float64Array.from(input) } : outs[i]);
  for (const l of net.layers) {
    const o = l.out;
    const out = new Float64Array(o.c * o.h * o.w);
    const x = get(l.inputs[0]);
    const { c: C, h: H, w: W } = x.shape;
    switch (l.kind) {
      case 'conv': {
        const p = model.params[l.index]!;
        const cpg = C / l.groups;
        const fpg = l.filters / l.groups;
        for (let f = 0; f < l.filters; f++) {
          const g = Math.floor(f / fpg);
          for (let y = 0; y < o.h; y++)
            for (let xo = 0; xo < o.w; xo++) {
              let s = p.bias[f];
              for (let ci = 0; ci < cpg; ci++)
                for (let ky = 0; ky < l.size; ky++)
                  for (let kx = 0; kx < l.size; kx++) {
                    const iy = y * l.stride - l.pad + ky;
                    const ix = xo * l.stride - l.pad + kx;
                    if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
                    s += p.weight[((f * cpg + ci) * l.size + ky) * l.size + kx] * x.data[((g * cpg + ci) * H + iy) * W + ix];
                  }
              out[(f * o.h + y) * o.w + xo] = act(s, l.activation);
            }
        }
        break;
      }
      case 'maxpool': {
        const off = -Math.floor(l.padding / 2);
        for (let k = 0; k < C; k++)
          for (let y = 0; y < o.h; y++)
            for (let xo = 0; xo < o.w; xo++) {
              let m = -3.4028234663852886e38; // darknet: -FLT_MAX where the window sees nothing
              for (let n = 0; n < l.size; n++)
                for (let mm = 0; mm < l.size; mm++) {
                  const cy = off + y * l.stride + n;
                  const cx = off + xo * l.stride + mm;
                  if (cy < 0 || cx < 0 || cy >= H || cx >= W) continue;
                  m = Math.max(m, x.data[(k * H + cy) * W + cx]);
                }
              out[(k * o.h + y) * o.w + xo] = m;
            }
        break;
      }
      case 'route': {
        let at = 0;
        for (const i of l.inputs) {
          const t = get(i);
          const plane = t.shape.h * t.shape.w;
          const part = t.shape.c / Math.max(1, l.groups);
          const start = l.groups > 1 ? part * l.groupId : 0;
          out.set(t.data.subarray(start * plane, (start + part) * plane), at);
          at += part * plane;
        }
        break;
      }
      case 'shortcut': {
        for (let k = 0; k < out.length; k++) {
          let s = 0;
          for (const i of l.inputs) s += get(i).data[k];
          out[k] = act(s, l.activation);
        }
        break;
      }
      case 'upsample': {
        for (let k = 0; k < C; k++)
          for (let y = 0; y < o.h; y++)
            for (let xo = 0; xo < o.w; xo++)
              out[(k * o.h + y) * o.w + xo] = x.data[(k * H + Math.floor(y / l.stride)) * W + Math.floor(xo / l.stride)];
        break;
      }
      case 'dropout':
      case 'yolo':
        out.set(x.data);
        break;
    }
    outs.push({ shape: o, data: out });
  }
  return outs;
}

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type LayerSpec =
  | { kind: 'conv'; filters: number; size: number; stride?: number; pad?: number; groups?: number; activation?: Activation; from?: number }
  | { kind: 'maxpool'; size: number; stride: number; padding?: number; from?: number }
  | { kind: 'route'; layers: number[]; groups?: number; groupId?: number }
  | { kind: 'shortcut'; from: number; activation?: Activation }
  | { kind: 'upsample'; stride: number }
  | { kind: 'dropout' }
  | { kind: 'yolo'; classes: number; mask: number[]; anchors: number[] };

/** Builds a network from darknet-like layer specs (relative indices negative, as in cfgs) with random weights. */
export function handModel(input: Shape, specs: LayerSpec[], seed = 1): FloatModel {
  const layers: Layer[] = [];
  const params: FloatModel['params'] = [];
  const rand = rng(seed);
  const abs = (idx: number, rel: number): number => (rel < 0 ? idx + rel : rel);
  const shapeOf = (i: number): Shape => (i === -1 ? input : layers[i].out);
  specs.forEach((s, index) => {
    const prev = index - 1;
    switch (s.kind) {
      case 'conv': {
        const from = s.from === undefined ? prev : abs(index, s.from);
        const inS = shapeOf(from);
        const stride = s.stride ?? 1;
        const pad = s.pad ?? Math.floor(s.size / 2);
        const groups = s.groups ?? 1;
        const out = {
          c: s.filters,
          h: Math.floor((inS.h + 2 * pad - s.size) / stride) + 1,
          w: Math.floor((inS.w + 2 * pad - s.size) / stride) + 1,
        };
        const layer: ConvLayer = {
          kind: 'conv', index, inputs: [from], out, filters: s.filters, size: s.size, stride, pad, groups,
          activation: s.activation ?? 'leaky', batchNormalize: true,
        };
        layers.push(layer);
        const n = s.filters * (inS.c / groups) * s.size * s.size;
        const scale = 1 / Math.sqrt((inS.c / groups) * s.size * s.size);
        params[index] = {
          weight: Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 2 * scale),
          bias: Float32Array.from({ length: s.filters }, () => rand() - 0.5),
        };
        return;
      }
      case 'maxpool': {
        const from = s.from === undefined ? prev : abs(index, s.from);
        const inS = shapeOf(from);
        const padding = s.padding ?? s.size - 1;
        layers.push({
          kind: 'maxpool', index, inputs: [from], size: s.size, stride: s.stride, padding,
          out: { c: inS.c, h: Math.floor((inS.h + padding - s.size) / s.stride) + 1, w: Math.floor((inS.w + padding - s.size) / s.stride) + 1 },
        });
        break;
      }
      case 'route': {
        const inputs = s.layers.map((r) => abs(index, r));
        const groups = s.groups ?? 1;
        const first = shapeOf(inputs[0]);
        const c = inputs.reduce((a, i) => a + shapeOf(i).c / groups, 0);
        layers.push({ kind: 'route', index, inputs, groups, groupId: s.groupId ?? 0, out: { c, h: first.h, w: first.w } });
        break;
      }
      case 'shortcut':
        layers.push({ kind: 'shortcut', index, inputs: [prev, abs(index, s.from)], activation: s.activation ?? 'linear', out: shapeOf(prev) });
        break;
      case 'upsample': {
        const inS = shapeOf(prev);
        layers.push({ kind: 'upsample', index, inputs: [prev], stride: s.stride, out: { c: inS.c, h: inS.h * s.stride, w: inS.w * s.stride } });
        break;
      }
      case 'dropout':
        layers.push({ kind: 'dropout', index, inputs: [prev], probability: 0.5, out: shapeOf(prev) });
        break;
      case 'yolo':
        layers.push({
          kind: 'yolo', index, inputs: [prev], out: shapeOf(prev), classes: s.classes, anchors: s.anchors, mask: s.mask,
          scaleXY: 1, newCoords: false, nmsKind: 'greedynms', betaNms: 0.6,
        });
        break;
    }
    params[index] = undefined;
  });
  const net: Network = {
    name: 'hand',
    input,
    letterbox: false,
    layers,
    heads: layers.filter((l) => l.kind === 'yolo').map((l) => l.index),
  };
  return { net, params };
}
