/** float: onnxruntime-node on the ONNX graph of a darknet model; the accuracy baseline. */
import { z } from 'zod';
import type { EngineModule } from '../registry.js';

export const floatEngine: EngineModule = {
  kind: 'float',
  summary: 'onnxruntime-node (32-bit float; the accuracy baseline)',
  modelFiles: 'a darknet .cfg (weights beside it as .weights)',
  opens: (model) => /\.cfg$/i.test(model),
  options: {
    /** darknet .weights (default: the cfg path with .weights). */
    weights: z.string().min(1).optional(),
    /** Let onnxruntime's workers spin between runs (its default). */
    spin: z.boolean().optional(),
  },
  flags: [{ flags: '--weights <file>', description: 'float: darknet .weights (default: beside the cfg)', key: 'weights' }],
  capabilities: { integer: false, threads: true },
  async open(model, opts) {
    // onnxruntime is loaded only when a float engine is opened: the int daemon does without it.
    const [{ loadDarknet }, { FloatEngine }] = await Promise.all([import('../../model/darknet.js'), import('../float.js')]);
    const loaded = await loadDarknet(model, opts.weights as string | undefined);
    return FloatEngine.create(loaded, { threads: opts.threads, spin: opts.spin as boolean | undefined, modelId: opts.modelId ?? loaded.net.name });
  },
};
