// The flags of `zeroq retrain` as commander hands them over with its defaults (src/commands/retrain.ts),
// training on calib.txt, with any of them replaced.
import type { RetrainFlags } from '../../src/commands/retrain.js';
import { dataPath } from '../../src/util/paths.js';

export function retrainFlags(over: Partial<RetrainFlags> = {}): RetrainFlags {
  return {
    abits: 8, labelWeight: 1, seed: 1, batch: 8, lrUnit: 'absolute', distill: 'objectness', zeroCenter: true, headAbits: 16,
    actCalib: 'search', percentile: 99.99, biasCorrection: true, equalize: true, searchObjective: 'exact', calibImages: 32, threads: 1,
    data: dataPath('coco-val', 'calib.txt'),
    ...over,
  };
}
