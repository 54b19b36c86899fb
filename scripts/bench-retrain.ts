/**
 * Retraining benchmark: for each weight width and format (zero-centered / plain, per channel), trains
 * on calib.txt and scores the integer network on dev.txt before retraining and after every iteration;
 * prints a markdown section for docs/BENCHMARKS.md.
 *
 *   npx tsx scripts/bench-retrain.ts [--model yolo-fastest-1.1] [--widths 6,5,4] [--plain both|no|only]
 *       [--iterations 3] [--epochs 1] [--threads 2] [--max-steps N]
 *   npx tsx scripts/bench-retrain.ts --profile     time the parts of one training step (batch 8)
 */
import { parseArgs } from 'node:util';
import { loadDarknet } from '../src/model/darknet.js';
import { dataPath } from '../src/util/paths.js';
import { loadFrames, readGroundTruth, readImageList } from '../src/retrain/data.js';
import { deriveFormats, initialState, train, type TrainConfig } from '../src/retrain/trainer.js';
import { intNet, toQNet, type QuantConfig } from '../src/retrain/formats.js';
import { backward, floatForward, headValues, quantForward } from '../src/retrain/sim.js';
import { distillationLoss } from '../src/retrain/loss.js';
import { validationAp } from '../src/retrain/validate.js';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'yolo-fastest-1.1' },
    widths: { type: 'string', default: '6,5,4' },
    plain: { type: 'string', default: 'both' },
    iterations: { type: 'string', default: '3' },
    epochs: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
    'max-steps': { type: 'string', default: '0' },
    profile: { type: 'boolean', default: false },
  },
});
const threads = Number(o.threads);
const model = await loadDarknet(dataPath('models', 'yolo-fastest', `${o.model}.cfg`));
const net = model.net;
const base = { abits: 8 as const, headBits: 16 as const, perChannel: true, calibration: 'mse' as const };
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1];

if (o.profile) {
  const frames = await loadFrames(net, (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 8));
  const quant: QuantConfig = { ...base, wbits: 4, zeroCentered: true };
  const f = deriveFormats(net, model.params, frames, 8, quant, threads, 1);
  const batch = { n: 8, rgb: frames.rgb };
  const rows: Record<string, number[]> = {};
  for (let rep = 0; rep < 5; rep++) {
    let t = performance.now();
    const lap = (k: string) => {
      const now = performance.now();
      (rows[k] ??= []).push(now - t);
      t = now;
    };
    const q = intNet(net, model.params, f, 4);
    const tape = quantForward(net, q, batch, threads);
    const s = headValues(net, q, tape);
    lap('integer forward');
    const outs = floatForward(net, model.params, batch, threads);
    lap('float teacher forward');
    const d = distillationLoss(net, s, net.heads.map((h) => outs[net.layers[h].inputs[0]]), 8);
    lap('loss');
    const grads = {
      weight: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(model.params[l.index]!.weight.length) : undefined)),
      bias: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(model.params[l.index]!.bias.length) : undefined)),
    };
    backward(net, q, tape, d.grads, grads, threads);
    lap('backward');
  }
  console.log(`| part of a batch-8 step (${o.model}, 320x320, ${threads} threads) | median ms of 5 |\n|---|---:|`);
  for (const [k, v] of Object.entries(rows)) console.log(`| ${k} | ${median(v).toFixed(0)} |`);
  process.exit(0);
}

const calib = await readImageList(dataPath('coco-val', 'calib.txt'));
const dev = await readImageList(dataPath('coco-val', 'dev.txt'));
const gt = await readGroundTruth(dataPath('coco-val', 'instances.json'));
process.stderr.write(`loading ${calib.length} calib and ${dev.length} dev images\n`);
const frames = await loadFrames(net, calib);
const devFrames = await loadFrames(net, dev);
const plains = o.plain === 'only' ? [true] : o.plain === 'no' ? [false] : [false, true];
const pct = (v: number | undefined) => (v === undefined ? '-' : (v * 100).toFixed(2));
const lines: string[] = [
  `### Iterative retraining, ${o.model} (trained on calib.txt, scored on dev.txt by the integer arithmetic)`,
  '',
  `Per-channel weights, 8-bit activations (16-bit head tensors), MSE-calibrated activation formats re-derived`,
  `each iteration; ${o.iterations} iterations of ${o.epochs} epoch(s), batch 8, Adam 1e-4 halved each iteration,`,
  'distillation loss only. AP / AP50 in percent (darknet `valid` post-processing, top 100).',
  '',
  '| weights | before | ' + Array.from({ length: Number(o.iterations) }, (_, i) => `iteration ${i + 1}`).join(' | ') + ' | minutes |',
  '|---|---|' + '---|'.repeat(Number(o.iterations)) + '---:|',
];
for (const w of o.widths.split(',').map(Number)) {
  for (const plain of plains) {
    const quant: QuantConfig = { ...base, wbits: w, zeroCentered: !plain };
    const f0 = deriveFormats(net, model.params, frames, 64, quant, threads, 1);
    const before = validationAp(toQNet(net, f0, intNet(net, model.params, f0, w), quant), devFrames, gt, threads);
    const cfg: TrainConfig = {
      quant: { ...base, zeroCentered: !plain }, schedule: [w], iterations: Number(o.iterations), epochs: Number(o.epochs), batch: 8,
      lr: 1e-4, seed: 1, threads, calibFrames: 64, labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: Number(o['max-steps']),
    };
    const t0 = Date.now();
    const r = await train(net, model.params, initialState(model.params, 1), frames, undefined, cfg, {
      validate: (q) => Promise.resolve(validationAp(q, devFrames, gt, threads)),
      onIterationEnd: (rec) => process.stderr.write(`W${w} ${plain ? 'plain' : 'zero-centered'} iteration ${rec.iteration + 1}: AP50 ${pct(rec.ap50)}\n`),
    });
    const cells = r.state.history.map((h) => `${pct(h.ap)} / ${pct(h.ap50)}`);
    lines.push(`| W${w} ${plain ? 'plain' : 'zero-centered'} | ${pct(before.ap)} / ${pct(before.ap50)} | ${cells.join(' | ')} | ${((Date.now() - t0) / 60000).toFixed(1)} |`);
    process.stderr.write(`${lines[lines.length - 1]}\n`);
  }
}
console.log(lines.join('\n'));
