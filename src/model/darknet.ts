/**
 * Loads a darknet model (.cfg + .weights) as a FloatModel: the network IR with batch norm folded
 * into every convolution.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ZeroqError } from '../util/errors.js';
import type { FloatModel } from './ir.js';
import { parseCfgFile, type CfgOptions } from './darknet-cfg.js';
import { foldBatchNorm, readDarknetWeights, type WeightsHeader } from './darknet-weights.js';

export { parseCfg, parseCfgFile, type CfgOptions } from './darknet-cfg.js';
export { foldBatchNorm, readDarknetWeights, weightsFileBytes, type RawConvWeights, type RawDarknetWeights } from './darknet-weights.js';

/** The weights file that goes with a cfg by default: same path, .weights instead of .cfg. */
export function defaultWeightsPath(cfgPath: string): string {
  const ext = path.extname(cfgPath);
  return (ext.toLowerCase() === '.cfg' ? cfgPath.slice(0, -ext.length) : cfgPath) + '.weights';
}

export interface LoadedDarknet extends FloatModel {
  header: WeightsHeader;
  weightsPath: string;
  weightsBytes: number;
}

/**
 * Loads a cfg and its weights (default: the cfg's path with .weights, which must exist), checks that
 * the file size matches the cfg exactly and folds batch norm.
 */
export async function loadDarknet(cfgPath: string, weightsPath?: string, options: CfgOptions = {}): Promise<LoadedDarknet> {
  const net = parseCfgFile(cfgPath, options);
  let file = weightsPath;
  if (file === undefined) {
    file = defaultWeightsPath(cfgPath);
    if (!existsSync(file)) {
      throw new ZeroqError('weights-missing', `no weights given and ${file} does not exist (pass the weights file explicitly)`, cfgPath);
    }
  }
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (e) {
    throw new ZeroqError('weights-read', `cannot read the weights file: ${(e as Error).message}`, file, { cause: e });
  }
  const raw = readDarknetWeights(net, data, path.basename(file));
  return {
    net,
    params: raw.layers.map((l, i) => (l ? foldBatchNorm(l, `${path.basename(file)}: layer ${i}${net.layers[i].source ? ` (${net.layers[i].source})` : ''}`) : undefined)),
    header: raw.header,
    weightsPath: file,
    weightsBytes: data.byteLength,
  };
}
