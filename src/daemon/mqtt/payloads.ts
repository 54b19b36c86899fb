/** The payloads of interface version 1 (docs/mqtt.md), built from daemon state. */
import type { Detection } from '../../detect/types.js';
import type { EngineLinkStatus } from '../../engine/engine.js';
import type { TrackEvent } from '../track/tracker.js';
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
  /** Engines behind a link (fpga): its state and counters. */
  link?: EngineLinkStatus;
}

/** The engine as the status (link state only) and the stats (link counters too) show it. */
function engineJson(e: EngineInfo, counters: boolean): Record<string, unknown> {
  const { link, ...rest } = e;
  if (!link) return rest;
  const state = { state: link.state, device: link.device, reason: link.reason === undefined ? null : redact(link.reason) };
  if (!counters) return { ...rest, link: state };
  return {
    ...rest,
    link: {
      ...state,
      device_frames: link.deviceFrames,
      fallback_frames: link.fallbackFrames,
      bytes_out: link.bytesOut,
      bytes_in: link.bytesIn,
      retries: link.retries,
      timeouts: link.timeouts,
      crc_errors: link.crcErrors,
      framing_errors: link.framingErrors,
      resyncs: link.resyncs,
      reconnects: link.reconnects,
      uploads: link.uploads,
    },
  };
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
  /** Set when the engine ran this frame elsewhere than its device ('cpu': the fpga engine's fallback). */
  computedOn?: 'cpu';
}

const boxJson = (b: Detection['box']) => ({ x: round(b.x, 1), y: round(b.y, 1), w: round(b.w, 1), h: round(b.h, 1) });

/** One detection as the detections payload (and `zeroq detect --json`) writes it: class, class_id, score, box. */
export function detectionFields(d: Detection, classId: number, digits = { score: 4, box: 1 }) {
  const b = (v: number) => round(v, digits.box);
  return { class: d.className, class_id: classId, score: round(d.score, digits.score), box: { x: b(d.box.x), y: b(d.box.y), w: b(d.box.w), h: b(d.box.h) } };
}

export function detectionsPayload(device: string, camera: string, r: FrameResult, engine: EngineInfo, classIds: (d: Detection) => number): string {
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    device,
    camera,
    frame: r.seq,
    time: new Date(r.time).toISOString(),
    ts: r.time,
    model: engine.model,
    weights: engine.weights,
    engine: engine.kind,
    ...(r.computedOn ? { computed_on: r.computedOn } : {}),
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

/** Tracked objects per class (and per zone and class) of one camera. */
export function countsPayload(camera: string, frame: number | null, time: number, counts: Record<string, number>, zones: Record<string, Record<string, number>>): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return JSON.stringify({ v: PAYLOAD_VERSION, camera, frame, time: new Date(time).toISOString(), total, counts, zones });
}

/** One object event (new, update, end). */
export function eventPayload(device: string, camera: string, e: TrackEvent, snapshotUrl: string | null): string {
  const o = e.object;
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    type: e.type,
    device,
    camera,
    id: o.id,
    label: o.label,
    class_id: o.classId,
    score: round(o.score, 4),
    top_score: round(o.topScore, 4),
    box: boxJson(o.box),
    first_box: boxJson(o.firstBox),
    top_box: boxJson(o.topBox),
    start_time: new Date(o.start).toISOString(),
    end_time: e.type === 'end' ? new Date(o.lastSeen).toISOString() : null,
    zones: o.enteredZones,
    current_zones: o.zones,
    snapshot_url: snapshotUrl,
  });
}

/** Occupancy per class: ON while an object of the class is tracked, OFF a delay after. */
export function occupancyPayload(camera: string, occupancy: Record<string, 'ON' | 'OFF'>): string {
  return JSON.stringify({ v: PAYLOAD_VERSION, camera, time: new Date().toISOString(), occupancy });
}

export interface SourceStatus {
  /** The source as configured (its url). */
  url: string;
  /** What the URL was resolved to (v4l2, stream, file, folder, lavfi). */
  kind?: string;
  state: string;
  restarts: number;
  frames: number;
  badFrames: number;
  lastError?: string;
  retryInMs?: number;
  /** Detection switched on (the camera's control). */
  detecting: boolean;
}

function sourceJson(src: SourceStatus) {
  return {
    url: redact(src.url),
    kind: src.kind,
    state: src.state,
    restarts: src.restarts,
    frames: src.frames,
    bad_frames: src.badFrames,
    last_error: src.lastError === undefined ? null : redact(src.lastError),
    retry_in_ms: src.retryInMs ?? null,
    detecting: src.detecting,
  };
}

/**
 * The retained status: the daemon's state from its cameras' (running when all run, starting while
 * one starts and none failed, else degraded), each camera's source (`source`: the first camera's),
 * and the engine.
 */
export function statusPayload(s: { stopping: boolean; cameras: Record<string, SourceStatus>; engine: EngineInfo }): string {
  const cams = Object.values(s.cameras);
  const states = cams.map((c) => c.state);
  const state = s.stopping
    ? 'stopping'
    : states.every((x) => x === 'running')
      ? 'running'
      : states.every((x) => x === 'running' || x === 'starting')
        ? 'starting'
        : 'degraded';
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    time: new Date().toISOString(),
    state,
    source: sourceJson(cams[0]),
    cameras: Object.fromEntries(Object.entries(s.cameras).map(([n, c]) => [n, sourceJson(c)])),
    engine: engineJson(s.engine, false),
  });
}

export interface CameraStats {
  state: string;
  cameraFps: number;
  processedFps: number;
  counts: { captured: number; processed: number; skipped: number; bad: number; restarts: number; detections: number };
  objects: Record<string, number>;
}

export interface StatsInput {
  uptimeS: number;
  window: { cameraFps: number; processedFps: number; inferenceMs: unknown; latencyMs: unknown; publishMs?: unknown };
  counts: { captured: number; processed: number; skipped: number; badFrames: number; detections: number; sourceRestarts: number; mqttReconnects: number; mqttDropped: number };
  sourceState?: string;
  mqtt: { connected: boolean; buffered: number };
  engine: EngineInfo;
  cameras: Record<string, CameraStats>;
}

/** The periodic statistics: the device's totals and each camera's. */
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
    publish_ms: s.window.publishMs ?? null,
    engine: engineJson(s.engine, true),
    cameras: Object.fromEntries(
      Object.entries(s.cameras).map(([n, x]) => [
        n,
        {
          state: x.state,
          camera_fps: x.cameraFps,
          processed_fps: x.processedFps,
          frames: { captured: x.counts.captured, processed: x.counts.processed, skipped: x.counts.skipped, bad: x.counts.bad },
          restarts: x.counts.restarts,
          detections: x.counts.detections,
          objects: x.objects,
        },
      ]),
    ),
  });
}
