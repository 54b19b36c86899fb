/**
 * The retraining core's native convolution kernels (src/retrain/native, target zeroq_retrain of
 * binding.gyp, built by `npm install` / `npx node-gyp rebuild`). Batched NCHW; geom is
 * [N, C, H, W, O, k, stride, pad, groups].
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { repoRoot } from '../util/paths.js';
import { ZeroqError } from '../util/errors.js';

export interface RetrainNative {
  convForwardF32(x: Float32Array, w: Float32Array, b: Float32Array, geom: Int32Array, y: Float32Array, threads: number): void;
  convForwardInt(
    x: Int16Array, q: Int16Array, m: Int32Array, mShift: Int32Array, bias: Int32Array, outShift: Int32Array,
    leaky: number, bits: number, geom: Int32Array, y: Int16Array, code: Uint8Array, threads: number,
  ): void;
  /** A(Y) of every output value (before the output shift); act 0 linear, 1 leaky, 2 relu. */
  convActivatedInt(
    x: Int16Array, q: Int16Array, m: Int32Array, mShift: Int32Array, bias: Int32Array, act: number, geom: Int32Array, y: Int32Array, threads: number,
  ): void;
  /** H (G·d·d) = Σ x xᵀ (upper triangles) over every `every`-th output position of the N images. */
  convInputHessian(x: Int16Array, geom: Int32Array, every: number, H: Float64Array, threads: number): void;
  convBackwardData(dy: Float32Array, w: Float32Array, geom: Int32Array, dx: Float32Array, threads: number): void;
  convBackwardWeight(dy: Float32Array, x: Float32Array, geom: Int32Array, dw: Float32Array, db: Float32Array, threads: number): void;
}

let cached: RetrainNative | undefined;

export function retrainNative(): RetrainNative {
  if (cached) return cached;
  const file = path.join(repoRoot, 'build', 'Release', 'zeroq_retrain.node');
  if (!existsSync(file)) {
    throw new ZeroqError('retrain-native-missing', 'the retraining core is not built: run `npx node-gyp rebuild` (or `npm install`)', file);
  }
  cached = createRequire(import.meta.url)(file) as RetrainNative;
  return cached;
}

/**
 * Several integer tensors of `size` values each, one after the other in an Int16Array (the native
 * kernels' input); undefined when a value does not fit 16 bits.
 */
export function packInt16(tensors: ArrayLike<number>[], size: number): Int16Array | undefined {
  const out = new Int16Array(tensors.length * size);
  for (let k = 0; k < tensors.length; k++) {
    const d = tensors[k];
    for (let i = 0; i < size; i++) {
      const v = d[i];
      if (v !== (v << 16) >> 16) return undefined;
      out[k * size + i] = v;
    }
  }
  return out;
}
