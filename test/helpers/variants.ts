/**
 * Weight sets derived from a real one for update tests: the same network with changed integers
 * (another id), broken heads, or another architecture. Written unsigned; tests sign them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseZqw, writeZqw } from '../../src/qnet/zqw.js';
import type { QNet } from '../../src/qnet/types.js';
import type { YoloLayer } from '../../src/model/ir.js';

export function variant(src: string, out: string, mutate: (q: QNet) => void, name?: string): void {
  const f = parseZqw(readFileSync(src), { trust: null });
  const q = f.qnet;
  mutate(q);
  if (name) q.net = { ...q.net, name };
  writeFileSync(out, writeZqw(q, { source: f.manifest.source as { model: string }, classes: f.manifest.classes, quantization: { ...(f.manifest.quantization as object) } }));
}

/** A slightly different set: one bias of the first conv moved by one. */
export function nudged(q: QNet, by = 1): void {
  const c = q.convs.find((x) => x !== undefined)!;
  c.bias[0] += by;
}

/** Every head's objectness channels pushed far towards "no object": the set runs, detections vanish. */
export function blindHeads(q: QNet): void {
  for (const h of q.net.heads) {
    const yolo = q.net.layers[h] as YoloLayer;
    const src = yolo.inputs[0];
    const c = q.convs[src]!;
    const per = 5 + yolo.classes;
    const anchors = c.bias.length / per;
    for (let a = 0; a < anchors; a++) {
      const o = a * per + 4;
      // -30 in real units of the accumulator (fraction fw + fa_in): sigmoid(-30) ~ 1e-13.
      const inp = q.net.layers[src].inputs[0];
      const frac = c.fw[o] + (inp === -1 ? 8 : q.formats[inp].frac);
      c.bias[o] = Math.max(-(2 ** 30), Math.round(-30 * 2 ** frac));
    }
  }
}
