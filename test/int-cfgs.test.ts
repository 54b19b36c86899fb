// The data folder's darknet architectures at a small input with random QNets (yolov4: 72 mish
// layers through look-up tables; tiny models: route groups, maxpool stride 1 and 2, upsample):
// every layer of the native kernels equals the reference, on every instruction set.
import t from 'tap';
import { existsSync } from 'node:fs';
import { parseCfgFile } from '../src/model/darknet.js';
import { runReference } from '../src/engine/int-reference.js';
import { IntEngine, availableIsas } from '../src/engine/int.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import { dataPath } from '../src/util/paths.js';
import { randomFrame, randomQNet, rng } from './helpers/random-qnet.js';

const native = loadNativeKernels();

for (const [name, size] of [['yolov3-tiny', 96], ['yolov4-tiny', 96], ['yolov4', 64]] as const) {
  const cfg = dataPath('models', 'cfg', `${name}.cfg`);
  t.test(`${name} at ${size}x${size}`, { skip: !existsSync(cfg) && 'no cfg' }, async (t) => {
    if (!native.kernels) return t.fail(native.error ?? 'no native kernels');
    const net = parseCfgFile(cfg, { width: size, height: size });
    const r = rng(7);
    const qnet = randomQNet(net, r);
    const frame = randomFrame(net, r);
    const ref = runReference(qnet, frame);
    for (const isa of availableIsas()) {
      const eng = new IntEngine(qnet, native.kernels, { isa, threads: 2 });
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
      t.equal(bad, '', `${isa}: every layer identical`);
      t.same(heads.map((h) => h.raw), ref.heads.map((h) => h.raw), `${isa}: heads identical`);
      await eng.close();
    }
  });
}
