import t from 'tap';
import { FloatEngine } from '../src/engine/float.js';
import { loadDarknet, parseCfgFile } from '../src/model/darknet.js';
import type { FloatModel } from '../src/model/ir.js';
import { DATA_CFGS, tempDir, writeRandomWeights } from './helpers/darknet-fixtures.js';
import { referenceForward, rng } from './helpers/float-reference.js';

/**
 * The float engine on the data folder's darknet cfgs (random weights, small inputs so that the
 * plain JS reference stays quick), every layer against the reference. yolov3 adds no layer kind
 * that these do not have.
 */
const CASES: { name: keyof typeof DATA_CFGS; size: number }[] = [
  { name: 'yolov3-tiny', size: 96 },
  { name: 'yolov4-tiny', size: 96 },
  { name: 'yolov4', size: 64 },
  { name: 'yolo-fastest-1.1-xl', size: 96 },
];

async function modelAt(name: keyof typeof DATA_CFGS, size: number, dir: string): Promise<FloatModel> {
  const net = parseCfgFile(DATA_CFGS[name], { width: size, height: size });
  const weights = writeRandomWeights(net, 11, dir);
  return loadDarknet(DATA_CFGS[name], weights, { width: size, height: size });
}

for (const c of CASES) {
  t.test(`${c.name} at ${c.size}x${c.size}: every layer matches the JS reference`, async (t) => {
    const tmp = tempDir();
    t.teardown(tmp.cleanup);
    const model = await modelAt(c.name, c.size, tmp.dir);
    const engine = await FloatEngine.create(model, { allOutputs: true });
    t.teardown(() => engine.close());
    const r = rng(3);
    const rgb = Uint8Array.from({ length: c.size * c.size * 3 }, () => Math.floor(r() * 256));
    const frame = { rgb, width: c.size, height: c.size };
    const outs = await engine.inferLayers(frame);
    const input = new Float32Array(3 * c.size * c.size);
    for (let i = 0; i < c.size * c.size; i++) for (let k = 0; k < 3; k++) input[k * c.size * c.size + i] = rgb[i * 3 + k] / 255;
    const ref = referenceForward(model, input);
    let worstLayer = -1;
    let worst = 0;
    for (const o of outs) {
      const want = ref[o.layer].data;
      // relative to the layer's scale: deep float32 networks drift a little from double
      let scale = 1e-6;
      for (let k = 0; k < want.length; k++) scale = Math.max(scale, Math.abs(want[k]));
      for (let k = 0; k < want.length; k++) {
        const e = Math.abs(o.data[k] - want[k]) / scale;
        if (e > worst) {
          worst = e;
          worstLayer = o.layer;
        }
      }
    }
    t.equal(outs.length, model.net.layers.filter((l) => l.kind !== 'yolo').length, 'every layer exposed');
    t.ok(worst < 1e-4, `worst error ${worst.toExponential(2)} of the layer's range (layer ${worstLayer})`);
    const heads = await engine.infer(frame);
    t.same(heads.map((h) => h.layer), model.net.heads);
    t.ok(
      heads.every((h) => {
        const l = outs.find((o) => o.layer === model.net.layers[h.layer].inputs[0])!;
        return h.data.every((v, i) => v === l.data[i]);
      }),
      'heads are the outputs of the layers feeding the yolo layers',
    );
  });
}
