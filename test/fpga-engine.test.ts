// The fpga engine through bridge-host on a real pty: bit-exact raw head integers against the CPU
// integer engine (a random QNet with every layer kind, and Yolo-Fastest-1.1 quantized on real
// images), the digest shortcut, frames in flight, and a device that cannot run a network.
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runReference } from '../src/engine/int-reference.js';
import { openIntEngine } from '../src/engine/int.js';
import { IntReferenceEngine } from '../src/engine/int-reference.js';
import { FpgaEngine } from '../src/engine/fpga/engine.js';
import { dataPath } from '../src/util/paths.js';
import { buildFirmware, startBridge, tempDir } from './helpers/bridge.js';
import { NetBuilder, randomFrame, randomQNet, rng } from './helpers/random-qnet.js';

// The tests here check the device's integers: a link deadline a loaded test machine cannot miss (the
// deadlines have their own tests in fpga-faults.test.ts).
const LINK_SLACK_MS = 3000;

buildFirmware();

/** Every layer kind the firmware and the accelerator run: grouped, depthwise, stride 2, tables, 16-bit heads. */
function everyKindNet() {
  const b = new NetBuilder({ c: 3, h: 24, w: 20 }, 'every-kind');
  b.conv({ filters: 16, size: 3, activation: 'leaky', from: -1 }); // 0: reads the uint8 frame
  const dw = b.conv({ filters: 16, size: 3, stride: 2, groups: 16, activation: 'linear' }); // 1: depthwise, stride 2 → 12x10
  b.maxpool(2, 2); // 2: → 6x5
  const c3 = b.conv({ filters: 8, size: 1, activation: 'relu' }); // 3
  b.maxpool(3, 1, 2); // 4: size 3 stride 1, same size
  b.conv({ filters: 8, size: 3, groups: 2, activation: 'mish' }); // 5: grouped, table
  b.shortcut(c3, 'leaky'); // 6
  b.route([6, c3]); // 7: 16 channels
  const half = b.route([7], 2, 1); // 8: second half, 8 channels
  b.upsample(2); // 9: → 12x10
  b.dropout(); // 10
  b.route([10, dw]); // 11: 24 channels at 12x10
  b.conv({ filters: 16, size: 3, activation: 'swish' }); // 12
  b.conv({ filters: 8, size: 1, activation: 'logistic' }); // 13
  b.conv({ filters: 18, size: 1, activation: 'linear' }); // 14
  b.yolo(); // 15
  b.conv({ filters: 18, size: 3, stride: 2, pad: 1, activation: 'linear', from: half }); // 16: 3x3 stride 2 → 3x3
  b.yolo(); // 17
  return b.build();
}

t.test('a random QNet with every layer kind: the device gives the reference integers', async (t) => {
  const { dir, remove } = tempDir();
  const link = path.join(dir, 'bridge');
  const bridge = await startBridge(link);
  t.teardown(async () => {
    await bridge.stop();
    remove();
  });
  t.match(bridge.first, /^\/dev\/pts\/\d+$/, 'bridge-host prints its pty');
  const net = everyKindNet();
  for (const seed of [1, 2, 3]) {
    const r = rng(seed);
    const qnet = randomQNet(net, r, { p16: 0.7, wbits: [2, 8] });
    const eng = await FpgaEngine.open(qnet, { device: link, fallback: new IntReferenceEngine(qnet), requireDevice: true, inflight: 2, baseTimeoutMs: LINK_SLACK_MS });
    const frames = [randomFrame(net, r), randomFrame(net, r), randomFrame(net, r)];
    // Three frames at once: two slots in flight, the third waits for one.
    const got = await Promise.all(frames.map((f) => eng.infer(f)));
    frames.forEach((f, i) => {
      t.same(got[i].map((h) => Array.from(h.raw!)), runReference(qnet, f).heads.map((h) => Array.from(h.raw!)), `seed ${seed} frame ${i}: heads identical`);
    });
    const s = eng.status();
    t.equal(s.state, 'ready');
    t.equal(s.counters.deviceFrames, 3, 'all on the device');
    t.equal(s.counters.fallbackFrames, 0, 'none on the CPU');
    t.ok(got.every((heads) => heads.every((h) => h.computedOn === undefined)), 'no head says the CPU computed it');
    t.same(got[0].map((h) => h.frac), runReference(qnet, frames[0]).heads.map((h) => h.frac), 'head fractions');
    await eng.close();
  }
});

const cfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
t.test('Yolo-Fastest-1.1 at 4 bits on dev images: the device gives the int engine\'s integers', { skip: !existsSync(cfg) && 'no model' }, async (t) => {
  const { loadDarknet } = await import('../src/model/darknet.js');
  const { quantizeModel, quantizeDefaults } = await import('../src/quant/quantize.js');
  const { prepareFrame } = await import('../src/detect/preprocess.js');
  const { readFileSync } = await import('node:fs');
  const model = await loadDarknet(cfg);
  const calib = await Promise.all(['horses.jpg', 'person.jpg'].map((f) => prepareFrame(dataPath('reference', 'samples', f), model.net)));
  const { qnet } = await quantizeModel(model, calib.map((c) => c.frame), { ...quantizeDefaults(), wbits: 4, actCalib: 'minmax' });
  const devList = readFileSync(dataPath('coco-val', 'dev.txt'), 'utf8').split('\n').filter(Boolean).slice(0, 3);
  const images = await Promise.all(devList.map((f) => prepareFrame(path.isAbsolute(f) ? f : dataPath('coco-val', f), model.net, { keepFloat: false })));

  const { dir, remove } = tempDir();
  const link = path.join(dir, 'bridge');
  const state = path.join(dir, 'state');
  let bridge = await startBridge(link, ['--state', state]);
  t.teardown(async () => {
    await bridge.stop();
    remove();
  });
  const int = openIntEngine(qnet);
  let progress = 0;
  // What is checked here is the integers, not the link's deadlines: a bridge process starved by a
  // loaded machine gets a generous one, so the frames stay on the device.
  const eng = await FpgaEngine.open(qnet, { device: link, fallback: openIntEngine(qnet), requireDevice: true, baseTimeoutMs: LINK_SLACK_MS, onUpload: (d) => (progress = d) });
  t.equal(eng.status().counters.uploads, 1, 'the image was uploaded');
  t.equal(progress, eng.image.length, 'upload progress reached the image size');
  t.equal(eng.status().caps?.imageDigest, eng.digest, 'the device holds the image digest');
  for (const [i, img] of images.entries()) {
    const want = (await int.infer(img.frame)).map((h) => Array.from(h.raw!));
    const got = (await eng.infer(img.frame)).map((h) => Array.from(h.raw!));
    t.same(got, want, `${path.basename(devList[i])}: raw heads identical to the int engine`);
  }
  const s = eng.status();
  t.equal(s.counters.deviceFrames, images.length, `every frame on the device${s.reason ? ` (${s.reason})` : ''}`);
  t.ok(s.counters.accelCycles > 0, `device cycles reported (${s.counters.accelCycles})`);
  const cycles = await eng.layerCycles();
  t.ok(cycles && cycles[0] > 0 && cycles[1] >= 0, 'per-layer cycles readable');
  await eng.close();
  await int.close();

  // A restarted bridge with the same state folder still holds the digest: no upload.
  await bridge.stop();
  bridge = await startBridge(link, ['--state', state]);
  const again = await FpgaEngine.open(qnet, { device: link, fallback: openIntEngine(qnet), requireDevice: true, baseTimeoutMs: LINK_SLACK_MS });
  t.equal(again.status().counters.uploads, 0, 'the digest shortcut skips the upload');
  t.equal(again.status().state, "ready", "on the device");
  await again.close();
});

t.test('a network the device cannot run stays on the CPU, and says why', async (t) => {
  const { dir, remove } = tempDir();
  const link = path.join(dir, 'bridge');
  const bridge = await startBridge(link, ['--mem', '1']);
  t.teardown(async () => {
    await bridge.stop();
    remove();
  });
  // Fits every check of the image but not 1 MiB of accelerator memory (32·192·192 bytes of output alone).
  const b = new NetBuilder({ c: 3, h: 192, w: 192 }, 'too-big');
  b.conv({ filters: 32, size: 3, from: -1 });
  b.conv({ filters: 16, size: 3 });
  b.yolo();
  const net = b.build();
  const r = rng(5);
  const qnet = randomQNet(net, r);
  await t.rejects(FpgaEngine.open(qnet, { device: link, fallback: openIntEngine(qnet), requireDevice: true }), /E_NO_MEMORY/, 'requireDevice: the refusal is an error');
  const eng = await FpgaEngine.open(qnet, { device: link, fallback: openIntEngine(qnet) });
  t.equal(eng.status().state, 'unsupported', 'marked unsupported');
  t.match(eng.status().reason, /accelerator memory/);
  const f = randomFrame(net, r);
  t.same((await eng.infer(f)).map((h) => Array.from(h.raw!)), runReference(qnet, f).heads.map((h) => Array.from(h.raw!)), 'the CPU computes it');
  t.equal(eng.status().counters.fallbackFrames, 1, 'counted as a fallback frame');
  t.equal((await eng.infer(f))[0]!.computedOn, 'cpu', 'the heads say the CPU computed them');
  await eng.close();
});
