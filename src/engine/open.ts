/**
 * One entry point to get an engine of a given kind from a model path.
 */
import { ZeroqError } from '../util/errors.js';
import type { Engine, EngineKind, EngineOptions } from './engine.js';

/** float: `model` is a darknet .cfg (weights beside it with .weights, or opts.weights). */
async function openFloat(model: string, opts: EngineOptions): Promise<Engine> {
  const { loadDarknet } = await import('../model/darknet.js');
  const { FloatEngine } = await import('./float.js');
  const loaded = await loadDarknet(model, opts.weights);
  return FloatEngine.create(loaded, { ...opts, modelId: loaded.net.name });
}

/** int: `model` is a .zqw weight set, run by the native integer kernels (or the JS reference). */
async function openInt(model: string, opts: EngineOptions): Promise<Engine> {
  if (!/\.zqw$/i.test(model)) {
    throw new ZeroqError('engine-model', 'the int engine runs a .zqw weight set (make one with: zeroq quantize <cfg>)', model);
  }
  const { readZqw } = await import('../qnet/zqw.js');
  const { openIntEngine } = await import('./int.js');
  const { qnet, manifest } = await readZqw(model, { trust: opts.trust });
  return openIntEngine(qnet, { ...opts, modelId: manifest.id });
}

export async function openEngine(kind: EngineKind, model: string, opts: EngineOptions = {}): Promise<Engine> {
  switch (kind) {
    case 'float':
      return openFloat(model, opts);
    case 'int':
      return openInt(model, opts);
    case 'fpga':
      throw new ZeroqError('engine-unavailable', 'fpga engine not available', model);
    default:
      throw new ZeroqError('engine-unavailable', `unknown engine kind "${String(kind)}"`, model);
  }
}
