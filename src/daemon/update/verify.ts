/**
 * Whether a downloaded weight set may replace the running one: intact and signed by a trusted key
 * (the .zqw reader), the set the server announced, and made for the running network — same
 * architecture hash, input size and classes — with self-test frames when they are required.
 */
import type { KeyObject } from 'node:crypto';
import type { Network, YoloLayer } from '../../model/ir.js';
import { architectureHash } from '../../qnet/arch.js';
import { parseZqw, type ZqwFile } from '../../qnet/zqw.js';
import { goldenFramesOf, type GoldenFrame } from '../../update/golden.js';
import { ZeroqError } from '../../util/errors.js';
import type { Descriptor } from './client.js';

export interface Checked {
  file: ZqwFile;
  golden: GoldenFrame[];
}

const classesOf = (net: Network): number[] => net.heads.map((h) => (net.layers[h] as YoloLayer).classes);

export function verifyCandidate(buf: Uint8Array, d: Descriptor, o: { trust: readonly KeyObject[]; running: Network; requireSelftest: boolean }): Checked {
  const where = `version ${d.version} (${d.sha256.slice(0, 12)})`;
  const file = parseZqw(buf, { trust: o.trust, name: where });
  const m = file.manifest;
  if (m.id !== d.id) throw new ZeroqError('update-mismatch', `the file is weight set ${m.id}, the server announced ${d.id}`, where);
  const net = m.network as Network;
  const r = o.running;
  if (net.input.w !== r.input.w || net.input.h !== r.input.h || net.input.c !== r.input.c) {
    throw new ZeroqError('update-fit', `input ${net.input.w}x${net.input.h}x${net.input.c}; the running network takes ${r.input.w}x${r.input.h}x${r.input.c}`, where);
  }
  if (classesOf(net).join() !== classesOf(r).join()) {
    throw new ZeroqError('update-fit', `${classesOf(net).join('/')} classes per head; the running network has ${classesOf(r).join('/')}`, where);
  }
  const arch = architectureHash(r);
  if (m.architecture !== arch) throw new ZeroqError('update-fit', `another architecture (${m.architecture.slice(0, 19)}…, running ${arch.slice(0, 19)}…)`, where);
  const golden = goldenFramesOf(m as Record<string, unknown>, where);
  if (golden.length === 0 && o.requireSelftest) throw new ZeroqError('update-selftest', 'the set carries no self-test frames (zeroq sign --golden)', where);
  return { file, golden };
}
