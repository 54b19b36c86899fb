import t from 'tap';
import path from 'node:path';
import sharp from 'sharp';
import { letterboxImage, loadImage, prepareFrame, resizeImage, type RgbImage } from '../src/detect/preprocess.js';
import type { Network } from '../src/model/ir.js';
import { ZeroqError } from '../src/util/errors.js';
import { dataPath } from '../src/util/paths.js';

/** An RGB image from one channel's rows; G = 255 − R, B = 7. */
function image(rows: number[][]): RgbImage {
  const height = rows.length;
  const width = rows[0].length;
  const data = new Uint8Array(width * height * 3);
  rows.flat().forEach((v, i) => data.set([v, 255 - v, 7], i * 3));
  return { data, width, height };
}

function redRows(img: RgbImage): number[][] {
  return Array.from({ length: img.height }, (_, y) => Array.from({ length: img.width }, (_, x) => img.data[(y * img.width + x) * 3]));
}

t.test('darknet resize on hand-checked images', async (t) => {
  // 3x2 → 2x3: w_scale 2 (column 0, then the last column copied); h_scale 0.5 (row, mean, last row)
  const a = resizeImage(image([[0, 100, 200], [50, 150, 250]]), 2, 3);
  t.same(redRows(a), [[0, 200], [25, 225], [50, 250]]);
  t.same([a.data[1], a.data[2]], [255, 7], 'other channels follow');
  t.ok(Math.abs(a.planar[2] - 25 / 255) < 1e-7 && Math.abs(a.planar[6 + 2] - 230 / 255) < 1e-7, 'float result kept, planar, in [0, 1]');
  // 4x1 → 3x1: w_scale 1.5: src0, 0.5·src1 + 0.5·src2, src3 (last column copied)
  t.same(redRows(resizeImage(image([[10, 20, 44, 90]]), 3, 1)), [[10, 32, 90]]);
  // 2x2 → 3x3: the middle is the mean of four
  t.same(redRows(resizeImage(image([[0, 100], [200, 40]]), 3, 3)), [[0, 50, 100], [100, 85, 70], [200, 120, 40]]);
  const same = image([[1, 2], [3, 4]]);
  t.same(resizeImage(same, 2, 2).data, same.data, 'same size is the identity');
});

t.test("darknet's last row: float rounding can leave it nearly black, and that is reproduced", async (t) => {
  // (665-1)/(320-1) in float32 times 319 is 663.99994: darknet takes (1-dy) ≈ 6e-5 of row 663 only.
  const white = (h: number): RgbImage => ({ data: new Uint8Array(2 * h * 3).fill(255), width: 2, height: h });
  const r665 = resizeImage(white(665), 2, 320);
  t.same([...r665.data.subarray(0, 319 * 6)].every((v) => v === 255), true, 'rows above stay white');
  t.same([...r665.data.subarray(319 * 6)], [0, 0, 0, 0, 0, 0], 'last row black');
  const r576 = resizeImage(white(576), 2, 320);
  t.ok(r576.data.every((v) => v === 255), 'a height without the rounding issue stays white');
});

t.test('letterbox: aspect kept, centred on grey 128', async (t) => {
  const img = image([[10, 20, 30, 40], [50, 60, 70, 80]]);
  const boxed = letterboxImage(img, 4, 4);
  t.same(redRows(boxed), [[128, 128, 128, 128], [10, 20, 30, 40], [50, 60, 70, 80], [128, 128, 128, 128]]);
  t.equal(boxed.data[2], 128, 'padding is grey in every channel');
});

t.test('loadImage: RGB, no EXIF rotation, grey and alpha handled', async (t) => {
  const dog = await loadImage(dataPath('reference', 'samples', 'dog.jpg'));
  t.same([dog.width, dog.height, dog.data.length], [768, 576, 768 * 576 * 3]);

  const dir = t.testdir({});
  // a 4x2 grey+alpha PNG
  const ga = path.join(dir, 'ga.png');
  await sharp(Buffer.from([10, 255, 20, 0, 30, 255, 40, 128, 50, 255, 60, 255, 70, 255, 80, 0]), { raw: { width: 4, height: 2, channels: 2 } })
    .png()
    .toFile(ga);
  const g = await loadImage(ga);
  t.same([g.width, g.height], [4, 2]);
  t.same([...g.data.subarray(0, 6)], [10, 10, 10, 20, 20, 20], 'grey expanded to RGB, alpha dropped');

  // an 8x4 JPEG tagged "rotate 90°": darknet (stb_image) ignores the tag, so do we
  const rotated = path.join(dir, 'rotated.jpg');
  await sharp({ create: { width: 8, height: 4, channels: 3, background: { r: 200, g: 10, b: 10 } } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toFile(rotated);
  const r = await loadImage(rotated);
  t.same([r.width, r.height], [8, 4]);

  await t.rejects(loadImage(path.join(dir, 'missing.jpg')), ZeroqError);
  await t.rejects(loadImage(path.join(dir, 'missing.jpg')), { code: 'image-read' });
});

t.test('prepareFrame gives the network-size frame and the original size', async (t) => {
  const net: Network = { name: 'n', input: { c: 3, h: 320, w: 320 }, letterbox: false, layers: [], heads: [] };
  const p = await prepareFrame(dataPath('reference', 'samples', 'dog.jpg'), net);
  t.same([p.width, p.height, p.frame.width, p.frame.height, p.frame.rgb.length], [768, 576, 320, 320, 320 * 320 * 3]);
  const full = await loadImage(dataPath('reference', 'samples', 'dog.jpg'));
  t.same(p.frame.rgb, resizeImage(full, 320, 320).data);
  const planar = p.frame.planar!;
  let off = 0;
  for (let i = 0; i < 320 * 320; i++) for (let k = 0; k < 3; k++) off = Math.max(off, Math.abs(planar[k * 320 * 320 + i] * 255 - p.frame.rgb[i * 3 + k]));
  t.ok(off <= 0.5 + 1e-4, `the 8-bit frame is its float image rounded (worst ${off.toFixed(4)})`);
  const slim = await prepareFrame(dataPath('reference', 'samples', 'dog.jpg'), net, { keepFloat: false });
  t.equal(slim.frame.planar, undefined, 'float image dropped on request');
  t.ok(slim.frame.rgb.every((v, i) => v === p.frame.rgb[i]), 'same 8-bit frame');
  const boxed = await prepareFrame(dataPath('reference', 'samples', 'dog.jpg'), { ...net, letterbox: true });
  t.same([...boxed.frame.rgb.subarray(0, 3)], [128, 128, 128], 'letterboxed frame starts in the padding');
});
