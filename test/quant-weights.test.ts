import t from 'tap';
import { centersFor, dequantizeWeights, FM_SHIFT_MAX, quantizeMean, quantizeWeights, sqnrDb } from '../src/quant/weights.js';
import { quantizeConv } from '../src/quant/conv.js';
import { networkInput, proveConv, tensorInput } from '../src/qnet/bounds.js';
import { largestFrac, roundHalfAway } from '../src/qnet/arith.js';
import { NetBuilder, rng } from './helpers/random-qnet.js';
import type { ConvLayer } from '../src/model/ir.js';

const f32 = (a: number[]): Float32Array => Float32Array.from(a);

t.test('zero-centered: mu, D range, fw from the range, Q, M and fm by hand', async (t) => {
  // mu = 1.25, D = ±0.25, ±0.75, m = 0.75: round(0.75·8) = 6 <= 7 < round(0.75·16) = 12 → fw = 3.
  const wq = quantizeWeights(f32([0.5, 1.0, 1.5, 2.0]), 1, { wbits: 4, perChannel: false, zeroCenter: true });
  t.equal(wq.mu[0], 1.25);
  t.equal(wq.fw[0], 3);
  t.same(Array.from(wq.q), [-6, -2, 2, 6]);
  // 1.25·2^14 = 20480 fits 16 bits, 1.25·2^15 does not.
  t.equal(wq.fm[0], 14);
  t.equal(wq.m[0], 20480);
  t.same(Array.from(dequantizeWeights(wq, 1)), [0.5, 1.0, 1.5, 2.0], 'exact here: the grid holds every weight');
});

t.test('plain fixed point: mu = 0, M = 0, fw from max |w|', async (t) => {
  const wq = quantizeWeights(f32([0.5, 1.0, 1.5, 2.0]), 1, { wbits: 4, perChannel: false, zeroCenter: false });
  t.equal(wq.mu[0], 0);
  t.equal(wq.m[0], 0);
  // round(2·2) = 4 <= 7 < round(2·4) = 8 → fw = 1.
  t.equal(wq.fw[0], 1);
  t.equal(wq.fm[0], wq.fw[0], 'fm = fw when there is no mean: the correction term vanishes');
  t.same(Array.from(wq.q), [1, 2, 3, 4]);
});

t.test('min/max-aware: the asymmetric side sets the range; rounding is half away from zero', async (t) => {
  // plain, Nw = 3 (±3): m = 0.75 → fw = 2; 0.625·4 = 2.5 rounds to 3 and -2.5 to -3.
  const wq = quantizeWeights(f32([0.75, -0.625, 0.625, 0.125]), 1, { wbits: 3, perChannel: false, zeroCenter: false });
  t.equal(wq.fw[0], 2);
  t.same(Array.from(wq.q), [3, -3, 3, 1]);
  t.equal(roundHalfAway(-2.5), -3);
  t.equal(roundHalfAway(2.5), 3);
});

t.test('nothing is clipped and fw is the largest that fits, for every width', async (t) => {
  const r = rng(5);
  const w = Float32Array.from({ length: 4 * 27 }, (_, i) => (r() - 0.3) * (1 + (i >> 5)) * 0.2);
  for (let bits = 2; bits <= 8; bits++) {
    const qmax = 2 ** (bits - 1) - 1;
    for (const perChannel of [false, true]) {
      for (const zeroCenter of [false, true]) {
        const wq = quantizeWeights(w, 4, { wbits: bits, perChannel, zeroCenter });
        for (let o = 0; o < 4; o++) {
          const block = Array.from(wq.q.subarray(o * 27, (o + 1) * 27));
          t.ok(block.every((v) => Math.abs(v) <= qmax), `Nw=${bits} pc=${perChannel} zc=${zeroCenter} ch ${o}: |Q| <= ${qmax}`);
          let m = 0;
          const lo = perChannel ? o * 27 : 0;
          const hi = perChannel ? (o + 1) * 27 : w.length;
          for (let i = lo; i < hi; i++) m = Math.max(m, Math.abs(w[i] - wq.mu[o]));
          t.ok(roundHalfAway(m * 2 ** (wq.fw[o] + 1)) > qmax, `Nw=${bits}: fw+1 would clip`);
        }
        const approx = dequantizeWeights(wq, 4);
        for (let i = 0; i < w.length; i++) {
          const o = Math.floor(i / 27);
          const err = Math.abs(approx[i] - w[i]);
          if (err > 2 ** -(wq.fw[o] + 1) + 2 ** -(wq.fm[o] + 1) + 1e-9) t.fail(`weight ${i}: error ${err} beyond half a step`);
        }
      }
    }
  }
});

t.test('per channel: each output channel gets its own mu and fw; per layer shares them', async (t) => {
  // Channel 0 spans ±0.01 around 0.5, channel 1 spans ±1 around -2.
  const w = f32([0.49, 0.51, 0.5, 0.5, -3, -1, -2, -2]);
  const pc = quantizeWeights(w, 2, { wbits: 8, perChannel: true, zeroCenter: true });
  t.equal(pc.mu[0], 0.5);
  t.equal(pc.mu[1], -2);
  t.ok(pc.fw[0] > pc.fw[1] + 5, `the narrow channel has many more fraction bits (${pc.fw[0]} vs ${pc.fw[1]})`);
  const pl = quantizeWeights(w, 2, { wbits: 8, perChannel: false, zeroCenter: true });
  t.equal(pl.fw[0], pl.fw[1]);
  t.equal(pl.mu[0], pl.mu[1]);
  t.ok(sqnrDb(w, dequantizeWeights(pc, 2)) > sqnrDb(w, dequantizeWeights(pl, 2)), 'per channel is more precise');
});

t.test('zero-centering pays on a distribution far from zero', async (t) => {
  const r = rng(9);
  const w = Float32Array.from({ length: 300 }, () => 1 + r() * 0.2);
  const zc = quantizeWeights(w, 1, { wbits: 4, perChannel: false, zeroCenter: true });
  const plain = quantizeWeights(w, 1, { wbits: 4, perChannel: false, zeroCenter: false });
  const a = sqnrDb(w, dequantizeWeights(zc, 1));
  const b = sqnrDb(w, dequantizeWeights(plain, 1));
  t.ok(a > b + 12, `zero-centered ${a.toFixed(1)} dB vs plain ${b.toFixed(1)} dB`);
});

t.test('M and fm: 16 bits, precision, and the cap on fm - fw', async (t) => {
  for (const mu of [0.37, -0.0123, 3.5, -1e-3, 123.4]) {
    const { m, fm } = quantizeMean(mu, 6);
    t.ok(Math.abs(m) <= 32767, `mu ${mu}: M = ${m} fits 16 bits`);
    t.ok(Math.abs(m * 2 ** -fm - mu) <= 2 ** -(fm + 1), `mu ${mu}: M·2^-fm within half an LSB`);
    t.ok(fm - 6 <= FM_SHIFT_MAX);
    t.ok(Math.abs(2 * mu * 2 ** fm) > 32767 || fm - 6 === FM_SHIFT_MAX, `mu ${mu}: fm is the largest allowed`);
  }
  const tiny = quantizeMean(1e-12, 6);
  t.same(tiny, { m: 0, fm: 6 }, 'a mean below 2^-(fw+31) is dropped');
  t.equal(largestFrac(0.75, 7), 3);
});

t.test('layer 0: 256/255 folded into the weights, bias at fw + 8 fraction bits', async (t) => {
  const b = new NetBuilder({ c: 1, h: 4, w: 4 });
  b.conv({ filters: 1, size: 1, from: -1, activation: 'linear' });
  const net = b.build();
  const layer = net.layers[0] as ConvLayer;
  const { qconv } = quantizeConv(net, layer, { weight: f32([0.5]), bias: f32([0.25]) }, { wbits: 8, perChannel: false, zeroCenter: false }, networkInput());
  const w = qconv.q[0] * 2 ** -qconv.fw[0];
  t.ok(Math.abs(w - (0.5 * 256) / 255) <= 2 ** -(qconv.fw[0] + 1), `weight ${w} stands for 0.5·256/255`);
  t.equal(qconv.bias[0], Math.round(0.25 * 2 ** (qconv.fw[0] + 8)));
});

t.test('overflow proof: a kernel too large for 32 bits is refused, naming the layer', async (t) => {
  // K = 15000·9 products of 8-bit weights (±127) and 8-bit inputs (±128) reach 1.7e10 > 2^31.
  const b = new NetBuilder({ c: 15000, h: 3, w: 3 });
  b.conv({ filters: 1, size: 3, from: -1 });
  const net = b.build();
  const layer = net.layers[0] as ConvLayer;
  const params = { weight: new Float32Array(15000 * 9).fill(0.01), bias: f32([0]) };
  t.throws(() => quantizeConv(net, layer, params, { wbits: 8, perChannel: false, zeroCenter: true }, tensorInput({ bits: 8, frac: 4 })), {
    code: 'quant-overflow',
    message: /^layer 0 \(test:0\): the 32-bit accumulator can overflow/,
  });
  // The same kernel with 2-bit weights fits: 135000·1·128 < 2^31.
  const ok = quantizeConv(net, layer, params, { wbits: 2, perChannel: false, zeroCenter: true }, tensorInput({ bits: 8, frac: 4 }));
  t.ok(ok.stats.bound.total < 2 ** 31);
  t.ok(ok.stats.bound.acc === 135000 * 128);
});

t.test('overflow proof: a huge bias lowers fw of its channel only, and the bound then holds', async (t) => {
  const b = new NetBuilder({ c: 2, h: 3, w: 3 });
  b.conv({ filters: 2, size: 3, from: -1, activation: 'leaky' });
  const net = b.build();
  const layer = net.layers[0] as ConvLayer;
  // Channel 1: weights of 1e-6 (fw would be 24) and a bias of 100: 100·2^(24+8) overflows.
  const weight = Float32Array.from({ length: 36 }, (_, i) => (i < 18 ? (i % 3) - 1 : (i % 2 ? 1e-6 : -1e-6)));
  const { qconv, stats } = quantizeConv(net, layer, { weight, bias: f32([0.5, 100]) }, { wbits: 8, perChannel: true, zeroCenter: true }, networkInput());
  t.equal(stats.loweredChannels, 1);
  t.ok(qconv.fw[1] < 24);
  t.ok(Math.abs(qconv.bias[1]) < 2 ** 31);
  t.ok(proveConv(net, layer, qconv, networkInput()).total < 2 ** 31);
  // A hand-made QConv with a bias at the limit is refused by the proof.
  const bad = { ...qconv, bias: Int32Array.of(qconv.bias[0], 2 ** 31 - 1) };
  t.throws(() => proveConv(net, layer, bad, networkInput()), { code: 'quant-overflow' });
});

t.test('non-finite weights and wrong widths are refused', async (t) => {
  t.throws(() => quantizeWeights(f32([1, NaN]), 1, { wbits: 8, perChannel: false, zeroCenter: true }, 'layer 3'), { code: 'quant-weights' });
  t.throws(() => quantizeWeights(f32([1, 2]), 1, { wbits: 9, perChannel: false, zeroCenter: true }), { code: 'quant-bits' });
  t.throws(() => quantizeWeights(f32([1, 2]), 1, { wbits: 1, perChannel: false, zeroCenter: true }), { code: 'quant-bits' });
});

t.test("center 'fit': a lopsided channel gets a grid one step finer, nothing clipped, mu nearest the mean", async (t) => {
  // Weights 0, 0, 0, 1.4: mean 0.35, range about the mean 1.05. At Nw = 4 (qmax 7) the mean's grid is
  // fw = 2 (round(1.05·4) = 4 <= 7; round(1.05·8) = 8 > 7). From the midpoint 0.7 the range is 0.7:
  // round(0.7·8) = 6 <= 7, so fw = 3 holds every weight; the centers that do form [1.4 − r, 0 + r] with
  // r = 7.5/8 (just under), and the mean 0.35 lies left of 1.4 − r = 0.4625, so mu = 0.4625.
  const w = f32([0, 0, 0, 1.4]);
  const mean = quantizeWeights(w, 1, { wbits: 4, perChannel: true, zeroCenter: true });
  const fit = quantizeWeights(w, 1, { wbits: 4, perChannel: true, zeroCenter: true, center: 'fit' });
  t.equal(mean.fw[0], 2);
  t.ok(Math.abs(mean.mu[0] - 0.35) < 1e-7, 'the mean');
  t.equal(fit.fw[0], 3, 'one step finer');
  t.ok(Math.abs(fit.mu[0] - (1.4 - 7.5 / 8)) < 1e-5, `mu ${fit.mu[0]} is the fitting point nearest the mean`);
  t.ok(Array.from(fit.q).every((v) => Math.abs(v) <= 7), 'nothing clipped');
  const err = (q: typeof fit) => dequantizeWeights(q, 1).reduce((s, v, i) => s + (v - w[i]) ** 2, 0);
  t.ok(err(fit) < err(mean), `squared error ${err(fit)} below the mean's ${err(mean)}`);
  // A symmetric channel keeps the mean.
  const sym = f32([-1, -0.5, 0.5, 1]);
  const s = quantizeWeights(sym, 1, { wbits: 4, perChannel: true, zeroCenter: true, center: 'fit' });
  t.equal(s.mu[0], 0);
  t.equal(s.fw[0], quantizeWeights(sym, 1, { wbits: 4, perChannel: true, zeroCenter: true }).fw[0]);
});

t.test("center 'fit' over random layers: never coarser than the mean's grid, nothing clipped, centersFor gives the same mu", async (t) => {
  const r = rng(11);
  let finer = 0;
  for (let trial = 0; trial < 40; trial++) {
    const filters = 6;
    const per = 9 + trial;
    // Skewed weights: a few large ones on one side.
    const w = Float32Array.from({ length: filters * per }, () => (r() < 0.1 ? 2 * r() : r() - 0.5) * 0.1);
    for (const wbits of [3, 4, 6, 8]) {
      for (const perChannel of [true, false]) {
        const opts = { wbits, perChannel, zeroCenter: true };
        const a = quantizeWeights(w, filters, opts);
        const b = quantizeWeights(w, filters, { ...opts, center: 'fit' });
        const qmax = 2 ** (wbits - 1) - 1;
        for (let o = 0; o < filters; o++) {
          if (b.fw[o] < a.fw[o]) t.fail(`trial ${trial} Nw ${wbits}: fit fw ${b.fw[o]} coarser than ${a.fw[o]}`);
          if (b.fw[o] > a.fw[o]) finer++;
          if (b.fw[o] === a.fw[o] && b.mu[o] !== a.mu[o]) t.fail(`trial ${trial}: the same grid moved mu`);
        }
        if (!Array.from(b.q).every((v) => Math.abs(v) <= qmax)) t.fail(`trial ${trial} Nw ${wbits}: a weight beyond ±${qmax}`);
        const approx = dequantizeWeights(b, filters);
        for (let i = 0; i < w.length; i++) {
          const o = Math.floor(i / per);
          if (Math.abs(approx[i] - w[i]) > 2 ** -(b.fw[o] + 1) + 2 ** -(b.fm[o] + 1) + 1e-9) t.fail(`trial ${trial}: weight ${i} beyond half a step (clipped)`);
        }
        t.same(Array.from(centersFor(w, filters, b.fw, { ...opts, center: 'fit' })), Array.from(b.mu), `trial ${trial} Nw ${wbits} pc ${perChannel}: centersFor`);
        t.same(Array.from(centersFor(w, filters, a.fw, opts)), Array.from(a.mu));
      }
    }
  }
  t.ok(finer > 50, `${finer} channels got a finer grid`);
});
