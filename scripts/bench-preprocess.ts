// Pre-processing cost per frame: JPEG decode (sharp) and darknet's resize to the network input, the
// JS reference against the native resize (with and without the float image, into reused buffers).
// The variants alternate frame by frame so that they see the same machine load; medians in ms.
//   npx tsx scripts/bench-preprocess.ts [frames] [netSize]
import sharp from 'sharp';
import { loadImage, resizeForNet, resizeImageJs, resizeImplementation, type RgbImage } from '../src/detect/preprocess.js';
import type { Network } from '../src/model/ir.js';
import { dataPath } from '../src/util/paths.js';

const frames = Number(process.argv[2] ?? 100);
const size = Number(process.argv[3] ?? 320);
const net: Network = { name: 'bench', input: { c: 3, w: size, h: size }, letterbox: false, layers: [], heads: [] };
if (resizeImplementation() !== 'native') throw new Error('the native resize is not available (build the addon)');

async function frameOf(width: number, height: number): Promise<{ img: RgbImage; jpeg: Buffer }> {
  // A real photo scaled to a camera size: decode cost and content are realistic.
  const jpeg = await sharp(dataPath('reference', 'samples', 'dog.jpg')).resize(width, height, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
  const raw = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { img: { data: new Uint8Array(raw.data), width, height }, jpeg };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

const sources: [string, () => Promise<{ img: RgbImage; jpeg?: Buffer }>][] = [
  ['dog.jpg 768x576', async () => ({ img: await loadImage(dataPath('reference', 'samples', 'dog.jpg')) })],
  ['1280x720', () => frameOf(1280, 720)],
  ['1920x1080', () => frameOf(1920, 1080)],
];
const rows: Record<string, string | number>[] = [];
for (const [label, make] of sources) {
  const { img, jpeg } = await make();
  const n = size * size * 3;
  const into = { rgb: new Uint8Array(n), planar: new Float32Array(n) };
  const variants: [string, () => unknown][] = [
    ['js resize (+float)', () => resizeImageJs(img, size, size)],
    ['native (+float)', () => resizeForNet(img, net)],
    ['native 8-bit only', () => resizeForNet(img, net, { keepFloat: false })],
    ['native 8-bit, reused', () => resizeForNet(img, net, { keepFloat: false, into })],
  ];
  const times = variants.map(() => [] as number[]);
  const decode: number[] = [];
  for (let i = 0; i < frames + 10; i++) {
    for (let j = 0; j < variants.length; j++) {
      const t0 = process.hrtime.bigint();
      variants[j][1]();
      if (i >= 10) times[j].push(ms(t0));
    }
    if (jpeg) {
      const t0 = process.hrtime.bigint();
      await sharp(jpeg).removeAlpha().raw().toBuffer();
      if (i >= 10) decode.push(ms(t0));
    }
  }
  const row: Record<string, string | number> = { source: label };
  if (decode.length) row['sharp decode'] = +median(decode).toFixed(3);
  variants.forEach(([name], j) => (row[name] = +median(times[j]).toFixed(3)));
  rows.push(row);
}
console.table(rows);
