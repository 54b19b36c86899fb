import t from 'tap';
import { inverseCholeskyUpper, orderedFactor, roundChannel, DAMPING } from '../src/quant/gptq.js';

let seed = 11;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());

/** H = Σ x xᵀ of n correlated samples of dimension d. */
function hessian(d: number, n: number): Float64Array {
  const H = new Float64Array(d * d);
  const mix = Array.from({ length: d * d }, () => gauss());
  for (let s = 0; s < n; s++) {
    const z = Array.from({ length: d }, gauss);
    const x = Array.from({ length: d }, (_, i) => z.reduce((a, v, k) => a + mix[i * d + k] * v * (k <= i ? 1 : 0.2), 0));
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i * d + j] += x[i] * x[j];
  }
  return H;
}

const quad = (e: Float64Array, H: Float64Array, d: number) => {
  let s = 0;
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) s += e[i] * H[i * d + j] * e[j];
  return s;
};

t.test('U is upper triangular with Uᵀ U = (H + damping)⁻¹', async (t) => {
  const d = 7;
  const H = hessian(d, 40);
  const U = inverseCholeskyUpper(H, d);
  let mean = 0;
  for (let i = 0; i < d; i++) mean += H[i * d + i] / d;
  const A = H.slice();
  for (let i = 0; i < d; i++) A[i * d + i] += DAMPING * mean;
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) t.equal(U[i * d + j], 0);
  // (Uᵀ U) A = I
  let worst = 0;
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        let uu = 0;
        for (let m = 0; m < d; m++) uu += U[m * d + i] * U[m * d + k];
        s += uu * A[k * d + j];
      }
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  t.ok(worst < 1e-8, `max |(UᵀU)A − I| = ${worst}`);
});

t.test('rounding for the output error: on the grid, and a smaller output error than rounding to nearest', async (t) => {
  const d = 9;
  let better = 0;
  let sumG = 0;
  let sumN = 0;
  for (let trial = 0; trial < 30; trial++) {
    const H = hessian(d, 60);
    const U = inverseCholeskyUpper(H, d);
    const D = Float64Array.from({ length: d }, () => gauss() * 0.4);
    const frac = 3;
    const qmax = 7;
    const q = new Int8Array(d);
    roundChannel(D, U, frac, qmax, q, 0);
    t.ok(q.every((v) => Math.abs(v) <= qmax), 'within the width');
    const eG = Float64Array.from(D, (w, i) => w - q[i] / 2 ** frac);
    const eN = Float64Array.from(D, (w) => w - Math.max(-qmax, Math.min(qmax, Math.round(w * 2 ** frac))) / 2 ** frac);
    const g = quad(eG, H, d);
    const n = quad(eN, H, d);
    sumG += g;
    sumN += n;
    if (g <= n + 1e-12) better++;
  }
  t.ok(sumG < 0.8 * sumN, `summed output error ${sumG.toFixed(3)} against ${sumN.toFixed(3)} rounding to nearest`);
  t.ok(better >= 20, `not worse in ${better} of 30 channels (it is greedy: not better in every one)`);
});

t.test('an input that never varies does not break the factorisation', async (t) => {
  const d = 4;
  const H = hessian(d, 20);
  for (let j = 0; j < d; j++) (H[2 * d + j] = 0), (H[j * d + 2] = 0);
  const U = inverseCholeskyUpper(H, d);
  t.ok(U.every(Number.isFinite));
  const q = new Int8Array(d);
  roundChannel(Float64Array.of(0.3, -0.2, 0.9, 0.1), U, 2, 3, q, 0);
  t.same(Array.from(q).map((v) => Math.abs(v) <= 3), [true, true, true, true]);
});

t.test('energy order: the inputs of largest H diagonal first, the same rounding as the permuted problem in index order', async (t) => {
  const d = 8;
  for (let trial = 0; trial < 10; trial++) {
    const H = hessian(d, 50);
    const { factor, order } = orderedFactor(H, d, 'energy');
    t.ok(order, 'an order');
    const diag = Array.from(order!, (i) => H[i * d + i]);
    t.ok(diag.every((v, k) => k === 0 || diag[k - 1] >= v), 'decreasing energy');
    t.same([...order!].sort((a, b) => a - b), Array.from({ length: d }, (_, i) => i), 'a permutation');
    const D = Float64Array.from({ length: d }, () => gauss() * 0.4);
    const q = new Int8Array(d);
    roundChannel(D, factor, 3, 7, q, 0, order);
    // By hand: permute H and D, round in index order, put each integer back where its weight was.
    const Hp = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) Hp[i * d + j] = H[order![i] * d + order![j]];
    const qp = new Int8Array(d);
    roundChannel(Float64Array.from(order!, (i) => D[i]), inverseCholeskyUpper(Hp, d), 3, 7, qp, 0);
    t.same(Array.from(q), Array.from({ length: d }, (_, i) => qp[order!.indexOf(i)]));
  }
  const index = orderedFactor(hessian(4, 10), 4, 'index');
  t.equal(index.order, undefined, 'index order: none carried');
});
