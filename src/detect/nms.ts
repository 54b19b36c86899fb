/**
 * darknet's per-class greedy NMS (box.c do_nms_sort / diounms_sort): for each class, boxes in
 * decreasing probability; a box still alive suppresses every later box whose test exceeds the
 * threshold. Only boxes with a non-zero probability for the class take part.
 */

export type NmsTest = 'default' | 'greedynms' | 'diounms';

/** Boxes by centre and size, one entry per candidate. */
export interface CentreBoxes {
  x: Float64Array;
  y: Float64Array;
  w: Float64Array;
  h: Float64Array;
}

/** darknet box_iou: intersection over union of two centre-size boxes (0 when they do not overlap). */
export function boxIou(ax: number, ay: number, aw: number, ah: number, bx: number, by: number, bw: number, bh: number): number {
  const iw = Math.min(ax + aw / 2, bx + bw / 2) - Math.max(ax - aw / 2, bx - bw / 2);
  const ih = Math.min(ay + ah / 2, by + bh / 2) - Math.max(ay - ah / 2, by - bh / 2);
  if (iw < 0 || ih < 0) return 0;
  const i = iw * ih;
  const u = aw * ah + bw * bh - i;
  if (i === 0 || u === 0) return 0;
  return i / u;
}

/**
 * darknet box_diounms (box_diou is this with beta 0.6): IoU − (d²/c²)^beta, d the distance between
 * the centres, c the diagonal of the smallest box enclosing both.
 */
export function boxDiou(ax: number, ay: number, aw: number, ah: number, bx: number, by: number, bw: number, bh: number, beta: number): number {
  const iou = boxIou(ax, ay, aw, ah, bx, by, bw, bh);
  const cw = Math.max(ax + aw / 2, bx + bw / 2) - Math.min(ax - aw / 2, bx - bw / 2);
  const ch = Math.max(ay + ah / 2, by + bh / 2) - Math.min(ay - ah / 2, by - bh / 2);
  const c = cw * cw + ch * ch;
  if (c === 0) return iou;
  const d = (ax - bx) * (ax - bx) + (ay - by) * (ay - by);
  return iou - Math.pow(d / c, beta);
}

/**
 * Runs NMS on `probs` (n × classes, row per box) in place: suppressed entries become 0.
 * `greedynms` uses darknet's fixed exponent 0.6, `diounms` the cfg's beta_nms.
 */
export function nmsPerClass(boxes: CentreBoxes, probs: Float32Array, n: number, classes: number, test: NmsTest, thresh: number, betaNms = 0.6): void {
  const beta = test === 'greedynms' ? 0.6 : betaNms;
  // Boxes grouped by class (CSR), built in one pass so that classes without candidates cost nothing.
  const counts = new Int32Array(classes + 1);
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    for (let k = 0; k < classes; k++) if (probs[row + k] > 0) counts[k + 1]++;
  }
  for (let k = 0; k < classes; k++) counts[k + 1] += counts[k];
  const members = new Int32Array(counts[classes]);
  const fill = counts.slice(0, classes);
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    for (let k = 0; k < classes; k++) if (probs[row + k] > 0) members[fill[k]++] = i;
  }

  const { x, y, w, h } = boxes;
  for (let k = 0; k < classes; k++) {
    const list = Array.from(members.subarray(counts[k], counts[k + 1]));
    if (list.length < 2) continue;
    // Decreasing probability; equal probabilities keep candidate order.
    list.sort((a, b) => probs[b * classes + k] - probs[a * classes + k] || a - b);
    for (let ii = 0; ii < list.length; ii++) {
      const a = list[ii];
      if (probs[a * classes + k] === 0) continue;
      const ax = x[a], ay = y[a], aw = w[a], ah = h[a];
      for (let jj = ii + 1; jj < list.length; jj++) {
        const b = list[jj];
        const pj = b * classes + k;
        if (probs[pj] === 0) continue;
        const iou = boxIou(ax, ay, aw, ah, x[b], y[b], w[b], h[b]);
        // The DIoU tests are never above the IoU, so a low IoU settles every kind.
        if (iou <= thresh) continue;
        if (test === 'default' || boxDiou(ax, ay, aw, ah, x[b], y[b], w[b], h[b], beta) > thresh) probs[pj] = 0;
      }
    }
  }
}
