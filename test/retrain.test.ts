// Retraining: a step lowers the loss, a resumed run ends in exactly the state of an uninterrupted
// one, and the command refuses bad arguments with clear errors.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadDarknet } from '../src/model/darknet.js';
import { dataPath, repoRoot } from '../src/util/paths.js';
import { loadFrames, readImageList } from '../src/retrain/data.js';
import { initialState, mirrorFrame, sliceBatch, startIteration, train, trainStep, type TeacherHeads, type TrainConfig, type TrainData, type TrainState } from '../src/retrain/trainer.js';
import { defaultQuantConfig, intNet, qnetDifferences, toQNet } from '../src/retrain/formats.js';
import { quantizeDefaults, quantizeModel } from '../src/quant/quantize.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { floatForward, headValues, quantForward } from '../src/retrain/sim.js';
import { distillationLoss } from '../src/retrain/loss.js';
import { loadCheckpoint, saveCheckpoint } from '../src/retrain/checkpoint.js';
import { flatParams } from '../src/retrain/adam.js';
import { parseRetrainFlags, type RetrainFlags } from '../src/commands/retrain.js';
import { zeroq as zeroqCli } from './helpers/cli.js';

const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const { wbits: _w, ...quant } = defaultQuantConfig(8);
const quantDefaults = quant;

async function tinySetup(images: number, calibImages = 4) {
  const model = await loadDarknet(CFG, undefined, { width: 64, height: 64 });
  const paths = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, images);
  const calib = await Promise.all(paths.slice(0, calibImages).map(async (p) => (await prepareFrame(p, model.net)).frame));
  return { model, frames: await loadFrames(model.net, paths), calib };
}

t.test('each iteration starts from exactly what zeroq quantize gives; the bias correction is replaced, not added', async (t) => {
  const { model, calib } = await tinySetup(4);
  const net = model.net;
  const state = initialState(model.params, 1);
  // Rounding to nearest: re-quantizing unchanged weights is then the identity (rounding for the output
  // error is not: its weights are tested in retrain-widths.test.ts).
  const quant = { ...quantDefaults, rounding: 'nearest' as const };
  const first = await startIteration(net, state, calib, { ...quant, wbits: 5 }, 2);
  const quantized = await quantizeModel(model, calib, { ...quantizeDefaults(), rounding: 'nearest', wbits: 5, threads: 2 });
  t.same(qnetDifferences(first.qnet, quantized.qnet), [], 'the quantizer with its defaults (zeroq quantize) gives the same integers');
  const ours = toQNet(net, first.formats, intNet(net, state.params, first.formats, 5), { ...quant, wbits: 5 });
  t.same(qnetDifferences(ours, quantized.qnet), [], 'the shadow weights re-rounded in the frozen formats give them too');
  t.ok(first.formats.weights.some((w) => w && w.biasShift.some((b) => b !== 0)), 'the bias correction is in use');
  // Without training in between, the next iteration re-derives the same network.
  state.iteration = 1;
  const second = await startIteration(net, state, calib, { ...quant, wbits: 5 }, 2);
  t.same(qnetDifferences(second.qnet, first.qnet), [], 'a second start on unchanged weights changes nothing');
});

t.test('one training step lowers the distillation loss on its batch', async (t) => {
  const { model, frames, calib } = await tinySetup(4);
  const net = model.net;
  const state = initialState(model.params, 1);
  const { formats } = await startIteration(net, state, calib, { ...quant, wbits: 4 }, 2);
  const batch = { n: 4, rgb: frames.rgb };
  const lossNow = () => {
    const q = intNet(net, state.params, formats, 4);
    const student = headValues(net, q, quantForward(net, q, batch, 2));
    const outs = floatForward(net, model.params, batch, 2);
    return distillationLoss(net, student, net.heads.map((h) => outs[net.layers[h].inputs[0]]), 4).loss;
  };
  const before = lossNow();
  const reported = trainStep(net, model.params, state, formats, batch, undefined, { threads: 2, labelWeight: 0 }, 4, 1e-4);
  t.equal(reported, before, 'the step reports the loss of the weights it started from');
  const after = lossNow();
  t.ok(before > 0, `W4 weights differ from the teacher (loss ${before.toFixed(2)})`);
  t.ok(after < before * 0.98, `loss ${before.toFixed(2)} -> ${after.toFixed(2)}`);
});

t.test('the teacher outputs kept from an earlier step give the step exactly what a new teacher pass gives', async (t) => {
  const { model, frames, calib } = await tinySetup(4);
  const net = model.net;
  const { formats } = await startIteration(net, initialState(model.params, 1), calib, { ...quant, wbits: 6 }, 2);
  const batch = { n: 4, rgb: frames.rgb };
  const cfg = { threads: 2, labelWeight: 0 };
  const step = (cached?: TeacherHeads) => {
    const state = initialState(model.params, 1);
    const loss = trainStep(net, model.params, state, formats, batch, undefined, cfg, 6, 1e-4, undefined, undefined, cached);
    return { loss, params: flatParams(state.params) };
  };
  // A cache that holds the frames at `have` (from a forward pass of just those frames) and records what it is given.
  const cache = (have: number[], heads?: Float32Array[]) => {
    const filled: number[][] = [];
    const kept: Float32Array[] = heads?.map((h) => h.slice()) ?? net.heads.map((h) => { const o = net.layers[net.layers[h].inputs[0]].out; return new Float32Array(4 * o.c * o.h * o.w); });
    const per = kept.map((h) => h.length / 4);
    const c: TeacherHeads = {
      missing: () => [0, 1, 2, 3].filter((b) => !have.includes(b)),
      fill: (pos, hs) => {
        filled.push(pos);
        pos.forEach((b, i) => hs.forEach((h, k) => kept[k].set(h.subarray(i * per[k], (i + 1) * per[k]), b * per[k])));
      },
      get: () => kept.map((h) => h.slice()),
    };
    return { c, filled, kept: () => kept };
  };
  const plain = step();
  const empty = cache([]);
  const fresh = step(empty.c);
  t.same(empty.filled, [[0, 1, 2, 3]], 'a step without kept outputs hands all its teacher outputs over');
  t.equal(fresh.loss, plain.loss, 'and computes what a step without a cache computes');
  const full = cache([0, 1, 2, 3], empty.kept());
  const replayed = step(full.c);
  t.same(full.filled, [], 'nothing is computed when every output is kept');
  t.equal(replayed.loss, fresh.loss, 'the same loss');
  const same = (a: Float32Array[], b: Float32Array[]) => a.every((x, k) => Buffer.compare(Buffer.from(x.buffer), Buffer.from(b[k].buffer)) === 0);
  t.ok(same(fresh.params, replayed.params), 'the same updated weights, bit for bit');
  // Half the frames kept: the teacher runs on the other two alone, and gives them the numbers of the whole batch.
  const half = cache([0, 2], empty.kept());
  for (const h of half.kept()) for (const b of [1, 3]) h.fill(0, (b * h.length) / 4, ((b + 1) * h.length) / 4);
  const partial = step(half.c);
  t.same(half.filled, [[1, 3]], 'only the frames not kept go through the teacher');
  t.ok(same(half.kept(), empty.kept()), 'a forward pass of those frames alone gives their outputs of the whole batch, bit for bit');
  t.ok(same(partial.params, fresh.params), 'and the same updated weights');
  const wrong = cache([0, 1, 2, 3]);
  t.not(step(wrong.c).loss, fresh.loss, 'the kept outputs are what the loss is computed against');
});

t.test('a run that keeps the teacher\'s outputs (the default) ends as one that does not', async (t) => {
  const { model, frames, calib } = await tinySetup(4);
  const cfg: TrainConfig = {
    quant, schedule: [6], iterations: 2, epochs: 2, batch: 2, lr: 1e-4, seed: 3, threads: 2, labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 2,
  };
  const a = await train(model.net, model.params, initialState(model.params, cfg.seed), { frames, calib }, cfg);
  const b = await train(model.net, model.params, initialState(model.params, cfg.seed), { frames, calib }, { ...cfg, teacherCache: false });
  t.same(a.state.history.map((h) => h.meanLoss), b.state.history.map((h) => h.meanLoss), 'the same losses');
  const pa = flatParams(a.state.params), pb = flatParams(b.state.params);
  t.ok(pa.every((x, k) => Buffer.compare(Buffer.from(x.buffer), Buffer.from(pb[k].buffer)) === 0), 'the same weights, bit for bit');
});

for (const extra of [{}, { flip: true, lrDecay: 1 }] as Partial<TrainConfig>[]) t.test(`checkpoint and resume reproduce the uninterrupted run exactly ${JSON.stringify(extra)}`, async (t) => {
  const { model, frames, calib } = await tinySetup(6);
  const net = model.net;
  const cfg: TrainConfig = {
    quant, schedule: [6, 4], iterations: 2, epochs: 2, batch: 2, lr: 1e-4, seed: 7, threads: 2,
    labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 2, ...extra,
  };
  const data: TrainData = { frames, calib };
  const straight = await train(net, model.params, initialState(model.params, cfg.seed), data, cfg);
  t.equal(straight.state.history.length, 2, 'two iterations');
  t.same(straight.state.history.map((h) => h.wbits), [6, 4], 'widths follow the schedule');

  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-retrain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ckpt.json');
  const settings = { net: net.name, seed: cfg.seed };
  // Interrupt at the third checkpoint (mid second iteration), like a killed process.
  let saves = 0;
  const stop = new Error('interrupted');
  await t.rejects(
    train(net, model.params, initialState(model.params, cfg.seed), data, cfg, {
      checkpointEvery: 1,
      onCheckpoint: async (s: TrainState) => {
        await saveCheckpoint(file, settings, s);
        if (++saves === 3) throw stop;
      },
    }),
    stop,
  );
  const resumedState = await loadCheckpoint(file, settings);
  t.ok(resumedState.iteration > 0 || resumedState.epoch > 0 || resumedState.step > 0, 'the checkpoint is mid-run');
  const resumed = await train(net, model.params, resumedState, data, cfg);
  const a = flatParams(straight.state.params);
  const b = flatParams(resumed.state.params);
  t.ok(a.every((x, k) => Buffer.compare(Buffer.from(x.buffer), Buffer.from(b[k].buffer)) === 0), 'same shadow weights, bit for bit');
  t.same(resumed.state.adam.t, straight.state.adam.t, 'same optimiser step count');
  t.same(resumed.state.history.map((h) => h.meanLoss), straight.state.history.map((h) => h.meanLoss), 'same per-iteration losses');
  t.same(Array.from(resumed.qnet.convs[0]!.q), Array.from(straight.qnet.convs[0]!.q), 'same integer weights');
  await t.rejects(loadCheckpoint(file, { ...settings, seed: 8 }), { code: 'retrain-checkpoint' }, 'a checkpoint of another run is refused');
});

/** Retrain flags as commander hands them over (typed by src/cli/options.ts). */
const FLAGS: RetrainFlags = {
  wbits: 4, abits: 8, epochs: 1, labelWeight: 1, seed: 1, batch: 8, lr: 0.0001,
  headAbits: 16, actCalib: 'search', percentile: 99.99, searchObjective: 'exact', zeroCenter: true, biasCorrection: true, equalize: true,
  calibImages: 32, threads: 2, lrUnit: 'absolute', distill: 'objectness', lrDecay: 0.5,
};

t.test('bad arguments are refused with the flag named', async (t) => {
  const list = dataPath('coco-val', 'calib.txt');
  const base: RetrainFlags = { ...FLAGS, data: list, output: 'out.zqw' };
  t.equal(parseRetrainFlags(CFG, base).train.schedule[0], 4, 'valid flags pass');
  // What no single flag can check: files, and flags that go together.
  const cases: [Partial<RetrainFlags>, string, RegExp][] = [
    [{ schedule: [4, 6], wbits: undefined }, 'usage', /--schedule 4,6: the schedule must not widen/],
    [{ schedule: [8, 6, 5], wbits: 4 }, 'usage', /--wbits 4 disagrees/],
    [{ schedule: [8, 6, 5, 4], iterations: 2 }, 'usage', /--iterations/],
    [{ wbits: undefined }, 'usage', /--wbits N/],
    [{ output: undefined }, 'usage', /-o out\.zqw/],
    [{ keepBest: true }, 'usage', /--keep-best.*--val/],
    [{ data: '/nonexistent/list.txt' }, 'bad-option', /no such image list/],
  ];
  for (const [change, code, msg] of cases) {
    t.throws(() => parseRetrainFlags(CFG, { ...base, ...change }), { code, message: msg }, JSON.stringify(change));
  }
  t.throws(() => parseRetrainFlags('/nonexistent.cfg', base), { code: 'bad-option', message: /no such cfg/ });

  // Each flag's own range, through the real command line: exit code 2 and the flag on stderr.
  const flagCases: [string[], RegExp][] = [
    [['--wbits', '1'], /'--wbits <n>' argument '1' is invalid\. expected an integer from 2 to 8/],
    [['--wbits', '4.5'], /'--wbits <n>' argument '4\.5'/],
    [['--schedule', '8,x'], /'--schedule <widths>' argument '8,x' is invalid/],
    [['--epochs', '0'], /'--epochs <e>' argument '0'/],
    [['--lr-decay', '1.5'], /'--lr-decay <f>' argument '1\.5' is invalid\. expected a number in \(0, 1\]/],
    [['--distill', 'all'], /'--distill <weighting>' argument 'all' is invalid\. Allowed choices are objectness, uniform/],
    [['--head-abits', '12'], /'--head-abits <n>' argument '12'/],
  ];
  const runs = await Promise.all(
    flagCases.map(([extra]) =>
      zeroqCli(['retrain', CFG, '--wbits', '4', '--data', list, '-o', 'x.zqw', ...extra]),
    ),
  );
  flagCases.forEach(([extra, msg], i) => {
    t.equal(runs[i].code, 2, `${extra.join(' ')}: exit code 2`);
    t.match(runs[i].stderr, msg);
  });
});

t.test('a validation list overlapping the training list is refused', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-retrain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const img = dataPath('coco-val', 'images', '000000000785.jpg');
  const list = path.join(dir, 'l.txt');
  writeFileSync(list, `${img}\n`);
  const { runRetrain } = await import('../src/retrain/run.js');
  const args = parseRetrainFlags(CFG, { ...FLAGS, data: list, val: list, batch: 1, calibImages: 1, threads: 1, output: path.join(dir, 'o.zqw') });
  await t.rejects(runRetrain(args), { code: 'retrain-val', message: /also training images/ });
});

t.test('a missing validation ground truth is refused before any image is loaded', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-retrain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [a, b] = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 2);
  const train = path.join(dir, 'train.txt');
  const val = path.join(dir, 'val.txt');
  writeFileSync(train, `${a}\n`);
  writeFileSync(val, `${b}\n`);
  const { runRetrain } = await import('../src/retrain/run.js');
  const logged: string[] = [];
  const args = parseRetrainFlags(CFG, { ...FLAGS, data: train, val, batch: 1, calibImages: 1, threads: 1, output: path.join(dir, 'o.zqw') });
  await t.rejects(runRetrain({ ...args, log: (m) => logged.push(m) }), { code: 'retrain-gt', message: /instances\.json/ });
  t.same(logged.filter((m) => m.startsWith('loading')), [], 'no image was loaded');
});

t.test('the written weight set, run by the integer reference, gives the heads the trainer computed', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-retrain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const imgs = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 2);
  const list = path.join(dir, 'l.txt');
  writeFileSync(list, imgs.join('\n'));
  const { runRetrain } = await import('../src/retrain/run.js');
  const { readZqw } = await import('../src/qnet/zqw.js');
  const { runReference } = await import('../src/engine/int-reference.js');
  const { fromQNet } = await import('../src/retrain/formats.js');
  const out = path.join(dir, 'o.zqw');
  const args = parseRetrainFlags(CFG, { ...FLAGS, wbits: 5, data: list, batch: 2, iterations: 1, calibImages: 2, output: out });
  const report = await runRetrain({ ...args, size: { width: 64, height: 64 } });
  t.equal(report.out, out);
  const { qnet } = await readZqw(out);
  const net = qnet.net;
  const frames = await loadFrames(net, imgs.slice(0, 1));
  const tape = quantForward(net, fromQNet(qnet), { n: 1, rgb: frames.rgb }, 1);
  const ref = runReference(qnet, { rgb: frames.rgb, width: 64, height: 64 });
  net.heads.forEach((h, k) => {
    t.same(Array.from(ref.heads[k].raw!), Array.from(tape.outs[net.layers[h].inputs[0]]), `head ${k}: same integers`);
  });
});

t.test('with per-channel learning-rate factors, the first Adam update moves each channel by lr times its factor', async (t) => {
  const { adamStep, newAdam } = await import('../src/retrain/adam.js');
  const params = [{ weight: Float32Array.from([1, 1, 1, 1, 1, 1]), bias: Float32Array.from([0, 0]) }];
  const adam = newAdam(params);
  const grads = [Float32Array.from([0.5, -2, 1e-3, 3, -1, 0.25]), Float32Array.from([1, -1])];
  adamStep(params, grads, adam, 0.1, [Float64Array.of(1, 2 ** -6), Float64Array.of(0.5, 0.5)]);
  const close = (got: Float32Array, want: number[]) => want.every((v, i) => Math.abs(got[i] - v) <= 1e-4 * Math.abs(v) + 1e-7);
  const expected = [1 - 0.1, 1 + 0.1, 1 - 0.1, 1 - 0.1 / 64, 1 + 0.1 / 64, 1 - 0.1 / 64];
  t.ok(close(params[0].weight, expected), `channel 0 by 0.1, channel 1 by 0.1/64, against the gradient sign: ${Array.from(params[0].weight)}`);
  t.ok(close(params[0].bias, [-0.05, 0.05]), `biases by 0.05: ${Array.from(params[0].bias)}`);
});

t.test('objectness-weighted distillation: x, y and class terms count in proportion to the teacher objectness', async (t) => {
  const model = await loadDarknet(CFG, undefined, { width: 64, height: 64 });
  const net = model.net;
  const r = (() => {
    let s = 5;
    return () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 8 - 4;
  })();
  const sizes = net.heads.map((h) => {
    const o = net.layers[net.layers[h].inputs[0]].out;
    return o.c * o.h * o.w;
  });
  const student = sizes.map((n) => Float32Array.from({ length: n }, r));
  const teacher = sizes.map((n) => Float32Array.from({ length: n }, r));
  const uni = distillationLoss(net, student, teacher, 1, 'uniform');
  const obj = distillationLoss(net, student, teacher, 1, 'objectness');
  const o = net.layers[net.layers[net.heads[0]].inputs[0]].out;
  const hw = o.h * o.w;
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  let checked = 0;
  for (const p of [0, 1, hw - 1]) {
    const w = sig(teacher[0][4 * hw + p]);
    for (const e of [0, 1, 5, 40, 84]) {
      const i = e * hw + p;
      t.ok(Math.abs(obj.grads[0][i] - w * uni.grads[0][i]) <= 1e-6, `position ${p}, entry ${e}: gradient scaled by objectness ${w.toFixed(3)}`);
      checked++;
    }
    for (const e of [2, 3, 4]) t.equal(obj.grads[0][e * hw + p], uni.grads[0][e * hw + p], `position ${p}, entry ${e} unchanged`);
  }
  t.equal(checked, 15);
  t.ok(obj.loss < uni.loss, 'the weighted loss is smaller');
});

t.test('mirroring a frame swaps its columns and keeps its rows; twice gives the frame back', async (t) => {
  const w = 5;
  const h = 3;
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 251);
  const m = rgb.slice();
  mirrorFrame(m, w, h);
  let ok = true;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) ok &&= m[(y * w + x) * 3 + c] === rgb[(y * w + (w - 1 - x)) * 3 + c];
  t.ok(ok, 'pixel (x, y) comes from (w-1-x, y), channels in order');
  mirrorFrame(m, w, h);
  t.same(m, rgb);
});

t.test('with flip, a batch mirrors about half its frames and exactly their labels (cx -> 1 - cx); without, it copies', async (t) => {
  const { model, frames } = await tinySetup(4);
  const { w, h } = model.net.input;
  const per = w * h * 3;
  const idx = [3, 0, 2, 1, 3, 2, 0, 1, 1, 3, 0, 2];
  const labels = [0, 1, 2, 3].map((k) => [{ cls: k, cx: 0.1 + 0.05 * k, cy: 0.3, w: 0.2, h: 0.4 }, { cls: 7, cx: 0.8, cy: 0.6, w: 0.1, h: 0.1 }]);
  const state = initialState(model.params, 11);
  const rngBefore = state.rng;
  const { batch, labels: got } = sliceBatch(model.net, frames, idx, labels, state, true);
  t.not(state.rng, rngBefore, 'the draws come from the state (so a resumed run repeats them)');
  let mirrored = 0;
  idx.forEach((k, i) => {
    const src = frames.rgb.subarray(k * per, (k + 1) * per);
    const out = batch.rgb.subarray(i * per, (i + 1) * per);
    const flipped = src.slice();
    mirrorFrame(flipped, w, h);
    const isCopy = out.every((v, j) => v === src[j]);
    const isMirror = out.every((v, j) => v === flipped[j]);
    t.ok(isCopy !== isMirror, `frame ${i} is either the image or its mirror`);
    const want = labels[k].map((b) => (isMirror ? { ...b, cx: 1 - b.cx } : b));
    t.same(got![i], want, `labels of frame ${i} follow the frame`);
    if (isMirror) mirrored++;
  });
  t.ok(mirrored >= 3 && mirrored <= 9, `about half mirrored (${mirrored} of ${idx.length})`);
  t.same(labels[0][0].cx, 0.1, 'the caller\'s labels are not changed');
  const plain = sliceBatch(model.net, frames, idx, labels, initialState(model.params, 11), false);
  idx.forEach((k, i) => t.same(plain.batch.rgb.subarray(i * per, (i + 1) * per), frames.rgb.subarray(k * per, (k + 1) * per)));
  t.same(plain.labels, idx.map((k) => labels[k]));
});

t.test('with flip, training sees mirrored frames: an otherwise equal run ends with other weights', async (t) => {
  // Distillation needs no labels: the teacher sees the same mirrored frame. Flipping changes which
  // frames are trained on, so two otherwise equal runs must end with different weights.
  const { model, frames, calib } = await tinySetup(4);
  const cfg: TrainConfig = {
    quant, schedule: [5], iterations: 1, epochs: 1, batch: 2, lr: 1e-4, seed: 3, threads: 2,
    labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 2,
  };
  const data: TrainData = { frames, calib };
  const plain = await train(model.net, model.params, initialState(model.params, cfg.seed), data, cfg);
  const flipped = await train(model.net, model.params, initialState(model.params, cfg.seed), data, { ...cfg, flip: true });
  const a = flatParams(plain.state.params);
  const b = flatParams(flipped.state.params);
  t.ok(a.some((x, k) => x.some((v, i) => v !== b[k][i])), 'the runs differ');
  t.ok(Number.isFinite(flipped.state.history[0].meanLoss) && flipped.state.history[0].meanLoss > 0, 'the flipped run trains');
});

t.test('--keep-best writes the iteration with the best validation AP50, not the last one', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-retrain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const imgs = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 4);
  const list = path.join(dir, 'train.txt');
  const val = path.join(dir, 'val.txt');
  writeFileSync(list, imgs.slice(0, 2).join('\n'));
  writeFileSync(val, imgs.slice(2).join('\n'));
  const { runRetrain } = await import('../src/retrain/run.js');
  const { readZqw } = await import('../src/qnet/zqw.js');
  const out = path.join(dir, 'o.zqw');
  const flags: RetrainFlags = {
    ...FLAGS, data: list, val, gt: dataPath('coco-val', 'instances.json'), batch: 2, lr: 0.001, iterations: 3,
    actCalib: 'minmax', calibImages: 2, output: out, keepBest: true, keepIterations: true,
  };
  t.throws(() => parseRetrainFlags(CFG, { ...flags, val: undefined }), { code: 'usage', message: /--val/ }, 'refused without a validation list');
  const report = await runRetrain({ ...parseRetrainFlags(CFG, flags), size: { width: 96, height: 96 } });
  const aps = report.history.map((h) => h.ap50!);
  t.equal(aps.length, 3, 'three validated iterations');
  const best = aps.indexOf(Math.max(...aps));
  t.equal(report.bestIteration, best, `the first iteration with the highest AP50 (${aps.map((a) => a.toFixed(4)).join(', ')})`);
  const written = (await readZqw(out)).qnet;
  const fromBest = (await readZqw(report.iterations![best + 1])).qnet;
  const fromLast = (await readZqw(report.iterations![3])).qnet;
  t.same(qnetDifferences(written, fromBest), [], 'the output holds the best iteration\'s integers');
  if (best !== 2) t.not(qnetDifferences(written, fromLast).length, 0, 'which differ from the last iteration\'s');
});

t.test('--keep-formats: formats from the quantizer at the first iteration and where the width changes only', async (t) => {
  const { model, frames, calib } = await tinySetup(4);
  const base: TrainConfig = {
    quant: { ...quant, rounding: 'output' }, schedule: [4], iterations: 3, epochs: 1, batch: 2, lr: 1e-4, seed: 3, threads: 2, labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 2,
  };
  const run = async (cfg: TrainConfig) => {
    const starts: number[] = [];
    const ends: { formats: number[]; fw: number[] }[] = [];
    const r = await train(model.net, model.params, initialState(model.params, cfg.seed), { frames, calib }, cfg, {
      onQuantized: (it) => void starts.push(it),
      onIterationEnd: (_rec, q) => void ends.push({ formats: q.formats.map((f) => f.frac), fw: q.convs.flatMap((c) => (c ? [...c.fw] : [])) }),
    });
    return { starts, ends, r };
  };
  const each = await run(base);
  t.same(each.starts, [0, 1, 2], 'by default every iteration starts with the quantizer');
  t.notSame(each.ends[1], each.ends[0], 'whose formats for the output-rounded start differ from the first iteration\'s');
  const kept = await run({ ...base, keepFormats: true });
  t.same(kept.starts, [0], 'with keepFormats only the first');
  t.same(kept.ends[1], kept.ends[0], 'iteration 2 trains in the formats of iteration 1');
  t.same(kept.ends[2], kept.ends[0], 'and so does iteration 3');
  t.same(kept.r.state.history.length, 3, 'three iterations ran');
  const narrowing = await run({ ...base, schedule: [6, 4], keepFormats: true });
  t.same(narrowing.starts, [0, 1], 'a schedule that narrows the width takes new formats where it changes');
});

t.test('--average-decay: each iteration ends with the running average of the shadow weights', async (t) => {
  const { model, frames, calib } = await tinySetup(4);
  const base: TrainConfig = {
    quant, schedule: [6], iterations: 1, epochs: 1, batch: 2, lr: 1e-3, seed: 5, threads: 2, labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 1,
  };
  const data: TrainData = { frames, calib };
  // The plain run's weights after one and after two steps (the same batches in the same order).
  const w1 = flatParams((await train(model.net, model.params, initialState(model.params, base.seed), data, base)).state.params);
  const w2 = flatParams((await train(model.net, model.params, initialState(model.params, base.seed), data, { ...base, maxStepsPerEpoch: 2 })).state.params);
  // The iteration's first weights: the quantizer's start (equalized) changes the shadow weights.
  const s0 = initialState(model.params, base.seed);
  await startIteration(model.net, s0, calib, { ...quant, wbits: 6 }, base.threads);
  const w0 = flatParams(s0.params);
  t.ok(w2.some((x, k) => x.some((v, i) => v !== w1[k][i])), 'the second step moves the weights');
  const d = 0.75;
  // keepFormats leaves the iteration's formats in the state (it changes nothing else in one iteration).
  const averaged = await train(model.net, model.params, initialState(model.params, base.seed), data, { ...base, maxStepsPerEpoch: 2, averageDecay: d, keepFormats: true });
  const got = flatParams(averaged.state.params);
  // avg0 = w0; avg1 = d·w0 + (1−d)·w1; avg2 = d·avg1 + (1−d)·w2, in float32 as the trainer computes it.
  const want = w0.map((x, k) => {
    const a = Float32Array.from(x);
    for (const w of [w1[k], w2[k]]) for (let i = 0; i < a.length; i++) a[i] = d * a[i] + (1 - d) * w[i];
    return a;
  });
  // Counted by hand: tap's deep comparison of 300 k numbers takes minutes.
  const differing = got.reduce((n, x, k) => n + x.filter((v, i) => v !== want[k][i]).length, 0);
  t.equal(differing, 0, 'the weights after the iteration are the average of the start and both steps');
  t.ok(got.some((x, k) => x.some((v, i) => v !== w2[k][i])), 'not the last step\'s weights');
  t.equal(averaged.state.average, undefined, 'the average is cleared for the next iteration');
  const formats = averaged.state.formats!;
  const q = toQNet(model.net, formats, intNet(model.net, averaged.state.params, formats, 6), { ...quant, wbits: 6 });
  t.same(qnetDifferences(averaged.qnet, q), [], 'the iteration\'s integer network is the average\'s');
  await t.rejects(train(model.net, model.params, initialState(model.params, base.seed), data, { ...base, averageDecay: 1 }), { code: 'retrain-config' }, 'a decay of 1 never moves: refused');
  t.equal(parseRetrainFlags(CFG, { ...FLAGS, data: dataPath('coco-val', 'calib.txt'), output: 'o.zqw', wbits: 6, averageDecay: 0.9 }).train.averageDecay, 0.9, 'the flag reaches the trainer');
});
