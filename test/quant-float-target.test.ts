import t from 'tap';
import { parseCfg } from '../src/model/darknet-cfg.js';
import type { ConvLayer } from '../src/model/ir.js';
import { DAMPING, inputHessian, type LayerInput, type RoundingOrder } from '../src/quant/gptq.js';
import { floatTargetParams, inputChannelMeans, roundingTargetAt } from '../src/quant/float-target.js';

let seed = 5;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());

/** An 8×8 input, a 4-channel conv, then the conv under test (groups 1 or 2). */
function net(groups: number) {
  const text = `[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n[convolutional]\nfilters=6\nsize=3\nstride=1\npad=1\ngroups=${groups}\nactivation=leaky\n`;
  const n = parseCfg(text, 'test.cfg');
  return { n, layer: n.layers[1] as ConvLayer };
}

/** Windows of one output position and group, as the real values of `data` (zero outside). */
function window(x: ArrayLike<number>, s: number, ch0: number, cg: number, oy: number, ox: number): number[] {
  const v: number[] = [];
  for (let c = 0; c < cg; c++)
    for (let ky = 0; ky < 3; ky++)
      for (let kx = 0; kx < 3; kx++) {
        const iy = oy - 1 + ky;
        const ix = ox - 1 + kx;
        v.push(iy >= 0 && iy < 8 && ix >= 0 && ix < 8 ? x[(ch0 + c) * 64 + iy * 8 + ix] * s : 0);
      }
  return v;
}

/** Solves A v = b (dense, partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((r, i) => [...r, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  const v = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r][n];
    for (let k = r + 1; k < n; k++) s -= M[r][k] * v[k];
    v[r] = s / M[r][r];
  }
  return v;
}

for (const groups of [1, 2]) {
  for (const order of ['index', 'energy'] as RoundingOrder[]) {
    t.test(`groups ${groups}, ${order} order: the weights are the least-squares target against the float inputs, the bias its mean`, async (t) => {
      const { n, layer } = net(groups);
      const frac = 3;
      const qInputs: LayerInput[] = [];
      const fInputs: Float32Array[] = [];
      for (let k = 0; k < 3; k++) {
        const data = Int32Array.from({ length: 4 * 64 }, () => Math.round(gauss() * 12));
        qInputs.push({ c: 4, h: 8, w: 8, data, frac });
        // The float network's input: the integers plus an error that follows them in part (as carried errors do).
        fInputs.push(Float32Array.from(data, (v) => v * 2 ** -frac * 1.05 + gauss() * 0.1));
      }
      const cg = 4 / groups;
      const d = cg * 9;
      const weight = Float32Array.from({ length: 6 * d }, () => gauss() * 0.3);
      const bias = Float32Array.from({ length: 6 }, () => gauss());
      const hessian = inputHessian(n, layer, qInputs, 2048, 1, order);
      const meansQ = inputChannelMeans(qInputs, 2 ** -frac);
      const meansF = inputChannelMeans(qInputs.map((x, k) => ({ ...x, data: fInputs[k] })), 1);
      const out = floatTargetParams(n, layer, { weight, bias }, hessian, qInputs, fInputs, 1, { quantized: meansQ, float: meansF });

      let worst = 0;
      let moved = 0;
      for (let g = 0; g < groups; g++) {
        // H and C w over every window (64 positions: all sampled), H damped as the rounding's
        const H = Array.from({ length: d }, () => new Array<number>(d).fill(0));
        const rows = Array.from({ length: 6 / groups }, () => new Array<number>(d).fill(0));
        for (let k = 0; k < 3; k++)
          for (let oy = 0; oy < 8; oy++)
            for (let ox = 0; ox < 8; ox++) {
              const xq = window(qInputs[k].data, 2 ** -frac, g * cg, cg, oy, ox);
              const xf = window(fInputs[k], 1, g * cg, cg, oy, ox);
              for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i][j] += xq[i] * xq[j];
              rows.forEach((r, oo) => {
                const o = g * (6 / groups) + oo;
                let t = 0;
                for (let i = 0; i < d; i++) t += (xf[i] - xq[i]) * weight[o * d + i];
                for (let i = 0; i < d; i++) r[i] += t * xq[i];
              });
            }
        const mean = H.reduce((s, r, i) => s + r[i], 0) / d;
        for (let i = 0; i < d; i++) H[i][i] += DAMPING * mean;
        rows.forEach((cw, oo) => {
          const o = g * (6 / groups) + oo;
          const shift = solve(H, cw);
          let b = bias[o];
          for (let i = 0; i < d; i++) {
            const want = weight[o * d + i] + shift[i];
            worst = Math.max(worst, Math.abs(out.weight[o * d + i] - want) / (Math.abs(want) + 1e-3));
            if (Math.abs(shift[i]) > 1e-3) moved++;
            const ch = g * cg + Math.floor(i / 9);
            b += weight[o * d + i] * meansF[ch] - want * meansQ[ch];
          }
          t.ok(Math.abs(out.bias[o] - b) < 1e-4 * (1 + Math.abs(b)), `channel ${o}: bias ${out.bias[o]} = b + w·E[x_f] − w'·E[x_q] = ${b}`);
        });
      }
      t.ok(worst < 1e-5, `weights within ${worst.toExponential(2)} (relative) of the dense solution`);
      t.ok(moved > 6 * d * 0.5, `${moved} of ${6 * d} weights moved by more than 1e-3`);
    });
  }
}

t.test('no float error, nothing moves', async (t) => {
  const { n, layer } = net(1);
  const data = Int32Array.from({ length: 4 * 64 }, () => Math.round(gauss() * 12));
  const q: LayerInput[] = [{ c: 4, h: 8, w: 8, data, frac: 3 }];
  const f = [Float32Array.from(data, (v) => v / 8)];
  const weight = Float32Array.from({ length: 6 * 36 }, () => gauss());
  const bias = Float32Array.from({ length: 6 }, () => gauss());
  const out = floatTargetParams(n, layer, { weight, bias }, inputHessian(n, layer, q), q, f, 1, { quantized: inputChannelMeans(q, 1 / 8), float: inputChannelMeans([{ ...q[0], data: f[0] }], 1) });
  t.same(Array.from(out.weight), Array.from(weight));
  t.ok(out.bias.every((b, o) => Math.abs(b - bias[o]) < 1e-6));
});

t.test('the rule by width: auto is float at 4 bits and narrower, the layer\'s own error wider', async (t) => {
  t.same([2, 3, 4, 5, 6, 8].map((b) => roundingTargetAt('auto', b)), ['float', 'float', 'float', 'layer', 'layer', 'layer']);
  t.equal(roundingTargetAt(undefined, 4), 'layer', 'absent: as before the rule existed');
  t.equal(roundingTargetAt('float', 8), 'float');
  t.equal(roundingTargetAt('layer', 2), 'layer');
});
