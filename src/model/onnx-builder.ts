/**
 * Network IR + folded float parameters → an ONNX model (opset 13) that computes what darknet
 * computes. Every layer's result is a tensor named `layer_<index>` (see layerTensorName); the graph
 * outputs are the tensors feeding the yolo layers, or every layer's output with allOutputs.
 */
import { endianness } from 'node:os';
import type { Activation, ConvLayer, FloatModel, Layer, MaxPoolLayer, Network, RouteLayer, Shape, ShortcutLayer, UpsampleLayer } from './ir.js';
import { convWeightCount, inputShape } from './ir.js';
import { ZeroqError } from '../util/errors.js';
import { AttributeType, DataType, encodeModel, type Attribute, type NodeMsg, type TensorMsg, type ValueInfoMsg } from './onnx-proto.js';

export const OPSET = 13;
const IR_VERSION = 7;
export const INPUT_NAME = 'input';

export interface BuildOnnxOptions {
  /** Expose the output of every layer (except yolo layers, which compute nothing) as a graph output. */
  allOutputs?: boolean;
}

/** The tensor holding layer i's output (-1: the network input). */
export function layerTensorName(i: number): string {
  return i === -1 ? INPUT_NAME : `layer_${i}`;
}

/** Graph output name of each head, in net.heads order: the tensor feeding that yolo layer. */
export function headOutputNames(net: Network): string[] {
  return net.heads.map((h) => layerTensorName(net.layers[h].inputs[0]));
}

/** Indices of the layers whose outputs buildOnnx exposes with allOutputs. */
export function exposedLayers(net: Network): number[] {
  return net.layers.filter((l) => l.kind !== 'yolo').map((l) => l.index);
}

function where(layer: Layer): string {
  return layer.source ?? `layer ${layer.index} (${layer.kind})`;
}

function ints(name: string, values: number[]): Attribute {
  return { name, type: AttributeType.INTS, ints: values };
}
function int(name: string, value: number): Attribute {
  return { name, type: AttributeType.INT, i: value };
}
function float(name: string, value: number): Attribute {
  return { name, type: AttributeType.FLOAT, f: value };
}
function str(name: string, value: string): Attribute {
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
}

function floatBytes(data: Float32Array): Uint8Array {
  if (endianness() === 'LE') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  return out;
}

function valueInfo(name: string, s: Shape): ValueInfoMsg {
  return {
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [1, s.c, s.h, s.w].map((d) => ({ dimValue: d })) } } },
  };
}

class GraphBuilder {
  readonly nodes: NodeMsg[] = [];
  readonly initializers: TensorMsg[] = [];
  private readonly constants = new Map<string, string>();

  node(opType: string, input: string[], output: string, attribute: Attribute[] = []): string {
    this.nodes.push({ opType, input, output: [output], name: `${output}_${opType}`, attribute });
    return output;
  }

  floatTensor(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, rawData: floatBytes(data) });
    return name;
  }

  /** A shared int64 constant (Slice bounds etc.). */
  int64Const(values: number[]): string {
    const key = `i64_${values.join('_').replace(/-/g, 'm')}`;
    if (!this.constants.has(key)) {
      this.initializers.push({ name: key, dims: [values.length], dataType: DataType.INT64, int64Data: values });
      this.constants.set(key, key);
    }
    return key;
  }

  floatConst(name: string, values: number[]): string {
    if (!this.constants.has(name)) {
      this.floatTensor(name, [values.length], Float32Array.from(values));
      this.constants.set(name, name);
    }
    return name;
  }

  /** Applies a darknet activation to x, writing the result to `out`. */
  activation(x: string, act: Activation, out: string): string {
    switch (act) {
      case 'linear':
        return this.node('Identity', [x], out);
      case 'leaky':
        return this.node('LeakyRelu', [x], out, [float('alpha', 0.1)]);
      case 'relu':
        return this.node('Relu', [x], out);
      case 'logistic':
        return this.node('Sigmoid', [x], out);
      case 'swish':
        return this.node('Mul', [x, this.node('Sigmoid', [x], `${out}_sigmoid`)], out);
      case 'mish': {
        // darknet thresholds its softplus at ±20 (x, resp. exp(x)); onnxruntime's Softplus is the
        // numerically stable form, equal to that within float rounding, so no Where is needed.
        const sp = this.node('Softplus', [x], `${out}_softplus`);
        return this.node('Mul', [x, this.node('Tanh', [sp], `${out}_tanh`)], out);
      }
    }
  }
}

function addConv(g: GraphBuilder, model: FloatModel, layer: ConvLayer): void {
  const net = model.net;
  const inC = inputShape(net, layer).c;
  if (inC % layer.groups !== 0 || layer.filters % layer.groups !== 0) {
    throw new ZeroqError('onnx-shape', `groups=${layer.groups} does not divide ${inC} input channels and ${layer.filters} filters`, where(layer));
  }
  const p = model.params[layer.index];
  if (!p) throw new ZeroqError('onnx-params', 'convolution without parameters', where(layer));
  const count = convWeightCount(net, layer);
  if (p.weight.length !== count || p.bias.length !== layer.filters) {
    throw new ZeroqError(
      'onnx-params',
      `expected ${count} weights and ${layer.filters} biases, got ${p.weight.length} and ${p.bias.length}`,
      where(layer),
    );
  }
  const name = layerTensorName(layer.index);
  const w = g.floatTensor(`${name}_weight`, [layer.filters, inC / layer.groups, layer.size, layer.size], p.weight);
  const b = g.floatTensor(`${name}_bias`, [layer.filters], p.bias);
  const out = layer.activation === 'linear' ? name : `${name}_conv`;
  g.node('Conv', [layerTensorName(layer.inputs[0]), w, b], out, [
    ints('kernel_shape', [layer.size, layer.size]),
    ints('strides', [layer.stride, layer.stride]),
    ints('pads', [layer.pad, layer.pad, layer.pad, layer.pad]),
    ints('dilations', [1, 1]),
    int('group', layer.groups),
  ]);
  if (layer.activation !== 'linear') g.activation(out, layer.activation, name);
}

/**
 * darknet's window for output o starts at o*stride - floor(padding/2) and positions outside the
 * input never win the max; ONNX MaxPool ignores its pads the same way, so the darknet pool is a
 * MaxPool with pads floor(padding/2) before and the rest of `padding` after.
 */
function addMaxPool(g: GraphBuilder, net: Network, layer: MaxPoolLayer): void {
  const name = layerTensorName(layer.index);
  const input = inputShape(net, layer);
  const before = Math.floor(layer.padding / 2);
  const after = layer.padding - before;
  const outH = Math.floor((input.h + layer.padding - layer.size) / layer.stride) + 1;
  const outW = Math.floor((input.w + layer.padding - layer.size) / layer.stride) + 1;
  if (outH !== layer.out.h || outW !== layer.out.w) {
    throw new ZeroqError('onnx-shape', `max-pool output ${layer.out.w}x${layer.out.h}, darknet's rule gives ${outW}x${outH}`, where(layer));
  }
  let x = layerTensorName(layer.inputs[0]);
  let pads = [before, before, after, after];
  if (before >= layer.size || after >= layer.size) {
    // onnxruntime refuses pads as large as the kernel: pad explicitly with -FLT_MAX instead.
    const padsConst = g.int64Const([0, 0, before, before, 0, 0, after, after]);
    x = g.node('Pad', [x, padsConst, g.floatConst('neg_flt_max', [-3.4028234663852886e38])], `${name}_pad`, [str('mode', 'constant')]);
    pads = [0, 0, 0, 0];
  }
  g.node('MaxPool', [x], name, [
    ints('kernel_shape', [layer.size, layer.size]),
    ints('strides', [layer.stride, layer.stride]),
    ints('pads', pads),
  ]);
}

function addRoute(g: GraphBuilder, net: Network, layer: RouteLayer): void {
  const name = layerTensorName(layer.index);
  const parts = layer.inputs.map((i, k) => {
    const src = layerTensorName(i);
    if (layer.groups <= 1) return src;
    const c = (i === -1 ? net.input : net.layers[i].out).c;
    if (c % layer.groups !== 0) {
      throw new ZeroqError('onnx-shape', `groups=${layer.groups} does not divide the ${c} channels of layer ${i}`, where(layer));
    }
    const size = c / layer.groups;
    const start = size * layer.groupId;
    return g.node('Slice', [src, g.int64Const([start]), g.int64Const([start + size]), g.int64Const([1])], `${name}_part${k}`);
  });
  const channels = layer.inputs.reduce((s, i) => s + (i === -1 ? net.input : net.layers[i].out).c / Math.max(1, layer.groups), 0);
  if (channels !== layer.out.c) {
    throw new ZeroqError('onnx-shape', `route output has ${layer.out.c} channels, its inputs give ${channels}`, where(layer));
  }
  if (parts.length === 1) g.node('Identity', parts, name);
  else g.node('Concat', parts, name, [int('axis', 1)]);
}

function addShortcut(g: GraphBuilder, net: Network, layer: ShortcutLayer): void {
  const name = layerTensorName(layer.index);
  for (const i of layer.inputs) {
    const s = i === -1 ? net.input : net.layers[i].out;
    if (s.c !== layer.out.c || s.h !== layer.out.h || s.w !== layer.out.w) {
      throw new ZeroqError(
        'onnx-shape',
        `shortcut of unequal shapes (layer ${i}: ${s.c}x${s.h}x${s.w}, output ${layer.out.c}x${layer.out.h}x${layer.out.w}) is not supported`,
        where(layer),
      );
    }
  }
  let sum = layerTensorName(layer.inputs[0]);
  for (let k = 1; k < layer.inputs.length; k++) {
    const last = k === layer.inputs.length - 1 && layer.activation === 'linear';
    sum = g.node('Add', [sum, layerTensorName(layer.inputs[k])], last ? name : `${name}_add${k}`);
  }
  if (layer.inputs.length === 1 || layer.activation !== 'linear') g.activation(sum, layer.activation, name);
}

function addUpsample(g: GraphBuilder, layer: UpsampleLayer): void {
  if (!Number.isInteger(layer.stride) || layer.stride < 1) {
    throw new ZeroqError('onnx-layer', `upsample stride ${layer.stride} is not a positive integer`, where(layer));
  }
  const s = layer.stride;
  // out[y][x] = in[floor(y/s)][floor(x/s)]: exactly darknet's nearest upsampling.
  g.node('Resize', [layerTensorName(layer.inputs[0]), '', g.floatConst(`scales_${s}`, [1, 1, s, s])], layerTensorName(layer.index), [
    str('mode', 'nearest'),
    str('coordinate_transformation_mode', 'asymmetric'),
    str('nearest_mode', 'floor'),
  ]);
}

/** Builds the ONNX ModelProto bytes of a float model. */
export function buildOnnx(model: FloatModel, opts: BuildOnnxOptions = {}): Uint8Array {
  const net = model.net;
  const g = new GraphBuilder();
  for (const layer of net.layers) {
    for (const i of layer.inputs) {
      if (i < -1 || i >= layer.index) {
        throw new ZeroqError('onnx-shape', `input ${i} is not an earlier layer`, where(layer));
      }
    }
    switch (layer.kind) {
      case 'conv':
        addConv(g, model, layer);
        break;
      case 'maxpool':
        addMaxPool(g, net, layer);
        break;
      case 'route':
        addRoute(g, net, layer);
        break;
      case 'shortcut':
        addShortcut(g, net, layer);
        break;
      case 'upsample':
        addUpsample(g, layer);
        break;
      case 'dropout':
        g.node('Identity', [layerTensorName(layer.inputs[0])], layerTensorName(layer.index));
        break;
      case 'yolo':
        break;
    }
  }

  const outputs = opts.allOutputs ? exposedLayers(net) : net.heads.map((h) => net.layers[h].inputs[0]);
  const seen = new Set<number>();
  const outputInfos: ValueInfoMsg[] = [];
  for (const i of outputs) {
    if (seen.has(i)) continue;
    seen.add(i);
    if (i === -1) throw new ZeroqError('onnx-shape', 'a yolo layer reads the network input directly');
    outputInfos.push(valueInfo(layerTensorName(i), net.layers[i].out));
  }

  return encodeModel({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'zeroq',
    graph: {
      name: net.name,
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(INPUT_NAME, net.input)],
      output: outputInfos,
    },
  });
}
