import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Layer } from '../../model/ir.js';
import type { QNet } from '../../qnet/types.js';
import { repoRoot } from '../../util/paths.js';

/**
 * The native integer kernels (src/kernels/, built by node-gyp into build/Release/zeroq_int.node)
 * and the layer descriptors they are planned from. Field order matches src/kernels/plan.h.
 */
export interface NativeKernels {
  isas(): string[];
  create(descs: Int32Array[], convs: (NativeConv | null)[], input: Int32Array, isa: string, threads: number): unknown;
  /** Runs a frame; fills outs (integers) and, when given, floats[i].data with outs[i] * 2^-floats[i].frac. */
  run(handle: unknown, rgb: Uint8Array, heads: Int32Array, outs: Int32Array[], floats?: { data: Float32Array; frac: number }[]): void;
  /** Where start() writes the heads of every frame (the handle keeps these arrays alive). */
  bind(handle: unknown, heads: Int32Array, outs: Int32Array[], floats?: { data: Float32Array; frac: number }[]): void;
  /**
   * Copies the frame into the network (rgb may be reused at once), computes it on a libuv worker and
   * resolves once the bound outputs hold its heads. One frame at a time per handle.
   */
  start(handle: unknown, rgb: Uint8Array): Promise<void>;
  read(handle: unknown, layer: number, out: Int32Array): void;
  info(handle: unknown): { isa: string; threads: number };
  profile(handle: unknown, on: boolean): Float64Array;
  /** Per layer: the code path it takes, its multiply-adds and the bytes of the tensors it reads and writes. */
  layers(handle: unknown): NativeLayerInfo;
  /** Frees the network now, or when the frame in flight completes; later calls throw. */
  destroy(handle: unknown): void;
  /**
   * darknet's resize of src (iw x ih RGB) to w x h, placed at (ox, oy) in the dstW x dstH RGB
   * destination (letterbox grey around it) and, when given, its planar floats (src/kernels/resize.cc).
   */
  resize?(
    src: Uint8Array, iw: number, ih: number, w: number, h: number,
    rgb: Uint8Array, dstW: number, dstH: number, ox: number, oy: number, planar: Float32Array | null,
  ): void;
}

export interface NativeLayerInfo {
  kernel: string[];
  macs: Float64Array;
  bytes: Float64Array;
}

export interface NativeConv {
  q: Int8Array;
  fw: Int32Array;
  m: Int32Array;
  fm: Int32Array;
  bias: Int32Array;
  lut?: Int32Array;
}

const KIND = { conv: 0, maxpool: 1, route: 2, shortcut: 3, upsample: 4, dropout: 5, yolo: 6 } as const;
const ACT = { linear: 0, leaky: 1, relu: 2, mish: 3, swish: 3, logistic: 3 } as const;
const F_INPUTS = 16;

let cached: { kernels?: NativeKernels; error?: string } | undefined;

/** Loads the addon once; returns the reason when it is missing or does not load. */
export function loadNativeKernels(): { kernels?: NativeKernels; error?: string } {
  if (cached) return cached;
  const file = path.join(repoRoot, 'build', 'Release', 'zeroq_int.node');
  if (!existsSync(file)) {
    cached = { error: `${file} is missing (build it with: npx node-gyp rebuild)` };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = { kernels: require(file) as NativeKernels };
  } catch (e) {
    cached = { error: `${file} does not load: ${(e as Error).message}` };
  }
  return cached;
}

/** One layer's descriptor (an Int32Array read by net.cc). */
export function describeLayer(qnet: QNet, layer: Layer): Int32Array {
  const f = qnet.formats[layer.index];
  const d = new Int32Array(F_INPUTS + layer.inputs.length);
  d[0] = KIND[layer.kind];
  d[1] = layer.out.c;
  d[2] = layer.out.h;
  d[3] = layer.out.w;
  d[4] = layer.kind === 'yolo' ? 8 : f.bits;
  d[5] = layer.kind === 'yolo' ? 0 : f.frac;
  switch (layer.kind) {
    case 'conv': {
      const q = qnet.convs[layer.index]!;
      d[6] = ACT[layer.activation];
      d[7] = layer.size;
      d[8] = layer.stride;
      d[9] = layer.pad;
      d[10] = layer.groups;
      d[12] = q.lutShift ?? 0;
      d[13] = q.lutOffset ?? 0;
      break;
    }
    case 'shortcut':
      d[6] = ACT[layer.activation];
      break;
    case 'maxpool':
      d[7] = layer.size;
      d[8] = layer.stride;
      d[9] = layer.padding;
      break;
    case 'route':
      d[10] = layer.groups;
      d[11] = layer.groupId;
      break;
    case 'upsample':
      d[8] = layer.stride;
      break;
    default:
      break;
  }
  d[15] = layer.inputs.length;
  layer.inputs.forEach((i, j) => (d[F_INPUTS + j] = i));
  return d;
}

export function nativeConv(qnet: QNet, index: number): NativeConv | null {
  const q = qnet.convs[index];
  if (!q) return null;
  return { q: q.q, fw: q.fw, m: q.m, fm: q.fm, bias: q.bias, lut: q.lut };
}
