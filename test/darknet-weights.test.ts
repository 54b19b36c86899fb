import t from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultWeightsPath, loadDarknet } from '../src/model/darknet.js';
import { parseCfg, parseCfgFile } from '../src/model/darknet-cfg.js';
import { BN_EPSILON, foldBatchNorm, hasLongSeen, readDarknetWeights, weightsFileBytes } from '../src/model/darknet-weights.js';
import { convWeightCount, type Network } from '../src/model/ir.js';
import { ZeroqError } from '../src/util/errors.js';
import { DATA_CFGS, randomWeightsBuffer, tempDir, writeRandomWeights } from './helpers/darknet-fixtures.js';

const { dir, cleanup } = tempDir();
t.teardown(cleanup);

async function rejection(fn: () => unknown): Promise<ZeroqError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ZeroqError) return e;
    throw e;
  }
  throw new Error('expected a ZeroqError, nothing was thrown');
}

/** Line numbers of the section headers after [net], i.e. of layers 0, 1, ... */
function layerLines(cfgText: string): number[] {
  return cfgText
    .split('\n')
    .map((l, i) => (/^\s*\[/.test(l) ? i + 1 : 0))
    .filter((n) => n > 0)
    .slice(1);
}

function header(major: number, minor: number, seen: number): Buffer {
  const long = hasLongSeen(major, minor);
  const b = Buffer.alloc(long ? 20 : 16);
  b.writeInt32LE(major, 0);
  b.writeInt32LE(minor, 4);
  b.writeInt32LE(7, 8);
  if (long) b.writeBigUInt64LE(BigInt(seen), 12);
  else b.writeUInt32LE(seen, 12);
  return b;
}

const f32 = (values: number[]): Buffer => Buffer.from(Float32Array.from(values).buffer);

// layer 0: 2 filters 1x1 over 1 channel with batch norm; layer 1: 1 filter 1x1 over 2 channels, no batch norm.
const HAND_CFG = `[net]
width=2
height=2
channels=1
[convolutional]
batch_normalize=1
filters=2
size=1
activation=leaky
[convolutional]
filters=1
size=1
activation=linear
`;
const HAND = {
  biases: [0.5, -1],
  scales: [2, 0.5],
  mean: [1, -2],
  variance: [3, 0.25],
  weights: [1.5, -4],
  biases1: [0.25],
  weights1: [3, -0.5],
};
const handFloats = (): number[] => [...HAND.biases, ...HAND.scales, ...HAND.mean, ...HAND.variance, ...HAND.weights, ...HAND.biases1, ...HAND.weights1];

t.test('batch norm folding on a hand-made model', async (t) => {
  const cfg = path.join(dir, 'hand.cfg');
  writeFileSync(cfg, HAND_CFG);
  const weights = path.join(dir, 'hand-explicit.weights');
  writeFileSync(weights, Buffer.concat([header(0, 2, 12345), f32(handFloats())]));
  const m = await loadDarknet(cfg, weights);
  t.same(m.header, { major: 0, minor: 2, revision: 7, seen: 12345, bytes: 20 });
  t.equal(m.weightsBytes, 20 + 4 * 13);

  const p0 = m.params[0]!;
  const s0 = 2 / Math.sqrt(3 + 1e-5);
  const s1 = 0.5 / Math.sqrt(0.25 + 1e-5);
  t.same(Array.from(p0.weight), [Math.fround(1.5 * s0), Math.fround(-4 * s1)], "w' = w * scale / sqrt(var + 1e-5)");
  t.same(Array.from(p0.bias), [Math.fround(0.5 - 1 * s0), Math.fround(-1 + 2 * s1)], "b' = bias - mean * scale / sqrt(var + 1e-5)");
  // What darknet computes unfolded: normalize the convolution, scale, add the bias.
  for (const x of [-3, 0.7, 2]) {
    for (let f = 0; f < 2; f++) {
      const unfolded = (HAND.scales[f] * (HAND.weights[f] * x - HAND.mean[f])) / Math.sqrt(HAND.variance[f] + BN_EPSILON) + HAND.biases[f];
      t.ok(Math.abs(p0.weight[f] * x + p0.bias[f] - unfolded) < 1e-5, `filter ${f}, x=${x}: folded conv equals conv+batchnorm`);
    }
  }
  t.same(Array.from(m.params[1]!.weight), HAND.weights1, 'a layer without batch norm keeps its numbers');
  t.same(Array.from(m.params[1]!.bias), HAND.biases1);

  const raw = readDarknetWeights(m.net, readFileSync(weights), 'hand.weights');
  t.same(Array.from(raw.layers[0]!.bn!.variance), HAND.variance, 'the raw reader returns the stored numbers');
  t.same(Array.from(raw.layers[0]!.weights), HAND.weights);
  t.equal(raw.layers[1]!.bn, undefined);
  t.same(foldBatchNorm(raw.layers[0]!), p0);
});

t.test('old header with a 32-bit seen; the default weights path', async (t) => {
  t.same([hasLongSeen(0, 1), hasLongSeen(0, 2), hasLongSeen(1, 0), hasLongSeen(1000, 2), hasLongSeen(0, 1000)], [false, true, true, false, false]);
  const cfg = path.join(dir, 'old.cfg');
  writeFileSync(cfg, HAND_CFG);
  t.equal(defaultWeightsPath(cfg), path.join(dir, 'old.weights'));
  const missing = await rejection(() => loadDarknet(cfg));
  t.equal(missing.code, 'weights-missing');
  t.match(missing.message, path.join(dir, 'old.weights'));
  writeFileSync(path.join(dir, 'old.weights'), Buffer.concat([header(0, 1, 99), f32(handFloats())]));
  const m = await loadDarknet(cfg);
  t.same(m.header, { major: 0, minor: 1, revision: 7, seen: 99, bytes: 16 });
  t.same(Array.from(m.params[1]!.weight), HAND.weights1);
});

t.test('the real Yolo-Fastest weights load with exact sizes', async (t) => {
  for (const name of ['yolo-fastest-1.1', 'yolo-fastest-1.1-xl'] as const) {
    const m = await loadDarknet(DATA_CFGS[name]);
    const bytes = statSync(defaultWeightsPath(DATA_CFGS[name])).size;
    t.equal(m.weightsBytes, bytes);
    t.equal(weightsFileBytes(m.net), bytes, `${name}: the cfg accounts for every byte`);
    t.same([m.header.major, m.header.minor], [0, 2]);
    let finite = true;
    for (const l of m.net.layers) {
      const p = m.params[l.index];
      if (l.kind !== 'conv') {
        t.equal(p, undefined);
        continue;
      }
      t.equal(p!.weight.length, convWeightCount(m.net, l));
      t.equal(p!.bias.length, l.filters);
      finite &&= p!.weight.every(Number.isFinite) && p!.bias.every(Number.isFinite);
    }
    t.ok(finite, `${name}: every folded number is finite`);
    for (const h of m.net.heads) {
      const conv = m.net.layers[m.net.layers[h].inputs[0]];
      t.same(conv.kind === 'conv' && [conv.filters, conv.batchNormalize], [255, false], `${name}: head ${h} reads a 255-filter conv without batch norm`);
    }
  }
});

t.test('truncated, padded and corrupt weights files', async (t) => {
  const cfgText = readFileSync(DATA_CFGS['yolo-fastest-1.1'], 'utf8');
  const net = parseCfg(cfgText, 'yolo-fastest-1.1.cfg');
  const lines = layerLines(cfgText);
  const good = randomWeightsBuffer(net, 5);
  t.equal(good.length, weightsFileBytes(net));
  t.ok(readDarknetWeights(net, good, 'good.weights'), 'the random file fits');

  const last = net.layers.length - 2; // the conv before the last yolo layer
  let e = await rejection(() => readDarknetWeights(net, good.subarray(0, good.length - 100), 'cut.weights'));
  t.equal(e.code, 'weights-truncated');
  t.match(e.message, `cut.weights: the data ends inside layer ${last} [convolutional] (yolo-fastest-1.1.cfg:${lines[last]})`);

  // Cut exactly after layer 0 (3x3x3 conv, 8 filters with batch norm): the data runs out in layer 1.
  const afterFirst = 20 + 4 * (8 * 4 + 8 * 27);
  e = await rejection(() => readDarknetWeights(net, good.subarray(0, afterFirst), 'cut.weights'));
  t.match(e.message, `inside layer 1 [convolutional] (yolo-fastest-1.1.cfg:${lines[1]})`);
  t.match(e.message, '0 are left');

  e = await rejection(() => readDarknetWeights(net, good.subarray(0, 10), 'tiny.weights'));
  t.same([e.code, e.message], ['weights-truncated', 'tiny.weights: 10 bytes: too short for a darknet weights header']);

  e = await rejection(() => readDarknetWeights(net, Buffer.concat([good, Buffer.alloc(12)]), 'long.weights'));
  t.equal(e.code, 'weights-extra');
  t.match(e.message, 'long.weights: 12 bytes left over after the last convolutional layer');

  const bad = Buffer.from(good);
  // layer 0: biases (8), scales (8), means (8), then variances: make filter 3's negative
  bad.writeFloatLE(-0.5, 20 + 4 * (24 + 3));
  e = await rejection(() => readDarknetWeights(net, bad, 'neg.weights'));
  t.equal(e.code, 'weights-bad-value');
  t.match(e.message, `layer 0 [convolutional] (yolo-fastest-1.1.cfg:${lines[0]}): batch-norm variance of filter 3 is -0.5`);

  const file = path.join(dir, 'short.weights');
  writeFileSync(file, good.subarray(0, good.length - 4));
  e = await rejection(() => loadDarknet(DATA_CFGS['yolo-fastest-1.1'], file));
  t.match(e.message, 'short.weights: the data ends inside layer');
});

t.test('the YOLO cfgs load with random weights of the exact size', async (t) => {
  const heads = (net: Network): number[][] => net.heads.map((h) => [net.layers[h].out.c, net.layers[h].out.h, net.layers[h].out.w]);
  const want: Record<string, number[][]> = {
    'yolov3-tiny': [[255, 13, 13], [255, 26, 26]],
    'yolov4-tiny': [[255, 13, 13], [255, 26, 26]],
    yolov3: [[255, 13, 13], [255, 26, 26], [255, 52, 52]],
    yolov4: [[255, 76, 76], [255, 38, 38], [255, 19, 19]],
  };
  for (const [name, shapes] of Object.entries(want)) {
    const cfg = DATA_CFGS[name as keyof typeof DATA_CFGS];
    const file = writeRandomWeights(parseCfgFile(cfg), 11, dir);
    const m = await loadDarknet(cfg, file);
    t.same(heads(m.net), shapes, `${name} heads`);
    t.equal(m.weightsBytes, statSync(file).size);
    const convs = m.net.layers.filter((l) => l.kind === 'conv');
    t.ok(
      convs.every((l) => m.params[l.index]!.weight.length === convWeightCount(m.net, l) && m.params[l.index]!.bias.length === l.filters),
      `${name}: ${convs.length} conv layers with parameters of the right size`,
    );
  }
});
