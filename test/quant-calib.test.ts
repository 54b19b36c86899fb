import t from 'tap';
import { convActivated, convActivatedFrames, requantize, routeInt, shortcutInt } from '../src/quant/calib-sim.js';
import { convReference } from '../src/engine/int/conv.js';
import { routeReference } from '../src/engine/int/route.js';
import { shortcutReference } from '../src/engine/int/shortcut.js';
import { runReference } from '../src/engine/int-reference.js';
import { frameTensor } from '../src/engine/int/heads.js';
import { openIntEngine } from '../src/engine/int.js';
import { FloatEngine } from '../src/engine/float.js';
import { loadDarknet } from '../src/model/darknet.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { readImageList } from '../src/eval/dataset.js';
import { ActivationStats, formatsFromStats, fracForRange, outputBits, ownsFormat } from '../src/quant/calibrate.js';
import { collectStats, quantizeModel, quantizeDefaults } from '../src/quant/quantize.js';
import { hessianSums } from '../src/quant/gptq.js';
import { dataPath } from '../src/util/paths.js';
import { retrainNative } from '../src/retrain/native.js';
import { NetBuilder, randomFrame, randomQNet, rng } from './helpers/random-qnet.js';
import type { ConvLayer, RouteLayer, ShortcutLayer } from '../src/model/ir.js';
import type { Frame } from '../src/engine/engine.js';

/** Conv layers of every kind the calibration handles: from the network input with stride 2 and leaky,
 * depthwise with relu, pointwise linear, grouped 5x5 stride 2, and 1x1 stride 2 with odd padding. */
function convNet() {
  const b = new NetBuilder({ c: 3, h: 13, w: 7 });
  b.conv({ filters: 6, size: 3, stride: 2, from: -1, activation: 'leaky' });
  b.conv({ filters: 6, size: 3, groups: 6, activation: 'relu' });
  b.conv({ filters: 9, size: 1, pad: 0, activation: 'linear' });
  b.conv({ filters: 6, size: 5, groups: 3, stride: 2, activation: 'leaky' });
  b.conv({ filters: 4, size: 1, stride: 2, pad: 1, activation: 'leaky', from: 2 });
  return b.build();
}

t.test('the calibration conv (Y once, then requantized per format) equals the reference bit for bit', async (t) => {
  const net = convNet();
  for (let seed = 1; seed <= 6; seed++) {
    const r = rng(seed);
    const qnet = randomQNet(net, r);
    const frame = randomFrame(net, r);
    const ref = runReference(qnet, frame);
    for (const l of net.layers as ConvLayer[]) {
      const src = l.inputs[0];
      const x = src === -1 ? frameTensor(net, frame) : ref.outputs[src];
      const inFmt = src === -1 ? { bits: 8 as const, frac: 8 } : qnet.formats[src];
      const a = convActivated(l, qnet.convs[l.index]!, x);
      for (const frac of [qnet.formats[l.index].frac - 3, qnet.formats[l.index].frac, qnet.formats[l.index].frac + 4]) {
        const fmt = { bits: qnet.formats[l.index].bits, frac };
        const want = convReference(l, qnet.convs[l.index]!, x, inFmt, fmt).data;
        const got = requantize(a, qnet.convs[l.index]!, l.out.h * l.out.w, inFmt.frac, frac, fmt.bits, new Int32Array(want.length));
        t.same(Array.from(got), Array.from(want), `seed ${seed} layer ${l.index} frac ${frac}`);
      }
    }
  }
});

/** Every conv layer of convNet() with its integer inputs on three random frames (reference engine). */
function convInputs(seed: number) {
  const net = convNet();
  const r = rng(seed);
  const qnet = randomQNet(net, r);
  const frames = [1, 2, 3].map(() => randomFrame(net, r));
  const refs = frames.map((f) => runReference(qnet, f));
  return (net.layers as ConvLayer[]).map((l) => {
    const src = l.inputs[0];
    const xs = src === -1 ? frames.map((f) => frameTensor(net, f)) : refs.map((ref) => ref.outputs[src]);
    return { net, l, qc: qnet.convs[l.index]!, xs, frac: src === -1 ? 8 : qnet.formats[src].frac };
  });
}

t.test('the calibration conv over several frames on the native kernels equals the JS one frame at a time', async (t) => {
  let compared = 0;
  for (const { l, qc, xs } of convInputs(11)) {
    const want = xs.map((x) => Array.from(convActivated(l, qc, x)));
    for (const threads of [1, 2]) {
      const got = convActivatedFrames(l, qc, xs, threads).map((a) => Array.from(a));
      t.same(got, want, `layer ${l.index} (${l.activation}), ${xs.length} frames, ${threads} thread(s)`);
      compared++;
    }
  }
  t.equal(compared, 10);
  t.ok(retrainNative().convActivatedInt, 'the native kernels were built, so they are what was compared');
});

t.test('the output-error rounding\'s input sums on the native kernels equal the JS sums exactly', async (t) => {
  let nonzero = 0;
  for (const { net, l, xs, frac } of convInputs(12)) {
    const inputs = xs.map((x) => ({ ...x, frac }));
    for (const maxPositions of [2048, 7]) {
      const js = hessianSums(net, l, inputs, maxPositions, 1, false);
      for (const threads of [1, 2]) {
        const nat = hessianSums(net, l, inputs, maxPositions, threads, true);
        t.same(nat.sums.map((h) => Array.from(h)), js.sums.map((h) => Array.from(h)), `layer ${l.index}, at most ${maxPositions} positions, ${threads} thread(s)`);
      }
      nonzero += js.sums.reduce((a, h) => a + h.filter((v) => v !== 0).length, 0);
    }
  }
  t.ok(nonzero > 100, 'the sums are not empty');
  t.ok(retrainNative().convInputHessian, 'the native kernels were built, so they are what was compared');
});

t.test('route and shortcut conversions equal the reference', async (t) => {
  const b = new NetBuilder({ c: 3, h: 6, w: 5 });
  b.conv({ filters: 4, size: 3, from: -1 }); // 0
  b.conv({ filters: 4, size: 1, pad: 0 }); // 1
  b.shortcut(0, 'leaky'); // 2
  b.route([0, 2], 2, 1); // 3
  b.route([1, 0, 2]); // 4
  const net = b.build();
  for (let seed = 1; seed <= 5; seed++) {
    const r = rng(seed);
    const qnet = randomQNet(net, r);
    const ref = runReference(qnet, randomFrame(net, r));
    for (const i of [2, 3, 4]) {
      const l = net.layers[i];
      const ins = l.inputs.map((k) => ref.outputs[k]);
      const fracs = l.inputs.map((k) => qnet.formats[k].frac);
      for (const frac of [-1, 2, 6, 11]) {
        const fmt = { bits: 8 as const, frac };
        const want =
          l.kind === 'shortcut'
            ? shortcutReference(l, ins, l.inputs.map((k) => qnet.formats[k]), fmt)
            : routeReference(l as RouteLayer, ins, l.inputs.map((k) => qnet.formats[k]), fmt);
        const got = l.kind === 'shortcut' ? shortcutInt(l as ShortcutLayer, ins, fracs, frac, 8) : routeInt(l as RouteLayer, ins, fracs, frac, 8);
        t.same(Array.from(got), Array.from(want.data), `seed ${seed} layer ${i} (${l.kind}) frac ${frac}`);
      }
    }
  }
});

t.test('fraction bits from a range: largest frac with nothing clipped, negative side up to -2^(B-1)', async (t) => {
  t.equal(fracForRange(0, 31.75, 8), 2, '31.75·4 = 127');
  t.equal(fracForRange(0, 31.9, 8), 1);
  t.equal(fracForRange(-32, 1, 8), 2, '-32·4 = -128 still fits');
  t.equal(fracForRange(-32.2, 1, 8), 1);
  t.equal(fracForRange(-3, 7.9, 16), 12, '7.9·4096 = 32358 <= 32767 < 7.9·8192');
});

const MODEL = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');

async function calibFrames(n: number, net: Parameters<typeof prepareFrame>[1]): Promise<Frame[]> {
  const list = readImageList(dataPath('coco-val', 'calib.txt')).slice(0, n);
  const out: Frame[] = [];
  for (const im of list) out.push((await prepareFrame(im.path, net)).frame);
  return out;
}

t.test('real images: statistics and min/max / percentile formats of yolo-fastest-1.1', async (t) => {
  const model = await loadDarknet(MODEL);
  const frames = await calibFrames(2, model.net);
  const engine = await FloatEngine.create(model, { allOutputs: true });
  const stats: ActivationStats = await collectStats(engine, model, frames);
  await engine.close();
  t.equal(stats.images, 2);
  const bits = outputBits(model.net, 8, 16);
  t.same(
    model.net.heads.map((h) => bits[model.net.layers[h].inputs[0]]),
    [16, 16],
    'the tensors feeding the yolo heads are 16-bit',
  );
  t.equal(bits.filter((b) => b === 16).length, 2, 'and only those');
  const mm = formatsFromStats(model.net, stats, bits, 'minmax');
  const pc = formatsFromStats(model.net, stats, bits, 'percentile', 99.9);
  for (const l of model.net.layers) {
    if (l.kind === 'maxpool' || l.kind === 'upsample' || l.kind === 'dropout' || l.kind === 'yolo') {
      t.same(mm[l.index], mm[l.inputs[0]], `layer ${l.index} (${l.kind}) keeps its input's format`);
      continue;
    }
    if (!ownsFormat(l)) continue;
    const f = mm[l.index];
    const hi = 2 ** (f.bits - 1) - 1;
    const max = stats.max[l.index];
    const min = stats.min[l.index];
    t.ok(Math.round(max * 2 ** f.frac) <= hi && Math.round(-min * 2 ** f.frac) <= hi + 1, `layer ${l.index}: min/max not clipped at frac ${f.frac}`);
    t.ok(Math.round(max * 2 ** (f.frac + 1)) > hi || Math.round(-min * 2 ** (f.frac + 1)) > hi + 1, `layer ${l.index}: frac ${f.frac} is the largest`);
    t.ok(pc[l.index].frac >= f.frac, `layer ${l.index}: the percentile range is within min/max`);
  }
  t.ok(
    model.net.layers.some((l) => ownsFormat(l) && pc[l.index].frac > mm[l.index].frac),
    'the 99.9th percentile clips outliers somewhere',
  );
});

t.test('real images: the format search gives a valid QNet whose heads follow the float model', async (t) => {
  const model = await loadDarknet(MODEL);
  const frames = await calibFrames(3, model.net);
  const res = await quantizeModel(model, frames.slice(0, 2), { ...quantizeDefaults(), wbits: 8, actCalib: 'search' });
  const { qnet } = res;
  for (const l of res.layers) {
    if (l.calibrated) t.ok(l.actSqnr !== undefined && l.actSqnr > 3, `layer ${l.index}: searched, ${l.actSqnr?.toFixed(1)} dB`);
  }
  t.equal(res.calibration.searchImages, 2);
  // An image the calibration did not see: integer heads against float heads.
  const fe = await FloatEngine.create(model);
  const want = await fe.infer(frames[2]);
  await fe.close();
  const ie = openIntEngine(qnet);
  const got = await ie.infer(frames[2]);
  await ie.close();
  for (let h = 0; h < want.length; h++) {
    let sig = 0;
    let err = 0;
    for (let i = 0; i < want[h].data.length; i++) {
      sig += want[h].data[i] ** 2;
      err += (got[h].data[i] - want[h].data[i]) ** 2;
    }
    const db = 10 * Math.log10(sig / err);
    t.ok(db > 15, `head ${h}: integer vs float ${db.toFixed(1)} dB`);
    t.equal(got[h].frac, qnet.formats[model.net.layers[model.net.heads[h]].inputs[0]].frac);
  }
});
