import type { UpsampleLayer } from '../../model/ir.js';
import { tensor, type ITensor } from './tensor.js';

/** Nearest-neighbour upsample, reference form. */
export function upsampleReference(layer: UpsampleLayer, input: ITensor): ITensor {
  const { c: C, h: Ho, w: Wo } = layer.out;
  const s = layer.stride;
  const out = tensor(C, Ho, Wo);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < Ho; y++) {
      for (let x = 0; x < Wo; x++) {
        out.data[(c * Ho + y) * Wo + x] = input.data[(c * input.h + Math.floor(y / s)) * input.w + Math.floor(x / s)];
      }
    }
  }
  return out;
}
