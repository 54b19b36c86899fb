/**
 * Training losses on the head tensors (the raw inputs of the yolo layers, batch-major CHW with
 * channels anchor*(5+classes) + [x, y, w, h, objectness, classes...]).
 *
 * Distillation (no labels needed): binary cross-entropy between the student's and the float
 * teacher's sigmoid outputs for x, y, objectness and classes, reported minus the teacher's entropy
 * (0 when they agree), plus squared error on the raw w, h weighted by the teacher's objectness.
 * With 'objectness' weighting (the default) the x, y and class terms are weighted by the teacher's
 * objectness too: a detection's score is objectness × class probability, so class outputs where the
 * teacher sees no object do not matter, yet summed over every position and 80 classes they are ~95%
 * of the unweighted loss, and fitting them drove a W4 student to flat, useless objectness.
 * With labels: the YOLOv3 loss against darknet label boxes (responsible anchor by shape IoU).
 */
import type { Network, YoloLayer } from '../model/ir.js';

export interface LossResult {
  /** Mean over the batch of the per-image loss. */
  loss: number;
  /** dLoss/d(head value), one array per head like the inputs. */
  grads: Float32Array[];
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
/** log(sigmoid(v)) without overflow. */
const logSig = (v: number): number => (v >= 0 ? -Math.log1p(Math.exp(-v)) : v - Math.log1p(Math.exp(v)));

/** BCE(sigmoid(s) against target p) minus the entropy of p. */
function bceExcess(s: number, p: number): number {
  const ls = logSig(s);
  const l1s = logSig(-s);
  const ent = (p > 0 ? p * Math.log(p) : 0) + (p < 1 ? (1 - p) * Math.log(1 - p) : 0);
  return ent - (p * ls + (1 - p) * l1s);
}

function headGeometry(net: Network, k: number, data: Float32Array, n: number) {
  const y = net.layers[net.heads[k]] as YoloLayer;
  const src = net.layers[y.inputs[0]].out;
  const E = 5 + y.classes;
  const A = y.mask.length;
  const hw = src.h * src.w;
  if (A * E !== src.c || data.length !== n * src.c * hw) throw new Error(`head ${k}: tensor does not match the yolo layer`);
  return { y, E, A, hw, H: src.h, W: src.w, per: src.c * hw };
}

export type DistillWeighting = 'objectness' | 'uniform';

export function distillationLoss(
  net: Network, student: Float32Array[], teacher: Float32Array[], n: number, weighting: DistillWeighting = 'objectness',
): LossResult {
  const weighted = weighting === 'objectness';
  let total = 0;
  const grads = student.map((s, k) => {
    const { E, A, hw, per } = headGeometry(net, k, s, n);
    const t = teacher[k];
    const g = new Float32Array(s.length);
    for (let b = 0; b < n; b++)
      for (let a = 0; a < A; a++) {
        const base = b * per + a * E * hw;
        for (let p = 0; p < hw; p++) {
          const obj = sigmoid(t[base + 4 * hw + p]);
          for (let e = 0; e < E; e++) {
            const i = base + e * hw + p;
            if (e === 2 || e === 3) {
              const d = s[i] - t[i];
              total += obj * d * d;
              g[i] = 2 * obj * d;
            } else {
              const pt = sigmoid(t[i]);
              const wgt = weighted && e !== 4 ? obj : 1;
              total += wgt * bceExcess(s[i], pt);
              g[i] = wgt * (sigmoid(s[i]) - pt);
            }
          }
        }
      }
    for (let i = 0; i < g.length; i++) g[i] /= n;
    return g;
  });
  return { loss: total / n, grads };
}

/** One darknet label: class and box relative to the image (centre, size). */
export interface LabelBox {
  cls: number;
  cx: number;
  cy: number;
  w: number;
  h: number;
}

const iouWH = (w1: number, h1: number, w2: number, h2: number): number => {
  const inter = Math.min(w1, w2) * Math.min(h1, h2);
  return inter / (w1 * h1 + w2 * h2 - inter);
};

function iou(ax: number, ay: number, aw: number, ah: number, b: LabelBox): number {
  const x0 = Math.max(ax - aw / 2, b.cx - b.w / 2);
  const x1 = Math.min(ax + aw / 2, b.cx + b.w / 2);
  const y0 = Math.max(ay - ah / 2, b.cy - b.h / 2);
  const y1 = Math.min(ay + ah / 2, b.cy + b.h / 2);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  return inter / (aw * ah + b.w * b.h - inter);
}

/**
 * YOLOv3 loss against labels (letterbox-free frames: label coordinates are relative to the frame):
 * for each box the anchor of best shape IoU over all heads is responsible, with BCE on x, y,
 * objectness and classes and squared error on log-scale w, h (weighted 2 - w*h); every other
 * position's objectness is pushed to 0 unless its predicted box overlaps a label by more than
 * `ignore`.
 */
export function labelLoss(net: Network, student: Float32Array[], labels: LabelBox[][], n: number, ignore = 0.7): LossResult {
  let total = 0;
  const anchorsOf = (net.layers[net.heads[0]] as YoloLayer).anchors;
  const nA = anchorsOf.length / 2;
  const grads = student.map((s, k) => {
    const { y, E, A, hw, H, W, per } = headGeometry(net, k, s, n);
    const g = new Float32Array(s.length);
    const netW = net.input.w;
    const netH = net.input.h;
    for (let b = 0; b < n; b++) {
      const boxes = labels[b] ?? [];
      const responsible = new Set<number>();
      for (const box of boxes) {
        let best = 0;
        let bestIou = -1;
        for (let j = 0; j < nA; j++) {
          const v = iouWH(box.w * netW, box.h * netH, anchorsOf[2 * j], anchorsOf[2 * j + 1]);
          if (v > bestIou) (bestIou = v), (best = j);
        }
        const a = y.mask.indexOf(best);
        if (a < 0) continue;
        const cx = Math.min(W - 1, Math.floor(box.cx * W));
        const cy = Math.min(H - 1, Math.floor(box.cy * H));
        const p = cy * W + cx;
        const base = b * per + a * E * hw + p;
        responsible.add(a * hw + p);
        const scale = 2 - box.w * box.h;
        const tx = box.cx * W - cx;
        const ty = box.cy * H - cy;
        const tw = Math.log((box.w * netW) / y.anchors[2 * best]);
        const th = Math.log((box.h * netH) / y.anchors[2 * best + 1]);
        for (const [e, target] of [[0, tx], [1, ty]] as const) {
          total += scale * bceExcess(s[base + e * hw], target);
          g[base + e * hw] += scale * (sigmoid(s[base + e * hw]) - target);
        }
        for (const [e, target] of [[2, tw], [3, th]] as const) {
          const d = s[base + e * hw] - target;
          total += scale * 0.5 * d * d;
          g[base + e * hw] += scale * d;
        }
        total += bceExcess(s[base + 4 * hw], 1);
        g[base + 4 * hw] = sigmoid(s[base + 4 * hw]) - 1;
        for (let c = 0; c < y.classes; c++) {
          const target = c === box.cls ? 1 : 0;
          total += bceExcess(s[base + (5 + c) * hw], target);
          g[base + (5 + c) * hw] += sigmoid(s[base + (5 + c) * hw]) - target;
        }
      }
      // Objectness of the positions no label is assigned to.
      for (let a = 0; a < A; a++)
        for (let p = 0; p < hw; p++) {
          if (responsible.has(a * hw + p)) continue;
          const base = b * per + a * E * hw + p;
          const px = ((p % W) + sigmoid(s[base])) / W;
          const py = (Math.floor(p / W) + sigmoid(s[base + hw])) / H;
          const pw = (Math.exp(s[base + 2 * hw]) * y.anchors[2 * y.mask[a]]) / netW;
          const ph = (Math.exp(s[base + 3 * hw]) * y.anchors[2 * y.mask[a] + 1]) / netH;
          let over = 0;
          for (const box of boxes) over = Math.max(over, iou(px, py, pw, ph, box));
          if (over > ignore) continue;
          total += bceExcess(s[base + 4 * hw], 0);
          g[base + 4 * hw] = sigmoid(s[base + 4 * hw]);
        }
    }
    for (let i = 0; i < g.length; i++) g[i] /= n;
    return g;
  });
  return { loss: total / n, grads };
}
