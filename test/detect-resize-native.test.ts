import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import {
  letterboxImage,
  letterboxImageJs,
  loadImage,
  resizeForNet,
  resizeImage,
  resizeImageJs,
  resizeImplementation,
  type ResizedImage,
  type RgbImage,
} from '../src/detect/preprocess.js';
import type { Network } from '../src/model/ir.js';
import { dataPath } from '../src/util/paths.js';

// The native resize (src/kernels/resize.cc) against the JS reference, bit for bit: 8-bit frame and
// the float image (compared as bytes, so that -0, NaN or one ulp would show).

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function same(t: Test, fast: ResizedImage, ref: ResizedImage, what: string): void {
  const rgb = Buffer.from(fast.data).equals(Buffer.from(ref.data));
  const planar = bits(fast.planar).equals(bits(ref.planar));
  if (rgb && planar && fast.width === ref.width && fast.height === ref.height) {
    t.pass(what);
    return;
  }
  const i = fast.data.findIndex((v, j) => v !== ref.data[j]);
  const k = fast.planar.findIndex((v, j) => !Object.is(v, ref.planar[j]));
  t.fail(`${what}: first differing byte ${i}, float ${k} (${fast.planar[k]} vs ${ref.planar[k]})`);
}

function noise(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, width, height };
}

const list = (name: string, n: number) =>
  readFileSync(dataPath('coco-val', name), 'utf8').trim().split('\n').slice(0, n).map((rel) => dataPath('coco-val', rel.trim()));

t.test('the native resize is the one in use (the addon is built by npm ci)', async (t) => {
  t.equal(resizeImplementation(), 'native');
});

t.test('dev and calib images: native == JS reference, resize and letterbox, several sizes', async (t) => {
  const files = [...list('dev.txt', 4), ...list('calib.txt', 4), dataPath('reference', 'samples', 'dog.jpg')];
  const sizes: [number, number][] = [[320, 320], [416, 416], [317, 243], [1, 320], [320, 1]];
  const seen = new Set<string>();
  for (const f of files) {
    const img = await loadImage(f);
    seen.add(`${img.width}x${img.height}`);
    for (const [w, h] of sizes) same(t, resizeImage(img, w, h), resizeImageJs(img, w, h), `${f.split('/').pop()} ${img.width}x${img.height} -> ${w}x${h}`);
    same(t, letterboxImage(img, 320, 320), letterboxImageJs(img, 320, 320), `${f.split('/').pop()} letterboxed`);
    same(t, letterboxImage(img, 416, 256), letterboxImageJs(img, 416, 256), `${f.split('/').pop()} letterboxed, wide input`);
  }
  t.ok(seen.size >= 3, `several source sizes (${[...seen].join(', ')})`);
});

t.test('upscaling, odd sizes and 1-pixel edges on noise', async (t) => {
  const cases: [number, number, number, number][] = [
    [1, 1, 320, 320], [1, 7, 5, 9], [7, 1, 9, 5], [2, 2, 3, 3], [3, 2, 2, 3], [97, 61, 320, 320], [640, 481, 320, 320],
    [321, 319, 320, 320], [320, 320, 320, 320], [5, 5, 1, 1], [9, 4, 1, 4], [2, 665, 2, 320], [2, 576, 2, 320], [1000, 3, 13, 7],
  ];
  let seed = 1;
  for (const [iw, ih, w, h] of cases) {
    const img = noise(iw, ih, seed++);
    same(t, resizeImage(img, w, h), resizeImageJs(img, w, h), `${iw}x${ih} -> ${w}x${h}`);
  }
  for (const [iw, ih] of [[1, 1], [1, 300], [300, 1], [33, 17], [17, 33], [320, 320]] as const) {
    const img = noise(iw, ih, seed++);
    same(t, letterboxImage(img, 320, 320), letterboxImageJs(img, 320, 320), `letterbox ${iw}x${ih}`);
  }
  // Random geometries, down and up.
  for (let i = 0; i < 40; i++) {
    const r = noise(4, 1, 1000 + i).data;
    const [iw, ih, w, h] = [1 + (r[0] % 90), 1 + (r[1] % 90), 1 + (r[2] % 90), 1 + (r[3] % 90)];
    const img = noise(iw, ih, seed++);
    same(t, resizeImage(img, w, h), resizeImageJs(img, w, h), `random ${iw}x${ih} -> ${w}x${h}`);
  }
});

t.test("darknet's nearly black last row is reproduced natively", async (t) => {
  const white: RgbImage = { data: new Uint8Array(2 * 665 * 3).fill(255), width: 2, height: 665 };
  const r = resizeImage(white, 2, 320);
  t.same([...r.data.subarray(319 * 6)], [0, 0, 0, 0, 0, 0]);
});

t.test('frames into caller buffers: nothing new, float image only when asked', async (t) => {
  const net: Network = { name: 'n', input: { c: 3, h: 320, w: 320 }, letterbox: false, layers: [], heads: [] };
  const img = await loadImage(dataPath('reference', 'samples', 'person.jpg'));
  const ref = resizeImageJs(img, 320, 320);
  const into = { rgb: new Uint8Array(320 * 320 * 3), planar: new Float32Array(320 * 320 * 3) };
  const f = resizeForNet(img, net, { into });
  t.equal(f.rgb, into.rgb, 'the given 8-bit buffer');
  t.equal(f.planar, into.planar, 'the given float buffer');
  t.ok(Buffer.from(f.rgb).equals(Buffer.from(ref.data)) && bits(f.planar!).equals(bits(ref.planar)), 'reference values');

  const rgbOnly = { rgb: new Uint8Array(320 * 320 * 3) };
  const slim = resizeForNet(img, net, { into: rgbOnly, keepFloat: false });
  t.equal(slim.planar, undefined, 'no float image');
  t.ok(Buffer.from(slim.rgb).equals(Buffer.from(ref.data)), 'same 8-bit frame without the float image');

  const boxed = resizeForNet(img, { ...net, letterbox: true }, { into });
  const boxedRef = letterboxImageJs(img, 320, 320);
  t.ok(Buffer.from(boxed.rgb).equals(Buffer.from(boxedRef.data)) && bits(boxed.planar!).equals(bits(boxedRef.planar)), 'letterbox into reused buffers: padding rewritten');

  t.throws(() => resizeForNet(img, net, { into: { rgb: new Uint8Array(10) }, keepFloat: false }), { code: 'frame-buffer' });
  t.throws(() => resizeImage({ data: new Uint8Array(5), width: 2, height: 1 }, 4, 4), { code: 'image-size' });
});

t.test('ZEROQ_RESIZE=js: the JS reference behind the same calls (the fallback without the addon)', async (t) => {
  const saved = process.env.ZEROQ_RESIZE;
  t.teardown(() => {
    if (saved === undefined) delete process.env.ZEROQ_RESIZE;
    else process.env.ZEROQ_RESIZE = saved;
  });
  const img = await loadImage(dataPath('reference', 'samples', 'horses.jpg'));
  const net: Network = { name: 'n', input: { c: 3, h: 256, w: 416 }, letterbox: false, layers: [], heads: [] };
  const fast = [resizeForNet(img, net), resizeForNet(img, { ...net, letterbox: true }), resizeForNet(img, net, { keepFloat: false })];
  process.env.ZEROQ_RESIZE = 'js';
  t.equal(resizeImplementation(), 'js');
  const into = { rgb: new Uint8Array(416 * 256 * 3), planar: new Float32Array(416 * 256 * 3) };
  const slow = [resizeForNet(img, net), resizeForNet(img, { ...net, letterbox: true }, { into }), resizeForNet(img, net, { keepFloat: false })];
  t.equal(slow[1].rgb, into.rgb, 'caller buffers filled by the JS path too');
  fast.forEach((f, i) => {
    t.ok(Buffer.from(f.rgb).equals(Buffer.from(slow[i].rgb)), `case ${i}: same 8-bit frame`);
    t.equal(f.planar === undefined, slow[i].planar === undefined, `case ${i}: float image present in both or neither`);
    if (f.planar && slow[i].planar) t.ok(bits(f.planar).equals(bits(slow[i].planar!)), `case ${i}: same float image`);
  });
  delete process.env.ZEROQ_RESIZE;
  t.equal(resizeImplementation(), 'native');
});
