/**
 * darknet .cfg → network IR: layer parameters with darknet's defaults, absolute input indices and
 * output shapes computed as darknet computes them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ZeroqError } from '../util/errors.js';
import type { Activation, ConvLayer, Layer, MaxPoolLayer, Network, NmsKind, RouteLayer, Shape, ShortcutLayer, YoloLayer } from './ir.js';
import { CfgSection, readCfgSections } from './darknet-cfg-syntax.js';
import { convOutShape, maxPoolOutShape, routeOutShape, shapeString, upsampleOutShape } from './shapes.js';
import { ACTIVATIONS, inputProblem, LIMITS, networkProblem, problemWhere, yoloProblem } from './network-check.js';

export interface CfgOptions {
  /** Run the network at another input size than the cfg's width/height. */
  width?: number;
  height?: number;
}

function activation(sec: CfgSection, fallback: Activation): Activation {
  const a = sec.word('activation', fallback);
  if (!(ACTIVATIONS as readonly string[]).includes(a)) {
    throw new ZeroqError(
      'cfg-unsupported',
      `activation '${a}' in [${sec.name}] is not supported (supported: ${ACTIVATIONS.join(', ')})`,
      sec.where('activation'),
    );
  }
  return a as Activation;
}

/** darknet's stride / stride_x / stride_y; zeroq's layers have one stride for both axes. */
function stride(sec: CfgSection): number {
  const s = sec.int('stride', 1);
  const sx = sec.int('stride_x', s);
  const sy = sec.int('stride_y', s);
  if (sx !== sy) {
    throw new ZeroqError(
      'cfg-unsupported',
      `different strides along x and y (${sx} and ${sy}) in [${sec.name}] are not supported`,
      sec.where(sec.has('stride_x') ? 'stride_x' : 'stride_y'),
    );
  }
  return sx;
}

function checkNotEmpty(sec: CfgSection, input: Shape, out: Shape, what: string): void {
  if (out.h < 1 || out.w < 1) {
    throw new ZeroqError('cfg-shape', `${what} does not fit the ${input.w}x${input.h} input of [${sec.name}]`, sec.where());
  }
}

/** Resolves darknet layer references (negative: relative to `index`) to absolute indices before `index`. */
function references(sec: CfgSection, key: string, index: number): number[] {
  return sec.required<number[]>(key).map((r) => {
    const abs = r < 0 ? index + r : r;
    if (abs < 0 || abs >= index) {
      const what = r < 0 ? `${r} (layer ${abs})` : `${r}`;
      throw new ZeroqError(
        'cfg-bad-reference',
        `${key}=${what} in [${sec.name}] (layer ${index}) does not name an earlier layer (0..${index - 1})`,
        sec.where(key),
      );
    }
    return abs;
  });
}

class NetworkBuilder {
  readonly layers: Layer[] = [];

  constructor(readonly input: Shape) {}

  shapeOf(i: number): Shape {
    return i === -1 ? this.input : this.layers[i].out;
  }

  add(sec: CfgSection): void {
    const index = this.layers.length;
    const prev = index - 1;
    const inShape = this.shapeOf(prev);
    const source = sec.where();
    switch (sec.kind) {
      case 'convolutional':
        this.layers.push(this.conv(sec, index, inShape, source));
        return;
      case 'maxpool': {
        const s = stride(sec);
        const size = sec.int('size', s);
        const padding = sec.int('padding', size - 1);
        const out = maxPoolOutShape(inShape, size, s, padding);
        checkNotEmpty(sec, inShape, out, `a ${size}x${size} window with padding ${padding}`);
        const layer: MaxPoolLayer = { kind: 'maxpool', index, inputs: [prev], out, source, size, stride: s, padding };
        this.layers.push(layer);
        return;
      }
      case 'route':
        this.layers.push(this.route(sec, index, source));
        return;
      case 'shortcut':
        this.layers.push(this.shortcut(sec, index, inShape, source));
        return;
      case 'upsample': {
        const s = sec.int('stride', 2);
        this.layers.push({ kind: 'upsample', index, inputs: [prev], out: upsampleOutShape(inShape, s), source, stride: s });
        return;
      }
      case 'dropout':
        this.layers.push({ kind: 'dropout', index, inputs: [prev], out: inShape, source, probability: sec.float('probability', 0.2) });
        return;
      case 'yolo':
        this.layers.push(this.yolo(sec, index, inShape, source));
        return;
      case 'net':
        throw new ZeroqError('cfg-structure', `a second [${sec.name}] section`, source);
    }
  }

  private conv(sec: CfgSection, index: number, inShape: Shape, source: string): ConvLayer {
    const filters = sec.int('filters', 1);
    const size = sec.int('size', 1);
    const s = stride(sec);
    const dilation = size === 1 ? 1 : sec.int('dilation', 1);
    if (dilation !== 1) {
      throw new ZeroqError('cfg-unsupported', `dilation=${dilation} in [${sec.name}] is not supported`, sec.where('dilation'));
    }
    const pad = sec.flag('pad', false) ? Math.floor(size / 2) : sec.int('padding', 0);
    const groups = sec.int('groups', 1);
    if (inShape.c % groups !== 0 || filters % groups !== 0) {
      throw new ZeroqError(
        'cfg-shape',
        `groups=${groups} in [${sec.name}] must divide both the input channels (${inShape.c}) and filters (${filters})`,
        sec.where('groups'),
      );
    }
    const out = convOutShape(inShape, filters, size, s, pad);
    checkNotEmpty(sec, inShape, out, `a ${size}x${size} kernel with padding ${pad}`);
    return {
      kind: 'conv',
      index,
      inputs: [index - 1],
      out,
      source,
      filters,
      size,
      stride: s,
      pad,
      groups,
      activation: activation(sec, 'logistic'),
      batchNormalize: sec.flag('batch_normalize', false),
    };
  }

  private route(sec: CfgSection, index: number, source: string): RouteLayer {
    const inputs = references(sec, 'layers', index);
    const groups = sec.int('groups', 1);
    const groupId = sec.int('group_id', 0);
    if (groupId >= groups) {
      throw new ZeroqError('cfg-bad-value', `group_id=${groupId} in [${sec.name}] must be below groups=${groups}`, sec.where('group_id'));
    }
    const shapes = inputs.map((i) => this.shapeOf(i));
    inputs.forEach((i, k) => {
      const s = shapes[k];
      if (s.h !== shapes[0].h || s.w !== shapes[0].w) {
        throw new ZeroqError(
          'cfg-shape',
          `[${sec.name}] inputs differ in size: layer ${inputs[0]} is ${shapeString(shapes[0])}, layer ${i} is ${shapeString(s)}`,
          sec.where('layers'),
        );
      }
      if (s.c % groups !== 0) {
        throw new ZeroqError('cfg-shape', `groups=${groups} in [${sec.name}] does not divide the ${s.c} channels of layer ${i}`, sec.where('groups'));
      }
    });
    return { kind: 'route', index, inputs, out: routeOutShape(shapes, groups), source, groups, groupId };
  }

  private shortcut(sec: CfgSection, index: number, inShape: Shape, source: string): ShortcutLayer {
    const from = references(sec, 'from', index);
    if (index === 0) throw new ZeroqError('cfg-structure', `[${sec.name}] cannot be the first layer`, source);
    for (const i of from) {
      const s = this.shapeOf(i);
      if (s.c !== inShape.c || s.h !== inShape.h || s.w !== inShape.w) {
        throw new ZeroqError(
          'cfg-shape',
          `[${sec.name}] adds layer ${i} (${shapeString(s)}) to layer ${index - 1} (${shapeString(inShape)}): shapes differ`,
          sec.where('from'),
        );
      }
    }
    return { kind: 'shortcut', index, inputs: [index - 1, ...from], out: inShape, source, activation: activation(sec, 'linear') };
  }

  private yolo(sec: CfgSection, index: number, inShape: Shape, source: string): YoloLayer {
    const classes = sec.int('classes', 20);
    const num = sec.int('num', 1);
    const mask = sec.list('mask') ?? Array.from({ length: Math.min(num, LIMITS.anchors + 1) }, (_, i) => i);
    const anchors = sec.required<number[]>('anchors');
    const problem = yoloProblem({ classes, num, mask, anchors, inC: inShape.c, inName: `layer ${index - 1}` });
    if (problem) {
      const input = problem.field === 'input';
      throw new ZeroqError(input ? 'cfg-shape' : 'cfg-bad-value', `[${sec.name}] ${problem.message}`, input ? source : sec.where(problem.field));
    }
    return {
      kind: 'yolo',
      index,
      inputs: [index - 1],
      out: inShape,
      source,
      classes,
      anchors: anchors.slice(0, 2 * num),
      mask,
      scaleXY: sec.float('scale_x_y', 1),
      newCoords: sec.flag('new_coords', false),
      nmsKind: sec.word('nms_kind', 'default') as NmsKind,
      betaNms: sec.float('beta_nms', 0.6),
    };
  }
}

/** Parses cfg text. `file` names the file in errors and layer sources; the network is named after it. */
export function parseCfg(text: string, file: string, options: CfgOptions = {}): Network {
  const sections = readCfgSections(text, file);
  if (sections.length === 0) throw new ZeroqError('cfg-structure', 'no sections', file);
  const net = sections[0];
  if (net.kind !== 'net') throw new ZeroqError('cfg-structure', `the first section must be [net], not [${net.name}]`, net.where());
  const dim = (key: string, override?: number): number => {
    const v = override ?? net.int(key, 0);
    if (v < 1) throw new ZeroqError('cfg-missing-option', `[${net.name}] needs option '${key}'`, net.where());
    return v;
  };
  const input: Shape = { c: dim('channels'), h: dim('height', options.height), w: dim('width', options.width) };
  const big = inputProblem(input);
  if (big) throw new ZeroqError(big.kind === 'limit' ? 'cfg-limit' : 'cfg-bad-value', big.message, net.where());
  if (sections.length === 1) throw new ZeroqError('cfg-structure', 'no layers after [net]', file);
  if (sections.length - 1 > LIMITS.layers) throw new ZeroqError('cfg-limit', `${sections.length - 1} layers, more than the limit of ${LIMITS.layers}`, file);
  const builder = new NetworkBuilder(input);
  for (const sec of sections.slice(1)) builder.add(sec);
  const layers = builder.layers;
  const network: Network = {
    name: path.basename(file).replace(/\.cfg$/i, ''),
    input,
    letterbox: net.flag('letter_box', false),
    layers,
    heads: layers.filter((l) => l.kind === 'yolo').map((l) => l.index),
  };
  // The rules every network obeys (the .zqw reader checks the same), and the size limits.
  const problem = networkProblem(network);
  if (problem) {
    throw new ZeroqError(problem.kind === 'limit' ? 'cfg-limit' : 'cfg-shape', problem.message, problem.layer?.source ?? problemWhere(problem, file));
  }
  return network;
}

/** Reads and parses a .cfg file; errors and layer sources name it by its base name. */
export function parseCfgFile(file: string, options: CfgOptions = {}): Network {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ZeroqError('cfg-read', `cannot read the cfg file: ${(e as Error).message}`, file, { cause: e });
  }
  return parseCfg(text, path.basename(file), options);
}
