/**
 * The scheduler: takes the next frame from the queue (the newest frame of each camera, the cameras
 * in turn), runs the engine, decodes the heads and hands the result on. One frame at a time; what
 * arrives meanwhile replaces a camera's waiting frame (counted as skipped). The engine and decode
 * settings can be swapped between frames.
 */
import type { Logger } from 'pino';
import { decodeHeads } from '../detect/decode.js';
import { resizeForNet } from '../detect/preprocess.js';
import type { DecodeOptions, Detection } from '../detect/types.js';
import type { Engine, Frame } from '../engine/engine.js';
import { ZeroqError } from '../util/errors.js';
import type { CapturedFrame } from './capture/supervisor.js';

export interface DetectSettings {
  decode: DecodeOptions;
  /** Keep only these class names (empty: all). */
  classes: ReadonlySet<string>;
}

export interface ProcessedFrame {
  frame: CapturedFrame;
  detections: Detection[];
  inferenceMs: number;
  /** Capture to the end of decoding, ms. */
  latencyMs: number;
  engine: Engine;
  /** Set when the engine computed this frame elsewhere than its device (HeadTensor.computedOn). */
  computedOn?: 'cpu';
}

export type LoopEnd = 'ended' | 'max-frames' | 'stopped';

/** Where frames come from: the newest frame of the next camera; undefined once all ended. */
export interface FrameQueue {
  take(): Promise<CapturedFrame | undefined>;
}

/** Engine errors in a row after which the daemon gives up (and systemd restarts it). */
const MAX_ENGINE_ERRORS = 10;

export class FrameLoop {
  private engine?: Engine;
  private settings: DetectSettings = { decode: { threshold: 0.25, nms: 0.45, maxDetections: 100, nmsSpace: 'relative' }, classes: new Set() };
  private stopping = false;
  private busySince = 0;
  private engineErrors = 0;
  private pendingSwap?: { next: Engine; resolve: (prev: Engine | undefined) => void };
  processed = 0;
  /** Frames whose inference or decoding failed, since the start. */
  failed = 0;
  maxFrames = 0;
  /** Score thresholds of cameras that have their own (Home Assistant number). */
  readonly cameraThreshold = new Map<string, number>();

  /** The engine (setEngine) and the settings (setSettings) are given before run(). */
  constructor(
    private readonly onFrame: (r: ProcessedFrame) => void,
    private readonly log: Logger,
    private readonly onFailure?: (err: Error) => void,
  ) {}

  get currentEngine(): Engine {
    if (!this.engine) throw new Error('FrameLoop: no engine yet');
    return this.engine;
  }

  /** The first engine. */
  setEngine(e: Engine): void {
    this.engine = e;
  }

  /** ms the current frame has been in the engine (0 when idle). */
  busyMs(): number {
    return this.busySince === 0 ? 0 : performance.now() - this.busySince;
  }

  setSettings(s: DetectSettings): void {
    this.settings = s;
  }

  /**
   * Uses `next` from the next frame on; resolves with the previous engine once no frame uses it. A
   * frame in progress finishes on (and is reported with) the engine it started on: the engine is
   * replaced between two frames.
   */
  async swapEngine(next: Engine): Promise<Engine | undefined> {
    if (this.busySince === 0) {
      const prev = this.engine;
      this.engine = next;
      return prev;
    }
    // An earlier swap still waiting for the frame to end is superseded: its engine was never used.
    this.pendingSwap?.resolve(this.pendingSwap.next);
    return new Promise((resolve) => (this.pendingSwap = { next, resolve }));
  }

  private applyPendingSwap(): void {
    const p = this.pendingSwap;
    if (!p) return;
    this.pendingSwap = undefined;
    const prev = this.engine;
    this.engine = p.next;
    p.resolve(prev);
  }

  /** Asks the loop to return after the frame in progress. */
  stop(): void {
    this.stopping = true;
  }

  async run(queue: FrameQueue): Promise<LoopEnd> {
    for (;;) {
      if (this.stopping) return 'stopped';
      const f = await queue.take();
      if (this.stopping) return 'stopped';
      if (!f) return 'ended';
      this.busySince = performance.now();
      try {
        const r = await this.process(f);
        this.engineErrors = 0;
        this.onFrame(r);
      } catch (err) {
        this.engineErrors++;
        this.failed++;
        this.onFailure?.(err as Error);
        this.log.error({ err: (err as Error).message, frame: f.seq, inARow: this.engineErrors }, 'frame failed');
        if (this.engineErrors >= MAX_ENGINE_ERRORS) {
          throw new ZeroqError('engine-failed', `${this.engineErrors} frames in a row failed; last: ${(err as Error).message}`, this.engine?.modelId, { cause: err });
        }
      } finally {
        this.busySince = 0;
        this.applyPendingSwap();
      }
      this.processed++;
      if (this.maxFrames > 0 && this.processed >= this.maxFrames) return 'max-frames';
    }
  }

  /**
   * Makes the network input of a frame for the current engine. Called ahead of time for sources
   * that are not live (every frame is processed), so that the resize of the next frame runs on
   * this thread while the engine computes the current one on its own.
   */
  prepare(f: CapturedFrame): void {
    f.input = this.inputFor(f, this.currentEngine);
  }

  private inputFor(f: CapturedFrame, engine: Engine): Frame {
    const net = engine.net;
    const resized = !(f.width === net.input.w && f.height === net.input.h && !net.letterbox);
    // Only the float engine reads the float image of a resized frame (integer engines: 8-bit pixels).
    const keepFloat = engine.kind === 'float';
    const fits = f.input && f.input.width === net.input.w && f.input.height === net.input.h;
    if (fits && !(resized && keepFloat && !f.input!.planar)) return f.input!;
    return resized ? resizeForNet({ data: f.rgb, width: f.width, height: f.height }, net, { keepFloat }) : { rgb: f.rgb, width: f.width, height: f.height };
  }

  private async process(f: CapturedFrame): Promise<ProcessedFrame> {
    const engine = this.currentEngine;
    const net = engine.net;
    const { classes } = this.settings;
    const own = f.camera === undefined ? undefined : this.cameraThreshold.get(f.camera);
    const decode = own === undefined ? this.settings.decode : { ...this.settings.decode, threshold: own };
    const input = this.inputFor(f, engine);
    const t0 = performance.now();
    const heads = await engine.infer(input);
    const inferenceMs = performance.now() - t0;
    let detections = decodeHeads(heads, net, f.srcWidth, f.srcHeight, decode);
    if (classes.size > 0) detections = detections.filter((d) => classes.has(d.className));
    const computedOn = heads[0]?.computedOn;
    return { frame: f, detections, inferenceMs, latencyMs: Date.now() - f.time, engine, ...(computedOn ? { computedOn } : {}) };
  }
}
