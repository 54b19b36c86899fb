// Feature distillation (zeroq retrain --feature-weight): the loss and its gradient, where that
// gradient enters the backward pass, and the equalized float model it is measured against.
import t from 'tap';
import { loadDarknet } from '../src/model/darknet.js';
import { dataPath } from '../src/util/paths.js';
import { loadFrames, readImageList } from '../src/retrain/data.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { featureLoss, innerConvLayers } from '../src/retrain/feature-loss.js';
import { initialState, startIteration, train, trainStep, type TrainConfig } from '../src/retrain/trainer.js';
import { defaultQuantConfig, intNet } from '../src/retrain/formats.js';
import { backward, floatForward, quantForward, type Grads } from '../src/retrain/sim.js';
import { flatParams } from '../src/retrain/adam.js';
import { loadCheckpoint, saveCheckpoint } from '../src/retrain/checkpoint.js';
import { rng } from './helpers/random-qnet.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const flatGrads = (g: Grads): Float32Array[] => [...g.weight, ...g.bias].filter((a): a is Float32Array => a !== undefined);

t.test('feature loss: the weighted sum over layers of the squared error relative to the teacher\'s energy; gradient = derivative', async (t) => {
  const r = rng(5);
  const count = 5;
  const layers = [1, 3];
  const teacher: Float32Array[] = [];
  teacher[1] = Float32Array.from({ length: 60 }, () => (r() * 2 - 1) * 3);
  teacher[3] = Float32Array.from({ length: 40 }, () => (r() * 2 - 1) * 0.01);
  const frac = [0, 6, 0, 12, 0];
  const student: Int16Array[] = [];
  for (const j of layers) student[j] = Int16Array.from(teacher[j], (v) => Math.round(v * 2 ** frac[j] + (r() * 2 - 1) * 40));
  const f = featureLoss(layers, student, frac, teacher, 0.5, count);
  let want = 0;
  for (const j of layers) {
    let sq = 0;
    let tt = 0;
    for (let i = 0; i < teacher[j].length; i++) {
      sq += (student[j][i] * 2 ** -frac[j] - teacher[j][i]) ** 2;
      tt += teacher[j][i] ** 2;
    }
    want += (0.5 * sq) / tt;
  }
  t.ok(Math.abs(f.loss - want) <= 1e-9 * want, `loss ${f.loss} = ${want}`);
  t.ok(want > 0.01, 'the noise gives a sizeable loss');
  t.same([0, 2, 4].map((j) => f.grads[j]), [undefined, undefined, undefined], 'no gradient outside the chosen layers');

  // Central differences in the real student value (frac 0 and a float student take it directly).
  const real: Float64Array[] = [];
  for (const j of layers) real[j] = Float64Array.from(student[j], (v) => v * 2 ** -frac[j]);
  const base = featureLoss(layers, real, [0, 0, 0, 0, 0], teacher, 0.5, count);
  t.ok(Math.abs(base.loss - f.loss) <= 1e-9 * want);
  let worst = 0;
  for (const j of layers) {
    for (const i of [0, 7, real[j].length - 1]) {
      const h = 1e-4 * Math.max(1e-3, Math.abs(real[j][i]));
      const at = (v: number) => {
        const x = real.map((a) => a && a.slice());
        x[j][i] = v;
        return featureLoss(layers, x, [0, 0, 0, 0, 0], teacher, 0.5, count).loss;
      };
      const fd = (at(real[j][i] + h) - at(real[j][i] - h)) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - base.grads[j]![i]) / Math.max(1e-12, Math.abs(fd)));
    }
  }
  t.ok(worst < 1e-4, `gradients match central differences (max relative difference ${worst.toExponential(1)})`);

  // Relative: a layer ten times larger in both student and teacher adds the same.
  const big: Float64Array[] = real.map((a) => a && a.map((v) => v * 10));
  const bigT: Float32Array[] = teacher.map((a) => a && a.map((v) => v * 10));
  t.ok(Math.abs(featureLoss(layers, big, [0, 0, 0, 0, 0], bigT, 0.5, count).loss - base.loss) <= 1e-6 * base.loss, 'scale-free');
  t.throws(() => featureLoss([1], [undefined as never, new Int16Array(3)], frac, teacher, 1, count), /layer 1/);
});

t.test('on Yolo-Fastest-1.1', async (t) => {
  const model = await loadDarknet(CFG, undefined, { width: 64, height: 64 });
  const net = model.net;
  const paths = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 4);
  const frames = await loadFrames(net, paths);
  const calib = await Promise.all(paths.map(async (p) => (await prepareFrame(p, net)).frame));
  const quant = defaultQuantConfig(4);
  const batch = { n: 4, rgb: frames.rgb };

  await t.test('the inner layers are the conv layers no yolo layer reads', async (t) => {
    const inner = innerConvLayers(net);
    const convs = net.layers.filter((l) => l.kind === 'conv').map((l) => l.index);
    const headInputs = net.heads.map((h) => net.layers[h].inputs[0]);
    t.equal(inner.length, convs.length - headInputs.length);
    t.ok(headInputs.every((j) => !inner.includes(j) && convs.includes(j)));
  });

  await t.test('a layer gradient given to backward() acts as the same gradient arriving from the head that reads the layer', async (t) => {
    const state = initialState(model.params, 1);
    const { formats } = await startIteration(net, state, calib, quant, 2);
    const q = intNet(net, state.params, formats, 4);
    const tape = quantForward(net, q, batch, 2);
    const r = rng(9);
    const headGrads = net.heads.map((h) => Float32Array.from({ length: tape.outs[net.layers[h].inputs[0]].length }, () => r() * 2 - 1));
    const zeros = headGrads.map((g) => new Float32Array(g.length));
    const fresh = (): Grads => ({
      weight: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(state.params[l.index]!.weight.length) : undefined)),
      bias: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(state.params[l.index]!.bias.length) : undefined)),
    });
    const viaHeads = fresh();
    backward(net, q, tape, headGrads, viaHeads, 2);
    const viaLayers = fresh();
    const layerGrads: Float32Array[] = [];
    net.heads.forEach((h, k) => (layerGrads[net.layers[h].inputs[0]] = headGrads[k].slice()));
    backward(net, q, tape, zeros, viaLayers, 2, layerGrads);
    t.same(flatGrads(viaLayers), flatGrads(viaHeads), 'identical weight and bias gradients');
    t.ok(flatGrads(viaHeads).some((g) => g.some((v) => v !== 0)), 'and they are not all zero');

    // An inner layer's gradient reaches only the layers before it.
    const j = innerConvLayers(net)[5];
    const only = fresh();
    const lg: Float32Array[] = [];
    lg[j] = Float32Array.from({ length: tape.outs[j].length }, () => r() * 2 - 1);
    backward(net, q, tape, zeros, only, 2, lg);
    const touched = net.layers.filter((l) => l.kind === 'conv' && only.weight[l.index]!.some((v) => v !== 0)).map((l) => l.index);
    t.ok(touched.includes(j) && touched.every((i) => i <= j), `layers ${touched.join(', ')} get gradient, none after ${j}`);
  });

  await t.test('with a feature weight, training keeps the equalized float model as teacher, adds the term to the loss, and trains other weights', async (t) => {
    const cfg: TrainConfig = {
      quant, schedule: [4], iterations: 1, epochs: 1, batch: 2, lr: 1e-4, seed: 3, threads: 2,
      labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 2,
    };
    const data = { frames, calib };
    const plain = await train(net, model.params, initialState(model.params, 3), data, cfg);
    t.equal(plain.state.teacher, undefined, 'no teacher copy without feature distillation');
    const feat = await train(net, model.params, initialState(model.params, 3), data, { ...cfg, featureWeight: 0.5 });
    const teacher = feat.state.teacher!;
    t.ok(teacher, 'the teacher is kept in the state');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-feat-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    await saveCheckpoint(path.join(dir, 'c.json'), { s: 1 }, feat.state);
    const back = await loadCheckpoint(path.join(dir, 'c.json'), { s: 1 });
    t.same(flatParams(back.teacher!), flatParams(teacher), 'and in its checkpoint');
    t.ok(flatParams(teacher).some((a, k) => a.some((v, i) => v !== flatParams(model.params)[k][i])), 'equalization changed the float weights');
    const a = floatForward(net, teacher, batch, 2);
    const b = floatForward(net, model.params, batch, 2);
    for (const h of net.heads) {
      const j = net.layers[h].inputs[0];
      let err = 0;
      let mag = 0;
      for (let i = 0; i < a[j].length; i++) {
        err = Math.max(err, Math.abs(a[j][i] - b[j][i]));
        mag = Math.max(mag, Math.abs(b[j][i]));
      }
      t.ok(err <= 1e-4 * mag, `head ${h}: the equalized teacher computes what the float model does (max difference ${err.toExponential(1)} of ${mag.toFixed(2)})`);
    }
    t.ok(flatParams(feat.state.params).some((x, k) => x.some((v, i) => v !== flatParams(plain.state.params)[k][i])), 'the runs end with different weights');

    // One step from the same state: the loss with features is the heads' loss plus the feature term.
    const s0 = initialState(model.params, 3);
    const { formats } = await startIteration(net, s0, calib, quant, 2);
    const s1 = structuredClone(s0);
    const q = intNet(net, s0.params, formats, 4);
    const one = { n: 2, rgb: frames.rgb.slice(0, 2 * 64 * 64 * 3) };
    const f = featureLoss(innerConvLayers(net), quantForward(net, q, one, 2).outs, q.frac, floatForward(net, teacher, one, 2), 0.5, net.layers.length);
    const heads = trainStep(net, teacher, s0, formats, one, undefined, { threads: 2, labelWeight: 0 }, 4, 1e-4);
    const both = trainStep(net, teacher, s1, formats, one, undefined, { threads: 2, labelWeight: 0, featureWeight: 0.5 }, 4, 1e-4);
    t.ok(f.loss > 0.1, `a W4 student's inner layers differ (feature term ${f.loss.toFixed(3)})`);
    t.ok(Math.abs(both - (heads + f.loss)) <= 1e-6 * both, `the step's loss is the heads' plus the feature term (${heads.toFixed(3)} + ${f.loss.toFixed(3)} = ${both.toFixed(3)})`);
    t.ok(flatParams(s0.params).some((x, k) => x.some((v, i) => v !== flatParams(s1.params)[k][i])), 'and the step moves the weights differently');
  });
});
