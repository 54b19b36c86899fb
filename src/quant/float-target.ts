/**
 * Rounding for the float network's output instead of the layer's own (`--rounding-target float`).
 *
 * gptq.ts rounds a channel's weights w for the least E[((w − ŵ)·x_q)²]: the error the layer adds on the
 * integer inputs x_q it gets, whatever those inputs already carry from the layers before. Measured
 * against the float network instead, the error is E[(w·x_f − ŵ·x_q)²] with x_f the float network's
 * input of the layer. With δ = x_f − x_q, H = E[x_q x_qᵀ] and C = E[x_q δᵀ]:
 *   E[(w·x_f − ŵ·x_q)²] = (w' − ŵ)ᵀ H (w' − ŵ) + const,  w' = w + H⁻¹ C w,
 * so the same rounding, aimed at w' instead of w, minimises it (as GPTAQ, Li et al. 2025, does for
 * transformers). The bias takes the mean error against the float output, b + w·E[x_f] − ŵ·E[x_q], when bias
 * correction is on: the bias given here is shifted by w·(E[x_f] − E[x_q]) − (w' − w)·E[x_q], and
 * conv.ts then adds (w' − ŵ)·E[x_q].
 *
 * H and C are sums over the same sampled output positions (gptq.ts hessianSums) and H is the damped
 * one the rounding uses (its factor U, Uᵀ U = H⁻¹), so H⁻¹ C w = Uᵀ U C w.
 */
import type { ConvLayer, ConvParams, Network } from '../model/ir.js';
import { inputShape } from '../model/ir.js';
import { convWindow, hessianStride, type InputHessian, type LayerInput } from './gptq.js';
import { ZeroqError } from '../util/errors.js';

/** Which output error the rounding minimises: the layer's own on its integer inputs, or against the float network's. */
export type RoundingTarget = 'layer' | 'float';
/** A target per layer width: 'auto' is 'float' at FLOAT_TARGET_MAX_BITS and narrower, 'layer' wider. */
export type RoundingTargetRule = RoundingTarget | 'auto';
export const ROUNDING_TARGET_RULES: readonly RoundingTargetRule[] = ['auto', 'layer', 'float'];
/**
 * At 4 bits the float target gained on both networks on the 727 calibration-free images and again with
 * another calibration sample; at 5 and 6 bits it did not (docs/decisions/quantizer-defaults.md).
 */
export const FLOAT_TARGET_MAX_BITS = 4;

/** The target of a layer of `wbits` under a rule (absent: the layer's own error, as before the rule existed). */
export function roundingTargetAt(rule: RoundingTargetRule | undefined, wbits: number): RoundingTarget {
  if (rule === 'auto') return wbits <= FLOAT_TARGET_MAX_BITS ? 'float' : 'layer';
  return rule ?? 'layer';
}

/** The float network's version of one layer input (same shape as the integer one). */
export type FloatInput = Float32Array;

/** Per output channel, Σ x_q (δ·w) over the sampled windows (filters × d, row-major): C w of the header. */
export function crossTerm(
  net: Network,
  layer: ConvLayer,
  qInputs: LayerInput[],
  fInputs: FloatInput[],
  weight: ArrayLike<number>,
  scale: number,
  maxPositions = 2048,
): Float64Array {
  const inShape = inputShape(net, layer);
  const G = layer.groups;
  const k = layer.size;
  const kk = k * k;
  const cg = inShape.c / G;
  const d = cg * kk;
  const O = layer.filters;
  const perGroup = O / G;
  const every = hessianStride(layer, maxPositions);
  const { h: OH, w: OW } = layer.out;
  const out = new Float64Array(O * d);
  const xq = new Float64Array(d);
  const dx = new Float64Array(d);
  qInputs.forEach((inp, n) => {
    const xf = fInputs[n];
    if (xf.length !== inp.c * inp.h * inp.w) {
      throw new ZeroqError('quant-calib', `float input ${n}: ${xf.length} values for ${inp.c}×${inp.h}×${inp.w}`, `layer ${layer.index}`);
    }
    const s = 2 ** -inp.frac;
    for (let p = 0; p < OH * OW; p += every) {
      const oy = Math.floor(p / OW);
      const ox = p % OW;
      for (let g = 0; g < G; g++) {
        convWindow(layer, inp, s, oy, ox, g, cg, xq);
        convWindow(layer, { h: inp.h, w: inp.w, data: xf }, 1, oy, ox, g, cg, dx);
        let moved = false;
        for (let i = 0; i < d; i++) {
          dx[i] -= xq[i];
          if (dx[i] !== 0) moved = true;
        }
        if (!moved) continue;
        for (let o = g * perGroup; o < (g + 1) * perGroup; o++) {
          const row = o * d;
          let t = 0;
          for (let i = 0; i < d; i++) t += dx[i] * weight[row + i];
          t *= scale;
          if (t === 0) continue;
          for (let i = 0; i < d; i++) out[row + i] += t * xq[i];
        }
      }
    }
  });
  return out;
}

/** H⁻¹ v for one group's factor (of H in `order` when given): Uᵀ U v, permuted in and out. */
export function solveWithFactor(U: Float64Array, v: Float64Array, order?: Int32Array): Float64Array {
  const d = v.length;
  const pv = order ? Float64Array.from(order, (i) => v[i]) : v;
  const t = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = i; j < d; j++) s += U[i * d + j] * pv[j];
    t[i] = s;
  }
  const r = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let i = 0; i <= j; i++) s += U[i * d + j] * t[i];
    r[j] = s;
  }
  if (!order) return r;
  const back = new Float64Array(d);
  for (let i = 0; i < d; i++) back[order[i]] = r[i];
  return back;
}

/** Mean real value of every channel over the given tensors (one per image), each value times `scale`. */
export function inputChannelMeans(xs: { c: number; h: number; w: number; data: ArrayLike<number> }[], scale: number): Float64Array {
  const { c, h, w } = xs[0];
  const plane = h * w;
  const out = new Float64Array(c);
  for (const x of xs) {
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      for (let i = ch * plane; i < (ch + 1) * plane; i++) s += x.data[i];
      out[ch] += s;
    }
  }
  const k = scale / (plane * xs.length);
  for (let ch = 0; ch < c; ch++) out[ch] *= k;
  return out;
}

/**
 * The parameters whose output-error rounding (with `hessian`, of the same integer inputs) minimises the
 * error against the float network: weights w' = w + H⁻¹ C w; with `means` (bias correction on), the bias
 * shifted so that conv.ts's correction lands on the float output's mean.
 */
export function floatTargetParams(
  net: Network,
  layer: ConvLayer,
  params: ConvParams,
  hessian: InputHessian,
  qInputs: LayerInput[],
  fInputs: FloatInput[],
  scale: number,
  means?: { quantized: Float64Array; float: Float64Array },
): ConvParams {
  const O = layer.filters;
  const G = layer.groups;
  const d = hessian.d;
  const kk = layer.size * layer.size;
  const cg = d / kk;
  const cw = crossTerm(net, layer, qInputs, fInputs, params.weight, scale);
  const weight = Float32Array.from(params.weight);
  const bias = Float32Array.from(params.bias);
  for (let o = 0; o < O; o++) {
    const g = Math.floor(o / (O / G));
    const shift = solveWithFactor(hessian.factors[g], cw.subarray(o * d, (o + 1) * d), hessian.orders?.[g]);
    let b = 0;
    for (let i = 0; i < d; i++) {
      weight[o * d + i] = params.weight[o * d + i] + shift[i] / scale;
      if (means) {
        const ch = g * cg + Math.floor(i / kk);
        // w·(E[x_f] − E[x_q]) − (w' − w)·E[x_q], all in the layer's real (input-scaled) units
        b += params.weight[o * d + i] * scale * (means.float[ch] - means.quantized[ch]) - shift[i] * means.quantized[ch];
      }
    }
    bias[o] = params.bias[o] + b;
  }
  return { weight, bias };
}
