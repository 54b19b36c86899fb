/**
 * Accuracy of a quantized (or float) network on an image list: run an engine over the images,
 * decode as darknet `detector valid` does, score with the COCO evaluator. Used to choose the
 * quantizer's defaults (on calibration images) and by the accuracy sweep (scripts/bench-accuracy.ts).
 */
import type { Engine, Frame } from '../engine/engine.js';
import { openIntEngine } from '../engine/int.js';
import { prepareFrame } from '../detect/preprocess.js';
import type { Network } from '../model/ir.js';
import { evaluateCoco, type CocoStats, type GroundTruth } from './coco.js';
import type { ListedImage } from './dataset.js';
import { runModel } from './run-model.js';
import type { QNet } from '../qnet/types.js';

export interface ScoredSet {
  images: readonly ListedImage[];
  gt: GroundTruth;
}

/** Decodes and resizes the images of a list for a network (in order). */
export async function loadFrames(images: readonly ListedImage[], net: Network, onImage?: (done: number) => void): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (const im of images) {
    frames.push((await prepareFrame(im.path, net)).frame);
    onImage?.(frames.length);
  }
  return frames;
}

/** COCO figures (fractions) of an engine on a set. */
export async function scoreEngine(engine: Engine, set: ScoredSet, onImage?: (done: number, total: number) => void): Promise<CocoStats> {
  const run = await runModel(engine, set.images, { onImage });
  return evaluateCoco(set.gt, run.results, { imageIds: set.images.map((im) => im.id) }).stats;
}

/** COCO figures of a QNet run by the integer engine. */
export async function scoreQNet(qnet: QNet, set: ScoredSet, threads = 1, onImage?: (done: number, total: number) => void): Promise<CocoStats> {
  const engine = openIntEngine(qnet, { threads });
  try {
    return await scoreEngine(engine, set, onImage);
  } finally {
    await engine.close();
  }
}
