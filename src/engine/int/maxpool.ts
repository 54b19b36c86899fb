import type { MaxPoolLayer } from '../../model/ir.js';
import { tensor, type ITensor } from './tensor.js';

/** darknet max-pool, reference form: positions outside the input are skipped. */
export function maxpoolReference(layer: MaxPoolLayer, input: ITensor): ITensor {
  const { size, stride, padding } = layer;
  const { c: C, h: Ho, w: Wo } = layer.out;
  const off = Math.floor(padding / 2);
  const out = tensor(C, Ho, Wo);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < Ho; y++) {
      for (let x = 0; x < Wo; x++) {
        let m = -Infinity;
        for (let ky = 0; ky < size; ky++) {
          const iy = y * stride - off + ky;
          if (iy < 0 || iy >= input.h) continue;
          for (let kx = 0; kx < size; kx++) {
            const ix = x * stride - off + kx;
            if (ix < 0 || ix >= input.w) continue;
            m = Math.max(m, input.data[(c * input.h + iy) * input.w + ix]);
          }
        }
        out.data[(c * Ho + y) * Wo + x] = m;
      }
    }
  }
  return out;
}
