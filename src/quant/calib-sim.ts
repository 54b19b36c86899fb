/**
 * The integer conv split in two for calibration: the pre-activation Y (which does not depend on the
 * output format) computed once, then requantized for each candidate output format. The arithmetic is
 * that of docs/formats/fixed-point.md "Convolution"; test/quant-calib.test.ts checks it against the
 * readable reference (src/engine/int/conv.ts) bit for bit. The other layer kinds are cheap and use
 * the reference functions directly.
 */
import type { ConvLayer, RouteLayer, ShortcutLayer } from '../model/ir.js';
import type { QConv } from '../qnet/types.js';
import type { ITensor } from '../engine/int/tensor.js';
import { leaky as leakyOf, LEAKY_MUL, LEAKY_SHIFT } from '../qnet/arith.js';
import { packInt16, retrainNative, type RetrainNative } from '../retrain/native.js';

const LEAKY_HALF = 2 ** (LEAKY_SHIFT - 1);
const LEAKY_DIV = 2 ** LEAKY_SHIFT;

/**
 * dst[p] += q·x[p'] over the output positions p whose input position p' (for kernel offset ky, kx)
 * lies inside the input; dst is one output plane, x the input tensor, base its channel's offset.
 */
function accumulateTap(
  dst: Float64Array, q: number, xd: Int32Array, base: number, ky: number, kx: number,
  H: number, W: number, Ho: number, Wo: number, stride: number, pad: number,
): void {
  const y0 = Math.max(0, Math.ceil((pad - ky) / stride));
  const y1 = Math.min(Ho - 1, Math.floor((H - 1 + pad - ky) / stride));
  const x0 = Math.max(0, Math.ceil((pad - kx) / stride));
  const x1 = Math.min(Wo - 1, Math.floor((W - 1 + pad - kx) / stride));
  if (stride === 1 && pad === 0 && ky === 0 && kx === 0 && H === Ho && W === Wo) {
    const n = Ho * Wo;
    for (let p = 0; p < n; p++) dst[p] += q * xd[base + p];
    return;
  }
  for (let y = y0; y <= y1; y++) {
    const row = base + (y * stride + ky - pad) * W + kx - pad;
    const d = y * Wo;
    if (stride === 1) {
      for (let xo = x0; xo <= x1; xo++) dst[d + xo] += q * xd[row + xo];
    } else {
      for (let xo = x0; xo <= x1; xo++) dst[d + xo] += q * xd[row + xo * stride];
    }
  }
}

/** A(Y): the activated pre-activation of every output value, CHW (within 32 bits by the accumulator proof). */
export function convActivated(layer: ConvLayer, qc: QConv, x: ITensor): Int32Array {
  const { filters: O, groups: G, size: k, stride, pad } = layer;
  const { h: Ho, w: Wo } = layer.out;
  const { h: H, w: W } = x;
  const Cg = x.c / G;
  const Og = O / G;
  const plane = Ho * Wo;
  const out = new Int32Array(O * plane);
  const acc = new Float64Array(plane);
  const sum = new Float64Array(plane);
  const xd = x.data;
  const leaky = layer.activation === 'leaky';
  const relu = layer.activation === 'relu';

  for (let g = 0; g < G; g++) {
    let needS = false;
    for (let o = g * Og; o < (g + 1) * Og; o++) if (qc.m[o] !== 0) needS = true;
    if (needS) {
      sum.fill(0);
      for (let c = 0; c < Cg; c++) {
        for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) accumulateTap(sum, 1, xd, (g * Cg + c) * H * W, ky, kx, H, W, Ho, Wo, stride, pad);
      }
    }
    for (let o = g * Og; o < (g + 1) * Og; o++) {
      acc.fill(0);
      const wBase = o * Cg * k * k;
      if (k === 1 && stride === 1 && pad === 0) {
        // Pointwise: the bulk of the work, inlined.
        for (let c = 0; c < Cg; c++) {
          const q = qc.q[wBase + c];
          if (q === 0) continue;
          const base = (g * Cg + c) * plane;
          for (let p = 0; p < plane; p++) acc[p] += q * xd[base + p];
        }
      } else for (let c = 0; c < Cg; c++) {
        const base = (g * Cg + c) * H * W;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const q = qc.q[wBase + (c * k + ky) * k + kx];
            if (q !== 0) accumulateTap(acc, q, xd, base, ky, kx, H, W, Ho, Wo, stride, pad);
          }
        }
      }
      const M = qc.m[o];
      const r = qc.fm[o] - qc.fw[o];
      const b = qc.bias[o];
      const half = r > 0 ? 2 ** (r - 1) : 0;
      const div = r > 0 ? 2 ** r : 1;
      const mul = r < 0 ? 2 ** -r : 1;
      for (let p = 0; p < plane; p++) {
        let t = 0;
        if (M !== 0) {
          const ms = M * sum[p];
          t = r > 0 ? Math.floor((ms + half) / div) : ms * mul;
        }
        let y = acc[p] + t + b;
        if (y < 0) {
          // leaky(y) = rshr(y·3277, 15), written out: the call is the loop's hot spot.
          if (leaky) y = Math.floor((y * LEAKY_MUL + LEAKY_HALF) / LEAKY_DIV);
          else if (relu) y = 0;
        }
        out[o * plane + p] = y;
      }
    }
  }
  return out;
}

/** The native kernels when they are built (they compute convActivated's integers exactly), else none. */
function nativeKernels(): RetrainNative | undefined {
  try {
    return retrainNative();
  } catch {
    return undefined;
  }
}

/**
 * convActivated of several inputs at once: on the retraining core's native integer conv (over
 * `threads` threads, the same integers) when it is built and the activation is linear, leaky or relu;
 * else one frame at a time in JS.
 */
export function convActivatedFrames(layer: ConvLayer, qc: QConv, xs: ITensor[], threads = 1): Int32Array[] {
  const act = layer.activation === 'linear' ? 0 : layer.activation === 'leaky' ? 1 : layer.activation === 'relu' ? 2 : -1;
  const nat = act >= 0 && xs.length > 0 ? nativeKernels() : undefined;
  if (!nat) return xs.map((x) => convActivated(layer, qc, x));
  const { c, h, w } = xs[0];
  const inSize = c * h * w;
  const outSize = layer.out.c * layer.out.h * layer.out.w;
  const x16 = packInt16(xs.map((x) => x.data), inSize);
  if (!x16) return xs.map((x) => convActivated(layer, qc, x));  // wider than 16 bits
  const y = new Int32Array(xs.length * outSize);
  const geom = Int32Array.of(xs.length, c, h, w, layer.filters, layer.size, layer.stride, layer.pad, layer.groups);
  const mShift = Int32Array.from(qc.fm, (fm, o) => fm - qc.fw[o]);
  nat.convActivatedInt(x16, Int16Array.from(qc.q), qc.m, mShift, qc.bias, act, geom, y, threads);
  return xs.map((_, k) => y.subarray(k * outSize, (k + 1) * outSize));
}

/** X_out = sat(rshr(A(Y), fw[o] + faIn − faOut)) for every output value, into `out`. */
export function requantize(a: Int32Array, qc: QConv, plane: number, faIn: number, faOut: number, bits: number, out: Int32Array): Int32Array {
  const hiV = 2 ** (bits - 1) - 1;
  const loV = -hiV - 1;
  const O = qc.fw.length;
  for (let o = 0; o < O; o++) {
    const r = qc.fw[o] + faIn - faOut;
    const half = r > 0 ? 2 ** (r - 1) : 0;
    const div = r > 0 ? 2 ** r : 1;
    const mul = r < 0 ? 2 ** -r : 1;
    for (let p = o * plane; p < (o + 1) * plane; p++) {
      const v = r > 0 ? Math.floor((a[p] + half) / div) : a[p] * mul;
      out[p] = v > hiV ? hiV : v < loV ? loV : v;
    }
  }
  return out;
}

/** Σ (x·2^-frac − f)² over a tensor: the error of an integer tensor against its float target. */
export function squaredError(x: Int32Array, frac: number, f: Float32Array): number {
  const s = 2 ** -frac;
  let e = 0;
  for (let i = 0; i < x.length; i++) {
    const d = x[i] * s - f[i];
    e += d * d;
  }
  return e;
}

/** sat(rshr(x, r)) of every element: a tensor brought to another format. */
export function convert(x: Int32Array, r: number, bits: number, out: Int32Array, offset = 0): void {
  const hiV = 2 ** (bits - 1) - 1;
  const loV = -hiV - 1;
  const half = r > 0 ? 2 ** (r - 1) : 0;
  const div = r > 0 ? 2 ** r : 1;
  const mul = r < 0 ? 2 ** -r : 1;
  for (let i = 0; i < x.length; i++) {
    const v = r > 0 ? Math.floor((x[i] + half) / div) : x[i] * mul;
    out[offset + i] = v > hiV ? hiV : v < loV ? loV : v;
  }
}

/** Shortcut: inputs converted to the output format, summed, saturated, activated (as the reference). */
export function shortcutInt(layer: ShortcutLayer, inputs: ITensor[], inFracs: number[], frac: number, bits: number): Int32Array {
  const n = inputs[0].data.length;
  const out = new Int32Array(n);
  const tmp = new Int32Array(n);
  const sum = new Float64Array(n);
  inputs.forEach((t, k) => {
    convert(t.data, inFracs[k] - frac, bits, tmp);
    for (let i = 0; i < n; i++) sum[i] += tmp[i];
  });
  const hiV = 2 ** (bits - 1) - 1;
  const loV = -hiV - 1;
  for (let i = 0; i < n; i++) {
    let v = sum[i] > hiV ? hiV : sum[i] < loV ? loV : sum[i];
    if (v < 0) {
      if (layer.activation === 'leaky') v = leakyOf(v);
      else if (layer.activation === 'relu') v = 0;
    }
    out[i] = v;
  }
  return out;
}

/** Route: each input's channel slice converted to the output format, concatenated. */
export function routeInt(layer: RouteLayer, inputs: ITensor[], inFracs: number[], frac: number, bits: number): Int32Array {
  const { c, h, w } = layer.out;
  const plane = h * w;
  const out = new Int32Array(c * plane);
  let oc = 0;
  inputs.forEach((t, k) => {
    const cs = t.c / layer.groups;
    const part = t.data.subarray(cs * layer.groupId * plane, cs * (layer.groupId + 1) * plane);
    convert(part, inFracs[k] - frac, bits, out, oc * plane);
    oc += cs;
  });
  return out;
}
