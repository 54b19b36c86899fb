import t from 'tap';
import * as ort from 'onnxruntime-node';
import { buildOnnx, exposedLayers, headOutputNames, INPUT_NAME, layerTensorName } from '../src/model/onnx-builder.js';
import { decodeModel } from '../src/model/onnx-proto.js';
import type { FloatModel } from '../src/model/ir.js';
import { ZeroqError } from '../src/util/errors.js';
import { handModel, referenceForward, rng } from './helpers/float-reference.js';

function randomInput(model: FloatModel, seed: number): Float32Array {
  const { c, h, w } = model.net.input;
  const r = rng(seed);
  return Float32Array.from({ length: c * h * w }, () => r() * 2 - 1);
}

interface LayerCheck {
  layer: number;
  kind: string;
  dims: readonly number[];
  want: number[];
  worst: number;
}

/** Runs the ONNX graph with every layer exposed and compares each layer with the JS reference. */
async function compareWithReference(model: FloatModel, seed = 7): Promise<LayerCheck[]> {
  const bytes = buildOnnx(model, { allOutputs: true });
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  const input = randomInput(model, seed);
  const { c, h, w } = model.net.input;
  const results = await session.run({ [INPUT_NAME]: new ort.Tensor('float32', input, [1, c, h, w]) });
  await session.release();
  const ref = referenceForward(model, input);
  return exposedLayers(model.net).map((i) => {
    const got = results[layerTensorName(i)];
    const layer = model.net.layers[i];
    const want = ref[i].data;
    const data = got.data as Float32Array;
    let worst = 0;
    for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(data[k] - want[k]) / (1 + Math.abs(want[k])));
    return { layer: i, kind: layer.kind, dims: got.dims, want: [1, layer.out.c, layer.out.h, layer.out.w], worst };
  });
}

async function checkAgainstReference(tt: Pick<typeof t, 'same' | 'ok'>, model: FloatModel): Promise<void> {
  for (const r of await compareWithReference(model)) {
    tt.same(r.dims, r.want, `layer ${r.layer} (${r.kind}) shape`);
    tt.ok(r.worst < 1e-4, `layer ${r.layer} (${r.kind}) matches the reference (worst relative error ${r.worst.toExponential(2)})`);
  }
}

t.test('convolutions: groups, depthwise, strides, padding, every activation', async (t) => {
  const m = handModel({ c: 3, h: 13, w: 11 }, [
    { kind: 'conv', filters: 8, size: 3, stride: 2, activation: 'leaky' },
    { kind: 'conv', filters: 8, size: 3, groups: 8, activation: 'mish' },
    { kind: 'conv', filters: 6, size: 1, groups: 2, pad: 0, activation: 'swish' },
    { kind: 'conv', filters: 6, size: 5, groups: 6, pad: 2, activation: 'logistic' },
    { kind: 'conv', filters: 4, size: 3, pad: 0, activation: 'relu' },
    { kind: 'conv', filters: 4, size: 1, pad: 0, activation: 'linear' },
  ]);
  await checkAgainstReference(t, m);
});

t.test('mish far in both tails (darknet softplus threshold 20)', async (t) => {
  const m = handModel({ c: 1, h: 4, w: 4 }, [{ kind: 'conv', filters: 2, size: 1, pad: 0, activation: 'mish' }]);
  m.params[0] = { weight: Float32Array.from([40, -40]), bias: Float32Array.from([0, 0]) };
  await checkAgainstReference(t, m);
});

t.test('darknet max-pools: size 2 stride 1, size 2 stride 2 on odd sizes, size 3 stride 2', async (t) => {
  const m = handModel({ c: 2, h: 9, w: 7 }, [
    { kind: 'maxpool', size: 2, stride: 1 },
    { kind: 'maxpool', size: 2, stride: 2 },
    { kind: 'maxpool', size: 3, stride: 2, from: -2 },
    { kind: 'maxpool', size: 3, stride: 1, from: -1 },
  ]);
  t.same(m.net.layers[1].out, { c: 2, h: 5, w: 4 }, 'darknet rounds up on odd sizes');
  await checkAgainstReference(t, m);
});

t.test('max-pool with padding as large as the window (explicit -inf padding)', async (t) => {
  const m = handModel({ c: 2, h: 6, w: 5 }, [{ kind: 'maxpool', size: 2, stride: 2, padding: 4 }]);
  await checkAgainstReference(t, m);
});

t.test('SPP block: stride-1 pools of 5, 9, 13 and a concat', async (t) => {
  const m = handModel({ c: 3, h: 10, w: 10 }, [
    { kind: 'conv', filters: 4, size: 1, pad: 0 },
    { kind: 'maxpool', size: 5, stride: 1 },
    { kind: 'route', layers: [-2] },
    { kind: 'maxpool', size: 9, stride: 1 },
    { kind: 'route', layers: [-4] },
    { kind: 'maxpool', size: 13, stride: 1 },
    { kind: 'route', layers: [-1, -3, -5, -6] },
  ]);
  t.same(m.net.layers[6].out, { c: 16, h: 10, w: 10 });
  await checkAgainstReference(t, m);
});

t.test('route with groups (yolov4-tiny style), shortcut, upsample, dropout, yolo heads', async (t) => {
  const m = handModel({ c: 3, h: 8, w: 8 }, [
    { kind: 'conv', filters: 8, size: 3, stride: 2 }, // 0: 8x4x4
    { kind: 'route', layers: [-1], groups: 2, groupId: 1 }, // 1: 4x4x4
    { kind: 'conv', filters: 4, size: 3 }, // 2
    { kind: 'shortcut', from: -2, activation: 'leaky' }, // 3
    { kind: 'route', layers: [-1, -3], groups: 2, groupId: 0 }, // 4: 2+2
    { kind: 'dropout' }, // 5
    { kind: 'conv', filters: 2 * 7, size: 1, pad: 0, activation: 'linear' }, // 6
    { kind: 'yolo', classes: 2, mask: [0, 1], anchors: [10, 14, 23, 27] }, // 7
    { kind: 'route', layers: [-3] }, // 8
    { kind: 'upsample', stride: 2 }, // 9: 4x8x8
    { kind: 'shortcut', from: -1 }, // 10: linear x+x
    { kind: 'conv', filters: 7, size: 1, pad: 0, activation: 'linear' }, // 11
    { kind: 'yolo', classes: 2, mask: [0], anchors: [10, 14, 23, 27] }, // 12
  ]);
  await checkAgainstReference(t, m);
  t.same(headOutputNames(m.net), ['layer_6', 'layer_11']);
  const heads = buildOnnx(m);
  const proto = decodeModel(heads);
  t.same(proto.graph.output.map((o) => o.name), ['layer_6', 'layer_11'], 'only the head inputs are outputs by default');
  t.equal(proto.opsetImport[0].version, 13);
  const session = await ort.InferenceSession.create(heads);
  t.same(session.outputNames, ['layer_6', 'layer_11']);
  await session.release();
});

t.test('errors name the layer', async (t) => {
  const m = handModel({ c: 3, h: 8, w: 8 }, [{ kind: 'conv', filters: 4, size: 3 }]);
  m.params[0] = undefined;
  t.throws(() => buildOnnx(m), ZeroqError);
  t.throws(() => buildOnnx(m), /layer 0 \(conv\): convolution without parameters/);
  const m2 = handModel({ c: 3, h: 8, w: 8 }, [{ kind: 'conv', filters: 4, size: 3 }]);
  m2.params[0] = { weight: new Float32Array(5), bias: new Float32Array(4) };
  t.throws(() => buildOnnx(m2), /expected 108 weights and 4 biases, got 5 and 4/);
});
