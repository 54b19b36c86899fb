/**
 * Annotated snapshots: the frame as JPEG with the detections drawn on it (src/detect/draw.ts; sharp
 * only encodes). The picture is shown at the camera's aspect ratio, its longest side at most
 * maxSize pixels.
 */
import type { Detection } from '../detect/types.js';
import { drawDetections, resizeRgb } from '../detect/draw.js';
import { loadSharp } from '../util/sharp.js';
import { trimMalloc } from './malloc.js';

export interface SnapshotInput {
  rgb: Uint8Array;
  width: number;
  height: number;
  /** The coordinate space of the boxes (camera pixels). */
  srcWidth: number;
  srcHeight: number;
  detections: readonly Detection[];
}

/** Output size for a picture of srcW×srcH with the longest side at most maxSize. */
export function snapshotSize(srcW: number, srcH: number, maxSize: number): { width: number; height: number } {
  const s = Math.min(1, maxSize / Math.max(srcW, srcH));
  return { width: Math.max(1, Math.round(srcW * s)), height: Math.max(1, Math.round(srcH * s)) };
}

/** The picture being made: pictures are made one at a time (see renderSnapshot). */
let queue: Promise<unknown> = Promise.resolve();

/**
 * The picture of a frame with its boxes, as JPEG. Pictures are made one after another, whoever asks
 * (snapshots, the live view, event pictures): each takes libvips a few MB while it is made,
 * and several ending events at once would otherwise make their pictures side by side.
 */
export function renderSnapshot(s: SnapshotInput, maxSize: number, quality: number): Promise<Buffer> {
  const next = queue.then(() => render(s, maxSize, quality));
  queue = next.catch(() => undefined);
  return next;
}

async function render(s: SnapshotInput, maxSize: number, quality: number): Promise<Buffer> {
  const out = snapshotSize(s.srcWidth, s.srcHeight, maxSize);
  const img = resizeRgb({ data: s.rgb, width: s.width, height: s.height }, out.width, out.height);
  drawDetections(img, s.detections, out.width / s.srcWidth, out.height / s.srcHeight);
  const sharp = await loadSharp();
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer()
    .finally(trimMalloc);
}
