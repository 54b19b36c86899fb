import type { ShortcutLayer } from '../../model/ir.js';
import type { TensorFormat } from '../../qnet/types.js';
import { leaky, rshr, sat } from '../../qnet/arith.js';
import { tensor, type ITensor } from './tensor.js';

/** Shortcut, reference form: inputs converted to the output format, summed, saturated, activated. */
export function shortcutReference(layer: ShortcutLayer, inputs: ITensor[], inFmts: TensorFormat[], outFmt: TensorFormat): ITensor {
  const { c, h, w } = layer.out;
  const out = tensor(c, h, w);
  for (let i = 0; i < out.data.length; i++) {
    let v = 0;
    inputs.forEach((t, n) => {
      v += sat(rshr(t.data[i], inFmts[n].frac - outFmt.frac), outFmt.bits);
    });
    v = sat(v, outFmt.bits);
    out.data[i] = layer.activation === 'leaky' ? leaky(v) : layer.activation === 'relu' ? Math.max(v, 0) : v;
  }
  return out;
}
