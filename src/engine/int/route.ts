import type { RouteLayer } from '../../model/ir.js';
import type { TensorFormat } from '../../qnet/types.js';
import { rshr, sat } from '../../qnet/arith.js';
import { tensor, type ITensor } from './tensor.js';

/** Route (concat), reference form: each input's channel slice converted to the output format. */
export function routeReference(layer: RouteLayer, inputs: ITensor[], inFmts: TensorFormat[], outFmt: TensorFormat): ITensor {
  const { c: C, h, w } = layer.out;
  const out = tensor(C, h, w);
  const plane = h * w;
  let oc = 0;
  inputs.forEach((t, n) => {
    const cs = t.c / layer.groups;
    const c0 = cs * layer.groupId;
    const r = inFmts[n].frac - outFmt.frac;
    for (let c = 0; c < cs; c++, oc++) {
      for (let i = 0; i < plane; i++) {
        out.data[oc * plane + i] = sat(rshr(t.data[(c0 + c) * plane + i], r), outFmt.bits);
      }
    }
  });
  return out;
}
