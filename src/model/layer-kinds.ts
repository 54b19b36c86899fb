/**
 * One descriptor per layer kind: its shape rule, where its integer reference and native kernel
 * live, and whether each part of zeroq that handles networks supports a given layer of that kind
 * (with the reason when it does not). The quantizer and the trainer refuse layers from here, and
 * `zeroq inspect --json` reports it, so support cannot differ silently between them.
 */
import type { Activation, ConvLayer, Layer, LayerKind, Shape, ShortcutLayer } from './ir.js';
import { convOutShape, maxPoolOutShape, routeOutShape, upsampleOutShape } from './shapes.js';

/** The parts of zeroq that run or transform a network. */
export type Consumer = 'float' | 'int' | 'quantizer' | 'trainer';
export const CONSUMERS: readonly Consumer[] = ['float', 'int', 'quantizer', 'trainer'];

/** true, or why the layer is refused. */
export type Support = true | string;

export interface LayerKindDescriptor<L extends Layer = Layer> {
  kind: L['kind'];
  /** darknet's rule for the output shape, from the input shapes. */
  outShape(layer: L, inputs: Shape[]): Shape;
  /** The readable integer reference (src/engine/int/) and the native kernel (src/kernels/). */
  reference: string;
  native: string;
  support(layer: L): Record<Consumer, Support>;
}

/** Activations with an exact integer form (no table); the others go through a look-up table. */
const PLAIN: readonly Activation[] = ['linear', 'leaky', 'relu'];
const LUT: readonly Activation[] = ['mish', 'swish', 'logistic'];

const all = (): Record<Consumer, Support> => ({ float: true, int: true, quantizer: true, trainer: true });

const conv: LayerKindDescriptor<ConvLayer> = {
  kind: 'conv',
  outShape: (l, [i]) => convOutShape(i, l.filters, l.size, l.stride, l.pad),
  reference: 'src/engine/int/conv.ts convReference',
  native: 'src/kernels/ gemm (groups with channel counts of multiples of 4, 1x1 and kxk), depthwise, scalar fallback',
  support(l) {
    const s = all();
    if (LUT.includes(l.activation)) {
      // The int engine runs a table the weight set carries; nothing builds one yet.
      s.quantizer = `activation ${l.activation} needs a look-up table (docs/formats/fixed-point.md), which the quantizer does not build yet`;
      s.trainer = `activation ${l.activation}: the trainer has only leaky and linear (and no look-up tables)`;
    } else if (l.activation === 'relu') {
      s.trainer = 'activation relu: the trainer has only leaky and linear';
    }
    return s;
  },
};

const shortcut: LayerKindDescriptor<ShortcutLayer> = {
  kind: 'shortcut',
  outShape: (l) => l.out,
  reference: 'src/engine/int/shortcut.ts shortcutReference',
  native: 'src/kernels/ shortcut (fused into the producing conv on AVX-512)',
  support(l) {
    const s = all();
    if (!PLAIN.includes(l.activation)) {
      const why = `shortcut activation ${l.activation}: only linear, leaky and relu have an integer form`;
      s.int = why;
      s.quantizer = why;
    }
    if (l.activation !== 'linear') s.trainer = `shortcut activation ${l.activation}: the trainer has only linear shortcuts`;
    return s;
  },
};

const DESCRIPTORS: { [K in LayerKind]: LayerKindDescriptor<Extract<Layer, { kind: K }>> } = {
  conv,
  shortcut,
  maxpool: {
    kind: 'maxpool',
    outShape: (l, [i]) => maxPoolOutShape(i, l.size, l.stride, l.padding),
    reference: 'src/engine/int/maxpool.ts maxpoolReference',
    native: 'src/kernels/ maxpool (separable, two passes)',
    support: all,
  },
  route: {
    kind: 'route',
    outShape: (l, ins) => routeOutShape(ins, l.groups),
    reference: 'src/engine/int/route.ts routeReference',
    native: 'src/kernels/ route (format conversion and copy)',
    support: all,
  },
  upsample: {
    kind: 'upsample',
    outShape: (l, [i]) => upsampleOutShape(i, l.stride),
    reference: 'src/engine/int/upsample.ts upsampleReference',
    native: 'src/kernels/ upsample',
    support: all,
  },
  dropout: {
    kind: 'dropout',
    outShape: (_l, [i]) => i,
    reference: 'identity (an alias of its input)',
    native: 'alias',
    support: all,
  },
  yolo: {
    kind: 'yolo',
    outShape: (_l, [i]) => i,
    reference: 'src/engine/int/heads.ts (the input tensor handed out as a head)',
    native: 'alias; heads converted to floats in the epilogue',
    support: all,
  },
};

export function layerKind<L extends Layer>(layer: L): LayerKindDescriptor<L> {
  return DESCRIPTORS[layer.kind] as unknown as LayerKindDescriptor<L>;
}

export function layerSupport(layer: Layer): Record<Consumer, Support> {
  return layerKind(layer).support(layer);
}

/** "layer 12 (conv, yolov4.cfg:88)". */
function layerName(l: Layer): string {
  return `layer ${l.index} (${l.kind}${l.source ? `, ${l.source}` : ''})`;
}

/** The layers a consumer refuses, with why (empty: it takes the whole network). */
export function unsupportedLayers(layers: readonly Layer[], consumer: Consumer): { layer: Layer; why: string }[] {
  const out: { layer: Layer; why: string }[] = [];
  for (const l of layers) {
    const s = layerSupport(l)[consumer];
    if (s !== true) out.push({ layer: l, why: s });
  }
  return out;
}

/** One line naming the first refused layer and how many more there are. */
export function unsupportedMessage(bad: { layer: Layer; why: string }[]): string {
  const first = `${layerName(bad[0].layer)}: ${bad[0].why}`;
  return bad.length > 1 ? `${first} (and ${bad.length - 1} more layer${bad.length > 2 ? 's' : ''}; zeroq inspect --json lists them)` : first;
}
