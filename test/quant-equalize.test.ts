import t from 'tap';
import { alignWeightGrid, equalizablePairs, equalizeModel, equalizeWeightsModel } from '../src/quant/equalize.js';
import { quantizeWeights } from '../src/quant/weights.js';
import { handModel, referenceForward, rng } from './helpers/float-reference.js';
import type { FloatModel } from '../src/model/ir.js';

/** expand 1x1 (leaky) → depthwise 3x3 (leaky) → project 1x1 (linear) → shortcut, channels of very different gains. */
function block(): FloatModel {
  const m = handModel({ c: 4, h: 9, w: 7 }, [
    { kind: 'conv', filters: 4, size: 3, activation: 'leaky' }, // 0
    { kind: 'conv', filters: 6, size: 1, pad: 0, activation: 'leaky' }, // 1 expand
    { kind: 'conv', filters: 6, size: 3, groups: 6, activation: 'leaky' }, // 2 depthwise
    { kind: 'conv', filters: 4, size: 1, pad: 0, activation: 'linear' }, // 3 project
    { kind: 'shortcut', from: 0 }, // 4
    { kind: 'conv', filters: 5, size: 1, pad: 0, activation: 'mish' }, // 5 not homogeneous
    { kind: 'conv', filters: 3, size: 1, pad: 0, activation: 'linear' }, // 6
  ]);
  const gains = [
    [0.05, 1, 10, 0.1, 3, 0.5],
    [4, 0.2, 1, 10, 0.05, 1],
  ];
  [1, 2].forEach((l, k) => {
    const p = m.params[l]!;
    const per = p.weight.length / 6;
    for (let c = 0; c < 6; c++) {
      for (let i = c * per; i < (c + 1) * per; i++) p.weight[i] *= gains[k][c];
      p.bias[c] *= gains[k][c];
    }
  });
  return m;
}

function channelMax(data: Float64Array, c: number): Float64Array {
  const plane = data.length / c;
  const out = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) for (let i = ch * plane; i < (ch + 1) * plane; i++) out[ch] = Math.max(out[ch], Math.abs(data[i]));
  return out;
}

t.test('pairs: a conv read only by a conv, with a homogeneous activation', async (t) => {
  const m = block();
  // Layer 0 is read by the expand conv and the shortcut; 3 by the shortcut; 5 is mish.
  t.same(equalizablePairs(m.net), [
    { a: 1, b: 2, depthwise: true },
    { a: 2, b: 3, depthwise: false },
  ]);
});

t.test('equalization keeps the function and spreads the channels of the tensor', async (t) => {
  const m = block();
  const r = rng(3);
  const input = Float32Array.from({ length: 4 * 9 * 7 }, () => r() * 2 - 1);
  const before = referenceForward(m, input);
  const maxes = before.map((o) => channelMax(o.data, o.shape.c));
  const { model: eq, pairs } = equalizeModel(m, maxes, { depthwise: 1, other: 0.5 });
  t.same(pairs.map((p) => [p.a, p.b]), [[1, 2], [2, 3]]);
  const after = referenceForward(eq, input);
  for (const i of [0, 3, 4, 5, 6]) {
    let worst = 0;
    for (let k = 0; k < before[i].data.length; k++) worst = Math.max(worst, Math.abs(after[i].data[k] - before[i].data[k]) / (1 + Math.abs(before[i].data[k])));
    t.ok(worst < 1e-5, `layer ${i} unchanged (${worst.toExponential(1)})`);
  }
  const m1 = channelMax(after[1].data, 6);
  const R = Math.max(...maxes[1]);
  for (let c = 0; c < 6; c++) t.ok(Math.abs(m1[c] - R) < 1e-4 * R, `expand channel ${c}: ${m1[c].toFixed(4)} = R ${R.toFixed(4)} (free before a depthwise)`);
  const spread = (a: Float64Array) => Math.max(...a) / Math.min(...a);
  t.ok(spread(channelMax(after[2].data, 6)) < Math.sqrt(spread(maxes[2])) * 1.001, 'the depthwise output is half-way equalized (exponent 0.5)');
  t.notOk(m.params[1]!.weight === eq.params[1]!.weight, 'the original model is not modified');
});

t.test('weight equalization (per-layer formats) keeps the function and balances each pair', async (t) => {
  const m = block();
  const r = rng(4);
  const input = Float32Array.from({ length: 4 * 9 * 7 }, () => r() * 2 - 1);
  const before = referenceForward(m, input);
  const { model: eq, pairs } = equalizeWeightsModel(m, 8);
  t.same(pairs.map((p) => [p.a, p.b]), [[1, 2], [2, 3]]);
  const after = referenceForward(eq, input);
  for (const i of [0, 3, 4, 5, 6]) {
    let worst = 0;
    for (let k = 0; k < before[i].data.length; k++) worst = Math.max(worst, Math.abs(after[i].data[k] - before[i].data[k]) / (1 + Math.abs(before[i].data[k])));
    t.ok(worst < 1e-5, `layer ${i} unchanged (${worst.toExponential(1)})`);
  }
  // The expand layer's channel ranges: 200x apart before, much closer after.
  const ranges = (w: Float32Array, n: number) => Array.from({ length: n }, (_, c) => Math.max(...Array.from(w.subarray((c * w.length) / n, ((c + 1) * w.length) / n), Math.abs)));
  const spread = (a: number[]) => Math.max(...a) / Math.min(...a);
  const s0 = spread(ranges(m.params[1]!.weight, 6));
  const s1 = spread(ranges(eq.params[1]!.weight, 6));
  t.ok(s1 < s0 / 4, `expand channel spread ${s0.toFixed(0)} → ${s1.toFixed(1)}`);
  // A depthwise B: both sides of each channel end at the same range.
  const a = ranges(eq.params[1]!.weight, 6);
  const b = ranges(eq.params[2]!.weight, 6);
  for (let c = 0; c < 6; c++) t.ok(Math.abs(a[c] - b[c]) < 0.05 * a[c], `channel ${c}: ${a[c].toFixed(3)} ≈ ${b[c].toFixed(3)}`);
});

t.test('grid alignment keeps the function and puts each A channel just below the top of its grid', async (t) => {
  const m = block();
  const r = rng(5);
  const input = Float32Array.from({ length: 4 * 9 * 7 }, () => r() * 2 - 1);
  const before = referenceForward(m, input);
  for (const zeroCenter of [false, true]) {
    for (const wbits of [4, 6]) {
      const { model: al, pairs } = alignWeightGrid(m, { wbits, zeroCenter });
      t.same(pairs.map((p) => [p.a, p.b]), [[1, 2], [2, 3]]);
      const after = referenceForward(al, input);
      for (const i of [0, 3, 4, 5, 6]) {
        let worst = 0;
        for (let k = 0; k < before[i].data.length; k++) worst = Math.max(worst, Math.abs(after[i].data[k] - before[i].data[k]) / (1 + Math.abs(before[i].data[k])));
        t.ok(worst < 1e-5, `W${wbits}${zeroCenter ? ' zero-centered' : ''}: layer ${i} unchanged (${worst.toExponential(1)})`);
      }
      const qmax = 2 ** (wbits - 1) - 1;
      // Layers 1 and 2 are A of a pair: every channel's range is qmax + 0.25 steps of its format.
      for (const l of [1, 2]) {
        const w = al.params[l]!.weight;
        const f = 6;
        const per = w.length / f;
        const wq = quantizeWeights(w, f, { wbits, perChannel: true, zeroCenter });
        for (let c = 0; c < f; c++) {
          let range = 0;
          for (let i = c * per; i < (c + 1) * per; i++) range = Math.max(range, Math.abs(w[i] - wq.mu[c]));
          const steps = range * 2 ** wq.fw[c];
          t.ok(Math.abs(steps - (qmax + 0.25)) < 1e-4, `W${wbits} layer ${l} channel ${c}: range ${steps.toFixed(4)} steps`);
        }
        // The outputs of A channels only shrink, by at most 2: they stay inside the tensor's range.
        const a0 = channelMax(before[l].data, f);
        const a1 = channelMax(after[l].data, f);
        for (let c = 0; c < f; c++) {
          const ratio = a1[c] / a0[c];
          t.ok(ratio > 0.5 - 1e-6 && ratio <= 1 + 1e-6, `layer ${l} channel ${c}: output scaled by ${ratio.toFixed(3)}`);
        }
      }
    }
  }
  t.notOk(m.params[1]!.weight === alignWeightGrid(m, { wbits: 4, zeroCenter: true }).model.params[1]!.weight, 'the original model is not modified');
});
