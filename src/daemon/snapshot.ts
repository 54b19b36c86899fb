/**
 * Annotated snapshots: the frame as JPEG with the detections drawn on it (src/detect/draw.ts) and
 * encoded by src/daemon/jpeg.ts. The picture is shown at the camera's aspect ratio, its longest side at most
 * maxSize pixels.
 */
import type { Detection } from '../detect/types.js';
import { drawDetections } from '../detect/draw.js';
import { encodeJpeg } from './jpeg.js';
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
 * (snapshots, the live view, event pictures): each takes a few MB while it is made,
 * and several ending events at once would otherwise make their pictures side by side.
 */
export function renderSnapshot(s: SnapshotInput, maxSize: number, quality: number): Promise<Buffer> {
  const next = queue.then(() => render(s, maxSize, quality));
  queue = next.catch(() => undefined);
  return next;
}

async function render(s: SnapshotInput, maxSize: number, quality: number): Promise<Buffer> {
  // Drawn on a copy at the frame's own size (often smaller than the camera's); the encoder resamples
  // to the picture's size on its thread, not on the one that carries the frames.
  const img = { data: new Uint8Array(s.rgb), width: s.width, height: s.height };
  drawDetections(img, s.detections, s.width / s.srcWidth, s.height / s.srcHeight);
  return encodeJpeg(img, quality, snapshotSize(s.srcWidth, s.srcHeight, maxSize)).finally(trimMalloc);
}
