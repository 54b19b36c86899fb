/**
 * darknet files for tests: a .weights file of the exact size for any network, filled with seeded
 * random numbers that keep activations in a sane range through deep networks.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import path from 'node:path';
import { convWeightCount, type Network } from '../../src/model/ir.js';
import { weightsFileBytes } from '../../src/model/darknet-weights.js';
import { dataPath } from '../../src/util/paths.js';

/** The cfgs of the data folder, by network name. */
export const DATA_CFGS = {
  'yolov3': dataPath('models', 'cfg', 'yolov3.cfg'),
  'yolov3-tiny': dataPath('models', 'cfg', 'yolov3-tiny.cfg'),
  'yolov4': dataPath('models', 'cfg', 'yolov4.cfg'),
  'yolov4-tiny': dataPath('models', 'cfg', 'yolov4-tiny.cfg'),
  'yolo-fastest-1.1': dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'),
  'yolo-fastest-1.1-xl': dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1-xl.cfg'),
} as const;

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A valid .weights file for `net` (header 0.2.0, 64-bit `seen`): per conv layer biases in ±0.1,
 * batch norm scales in [0.5, 1], means in ±0.1, variances in [0.5, 1.5] (always positive), weights
 * uniform in ±sqrt(3/fan_in) so each layer roughly keeps the variance of its input.
 */
export function randomWeightsBuffer(net: Network, seed: number): Buffer {
  const rand = seededRandom(seed);
  const bytes = weightsFileBytes(net, 20);
  const buf = Buffer.alloc(bytes);
  buf.writeInt32LE(0, 0);
  buf.writeInt32LE(2, 4);
  buf.writeInt32LE(0, 8);
  buf.writeBigUInt64LE(BigInt(seed), 12);
  const view = new DataView(buf.buffer, buf.byteOffset, bytes);
  // Write through a float view of the buffer itself when the byte order allows (large models).
  const direct = endianness() === 'LE' && buf.byteOffset % 4 === 0 ? new Float32Array(buf.buffer, buf.byteOffset + 20, (bytes - 20) / 4) : undefined;
  let at = 0;
  const put = (n: number, lo: number, hi: number): void => {
    for (let i = 0; i < n; i++, at++) {
      const v = lo + (hi - lo) * rand();
      if (direct) direct[at] = v;
      else view.setFloat32(20 + 4 * at, v, true);
    }
  };
  for (const l of net.layers) {
    if (l.kind !== 'conv') continue;
    const n = convWeightCount(net, l);
    const limit = Math.sqrt(3 / (n / l.filters));
    put(l.filters, -0.1, 0.1);
    if (l.batchNormalize) {
      put(l.filters, 0.5, 1);
      put(l.filters, -0.1, 0.1);
      put(l.filters, 0.5, 1.5);
    }
    put(n, -limit, limit);
  }
  return buf;
}

/** A temporary folder removed by `cleanup` (pass it to t.teardown). */
export function tempDir(prefix = 'zeroq-darknet-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes randomWeightsBuffer(net, seed) to `dir` and returns the file's path. */
export function writeRandomWeights(net: Network, seed: number, dir: string): string {
  const file = path.join(dir, `${net.name}-${seed}.weights`);
  writeFileSync(file, randomWeightsBuffer(net, seed));
  return file;
}
