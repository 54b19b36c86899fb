/**
 * What goes out per frame and periodically: the detections stream, the retained counts (when they
 * change), the annotated snapshot, and the stats every stats_interval_s and once more on stop.
 */
import type { Config } from '../config.js';
import type { DaemonContext } from '../context.js';
import type { ProcessedFrame } from '../frame-loop.js';
import { countClasses, countsPayload, detectionsPayload, statsPayload } from '../mqtt/payloads.js';
import type { DaemonPart } from '../part.js';
import { renderSnapshot } from '../snapshot.js';
import { round } from '../telemetry.js';

export class PublishPart implements DaemonPart {
  readonly name = 'publish';
  private timer?: NodeJS.Timeout;
  private lastCounts = '';
  private lastSnapshotAt = 0;
  private snapshotBusy = false;
  private readonly onFrame = (r: ProcessedFrame) => this.frame(r);

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return cfg.publish;
  }

  async start(cfg: Config): Promise<void> {
    this.ctx.events.on('frame', this.onFrame);
    this.startTimer(cfg);
  }

  async reload(cfg: Config, r: { prev: Config }): Promise<boolean> {
    this.startTimer(cfg);
    const m = this.ctx.mqtt;
    if (r.prev.publish.snapshot.enabled && !cfg.publish.snapshot.enabled && m) m.publisher.setState(m.topics.snapshot, '');
    return true;
  }

  /** The frame loop is finished by now: the last stats. */
  async stop(): Promise<void> {
    this.ctx.events.off('frame', this.onFrame);
    if (this.timer) clearInterval(this.timer);
    const m = this.ctx.mqtt;
    if (m) m.publisher.setState(m.topics.stats, this.stats());
  }

  private startTimer(cfg: Config): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => {
      const m = this.ctx.mqtt;
      if (!m) return;
      this.ctx.telemetry.mqttBuffered(m.publisher.buffered);
      m.publisher.setState(m.topics.stats, this.stats());
    }, cfg.publish.stats_interval_s * 1000);
  }

  private stats(): string {
    const t = this.ctx.telemetry;
    const p = this.ctx.mqtt?.publisher;
    return statsPayload({
      uptimeS: Math.round((Date.now() - t.startedAt) / 1000),
      window: t.window(),
      counts: t.counts,
      sourceState: this.ctx.source?.current.state,
      mqtt: { connected: p?.connected ?? false, buffered: p?.buffered ?? 0 },
      engine: this.ctx.engineInfo(),
    });
  }

  private frame(r: ProcessedFrame): void {
    const m = this.ctx.mqtt;
    if (!m) return;
    const f = r.frame;
    const cfg = this.ctx.config;
    if (r.detections.length > 0 || cfg.publish.empty_frames) {
      const payload = detectionsPayload(
        m.deviceId,
        { seq: f.seq, time: f.time, width: f.srcWidth, height: f.srcHeight, inferenceMs: r.inferenceMs, latencyMs: r.latencyMs, detections: r.detections },
        this.ctx.engineInfo(),
        (d) => d.classId,
      );
      m.publisher.stream(m.topics.detections, payload, cfg.mqtt.qos);
    }
    this.ctx.log.debug({ frame: f.seq, detections: r.detections.length, ms: round(r.inferenceMs, 1), mqtt: m.publisher.connected ? 'sent' : 'buffered' }, 'frame');
    if (cfg.publish.counts) {
      const counts = countClasses(r.detections, cfg.homeassistant.enabled ? cfg.homeassistant.classes : []);
      const key = JSON.stringify(counts);
      if (key !== this.lastCounts) {
        this.lastCounts = key;
        m.publisher.setState(m.topics.counts, countsPayload(f.seq, f.time, counts));
      }
    }
    const snap = cfg.publish.snapshot;
    if (snap.enabled && !this.snapshotBusy && Date.now() - this.lastSnapshotAt >= snap.interval_s * 1000) {
      this.snapshotBusy = true;
      this.lastSnapshotAt = Date.now();
      renderSnapshot({ ...f, detections: r.detections }, snap.max_size, snap.quality)
        .then((jpeg) => {
          const now = this.ctx.mqtt;
          now?.publisher.setState(now.topics.snapshot, jpeg);
        })
        .catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'snapshot failed'))
        .finally(() => (this.snapshotBusy = false));
    }
  }
}
