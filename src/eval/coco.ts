/**
 * COCO bbox evaluation, computing what pycocotools' COCOeval (evaluate → accumulate → summarize)
 * computes, with the same orderings and float arithmetic so that figures agree to the last digit:
 * - per image and category, detections sorted by score (stable) and cut to the largest maxDets;
 * - ground truth sorted with ignored boxes (crowd or outside the area range) last;
 * - IoU as maskApi bbIou (for a crowd GT the union is the detection's area);
 * - greedy matching per IoU threshold; a detection matched to an ignored GT is ignored, an unmatched
 *   detection outside the area range is ignored;
 * - 101-point interpolated precision (monotone envelope, searchsorted 'left'), recall = last point;
 * - categories without non-ignored GT give -1 and are left out of every mean.
 */
import { ZeroqError } from '../util/errors.js';

/** [x, y, w, h] in image pixels, top-left corner. */
export type Bbox = readonly [number, number, number, number];

export interface CocoCategory {
  id: number;
  name: string;
}

export interface CocoImage {
  id: number;
  width: number;
  height: number;
  fileName?: string;
}

export interface GtAnnotation {
  id: number;
  imageId: number;
  categoryId: number;
  bbox: Bbox;
  /** The annotation's `area` field (pycocotools uses it, not w*h, for the area ranges). */
  area: number;
  iscrowd: boolean;
}

/** Ground truth as in an instances.json (annotations in file order: the order matters for ties). */
export interface GroundTruth {
  images: CocoImage[];
  categories: CocoCategory[];
  annotations: GtAnnotation[];
}

/** One line of a COCO results file (bbox results). */
export interface CocoResult {
  image_id: number;
  category_id: number;
  bbox: Bbox | number[];
  score: number;
}

export interface AreaRange {
  label: string;
  min: number;
  max: number;
}

export interface EvalParams {
  iouThresholds: number[];
  recallThresholds: number[];
  areaRanges: AreaRange[];
  /** Ascending; the last one is the per-image, per-category cut used for matching. */
  maxDets: number[];
}

/** numpy.linspace(start, stop, num): k·step + start, the last point exactly `stop`. */
function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, k) => k * step + start);
  out[num - 1] = stop;
  return out;
}

/** pycocotools Params() for iouType 'bbox'. */
export function defaultParams(): EvalParams {
  return {
    iouThresholds: linspace(0.5, 0.95, 10),
    recallThresholds: linspace(0, 1, 101),
    areaRanges: [
      { label: 'all', min: 0, max: 1e5 ** 2 },
      { label: 'small', min: 0, max: 32 ** 2 },
      { label: 'medium', min: 32 ** 2, max: 96 ** 2 },
      { label: 'large', min: 96 ** 2, max: 1e5 ** 2 },
    ],
    maxDets: [1, 10, 100],
  };
}

/** The twelve pycocotools summary figures, as fractions (-1 where nothing could be scored). */
export interface CocoStats {
  AP: number;
  AP50: number;
  AP75: number;
  APs: number;
  APm: number;
  APl: number;
  AR1: number;
  AR10: number;
  AR100: number;
  ARs: number;
  ARm: number;
  ARl: number;
}

export const STAT_KEYS: readonly (keyof CocoStats)[] = [
  'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl',
];

export interface ClassResult {
  categoryId: number;
  name: string;
  /** Non-crowd GT boxes of this category in the evaluated images. */
  gt: number;
  /** Detections of this category in the evaluated images (before the per-image cut). */
  detections: number;
  /** AP@[.5:.95], AP@.5 and AR@100 over all areas; -1 when the category has no GT. */
  AP: number;
  AP50: number;
  AR100: number;
}

export interface CocoEvaluation {
  stats: CocoStats;
  perClass: ClassResult[];
  images: number;
  /** Detections that were scored (on the evaluated images and categories). */
  detections: number;
  /** Detections dropped because their image is not among the evaluated ones. */
  droppedOtherImages: number;
  /** Detections dropped because their category is not in the ground truth. */
  droppedUnknownCategory: number;
  params: EvalParams;
  /** precision[t][r][k][a][m] flattened in that order (T·R·K·A·M), -1 where undefined. */
  precision: Float64Array;
  /** recall[t][k][a][m] flattened (T·K·A·M). */
  recall: Float64Array;
  categoryIds: number[];
}

/** Stable order of indices by descending score (numpy argsort(-score, kind='mergesort')). */
function sortByScoreDesc(indices: number[], score: (i: number) => number): number[] {
  return indices.sort((a, b) => score(b) - score(a));
}

/** maskApi bbIou: rows are detections, columns GT boxes; crowd GT divide by the detection's area. */
function bboxIou(dts: Bbox[], gts: Bbox[], crowd: boolean[]): Float64Array {
  const D = dts.length;
  const G = gts.length;
  const out = new Float64Array(D * G);
  for (let g = 0; g < G; g++) {
    const [gx, gy, gw, gh] = gts[g];
    const ga = gw * gh;
    for (let d = 0; d < D; d++) {
      const [dx, dy, dw, dh] = dts[d];
      const w = Math.min(dw + dx, gw + gx) - Math.max(dx, gx);
      if (w <= 0) continue;
      const h = Math.min(dh + dy, gh + gy) - Math.max(dy, gy);
      if (h <= 0) continue;
      const i = w * h;
      const da = dw * dh;
      out[d * G + g] = i / (crowd[g] ? da : da + ga - i);
    }
  }
  return out;
}

/** Result of matching one image, one category, one area range (evaluateImg). */
interface ImageEval {
  /** Scores of the (sorted, cut) detections. */
  scores: Float64Array;
  /** [t * D + d]: 1 when matched at threshold t. */
  matched: Uint8Array;
  /** [t * D + d]: 1 when ignored at threshold t. */
  ignored: Uint8Array;
  /** GT boxes that are not ignored. */
  gtCount: number;
}

interface Det {
  imageId: number;
  categoryId: number;
  bbox: Bbox;
  score: number;
  area: number;
}

function validateResult(r: unknown, index: number, where: string): Det {
  const o = r as Partial<CocoResult> | null;
  const at = `${where}[${index}]`;
  if (typeof o !== 'object' || o === null) throw new ZeroqError('results-format', 'not an object', at);
  if (!Number.isInteger(o.image_id)) throw new ZeroqError('results-format', 'image_id is not an integer', at);
  if (!Number.isInteger(o.category_id)) throw new ZeroqError('results-format', 'category_id is not an integer', at);
  const b = o.bbox;
  if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new ZeroqError('results-format', 'bbox must be [x, y, w, h], four finite numbers', at);
  }
  if (typeof o.score !== 'number' || !Number.isFinite(o.score)) throw new ZeroqError('results-format', 'score is not a finite number', at);
  // pycocotools loadRes: area = w*h, iscrowd 0.
  return { imageId: o.image_id!, categoryId: o.category_id!, bbox: [b[0], b[1], b[2], b[3]], score: o.score, area: b[2] * b[3] };
}

export interface EvaluateOptions {
  /** Images to score (pycocotools params.imgIds); default every image of the ground truth. */
  imageIds?: readonly number[];
  params?: EvalParams;
  /** Names the results source in error messages. */
  resultsName?: string;
}

/**
 * Scores COCO bbox results against ground truth. Results for images outside `imageIds` are dropped;
 * results for an image the ground truth does not know are an error (pycocotools' loadRes refuses them).
 */
export function evaluateCoco(gt: GroundTruth, results: readonly unknown[], opts: EvaluateOptions = {}): CocoEvaluation {
  const p = opts.params ?? defaultParams();
  const resultsName = opts.resultsName ?? 'results';
  const knownImages = new Set(gt.images.map((im) => im.id));
  const imageIds = [...new Set(opts.imageIds ?? gt.images.map((im) => im.id))].sort((a, b) => a - b);
  const categoryIds = [...new Set(gt.categories.map((c) => c.id))].sort((a, b) => a - b);
  const catName = new Map(gt.categories.map((c) => [c.id, c.name]));
  const I = imageIds.length;
  const K = categoryIds.length;
  const T = p.iouThresholds.length;
  const R = p.recallThresholds.length;
  const A = p.areaRanges.length;
  const M = p.maxDets.length;
  const maxDet = p.maxDets[M - 1];
  const imgIndex = new Map(imageIds.map((id, i) => [id, i]));
  const catIndex = new Map(categoryIds.map((id, k) => [id, k]));

  // _prepare: group GT and detections by (category, image), keeping file order within a group.
  const gtGroups = new Map<number, GtAnnotation[]>();
  const gtPerClass = new Array<number>(K).fill(0);
  for (const a of gt.annotations) {
    const i = imgIndex.get(a.imageId);
    const k = catIndex.get(a.categoryId);
    if (i === undefined || k === undefined) continue;
    const key = k * I + i;
    let g = gtGroups.get(key);
    if (!g) gtGroups.set(key, (g = []));
    g.push(a);
    if (!a.iscrowd) gtPerClass[k]++;
  }
  const dtGroups = new Map<number, Det[]>();
  const detPerClass = new Array<number>(K).fill(0);
  let scored = 0;
  let droppedOtherImages = 0;
  let droppedUnknownCategory = 0;
  results.forEach((r, n) => {
    const d = validateResult(r, n, resultsName);
    if (!knownImages.has(d.imageId)) {
      throw new ZeroqError('results-image', `image_id ${d.imageId} is not in the ground truth`, `${resultsName}[${n}]`);
    }
    const i = imgIndex.get(d.imageId);
    if (i === undefined) {
      droppedOtherImages++;
      return;
    }
    const k = catIndex.get(d.categoryId);
    if (k === undefined) {
      droppedUnknownCategory++;
      return;
    }
    const key = k * I + i;
    let g = dtGroups.get(key);
    if (!g) dtGroups.set(key, (g = []));
    g.push(d);
    detPerClass[k]++;
    scored++;
  });

  // evaluate(): evalImgs[(k * A + a) * I + i]
  const evalImgs = new Array<ImageEval | undefined>(K * A * I);
  const iouCap = 1 - 1e-10;
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < I; i++) {
      const key = k * I + i;
      const gts = gtGroups.get(key) ?? [];
      const allDts = dtGroups.get(key) ?? [];
      if (gts.length === 0 && allDts.length === 0) continue;
      const order = sortByScoreDesc([...allDts.keys()], (j) => allDts[j].score).slice(0, maxDet);
      const dts = order.map((j) => allDts[j]);
      const D = dts.length;
      const G = gts.length;
      const ious = bboxIou(dts.map((d) => d.bbox), gts.map((g) => g.bbox), gts.map((g) => g.iscrowd));
      for (let a = 0; a < A; a++) {
        const { min, max } = p.areaRanges[a];
        const gtIgnoreOrig = gts.map((g) => g.iscrowd || g.area < min || g.area > max);
        // stable: non-ignored first, then ignored, each in file order
        const gtOrder = [...gtIgnoreOrig.keys()].sort((x, y) => Number(gtIgnoreOrig[x]) - Number(gtIgnoreOrig[y]));
        const gtIg = gtOrder.map((g) => gtIgnoreOrig[g]);
        const crowd = gtOrder.map((g) => gts[g].iscrowd);
        const matched = new Uint8Array(T * D);
        const ignored = new Uint8Array(T * D);
        if (D > 0 && G > 0) {
          const gtMatched = new Uint8Array(G);
          for (let t = 0; t < T; t++) {
            gtMatched.fill(0);
            for (let d = 0; d < D; d++) {
              let iou = Math.min(p.iouThresholds[t], iouCap);
              let m = -1;
              for (let gi = 0; gi < G; gi++) {
                if (gtMatched[gi] && !crowd[gi]) continue;
                // matched to a regular GT and only ignored ones remain
                if (m > -1 && !gtIg[m] && gtIg[gi]) break;
                const v = ious[d * G + gtOrder[gi]];
                if (v < iou) continue;
                iou = v;
                m = gi;
              }
              if (m === -1) continue;
              ignored[t * D + d] = gtIg[m] ? 1 : 0;
              matched[t * D + d] = 1;
              gtMatched[m] = 1;
            }
          }
        }
        for (let d = 0; d < D; d++) {
          const area = dts[d].area;
          if (!(area < min || area > max)) continue;
          for (let t = 0; t < T; t++) if (!matched[t * D + d]) ignored[t * D + d] = 1;
        }
        let gtCount = 0;
        for (const ig of gtIg) if (!ig) gtCount++;
        evalImgs[(k * A + a) * I + i] = { scores: Float64Array.from(dts, (d) => d.score), matched, ignored, gtCount };
      }
    }
  }

  // accumulate()
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const pIdx = (t: number, r: number, k: number, a: number, m: number) => (((t * R + r) * K + k) * A + a) * M + m;
  const rIdx = (t: number, k: number, a: number, m: number) => ((t * K + k) * A + a) * M + m;
  for (let k = 0; k < K; k++) {
    for (let a = 0; a < A; a++) {
      const E: ImageEval[] = [];
      for (let i = 0; i < I; i++) {
        const e = evalImgs[(k * A + a) * I + i];
        if (e) E.push(e);
      }
      if (E.length === 0) continue;
      let npig = 0;
      for (const e of E) npig += e.gtCount;
      for (let m = 0; m < M; m++) {
        if (npig === 0) continue;
        const cut = p.maxDets[m];
        // concatenated detections: (image eval, index within it)
        const srcE: number[] = [];
        const srcD: number[] = [];
        const scores: number[] = [];
        E.forEach((e, ei) => {
          const n = Math.min(cut, e.scores.length);
          for (let d = 0; d < n; d++) {
            srcE.push(ei);
            srcD.push(d);
            scores.push(e.scores[d]);
          }
        });
        const nd = scores.length;
        const order = sortByScoreDesc([...scores.keys()], (j) => scores[j]);
        const rc = new Float64Array(nd);
        const pr = new Float64Array(nd);
        for (let t = 0; t < T; t++) {
          let tp = 0;
          let fp = 0;
          for (let j = 0; j < nd; j++) {
            const e = E[srcE[order[j]]];
            const D = e.scores.length;
            const at = t * D + srcD[order[j]];
            if (!e.ignored[at]) {
              if (e.matched[at]) tp++;
              else fp++;
            }
            rc[j] = tp / npig;
            pr[j] = tp / (fp + tp + Number.EPSILON);
          }
          recall[rIdx(t, k, a, m)] = nd ? rc[nd - 1] : 0;
          for (let j = nd - 1; j > 0; j--) if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
          let lo = 0;
          for (let r = 0; r < R; r++) {
            // searchsorted(rc, recThr, 'left'): thresholds ascend, so the search resumes where it stopped
            const thr = p.recallThresholds[r];
            while (lo < nd && rc[lo] < thr) lo++;
            precision[pIdx(t, r, k, a, m)] = lo < nd ? pr[lo] : 0;
          }
        }
      }
    }
  }

  // summarize()
  const meanValid = (values: Iterable<number>): number => {
    let s = 0;
    let n = 0;
    for (const v of values) {
      if (v > -1) {
        s += v;
        n++;
      }
    }
    return n === 0 ? -1 : s / n;
  };
  const areaIndex = (label: string) => p.areaRanges.findIndex((r) => r.label === label);
  const maxDetIndex = (n: number) => p.maxDets.indexOf(n);
  function* apValues(tSel: number[], kSel: number[], a: number, m: number) {
    for (const t of tSel) for (let r = 0; r < R; r++) for (const k of kSel) yield precision[pIdx(t, r, k, a, m)];
  }
  function* arValues(tSel: number[], kSel: number[], a: number, m: number) {
    for (const t of tSel) for (const k of kSel) yield recall[rIdx(t, k, a, m)];
  }
  const allT = [...Array(T).keys()];
  const allK = [...Array(K).keys()];
  const tOf = (thr: number) => {
    const t = p.iouThresholds.indexOf(thr);
    return t < 0 ? [] : [t];
  };
  const mLast = M - 1;
  const AP = (tSel: number[], area: string, m: number, kSel = allK) => {
    const a = areaIndex(area);
    return a < 0 || m < 0 ? -1 : meanValid(apValues(tSel, kSel, a, m));
  };
  const AR = (area: string, m: number, kSel = allK) => {
    const a = areaIndex(area);
    return a < 0 || m < 0 ? -1 : meanValid(arValues(allT, kSel, a, m));
  };
  const stats: CocoStats = {
    AP: AP(allT, 'all', maxDetIndex(100)),
    AP50: AP(tOf(0.5), 'all', mLast),
    AP75: AP(tOf(0.75), 'all', mLast),
    APs: AP(allT, 'small', mLast),
    APm: AP(allT, 'medium', mLast),
    APl: AP(allT, 'large', mLast),
    AR1: AR('all', 0),
    AR10: AR('all', Math.min(1, mLast)),
    AR100: AR('all', Math.min(2, mLast)),
    ARs: AR('small', mLast),
    ARm: AR('medium', mLast),
    ARl: AR('large', mLast),
  };
  const perClass: ClassResult[] = categoryIds.map((id, k) => ({
    categoryId: id,
    name: catName.get(id) ?? String(id),
    gt: gtPerClass[k],
    detections: detPerClass[k],
    AP: AP(allT, 'all', mLast, [k]),
    AP50: AP(tOf(0.5), 'all', mLast, [k]),
    AR100: AR('all', mLast, [k]),
  }));
  return {
    stats,
    perClass,
    images: I,
    detections: scored,
    droppedOtherImages,
    droppedUnknownCategory,
    params: p,
    precision,
    recall,
    categoryIds,
  };
}

/** pycocotools' printed summary (fractions, three decimals). */
export function formatSummary(ev: CocoEvaluation): string {
  const p = ev.params;
  const f2 = (v: number) => v.toFixed(2);
  const lines: string[] = [];
  const row = (ap: boolean, iou: number | undefined, area: string, maxDets: number, v: number) => {
    const title = (ap ? 'Average Precision' : 'Average Recall').padEnd(18);
    const type = ap ? '(AP)' : '(AR)';
    const iouStr = (iou === undefined ? `${f2(p.iouThresholds[0])}:${f2(p.iouThresholds[p.iouThresholds.length - 1])}` : f2(iou)).padEnd(9);
    lines.push(` ${title} ${type} @[ IoU=${iouStr} | area=${area.padStart(6)} | maxDets=${String(maxDets).padStart(3)} ] = ${v.toFixed(3)}`);
  };
  const [m0, m1, m2] = [p.maxDets[0], p.maxDets[Math.min(1, p.maxDets.length - 1)], p.maxDets[p.maxDets.length - 1]];
  const s = ev.stats;
  row(true, undefined, 'all', 100, s.AP);
  row(true, 0.5, 'all', m2, s.AP50);
  row(true, 0.75, 'all', m2, s.AP75);
  row(true, undefined, 'small', m2, s.APs);
  row(true, undefined, 'medium', m2, s.APm);
  row(true, undefined, 'large', m2, s.APl);
  row(false, undefined, 'all', m0, s.AR1);
  row(false, undefined, 'all', m1, s.AR10);
  row(false, undefined, 'all', m2, s.AR100);
  row(false, undefined, 'small', m2, s.ARs);
  row(false, undefined, 'medium', m2, s.ARm);
  row(false, undefined, 'large', m2, s.ARl);
  return lines.join('\n') + '\n';
}
