import type { KeyObject } from 'node:crypto';
import type { Network } from '../model/ir.js';

/**
 * The seam between everything that runs a detector (daemon, eval, bench) and the engines
 * (float/onnxruntime, int/CPU integer path, fpga/serial bridge). Above it nothing knows how the
 * network is computed; below it nothing knows about cameras, MQTT or COCO.
 */

/** An engine kind registered in src/engine/registry.ts ('float', 'int', 'fpga', ...). */
export type EngineKind = string;

/** One raw head tensor: the input of a yolo layer, CHW, as real numbers. */
export interface HeadTensor {
  /** Index of the yolo layer this tensor feeds. */
  layer: number;
  c: number;
  h: number;
  w: number;
  data: Float32Array;
  /**
   * Integer engines: the integers behind `data` (data = raw * 2^-frac), for bit-exact
   * comparison between implementations.
   */
  raw?: Int32Array;
  frac?: number;
  /**
   * Set when the frame was computed elsewhere than the engine's own device: 'cpu' for a frame the
   * fpga engine ran on its CPU fallback.
   */
  computedOn?: 'cpu';
}

/**
 * One network input: interleaved RGB uint8 (HWC) already resized to the network's input size
 * (see detect/preprocess). Floats engines read it as P/255, integer engines as P with 8 fraction bits.
 */
export interface Frame {
  rgb: Uint8Array;
  width: number;
  height: number;
  /**
   * Optional: the same image before rounding to 8 bits, planar CHW in [0, 1], as darknet's float
   * resize leaves it (detect/preprocess fills it). The float engine uses it when present: the
   * small Yolo-Fastest models move by a few hundredths of probability on that rounding alone.
   */
  planar?: Float32Array;
}

/**
 * Engines that reach their hardware over a link (fpga): where the link is and what it went
 * through since the engine opened. Shown in the daemon's status and stats and in /metrics.
 */
export interface EngineLinkStatus {
  /** 'ready' (frames on the device), 'connecting', 'fallback' (on the CPU, reconnecting), 'unsupported' (on the CPU for good), 'closed'. */
  state: string;
  device: string;
  /** Why the link is not ready, when it is not. */
  reason?: string;
  bytesOut: number;
  bytesIn: number;
  retries: number;
  timeouts: number;
  crcErrors: number;
  framingErrors: number;
  resyncs: number;
  reconnects: number;
  uploads: number;
  /** Frames computed on the device / by the CPU fallback. */
  deviceFrames: number;
  fallbackFrames: number;
}

export interface Engine {
  readonly kind: EngineKind;
  readonly net: Network;
  /** Identifies the weights: the model name for float, the weight-set id for int/fpga. */
  readonly modelId: string;
  /** Runs the network. Calls are serialised by the caller; the engine may reuse its buffers. */
  infer(frame: Frame): Promise<HeadTensor[]>;
  close(): Promise<void>;
  /** Engines behind a link: its state and counters. */
  link?(): EngineLinkStatus;
  /** Engines behind a link: calls `listener` when the link's state changes; returns the unsubscribe. */
  onLinkChange?(listener: (s: EngineLinkStatus) => void): () => void;
}

export interface EngineOptions {
  /** Threads the engine may use (intra-op); default 1. */
  threads?: number;
  /** Float engine: darknet .weights file (default: the cfg path with a .weights extension). */
  weights?: string;
  /**
   * Float engine: let onnxruntime's intra-op workers spin after a run waiting for the next one
   * (onnxruntime's default, true). Spinning workers take a core from whatever runs next.
   */
  spin?: boolean;
  /**
   * Weight sets (.zqw): the trusted signing keys the set must be signed by; undefined: the process's
   * default trust list (src/qnet/keys.ts); null: no signature check.
   */
  trust?: readonly KeyObject[] | null;
}
