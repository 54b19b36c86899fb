import type { QNet } from '../quant/qnet.js';
import { ZeroqError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { Engine, EngineOptions, Frame, HeadTensor } from './engine.js';
import { IntReferenceEngine } from './int-reference.js';
import { describeLayer, loadNativeKernels, nativeConv, type NativeKernels } from './int/native.js';
import { validateQNet } from './int/validate.js';

/**
 * The CPU integer engine: the QNet planned once into the native kernels (src/kernels/), bit-exact
 * with the reference (int-reference.ts). Instruction set: the best the CPU has, or `isa` / the
 * environment variable ZEROQ_INT_ISA ("scalar", "avx2", "avx512-vnni", "avx512-vbmi", "neon-dotprod").
 */
export interface IntEngineOptions extends EngineOptions {
  isa?: string;
  /** Allow the slow JS reference when the native kernels are missing (default true, with a warning). */
  fallback?: boolean;
  modelId?: string;
}

/** Instruction sets the native kernels can use here, best first (empty without the addon). */
export function availableIsas(): string[] {
  return loadNativeKernels().kernels?.isas() ?? [];
}

export class IntEngine implements Engine {
  readonly kind = 'int' as const;
  readonly net;
  readonly modelId: string;
  readonly isa: string;
  readonly threads: number;
  private handle: unknown;
  private readonly headIdx: Int32Array;
  private readonly raws: Int32Array[];
  private readonly floats: { data: Float32Array; frac: number }[];
  private readonly heads: HeadTensor[];

  constructor(private readonly qnet: QNet, private readonly native: NativeKernels, opts: IntEngineOptions = {}) {
    validateQNet(qnet);
    this.net = qnet.net;
    this.modelId = opts.modelId ?? qnet.net.name;
    const { c, h, w } = qnet.net.input;
    const isa = opts.isa ?? process.env.ZEROQ_INT_ISA ?? 'auto';
    try {
      this.handle = native.create(
        qnet.net.layers.map((l) => describeLayer(qnet, l)),
        qnet.net.layers.map((l) => nativeConv(qnet, l.index)),
        Int32Array.of(c, h, w),
        isa,
        Math.max(1, opts.threads ?? 1),
      );
    } catch (e) {
      throw new ZeroqError('INT_PLAN', (e as Error).message, qnet.net.name, { cause: e });
    }
    const info = native.info(this.handle);
    this.isa = info.isa;
    this.threads = info.threads;
    this.headIdx = Int32Array.from(qnet.net.heads.map((hd) => qnet.net.layers[hd].inputs[0]));
    this.heads = qnet.net.heads.map((hd) => {
      const src = qnet.net.layers[hd].inputs[0];
      const s = qnet.net.layers[src].out;
      const n = s.c * s.h * s.w;
      return { layer: hd, c: s.c, h: s.h, w: s.w, raw: new Int32Array(n), data: new Float32Array(n), frac: qnet.formats[src].frac };
    });
    this.raws = this.heads.map((hd) => hd.raw!);
    this.floats = this.heads.map((hd) => ({ data: hd.data, frac: hd.frac! }));
  }

  /** Runs a frame synchronously; the returned tensors are reused by the next call. */
  inferSync(frame: Frame): HeadTensor[] {
    if (this.handle === undefined) throw new ZeroqError('INT_CLOSED', 'the engine is closed', this.modelId);
    const { w, h } = this.net.input;
    if (frame.width !== w || frame.height !== h || frame.rgb.length !== w * h * 3) {
      throw new ZeroqError('FRAME_SIZE', `frame ${frame.width}x${frame.height} does not match the network input ${w}x${h}`, this.net.name);
    }
    this.native.run(this.handle, frame.rgb, this.headIdx, this.raws, this.floats);
    return this.heads;
  }

  infer(frame: Frame): Promise<HeadTensor[]> {
    try {
      return Promise.resolve(this.inferSync(frame));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** A layer's output integers (CHW) after the last frame, for tests and debugging. */
  layerOutput(index: number): Int32Array {
    const s = this.net.layers[index].out;
    const out = new Int32Array(s.c * s.h * s.w);
    this.native.read(this.handle, index, out);
    return out;
  }

  /** Starts (on) or stops per-layer timing; returns the nanoseconds accumulated so far per layer. */
  profile(on: boolean): Float64Array {
    return this.native.profile(this.handle, on);
  }

  /** Frees the native network and its threads now; the engine cannot run afterwards. */
  close(): Promise<void> {
    if (this.handle !== undefined) this.native.destroy(this.handle);
    this.handle = undefined;
    return Promise.resolve();
  }
}

/**
 * Opens the integer engine on the native kernels; without them, warns and falls back to the JS
 * reference (correct but slow) unless `fallback` is false.
 */
export function openIntEngine(qnet: QNet, opts: IntEngineOptions = {}): Engine {
  const { kernels, error } = loadNativeKernels();
  if (kernels) return new IntEngine(qnet, kernels, opts);
  if (opts.fallback === false) throw new ZeroqError('INT_NATIVE', `native integer kernels unavailable: ${error}`);
  log.warn({ reason: error }, 'native integer kernels unavailable; using the JS reference (slow)');
  return new IntReferenceEngine(qnet, opts.modelId);
}
