/**
 * YOLO head tensors → detections, as darknet does it: yolo_layer.c (activations, get_yolo_box,
 * get_yolo_detections, correct_yolo_boxes), the cfg's NMS (box.c), and print_cocos' clipping.
 */
import type { HeadTensor } from '../engine/engine.js';
import type { Network, YoloLayer } from '../model/ir.js';
import { ZeroqError } from '../util/errors.js';
import { COCO_NAMES } from './names.js';
import { nmsPerClass, type CentreBoxes, type NmsTest } from './nms.js';
import { letterboxSize } from './preprocess.js';
import type { DecodeOptions, Detection } from './types.js';

/** darknet `detector test` defaults. */
export const DEFAULT_DECODE: DecodeOptions = { threshold: 0.25, nms: 0.45, maxDetections: 100 };

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

function yoloLayerOf(net: Network, head: HeadTensor): YoloLayer {
  const l = net.layers[head.layer];
  if (!l || l.kind !== 'yolo') throw new ZeroqError('head-shape', `head tensor for layer ${head.layer}, which is not a yolo layer`, net.name);
  const want = l.mask.length * (5 + l.classes);
  if (head.c !== want || head.data.length !== head.c * head.h * head.w) {
    throw new ZeroqError(
      'head-shape',
      `head is ${head.c}x${head.h}x${head.w} (${head.data.length} values), the yolo layer needs ${want} channels (${l.mask.length} anchors × (5 + ${l.classes}))`,
      l.source ?? `layer ${l.index} (yolo)`,
    );
  }
  return l;
}

/** Candidate boxes (objectness above threshold) with their per-class probabilities. */
interface Candidates extends CentreBoxes {
  n: number;
  classes: number;
  probs: Float32Array;
}

function collect(heads: HeadTensor[], net: Network, imgW: number, imgH: number, opts: DecodeOptions): Candidates {
  const layers = heads.map((h) => yoloLayerOf(net, h));
  const classes = layers.length ? layers[0].classes : 0;
  let capacity = 0;
  heads.forEach((h, k) => {
    if (layers[k].classes !== classes) throw new ZeroqError('head-shape', 'yolo layers with different class counts', net.name);
    capacity += h.h * h.w * layers[k].mask.length;
  });
  const x = new Float64Array(capacity);
  const y = new Float64Array(capacity);
  const w = new Float64Array(capacity);
  const h = new Float64Array(capacity);
  const probs = new Float32Array(capacity * classes);
  const thresh = opts.threshold;
  const netW = net.input.w;
  const netH = net.input.h;
  let n = 0;

  heads.forEach((head, hk) => {
    const l = layers[hk];
    const plane = head.w * head.h;
    const d = head.data;
    const act = l.newCoords ? (v: number) => v : sigmoid;
    const sxy = l.scaleXY;
    const shift = -0.5 * (sxy - 1);
    for (let i = 0; i < plane; i++) {
      const row = Math.trunc(i / head.w);
      const col = i % head.w;
      for (let a = 0; a < l.mask.length; a++) {
        const base = a * (5 + classes) * plane + i;
        const objectness = act(d[base + 4 * plane]);
        if (!(objectness > thresh)) continue;
        const anchor = l.mask[a];
        const tw = d[base + 2 * plane];
        const th = d[base + 3 * plane];
        x[n] = (col + act(d[base]) * sxy + shift) / head.w;
        y[n] = (row + act(d[base + plane]) * sxy + shift) / head.h;
        if (l.newCoords) {
          w[n] = (tw * tw * 4 * l.anchors[2 * anchor]) / netW;
          h[n] = (th * th * 4 * l.anchors[2 * anchor + 1]) / netH;
        } else {
          w[n] = (Math.exp(tw) * l.anchors[2 * anchor]) / netW;
          h[n] = (Math.exp(th) * l.anchors[2 * anchor + 1]) / netH;
        }
        const p = n * classes;
        for (let k = 0; k < classes; k++) {
          const prob = objectness * act(d[base + (5 + k) * plane]);
          probs[p + k] = prob > thresh ? prob : 0;
        }
        n++;
      }
    }
  });

  // correct_yolo_boxes: undo the letterbox, then to pixels unless NMS runs in relative coordinates.
  let newW = netW;
  let newH = netH;
  if (net.letterbox) ({ w: newW, h: newH } = letterboxSize(imgW, imgH, netW, netH));
  const offX = (netW - newW) / 2 / netW;
  const offY = (netH - newH) / 2 / netH;
  const ratioW = newW / netW;
  const ratioH = newH / netH;
  const sx = opts.nmsSpace === 'relative' ? 1 : imgW;
  const sy = opts.nmsSpace === 'relative' ? 1 : imgH;
  for (let i = 0; i < n; i++) {
    x[i] = ((x[i] - offX) / ratioW) * sx;
    y[i] = ((y[i] - offY) / ratioH) * sy;
    w[i] = (w[i] / ratioW) * sx;
    h[i] = (h[i] / ratioH) * sy;
  }
  return { n, classes, x, y, w, h, probs };
}

/**
 * Decodes the head tensors of one image (imgW × imgH pixels) into detections: one per (box, class)
 * whose probability survives threshold and NMS, box in image pixels clipped to the image, highest
 * scores first, at most opts.maxDetections. NMS kind and beta come from the cfg unless overridden.
 */
export function decodeHeads(
  heads: HeadTensor[],
  net: Network,
  imgW: number,
  imgH: number,
  opts: DecodeOptions,
  names?: readonly string[],
): Detection[] {
  const cand = collect(heads, net, imgW, imgH, opts);
  const { n, classes, x, y, w, h, probs } = cand;
  if (opts.nms > 0 && n > 1) {
    const first = net.layers[heads[0].layer] as YoloLayer;
    const kind = opts.nmsKind ?? first.nmsKind;
    // darknet's cornersnms suppresses on plain IoU (its box merging is commented out).
    const test: NmsTest = kind === 'greedynms' || kind === 'diounms' ? kind : 'default';
    nmsPerClass(cand, probs, n, classes, test, opts.nms, first.betaNms);
  }

  const labels = names ?? (classes === COCO_NAMES.length ? COCO_NAMES : undefined);
  const sx = opts.nmsSpace === 'relative' ? imgW : 1;
  const sy = opts.nmsSpace === 'relative' ? imgH : 1;
  const dets: Detection[] = [];
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    let boxDone = false;
    let bx = 0, by = 0, bw = 0, bh = 0;
    for (let k = 0; k < classes; k++) {
      const score = probs[row + k];
      if (!(score > 0)) continue;
      if (!boxDone) {
        const cx = x[i] * sx, cy = y[i] * sy, ww = w[i] * sx, hh = h[i] * sy;
        const xmin = Math.max(0, cx - ww / 2);
        const xmax = Math.min(imgW, cx + ww / 2);
        const ymin = Math.max(0, cy - hh / 2);
        const ymax = Math.min(imgH, cy + hh / 2);
        bx = xmin; by = ymin; bw = xmax - xmin; bh = ymax - ymin;
        boxDone = true;
      }
      dets.push({ classId: k, className: labels?.[k] ?? String(k), score, box: { x: bx, y: by, w: bw, h: bh } });
    }
  }
  dets.sort((a, b) => b.score - a.score);
  return dets.length > opts.maxDetections ? dets.slice(0, Math.max(0, opts.maxDetections)) : dets;
}
