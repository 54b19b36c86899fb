// The integer primitives and the validation rules of docs/formats/fixed-point.md, and how the
// engine is chosen (instruction set by option or ZEROQ_INT_ISA).
import t from 'tap';
import { leaky, rshr, sat } from '../src/qnet/arith.js';
import { validateQNet } from '../src/qnet/validate.js';
import { IntEngine, availableIsas, openIntEngine } from '../src/engine/int.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import { isZeroqError } from '../src/util/errors.js';
import { NetBuilder, randomQNet, rng } from './helpers/random-qnet.js';

t.test('rshr rounds half up, shifts left for negative counts', async (t) => {
  t.equal(rshr(5, 1), 3);
  t.equal(rshr(-5, 1), -2);
  t.equal(rshr(-6, 2), -1);
  t.equal(rshr(6, 2), 2);
  t.equal(rshr(7, 0), 7);
  t.equal(rshr(7, -3), 56);
  t.equal(rshr(-(2 ** 31), 31), -1);
  t.equal(rshr(2 ** 31 - 1, 40), 0);
  t.equal(rshr(-(2 ** 31), 40), 0);
});

t.test('sat and leaky', async (t) => {
  t.equal(sat(200, 8), 127);
  t.equal(sat(-200, 8), -128);
  t.equal(sat(40000, 16), 32767);
  t.equal(leaky(100), 100);
  t.equal(leaky(-10), -1); // rshr(-32770, 15) = floor(-0.50006...) = -1
  t.equal(leaky(-100), -10); // rshr(-327700, 15) = floor(-9.5007 + 0.5) = -10
  t.equal(leaky(-(2 ** 31)), rshr(-(2 ** 31) * 3277, 15));
});

function smallNet() {
  const b = new NetBuilder({ c: 3, h: 6, w: 6 });
  b.conv({ filters: 8, size: 3 });
  b.maxpool(2, 2);
  b.conv({ filters: 6, size: 1 });
  b.yolo();
  return b.build();
}

function code(fn: () => void): string {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    return isZeroqError(e) ? e.code : String(e);
  }
}

t.test('validation refuses what the arithmetic cannot run, naming the layer', async (t) => {
  const q = randomQNet(smallNet(), rng(3));
  t.equal(code(() => validateQNet(q)), 'accepted');

  const q16 = randomQNet(smallNet(), rng(3));
  q16.formats[0] = { bits: 16, frac: 4 };
  t.equal(code(() => validateQNet(q16)), 'QNET_16BIT', '16-bit tensor read by a maxpool');

  const pool = randomQNet(smallNet(), rng(3));
  pool.formats[1] = { bits: 8, frac: pool.formats[0].frac + 1 };
  t.equal(code(() => validateQNet(pool)), 'QNET_FORMAT', 'maxpool changing the format');

  const big = randomQNet(smallNet(), rng(3));
  big.convs[2]!.bias[0] = 2 ** 31 - 1;
  t.equal(code(() => validateQNet(big)), 'QNET_OVERFLOW', 'accumulator bound above 32 bits');
  try {
    validateQNet(big);
  } catch (e) {
    t.match((e as Error).message, /layer 2 \(conv/, 'message names the layer');
  }

  const w = randomQNet(smallNet(), rng(3));
  w.convs[0]!.wbits = 4;
  w.convs[0]!.q[0] = 9;
  t.equal(code(() => validateQNet(w)), 'QNET_WEIGHT', 'weight outside its Nw-bit range');

  const lut = randomQNet(smallNet(), rng(3));
  (lut.net.layers[2] as { activation: string }).activation = 'mish';
  t.equal(code(() => validateQNet(lut)), 'QNET_ACTIVATION', 'mish without a table');
});

t.test('instruction set by option and by ZEROQ_INT_ISA', async (t) => {
  const native = loadNativeKernels();
  if (!native.kernels) return t.fail(native.error ?? 'no native kernels');
  const q = randomQNet(smallNet(), rng(5));
  t.equal(new IntEngine(q, native.kernels, { isa: 'scalar' }).isa, 'scalar');
  t.equal(new IntEngine(q, native.kernels).isa, availableIsas()[0], 'best by default');
  const saved = process.env.ZEROQ_INT_ISA;
  process.env.ZEROQ_INT_ISA = 'scalar';
  t.teardown(() => {
    if (saved === undefined) delete process.env.ZEROQ_INT_ISA;
    else process.env.ZEROQ_INT_ISA = saved;
  });
  t.equal((openIntEngine(q) as IntEngine).isa, 'scalar', 'environment variable');
  process.env.ZEROQ_INT_ISA = 'no-such-isa';
  t.equal(code(() => openIntEngine(q)), 'INT_PLAN', 'an unknown instruction set is refused');
});

t.test('the reference engine (the fallback without the addon) gives the native heads', async (t) => {
  const native = loadNativeKernels();
  if (!native.kernels) return t.fail(native.error ?? 'no native kernels');
  const { IntReferenceEngine } = await import('../src/engine/int-reference.js');
  const { randomFrame } = await import('./helpers/random-qnet.js');
  const q = randomQNet(smallNet(), rng(11));
  const frame = randomFrame(q.net, rng(12));
  const ref = await new IntReferenceEngine(q).infer(frame);
  const fast = await new IntEngine(q, native.kernels).infer(frame);
  t.same(fast.map((h) => [h.layer, h.frac, Array.from(h.raw!)]), ref.map((h) => [h.layer, h.frac, Array.from(h.raw!)]));
  t.same(Array.from(fast[0].data), Array.from(ref[0].data), 'data = raw * 2^-frac');
});

t.test('close frees the native network; a closed engine refuses to run', async (t) => {
  const native = loadNativeKernels();
  if (!native.kernels) return t.fail(native.error ?? 'no native kernels');
  const { randomFrame } = await import('./helpers/random-qnet.js');
  const q = randomQNet(smallNet(), rng(13));
  const eng = new IntEngine(q, native.kernels, { threads: 2 });
  const frame = randomFrame(q.net, rng(14));
  eng.inferSync(frame);
  await eng.close();
  await eng.close();
  t.equal(code(() => eng.inferSync(frame)), 'INT_CLOSED');
  t.throws(() => native.kernels!.run(undefined as unknown, frame.rgb, new Int32Array(0), []), 'the addon refuses a bad handle');
});
