import type { QNet } from '../qnet/types.js';
import { ZeroqError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { Engine, EngineOptions, Frame, HeadTensor } from './engine.js';
import { IntReferenceEngine } from './int-reference.js';
import { describeLayer, loadNativeKernels, nativeConv, type NativeKernels, type NativeLayerInfo } from './int/native.js';
import { validateQNet } from '../qnet/validate.js';

/**
 * The CPU integer engine: the QNet planned once into the native kernels (src/kernels/), bit-exact
 * with the reference (int-reference.ts). Instruction set: the best the CPU has, or `isa` / the
 * environment variable ZEROQ_INT_ISA ("scalar", "avx2", "avx512-vnni", "avx512-vbmi", "neon-dotprod", "neon").
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
  /** Settles when the frame in flight does (undefined when idle). */
  private running?: Promise<void>;

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
    native.bind(this.handle, this.headIdx, this.raws, this.floats);
  }

  private checkFrame(frame: Frame): void {
    if (this.handle === undefined) throw new ZeroqError('INT_CLOSED', 'the engine is closed', this.modelId);
    if (this.running) throw new ZeroqError('INT_BUSY', 'a frame is already running: wait for it before the next one', this.modelId);
    const { w, h } = this.net.input;
    if (frame.width !== w || frame.height !== h || frame.rgb.length !== w * h * 3) {
      throw new ZeroqError('FRAME_SIZE', `frame ${frame.width}x${frame.height} does not match the network input ${w}x${h}`, this.net.name);
    }
  }

  /** Runs a frame on the calling thread; the returned tensors are reused by the next call. */
  inferSync(frame: Frame): HeadTensor[] {
    this.checkFrame(frame);
    this.native.run(this.handle, frame.rgb, this.headIdx, this.raws, this.floats);
    return this.heads;
  }

  /**
   * Runs a frame on a libuv worker thread, leaving the event loop free. The frame is copied into
   * the network before this returns (its buffer may be reused at once); the returned tensors are
   * reused by the next call. One frame at a time: a second call before the first settles is refused.
   */
  infer(frame: Frame): Promise<HeadTensor[]> {
    try {
      this.checkFrame(frame);
      const run = this.native.start(this.handle, frame.rgb).then(
        () => {
          this.running = undefined; // before the caller's continuation, which may send the next frame
          return this.heads;
        },
        (e: unknown) => {
          this.running = undefined;
          throw new ZeroqError('INT_RUN', (e as Error).message, this.modelId, { cause: e });
        },
      );
      this.running = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
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

  /** Per layer: the native code path, multiply-adds, and bytes of the tensors read and written. */
  layerInfo(): NativeLayerInfo {
    return this.native.layers(this.handle);
  }

  /**
   * Frees the native network and its threads; the engine refuses frames from now on. A frame in
   * flight completes first (its promise resolves normally): close resolves after it.
   */
  async close(): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) return;
    this.handle = undefined;
    // The addon also defers the free to the frame's completion; waiting here makes close() mean "freed".
    this.native.destroy(handle);
    if (this.running) await this.running;
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
