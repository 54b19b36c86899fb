/**
 * The network IR: what every importer produces and every engine consumes.
 *
 * Layers are numbered as darknet numbers its cfg sections (0 = first section after [net]).
 * `inputs` always holds absolute layer indices; -1 means the network input.
 * Tensors are CHW per image (batch 1); `out` is the layer's output shape.
 */

export type Activation = 'linear' | 'leaky' | 'relu' | 'mish' | 'swish' | 'logistic';

export interface Shape {
  c: number;
  h: number;
  w: number;
}

interface LayerBase {
  index: number;
  /** Absolute indices of the layers read by this one; -1 is the network input. */
  inputs: number[];
  out: Shape;
  /** Where the layer came from (e.g. "yolo-fastest-1.1.cfg:42"), for error messages. */
  source?: string;
}

/** Convolution with batch norm already folded into weight and bias. */
export interface ConvLayer extends LayerBase {
  kind: 'conv';
  filters: number;
  size: number;
  stride: number;
  /** Zero padding on each side, in pixels (darknet: pad=1 means size/2; else `padding`). */
  pad: number;
  groups: number;
  activation: Activation;
  /** True when the cfg had batch_normalize=1 (the loaded weights are folded either way). */
  batchNormalize: boolean;
}

/**
 * darknet max-pool: out = floor((in + padding - size) / stride) + 1, window origin at
 * out*stride - floor(padding/2); positions outside the input are ignored (-inf).
 */
export interface MaxPoolLayer extends LayerBase {
  kind: 'maxpool';
  size: number;
  stride: number;
  /** Total padding (darknet's `padding`, default size-1). */
  padding: number;
}

/**
 * Concatenation along channels of the inputs; with groups > 1 each input contributes only its
 * channel slice number groupId of `groups` equal slices.
 */
export interface RouteLayer extends LayerBase {
  kind: 'route';
  groups: number;
  groupId: number;
}

/** Element-wise sum of inputs[0] (the previous layer) and the `from` layers, then activation. */
export interface ShortcutLayer extends LayerBase {
  kind: 'shortcut';
  activation: Activation;
}

/** Nearest-neighbour upsampling by an integer factor. */
export interface UpsampleLayer extends LayerBase {
  kind: 'upsample';
  stride: number;
}

/** Identity at inference time. */
export interface DropoutLayer extends LayerBase {
  kind: 'dropout';
  probability: number;
}

export type NmsKind = 'default' | 'greedynms' | 'diounms' | 'cornersnms';

/** A detection head: decodes the tensor of its input layer (no arithmetic inside the engine). */
export interface YoloLayer extends LayerBase {
  kind: 'yolo';
  classes: number;
  /** All anchors of the cfg, [w0, h0, w1, h1, ...] in network-input pixels. */
  anchors: number[];
  /** Indices of the anchor pairs this head uses. */
  mask: number[];
  scaleXY: number;
  newCoords: boolean;
  nmsKind: NmsKind;
  betaNms: number;
}

export type Layer =
  | ConvLayer
  | MaxPoolLayer
  | RouteLayer
  | ShortcutLayer
  | UpsampleLayer
  | DropoutLayer
  | YoloLayer;

export type LayerKind = Layer['kind'];

export interface Network {
  /** Short name, e.g. "yolo-fastest-1.1" (the cfg's base name). */
  name: string;
  input: Shape;
  /** darknet [net] letter_box=1: resize keeping aspect ratio and pad. */
  letterbox: boolean;
  layers: Layer[];
  /** Indices of the yolo layers, in cfg order. */
  heads: number[];
}

/** Folded float parameters of one conv layer: weight OIHW [filters][c/groups][size][size]. */
export interface ConvParams {
  weight: Float32Array;
  bias: Float32Array;
}

/** A network with its float parameters, indexed by layer (undefined for layers without any). */
export interface FloatModel {
  net: Network;
  params: (ConvParams | undefined)[];
}

/** The input shape of a conv layer, from its producer. */
export function inputShape(net: Network, layer: Layer): Shape {
  const i = layer.inputs[0];
  return i === -1 ? net.input : net.layers[i].out;
}

/** Number of weights of a conv layer. */
export function convWeightCount(net: Network, layer: ConvLayer): number {
  const inC = inputShape(net, layer).c;
  return layer.filters * (inC / layer.groups) * layer.size * layer.size;
}
