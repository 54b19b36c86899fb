/** The payloads of interface version 1 (docs/mqtt.md), built from daemon state. */
import type { Detection } from '../../detect/types.js';
import { redact } from '../../util/redact.js';
import { round } from '../telemetry.js';
import { PAYLOAD_VERSION } from './topics.js';

export interface EngineInfo {
  kind: string;
  /** Network name, e.g. yolo-fastest-1.1. */
  model: string;
  /** Weight-set id (int) or model name (float). */
  weights: string;
  threads: number;
}

export interface FrameResult {
  seq: number;
  /** Capture time, ms since the epoch. */
  time: number;
  width: number;
  height: number;
  inferenceMs: number;
  /** Capture to the end of decoding. */
  latencyMs: number;
  detections: Detection[];
}

/** One detection as the detections payload (and `zeroq detect --json`) writes it: class, class_id, score, box. */
export function detectionFields(d: Detection, classId: number, digits = { score: 4, box: 1 }) {
  const b = (v: number) => round(v, digits.box);
  return { class: d.className, class_id: classId, score: round(d.score, digits.score), box: { x: b(d.box.x), y: b(d.box.y), w: b(d.box.w), h: b(d.box.h) } };
}

export function detectionsPayload(device: string, r: FrameResult, engine: EngineInfo, classIds: (d: Detection) => number): string {
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    device,
    frame: r.seq,
    time: new Date(r.time).toISOString(),
    ts: r.time,
    model: engine.model,
    weights: engine.weights,
    engine: engine.kind,
    width: r.width,
    height: r.height,
    inference_ms: round(r.inferenceMs, 2),
    latency_ms: round(r.latencyMs, 2),
    detections: r.detections.map((d) => detectionFields(d, classIds(d))),
  });
}

/** Objects per class: the classes always listed (0 when absent) plus every class seen. */
export function countClasses(dets: readonly Detection[], always: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of always) out[c] = 0;
  for (const d of dets) out[d.className] = (out[d.className] ?? 0) + 1;
  return out;
}

export function countsPayload(frame: number, time: number, counts: Record<string, number>): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return JSON.stringify({ v: PAYLOAD_VERSION, frame, time: new Date(time).toISOString(), total, counts });
}

export interface SourceStatus {
  /** The source as configured (source.url). */
  url: string;
  /** What the URL was resolved to (v4l2, stream, file, folder, lavfi). */
  kind?: string;
  state: string;
  restarts: number;
  frames: number;
  badFrames: number;
  lastError?: string;
  retryInMs?: number;
}

/** The retained status: the daemon's state from its source's, the source and the engine. */
export function statusPayload(s: { stopping: boolean; source: SourceStatus; engine: EngineInfo }): string {
  const src = s.source;
  const state = s.stopping ? 'stopping' : src.state === 'running' ? 'running' : src.state === 'starting' ? 'starting' : 'degraded';
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    time: new Date().toISOString(),
    state,
    source: {
      url: redact(src.url),
      kind: src.kind,
      state: src.state,
      restarts: src.restarts,
      frames: src.frames,
      bad_frames: src.badFrames,
      last_error: src.lastError === undefined ? null : redact(src.lastError),
      retry_in_ms: src.retryInMs ?? null,
    },
    engine: s.engine,
  });
}

export interface StatsInput {
  uptimeS: number;
  window: { cameraFps: number; processedFps: number; inferenceMs: unknown; latencyMs: unknown };
  counts: { captured: number; processed: number; skipped: number; badFrames: number; detections: number; sourceRestarts: number; mqttReconnects: number; mqttDropped: number };
  sourceState?: string;
  mqtt: { connected: boolean; buffered: number };
  engine: EngineInfo;
}

/** The periodic statistics. */
export function statsPayload(s: StatsInput): string {
  const c = s.counts;
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    time: new Date().toISOString(),
    uptime_s: s.uptimeS,
    camera_fps: s.window.cameraFps,
    processed_fps: s.window.processedFps,
    frames: { captured: c.captured, processed: c.processed, skipped: c.skipped, bad: c.badFrames },
    detections: c.detections,
    source: { state: s.sourceState, restarts: c.sourceRestarts },
    mqtt: { connected: s.mqtt.connected, reconnects: c.mqttReconnects, buffered: s.mqtt.buffered, dropped: c.mqttDropped },
    inference_ms: s.window.inferenceMs,
    latency_ms: s.window.latencyMs,
    engine: s.engine,
  });
}
