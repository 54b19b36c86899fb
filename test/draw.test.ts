// Drawing detections into RGB pictures (src/detect/draw.ts): the box outline in its class colour,
// the label band with black text, nothing outside them, and resampling that keeps flat areas flat.
import t from 'tap';
import { PALETTE, drawDetections, drawText, resizeRgb, textWidth, type RgbImage } from '../src/detect/draw.js';
import type { Detection } from '../src/detect/types.js';

const grey = (width: number, height: number, v = 128): RgbImage => ({ data: new Uint8Array(width * height * 3).fill(v), width, height });
const px = (img: RgbImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
const det = (classId: number, x: number, y: number, w: number, h: number): Detection =>
  ({ classId, className: 'dog', score: 0.87, box: { x, y, w, h } }) as Detection;

t.test('a box: its outline in the class colour, its inside and the rest untouched', async (t) => {
  const img = grey(200, 150);
  drawDetections(img, [det(3, 40, 50, 100, 60)], 1, 1);
  const colour = [...PALETTE[3]!];
  t.same(px(img, 90, 50), colour, 'top edge');
  t.same(px(img, 90, 109), colour, 'bottom edge');
  t.same(px(img, 40, 80), colour, 'left edge');
  t.same(px(img, 139, 80), colour, 'right edge');
  t.same(px(img, 90, 80), [128, 128, 128], 'inside');
  t.same(px(img, 190, 140), [128, 128, 128], 'far away');
  t.same(px(img, 150, 80), [128, 128, 128], 'just right of the box');
  // The label band sits above the box, in the class colour, with black text in it.
  let black = 0;
  let band = 0;
  for (let y = 30; y < 50; y++) for (let x = 40; x < 40 + textWidth('dog 87%', 1) + 2; x++) {
    const p = px(img, x, y);
    if (p.every((v) => v === 0)) black++;
    else if (p.join() === colour.join()) band++;
  }
  t.ok(black > 40, `label text drawn (${black} black pixels)`);
  t.ok(band > black, `label band drawn (${band} pixels)`);
});

t.test('boxes are scaled to the picture and clipped at its edges', async (t) => {
  const img = grey(100, 50);
  drawDetections(img, [det(0, -20, 10, 400, 500)], 0.5, 0.5);
  t.same(px(img, 50, 5), [...PALETTE[0]!], 'top edge at y 5');
  t.same(px(img, 50, 20), [128, 128, 128], 'inside');
});

t.test('every glyph differs from the unknown one; unknown characters still draw', async (t) => {
  const draw = (s: string) => {
    const img = grey(12, 10, 255);
    drawText(img, 1, 1, s, 1, [0, 0, 0]);
    return Buffer.from(img.data).toString('hex');
  };
  const unknown = draw('\u00e9');
  t.not(unknown, draw(' '), 'the unknown glyph is drawn');
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789%-_.') t.not(draw(c), unknown, c);
  t.equal(draw('A'), draw('a'), 'upper case drawn as lower case');
  t.equal(new Set([...'abcdefghijklmnopqrstuvwxyz0123456789'].map(draw)).size, 36, 'no two glyphs alike');
});

t.test('resampling keeps flat areas flat, halves a picture and copies one of the same size', async (t) => {
  const src = grey(64, 32, 77);
  const half = resizeRgb(src, 32, 16);
  t.same([half.width, half.height, half.data.length], [32, 16, 32 * 16 * 3]);
  t.ok(half.data.every((v) => v === 77));
  const same = resizeRgb(src, 64, 32);
  t.not(same.data, src.data, 'a copy');
  t.same(Buffer.from(same.data), Buffer.from(src.data));
  // A left-right ramp stays a ramp.
  const ramp = grey(8, 1);
  for (let x = 0; x < 8; x++) ramp.data.fill(x * 32, x * 3, x * 3 + 3);
  const r = resizeRgb(ramp, 4, 1);
  const reds = [0, 1, 2, 3].map((x) => r.data[x * 3]!);
  t.same(reds, [16, 80, 144, 208]);
});
