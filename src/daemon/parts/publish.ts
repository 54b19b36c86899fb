/**
 * What goes out per camera and periodically: the detections stream (optional), object events, the
 * retained counts (from tracked objects, when they change) and occupancy (on while an object of a
 * class is tracked, off a delay after the last one went), the annotated snapshot, and the stats
 * every stats_interval_s and once more on stop.
 */
import type { Camera } from '../camera.js';
import type { Config } from '../config.js';
import type { DaemonContext, MqttLink } from '../context.js';
import type { ProcessedFrame } from '../frame-loop.js';
import { countsPayload, detectionsPayload, eventPayload, occupancyPayload, statsPayload } from '../mqtt/payloads.js';
import type { DaemonPart } from '../part.js';
import { renderSnapshot } from '../snapshot.js';
import { round } from '../telemetry.js';
import { countObjects, type TrackResult } from '../track/tracker.js';

interface CameraState {
  counts?: string;
  occupancy?: string;
  /** Per class: on, or the time it may turn off. */
  occupied: Map<string, { on: boolean; offAt?: number }>;
  offTimer?: NodeJS.Timeout;
  lastSnapshotAt: number;
  snapshotBusy: boolean;
}

export class PublishPart implements DaemonPart {
  readonly name = 'publish';
  private timer?: NodeJS.Timeout;
  private readonly state = new Map<Camera, CameraState>();
  private readonly onFrame = (r: ProcessedFrame) => this.frame(r);
  private readonly onTrack = (c: Camera, res: TrackResult, r: ProcessedFrame | undefined) => this.track(c, res, r);
  private readonly onLink = (link: MqttLink) => this.republish(link);
  private readonly onRemoved = (c: Camera) => this.removed(c);
  private readonly onSnapshot = (c: Camera) => this.snapshot(c);

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return cfg.publish;
  }

  async start(cfg: Config): Promise<void> {
    const ev = this.ctx.events;
    ev.on('frame', this.onFrame);
    ev.on('track', this.onTrack);
    ev.on('mqtt', this.onLink);
    ev.on('camera-removed', this.onRemoved);
    ev.on('snapshot', this.onSnapshot);
    this.startTimer(cfg);
  }

  async reload(cfg: Config, r: { prev: Config }): Promise<boolean> {
    this.startTimer(cfg);
    const m = this.ctx.mqtt;
    if (r.prev.publish.snapshot.enabled && !cfg.publish.snapshot.enabled && m) {
      for (const c of this.ctx.cameras.values()) m.publisher.setState(c.topicsOn(m.topics.base).snapshot, '');
    }
    return true;
  }

  /** The frame loop is finished by now: the last stats. */
  async stop(): Promise<void> {
    const ev = this.ctx.events;
    ev.off('frame', this.onFrame);
    ev.off('track', this.onTrack);
    ev.off('mqtt', this.onLink);
    ev.off('camera-removed', this.onRemoved);
    ev.off('snapshot', this.onSnapshot);
    if (this.timer) clearInterval(this.timer);
    for (const s of this.state.values()) if (s.offTimer) clearTimeout(s.offTimer);
    const m = this.ctx.mqtt;
    if (m) m.publisher.setState(m.topics.stats, this.stats());
  }

  private st(c: Camera): CameraState {
    let s = this.state.get(c);
    if (!s) {
      s = { occupied: new Map(), lastSnapshotAt: 0, snapshotBusy: false };
      this.state.set(c, s);
    }
    return s;
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
    const cams = [...this.ctx.cameras.values()];
    return statsPayload({
      uptimeS: Math.round((Date.now() - t.startedAt) / 1000),
      window: t.window(),
      counts: t.counts,
      sourceState: cams[0]?.current.state,
      mqtt: { connected: p?.connected ?? false, buffered: p?.buffered ?? 0 },
      engine: this.ctx.engineInfo(),
      cameras: Object.fromEntries(
        cams.map((c) => {
          const w = c.window();
          return [c.name, { state: c.current.state, cameraFps: w.cameraFps, processedFps: w.processedFps, counts: c.counts, objects: countObjects(c.tracker.current, []).counts }];
        }),
      ),
    });
  }

  private frame(r: ProcessedFrame): void {
    const m = this.ctx.mqtt;
    const cam = r.frame.camera === undefined ? undefined : this.ctx.cameras.get(r.frame.camera);
    if (!m || !cam) return;
    const f = r.frame;
    const cfg = this.ctx.config;
    const topics = cam.topicsOn(m.topics.base);
    if (cfg.publish.detections && (r.detections.length > 0 || cfg.publish.empty_frames)) {
      const payload = detectionsPayload(
        m.deviceId,
        cam.name,
        { seq: f.seq, time: f.time, width: f.srcWidth, height: f.srcHeight, inferenceMs: r.inferenceMs, latencyMs: r.latencyMs, detections: r.detections, ...(r.computedOn ? { computedOn: r.computedOn } : {}) },
        this.ctx.engineInfo(),
        (d) => d.classId,
      );
      m.publisher.stream(topics.detections, payload, cfg.mqtt.qos);
      if (f.readAt !== undefined) this.ctx.telemetry.published(performance.now() - f.readAt);
    }
    this.ctx.log.debug({ camera: cam.name, frame: f.seq, detections: r.detections.length, ms: round(r.inferenceMs, 1), mqtt: m.publisher.connected ? 'sent' : 'buffered' }, 'frame');
    const snap = cfg.publish.snapshot;
    const s = this.st(cam);
    if (snap.enabled && !s.snapshotBusy && Date.now() - s.lastSnapshotAt >= snap.interval_s * 1000) this.snapshot(cam);
  }

  /** Renders and publishes the camera's latest frame with its boxes (also the snapshot button). */
  snapshot(cam: Camera): void {
    const s = this.st(cam);
    const latest = cam.latest;
    if (!latest || s.snapshotBusy) return;
    const snap = this.ctx.config.publish.snapshot;
    s.snapshotBusy = true;
    s.lastSnapshotAt = Date.now();
    renderSnapshot({ ...latest.frame, detections: latest.detections }, snap.max_size, snap.quality)
      .then((jpeg) => {
        const now = this.ctx.mqtt;
        if (now && this.ctx.cameras.get(cam.name) === cam) now.publisher.setState(cam.topicsOn(now.topics.base).snapshot, jpeg);
      })
      .catch((err: Error) => this.ctx.log.warn({ err: err.message, camera: cam.name }, 'snapshot failed'))
      .finally(() => (s.snapshotBusy = false));
  }

  private track(cam: Camera, res: TrackResult, r: ProcessedFrame | undefined): void {
    const cfg = this.ctx.config;
    const m = this.ctx.mqtt;
    const t = this.ctx.telemetry;
    const always = cfg.homeassistant.enabled ? cfg.homeassistant.classes : [];
    const { counts, zones } = countObjects(res.objects, always);
    t.objects(cam.name, counts);
    for (const e of res.events) t.event(cam.name, e.type);
    const time = r?.frame.time ?? Date.now();
    const s = this.st(cam);
    if (m) {
      const topics = cam.topicsOn(m.topics.base);
      if (cfg.publish.events) {
        for (const e of res.events) m.publisher.stream(topics.events, eventPayload(m.deviceId, cam.name, e, this.snapshotUrl(cam, e.object.id)), cfg.mqtt.qos);
      }
      if (cfg.publish.counts) {
        const payload = countsPayload(cam.name, r?.frame.seq ?? null, time, counts, zones);
        const key = JSON.stringify([counts, zones]);
        if (key !== s.counts) {
          s.counts = key;
          m.publisher.setState(topics.counts, payload);
        }
      }
    }
    this.occupancy(cam, counts, always);
  }

  /** Occupancy per class: on at once, off once the class was absent for occupancy_off_delay_s. */
  private occupancy(cam: Camera, counts: Record<string, number>, always: readonly string[]): void {
    const s = this.st(cam);
    const now = Date.now();
    const delay = this.ctx.config.publish.occupancy_off_delay_s * 1000;
    for (const c of always) if (!s.occupied.has(c)) s.occupied.set(c, { on: false });
    let next = Infinity;
    for (const [label, n] of Object.entries(counts)) {
      if (n > 0) s.occupied.set(label, { on: true });
    }
    for (const [label, o] of s.occupied) {
      if ((counts[label] ?? 0) > 0 || !o.on) continue;
      o.offAt ??= now + delay;
      if (o.offAt <= now) s.occupied.set(label, { on: false });
      else next = Math.min(next, o.offAt);
    }
    if (s.offTimer) clearTimeout(s.offTimer);
    s.offTimer = undefined;
    if (next < Infinity) s.offTimer = setTimeout(() => this.occupancy(cam, countObjects(cam.tracker.current, []).counts, this.ctx.config.homeassistant.enabled ? this.ctx.config.homeassistant.classes : []), next - now + 1);
    const m = this.ctx.mqtt;
    const occ: Record<string, 'ON' | 'OFF'> = Object.fromEntries([...s.occupied].map(([k, v]) => [k, v.on ? 'ON' : 'OFF']));
    const key = JSON.stringify(occ);
    if (m && key !== s.occupancy) {
      s.occupancy = key;
      m.publisher.setState(cam.topicsOn(m.topics.base).occupancy, occupancyPayload(cam.name, occ));
    }
  }

  /** Where the live view serves an event's best snapshot, when the HTTP port is on. */
  private snapshotUrl(cam: Camera, id: string): string | null {
    const base = this.ctx.publicUrl();
    return base ? `${base}/cameras/${cam.name}/events/${id}.jpg` : null;
  }

  /** A new connection starts with an empty table of retained values: the next frame fills it. */
  private republish(_link: MqttLink): void {
    for (const s of this.state.values()) {
      s.counts = undefined;
      s.occupancy = undefined;
    }
  }

  private removed(cam: Camera): void {
    const s = this.state.get(cam);
    if (s?.offTimer) clearTimeout(s.offTimer);
    this.state.delete(cam);
    const m = this.ctx.mqtt;
    if (!m) return;
    const topics = cam.topicsOn(m.topics.base);
    for (const t of [topics.counts, topics.occupancy, topics.snapshot, topics.detectState, topics.thresholdState]) m.publisher.setState(t, '');
  }
}
