// Drawing detections into RGB pictures (src/detect/draw.ts): the box outline in its class colour,
// the label band with black text, and nothing outside them.
import t from 'tap';
import { PALETTE, drawDetections, drawText, textWidth } from '../src/detect/draw.js';
import type { RgbImage } from '../src/detect/preprocess.js';
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
