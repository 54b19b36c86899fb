// The whole yolo-fastest-1.1 architecture (parsed from the data folder's cfg) with a random but
// valid QNet: native kernels on every instruction set and thread count against the reference,
// every layer bit for bit. And a real weight set when the data folder has one.
import t from 'tap';
import { existsSync } from 'node:fs';
import { parseCfgFile } from '../src/model/darknet.js';
import { runReference } from '../src/engine/int-reference.js';
import { IntEngine, availableIsas } from '../src/engine/int.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import { dataPath } from '../src/util/paths.js';
import { randomFrame, randomQNet, rng } from './helpers/random-qnet.js';

const native = loadNativeKernels();
const cfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');

t.test('yolo-fastest-1.1 with a random QNet: native == reference on every layer', { skip: !existsSync(cfg) && 'no cfg' }, async (t) => {
  t.ok(native.kernels, native.error ?? 'native kernels loaded');
  if (!native.kernels) return;
  const net = parseCfgFile(cfg);
  const r = rng(2024);
  const qnet = randomQNet(net, r, { p16: 1 });
  const frame = randomFrame(net, r);
  const ref = runReference(qnet, frame);
  t.equal(ref.heads.length, 2, 'two heads');
  t.same(ref.heads.map((h) => [h.c, h.h, h.w]), [[255, 10, 10], [255, 20, 20]], 'head shapes');
  for (const isa of availableIsas()) {
    for (const threads of [1, 2]) {
      const eng = new IntEngine(qnet, native.kernels, { isa, threads });
      const heads = eng.inferSync(frame);
      let bad = '';
      for (const layer of net.layers) {
        const got = eng.layerOutput(layer.index);
        const want = ref.outputs[layer.index].data;
        const i = got.findIndex((v, j) => v !== want[j]);
        if (i >= 0) {
          bad = `layer ${layer.index} (${layer.kind}) at ${i}: ${got[i]} vs ${want[i]}`;
          break;
        }
      }
      t.equal(bad, '', `${isa}, ${threads} thread(s): every layer identical`);
      t.same(heads.map((h) => h.raw), ref.heads.map((h) => h.raw), `${isa}, ${threads} thread(s): heads identical`);
      // A second frame through the same engine (buffers reused) is identical as well.
      t.same(eng.inferSync(frame).map((h) => h.raw), ref.heads.map((h) => h.raw), `${isa}, ${threads} thread(s): second run identical`);
      await eng.close();
    }
  }
});

t.test('yolo-fastest-1.1 real weights quantized (8-bit, per channel, zero-centered): native == reference on a real image', { skip: !existsSync(cfg) && 'no cfg' }, async (t) => {
  if (!native.kernels) return;
  const { loadDarknet } = await import('../src/model/darknet.js');
  const { quantizeModel, quantizeDefaults } = await import('../src/quant/quantize.js');
  const { prepareFrame } = await import('../src/detect/preprocess.js');
  const { decodeHeads, DEFAULT_DECODE } = await import('../src/detect/decode.js');
  const model = await loadDarknet(cfg);
  const calib = await Promise.all(['horses.jpg', 'person.jpg'].map((f) => prepareFrame(dataPath('reference', 'samples', f), model.net)));
  const { qnet } = await quantizeModel(model, calib.map((c) => c.frame), { ...quantizeDefaults(), wbits: 8, actCalib: 'minmax' });
  const dog = await prepareFrame(dataPath('reference', 'samples', 'dog.jpg'), model.net, { keepFloat: false });
  const ref = runReference(qnet, dog.frame);
  for (const isa of availableIsas()) {
    const eng = new IntEngine(qnet, native.kernels, { isa, threads: 2 });
    t.same(eng.inferSync(dog.frame).map((h) => h.raw), ref.heads.map((h) => h.raw), `${isa}: heads identical to the reference`);
  }
  // The integers mean something: the dog and the car darknet finds in this image are found.
  const names = decodeHeads(ref.heads, model.net, dog.width, dog.height, DEFAULT_DECODE).map((d) => d.className);
  t.ok(names.includes('dog') && names.includes('car'), `detections: ${names.join(', ')}`);
});
