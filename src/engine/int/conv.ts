import type { ConvLayer } from '../../model/ir.js';
import type { QConv, TensorFormat } from '../../qnet/types.js';
import { leaky, rshr, sat } from '../../qnet/arith.js';
import { tensor, type ITensor } from './tensor.js';

/**
 * Convolution, reference form: docs/formats/fixed-point.md "Convolution", loop for loop.
 * `input` holds the frame's uint8 values when the layer reads the network input.
 */
export function convReference(layer: ConvLayer, q: QConv, input: ITensor, inFmt: TensorFormat, outFmt: TensorFormat): ITensor {
  const { filters: O, groups: G, size: k, stride, pad } = layer;
  const { h: Ho, w: Wo } = layer.out;
  const Cg = input.c / G;
  const Og = O / G;
  const out = tensor(O, Ho, Wo);
  for (let o = 0; o < O; o++) {
    const g = Math.floor(o / Og);
    const fw = q.fw[o];
    const shift = fw + inFmt.frac - outFmt.frac;
    for (let y = 0; y < Ho; y++) {
      for (let x = 0; x < Wo; x++) {
        let acc = 0;
        let s = 0;
        for (let c = 0; c < Cg; c++) {
          const ic = g * Cg + c;
          for (let ky = 0; ky < k; ky++) {
            const iy = y * stride + ky - pad;
            if (iy < 0 || iy >= input.h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = x * stride + kx - pad;
              if (ix < 0 || ix >= input.w) continue;
              const v = input.data[(ic * input.h + iy) * input.w + ix];
              acc += q.q[((o * Cg + c) * k + ky) * k + kx] * v;
              s += v;
            }
          }
        }
        const Y = acc + rshr(q.m[o] * s, q.fm[o] - fw) + q.bias[o];
        out.data[(o * Ho + y) * Wo + x] = activate(layer, q, Y, shift, fw + inFmt.frac, outFmt.bits);
      }
    }
  }
  return out;
}

/** Activation then requantization of one pre-activation Y (fraction bits yFrac). */
function activate(layer: ConvLayer, q: QConv, Y: number, shift: number, yFrac: number, bits: number): number {
  switch (layer.activation) {
    case 'linear':
      return sat(rshr(Y, shift), bits);
    case 'relu':
      return sat(rshr(Math.max(Y, 0), shift), bits);
    case 'leaky':
      return sat(rshr(leaky(Y), shift), bits);
    default: {
      // mish, swish, logistic: the table replaces activation and requantization.
      const lut = q.lut!;
      const idx = rshr(Y, yFrac - q.lutShift!) + q.lutOffset!;
      return lut[Math.min(Math.max(idx, 0), lut.length - 1)];
    }
  }
}
