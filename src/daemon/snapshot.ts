/**
 * Annotated snapshots: the frame as JPEG with the detections drawn on it (an SVG overlay
 * composited by sharp). The picture is shown at the camera's aspect ratio, its longest side at most
 * maxSize pixels.
 */
import type { Detection } from '../detect/types.js';
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

const PALETTE = ['#e6194b', '#3cb44b', '#ffe119', '#4363d8', '#f58231', '#911eb4', '#46f0f0', '#f032e6', '#bcf60c', '#fabebe'];

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string);
}

/** Output size for a picture of srcW×srcH with the longest side at most maxSize. */
export function snapshotSize(srcW: number, srcH: number, maxSize: number): { width: number; height: number } {
  const s = Math.min(1, maxSize / Math.max(srcW, srcH));
  return { width: Math.max(1, Math.round(srcW * s)), height: Math.max(1, Math.round(srcH * s)) };
}

export function overlaySvg(dets: readonly Detection[], sx: number, sy: number, width: number, height: number): string {
  const font = Math.max(10, Math.round(Math.min(width, height) / 30));
  const stroke = Math.max(1, Math.round(font / 6));
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`];
  for (const d of dets) {
    const colour = PALETTE[d.classId % PALETTE.length];
    const x = d.box.x * sx;
    const y = d.box.y * sy;
    const w = d.box.w * sx;
    const h = d.box.h * sy;
    const label = escapeXml(`${d.className} ${(d.score * 100).toFixed(0)}%`);
    const ty = y - font - 2 >= 0 ? y - font - 2 : y;
    const tw = Math.round(label.length * font * 0.6) + 4;
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h.toFixed(1)}" fill="none" stroke="${colour}" stroke-width="${stroke}"/>`,
      `<rect x="${x.toFixed(1)}" y="${ty.toFixed(1)}" width="${tw}" height="${font + 2}" fill="${colour}"/>`,
      `<text x="${(x + 2).toFixed(1)}" y="${(ty + font - 1).toFixed(1)}" font-family="sans-serif" font-size="${font}" fill="#000">${label}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

/** The picture being made: pictures are made one at a time (see renderSnapshot). */
let queue: Promise<unknown> = Promise.resolve();

/**
 * The picture of a frame with its boxes, as JPEG. Pictures are made one after another, whoever asks
 * (snapshots, the live view, event pictures): each takes libvips and pango 10–15 MB while it is made,
 * and several ending events at once would otherwise make their pictures side by side.
 */
export function renderSnapshot(s: SnapshotInput, maxSize: number, quality: number): Promise<Buffer> {
  const next = queue.then(() => render(s, maxSize, quality));
  queue = next.catch(() => undefined);
  return next;
}

async function render(s: SnapshotInput, maxSize: number, quality: number): Promise<Buffer> {
  const out = snapshotSize(s.srcWidth, s.srcHeight, maxSize);
  const svg = overlaySvg(s.detections, out.width / s.srcWidth, out.height / s.srcHeight, out.width, out.height);
  const sharp = await loadSharp();
  return sharp(Buffer.from(s.rgb.buffer, s.rgb.byteOffset, s.rgb.byteLength), { raw: { width: s.width, height: s.height, channels: 3 } })
    .resize(out.width, out.height, { fit: 'fill' })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .jpeg({ quality })
    .toBuffer()
    .finally(trimMalloc);
}
