/**
 * Rounding that minimises the error of a conv layer's output instead of each weight's own
 * (the second-order method of Frantar et al., "GPTQ", 2022, after "Optimal Brain Quantization"):
 * for one output channel with weights w over its input window x, the output error is
 * E[((w − ŵ)·x)²] = (w − ŵ)ᵀ H (w − ŵ) with H = E[x xᵀ]. The weights are rounded one at a time onto
 * the channel's grid (mu + k·2^-fw, |k| ≤ 2^(Nw−1) − 1) and the error each rounding makes is spread
 * over the weights not rounded yet, in the proportions H says keep the output closest:
 * with U the upper Cholesky factor of H⁻¹, after rounding weight j, w_k −= (w_j − ŵ_j)/U_jj · U_jk (k > j).
 * The grid (mu, fw) is chosen as before; only which grid point each weight takes changes.
 *
 * H comes from the layer's inputs on the calibration images, as the integer network quantized so
 * far computes them (the format search has them), so each layer also absorbs part of the error of
 * the layers before it.
 */
import type { ConvLayer, Network } from '../model/ir.js';
import { inputShape } from '../model/ir.js';
import { roundHalfAway } from '../qnet/arith.js';
import { packInt16, retrainNative, type RetrainNative } from '../retrain/native.js';

/** Relative damping added to H's diagonal (of its mean), as GPTQ does, so that H is safely invertible. */
export const DAMPING = 0.01;

/** One input of a layer: an integer tensor (CHW) and its fraction bits. */
export interface LayerInput {
  c: number;
  h: number;
  w: number;
  data: Int32Array | Int16Array;
  frac: number;
}

/** Per group of the conv: the upper Cholesky factor of the damped inverse of H (d×d, row-major), d = weights per output channel. */
export interface InputHessian {
  d: number;
  factors: Float64Array[];
  /** Per group, the order the weights are rounded in (factors are of H permuted to it); absent: index order. */
  orders?: Int32Array[];
}

/** The order weights are rounded in: their index, or the inputs of largest energy (H's diagonal) first. */
export type RoundingOrder = 'index' | 'energy';

/**
 * H = Σ x xᵀ over the output positions of every input (per group of the conv), at most `maxPositions`
 * evenly spaced positions per input, then damped, inverted and factored.
 */
export function inputHessian(
  net: Network, layer: ConvLayer, inputs: LayerInput[], maxPositions = 2048, threads = 1, order: RoundingOrder = 'index',
): InputHessian {
  const { d, sums } = hessianSums(net, layer, inputs, maxPositions, threads);
  const groups = sums.map((Hg) => orderedFactor(symmetrize(Hg, d), d, order));
  return { d, factors: groups.map((g) => g.factor), ...(order === 'energy' ? { orders: groups.map((g) => g.order!) } : {}) };
}

/** The factor roundChannel takes for a (symmetric) H, of H permuted to the rounding order. */
export function orderedFactor(H: Float64Array, d: number, order: RoundingOrder): { factor: Float64Array; order?: Int32Array } {
  if (order === 'index') return { factor: inverseCholeskyUpper(H, d) };
  const o = energyOrder(H, d);
  return { factor: inverseCholeskyUpper(permuted(H, d, o), d), order: o };
}

/** Indices by decreasing H diagonal (stable: ties keep index order). */
function energyOrder(H: Float64Array, d: number): Int32Array {
  const idx = Array.from({ length: d }, (_, i) => i);
  idx.sort((a, b) => H[b * d + b] - H[a * d + a] || a - b);
  return Int32Array.from(idx);
}

/** P H Pᵀ: row and column i of the result are row and column order[i] of H. */
function permuted(H: Float64Array, d: number, order: Int32Array): Float64Array {
  const P = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) P[i * d + j] = H[order[i] * d + order[j]];
  return P;
}

/** Every how many output positions a window is sampled, so that at most `maxPositions` are per input. */
export function hessianStride(layer: ConvLayer, maxPositions: number): number {
  return Math.max(1, Math.ceil((layer.out.h * layer.out.w) / maxPositions));
}

/** Σ x xᵀ per group (upper triangles, d×d row-major) before damping; `native` false: the JS sums only. */
export function hessianSums(
  net: Network, layer: ConvLayer, inputs: LayerInput[], maxPositions = 2048, threads = 1, native = true,
): { d: number; sums: Float64Array[] } {
  const inShape = inputShape(net, layer);
  const G = layer.groups;
  const d = (inShape.c / G) * layer.size * layer.size;
  const every = hessianStride(layer, maxPositions);
  const sums = (native ? nativeHessian(layer, inputs, G, d, every, threads) : undefined) ?? jsHessian(layer, inputs, G, d, every);
  return { d, sums };
}

/**
 * The sums on the retraining core's native kernels, when they are built and every input has the
 * same fraction bits: the products of integers are summed as integers there, then scaled by
 * 2^(−2·frac), so the result is the JS sums' exactly (those are exact too: dyadic values far below
 * 2^53 units, whatever the order).
 */
function nativeHessian(layer: ConvLayer, inputs: LayerInput[], G: number, d: number, every: number, threads: number): Float64Array[] | undefined {
  if (inputs.length === 0 || inputs.some((x) => x.frac !== inputs[0].frac)) return undefined;
  let nat: RetrainNative;
  try {
    nat = retrainNative();
  } catch {
    return undefined;
  }
  const { c, h, w } = inputs[0];
  const size = c * h * w;
  const x = packInt16(inputs.map((inp) => inp.data), size);
  if (!x) return undefined;  // wider than 16 bits: the JS sums
  const all = new Float64Array(G * d * d);
  nat.convInputHessian(x, Int32Array.of(inputs.length, c, h, w, layer.filters, layer.size, layer.stride, layer.pad, G), every, all, threads);
  const scale = 2 ** (-2 * inputs[0].frac);
  for (let i = 0; i < all.length; i++) all[i] *= scale;
  return Array.from({ length: G }, (_, g) => all.subarray(g * d * d, (g + 1) * d * d));
}

/** The sums in JS: x xᵀ (upper triangles) of the sampled windows of every input, per group. */
function jsHessian(layer: ConvLayer, inputs: LayerInput[], G: number, d: number, every: number): Float64Array[] {
  const H = Array.from({ length: G }, () => new Float64Array(d * d));
  const cg = d / (layer.size * layer.size);
  const { h: OH, w: OW } = layer.out;
  const positions = OH * OW;
  const x = new Float64Array(d);
  for (const inp of inputs) {
    const s = 2 ** -inp.frac;
    for (let p = 0; p < positions; p += every) {
      const oy = Math.floor(p / OW);
      const ox = p % OW;
      for (let g = 0; g < G; g++) {
        if (!convWindow(layer, inp, s, oy, ox, g, cg, x)) continue;
        const Hg = H[g];
        for (let i = 0; i < d; i++) {
          const xi = x[i];
          if (xi === 0) continue;
          const row = i * d;
          for (let j = i; j < d; j++) Hg[row + j] += xi * x[j];
        }
      }
    }
  }
  return H;
}

/**
 * The input window of output position (oy, ox) in group g of a conv (cg input channels per group), as real
 * values (the tensor's numbers times `scale`; zero outside the input), into x (cg·k² values, row-major by
 * channel, ky, kx). Returns whether any value is non-zero.
 */
export function convWindow(
  layer: ConvLayer, inp: { h: number; w: number; data: ArrayLike<number> }, scale: number, oy: number, ox: number, g: number, cg: number, x: Float64Array,
): boolean {
  const k = layer.size;
  const kk = k * k;
  const plane = inp.h * inp.w;
  let nz = false;
  for (let c = 0; c < cg; c++) {
    const ch = g * cg + c;
    for (let ky = 0; ky < k; ky++) {
      const iy = oy * layer.stride - layer.pad + ky;
      for (let kx = 0; kx < k; kx++) {
        const ix = ox * layer.stride - layer.pad + kx;
        const v = iy >= 0 && iy < inp.h && ix >= 0 && ix < inp.w ? inp.data[ch * plane + iy * inp.w + ix] * scale : 0;
        x[c * kk + ky * k + kx] = v;
        if (v !== 0) nz = true;
      }
    }
  }
  return nz;
}

function symmetrize(H: Float64Array, d: number): Float64Array {
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) H[i * d + j] = H[j * d + i];
  return H;
}

/** Lower Cholesky factor L (L Lᵀ = A) in place of a copy; returns undefined when A is not positive definite. */
function cholesky(A: Float64Array, d: number): Float64Array | undefined {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * d + j];
      for (let k = 0; k < j; k++) s -= L[i * d + k] * L[j * d + k];
      if (i === j) {
        if (!(s > 0)) return undefined;
        L[i * d + i] = Math.sqrt(s);
      } else L[i * d + j] = s / L[j * d + j];
    }
  }
  return L;
}

/**
 * U with Uᵀ U = (H + damping)⁻¹, upper triangular (row-major). Inputs that never vary (zero rows of H)
 * get a unit diagonal: their weights are rounded on their own.
 */
export function inverseCholeskyUpper(H: Float64Array, d: number): Float64Array {
  let mean = 0;
  for (let i = 0; i < d; i++) mean += H[i * d + i];
  mean /= d;
  const A = H.slice();
  for (let i = 0; i < d; i++) {
    if (A[i * d + i] === 0) {
      for (let j = 0; j < d; j++) (A[i * d + j] = 0), (A[j * d + i] = 0);
      A[i * d + i] = 1;
    }
  }
  for (let damp = DAMPING; ; damp *= 10) {
    const B = A.slice();
    for (let i = 0; i < d; i++) B[i * d + i] += damp * (mean > 0 ? mean : 1);
    const L = cholesky(B, d);
    if (!L) continue;
    // H⁻¹ = L⁻ᵀ L⁻¹: invert L (lower), form H⁻¹, factor it.
    const Li = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      Li[i * d + i] = 1 / L[i * d + i];
      for (let j = 0; j < i; j++) {
        let s = 0;
        for (let k = j; k < i; k++) s += L[i * d + k] * Li[k * d + j];
        Li[i * d + j] = -s / L[i * d + i];
      }
    }
    const Hi = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let k = i; k < d; k++) s += Li[k * d + i] * Li[k * d + j];
        Hi[i * d + j] = s;
        Hi[j * d + i] = s;
      }
    }
    // Hi = L Lᵀ (lower Cholesky factor) → U = Lᵀ is upper with Uᵀ U = Hi.
    const Lh = cholesky(Hi, d);
    if (!Lh) continue;
    const U = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) U[j * d + i] = Lh[i * d + j];
    return U;
  }
}

/**
 * The integers of one output channel: D = w − mu (input-scaled), rounded one at a time onto
 * k·2^-frac, |k| ≤ qmax, the error of each spread over the rest by U (of H in `order`, when given).
 */
export function roundChannel(D: Float64Array, U: Float64Array, frac: number, qmax: number, out: Int8Array, at: number, order?: Int32Array): void {
  const d = D.length;
  const w = order ? Float64Array.from(order, (i) => D[i]) : D.slice();
  const s = 2 ** frac;
  for (let j = 0; j < d; j++) {
    const q = Math.max(-qmax, Math.min(qmax, roundHalfAway(w[j] * s)));
    out[at + (order ? order[j] : j)] = q;
    const err = (w[j] - q / s) / U[j * d + j];
    if (err === 0) continue;
    const row = j * d;
    for (let k = j + 1; k < d; k++) w[k] -= err * U[row + k];
  }
}
