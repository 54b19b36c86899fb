// The quantized forward pass that retraining runs must be the integer engine's arithmetic: every
// layer's integers equal those of the readable reference (src/engine/int-reference.ts).
import t, { type Test } from 'tap';
import { runReference } from '../src/engine/int-reference.js';
import { validateQNet } from '../src/qnet/validate.js';
import { parseCfgFile } from '../src/model/darknet.js';
import { loadDarknet } from '../src/model/darknet.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { dataPath } from '../src/util/paths.js';
import { quantForward, type Batch } from '../src/retrain/sim.js';
import { defaultQuantConfig, fromQNet, intNet, qnetDifferences, quantizerFormats, toQNet, type QuantConfig } from '../src/retrain/formats.js';
import { equalizablePairs } from '../src/quant/equalize.js';
import { NetBuilder, randomFrame, randomQNet, rng } from './helpers/random-qnet.js';
import type { Frame } from '../src/engine/engine.js';
import type { Network } from '../src/model/ir.js';
import type { QNet } from '../src/qnet/types.js';

function batchOf(frames: Frame[]): Batch {
  const rgb = new Uint8Array(frames.reduce((a, f) => a + f.rgb.length, 0));
  let at = 0;
  for (const f of frames) rgb.set(f.rgb, at), (at += f.rgb.length);
  return { n: frames.length, rgb };
}

/** Number of layers whose integers differ between the simulation and the reference, per frame. */
function compare(t: Test, qnet: QNet, frames: Frame[]): void {
  const tape = quantForward(qnet.net, fromQNet(qnet), batchOf(frames), 2);
  frames.forEach((frame, b) => {
    const ref = runReference(qnet, frame);
    const bad: number[] = [];
    for (const l of qnet.net.layers) {
      const r = ref.outputs[l.index].data;
      const s = tape.outs[l.index];
      const off = b * r.length;
      for (let i = 0; i < r.length; i++) {
        if (r[i] !== s[off + i]) {
          bad.push(l.index);
          break;
        }
      }
    }
    t.same(bad, [], `frame ${b}: every layer bit-exact`);
  });
}

function smallNet(): Network {
  const b = new NetBuilder({ c: 3, h: 20, w: 24 });
  b.conv({ filters: 8, size: 3, stride: 2, from: -1 });
  b.conv({ filters: 8, size: 3, groups: 8 });
  b.conv({ filters: 12, size: 1, activation: 'linear' });
  b.dropout();
  const a = b.conv({ filters: 12, size: 3, groups: 4 });
  b.shortcut(b.rel(-2));
  b.maxpool(2, 2);
  const m = b.maxpool(3, 1);
  b.route([m, b.rel(-2)]);
  b.route([b.rel(-1)], 2, 1);
  b.conv({ filters: 85 * 3, size: 1, activation: 'linear' });
  b.yolo();
  b.upsample(2, m);
  b.route([b.rel(-1), a]);
  b.conv({ filters: 85 * 3, size: 1, activation: 'linear' });
  b.yolo();
  return b.build();
}

t.test('random QNets on every layer kind: simulation = integer reference', async (t) => {
  const net = smallNet();
  for (let seed = 1; seed <= 6; seed++) {
    const r = rng(seed);
    const qnet = randomQNet(net, r, { p16: 0.5 });
    validateQNet(qnet);
    await t.test(`seed ${seed}`, async (t) => compare(t, qnet, [randomFrame(net, r), randomFrame(net, r)]));
  }
});

t.test('Yolo-Fastest-1.1 with its real weights, formats from the quantizer: simulation = integer reference', async (t) => {
  const cfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
  const model = await loadDarknet(cfg, undefined, { width: 128, height: 96 });
  const net = model.net;
  const images = ['000000000785.jpg', '000000001000.jpg'].map((f) => dataPath('coco-val', 'images', f));
  const frames = await Promise.all(images.map(async (p) => (await prepareFrame(p, net)).frame));
  const configs: QuantConfig[] = [
    defaultQuantConfig(4),
    { ...defaultQuantConfig(8), perChannel: false, zeroCentered: false, headBits: 8, actCalib: 'minmax', equalize: false },
    { ...defaultQuantConfig(4), zeroCentered: false, actCalib: 'minmax', alignWeights: true },
    // Centers off the mean (--center fit): the frozen formats must find the same mu.
    { ...defaultQuantConfig(4), center: 'fit' },
    { ...defaultQuantConfig(5), center: 'fit', rounding: 'nearest', perChannel: false, equalize: false },
  ];
  for (const qc of configs) {
    const it = await quantizerFormats(net, model.params, frames, qc, { equalize: qc.equalize, align: qc.alignWeights, threads: 2 });
    const qnet = toQNet(net, it.formats, intNet(net, it.params, it.formats, qc.wbits), qc);
    validateQNet(qnet);
    const name = `W${qc.wbits} ${qc.perChannel ? 'per-channel' : 'per-layer'}${qc.alignWeights ? ', grid-aligned' : ''}${qc.center === 'fit' ? ', center fit' : ''}`;
    // The shadow weights and frozen formats give back exactly the quantizer's integers (what every iteration start checks).
    t.same(qnetDifferences(qnet, it.qnet), [], `${name}: the quantizer's integers reproduced`);
    if (qc.alignWeights) {
      // The shadow weights the iteration continues from are the aligned ones: every A channel of a pair reaches ±7.
      const chans = equalizablePairs(net).flatMap(({ a }) => {
        const c = qnet.convs[a]!;
        const per = c.q.length / c.fw.length;
        return Array.from(c.fw, (_, o) => Math.max(...Array.from(c.q.subarray(o * per, (o + 1) * per), Math.abs)));
      });
      t.ok(chans.filter((m) => m === 7).length > 0.99 * chans.length, `${name}: aligned channels at the top of the grid`);
    }
    await t.test(name, async (t) => compare(t, qnet, frames));
  }
  t.ok(parseCfgFile(cfg).input.w === 320, 'cfg size unchanged by the override');
});
