// The kernels' fast forms against the readable reference, bit for bit. Random QNets rarely meet
// their conditions (8-bit outputs, no left shifts, |Y| small enough for the 32-bit forms), so the
// QNets here are random ones brought into the ranges a quantizer produces: the output shift of
// every channel made non-negative (fw and fm raised together, which keeps M*S's shift), biases
// smaller in most layers (large in some: the wide form of leaky), M inside 16 bits in some layers
// and beyond it in others (the two forms of M*S), 16-bit heads in some networks.
// Shapes: depthwise 3x3 and 5x5 at strides 1 and 2 on rows narrower than a vector, of one vector
// and of several (the kernels group four vectors, across rows when rows are short), channel
// counts that are not multiples of 4, expansions and projections with fused shortcuts.
import t from 'tap';
import type { Network } from '../src/model/ir.js';
import { runReference } from '../src/engine/int-reference.js';
import { IntEngine, availableIsas } from '../src/engine/int.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import { NetBuilder, randomFrame, randomQNet, rng, randInt, type Rng } from './helpers/random-qnet.js';

process.env.ZEROQ_INT_PARALLEL_MIN = '0';
const native = loadNativeKernels();
const isas = availableIsas();

type QNet = ReturnType<typeof randomQNet>;

/** Brings a random QNet into a quantizer's ranges (see the top of this file). */
function tame(qnet: QNet, r: Rng, wideM: boolean): QNet {
  const { net, formats, convs } = qnet;
  for (const l of net.layers) {
    const q = convs[l.index];
    if (!q || l.kind !== 'conv') continue;
    // 16-bit outputs: large values too, so that the heads saturate.
    const head16 = formats[l.index].bits === 16;
    const wideY = head16 || r() < 0.25;
    const faIn = l.inputs[0] === -1 ? 8 : formats[l.inputs[0]].frac;
    const faOut = formats[l.index].frac;
    const inC = l.inputs[0] === -1 ? net.input.c : net.layers[l.inputs[0]].out.c;
    const K = (inC / l.groups) * l.size * l.size;
    const xmax = l.inputs[0] === -1 ? 255 : 128;
    for (let o = 0; o < q.fw.length; o++) {
      const sh = q.fw[o] + faIn - faOut;
      const lift = sh < 0 ? -sh + (head16 ? 0 : randInt(r, 0, 2)) : 0;
      q.fw[o] += lift;
      q.fm[o] += lift;
      if (q.fm[o] - q.fw[o] < 2) q.fm[o] = q.fw[o] + randInt(r, 2, 12);
      // Small biases in most layers; large ones keep Y*3277 beyond 32 bits (leaky's wide form).
      if (!wideY) q.bias[o] = Math.trunc(q.bias[o] / 64);
      // fm < fw: the kernels multiply by M * 2^(fw - fm), beyond 16 bits for a large M.
      if (wideM && r() < 0.5) {
        q.m[o] = (r() < 0.5 ? -1 : 1) * randInt(r, 2 ** 13, 2 ** 15 - 1);
        q.fm[o] = q.fw[o] - randInt(r, 1, 2);
      }
      // Keep the accumulator bound of the spec (M*S within 32 bits as in validation).
      let sumAbs = 0;
      for (let j = 0; j < K; j++) sumAbs += Math.abs(q.q[o * K + j]);
      const bound = () => {
        const rr = q.fm[o] - q.fw[o];
        const ms = Math.abs(q.m[o]) * K * xmax;
        return sumAbs * xmax + (rr >= 0 ? Math.ceil(ms / 2 ** rr) + 1 : ms * 2 ** -rr) + Math.abs(q.bias[o]);
      };
      while (bound() >= 2 ** 31 && q.m[o] !== 0) q.m[o] = Math.trunc(q.m[o] / 2);
    }
  }
  return qnet;
}

interface Case {
  name: string;
  build: () => Network;
}

function inverted(b: NetBuilder, c: number, expand: number, stride: number, size = 3): void {
  const from = b.rel(-1);
  b.conv({ filters: expand, size: 1, activation: 'leaky' });
  b.conv({ filters: expand, size, groups: expand, stride, activation: 'leaky' });
  b.conv({ filters: c, size: 1, activation: 'linear' });
  if (stride === 1 && b.shapeOf(from).c === c) {
    b.dropout();
    b.shortcut(from, 'linear');
  }
}

const cases: Case[] = [
  {
    name: 'inverted residual blocks on rows of 35 (three vectors a row, groups across rows; 2 threads: split by tiles)',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 18, w: 70 });
      b.conv({ filters: 8, size: 3, stride: 2 });
      inverted(b, 8, 8, 1);
      inverted(b, 8, 24, 1);
      inverted(b, 12, 24, 2);
      inverted(b, 12, 36, 1, 5);
      b.conv({ filters: 32, size: 1, activation: 'linear' });
      inverted(b, 32, 48, 1);
      b.conv({ filters: 20, size: 1, activation: 'linear' });
      b.yolo();
      return b.build();
    },
  },
  {
    name: 'rows narrower than a vector (10, 5, 3 pixels), 5x5 stride 2, channels not multiples of 4',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 21, w: 20 });
      b.conv({ filters: 13, size: 3, stride: 2, activation: 'relu' });
      b.conv({ filters: 13, size: 3, groups: 13, activation: 'relu' });
      b.conv({ filters: 13, size: 5, groups: 13, stride: 2, activation: 'leaky' });
      b.conv({ filters: 13, size: 3, groups: 13, stride: 2, activation: 'linear' });
      inverted(b, 13, 22, 1);
      b.conv({ filters: 10, size: 5, activation: 'leaky' });
      b.conv({ filters: 10, size: 5, groups: 10, activation: 'leaky' });
      b.yolo();
      return b.build();
    },
  },
  {
    name: 'rows of 16 and 32 pixels exactly, relu and linear, shortcut with leaky and relu',
    build: () => {
      const b = new NetBuilder({ c: 3, h: 9, w: 64 });
      const c0 = b.conv({ filters: 16, size: 3, stride: 2, activation: 'linear' });
      b.conv({ filters: 16, size: 1, activation: 'relu' });
      b.conv({ filters: 16, size: 3, groups: 16, activation: 'relu' });
      b.conv({ filters: 16, size: 1, activation: 'linear' });
      const s1 = b.shortcut(c0, 'leaky');
      b.conv({ filters: 16, size: 1, activation: 'relu' });
      b.shortcut(s1, 'relu');
      b.conv({ filters: 16, size: 3, groups: 16, stride: 2, activation: 'leaky' });
      b.conv({ filters: 8, size: 1, activation: 'linear' });
      b.yolo();
      return b.build();
    },
  },
];

t.test('native addon loads', async (t) => {
  t.ok(native.kernels, native.error ?? 'loaded');
});

for (const c of cases) {
  t.test(c.name, async (t) => {
    if (!native.kernels) return;
    // The code paths each instruction set took: the fast forms must be among them, or this test
    // would pass with every layer on the general kernels.
    const paths = new Map<string, Set<string>>(isas.map((isa) => [isa, new Set<string>()]));
    for (let seed = 1; seed <= 8; seed++) {
      const r = rng(seed * 104729 + c.name.length);
      const net = c.build();
      const qnet = tame(randomQNet(net, r, { p16: seed % 3 === 0 ? 1 : 0, wbits: seed % 2 ? [3, 6] : [6, 8] }), r, seed % 4 >= 2);
      const frame = randomFrame(net, r);
      const ref = runReference(qnet, frame);
      for (const isa of isas) {
        for (const threads of [1, 2]) {
          const eng = new IntEngine(qnet, native.kernels, { isa, threads });
          // The heads come from the network as it runs (buffers sharing memory); the other layers'
          // outputs are read after the frame.
          const heads = eng.inferSync(frame);
          for (const k of eng.layerInfo().kernel) paths.get(isa)!.add(k);
          const badHead = heads.findIndex((h, i) => h.raw!.some((v, j) => v !== ref.heads[i].raw![j]));
          if (badHead >= 0) {
            t.fail(`seed ${seed} ${isa} x${threads}: head ${badHead} differs`);
            return;
          }
          for (const layer of net.layers) {
            const got = eng.layerOutput(layer.index);
            const want = ref.outputs[layer.index].data;
            const i = got.findIndex((v, j) => v !== want[j]);
            if (i >= 0 || got.length !== want.length) {
              t.fail(`seed ${seed} ${isa} x${threads}: layer ${layer.index} (${layer.kind}) differs at ${i}: ${got[i]} vs reference ${want[i]}`);
              return;
            }
          }
          await eng.close();
        }
      }
    }
    t.pass(`bit-exact on ${isas.join(', ')} with 1 and 2 threads`);
    for (const isa of isas.filter((i) => i === 'avx2' || i === 'avx512-vbmi')) {
      const seen = [...paths.get(isa)!];
      t.ok(seen.includes('depthwise fast') && seen.some((k) => /^gemm .*fast$/.test(k)), `${isa} ran its fast forms (${seen.join(', ')})`);
    }
  });
}
