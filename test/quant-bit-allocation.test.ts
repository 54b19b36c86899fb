import t from 'tap';
import { allocateBits, fittedErrors, monotoneErrors, type LayerErrors } from '../src/quant/bit-allocation.js';

/** Errors halving with every bit, scaled per layer. */
function layer(index: number, weights: number, scale: number): LayerErrors {
  const error: number[] = [];
  for (let b = 2; b <= 8; b++) error[b] = b === 8 ? 0 : scale * 2 ** -(b - 2);
  return { layer: index, weights, error };
}

/** Least summed error over every assignment of widths (small cases only). */
function bruteForce(layers: LayerErrors[], avg: number, minBits: number): number {
  const total = layers.reduce((s, l) => s + l.weights, 0);
  const errs = layers.map((l) => monotoneErrors(l.error, minBits, 8));
  let best = Infinity;
  const rec = (k: number, bits: number, err: number): void => {
    if (bits > avg * total + 1e-9) return;
    if (k === layers.length) {
      best = Math.min(best, err);
      return;
    }
    for (let b = minBits; b <= 8; b++) rec(k + 1, bits + layers[k].weights * b, err + errs[k][b]);
  };
  rec(0, 0, 0);
  return best;
}

t.test('an integer average with equal layers gives every layer that width', async (t) => {
  const layers = [layer(0, 100, 1), layer(1, 100, 1), layer(2, 100, 1)];
  const a = allocateBits(layers, 5);
  t.same(a.widths, [5, 5, 5]);
  t.equal(a.avgBits, 5);
});

t.test('the bits go to the sensitive layer, the average is not exceeded', async (t) => {
  const layers = [layer(0, 100, 100), layer(1, 100, 1)];
  const a = allocateBits(layers, 5);
  t.ok(a.widths[0] > a.widths[1], `sensitive layer wider: ${a.widths}`);
  t.ok(a.avgBits <= 5 + 1e-12);
  t.equal(a.avgBits, 5, 'the whole budget is used');
});

t.test('a large cheap layer is narrowed to pay for small costly ones', async (t) => {
  // 1000 weights with little error, three layers of 10 with much: at 4.1 bits on average the big one
  // goes to 4 or below and the small ones as wide as the rest allows.
  const layers = [layer(0, 1000, 1), layer(1, 10, 50), layer(2, 10, 50), layer(3, 10, 50)];
  const a = allocateBits(layers, 4.1);
  t.ok(a.widths[0] <= 4);
  t.same(a.widths.slice(1), [8, 8, 8]);
});

t.test('the dynamic programme finds the least summed error (against brute force)', async (t) => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 20; trial++) {
    const layers: LayerErrors[] = [];
    for (let k = 0; k < 4; k++) {
      const error: number[] = [];
      for (let b = 2; b <= 8; b++) error[b] = b === 8 ? 0 : rand() * 10 * (9 - b);
      layers.push({ layer: k, weights: 1 + Math.floor(rand() * 50), error });
    }
    const avg = 2 + rand() * 5;
    const minBits = trial % 3 === 0 ? 3 : 2;
    if (avg < minBits) continue;
    const a = allocateBits(layers, avg, { minBits, states: 1e6 });
    const total = layers.reduce((s, l) => s + l.weights, 0);
    const used = layers.reduce((s, l, k) => s + l.weights * a.widths[k], 0);
    t.ok(used <= avg * total + 1e-9, `trial ${trial}: within the budget`);
    t.ok(a.widths.every((b) => b >= minBits && b <= 8));
    t.ok(Math.abs(a.error - bruteForce(layers, avg, minBits)) < 1e-9, `trial ${trial}: optimal (${a.error})`);
  }
});

t.test('measured errors are made monotone: a wider format never counts as worse', async (t) => {
  const e = monotoneErrors([0, 0, 5, 7, 2, 3, 1, 0.5, 0], 2, 8);
  t.same(e.slice(2), [7, 7, 3, 3, 1, 0.5, 0]);
});

t.test('a floor above the average is refused', async (t) => {
  t.throws(() => allocateBits([layer(0, 10, 1)], 3.5, { minBits: 4 }), { code: 'quant-bits' });
});

t.test('a floor at the average gives every layer that width, whatever the weight counts', async (t) => {
  // Counts that do not divide the budget's unit: the costs, rounded up, must not push the uniform width out.
  const layers = [layer(0, 21893, 1), layer(1, 907, 3), layer(2, 24480, 2), layer(3, 7, 5)];
  const a = allocateBits(layers, 4, { minBits: 4 });
  t.same(a.widths, [4, 4, 4, 4]);
  t.equal(a.avgBits, 4);
});

t.test('fitted errors: measured up to 4 bits, s·4^-b above, fitted to the 3-, 4- and 5-bit errors', async (t) => {
  const s = 640;
  const exact = [0, 0, 90, s / 64, s / 256, s / 1024, -0.07, 0.05, 0];
  const f = fittedErrors(exact, 2);
  t.same(f.slice(2, 5), [90, s / 64, s / 256], 'measured up to 4 bits');
  t.ok(Math.abs(f[5] - s / 1024) < 1e-9 && Math.abs(f[6] - s / 4096) < 1e-9 && Math.abs(f[7] - s / 16384) < 1e-9, `modelled above: ${f.slice(5, 8)}`);
  t.equal(f[8], 0);
  // Noise at 5-7 bits (either sign) no longer says a width is free or worse than a narrower one.
  const noisy = [0, 0, 12, 2.0, 0.5, -0.1, 0.15, -0.08, 0];
  const g = fittedErrors(noisy, 2);
  t.ok(g[5] > 0 && g[5] > g[6] && g[6] > g[7] && g[7] > 0, `positive and falling: ${g.slice(5, 8)}`);
  // Least squares through the three points: s = Σ e·x / Σ x² with x = 4^-b.
  const x = [3, 4, 5].map((b) => 4 ** -b);
  const sFit = (2.0 * x[0] + 0.5 * x[1] - 0.1 * x[2]) / (x[0] ** 2 + x[1] ** 2 + x[2] ** 2);
  t.ok(Math.abs(g[6] - sFit / 4096) < 1e-12, 'the least-squares fit');
  // Measured from 4 bits only: the fit uses 4 and 5, the unmeasured widths stay as they were.
  const from4 = fittedErrors([0, 0, 0, 0, 0.8, 0.2, 9, 9, 0], 4);
  t.same(from4.slice(2, 5), [0, 0, 0.8]);
  t.ok(from4[6] < 0.2 && from4[7] < from4[6], `from 4 bits: ${from4.slice(5, 8)}`);
  t.same(fittedErrors([0, 0, 1, 1, 1, 1, 1, 1, 0], 6), [0, 0, 1, 1, 1, 1, 1, 1, 0], 'no fit point measured: as measured');
});

t.test('with fitted errors, noise at the wide widths no longer buys bits', async (t) => {
  // Layer 0: clean errors. Layer 1: the same at 3-4 bits, but its 5-bit error measured high by noise.
  // As measured, layer 1 looks costly at 5 bits and takes width 6 from layer 0's budget; fitted, both alike.
  const clean = [0, 0, 40, 8, 2, 0.5, 0.125, 0.03, 0];
  const noisy = [0, 0, 40, 8, 2, 1.6, -0.1, 0.02, 0];
  const layers: LayerErrors[] = [{ layer: 0, weights: 100, error: clean }, { layer: 1, weights: 100, error: noisy }];
  const measured = allocateBits(layers, 5);
  const fitted = allocateBits(layers.map((l) => ({ ...l, error: fittedErrors(l.error, 2) })), 5);
  t.same(measured.widths, [4, 6], 'as measured: the noise moves a bit');
  t.same(fitted.widths, [5, 5], 'fitted: the same width for the same layer');
});
