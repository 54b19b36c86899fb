// Heads distilled towards another network (zeroq retrain --teacher, src/retrain/head-teacher.ts): the
// real Yolo-Fastest-1.1-xl teaching Yolo-Fastest-1.1, both at 64x64.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runRetrain } from '../src/retrain/run.js';
import { readZqw } from '../src/qnet/zqw.js';
import { loadDarknet } from '../src/model/darknet.js';
import type { Network, YoloLayer } from '../src/model/ir.js';
import { dataPath } from '../src/util/paths.js';
import { loadFrames, readImageList } from '../src/retrain/data.js';
import { initialState, startIteration, train, trainStep, type TrainConfig } from '../src/retrain/trainer.js';
import { defaultQuantConfig } from '../src/retrain/formats.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { floatForward, headValues, quantForward } from '../src/retrain/sim.js';
import { intNet } from '../src/retrain/formats.js';
import { distillationLoss } from '../src/retrain/loss.js';
import { featureLoss, innerConvLayers } from '../src/retrain/feature-loss.js';
import { checkHeadTeacher } from '../src/retrain/head-teacher.js';
import { flatParams } from '../src/retrain/adam.js';
import { parseRetrainFlags } from '../src/commands/retrain.js';
import { retrainFlags } from './helpers/retrain-flags.js';

const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const XL = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1-xl.cfg');
const SIZE = { width: 64, height: 64 };
const { wbits: _w, ...quant } = defaultQuantConfig(4);

async function setup(images = 4) {
  const model = await loadDarknet(CFG, undefined, SIZE);
  const xl = await loadDarknet(XL, undefined, SIZE);
  const paths = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, images);
  const calib = await Promise.all(paths.slice(0, 4).map(async (p) => (await prepareFrame(p, model.net)).frame));
  return { model, xl, frames: await loadFrames(model.net, paths), calib };
}

/** A copy of the network with the k-th yolo layer changed. */
function withHead(net: Network, k: number, change: Partial<YoloLayer>): Network {
  return { ...net, layers: net.layers.map((l) => (l.index === net.heads[k] ? { ...(l as YoloLayer), ...change } : l)) };
}

t.test('the teacher\'s heads must mean what the student\'s mean', async (t) => {
  const { model, xl } = await setup(1);
  t.doesNotThrow(() => checkHeadTeacher(model.net, xl.net, XL), 'yolo-fastest-1.1-xl can teach yolo-fastest-1.1');
  const bigger = await loadDarknet(XL, undefined, { width: 96, height: 96 });
  t.throws(() => checkHeadTeacher(model.net, bigger.net, XL), { code: 'retrain-teacher', message: /input 3x96x96 against 3x64x64/ }, 'another input size');
  const yolo = xl.net.layers[xl.net.heads[1]] as YoloLayer;
  t.throws(() => checkHeadTeacher(model.net, withHead(xl.net, 1, { mask: [3, 4, 5] }), XL), { message: /head 2: mask 3,4,5 against 0,1,2/ }, 'other anchors chosen');
  t.throws(() => checkHeadTeacher(model.net, withHead(xl.net, 0, { anchors: yolo.anchors.map((a) => a + 1) }), XL), { message: /head 1: anchors/ }, 'other anchor sizes');
  t.throws(() => checkHeadTeacher(model.net, withHead(xl.net, 0, { classes: 20 }), XL), { message: /head 1: 20 classes against 80/ }, 'other classes');
  t.throws(() => checkHeadTeacher(model.net, { ...xl.net, heads: xl.net.heads.slice(0, 1) }, XL), { message: /1 heads against 2/ }, 'fewer heads');
});

t.test('a step distils the heads towards the teacher and the inner layers towards the model\'s own float outputs', async (t) => {
  const { model, xl, frames, calib } = await setup();
  const net = model.net;
  const { formats } = await startIteration(net, initialState(model.params, 1), calib, { ...quant, wbits: 4 }, 2);
  const batch = { n: 4, rgb: frames.rgb };
  const q = intNet(net, initialState(model.params, 1).params, formats, 4);
  const tape = quantForward(net, q, batch, 2);
  const student = headValues(net, q, tape);
  const heads = (n: Network, outs: Float32Array[]) => n.heads.map((h) => outs[n.layers[h].inputs[0]]);
  const own = floatForward(net, model.params, batch, 2);
  const big = heads(xl.net, floatForward(xl.net, xl.params, batch, 2));
  const fromXl = distillationLoss(net, student, big, 4).loss;
  const fromOwn = distillationLoss(net, student, heads(net, own), 4).loss;
  t.not(fromXl, fromOwn, 'the two teachers disagree');
  const step = (cfg: Partial<TrainConfig>) => trainStep(net, model.params, initialState(model.params, 1), formats, batch, undefined, { threads: 2, labelWeight: 0, ...cfg }, 4, 1e-4);
  const headTeacher = { net: xl.net, params: xl.params };
  t.equal(step({ headTeacher }), fromXl, 'heads only: the loss is the distance to the teacher\'s heads');
  t.equal(step({}), fromOwn, 'without a teacher, to the model\'s own');
  const features = featureLoss(innerConvLayers(net), tape.outs, q.frac, own, 0.5, net.layers.length).loss;
  t.ok(features > 0, 'the inner layers differ from the float model\'s');
  t.ok(Math.abs(step({ headTeacher, featureWeight: 0.5 }) - (fromXl + features)) < 1e-9 * (fromXl + features), 'with features: the teacher\'s heads plus the own model\'s inner layers');
});

t.test('a run with a teacher keeps its outputs per frame and mirror image and ends as one that recomputes them', async (t) => {
  const { model, xl, frames, calib } = await setup(6);
  const cfg: TrainConfig = {
    quant, schedule: [4], iterations: 2, epochs: 2, batch: 2, lr: 1e-4, seed: 5, threads: 2, labelWeight: 0, budgetMs: 0, maxStepsPerEpoch: 3,
    flip: true, featureWeight: 0.5, headTeacher: { net: xl.net, params: xl.params },
  };
  const a = await train(model.net, model.params, initialState(model.params, cfg.seed), { frames, calib }, cfg);
  const b = await train(model.net, model.params, initialState(model.params, cfg.seed), { frames, calib }, { ...cfg, teacherCache: false });
  t.same(a.state.history.map((h) => h.meanLoss), b.state.history.map((h) => h.meanLoss), 'the same losses');
  const pa = flatParams(a.state.params), pb = flatParams(b.state.params);
  t.ok(pa.every((x, k) => Buffer.compare(Buffer.from(x.buffer), Buffer.from(pb[k].buffer)) === 0), 'the same weights, bit for bit');
  const own = await train(model.net, model.params, initialState(model.params, cfg.seed), { frames, calib }, { ...cfg, headTeacher: undefined });
  t.not(own.state.history[0].meanLoss, a.state.history[0].meanLoss, 'the teacher changes the training');
});

const FLAGS = () => retrainFlags({ batch: 2, actCalib: 'minmax', calibImages: 2 });

t.test('--teacher is checked, recorded in the weight set and binds the checkpoint', async (t) => {
  t.throws(() => parseRetrainFlags(CFG, { ...FLAGS(), wbits: 4, output: 'o.zqw', teacher: '/nonexistent/x.cfg' }), { code: 'bad-option', message: /no such cfg/ }, 'a missing cfg');
  t.throws(() => parseRetrainFlags(CFG, { ...FLAGS(), wbits: 4, output: 'o.zqw', teacherWeights: 'x.weights' }), { message: /--teacher-weights goes with --teacher/ }, 'weights without a teacher');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-retrain-teacher-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const list = path.join(dir, 'l.txt');
  writeFileSync(list, (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 2).join('\n'));
  const out = path.join(dir, 'o.zqw');
  const flags = { ...FLAGS(), wbits: 4, data: list, iterations: 1, output: out, teacher: XL };
  await runRetrain({ ...parseRetrainFlags(CFG, flags), size: SIZE, log: () => {} });
  const xlSha = (await import('node:crypto')).createHash('sha256').update(readFileSync(XL.replace(/\.cfg$/, '.weights'))).digest('hex');
  const { manifest } = await readZqw(out);
  t.match(manifest.quantization, { teacher: { model: 'yolo-fastest-1.1-xl', weightsSha256: xlSha } }, 'the teacher and its weights\' digest in the manifest');
  const ckpt = JSON.parse(readFileSync(`${out}.ckpt.json`, 'utf8')) as { settings: Record<string, unknown> };
  t.match(ckpt.settings, { teacher: { model: 'yolo-fastest-1.1-xl' } }, 'and in the checkpoint\'s settings');
  await t.rejects(runRetrain({ ...parseRetrainFlags(CFG, { ...flags, teacher: undefined, iterations: 2, resume: true }), size: SIZE, log: () => {} }),
    { code: 'retrain-checkpoint', message: /made with teacher=.*this run has \(none\)/ }, 'resuming without the teacher is refused');
  await t.rejects(runRetrain({ ...parseRetrainFlags(CFG, { ...flags, teacher: CFG, iterations: 2, resume: true }), size: SIZE, log: () => {} }),
    { code: 'retrain-checkpoint', message: /teacher/ }, 'resuming with another teacher is refused');
});
