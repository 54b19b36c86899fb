/**
 * The daemon's counters, kept twice from the same events: as plain numbers for the stats topic and
 * /healthz, and as Prometheus metrics (prom-client, a registry of our own) for /metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineLinkStatus } from '../engine/engine.js';

type LinkCounter = 'bytesOut' | 'bytesIn' | 'retries' | 'timeouts' | 'crcErrors' | 'framingErrors' | 'resyncs' | 'reconnects' | 'uploads' | 'deviceFrames' | 'fallbackFrames';
const LINK_COUNTERS: LinkCounter[] = ['bytesOut', 'bytesIn', 'retries', 'timeouts', 'crcErrors', 'framingErrors', 'resyncs', 'reconnects', 'uploads', 'deviceFrames', 'fallbackFrames'];

/** Latency samples kept for the percentiles of the stats topic. */
const WINDOW = 512;

class Window {
  private readonly buf = new Float64Array(WINDOW);
  private n = 0;
  add(v: number): void {
    this.buf[this.n % WINDOW] = v;
    this.n++;
  }
  percentiles(): { p50: number; p90: number; p99: number } | null {
    const k = Math.min(this.n, WINDOW);
    if (k === 0) return null;
    const s = Array.from(this.buf.subarray(0, k)).sort((a, b) => a - b);
    const at = (p: number) => round(s[Math.min(k - 1, Math.ceil((p / 100) * k) - 1)], 2);
    return { p50: at(50), p90: at(90), p99: at(99) };
  }
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export interface Counts {
  captured: number;
  processed: number;
  skipped: number;
  badFrames: number;
  sourceRestarts: number;
  detections: number;
  mqttReconnects: number;
  mqttDropped: number;
}

export class Telemetry {
  readonly registry = new Registry();
  readonly counts: Counts = {
    captured: 0,
    processed: 0,
    skipped: 0,
    badFrames: 0,
    sourceRestarts: 0,
    detections: 0,
    mqttReconnects: 0,
    mqttDropped: 0,
  };
  readonly startedAt = Date.now();
  /** ms since the epoch of the last processed frame (0: none yet). */
  lastProcessedAt = 0;
  private readonly inference = new Window();
  private readonly latency = new Window();
  private readonly publish = new Window();
  private last = { at: performance.now(), captured: 0, processed: 0 };

  private readonly m;
  /** The current engine's link (undefined: none), and what the engines before it counted. */
  private linkOf?: () => EngineLinkStatus;
  private readonly linkBase = Object.fromEntries(LINK_COUNTERS.map((k) => [k, 0])) as Record<LinkCounter, number>;

  constructor() {
    // Link counters are read from the engine when scraped, added to those of the engines before it.
    const link = (k: LinkCounter): number | undefined => {
      const l = this.linkOf?.();
      return l ? this.linkBase[k] + l[k] : undefined;
    };
    const linkCounter = (name: string, help: string, k: LinkCounter) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          const v = link(k);
          this.reset();
          if (v !== undefined) this.inc(v);
        },
      });
    const tel = this;
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'zeroq_' });
    const registers = [r];
    this.m = {
      captured: new Counter({ name: 'zeroq_frames_captured_total', help: 'Frames received from the source', registers }),
      processed: new Counter({ name: 'zeroq_frames_processed_total', help: 'Frames run through the detector', registers }),
      skipped: new Counter({ name: 'zeroq_frames_skipped_total', help: 'Frames replaced by a newer one before the detector took them', registers }),
      bad: new Counter({ name: 'zeroq_frames_bad_total', help: 'Malformed frames or undecodable images from the source', registers }),
      restarts: new Counter({ name: 'zeroq_source_restarts_total', help: 'Source restarts by the watchdog', registers }),
      sourceUp: new Gauge({ name: 'zeroq_source_up', help: '1 while every camera delivers frames', registers }),
      cameraFrames: new Counter({ name: 'zeroq_camera_frames_total', help: 'Frames per camera and stage (captured, processed, skipped, bad)', labelNames: ['camera', 'stage'] as const, registers }),
      cameraUp: new Gauge({ name: 'zeroq_camera_up', help: '1 while the camera delivers frames', labelNames: ['camera'] as const, registers }),
      cameraRestarts: new Counter({ name: 'zeroq_camera_restarts_total', help: 'Source restarts per camera', labelNames: ['camera'] as const, registers }),
      objects: new Gauge({ name: 'zeroq_objects', help: 'Objects tracked now, per camera and class', labelNames: ['camera', 'label'] as const, registers }),
      events: new Counter({ name: 'zeroq_events_total', help: 'Object events per camera and type', labelNames: ['camera', 'type'] as const, registers }),
      detections: new Counter({ name: 'zeroq_detections_total', help: 'Objects detected, by class', labelNames: ['class'] as const, registers }),
      inference: new Histogram({
        name: 'zeroq_inference_seconds',
        help: 'Engine time per frame (network only)',
        buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
        registers,
      }),
      latency: new Histogram({
        name: 'zeroq_frame_latency_seconds',
        help: 'From the frame read from its source to its detections message handed to the MQTT client',
        buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
        registers,
      }),
      mqttUp: new Gauge({ name: 'zeroq_mqtt_connected', help: '1 while connected to the broker', registers }),
      reconnects: new Counter({ name: 'zeroq_mqtt_reconnects_total', help: 'Connections to the broker after the first', registers }),
      buffered: new Gauge({ name: 'zeroq_mqtt_buffered_messages', help: 'Messages waiting for the broker', registers }),
      dropped: new Counter({ name: 'zeroq_mqtt_dropped_total', help: 'Messages dropped from the full offline buffer', registers }),
      engine: new Gauge({
        name: 'zeroq_engine_info',
        help: 'The engine in use (value 1)',
        labelNames: ['kind', 'model', 'weights', 'threads'] as const,
        registers,
      }),
      linkState: new Gauge({
        name: 'zeroq_engine_link_state',
        help: "Engines behind a link (fpga): 1 for the link's state (ready: frames on the device; fallback: on the CPU while reconnecting; unsupported: on the CPU for good)",
        labelNames: ['state', 'device'] as const,
        registers,
        collect() {
          this.reset();
          const l = tel.linkOf?.();
          if (l) this.set({ state: l.state, device: l.device }, 1);
        },
      }),
      linkBytes: new Counter({
        name: 'zeroq_engine_link_bytes_total',
        help: 'Bytes on the engine link, by direction (out: to the device)',
        labelNames: ['direction'] as const,
        registers,
        collect() {
          this.reset();
          const o = link('bytesOut');
          if (o !== undefined) {
            this.inc({ direction: 'out' }, o);
            this.inc({ direction: 'in' }, link('bytesIn')!);
          }
        },
      }),
      linkFrames: new Counter({
        name: 'zeroq_engine_link_frames_total',
        help: 'Frames of an engine behind a link, by where they were computed (device, or the CPU fallback)',
        labelNames: ['on'] as const,
        registers,
        collect() {
          this.reset();
          const d = link('deviceFrames');
          if (d !== undefined) {
            this.inc({ on: 'device' }, d);
            this.inc({ on: 'fallback' }, link('fallbackFrames')!);
          }
        },
      }),
      linkRetries: linkCounter('zeroq_engine_link_retries_total', 'Requests sent again (no answer in time, or passed over)', 'retries'),
      linkTimeouts: linkCounter('zeroq_engine_link_timeouts_total', 'Requests without an answer in time', 'timeouts'),
      linkCrc: linkCounter('zeroq_engine_link_crc_errors_total', 'Packets or results refused for a CRC mismatch', 'crcErrors'),
      linkFraming: linkCounter('zeroq_engine_link_framing_errors_total', 'Packets refused for bad framing (COBS, length, overrun)', 'framingErrors'),
      linkResyncs: linkCounter('zeroq_engine_link_resyncs_total', 'Resynchronisations after a failed frame', 'resyncs'),
      linkReconnects: linkCounter('zeroq_engine_link_reconnects_total', 'Reconnect attempts while on the CPU fallback', 'reconnects'),
      linkUploads: linkCounter('zeroq_engine_link_uploads_total', 'Weight sets uploaded to the device', 'uploads'),
    };
  }

  /** The engine's link (on start and on every engine swap); the previous engine's counts are kept. */
  engineLink(of: (() => EngineLinkStatus) | undefined): void {
    const prev = this.linkOf?.();
    if (prev) for (const k of LINK_COUNTERS) this.linkBase[k] += prev[k];
    this.linkOf = of;
  }

  private readonly up = new Map<string, boolean>();

  captured(camera: string): void {
    this.counts.captured++;
    this.m.captured.inc();
    this.m.cameraFrames.inc({ camera, stage: 'captured' });
  }

  skipped(camera: string): void {
    this.counts.skipped++;
    this.m.skipped.inc();
    this.m.cameraFrames.inc({ camera, stage: 'skipped' });
  }

  badFrame(camera: string): void {
    this.counts.badFrames++;
    this.m.bad.inc();
    this.m.cameraFrames.inc({ camera, stage: 'bad' });
  }

  sourceRestart(camera: string): void {
    this.counts.sourceRestarts++;
    this.m.restarts.inc();
    this.m.cameraRestarts.inc({ camera });
  }

  sourceUp(camera: string, up: boolean): void {
    this.up.set(camera, up);
    this.m.cameraUp.set({ camera }, up ? 1 : 0);
    this.m.sourceUp.set([...this.up.values()].every(Boolean) ? 1 : 0);
  }

  /** A camera went away. */
  forget(camera: string): void {
    this.up.delete(camera);
    this.m.cameraUp.remove({ camera });
    this.m.objects.reset();
  }

  objects(camera: string, counts: Record<string, number>): void {
    for (const [label, n] of Object.entries(counts)) this.m.objects.set({ camera, label }, n);
  }

  event(camera: string, type: string): void {
    this.m.events.inc({ camera, type });
  }

  processed(inferenceMs: number, latencyMs: number, classes: readonly string[], camera?: string): void {
    if (camera !== undefined) this.m.cameraFrames.inc({ camera, stage: 'processed' });
    this.counts.processed++;
    this.counts.detections += classes.length;
    this.lastProcessedAt = Date.now();
    this.m.processed.inc();
    this.inference.add(inferenceMs);
    this.latency.add(latencyMs);
    this.m.inference.observe(inferenceMs / 1000);
    for (const c of classes) this.m.detections.inc({ class: c });
  }

  /** A detections message handed to the MQTT client, ms after its frame's last byte was read. */
  published(ms: number): void {
    this.publish.add(ms);
    this.m.latency.observe(ms / 1000);
  }

  mqttConnected(up: boolean): void {
    this.m.mqttUp.set(up ? 1 : 0);
  }

  mqttReconnect(): void {
    this.counts.mqttReconnects++;
    this.m.reconnects.inc();
  }

  mqttBuffered(n: number): void {
    this.m.buffered.set(n);
  }

  mqttDropped(n: number): void {
    this.counts.mqttDropped += n;
    this.m.dropped.inc(n);
  }

  engine(kind: string, model: string, weights: string, threads: number): void {
    this.m.engine.reset();
    this.m.engine.set({ kind, model, weights, threads: String(threads) }, 1);
  }

  /** Inference time percentiles over the last frames. */
  inferencePercentiles(): ReturnType<Window['percentiles']> {
    return this.inference.percentiles();
  }

  /** Frame rates since the previous call, and latency percentiles over the last frames. */
  window(): {
    cameraFps: number;
    processedFps: number;
    inferenceMs: ReturnType<Window['percentiles']>;
    latencyMs: ReturnType<Window['percentiles']>;
    publishMs: ReturnType<Window['percentiles']>;
  } {
    const now = performance.now();
    const dt = (now - this.last.at) / 1000;
    const cameraFps = dt > 0 ? (this.counts.captured - this.last.captured) / dt : 0;
    const processedFps = dt > 0 ? (this.counts.processed - this.last.processed) / dt : 0;
    this.last = { at: now, captured: this.counts.captured, processed: this.counts.processed };
    return {
      cameraFps: round(cameraFps, 2),
      processedFps: round(processedFps, 2),
      inferenceMs: this.inference.percentiles(),
      latencyMs: this.latency.percentiles(),
      publishMs: this.publish.percentiles(),
    };
  }
}
