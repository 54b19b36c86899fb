import t from 'tap';
import { decodeHeads } from '../src/detect/decode.js';
import { boxDiou, boxIou } from '../src/detect/nms.js';
import type { DecodeOptions } from '../src/detect/types.js';
import type { HeadTensor } from '../src/engine/engine.js';
import type { Network, NmsKind, YoloLayer } from '../src/model/ir.js';
import { ZeroqError } from '../src/util/errors.js';

const logit = (p: number): number => Math.log(p / (1 - p));

interface HeadSpec {
  grid: number;
  classes: number;
  anchors: number[];
  mask: number[];
  netSize?: number;
  nmsKind?: NmsKind;
  betaNms?: number;
  scaleXY?: number;
  newCoords?: boolean;
  letterbox?: boolean;
}

/** A one-head network and an all-"nothing here" head tensor to write logits into. */
function setup(s: HeadSpec): { net: Network; head: HeadTensor; set: (cell: [number, number], anchor: number, entry: number, v: number) => void } {
  const netSize = s.netSize ?? 64;
  const c = s.mask.length * (5 + s.classes);
  const yolo: YoloLayer = {
    kind: 'yolo', index: 1, inputs: [0], out: { c, h: s.grid, w: s.grid }, classes: s.classes, anchors: s.anchors, mask: s.mask,
    scaleXY: s.scaleXY ?? 1, newCoords: s.newCoords ?? false, nmsKind: s.nmsKind ?? 'greedynms', betaNms: s.betaNms ?? 0.6,
  };
  const net: Network = {
    name: 'hand', input: { c: 3, h: netSize, w: netSize }, letterbox: s.letterbox ?? false,
    layers: [
      { kind: 'conv', index: 0, inputs: [-1], out: { c, h: s.grid, w: s.grid }, filters: c, size: 1, stride: 1, pad: 0, groups: 1, activation: 'linear', batchNormalize: false },
      yolo,
    ],
    heads: [1],
  };
  const plane = s.grid * s.grid;
  // x, y, w, h at 0; objectness and classes at "nothing" (logit -30, or 0 for new_coords heads)
  const data = new Float32Array(c * plane).fill(s.newCoords ? 0 : -30);
  for (let a = 0; a < s.mask.length; a++) data.fill(0, a * (5 + s.classes) * plane, (a * (5 + s.classes) + 4) * plane);
  const head: HeadTensor = { layer: 1, c, h: s.grid, w: s.grid, data };
  const set = ([col, row]: [number, number], anchor: number, entry: number, v: number): void => {
    data[(anchor * (5 + s.classes) + entry) * plane + row * s.grid + col] = v;
  };
  return { net, head, set };
}

const OPTS: DecodeOptions = { threshold: 0.25, nms: 0.45, maxDetections: 100 };

t.test('a known logit gives a known box, in image pixels, clipped like print_cocos', async (t) => {
  const { net, head, set } = setup({ grid: 2, classes: 3, anchors: [10, 20, 30, 40], mask: [0, 1] });
  set([1, 0], 1, 0, 0); // x: sigmoid 0.5
  set([1, 0], 1, 1, Math.log(3)); // y: sigmoid 0.75
  set([1, 0], 1, 2, Math.log(2)); // w: 2 × anchor 30
  set([1, 0], 1, 3, 0); // h: anchor 40
  set([1, 0], 1, 4, Math.log(9)); // objectness 0.9
  set([1, 0], 1, 5 + 2, Math.log(4)); // class 2: 0.8 → 0.72
  set([1, 0], 1, 5 + 0, Math.log(0.25)); // class 0: 0.2 → 0.18, under the threshold
  const dets = decodeHeads([head], net, 640, 480, OPTS, ['a', 'b', 'c']);
  t.equal(dets.length, 1);
  const d = dets[0];
  t.equal(d.classId, 2);
  t.equal(d.className, 'c');
  t.ok(Math.abs(d.score - 0.72) < 1e-6, `score ${d.score}`);
  // centre (0.75, 0.375) × (640, 480) = (480, 180); size (60/64 × 640, 40/64 × 480) = (600, 300)
  t.ok(Math.abs(d.box.x - 180) < 1e-3 && Math.abs(d.box.y - 30) < 1e-3, `corner ${d.box.x},${d.box.y}`);
  t.ok(Math.abs(d.box.w - 460) < 1e-3, `width clipped at the right edge: ${d.box.w}`);
  t.ok(Math.abs(d.box.h - 300) < 1e-3, `height ${d.box.h}`);
});

t.test('COCO names by default for 80 classes, the class index otherwise', async (t) => {
  const a = setup({ grid: 1, classes: 80, anchors: [16, 16], mask: [0] });
  a.set([0, 0], 0, 4, 5);
  a.set([0, 0], 0, 5 + 16, 5);
  t.equal(decodeHeads([a.head], a.net, 64, 64, OPTS)[0].className, 'dog');
  const b = setup({ grid: 1, classes: 3, anchors: [16, 16], mask: [0] });
  b.set([0, 0], 0, 4, 5);
  b.set([0, 0], 0, 5 + 1, 5);
  t.equal(decodeHeads([b.head], b.net, 64, 64, OPTS)[0].className, '1');
});

/** Two boxes of one cell, size 0.5 × 0.5 of the network, centres 1/6 apart in x: IoU exactly 0.5. */
function twoBoxes(s: Partial<HeadSpec>, classA: number, classB: number) {
  const h = setup({ grid: 1, classes: 2, anchors: [32, 32, 32, 32], mask: [0, 1], ...s });
  h.set([0, 0], 0, 4, logit(0.9));
  h.set([0, 0], 0, 5 + classA, logit(0.9)); // 0.81
  h.set([0, 0], 1, 0, Math.log(2)); // x = 2/3
  h.set([0, 0], 1, 4, logit(0.8));
  h.set([0, 0], 1, 5 + classB, logit(0.9)); // 0.72
  return h;
}

t.test('IoU and DIoU of the two-box case', async (t) => {
  t.ok(Math.abs(boxIou(0.5, 0.5, 0.5, 0.5, 2 / 3, 0.5, 0.5, 0.5) - 0.5) < 1e-12);
  // d² = 1/36, c² = (2/3)² + (1/2)² → d²/c² = 1/25
  t.ok(Math.abs(boxDiou(0.5, 0.5, 0.5, 0.5, 2 / 3, 0.5, 0.5, 0.5, 0.6) - (0.5 - Math.pow(0.04, 0.6))) < 1e-12);
  t.equal(boxIou(0, 0, 1, 1, 5, 5, 1, 1), 0, 'disjoint boxes');
});

t.test('NMS: overlapping boxes of one class keep the best; other classes are untouched', async (t) => {
  const same = twoBoxes({ nmsKind: 'default' }, 0, 0);
  const kept = decodeHeads([same.head], same.net, 640, 640, OPTS);
  t.equal(kept.length, 1, 'IoU 0.5 > 0.45: the weaker box goes');
  t.ok(Math.abs(kept[0].score - 0.81) < 1e-6, 'the stronger box stays');
  t.ok(Math.abs(kept[0].box.x - 160) < 1e-3, 'and it is the first box');

  const other = twoBoxes({ nmsKind: 'default' }, 0, 1);
  const both = decodeHeads([other.head], other.net, 640, 640, OPTS);
  t.same(both.map((d) => d.classId), [0, 1], 'different classes do not suppress each other');

  const loose = decodeHeads([same.head], same.net, 640, 640, { ...OPTS, nms: 0.51 });
  t.equal(loose.length, 2, 'IoU 0.5 is not above an NMS threshold of 0.51');
  t.equal(decodeHeads([same.head], same.net, 640, 640, { ...OPTS, nms: 0 }).length, 2, 'nms 0 turns NMS off, as in darknet');
});

t.test('greedynms (darknet DIoU test) keeps what plain IoU NMS drops', async (t) => {
  const g = twoBoxes({ nmsKind: 'greedynms' }, 0, 0);
  // IoU 0.5, IoU − 0.04^0.6 = 0.355: not above 0.45
  t.equal(decodeHeads([g.head], g.net, 640, 640, OPTS).length, 2, 'cfg kind greedynms');
  t.equal(decodeHeads([g.head], g.net, 640, 640, { ...OPTS, nmsKind: 'default' }).length, 1, 'overridden to default');
  t.equal(decodeHeads([g.head], g.net, 640, 640, { ...OPTS, nms: 0.3 }).length, 1, 'greedynms at 0.3 drops it');
});

t.test('diounms uses the cfg beta_nms, greedynms a fixed 0.6', async (t) => {
  const d = twoBoxes({ nmsKind: 'diounms', betaNms: 6 }, 0, 0);
  // 0.04^6 is negligible: the test is the IoU 0.5 > 0.45
  t.equal(decodeHeads([d.head], d.net, 640, 640, OPTS).length, 1);
  const g = twoBoxes({ nmsKind: 'greedynms', betaNms: 6 }, 0, 0);
  t.equal(decodeHeads([g.head], g.net, 640, 640, OPTS).length, 2);
});

t.test('the NMS coordinate space matters for DIoU on a non-square image', async (t) => {
  const g = twoBoxes({ nmsKind: 'greedynms' }, 0, 0);
  // relative: 0.5 − 0.04^0.6 = 0.355 > 0.34; pixels of a 2:1 image: 0.5 − (4/73)^0.6 = 0.325
  t.equal(decodeHeads([g.head], g.net, 1280, 640, { ...OPTS, nms: 0.34, nmsSpace: 'relative' }).length, 1);
  t.equal(decodeHeads([g.head], g.net, 1280, 640, { ...OPTS, nms: 0.34, nmsSpace: 'pixels' }).length, 2);
  t.equal(decodeHeads([g.head], g.net, 1280, 640, { ...OPTS, nms: 0.34 }).length, 2, 'pixels by default');
  const rel = decodeHeads([g.head], g.net, 1280, 640, { ...OPTS, nms: 0.34, nmsSpace: 'relative' })[0];
  t.ok(Math.abs(rel.box.x - 320) < 1e-3 && Math.abs(rel.box.w - 640) < 1e-3, 'boxes still come out in pixels');
});

t.test('threshold edges: strictly above, on objectness and on objectness × class', async (t) => {
  const { net, head, set } = setup({ grid: 1, classes: 2, anchors: [16, 16], mask: [0] });
  set([0, 0], 0, 4, logit(0.5));
  set([0, 0], 0, 5, logit(0.6));
  const obj = 1 / (1 + Math.exp(-Math.fround(logit(0.5)))); // the head holds float32 logits
  const prob = obj * (1 / (1 + Math.exp(-Math.fround(logit(0.6)))));
  t.equal(decodeHeads([head], net, 64, 64, { ...OPTS, threshold: prob }).length, 0, 'prob equal to the threshold is dropped');
  t.equal(decodeHeads([head], net, 64, 64, { ...OPTS, threshold: prob - 1e-7 }).length, 1, 'just above is kept');
  t.equal(decodeHeads([head], net, 64, 64, { ...OPTS, threshold: obj }).length, 0, 'objectness not above the threshold drops the box');
});

t.test('results are sorted by score and cut to maxDetections', async (t) => {
  const { net, head, set } = setup({ grid: 4, classes: 1, anchors: [4, 4], mask: [0] });
  const scores: number[] = [];
  for (let i = 0; i < 16; i++) {
    const p = 0.3 + 0.04 * ((i * 7) % 16); // distinct, shuffled over the cells
    scores.push(p);
    set([i % 4, Math.trunc(i / 4)], 0, 4, logit(p));
    set([i % 4, Math.trunc(i / 4)], 0, 5, 30);
  }
  const all = decodeHeads([head], net, 64, 64, OPTS);
  t.equal(all.length, 16, 'small boxes in separate cells do not overlap');
  const best = [...scores].sort((a, b) => b - a);
  const top5 = decodeHeads([head], net, 64, 64, { ...OPTS, maxDetections: 5 });
  t.equal(top5.length, 5);
  top5.forEach((d, k) => t.ok(Math.abs(d.score - best[k]) < 1e-6, `rank ${k}: ${d.score.toFixed(4)}`));
});

t.test('scale_x_y and new_coords follow darknet', async (t) => {
  const a = setup({ grid: 2, classes: 1, anchors: [16, 16], mask: [0], scaleXY: 2 });
  a.set([0, 1], 0, 0, logit(0.75)); // x = (0 + 0.75·2 − 0.5)/2 = 0.5
  a.set([0, 1], 0, 1, logit(0.25)); // y = (1 + 0.25·2 − 0.5)/2 = 0.5
  a.set([0, 1], 0, 4, 10);
  a.set([0, 1], 0, 5, 10);
  const da = decodeHeads([a.head], a.net, 64, 64, OPTS)[0];
  t.ok(Math.abs(da.box.x + da.box.w / 2 - 32) < 1e-3 && Math.abs(da.box.y + da.box.h / 2 - 32) < 1e-3, 'centre at the middle');

  const b = setup({ grid: 2, classes: 1, anchors: [16, 8], mask: [0], scaleXY: 2, newCoords: true });
  b.set([1, 1], 0, 0, 0.5); // already activated: x = (1 + 0.5·2 − 0.5)/2 = 0.75
  b.set([1, 1], 0, 1, 0.25); // y = (1 + 0.25·2 − 0.5)/2 = 0.5
  b.set([1, 1], 0, 2, 0.5); // w = (0.5·2)² × 16 = 16 px of 64
  b.set([1, 1], 0, 3, 1); // h = (1·2)² × 8 = 32 px
  b.set([1, 1], 0, 4, 0.9);
  b.set([1, 1], 0, 5, 0.5);
  const db = decodeHeads([b.head], b.net, 64, 64, OPTS);
  t.equal(db.length, 1);
  t.ok(Math.abs(db[0].score - 0.45) < 1e-6, 'no sigmoid on new_coords heads');
  t.same(
    [db[0].box.x, db[0].box.y, db[0].box.w, db[0].box.h].map((v) => Math.round(v * 1000) / 1000),
    [40, 16, 16, 32],
  );
});

t.test('letterboxed networks: boxes are mapped back out of the padding', async (t) => {
  const { net, head, set } = setup({ grid: 1, classes: 1, anchors: [16, 16], mask: [0], letterbox: true });
  // a 640×320 image sits in rows 16..47 of the 64×64 input; the box centre is at the input's centre
  set([0, 0], 0, 4, 10);
  set([0, 0], 0, 5, 10);
  const d = decodeHeads([head], net, 640, 320, OPTS)[0];
  // relative size 0.25 × 0.25 of the input → 0.25 × 0.5 of the image
  t.same([d.box.x, d.box.y, d.box.w, d.box.h].map((v) => Math.round(v * 1000) / 1000), [240, 80, 160, 160]);
});

t.test('head tensors that do not fit the yolo layer are refused with the layer named', async (t) => {
  const { net, head } = setup({ grid: 2, classes: 3, anchors: [10, 20, 30, 40], mask: [0, 1] });
  t.throws(() => decodeHeads([{ ...head, c: head.c - 1 }], net, 64, 64, OPTS), ZeroqError);
  t.throws(() => decodeHeads([{ ...head, c: head.c - 1 }], net, 64, 64, OPTS), /layer 1 \(yolo\).*needs 16 channels/);
  t.throws(() => decodeHeads([{ ...head, layer: 0 }], net, 64, 64, OPTS), /not a yolo layer/);
});
