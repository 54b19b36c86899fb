import t from 'tap';
import { readFileSync } from 'node:fs';
import { decodeHeads } from '../src/detect/decode.js';
import { boxIou } from '../src/detect/nms.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import type { Detection } from '../src/detect/types.js';
import { FloatEngine } from '../src/engine/float.js';
import { openEngine } from '../src/engine/registry.js';
import { loadDarknet } from '../src/model/darknet.js';
import { ZeroqError } from '../src/util/errors.js';
import { dataPath } from '../src/util/paths.js';

const MODELS = ['yolo-fastest-1.1', 'yolo-fastest-1.1-xl'];
const SAMPLES = ['dog', 'eagle', 'giraffe', 'horses', 'person'];

interface RefDetection {
  classId: number;
  prob: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** darknet-detections/<model>/<image>.txt: header with the image size, then one detection per line. */
function readReference(model: string, image: string): { width: number; height: number; dets: RefDetection[] } {
  const text = readFileSync(dataPath('reference', 'darknet-detections', model, `${image}.txt`), 'utf8');
  const size = /width=(\d+) height=(\d+)/.exec(text);
  if (!size) throw new Error(`no image size in the reference for ${model}/${image}`);
  const dets = text
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\d+) .+? ([\d.]+) [\d.]+ [\d.]+ [\d.]+ [\d.]+ \| ([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+)$/.exec(l.trim());
      if (!m) throw new Error(`unreadable reference line: ${l}`);
      const [, c, p, x1, y1, x2, y2] = m;
      return { classId: Number(c), prob: Number(p), x1: Number(x1), y1: Number(y1), x2: Number(x2), y2: Number(y2) };
    });
  return { width: Number(size[1]), height: Number(size[2]), dets };
}

/** The detection of the same class overlapping the reference box most. */
function match(ref: RefDetection, ours: Detection[], width: number, height: number): Detection | undefined {
  const x1 = Math.max(0, ref.x1), y1 = Math.max(0, ref.y1);
  const x2 = Math.min(width, ref.x2), y2 = Math.min(height, ref.y2);
  let best: Detection | undefined;
  let bestIou = 0.5;
  for (const d of ours) {
    if (d.classId !== ref.classId) continue;
    const iou = boxIou(d.box.x + d.box.w / 2, d.box.y + d.box.h / 2, d.box.w, d.box.h, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1);
    if (iou > bestIou) {
      bestIou = iou;
      best = d;
    }
  }
  return best;
}

for (const model of MODELS) {
  t.test(`${model}: the float engine finds what darknet finds on the sample images`, async (t) => {
    const engine = await openEngine('float', dataPath('models', 'yolo-fastest', `${model}.cfg`));
    t.teardown(() => engine.close());
    t.equal(engine.kind, 'float');
    t.equal(engine.modelId, model);
    const json = JSON.parse(readFileSync(dataPath('reference', 'darknet-detections', `${model}-samples.json`), 'utf8')) as {
      filename: string;
      objects: unknown[];
    }[];
    for (const image of SAMPLES) {
      const ref = readReference(model, image);
      t.equal(json.find((f) => f.filename === `${image}.jpg`)?.objects.length, ref.dets.length, `${image}: the two reference files agree`);
      const p = await prepareFrame(dataPath('reference', 'samples', `${image}.jpg`), engine.net);
      t.same([p.width, p.height], [ref.width, ref.height], `${image}: image size`);
      const heads = await engine.infer(p.frame);
      // darknet `detector test`: threshold 0.25, NMS 0.45 of the cfg's kind, in relative coordinates
      const ours = decodeHeads(heads, engine.net, p.width, p.height, { threshold: 0.25, nms: 0.45, maxDetections: 100, nmsSpace: 'relative' });
      t.equal(ours.length, ref.dets.length, `${image}: ${ours.length} detections, darknet ${ref.dets.length}`);
      const used = new Set<Detection>();
      for (const r of ref.dets) {
        const d = match(r, ours, ref.width, ref.height);
        if (!d || used.has(d)) {
          t.fail(`${image}: no counterpart for darknet's class ${r.classId} p=${r.prob}`);
          continue;
        }
        used.add(d);
        const corner = Math.max(
          Math.abs(d.box.x - Math.max(0, r.x1)),
          Math.abs(d.box.y - Math.max(0, r.y1)),
          Math.abs(d.box.x + d.box.w - Math.min(ref.width, r.x2)),
          Math.abs(d.box.y + d.box.h - Math.min(ref.height, r.y2)),
        );
        t.ok(Math.abs(d.score - r.prob) < 0.01, `${image} ${d.className}: p ${d.score.toFixed(4)} vs darknet ${r.prob}`);
        t.ok(corner < 2, `${image} ${d.className}: corners within ${corner.toFixed(2)} px`);
      }
    }
  });
}

t.test('engine contract: head order and shapes, frame checks, close', async (t) => {
  const loaded = await loadDarknet(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));
  const engine = await FloatEngine.create(loaded, { threads: 2 });
  const frame = { rgb: new Uint8Array(320 * 320 * 3).fill(90), width: 320, height: 320 };
  const heads = await engine.infer(frame);
  t.same(heads.map((h) => h.layer), loaded.net.heads, 'heads in net.heads order');
  t.same(heads.map((h) => [h.c, h.h, h.w]), [[255, 10, 10], [255, 20, 20]]);
  t.ok(heads.every((h) => h.data.length === h.c * h.h * h.w && h.data.every(Number.isFinite)));
  const again = await engine.infer(frame);
  t.ok(again.every((h, k) => h.data.every((v, i) => v === heads[k].data[i])), 'same frame, same result');
  const equal = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  const asFloat = await engine.infer({ ...frame, planar: new Float32Array(3 * 320 * 320).fill(90 / 255) });
  t.ok(equal(asFloat[1].data, heads[1].data), 'the float image P/255 gives what the 8-bit frame gives');
  const finer = await engine.infer({ ...frame, planar: new Float32Array(3 * 320 * 320).fill(90.4 / 255) });
  t.notOk(equal(finer[1].data, heads[1].data), 'the float image is used when the frame has one');
  await t.rejects(engine.infer({ ...frame, planar: new Float32Array(5) }), { code: 'engine-input' });
  await t.rejects(engine.infer({ ...frame, width: 319 }), { code: 'engine-input' });
  await t.rejects(engine.infer({ ...frame, rgb: frame.rgb.subarray(3) }), { code: 'engine-input' });
  await t.rejects(engine.inferLayers(frame), { code: 'engine-options' });
  await engine.close();
  await t.rejects(engine.infer(frame), { code: 'engine-closed' });
  await t.rejects(FloatEngine.create(loaded, { threads: 0 }), { code: 'engine-options' });
});

t.test('openEngine: int needs a .zqw weight set; missing weights are named', async (t) => {
  const cfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
  await t.rejects(openEngine('int', cfg), { code: 'engine-model' });
  await t.rejects(openEngine('float', dataPath('models', 'cfg', 'yolov4-tiny.cfg')), { code: 'weights-missing' });
  await t.rejects(openEngine('float', cfg, { weights: dataPath('models', 'nope.weights') }), { code: 'weights-read' });
});
