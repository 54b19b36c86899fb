/**
 * The rules every network IR obeys, whoever produced it (the cfg parser, a weight-set manifest):
 * the declared-size limits, each layer kind's parameters and shape rule, and the yolo head rules.
 * The cfg parser checks as it reads (to name the cfg line) and runs this as its last step; the .zqw
 * reader runs it on the manifest's network. docs/formats/darknet-import.md "Limits" lists the limits.
 */
import type { Layer, Network, Shape } from './ir.js';
import { convOutShape, maxPoolOutShape, routeOutShape, shapeString, upsampleOutShape } from './shapes.js';

/**
 * Declared sizes past these are refused before anything is allocated. They are far above every
 * darknet YOLO model at 1280x1280 (YOLOv4 there: 50 M values in its largest tensor, 732 M in all).
 */
export const LIMITS = {
  /** Layers of a network. */
  layers: 4096,
  /** Width and height of the network input. */
  inputSide: 4096,
  /** Width and height of any tensor (upsampling may grow past the input). */
  side: 16384,
  /** Channels of any tensor. */
  channels: 65536,
  /** Values of one tensor (c·h·w). */
  tensor: 2 ** 27,
  /** Values of all layer outputs together. */
  total: 2 ** 30,
  /** Weights of one conv layer, and of all of them. */
  convWeights: 2 ** 27,
  weights: 2 ** 28,
  /** Kernel and window sizes, strides, paddings. */
  kernel: 64,
  stride: 64,
  pad: 64,
  /** Inputs of a route or shortcut. */
  inputs: 64,
  /** Classes and anchors of a yolo head. */
  classes: 10000,
  anchors: 1000,
} as const;

export const ACTIVATIONS = ['linear', 'leaky', 'relu', 'mish', 'swish', 'logistic'] as const;
export const NMS_KINDS = ['default', 'greedynms', 'diounms', 'cornersnms'] as const;

/** What is wrong with a network: a limit passed, or a rule broken. */
export interface NetworkProblem {
  kind: 'limit' | 'rule';
  message: string;
  /** The offending layer, when there is one. */
  layer?: Layer;
}

const isInt = (v: unknown, lo: number, hi: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const isNum = (v: unknown, lo: number, hi: number): boolean => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;

/** A broken yolo rule: which option is wrong (for the cfg parser to name its line) and why. */
export interface YoloProblem {
  field: 'classes' | 'num' | 'anchors' | 'mask' | 'input';
  message: string;
}

/**
 * The yolo head rules, shared by the cfg parser and the weight-set reader: classes and anchors
 * within the limits, anchors finite and non-negative, every mask index naming an anchor pair, and
 * the input channels len(mask)·(classes + 5). `num` is the anchor pairs (anchors.length / 2 in the
 * IR); `inName` names the input in the message ("layer 12").
 */
export function yoloProblem(y: { classes: number; num: number; mask: readonly number[]; anchors: readonly number[]; inC: number; inName: string }): YoloProblem | undefined {
  if (!isInt(y.classes, 1, LIMITS.classes)) return { field: 'classes', message: `classes=${y.classes} is outside 1..${LIMITS.classes}` };
  if (!isInt(y.num, 1, LIMITS.anchors)) return { field: 'num', message: `num=${y.num} is outside 1..${LIMITS.anchors}` };
  if (y.mask.length < 1 || y.mask.length > LIMITS.anchors) return { field: 'mask', message: `${y.mask.length} mask entries (1..${LIMITS.anchors})` };
  const bad = y.mask.find((m) => !isInt(m, 0, y.num - 1));
  if (bad !== undefined) return { field: 'mask', message: `mask index ${bad} is not below num=${y.num}` };
  if (y.anchors.length < 2 * y.num) return { field: 'anchors', message: `${y.anchors.length} anchor values, num=${y.num} needs ${2 * y.num}` };
  const badAnchor = y.anchors.find((a) => !isNum(a, 0, 1e6));
  if (badAnchor !== undefined) return { field: 'anchors', message: `anchor ${badAnchor} is not a number from 0 to 1e6` };
  const want = y.mask.length * (y.classes + 5);
  if (y.inC !== want) {
    return { field: 'input', message: `needs ${want} input channels (${y.mask.length} anchors x (${y.classes} classes + 5)), ${y.inName} gives ${y.inC}` };
  }
  return undefined;
}

/** A shape within the limits (every side at least 1). */
export function shapeProblem(s: Shape, what: string): NetworkProblem | undefined {
  if (!isInt(s.c, 1, LIMITS.channels) || !isInt(s.h, 1, LIMITS.side) || !isInt(s.w, 1, LIMITS.side)) {
    const fits = isInt(s.c, 1, Infinity) && isInt(s.h, 1, Infinity) && isInt(s.w, 1, Infinity);
    return {
      kind: fits ? 'limit' : 'rule',
      message: fits
        ? `${what} ${shapeString(s)} is past the limits (${LIMITS.channels} channels, ${LIMITS.side} pixels a side)`
        : `${what} ${shapeString(s)} is not a shape (positive integers)`,
    };
  }
  if (s.c * s.h * s.w > LIMITS.tensor) {
    return { kind: 'limit', message: `${what} ${shapeString(s)} holds ${s.c * s.h * s.w} values, more than the limit of ${LIMITS.tensor}` };
  }
  return undefined;
}

/** The network input: within the limits of the input. */
export function inputProblem(s: Shape): NetworkProblem | undefined {
  const p = shapeProblem(s, 'the input');
  if (p) return p;
  if (s.h > LIMITS.inputSide || s.w > LIMITS.inputSide) {
    return { kind: 'limit', message: `an input of ${s.w}x${s.h} is past the limit of ${LIMITS.inputSide} pixels a side` };
  }
  return undefined;
}

/** The first problem of one layer (parameters, inputs, shape rule), given the shapes before it. */
function layerProblem(l: Layer, i: number, shapeOf: (j: number) => Shape): string | undefined {
  if (l.index !== i) return `index ${l.index} at position ${i}`;
  const n = l.inputs.length;
  const one = l.kind !== 'route' && l.kind !== 'shortcut';
  if (one ? n !== 1 : n < (l.kind === 'shortcut' ? 2 : 1) || n > LIMITS.inputs) return `${n} inputs`;
  for (const j of l.inputs) if (!isInt(j, -1, i - 1)) return `reads layer ${j}, which is not an earlier layer`;
  const src = shapeOf(l.inputs[0]);
  let want: Shape;
  switch (l.kind) {
    case 'conv': {
      if (!isInt(l.filters, 1, LIMITS.channels)) return `filters=${l.filters}`;
      if (!isInt(l.size, 1, LIMITS.kernel) || !isInt(l.stride, 1, LIMITS.stride) || !isInt(l.pad, 0, LIMITS.pad)) {
        return `size ${l.size}, stride ${l.stride}, pad ${l.pad} (limits ${LIMITS.kernel}, ${LIMITS.stride}, ${LIMITS.pad})`;
      }
      if (!isInt(l.groups, 1, LIMITS.channels) || src.c % l.groups !== 0 || l.filters % l.groups !== 0) {
        return `groups ${l.groups} do not divide ${src.c} inputs and ${l.filters} filters`;
      }
      if (!(ACTIVATIONS as readonly string[]).includes(l.activation)) return `activation ${String(l.activation)}`;
      want = convOutShape(src, l.filters, l.size, l.stride, l.pad);
      break;
    }
    case 'maxpool':
      if (!isInt(l.size, 1, LIMITS.kernel) || !isInt(l.stride, 1, LIMITS.stride) || !isInt(l.padding, 0, LIMITS.pad)) {
        return `size ${l.size}, stride ${l.stride}, padding ${l.padding} (limits ${LIMITS.kernel}, ${LIMITS.stride}, ${LIMITS.pad})`;
      }
      // Every window must hold at least one input position (the first and the last one then do).
      if (Math.ceil(l.padding / 2) > l.size - 1 && l.padding > 0) return `padding ${l.padding} leaves windows of size ${l.size} outside the input`;
      want = maxPoolOutShape(src, l.size, l.stride, l.padding);
      break;
    case 'route': {
      if (!isInt(l.groups, 1, LIMITS.channels) || !isInt(l.groupId, 0, l.groups - 1)) return `groups ${l.groups} group_id ${l.groupId}`;
      const shapes = l.inputs.map(shapeOf);
      const bad = shapes.find((s) => s.h !== src.h || s.w !== src.w || s.c % l.groups !== 0);
      if (bad) return `input ${shapeString(bad)} does not match ${shapeString(src)} or is not divisible into ${l.groups} groups`;
      want = routeOutShape(shapes, l.groups);
      break;
    }
    case 'shortcut': {
      if (!(ACTIVATIONS as readonly string[]).includes(l.activation)) return `activation ${String(l.activation)}`;
      const bad = l.inputs.map(shapeOf).find((s) => s.c !== src.c || s.h !== src.h || s.w !== src.w);
      if (bad) return `adds ${shapeString(bad)} to ${shapeString(src)}: shapes differ`;
      want = src;
      break;
    }
    case 'upsample':
      if (!isInt(l.stride, 1, LIMITS.stride)) return `stride ${l.stride}`;
      want = upsampleOutShape(src, l.stride);
      break;
    case 'dropout':
      if (!isNum(l.probability, 0, 1)) return `probability ${l.probability}`;
      want = src;
      break;
    case 'yolo': {
      if (!Array.isArray(l.anchors) || l.anchors.length % 2 !== 0) return `${String(l.anchors?.length)} anchor values (pairs)`;
      const p = yoloProblem({ classes: l.classes, num: l.anchors.length / 2, mask: l.mask, anchors: l.anchors, inC: src.c, inName: `layer ${l.inputs[0]}` });
      if (p) return p.message;
      if (!isNum(l.scaleXY, 0, 1e6) || !isNum(l.betaNms, -1e6, 1e6)) return `scale_x_y ${l.scaleXY}, beta_nms ${l.betaNms}`;
      if (typeof l.newCoords !== 'boolean' || !(NMS_KINDS as readonly string[]).includes(l.nmsKind)) return 'new_coords or nms_kind';
      want = src;
      break;
    }
    default:
      return `unknown kind ${String((l as { kind: unknown }).kind)}`;
  }
  const out = l.out;
  if (!(out && want.c === out.c && want.h === out.h && want.w === out.w)) {
    return `output ${out ? shapeString(out) : 'missing'}, its inputs give ${shapeString(want)}`;
  }
  return undefined;
}

/**
 * The first problem of a network, or undefined: layer count, input, every layer's parameters and
 * shape rule, the size limits of every tensor, of the weights and of all outputs, and the heads
 * (exactly the yolo layers, in order).
 */
export function networkProblem(net: Network): NetworkProblem | undefined {
  const input = inputProblem(net.input);
  if (input) return input;
  if (net.layers.length < 1 || net.layers.length > LIMITS.layers) {
    return { kind: net.layers.length < 1 ? 'rule' : 'limit', message: `${net.layers.length} layers (1..${LIMITS.layers})` };
  }
  const shapeOf = (j: number): Shape => (j === -1 ? net.input : net.layers[j].out);
  let total = 0;
  let weights = 0;
  for (let i = 0; i < net.layers.length; i++) {
    const l = net.layers[i];
    const rule = layerProblem(l, i, shapeOf);
    if (rule) return { kind: 'rule', message: rule, layer: l };
    const size = shapeProblem(l.out, 'output');
    if (size) return { ...size, layer: l };
    total += l.out.c * l.out.h * l.out.w;
    if (total > LIMITS.total) {
      return { kind: 'limit', layer: l, message: `the layers up to this one hold ${total} values, more than the limit of ${LIMITS.total}` };
    }
    if (l.kind === 'conv') {
      const n = l.filters * (shapeOf(l.inputs[0]).c / l.groups) * l.size * l.size;
      weights += n;
      if (n > LIMITS.convWeights || weights > LIMITS.weights) {
        return { kind: 'limit', layer: l, message: `${n} weights (${weights} up to here), past the limits of ${LIMITS.convWeights} per layer and ${LIMITS.weights} in all` };
      }
    }
  }
  const yolos = net.layers.filter((l) => l.kind === 'yolo').map((l) => l.index);
  if (net.heads.length !== yolos.length || net.heads.some((h, k) => h !== yolos[k])) {
    return { kind: 'rule', message: `heads [${net.heads.join(', ')}] are not the yolo layers [${yolos.join(', ')}]` };
  }
  return undefined;
}

/** "layer 12 (conv, yolo-fastest-1.1.cfg:88)". */
export function problemWhere(p: NetworkProblem, fallback: string): string {
  const l = p.layer;
  return l ? `layer ${l.index} (${l.kind}${l.source ? `, ${l.source}` : ''})` : fallback;
}
