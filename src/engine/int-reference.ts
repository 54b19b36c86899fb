import type { QNet } from '../qnet/types.js';
import { ZeroqError } from '../util/errors.js';
import type { Engine, Frame, HeadTensor } from './engine.js';
import type { ITensor } from './int/tensor.js';
import { convReference } from './int/conv.js';
import { frameTensor, headTensor } from './int/heads.js';
import { maxpoolReference } from './int/maxpool.js';
import { routeReference } from './int/route.js';
import { shortcutReference } from './int/shortcut.js';
import { upsampleReference } from './int/upsample.js';
import { inputFormat, layerWhere, validateQNet } from '../qnet/validate.js';

/**
 * The readable reference of the CPU integer path (docs/formats/fixed-point.md): plain loops over CHW
 * integer tensors, one function per layer kind. The fast kernels are tested against it bit for bit.
 */
export interface ReferenceResult {
  /** Every layer's output integers (a yolo layer's entry is its input tensor). */
  outputs: ITensor[];
  heads: HeadTensor[];
}

export function runReference(qnet: QNet, frame: Frame, validated = false): ReferenceResult {
  if (!validated) validateQNet(qnet);
  const { net } = qnet;
  const input = frameTensor(net, frame);
  const outputs: ITensor[] = [];
  const get = (i: number): ITensor => (i === -1 ? input : outputs[i]);
  for (const layer of net.layers) {
    const fmt = qnet.formats[layer.index];
    const ins = layer.inputs.map(get);
    const fmts = layer.inputs.map((i) => inputFormat(qnet, i));
    switch (layer.kind) {
      case 'conv':
        outputs.push(convReference(layer, qnet.convs[layer.index]!, ins[0], fmts[0], fmt));
        break;
      case 'maxpool':
        outputs.push(maxpoolReference(layer, ins[0]));
        break;
      case 'route':
        outputs.push(routeReference(layer, ins, fmts, fmt));
        break;
      case 'shortcut':
        outputs.push(shortcutReference(layer, ins, fmts, fmt));
        break;
      case 'upsample':
        outputs.push(upsampleReference(layer, ins[0]));
        break;
      case 'dropout':
      case 'yolo':
        outputs.push(ins[0]);
        break;
      default:
        throw new ZeroqError('QNET_LAYER', `unknown layer kind`, layerWhere(layer));
    }
  }
  const heads = net.heads.map((h) => headTensor(qnet, h, Int32Array.from(outputs[h].data)));
  return { outputs, heads };
}

/** The reference as an Engine: slow, for tests and as the fallback when the native kernels are missing. */
export class IntReferenceEngine implements Engine {
  readonly kind = 'int' as const;
  readonly net;
  readonly modelId: string;
  constructor(private readonly qnet: QNet, modelId?: string) {
    validateQNet(qnet);
    this.net = qnet.net;
    this.modelId = modelId ?? qnet.net.name;
  }
  infer(frame: Frame): Promise<HeadTensor[]> {
    return Promise.resolve(runReference(this.qnet, frame, true).heads);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
