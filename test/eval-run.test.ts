import t from 'tap';
import { readFileSync } from 'node:fs';
import { openEngine } from '../src/engine/registry.js';
import type { Engine, Frame, HeadTensor } from '../src/engine/engine.js';
import type { Network } from '../src/model/ir.js';
import { boxIou } from '../src/detect/nms.js';
import { evaluateCoco, type CocoResult } from '../src/eval/coco.js';
import { loadEvalSet, type ListedImage } from '../src/eval/dataset.js';
import { runModel, type PreparedImage } from '../src/eval/run-model.js';
import { dataPath } from '../src/util/paths.js';

/** A one-head network (80 classes, 1 anchor, 2x2 grid) whose engine is driven by the test. */
function tinyNet(): Network {
  return {
    name: 'tiny',
    input: { c: 3, h: 64, w: 64 },
    letterbox: false,
    heads: [0],
    layers: [
      {
        kind: 'yolo', index: 0, inputs: [-1], out: { c: 85, h: 2, w: 2 },
        classes: 80, anchors: [32, 32], mask: [0], scaleXY: 1, newCoords: false, nmsKind: 'default', betaNms: 0.6,
      },
    ],
  };
}

t.test('decoding of the next image overlaps inference, and the look-ahead is bounded', async (t) => {
  const net = tinyNet();
  const n = 6;
  const prefetch = 2;
  const images: ListedImage[] = Array.from({ length: n }, (_, i) => ({ id: 100 + i, path: `img${i}` }));
  const started: number[] = [];
  let inferred = 0;
  let maxAhead = 0;
  const overlapped: boolean[] = [];
  const prepare = async (p: string): Promise<PreparedImage> => {
    const i = Number(p.slice(3));
    started.push(i);
    maxAhead = Math.max(maxAhead, started.length - inferred);
    return { frame: { rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 }, width: 640, height: 480 };
  };
  // one confident box of class i % 80 in cell (0, 0)
  const engine: Engine = {
    kind: 'float',
    net,
    modelId: 'tiny',
    async infer(_frame: Frame): Promise<HeadTensor[]> {
      const i = inferred;
      const data = new Float32Array(85 * 4).fill(-20);
      for (const c of [0, 1, 2, 3]) data[c * 4] = 0;
      data[4 * 4] = 10;
      data[(5 + (i % 80)) * 4] = 10;
      // the next image is already being prepared while this one is inferred
      overlapped.push(i + 1 >= n || started.includes(i + 1));
      inferred++;
      return [{ layer: 0, c: 85, h: 2, w: 2, data }];
    },
    async close() {},
  };
  const done: number[] = [];
  const out = await runModel(engine, images, { prepare, prefetch, onImage: (k) => done.push(k) });
  t.same(started, [0, 1, 2, 3, 4, 5], 'each image prepared once, in order');
  t.same(overlapped, Array(n).fill(true), 'image i+1 prepared during inference of image i');
  t.ok(maxAhead <= prefetch + 1, `at most ${prefetch} images ahead of the one inferred (saw ${maxAhead - 1})`);
  t.same(done, [1, 2, 3, 4, 5, 6]);
  t.equal(out.msPerImage.length, n);
  t.same(out.results.map((r) => r.image_id), images.map((im) => im.id), 'one detection per image, in list order');
  t.same(out.results.map((r) => r.category_id), [1, 2, 3, 4, 5, 6], 'COCO category ids of classes 0..5');
  // cell (0,0) of a 2x2 grid, anchor 32 on a 64 input: centre (0.25, 0.25), size 0.5 of the image
  t.same(out.results[0].bbox, [0, 0, 320, 240]);
});

t.test('a failing image decode stops the run with its error', async (t) => {
  const net = tinyNet();
  const images: ListedImage[] = [0, 1, 2].map((i) => ({ id: i, path: `img${i}` }));
  const engine: Engine = {
    kind: 'float', net, modelId: 'tiny',
    infer: async () => [{ layer: 0, c: 85, h: 2, w: 2, data: new Float32Array(340).fill(-20) }],
    close: async () => {},
  };
  const prepare = async (p: string): Promise<PreparedImage> => {
    if (p === 'img1') throw new Error('broken jpeg');
    return { frame: { rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 }, width: 64, height: 64 };
  };
  await t.rejects(runModel(engine, images, { prepare }), /broken jpeg/);
});

t.test('float Yolo-Fastest 1.1 on 40 dev images agrees with darknet detector valid', async (t) => {
  const set = await loadEvalSet(dataPath('coco-val', 'dev.txt'), { limit: 40 });
  const engine = await openEngine('float', dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));
  let ours: CocoResult[];
  try {
    ours = (await runModel(engine, set.images)).results;
  } finally {
    await engine.close();
  }
  const ids = new Set(set.images.map((im) => im.id));
  const theirs = (JSON.parse(readFileSync(dataPath('reference', 'dev-yolo-fastest-1.1-darknet-top100.json'), 'utf8')) as CocoResult[]).filter((r) =>
    ids.has(r.image_id),
  );
  const perImage = (rs: CocoResult[]) => new Map(set.images.map((im) => [im.id, rs.filter((r) => r.image_id === im.id)]));
  const oursBy = perImage(ours);
  for (const [id, list] of perImage(theirs)) t.equal(oursBy.get(id)!.length, list.length, `image ${id}: as many detections`);

  // darknet's 10 best detections of every image are found again: same class, same box, same score.
  // A few may not: NMS decisions at the threshold's edge flip with sub-pixel differences (image
  // 18193: a person box at DIoU 0.6001 from a better one is kept by darknet, suppressed here).
  let missing = 0;
  let checked = 0;
  for (const [id, list] of perImage(theirs)) {
    for (const d of list.slice(0, 10)) {
      checked++;
      const hit = oursBy.get(id)!.some(
        (o) => o.category_id === d.category_id && Math.abs(o.score - d.score) <= 0.01 && boxIou(...xywhToCentre(o.bbox), ...xywhToCentre(d.bbox)) >= 0.9,
      );
      if (!hit) missing++;
    }
  }
  t.ok(missing <= checked / 100, `top-10 detections found again: ${checked - missing} of ${checked}`);

  const a = evaluateCoco(set.gt, ours, { imageIds: [...ids] }).stats;
  const b = evaluateCoco(set.gt, theirs, { imageIds: [...ids] }).stats;
  t.ok(Math.abs(a.AP50 - b.AP50) <= 0.01, `AP50 ${a.AP50.toFixed(4)} vs darknet ${b.AP50.toFixed(4)}`);
  t.ok(Math.abs(a.AP - b.AP) <= 0.005, `AP ${a.AP.toFixed(4)} vs darknet ${b.AP.toFixed(4)}`);
});

function xywhToCentre(b: readonly number[]): [number, number, number, number] {
  return [b[0] + b[2] / 2, b[1] + b[3] / 2, b[2], b[3]];
}
