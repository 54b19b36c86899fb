/**
 * Validation AP of an integer network: the quantized forward pass (bit-exact with the integer
 * engine), darknet's `detector valid` post-processing (threshold 0.001, its NMS at 0.6, the 100 best
 * per image) and the COCO evaluator, on a list disjoint from the evaluation images.
 */
import type { Network } from '../model/ir.js';
import type { QNet } from '../qnet/types.js';
import { decodeHeads } from '../detect/decode.js';
import { COCO_CATEGORY_IDS } from '../detect/names.js';
import { evaluateCoco, type CocoResult, type GroundTruth } from '../eval/coco.js';
import type { HeadTensor } from '../engine/engine.js';
import { fromQNet } from './formats.js';
import { headValues, quantForward } from './sim.js';
import { frameBatch, imageIdOf, type FrameSet } from './data.js';

export const VALID_DECODE = { threshold: 0.001, nms: 0.6, maxDetections: 100 };

export function validationAp(qnet: QNet, frames: FrameSet, gt: GroundTruth, threads: number, batch = 8): { ap: number; ap50: number } {
  const net: Network = qnet.net;
  const q = fromQNet(qnet);
  const results: CocoResult[] = [];
  const N = frames.paths.length;
  for (let b0 = 0; b0 < N; b0 += batch) {
    const n = Math.min(batch, N - b0);
    const tape = quantForward(net, q, frameBatch(frames, b0, n), threads);
    const heads = headValues(net, q, tape);
    for (let b = 0; b < n; b++) {
      const k = b0 + b;
      const ht: HeadTensor[] = net.heads.map((h, i) => {
        const s = net.layers[net.layers[h].inputs[0]].out;
        const len = s.c * s.h * s.w;
        return { layer: h, c: s.c, h: s.h, w: s.w, data: heads[i].subarray(b * len, (b + 1) * len) };
      });
      const { width, height } = frames.sizes[k];
      const id = imageIdOf(frames.paths[k]);
      for (const d of decodeHeads(ht, net, width, height, VALID_DECODE)) {
        results.push({ image_id: id, category_id: COCO_CATEGORY_IDS[d.classId], bbox: [d.box.x, d.box.y, d.box.w, d.box.h], score: d.score });
      }
    }
  }
  const ev = evaluateCoco(gt, results, { imageIds: frames.paths.map(imageIdOf) });
  return { ap: ev.stats.AP, ap50: ev.stats.AP50 };
}
