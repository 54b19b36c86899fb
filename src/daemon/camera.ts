/**
 * One camera: its source under the capture supervisor, its slot in the engine's fair queue, its
 * counters, its object tracker, its controls (detection on/off, a score threshold of its own), and
 * what the live view shows (the latest processed frame with its objects, recent events).
 */
import type { Logger } from 'pino';
import type { Detection } from '../detect/types.js';
import type { Network } from '../model/ir.js';
import { sourceFactory, type ResolvedSource } from './capture/open.js';
import { SourceSupervisor, type CapturedFrame, type SupervisorStatus } from './capture/supervisor.js';
import type { CameraDef } from './config.js';
import type { FairQueue, Slot } from './fair-queue.js';
import type { ProcessedFrame } from './frame-loop.js';
import { cameraTopics, type CameraTopics } from './mqtt/topics.js';
import { Tracker, type TrackEvent, type TrackResult, type TrackedObject, type TrackerSettings } from './track/tracker.js';

export interface CameraCounts {
  captured: number;
  processed: number;
  skipped: number;
  bad: number;
  restarts: number;
  detections: number;
}

/** An event as kept for the live view and the snapshot URLs. */
export interface EventRecord {
  id: string;
  type: TrackEvent['type'];
  label: string;
  classId: number;
  topScore: number;
  start: number;
  end: number | null;
  zones: string[];
  /** The frame of the best score, kept until its JPEG is made. */
  frame?: CapturedFrame;
  box: TrackedObject['topBox'];
  jpeg?: Buffer;
}

export interface CameraHooks {
  /** The supervisor's state changed. */
  state(c: Camera, st: SupervisorStatus, prev: SupervisorStatus): void;
  captured(c: Camera): void;
  skipped(c: Camera): void;
  bad(c: Camera): void;
  /** Prepares the network input of a frame of a source that is not live (see FrameLoop.prepare). */
  prepare(f: CapturedFrame): void;
}

/** Events kept per camera for the live view and /cameras/<name>/events/<id>.jpg. */
const KEEP_EVENTS = 30;

const inputKey = (net: Network) => JSON.stringify([net.input, net.letterbox]);

export function trackerSettings(def: CameraDef, updateIntervalS: number): TrackerSettings {
  const o = def.objects;
  return {
    min_score: o.min_score,
    threshold: o.threshold,
    min_area: o.min_area,
    max_area: o.max_area,
    min_hits: o.min_hits,
    max_misses: o.max_misses,
    iou: o.iou,
    classes: o.classes,
    zones: def.cfg.zones,
    masks: def.cfg.masks,
    updateIntervalMs: updateIntervalS * 1000,
  };
}

export class Camera {
  readonly name: string;
  private topicCache?: CameraTopics;
  def: CameraDef;
  private supervisor?: SourceSupervisor;
  resolved?: ResolvedSource;
  /** The network input the source was built for. */
  builtFor = '';
  readonly slot: Slot<CapturedFrame>;
  readonly counts: CameraCounts = { captured: 0, processed: 0, skipped: 0, bad: 0, restarts: 0, detections: 0 };
  private rate = { at: performance.now(), captured: 0, processed: 0 };
  /** Times (performance.now) of the last processed frames. */
  private readonly recent: number[] = [];
  readonly tracker: Tracker;
  /** Controls (Home Assistant switch and number). */
  detecting = true;
  threshold: number | undefined;
  /** The latest processed frame, for the live view. */
  latest?: { frame: CapturedFrame; detections: Detection[]; objects: TrackedObject[]; inferenceMs: number; seq: number };
  readonly events: EventRecord[] = [];

  constructor(
    def: CameraDef,
    queue: FairQueue<CapturedFrame>,
    private readonly hooks: CameraHooks,
    updateIntervalS: number,
  ) {
    this.name = def.name;
    this.def = def;
    this.slot = queue.add(def.name, () => {
      this.counts.skipped++;
      hooks.skipped(this);
    });
    this.tracker = new Tracker(trackerSettings(def, updateIntervalS), def.topicLevel ? `${def.name}-` : '');
  }

  /** The camera's topics below a device's topics (`link.topics.base`). */
  topicsOn(deviceBase: string): CameraTopics {
    const want = this.def.topicLevel ? `${deviceBase}/${this.def.topicLevel}` : deviceBase;
    if (this.topicCache?.base !== want) this.topicCache = cameraTopics(deviceBase, this.def.topicLevel);
    return this.topicCache;
  }

  get current(): SupervisorStatus {
    return this.supervisor?.current ?? { state: 'stopped', description: '', restarts: 0, frames: 0, badFrames: 0, lastFrameAt: 0 };
  }

  /** The source section's URL as configured. */
  get url(): string {
    return this.def.cfg.url;
  }

  /** Starts (or restarts, after stop) the source for the engine's network. */
  start(net: Network, log: Logger): void {
    const cfg = this.def.cfg;
    const clog = log.child({ mod: 'capture', camera: this.name });
    const { resolved, create } = sourceFactory(cfg, net, clog);
    this.resolved = resolved;
    this.builtFor = inputKey(net);
    const s = new SourceSupervisor({
      create,
      stallTimeoutMs: cfg.stall_timeout_s * 1000,
      maxBadFrames: cfg.max_bad_frames,
      restart: { initialMs: cfg.restart.initial_ms, maxMs: cfg.restart.max_ms, factor: cfg.restart.factor },
      stableAfterMs: cfg.stable_after_s * 1000,
      log: clog,
    });
    let prev: SupervisorStatus = s.current;
    s.on('state', (st: SupervisorStatus) => {
      if (s !== this.supervisor) return;
      if (st.restarts > prev.restarts) this.counts.restarts++;
      const before = prev;
      prev = st;
      if (st.state === 'ended') this.slot.close(); // the loop processes what is pending
      this.hooks.state(this, st, before);
    });
    s.on('bad', () => {
      this.counts.bad++;
      this.hooks.bad(this);
    });
    s.deliver = (f, live) => {
      this.counts.captured++;
      this.hooks.captured(this);
      if (!this.detecting) return;
      f.camera = this.name;
      if (live) {
        this.slot.put(f);
        return;
      }
      this.hooks.prepare(f);
      return this.slot.putWait(f);
    };
    this.supervisor = s;
    s.start();
  }

  needsRestart(net: Network): boolean {
    return inputKey(net) !== this.builtFor;
  }

  async stop(): Promise<void> {
    await this.supervisor?.stop();
  }

  /** Restarts the source (a changed section or network input). */
  async restart(net: Network, log: Logger): Promise<void> {
    await this.supervisor?.stop();
    this.slot.reopen();
    this.start(net, log);
  }

  /** Follows the objects of a processed frame; keeps what the live view shows. */
  track(r: ProcessedFrame): TrackResult {
    // What is kept (latest, event pictures) without the network input made from it.
    const f: CapturedFrame = { ...r.frame, input: undefined };
    this.counts.processed++;
    this.counts.detections += r.detections.length;
    this.recent.push(performance.now());
    if (this.recent.length > 20) this.recent.shift();
    const res = this.tracker.update(r.detections, f.time, f.srcWidth, f.srcHeight, f.seq);
    this.latest = { frame: f, detections: r.detections, objects: res.objects, inferenceMs: r.inferenceMs, seq: f.seq };
    this.note(res.events, f);
    return res;
  }

  /** Ends every object (detection switched off, camera removed). */
  clear(): TrackResult {
    const events = this.tracker.clear();
    this.note(events, undefined);
    if (this.latest) this.latest = { ...this.latest, objects: [] };
    return { events, objects: [] };
  }

  private note(events: readonly TrackEvent[], f: CapturedFrame | undefined): void {
    for (const e of events) {
      const o = e.object;
      let rec = this.events.find((x) => x.id === o.id);
      if (!rec) {
        rec = { id: o.id, type: e.type, label: o.label, classId: o.classId, topScore: o.topScore, start: o.start, end: null, zones: [], box: o.topBox };
        this.events.unshift(rec);
        for (const old of this.events.splice(KEEP_EVENTS)) old.frame = undefined;
      }
      rec.type = e.type;
      rec.zones = [...o.enteredZones];
      if (e.type === 'end') rec.end = o.lastSeen;
      // Keep the frame of the best score: this frame when it is that one; the first frame an event
      // has a picture of otherwise (the best score may have come before the object was reported).
      if (f && ((o.topFrame === f.seq && o.topScore >= rec.topScore) || (rec.frame === undefined && rec.jpeg === undefined))) {
        rec.frame = f;
        rec.jpeg = undefined;
        rec.box = o.topFrame === f.seq ? o.topBox : o.box;
      }
      rec.topScore = o.topScore;
    }
  }

  /** Processed frames per second over the last 20 frames (0 when none came for 5 s). */
  fps(): number {
    const n = this.recent.length;
    if (n < 2 || performance.now() - this.recent[n - 1] > 5000) return 0;
    return ((n - 1) * 1000) / (this.recent[n - 1] - this.recent[0]);
  }

  /** Frame rates since the previous call. */
  window(): { cameraFps: number; processedFps: number } {
    const now = performance.now();
    const dt = (now - this.rate.at) / 1000;
    const r = {
      cameraFps: dt > 0 ? Math.round(((this.counts.captured - this.rate.captured) / dt) * 100) / 100 : 0,
      processedFps: dt > 0 ? Math.round(((this.counts.processed - this.rate.processed) / dt) * 100) / 100 : 0,
    };
    this.rate = { at: now, captured: this.counts.captured, processed: this.counts.processed };
    return r;
  }
}
