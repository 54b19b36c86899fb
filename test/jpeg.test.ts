// The daemon's JPEG encoder (src/daemon/native/jpeg.cc through src/daemon/jpeg.ts): its pictures
// decode with libjpeg (through sharp) at the size given and close to the pixels given, at every size
// (MCU edges), on noise (long Huffman codes) and on flat pictures (a single symbol per table).
import t from 'tap';
import sharp from 'sharp';
import { encodeJpeg, jpegEncoder } from '../src/daemon/jpeg.js';
import { dataPath } from '../src/util/paths.js';
import type { RgbImage } from '../src/detect/preprocess.js';

async function decode(jpeg: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(jpeg, { failOn: 'warning' }).raw().toBuffer({ resolveWithObject: true });
  t.equal(info.channels, 3);
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255 * a.length) / se);
}

t.test('the native encoder is built and used', async (t) => {
  t.equal(jpegEncoder(), 'native');
});

t.test('a photograph: decodes to the same size and pixels within the quality asked for', async (t) => {
  const { data, info } = await sharp(dataPath('reference', 'samples', 'dog.jpg')).raw().toBuffer({ resolveWithObject: true });
  const img = { data: new Uint8Array(data), width: info.width, height: info.height };
  let lastSize = 0;
  let lastPsnr = 0;
  for (const q of [30, 60, 90]) {
    const jpeg = await encodeJpeg(img, q);
    t.same([jpeg[0], jpeg[1], jpeg[jpeg.length - 2], jpeg[jpeg.length - 1]], [0xff, 0xd8, 0xff, 0xd9], 'SOI ... EOI');
    const back = await decode(jpeg);
    t.same([back.width, back.height], [img.width, img.height]);
    const p = psnr(back.data, img.data);
    // libvips at the same quality, for the yardstick.
    const ref = await decode(await sharp(data, { raw: { width: img.width, height: img.height, channels: 3 } }).jpeg({ quality: q }).toBuffer());
    t.ok(p > psnr(ref.data, img.data) - 0.5, `quality ${q}: ${p.toFixed(2)} dB, ${jpeg.length} bytes (libvips ${psnr(ref.data, img.data).toFixed(2)} dB)`);
    t.ok(jpeg.length > lastSize && p > lastPsnr, 'higher quality: more bytes, closer pixels');
    lastSize = jpeg.length;
    lastPsnr = p;
  }
});

t.test('every size around the 16-pixel blocks, noise and flat pictures decode', async (t) => {
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (const [w, h] of [[1, 1], [7, 3], [16, 16], [17, 9], [33, 65], [640, 427]] as const) {
    const noise = { data: Uint8Array.from({ length: w * h * 3 }, rand), width: w, height: h };
    const flat = { data: new Uint8Array(w * h * 3).fill(200), width: w, height: h };
    const n = await decode(await encodeJpeg(noise, 95));
    t.same([n.width, n.height], [w, h], `noise ${w}x${h}`);
    // Noise loses most of its colour to the halved chroma; libvips (also 4:2:0) is the yardstick.
    const ref = await decode(await sharp(noise.data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 95 }).toBuffer());
    const [p, pr] = [psnr(n.data, noise.data), psnr(ref.data, noise.data)];
    t.ok(p >= pr - 1, `noise ${w}x${h}: ${p.toFixed(1)} dB (libvips ${pr.toFixed(1)} dB)`);
    const f = await decode(await encodeJpeg(flat, 50));
    t.ok(f.data.every((v) => Math.abs(v - 200) <= 2), `flat ${w}x${h} stays flat`);
  }
});

t.test('resampled on the way: the size asked for, flat stays flat, a ramp stays a ramp', async (t) => {
  const w = 96;
  const h = 48;
  const ramp = { data: new Uint8Array(w * h * 3), width: w, height: h };
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) ramp.data.fill(Math.round((x * 255) / (w - 1)), (y * w + x) * 3, (y * w + x) * 3 + 3);
  for (const [ow, oh] of [[48, 24], [192, 96], [30, 17], [97, 49]] as const) {
    const back = await decode(await encodeJpeg(ramp, 95, { width: ow, height: oh }));
    t.same([back.width, back.height], [ow, oh]);
    // Along the middle row the grey rises from left to right, from near 0 to near 255.
    const row = Array.from({ length: ow }, (_, x) => back.data[((oh >> 1) * ow + x) * 3]!);
    t.ok(row[0]! < 20 && row[ow - 1]! > 235, `${ow}x${oh}: ends ${row[0]} and ${row[ow - 1]}`);
    let falls = 0;
    for (let x = 1; x < ow; x++) if (row[x]! < row[x - 1]! - 3) falls++;
    t.equal(falls, 0, `${ow}x${oh}: rises along the row`);
    const flat = await decode(await encodeJpeg({ data: new Uint8Array(w * h * 3).fill(90), width: w, height: h }, 80, { width: ow, height: oh }));
    t.ok(flat.data.every((v) => Math.abs(v - 90) <= 2), `${ow}x${oh}: flat stays flat`);
  }
});

t.test('bad input is refused with the reason', async (t) => {
  await t.rejects(encodeJpeg({ data: new Uint8Array(10), width: 4, height: 4 }, 80), /width\*height\*3/);
  await t.rejects(encodeJpeg({ data: new Uint8Array(48), width: 4, height: 4 }, 0), /sizes 1\.\.65535, quality 1\.\.100/);
});
