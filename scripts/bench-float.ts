/**
 * Speed of the float engine and of the host-side steps around it, on the Yolo-Fastest models.
 *
 *   npx tsx scripts/bench-float.ts [--runs 60] [--warmup 10] [--image dog]
 *
 * Network time: engine.infer only (input conversion + onnxruntime run), frames already prepared.
 * The engines (both models × 1 and 2 threads) run round-robin so that load changes on a shared
 * machine hit all of them alike; medians of wall time are printed, with the process CPU time beside
 * them (on a loaded machine wall time includes waiting for a core). Also: image decode + darknet resize, and
 * decode + NMS at detector-test (0.25) and detector-valid (0.001, NMS 0.6) settings.
 */
import { parseArgs } from 'node:util';
import { decodeHeads } from '../src/detect/decode.js';
import { loadImage, resizeForNet } from '../src/detect/preprocess.js';
import type { Engine } from '../src/engine/engine.js';
import { FloatEngine } from '../src/engine/float.js';
import { loadDarknet } from '../src/model/darknet.js';
import { dataPath } from '../src/util/paths.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '10' },
    image: { type: 'string', default: 'dog' },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);
const imagePath = dataPath('reference', 'samples', `${values.image}.jpg`);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function time(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const models = ['yolo-fastest-1.1', 'yolo-fastest-1.1-xl'];
const threads = [1, 2];
const img = await loadImage(imagePath);
const cases: { label: string; engine: Engine; frame: ReturnType<typeof resizeForNet>; ms: number[]; cpu: number[] }[] = [];
for (const m of models) {
  const model = await loadDarknet(dataPath('models', 'yolo-fastest', `${m}.cfg`));
  for (const n of threads) {
    const engine = await FloatEngine.create(model, { threads: n });
    cases.push({ label: `${m}, ${n} thread${n > 1 ? 's' : ''}`, engine, frame: resizeForNet(img, engine.net), ms: [], cpu: [] });
  }
}

for (let i = 0; i < warmup; i++) for (const c of cases) await c.engine.infer(c.frame);
for (let i = 0; i < runs; i++) {
  for (const c of cases) {
    const cpu0 = process.cpuUsage();
    c.ms.push(await time(() => c.engine.infer(c.frame)));
    const cpu = process.cpuUsage(cpu0);
    c.cpu.push((cpu.user + cpu.system) / 1000);
  }
}

const net = cases[0].engine.net;
const prep: number[] = [];
const resize: number[] = [];
for (let i = 0; i < Math.min(runs, 30); i++) {
  prep.push(await time(async () => resizeForNet(await loadImage(imagePath), net)));
  resize.push(await time(() => resizeForNet(img, net)));
}
const decodeMs = { test: [] as number[], valid: [] as number[] };
const counts = { test: 0, valid: 0 };
for (const c of cases.filter((_, k) => k % 2 === 0)) {
  const heads = await c.engine.infer(c.frame);
  for (let i = 0; i < Math.min(runs, 30); i++) {
    decodeMs.test.push(await time(() => (counts.test = decodeHeads(heads, c.engine.net, img.width, img.height, { threshold: 0.25, nms: 0.45, maxDetections: 100 }).length)));
    decodeMs.valid.push(
      await time(() => (counts.valid = decodeHeads(heads, c.engine.net, img.width, img.height, { threshold: 0.001, nms: 0.6, maxDetections: 100000 }).length)),
    );
  }
}
for (const c of cases) await c.engine.close();

const out: string[] = [];
out.push(`float engine, ${values.image}.jpg (${img.width}x${img.height}), ${runs} runs after ${warmup} warm-up, medians`);
for (const c of cases) {
  out.push(`  network ${c.label.padEnd(32)} ${median(c.ms).toFixed(2).padStart(7)} ms  (CPU time ${median(c.cpu).toFixed(2)} ms, all threads)`);
}
out.push(`  decode JPEG + darknet resize to ${net.input.w}x${net.input.h}    ${median(prep).toFixed(2).padStart(7)} ms`);
out.push(`  darknet resize only                        ${median(resize).toFixed(2).padStart(7)} ms`);
out.push(`  decode + NMS, threshold 0.25 (last: ${counts.test} dets)   ${median(decodeMs.test).toFixed(3).padStart(7)} ms`);
out.push(`  decode + NMS, threshold 0.001, NMS 0.6 (last: ${counts.valid} dets) ${median(decodeMs.valid).toFixed(3).padStart(7)} ms`);
process.stdout.write(out.join('\n') + '\n');
