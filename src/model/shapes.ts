/**
 * Output shapes as darknet computes them, and what each layer costs (parameters, multiply-adds).
 *
 * Counting rules:
 * - params: the numbers an engine stores after batch norm is folded: conv weights
 *   filters*(inC/groups)*size*size plus one bias per filter. Other layers have none.
 * - MACs: multiply-accumulates of convolutions, out_h*out_w*filters*(inC/groups)*size*size (the bias
 *   add and the activation are not counted). Max-pool (comparisons), shortcut (additions), route,
 *   upsample, dropout and yolo (copies or nothing) count 0 MACs.
 */
import { convWeightCount, type Layer, type Network, type Shape } from './ir.js';

/** darknet: out = (in + 2*pad - size)/stride + 1 (pad per side). May be < 1 when the window does not fit. */
export function convOutShape(input: Shape, filters: number, size: number, stride: number, pad: number): Shape {
  const dim = (n: number): number => Math.floor((n + 2 * pad - size) / stride) + 1;
  return { c: filters, h: dim(input.h), w: dim(input.w) };
}

/** darknet: out = (in + padding - size)/stride + 1 (padding is the total of both sides). */
export function maxPoolOutShape(input: Shape, size: number, stride: number, padding: number): Shape {
  const dim = (n: number): number => Math.floor((n + padding - size) / stride) + 1;
  return { c: input.c, h: dim(input.h), w: dim(input.w) };
}

/** Channels concatenated, each input contributing 1/groups of its channels; inputs must agree on h and w. */
export function routeOutShape(inputs: Shape[], groups: number): Shape {
  const c = inputs.reduce((sum, s) => sum + s.c / groups, 0);
  return { c, h: inputs[0].h, w: inputs[0].w };
}

export function upsampleOutShape(input: Shape, stride: number): Shape {
  return { c: input.c, h: input.h * stride, w: input.w * stride };
}

export interface LayerCost {
  params: number;
  macs: number;
}

export function layerCost(net: Network, layer: Layer): LayerCost {
  if (layer.kind !== 'conv') return { params: 0, macs: 0 };
  const weights = convWeightCount(net, layer);
  return { params: weights + layer.filters, macs: layer.out.h * layer.out.w * weights };
}

export interface NetworkCost extends LayerCost {
  layers: LayerCost[];
}

export function networkCost(net: Network): NetworkCost {
  const layers = net.layers.map((l) => layerCost(net, l));
  return {
    layers,
    params: layers.reduce((s, c) => s + c.params, 0),
    macs: layers.reduce((s, c) => s + c.macs, 0),
  };
}

export function shapeString(s: Shape): string {
  return `${s.c}x${s.h}x${s.w}`;
}
