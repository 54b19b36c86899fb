// Freezing oscillating integer weights (src/retrain/oscillation.ts), on the Yolo-Fastest-1.1 network at 64x64.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runRetrain } from '../src/retrain/run.js';
import { readZqw } from '../src/qnet/zqw.js';
import { loadDarknet } from '../src/model/darknet.js';
import { dataPath } from '../src/util/paths.js';
import { loadFrames, readImageList } from '../src/retrain/data.js';
import { initialState, startIteration, train, trainStep, type TrainConfig, type TrainData } from '../src/retrain/trainer.js';
import { defaultQuantConfig, intNet } from '../src/retrain/formats.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { observeOscillations, pinFrozen, startOscillations } from '../src/retrain/oscillation.js';
import { flatParams } from '../src/retrain/adam.js';
import { parseRetrainFlags } from '../src/commands/retrain.js';
import { retrainFlags } from './helpers/retrain-flags.js';
import type { IntNet } from '../src/retrain/sim.js';

const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const { wbits: _w, ...quant } = defaultQuantConfig(4);

async function setup() {
  const model = await loadDarknet(CFG, undefined, { width: 64, height: 64 });
  const paths = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 4);
  const calib = await Promise.all(paths.map(async (p) => (await prepareFrame(p, model.net)).frame));
  return { model, frames: await loadFrames(model.net, paths), calib };
}

/** A copy of `q` with weight i of conv layer `layer` set to v. */
function withWeight(q: IntNet, layer: number, i: number, v: number): IntNet {
  const convs = q.convs.map((c, k) => (c && k === layer ? { ...c, q: Int16Array.from(c.q) } : c));
  convs[layer]!.q[i] = v;
  return { ...q, convs };
}

t.test('a weight flipping back and forth is frozen on its averaged integer; one moving one way is not', async (t) => {
  const { model, calib } = await setup();
  const net = model.net;
  const state = initialState(model.params, 1);
  const { formats } = await startIteration(net, state, calib, { ...quant, wbits: 4 }, 2);
  const q0 = intNet(net, state.params, formats, 4);
  const first = net.layers.find((l) => l.kind === 'conv')!.index;
  const v = q0.convs[first]!.q[0];
  const a = v < 7 ? v + 1 : v - 1; // the other grid point the oscillating weight visits
  const st = startOscillations(net, q0);
  const cfg = { threshold: 0.1, momentum: 0.05 };
  // Weight 0 alternates v, a, v, a...; weight 1 walks one way (−1 per step, from its integer, at most 3 steps).
  const w1 = q0.convs[first]!.q[1];
  let avg = v;
  let freq = 0;
  let frozenAt = -1;
  for (let s = 1; s <= 6; s++) {
    const x = s % 2 === 1 ? a : v;
    let q = withWeight(q0, first, 0, x);
    q = withWeight(q, first, 1, Math.max(-7, w1 - Math.min(s, 3)));
    observeOscillations(net, st, q, cfg);
    if (frozenAt < 0) {
      freq = 0.05 * (s >= 2 ? 1 : 0) + 0.95 * freq;
      avg = 0.05 * x + 0.95 * avg;
      if (freq > 0.1) frozenAt = s;
    }
  }
  t.equal(frozenAt, 4, 'by hand: the fourth observation (third oscillation) passes 0.1 (0.05, 0.0975, 0.143)');
  t.equal(st.frozen[0][0] - 128, Math.round(avg), 'frozen on the rounded average of its integers');
  t.equal(st.frozen[0][1], 0, 'the weight moving one way is free');
  t.equal(st.frozenCount, 1, 'nothing else frozen');
  t.equal(st.oscillations, 3, 'three oscillations before it froze (observations 2-4)');
  t.equal(st.changes, 4 + Math.min(3, w1 + 7), 'changes: four of weight 0 before freezing, and weight 1\'s steps');
  // Pinning puts the frozen weight on its grid point: the integers then give the frozen value.
  const before = flatParams(state.params).map((x) => Float32Array.from(x));
  pinFrozen(net, st, state.params, formats);
  const after = intNet(net, state.params, formats, 4);
  t.equal(after.convs[first]!.q[0], st.frozen[0][0] - 128, 'the pinned shadow weight rounds to the frozen integer');
  const moved = flatParams(state.params).reduce((n, x, k) => n + x.filter((y, i) => y !== before[k][i]).length, 0);
  t.ok(moved <= 1, `only the frozen weight's shadow value may move (${moved})`);
});

t.test('training with frozen oscillations: frozen integers stay put; counting only changes nothing', async (t) => {
  const { model, frames, calib } = await setup();
  const data: TrainData = { frames, calib };
  // A large step makes integers flip within a few steps.
  const base: TrainConfig = {
    quant, schedule: [4], iterations: 1, epochs: 1, batch: 2, lr: 3e-3, seed: 3, threads: 2, labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 2, keepFormats: true,
  };
  const runOf = (extra: Partial<TrainConfig>, epochs: number) => train(model.net, model.params, initialState(model.params, base.seed), data, { ...base, epochs, ...extra });
  const plain = await runOf({}, 4);
  const counted = await runOf({ freezeOscillations: 1 }, 4);
  const differing = flatParams(plain.state.params).reduce((n, x, k) => n + x.filter((v, i) => v !== flatParams(counted.state.params)[k][i]).length, 0);
  t.equal(differing, 0, 'with threshold 1 (never passed) the weights are those of a run without it');
  const rec = counted.state.history[0].oscillation!;
  t.ok(rec.changes > 0 && rec.oscillations > 0, `integers changed (${rec.changes}) and oscillated (${rec.oscillations})`);
  t.equal(rec.frozen, 0, 'none frozen');
  t.equal(plain.state.history[0].oscillation, undefined, 'no record without the option');

  // Threshold 0: a weight freezes at its first oscillation; from then on its integer must not move.
  const net = model.net;
  const state = initialState(model.params, base.seed);
  const { formats } = await startIteration(net, state, calib, { ...quant, wbits: 4 }, 2);
  const batch = { n: 4, rgb: frames.rgb };
  let moved = 0;
  let checked = 0;
  for (let s = 0; s < 8; s++) {
    trainStep(net, model.params, state, formats, batch, undefined, { threads: 2, labelWeight: 0, freezeOscillations: 0 }, 4, base.lr);
    const q = intNet(net, state.params, formats, 4);
    net.layers.filter((l) => l.kind === 'conv').forEach((l, k) => {
      const fz = state.oscillation!.frozen[k];
      const cur = q.convs[l.index]!.q;
      for (let i = 0; i < fz.length; i++) {
        if (fz[i] === 0) continue;
        checked++;
        if (cur[i] !== fz[i] - 128) moved++;
      }
    });
  }
  t.ok(state.oscillation!.frozenCount > 0, `weights were frozen (${state.oscillation!.frozenCount})`);
  t.ok(checked > state.oscillation!.frozenCount, 'frozen weights were checked after later steps');
  t.equal(moved, 0, 'no frozen integer moved in the steps after it froze');
  const frozenRun = await runOf({ freezeOscillations: 0 }, 4);
  const differs = flatParams(frozenRun.state.params).reduce((n, x, k) => n + x.filter((v, i) => v !== flatParams(plain.state.params)[k][i]).length, 0);
  t.ok(differs > 0, 'freezing changes the training');
  t.ok(frozenRun.state.history[0].oscillation!.frozen > 0, 'the iteration record counts the frozen weights');
  t.equal(frozenRun.state.oscillation, undefined, 'the tracking ends with the iteration');
  t.equal(parseRetrainFlags(CFG, { ...retrainFlags(), output: 'o.zqw', wbits: 4, freezeOscillations: 0.02 }).train.freezeOscillations, 0.02, 'the flag reaches the trainer');
});

t.test('--freeze-oscillations and --mix are recorded in the weight set and bind the checkpoint', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-retrain-osc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const imgs = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 2);
  const list = path.join(dir, 'l.txt');
  writeFileSync(list, imgs.join('\n'));
  const out = path.join(dir, 'o.zqw');
  const flags = { ...retrainFlags(), wbits: 4, data: list, batch: 2, iterations: 1, calibImages: 2, actCalib: 'minmax' as const, output: out, freezeOscillations: 0.04, mix: 0.3 };
  const logged: string[] = [];
  await runRetrain({ ...parseRetrainFlags(CFG, flags), size: { width: 64, height: 64 }, log: (m) => logged.push(m) });
  const { manifest } = await readZqw(out);
  t.match(manifest.quantization, { freezeOscillations: 0.04, mix: 0.3 }, 'both in the weight set\'s manifest');
  t.ok(logged.some((m) => /iteration 1: .*integer changes \d+, oscillations \d+, frozen \d+/.test(m)), 'the iteration\'s log line counts them');
  const ckpt = JSON.parse(readFileSync(`${out}.ckpt.json`, 'utf8')) as { settings: Record<string, unknown> };
  t.match(ckpt.settings, { freezeOscillations: 0.04, mix: 0.3 }, 'both in the checkpoint\'s settings');
  for (const other of [{ freezeOscillations: 0.1 }, { mix: 0.2 }]) {
    await t.rejects(runRetrain({ ...parseRetrainFlags(CFG, { ...flags, ...other, iterations: 2, resume: true }), size: { width: 64, height: 64 }, log: () => {} }),
      { code: 'retrain-checkpoint', message: new RegExp(`made with ${Object.keys(other)[0]}=`) }, `resuming with ${JSON.stringify(other)} is refused`);
  }
});
