import t, { type Test } from 'tap';
import { evaluateCoco, formatSummary, type Bbox, type CocoResult, type GroundTruth, type GtAnnotation } from '../src/eval/coco.js';

/** What a ZeroqError with this code and message looks like, for t.throws. */
const zeroqError = (code: string, message: RegExp) => ({ name: 'ZeroqError', code, message });

/** Small ground truth: images 1..n (640x480), categories 1 'a' and 2 'b'. */
function groundTruth(boxes: { img?: number; cat?: number; bbox: Bbox; crowd?: boolean; area?: number }[], images = 2): GroundTruth {
  const annotations: GtAnnotation[] = boxes.map((b, n) => ({
    id: n + 1,
    imageId: b.img ?? 1,
    categoryId: b.cat ?? 1,
    bbox: b.bbox,
    area: b.area ?? b.bbox[2] * b.bbox[3],
    iscrowd: b.crowd ?? false,
  }));
  return {
    images: Array.from({ length: images }, (_, i) => ({ id: i + 1, width: 640, height: 480 })),
    categories: [
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
    ],
    annotations,
  };
}
const det = (bbox: number[], score: number, img = 1, cat = 1): CocoResult => ({ image_id: img, category_id: cat, bbox, score });
/** Precision is tp / (tp + fp + eps) as in pycocotools: a perfect score is 1 - 1e-16. */
const close = (t: Test, got: number, want: number, msg = 'value') => t.ok(Math.abs(got - want) < 1e-12, `${msg}: ${got} vs ${want}`);

t.test('perfect detections score 1; categories and areas without GT are left out (-1)', async (t) => {
  const gt = groundTruth([{ bbox: [10, 10, 200, 150] }, { bbox: [300, 100, 120, 200] }, { img: 2, bbox: [50, 60, 110, 100] }]);
  const ev = evaluateCoco(gt, [det([10, 10, 200, 150], 0.9), det([300, 100, 120, 200], 0.8), det([50, 60, 110, 100], 0.7, 2)]);
  for (const k of ['AP', 'AP50', 'AP75', 'APl', 'AR10', 'AR100', 'ARl'] as const) close(t, ev.stats[k], 1, k);
  t.equal(ev.stats.APs, -1, 'no small GT');
  t.equal(ev.stats.APm, -1, 'no medium GT');
  // one detection per image and category: 1 of 2 objects on image 1, 1 of 1 on image 2
  close(t, ev.stats.AR1, 2 / 3, 'AR1');
  t.equal(ev.perClass.find((c) => c.categoryId === 2)!.AP, -1, 'category without GT');
  t.equal(ev.images, 2);
  t.equal(ev.detections, 3);
});

t.test('maxDets: 1, 10, 100 detections per image and category', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }, { bbox: [200, 0, 100, 100] }, { bbox: [400, 0, 100, 100] }, { cat: 2, bbox: [0, 200, 100, 100] }]);
  const res = [det([0, 0, 100, 100], 0.9), det([200, 0, 100, 100], 0.8), det([400, 0, 100, 100], 0.7), det([0, 200, 100, 100], 0.6, 1, 2)];
  const ev = evaluateCoco(gt, res);
  // recall at maxDets 1: category a finds 1 of 3, category b 1 of 1
  close(t, ev.stats.AR1, (1 / 3 + 1) / 2, 'AR1');
  close(t, ev.stats.AR10, 1, 'AR10');
  close(t, ev.stats.AP, 1, 'AP uses maxDets 100');
  // 101 detections on one object: only the best 100 are matched, the 101st never counts
  const many = Array.from({ length: 101 }, (_, i) => det([0, 0, 100, 100], i === 100 ? 0.01 : 0.5 + i / 1000));
  const ev2 = evaluateCoco(groundTruth([{ bbox: [0, 0, 100, 100] }]), many);
  close(t, ev2.stats.AR100, 1, 'AR100');
  t.equal(ev2.detections, 101);
});

t.test('a shifted box matches at the thresholds its IoU reaches (IoU equal to a threshold matches)', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }]);
  // shift s: IoU = (100 - s) / (100 + s); s = 25 gives exactly 0.6, s = 26 gives 0.587
  const at = evaluateCoco(gt, [det([25, 0, 100, 100], 0.9)]);
  close(t, at.stats.AP, 3 / 10, 'matched at 0.50, 0.55, 0.60');
  close(t, at.stats.AP50, 1, 'AP50');
  close(t, at.stats.AP75, 0, 'AP75');
  const below = evaluateCoco(gt, [det([26, 0, 100, 100], 0.9)]);
  close(t, below.stats.AP, 2 / 10, 'matched at 0.50, 0.55');
  const far = evaluateCoco(gt, [det([60, 0, 100, 100], 0.9)]);
  close(t, far.stats.AP50, 0, 'IoU 0.25: a false positive');
  close(t, far.stats.AR100, 0, 'AR100');
});

t.test('a missed object halves recall; precision is interpolated on 101 recall points', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }, { bbox: [300, 300, 100, 100] }]);
  const ev = evaluateCoco(gt, [det([0, 0, 100, 100], 0.9)]);
  close(t, ev.stats.AP, 51 / 101, 'precision 1 for recall 0.00..0.50');
  close(t, ev.stats.AR100, 0.5, 'AR');
});

t.test('a duplicate detection is a false positive; the precision envelope is monotone', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }, { bbox: [300, 300, 100, 100] }]);
  const ev = evaluateCoco(gt, [det([0, 0, 100, 100], 0.9), det([1, 1, 100, 100], 0.8), det([300, 300, 100, 100], 0.7)]);
  // recall [.5, .5, 1], precision [1, 1/2, 2/3] → envelope [1, 2/3, 2/3]
  close(t, ev.stats.AP50, (51 + 50 * (2 / 3)) / 101, 'AP50');
  close(t, ev.stats.AR100, 1, 'both found');
});

t.test('equal scores keep file order within an image, image-id order across images', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }]);
  const fpFirst = evaluateCoco(gt, [det([300, 300, 50, 50], 0.5), det([0, 0, 100, 100], 0.5)]);
  close(t, fpFirst.stats.AP50, 0.5, 'false positive ranked first');
  const tpFirst = evaluateCoco(gt, [det([0, 0, 100, 100], 0.5), det([300, 300, 50, 50], 0.5)]);
  close(t, tpFirst.stats.AP50, 1, 'true positive ranked first');
  // the false positive on image 2 comes first in the file but image 1 is accumulated first
  const across = evaluateCoco(gt, [det([300, 300, 50, 50], 0.5, 2), det([0, 0, 100, 100], 0.5, 1)]);
  close(t, across.stats.AP50, 1, 'AP50');
});

t.test('crowd regions: detections on them are ignored, IoU = intersection / detection area', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }, { bbox: [200, 0, 400, 400], crowd: true }]);
  // two detections inside the crowd region, both ranked above the true positive: both ignored
  const inside = evaluateCoco(gt, [det([250, 50, 50, 50], 0.9), det([400, 200, 60, 80], 0.8), det([0, 0, 100, 100], 0.5)]);
  close(t, inside.stats.AP, 1, 'AP');
  // half inside: IoU 0.5 with the crowd region, ignored at 0.50 only, a false positive above it
  const half = evaluateCoco(gt, [det([150, 50, 100, 50], 0.9), det([0, 0, 100, 100], 0.5)]);
  close(t, half.stats.AP, (1 + 9 * 0.5) / 10, 'AP');
  // the same detection without the crowd flag is a false positive at every threshold
  const noCrowd = evaluateCoco(groundTruth([{ bbox: [0, 0, 100, 100] }, { bbox: [200, 0, 400, 400] }]), [det([250, 50, 50, 50], 0.9), det([0, 0, 100, 100], 0.5)]);
  t.ok(noCrowd.stats.AP < 1);
  // a category whose only GT is a crowd region has nothing to score
  const onlyCrowd = evaluateCoco(groundTruth([{ bbox: [0, 0, 100, 100] }, { cat: 2, bbox: [0, 0, 300, 300], crowd: true }]), [det([0, 0, 100, 100], 0.9), det([10, 10, 50, 50], 0.9, 1, 2)]);
  t.equal(onlyCrowd.perClass[1].AP, -1);
  close(t, onlyCrowd.stats.AP, 1, 'AP');
});

t.test('area ranges: GT by its area field, unmatched detections by w*h, ignored GT swallow their matches', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 20, 20] }, { bbox: [200, 200, 200, 200] }]);
  const ev = evaluateCoco(gt, [det([0, 0, 20, 20], 0.9), det([200, 200, 200, 200], 0.8)]);
  close(t, ev.stats.APs, 1, 'APs');
  close(t, ev.stats.APl, 1, 'the small match is ignored in the large range');
  t.equal(ev.stats.APm, -1);
  // an unmatched small detection: a false positive overall, ignored for large objects
  const large = groundTruth([{ bbox: [200, 200, 200, 200] }]);
  const ev2 = evaluateCoco(large, [det([0, 0, 20, 20], 0.9), det([200, 200, 200, 200], 0.8)]);
  close(t, ev2.stats.AP, 0.5, 'AP all');
  close(t, ev2.stats.APl, 1, 'APl');
  // a 20x20 box whose annotation says area 5000 is a medium object
  const medium = evaluateCoco(groundTruth([{ bbox: [0, 0, 20, 20], area: 5000 }]), [det([0, 0, 20, 20], 0.9)]);
  close(t, medium.stats.APm, 1, 'APm');
  t.equal(medium.stats.APs, -1);
});

t.test('per class AP, image restriction, unknown categories and images', async (t) => {
  const gt = groundTruth([{ bbox: [0, 0, 100, 100] }, { cat: 2, bbox: [0, 200, 100, 100] }, { img: 2, bbox: [0, 0, 100, 100] }]);
  const res = [det([0, 0, 100, 100], 0.9), det([300, 300, 100, 100], 0.9, 1, 2), det([0, 0, 100, 100], 0.9, 2), det([0, 0, 100, 100], 0.9, 1, 7)];
  const ev = evaluateCoco(gt, res, { imageIds: [1] });
  t.equal(ev.images, 1);
  t.equal(ev.droppedOtherImages, 1);
  t.equal(ev.droppedUnknownCategory, 1);
  t.same(ev.perClass.map((c) => [c.categoryId, c.gt, Number(c.AP.toFixed(9)), Number(c.AP50.toFixed(9))]), [[1, 1, 1, 1], [2, 1, 0, 0]]);
  close(t, ev.stats.AP, 0.5, 'mean over categories');
  t.throws(() => evaluateCoco(gt, [det([0, 0, 1, 1], 0.5, 9)], { resultsName: 'r.json' }), zeroqError('results-image', /r\.json\[0\]/));
  t.throws(() => evaluateCoco(gt, [{ image_id: 1, category_id: 1, bbox: [0, 0, 1], score: 1 }]), zeroqError('results-format', /bbox/));
});

t.test('summary lines as pycocotools prints them', async (t) => {
  const ev = evaluateCoco(groundTruth([{ bbox: [0, 0, 100, 100] }]), [det([0, 0, 100, 100], 0.9)]);
  const lines = formatSummary(ev).trimEnd().split('\n');
  t.equal(lines.length, 12);
  t.equal(lines[0], ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000');
  t.equal(lines[3], ' Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000');
  t.equal(lines[6], ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 1.000');
});
