/**
 * Detections drawn straight into an RGB picture: box outlines, a label band and the label in a
 * 5x7 bitmap font. Drawing in place keeps librsvg, pango and fontconfig out of the process (an SVG
 * overlay through sharp took 10 MB and more of a small board's memory for each picture).
 */
import type { Detection } from './types.js';
import type { RgbImage } from './preprocess.js';

export const PALETTE: readonly (readonly [number, number, number])[] = [
  [0xe6, 0x19, 0x4b], [0x3c, 0xb4, 0x4b], [0xff, 0xe1, 0x19], [0x43, 0x63, 0xd8], [0xf5, 0x82, 0x31],
  [0x91, 0x1e, 0xb4], [0x46, 0xf0, 0xf0], [0xf0, 0x32, 0xe6], [0xbc, 0xf6, 0x0c], [0xfa, 0xbe, 0xbe],
];

// Glyph rows top to bottom, 5 bits each, the leftmost pixel in bit 4.
const GLYPHS: Record<string, readonly number[]> = {
  ' ': [0, 0, 0, 0, 0, 0, 0],
  '0': [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
  '1': [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
  '2': [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
  '3': [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
  '4': [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
  '5': [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
  '6': [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
  '7': [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
  '8': [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
  '9': [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
  '%': [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011],
  '-': [0, 0, 0, 0b11111, 0, 0, 0],
  '_': [0, 0, 0, 0, 0, 0, 0b11111],
  '.': [0, 0, 0, 0, 0, 0b01100, 0b01100],
  a: [0, 0, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111],
  b: [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110],
  c: [0, 0, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110],
  d: [0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111],
  e: [0, 0, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110],
  f: [0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000],
  g: [0, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110],
  h: [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001],
  i: [0b00100, 0, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110],
  j: [0b00010, 0, 0b00110, 0b00010, 0b00010, 0b10010, 0b01100],
  k: [0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010],
  l: [0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
  m: [0, 0, 0b11010, 0b10101, 0b10101, 0b10001, 0b10001],
  n: [0, 0, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001],
  o: [0, 0, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110],
  p: [0, 0, 0b11110, 0b10001, 0b11110, 0b10000, 0b10000],
  q: [0, 0, 0b01101, 0b10011, 0b01111, 0b00001, 0b00001],
  r: [0, 0, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000],
  s: [0, 0, 0b01110, 0b10000, 0b01110, 0b00001, 0b11110],
  t: [0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110],
  u: [0, 0, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101],
  v: [0, 0, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
  w: [0, 0, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010],
  x: [0, 0, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001],
  y: [0, 0, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110],
  z: [0, 0, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111],
};
/** Drawn for a character the font does not have (after lower-casing). */
const UNKNOWN = [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111];

/** Width in pixels of a text drawn at a scale (each glyph 5 columns plus one of space). */
export function textWidth(text: string, scale: number): number {
  return text.length * 6 * scale;
}

export function fillRect(img: RgbImage, x0: number, y0: number, w: number, h: number, c: readonly number[]): void {
  const xa = Math.max(0, Math.round(x0));
  const ya = Math.max(0, Math.round(y0));
  const xb = Math.min(img.width, Math.round(x0 + w));
  const yb = Math.min(img.height, Math.round(y0 + h));
  const d = img.data;
  for (let y = ya; y < yb; y++) {
    for (let i = (y * img.width + xa) * 3, e = (y * img.width + xb) * 3; i < e; i += 3) {
      d[i] = c[0]!;
      d[i + 1] = c[1]!;
      d[i + 2] = c[2]!;
    }
  }
}

export function strokeRect(img: RgbImage, x: number, y: number, w: number, h: number, stroke: number, c: readonly number[]): void {
  fillRect(img, x, y, w, stroke, c);
  fillRect(img, x, y + h - stroke, w, stroke, c);
  fillRect(img, x, y, stroke, h, c);
  fillRect(img, x + w - stroke, y, stroke, h, c);
}

export function drawText(img: RgbImage, x: number, y: number, text: string, scale: number, c: readonly number[]): void {
  let gx = Math.round(x);
  const gy = Math.round(y);
  for (const ch of text) {
    const rows = GLYPHS[ch] ?? GLYPHS[ch.toLowerCase()] ?? UNKNOWN;
    for (let r = 0; r < 7; r++) {
      const bits = rows[r]!;
      for (let col = 0; col < 5; col++) {
        if (bits & (0b10000 >> col)) fillRect(img, gx + col * scale, gy + r * scale, scale, scale, c);
      }
    }
    gx += 6 * scale;
  }
}

/**
 * Boxes and labels drawn on img; boxes are in a space of img.width/sx by img.height/sy (camera
 * pixels), so sx and sy scale them to the picture.
 */
export function drawDetections(img: RgbImage, dets: readonly Detection[], sx: number, sy: number): void {
  const font = Math.max(10, Math.round(Math.min(img.width, img.height) / 30));
  const scale = Math.max(1, Math.round(font / 8));
  const stroke = Math.max(1, Math.round(font / 6));
  for (const d of dets) {
    const colour = PALETTE[d.classId % PALETTE.length]!;
    const x = d.box.x * sx;
    const y = d.box.y * sy;
    strokeRect(img, x, y, d.box.w * sx, d.box.h * sy, stroke, colour);
    const label = `${d.className} ${(d.score * 100).toFixed(0)}%`;
    const band = 7 * scale + 2 * scale;
    const ty = y - band >= 0 ? y - band : y;
    fillRect(img, x, ty, textWidth(label, scale) + 2 * scale, band, colour);
    drawText(img, x + 2 * scale, ty + scale, label, scale, [0, 0, 0]);
  }
}
