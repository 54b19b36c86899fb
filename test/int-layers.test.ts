// The native integer kernels against the readable reference, bit for bit, on small random QNets
// covering every layer kind and edge of docs/formats/fixed-point.md, on every instruction set this
// CPU offers and with 1 and 2 threads.
import t from 'tap';
import type { Network } from '../src/model/ir.js';
import { runReference } from '../src/engine/int-reference.js';
import { IntEngine, availableIsas } from '../src/engine/int.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import { NetBuilder, randomFrame, randomQNet, rng, type RandomQNetOptions } from './helpers/random-qnet.js';

// Split every layer between threads, however small, so that 2 threads exercise the range splits.
process.env.ZEROQ_INT_PARALLEL_MIN = '0';
const native = loadNativeKernels();
const isas = availableIsas();

interface Case {
  name: string;
  build: () => Network;
  opts?: RandomQNetOptions;
}

const cases: Case[] = [
  {
    name: 'conv 3x3 stride 2 on the uint8 input, odd sizes',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 7, w: 5 });
      b.conv({ filters: 5, size: 3, stride: 2 });
      b.conv({ filters: 13, size: 1 });
      b.yolo();
      return b.build();
    },
  },
  {
    name: '1x1 and 3x3 convs, 3/5/13 channels, all activations',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 9, w: 11 });
      b.conv({ filters: 13, size: 3, activation: 'leaky' });
      b.conv({ filters: 5, size: 1, activation: 'relu' });
      b.conv({ filters: 3, size: 3, activation: 'linear' });
      b.conv({ filters: 16, size: 1, stride: 2, activation: 'leaky' });
      b.conv({ filters: 9, size: 5, activation: 'leaky' });
      b.yolo();
      return b.build();
    },
  },
  {
    name: 'depthwise 3x3 stride 1/2, 5x5, and grouped convs',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 13, w: 10 });
      b.conv({ filters: 12, size: 3, stride: 2 });
      b.conv({ filters: 12, size: 3, groups: 12 });
      b.conv({ filters: 12, size: 3, groups: 12, stride: 2 });
      b.conv({ filters: 24, size: 1, groups: 3 });
      b.conv({ filters: 16, size: 3, groups: 4 });
      b.conv({ filters: 6, size: 3, groups: 2 });
      b.conv({ filters: 6, size: 5, groups: 6 });
      b.conv({ filters: 7, size: 3 });
      b.yolo();
      return b.build();
    },
  },
  {
    name: 'maxpool 2/1, SPP 5/9/13, route with groups, shortcut, upsample, dropout',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 10, w: 6 });
      const c0 = b.conv({ filters: 8, size: 3 });
      b.maxpool(2, 1);
      const p5 = b.maxpool(5, 1, 4, c0);
      const p9 = b.maxpool(9, 1, 8, c0);
      const p13 = b.maxpool(13, 1, 12, c0);
      b.route([p13, p9, p5, c0]);
      b.conv({ filters: 10, size: 1 });
      b.route([b.rel(-1)], 2, 1);
      b.conv({ filters: 5, size: 3 });
      b.dropout();
      b.conv({ filters: 5, size: 1 });
      b.shortcut(b.rel(-3), 'leaky');
      b.maxpool(2, 2);
      b.upsample(2);
      b.route([b.rel(-1), c0]);
      b.conv({ filters: 6, size: 1 });
      b.shortcut(b.rel(-1), 'relu');
      b.yolo();
      const r = b.route([b.rel(-3)]);
      b.yolo(r);
      return b.build();
    },
  },
  {
    name: 'rows wider than a vector: in-row panel loads (stride 1 and 2), depthwise row ring, 5x5',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 11, w: 70 });
      b.conv({ filters: 13, size: 3, stride: 1 });
      b.conv({ filters: 8, size: 3, stride: 2 });
      b.conv({ filters: 8, size: 3, groups: 8 });
      b.conv({ filters: 8, size: 5, groups: 8 });
      b.conv({ filters: 8, size: 3, groups: 8, stride: 2 });
      b.conv({ filters: 16, size: 3, stride: 1 });
      b.conv({ filters: 7, size: 1 });
      b.yolo();
      return b.build();
    },
  },
  {
    name: 'shortcuts computed in the epilogue of the conv before them (leaky, relu, linear; both shift signs)',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 9, w: 7 });
      const c0 = b.conv({ filters: 8, size: 3 });
      b.conv({ filters: 8, size: 1, activation: 'linear' });
      const s1 = b.shortcut(c0, 'leaky');
      b.conv({ filters: 8, size: 1, activation: 'leaky' });
      b.dropout();
      const s2 = b.shortcut(s1, 'relu');
      b.conv({ filters: 8, size: 1, activation: 'linear' });
      b.shortcut(s2, 'linear');
      b.conv({ filters: 6, size: 1, activation: 'linear' });
      b.yolo();
      return b.build();
    },
  },
  {
    name: 'look-up table activations (mish, logistic, swish) in gemm, depthwise and grouped convs',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 6, w: 9 });
      b.conv({ filters: 6, size: 3, activation: 'mish' });
      b.conv({ filters: 6, size: 3, groups: 6, activation: 'logistic' });
      b.conv({ filters: 9, size: 1, groups: 3, activation: 'swish' });
      b.conv({ filters: 7, size: 1, activation: 'logistic' });
      b.yolo();
      return b.build();
    },
  },
];

t.test('native addon loads', async (t) => {
  t.ok(native.kernels, native.error ?? 'loaded');
  t.ok(isas.includes('scalar'), `instruction sets: ${isas.join(', ')}`);
});

for (const c of cases) {
  t.test(c.name, async (t) => {
    if (!native.kernels) return;
    for (let seed = 1; seed <= 6; seed++) {
      const r = rng(seed * 7919 + c.name.length);
      const net = c.build();
      const qnet = randomQNet(net, r, { ...c.opts, perChannel: seed % 3 === 0 ? false : undefined });
      const frame = randomFrame(net, r);
      const ref = runReference(qnet, frame);
      for (const isa of isas) {
        for (const threads of [1, 2]) {
          const eng = new IntEngine(qnet, native.kernels, { isa, threads });
          const heads = eng.inferSync(frame);
          for (const layer of net.layers) {
            const got = eng.layerOutput(layer.index);
            const want = ref.outputs[layer.index].data;
            if (!sameInts(got, want)) {
              t.fail(`seed ${seed} ${isa} x${threads}: layer ${layer.index} (${layer.kind}) differs at ${firstDiff(got, want)}`);
              return;
            }
          }
          heads.forEach((h, i) => {
            if (!sameInts(h.raw!, ref.heads[i].raw!)) t.fail(`head ${i} differs`);
          });
        }
      }
    }
    t.pass(`bit-exact on ${isas.join(', ')} with 1 and 2 threads`);
  });
}

function sameInts(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function firstDiff(a: Int32Array, b: Int32Array): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `index ${i}: ${a[i]} vs reference ${b[i]}`;
  return 'nowhere';
}
