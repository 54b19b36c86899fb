/**
 * Test helpers for the integer engines: a small network builder with darknet's shape rules, and the
 * random QNets of src/qnet/random.ts.
 */
import type { Activation, Layer, Network, Shape } from '../../src/model/ir.js';

export { rng, randInt, randomQNet, randomFrame, type Rng, type RandomQNetOptions } from '../../src/qnet/random.js';

export interface ConvSpec {
  filters: number;
  size: number;
  stride?: number;
  pad?: number;
  groups?: number;
  activation?: Activation;
  from?: number;
}

/** Builds a Network layer by layer; `from` arguments are absolute indices (-1 = input) or negative offsets below -1. */
export class NetBuilder {
  readonly layers: Layer[] = [];
  constructor(readonly input: Shape, readonly name = 'test-net') {}

  /** darknet relative index: rel(-1) is the previous layer. */
  rel(d: number): number {
    return this.layers.length + d;
  }
  shapeOf(i: number): Shape {
    return i === -1 ? this.input : this.layers[i].out;
  }
  private push(l: Layer): number {
    this.layers.push(l);
    return l.index;
  }
  conv(s: ConvSpec): number {
    const src = s.from ?? this.layers.length - 1;
    const inS = this.shapeOf(src);
    const stride = s.stride ?? 1;
    const pad = s.pad ?? Math.floor(s.size / 2);
    const h = Math.floor((inS.h + 2 * pad - s.size) / stride) + 1;
    const w = Math.floor((inS.w + 2 * pad - s.size) / stride) + 1;
    return this.push({
      kind: 'conv', index: this.layers.length, inputs: [src], out: { c: s.filters, h, w },
      filters: s.filters, size: s.size, stride, pad, groups: s.groups ?? 1,
      activation: s.activation ?? 'leaky', batchNormalize: true, source: `test:${this.layers.length}`,
    });
  }
  maxpool(size: number, stride: number, padding = size - 1, from?: number): number {
    const src = from ?? this.layers.length - 1;
    const inS = this.shapeOf(src);
    const h = Math.floor((inS.h + padding - size) / stride) + 1;
    const w = Math.floor((inS.w + padding - size) / stride) + 1;
    return this.push({ kind: 'maxpool', index: this.layers.length, inputs: [src], out: { c: inS.c, h, w }, size, stride, padding });
  }
  route(inputs: number[], groups = 1, groupId = 0): number {
    const s0 = this.shapeOf(inputs[0]);
    const c = inputs.reduce((a, i) => a + this.shapeOf(i).c / groups, 0);
    return this.push({ kind: 'route', index: this.layers.length, inputs, out: { c, h: s0.h, w: s0.w }, groups, groupId });
  }
  shortcut(from: number, activation: Activation = 'linear'): number {
    const prev = this.layers.length - 1;
    return this.push({ kind: 'shortcut', index: this.layers.length, inputs: [prev, from], out: { ...this.shapeOf(prev) }, activation });
  }
  upsample(stride: number, from?: number): number {
    const src = from ?? this.layers.length - 1;
    const s = this.shapeOf(src);
    return this.push({ kind: 'upsample', index: this.layers.length, inputs: [src], out: { c: s.c, h: s.h * stride, w: s.w * stride }, stride });
  }
  dropout(): number {
    const src = this.layers.length - 1;
    return this.push({ kind: 'dropout', index: this.layers.length, inputs: [src], out: { ...this.shapeOf(src) }, probability: 0.1 });
  }
  /** A head on `from`: 3, 2 or 1 anchors and as many classes as the channels give (len(mask)·(classes + 5)). */
  yolo(from?: number): number {
    const src = from ?? this.layers.length - 1;
    const c = this.shapeOf(src).c;
    const anchors = [3, 2, 1].find((a) => c % a === 0 && c / a >= 6);
    if (anchors === undefined) throw new Error(`a yolo head needs at least 6 channels (${c})`);
    return this.push({
      kind: 'yolo', index: this.layers.length, inputs: [src], out: { ...this.shapeOf(src) }, classes: c / anchors - 5,
      anchors: [10, 14, 23, 27, 37, 58], mask: [0, 1, 2].slice(0, anchors), scaleXY: 1, newCoords: false, nmsKind: 'default', betaNms: 0.6,
    });
  }
  build(): Network {
    return {
      name: this.name, input: this.input, letterbox: false, layers: this.layers,
      heads: this.layers.filter((l) => l.kind === 'yolo').map((l) => l.index),
    };
  }
}

