/**
 * darknet .weights files: header, then for each convolutional layer in cfg order its biases, batch
 * norm parameters (when batch_normalize=1) and weights, as little-endian float32. The size must
 * match the cfg exactly. Batch norm is folded into weight and bias the way darknet folds it.
 */
import { endianness } from 'node:os';
import { ZeroqError } from '../util/errors.js';
import { convWeightCount, type ConvLayer, type ConvParams, type Network } from './ir.js';

export interface WeightsHeader {
  major: number;
  minor: number;
  revision: number;
  /** Images seen in training. */
  seen: number;
  /** Header size in bytes: 20 with a 64-bit `seen`, 16 with a 32-bit one. */
  bytes: number;
}

/** One conv layer's numbers as stored, batch norm not folded (may be views of the file's bytes). */
export interface RawConvWeights {
  biases: Float32Array;
  /** Present when the layer has batch_normalize=1. */
  bn?: { scales: Float32Array; mean: Float32Array; variance: Float32Array };
  /** OIHW [filters][c/groups][size][size]. */
  weights: Float32Array;
}

export interface RawDarknetWeights {
  header: WeightsHeader;
  /** Indexed by layer; undefined for layers without parameters. */
  layers: (RawConvWeights | undefined)[];
}

/** darknet's batch-norm epsilon, added to the variance under the square root. */
export const BN_EPSILON = 0.00001;

/** darknet: a 64-bit `seen` from version 0.2 on (and not for the transposed-format versions >= 1000). */
export function hasLongSeen(major: number, minor: number): boolean {
  return major * 10 + minor >= 2 && major < 1000 && minor < 1000;
}

/** The versions darknet writes: 0.0 and 0.1 (32-bit `seen`), 0.2 (64-bit); anything else is another format. */
const KNOWN_VERSION = (major: number, minor: number): boolean => major === 0 && minor >= 0 && minor <= 2;

/** Number of float32 values one conv layer stores. */
export function convFloatCount(net: Network, layer: ConvLayer): number {
  return layer.filters * (layer.batchNormalize ? 4 : 1) + convWeightCount(net, layer);
}

/** Size of a .weights file for `net` (after a header of `headerBytes`, 20 for version 0.2). */
export function weightsFileBytes(net: Network, headerBytes = 20): number {
  let floats = 0;
  for (const l of net.layers) if (l.kind === 'conv') floats += convFloatCount(net, l);
  return headerBytes + 4 * floats;
}

/** A view of the file's bytes when byte order and alignment allow, else a copy. */
function floats(buf: Uint8Array, offset: number, n: number): Float32Array {
  const start = buf.byteOffset + offset;
  if (endianness() === 'LE') {
    return start % 4 === 0 ? new Float32Array(buf.buffer, start, n) : new Float32Array(buf.buffer.slice(start, start + 4 * n));
  }
  const view = new DataView(buf.buffer, start, 4 * n);
  return Float32Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true));
}

function layerName(l: ConvLayer): string {
  return `layer ${l.index} [convolutional]${l.source ? ` (${l.source})` : ''}`;
}

/**
 * Reads the numbers of a .weights file for `net`, unfolded. `file` names the file in errors.
 * Errors: a version darknet does not write, a file shorter than the cfg needs (naming the layer
 * where the data runs out) or longer (how many bytes are left over), a value that is infinite or
 * NaN anywhere, or a batch-norm variance that is negative.
 */
export function readDarknetWeights(net: Network, data: Uint8Array, file: string): RawDarknetWeights {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.byteLength < 12) {
    throw new ZeroqError('weights-truncated', `${data.byteLength} bytes: too short for a darknet weights header`, file);
  }
  const major = view.getInt32(0, true);
  const minor = view.getInt32(4, true);
  const revision = view.getInt32(8, true);
  if (!KNOWN_VERSION(major, minor)) {
    throw new ZeroqError('weights-version', `format version ${major}.${minor}.${revision} is not one darknet writes (0.0 to 0.2)`, file);
  }
  const long = hasLongSeen(major, minor);
  const headerBytes = long ? 20 : 16;
  if (data.byteLength < headerBytes) {
    throw new ZeroqError('weights-truncated', `${data.byteLength} bytes: too short for a version ${major}.${minor} header`, file);
  }
  const seen = long ? Number(view.getBigUint64(12, true)) : view.getUint32(12, true);
  const header: WeightsHeader = { major, minor, revision, seen, bytes: headerBytes };

  // Sizes first: a file for another cfg is reported as such, not by the first odd value in it.
  const need = weightsFileBytes(net, headerBytes);
  if (need > data.byteLength) {
    let at = headerBytes;
    for (const l of net.layers) {
      if (l.kind !== 'conv') continue;
      const bytes = 4 * convFloatCount(net, l);
      if (at + bytes > data.byteLength) {
        throw new ZeroqError(
          'weights-truncated',
          `the data ends inside ${layerName(l)}: it needs ${bytes} bytes from offset ${at}, ${data.byteLength - at} are left ` +
            `(the cfg needs ${need} bytes, the file has ${data.byteLength})`,
          file,
        );
      }
      at += bytes;
    }
  }
  if (need < data.byteLength) {
    throw new ZeroqError(
      'weights-extra',
      `${data.byteLength - need} bytes left over after the last convolutional layer ` +
        `(the cfg needs ${need} bytes, the file has ${data.byteLength}): the weights do not belong to this cfg`,
      file,
    );
  }

  let at = headerBytes;
  let layer: ConvLayer;
  const take = (n: number, what: string): Float32Array => {
    const a = floats(data, at, n);
    const bad = a.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new ZeroqError('weights-bad-value', `${layerName(layer)}: ${what} ${bad} is ${a[bad]} (at offset ${at + 4 * bad})`, file);
    at += 4 * n;
    return a;
  };
  const layers: RawDarknetWeights['layers'] = net.layers.map((l) => {
    if (l.kind !== 'conv') return undefined;
    layer = l;
    const biases = take(l.filters, 'bias');
    let bn: RawConvWeights['bn'];
    if (l.batchNormalize) {
      bn = { scales: take(l.filters, 'batch-norm scale'), mean: take(l.filters, 'batch-norm mean'), variance: take(l.filters, 'batch-norm variance') };
      const bad = bn.variance.findIndex((v) => !(v + BN_EPSILON > 0));
      if (bad >= 0) {
        throw new ZeroqError('weights-bad-value', `${layerName(l)}: batch-norm variance of filter ${bad} is ${bn.variance[bad]}`, file);
      }
    }
    const weights = take(convWeightCount(net, l), 'weight');
    return { biases, bn, weights };
  });
  return { header, layers };
}

/**
 * Folds batch norm into weight and bias: w' = w*s, b' = bias - mean*s with s = scale/sqrt(var+1e-5),
 * computed in double precision and rounded once to float32. Refuses (weights-bad-value) a layer
 * whose folded numbers leave float32's range.
 */
export function foldBatchNorm(raw: RawConvWeights, where?: string): ConvParams {
  if (!raw.bn) return { weight: Float32Array.from(raw.weights), bias: Float32Array.from(raw.biases) };
  const { scales, mean, variance } = raw.bn;
  const filters = raw.biases.length;
  const perFilter = raw.weights.length / filters;
  const weight = new Float32Array(raw.weights.length);
  const bias = new Float32Array(filters);
  for (let f = 0; f < filters; f++) {
    const s = scales[f] / Math.sqrt(variance[f] + BN_EPSILON);
    bias[f] = raw.biases[f] - mean[f] * s;
    for (let k = f * perFilter; k < (f + 1) * perFilter; k++) weight[k] = raw.weights[k] * s;
    // Finite numbers can still fold to infinity (a huge scale over a tiny variance).
    if (!Number.isFinite(bias[f]) || weight.subarray(f * perFilter, (f + 1) * perFilter).some((v) => !Number.isFinite(v))) {
      throw new ZeroqError('weights-bad-value', `filter ${f}: batch norm folds to infinity (scale ${scales[f]}, variance ${variance[f]})`, where);
    }
  }
  return { weight, bias };
}
