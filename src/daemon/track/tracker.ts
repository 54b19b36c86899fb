/**
 * Objects followed across frames, one tracker per camera. Detections are filtered first (score,
 * area, masks, per-class settings); each is then matched to an object of its class: by the overlap
 * (IoU) of its box with the object's box predicted by a constant-velocity model, and failing that by
 * the distance of their centres (within half the size of the predicted box, sizes alike). An object is reported once seen in min_hits frames with a best
 * score of at least its threshold; it survives up to max_misses frames without a match (its box
 * moving on as predicted), so one missed detection changes no count. Reported objects give events:
 * `new`, `update` (a better score, a box that moved, a zone entered; at most once per
 * updateIntervalMs) and `end`.
 */
import type { Box, Detection } from '../../detect/types.js';
import { area, bottomCentre, centre, inPolygon, iou } from './geometry.js';

export interface ClassSettings {
  min_score?: number;
  threshold?: number;
  min_area?: number;
  max_area?: number;
}

export interface TrackerSettings {
  min_score: number;
  threshold: number;
  min_area: number;
  max_area?: number;
  min_hits: number;
  max_misses: number;
  iou: number;
  classes: Record<string, ClassSettings>;
  /** Polygons in fractions of the picture. */
  zones: Record<string, { points: [number, number][]; objects: string[] }>;
  masks: [number, number][][];
  updateIntervalMs: number;
}

export interface TrackedObject {
  id: string;
  label: string;
  classId: number;
  /** Latest box (predicted while unseen) and the latest detection's score. */
  box: Box;
  score: number;
  topScore: number;
  /** The box and capture time of the best score. */
  topBox: Box;
  topTime: number;
  firstBox: Box;
  /** ms since the epoch: first and last frame the object was detected in. */
  start: number;
  lastSeen: number;
  hits: number;
  misses: number;
  reported: boolean;
  /** Zones the object stands in now, and every zone it entered. */
  zones: string[];
  enteredZones: string[];
  /** Box change per ms (x, y, w, h), smoothed. */
  velocity: [number, number, number, number];
  /** Frame (seq) of the best score. */
  topFrame: number;
}

export type EventType = 'new' | 'update' | 'end';

export interface TrackEvent {
  type: EventType;
  object: TrackedObject;
}

export interface TrackResult {
  events: TrackEvent[];
  /** Reported objects still tracked, after this frame. */
  objects: TrackedObject[];
}

const SMOOTH = 0.5;

export class Tracker {
  private objects: TrackedObject[] = [];
  private lastTime = 0;
  private n = 0;
  private lastPublished = new Map<string, { at: number; topScore: number; box: Box; zones: number }>();

  constructor(
    private s: TrackerSettings,
    private readonly idPrefix: string,
  ) {}

  setSettings(s: TrackerSettings): void {
    this.s = s;
  }

  private cls(label: string): Required<Pick<ClassSettings, 'min_score' | 'threshold' | 'min_area'>> & { max_area?: number } {
    const c = this.s.classes[label] ?? {};
    return { min_score: c.min_score ?? this.s.min_score, threshold: c.threshold ?? this.s.threshold, min_area: c.min_area ?? this.s.min_area, max_area: c.max_area ?? this.s.max_area };
  }

  /** Whether a detection counts at all. */
  keep(d: Detection, width: number, height: number): boolean {
    const c = this.cls(d.className);
    if (d.score < c.min_score) return false;
    const a = area(d.box);
    if (a < c.min_area || (c.max_area !== undefined && a > c.max_area)) return false;
    const [bx, by] = bottomCentre(d.box);
    const p: [number, number] = [bx / width, by / height];
    return !this.s.masks.some((m) => inPolygon(p, m));
  }

  private zonesOf(o: TrackedObject, width: number, height: number): string[] {
    const [bx, by] = bottomCentre(o.box);
    const p: [number, number] = [bx / width, by / height];
    return Object.entries(this.s.zones)
      .filter(([, z]) => (z.objects.length === 0 || z.objects.includes(o.label)) && inPolygon(p, z.points))
      .map(([name]) => name);
  }

  private predict(o: TrackedObject, dt: number): Box {
    const [vx, vy, vw, vh] = o.velocity;
    return { x: o.box.x + vx * dt, y: o.box.y + vy * dt, w: Math.max(1, o.box.w + vw * dt), h: Math.max(1, o.box.h + vh * dt) };
  }

  /** One frame's detections (camera pixels) at capture time `time`; width/height: the picture. */
  update(dets: readonly Detection[], time: number, width: number, height: number, frame = 0): TrackResult {
    const events: TrackEvent[] = [];
    const dt = this.lastTime > 0 ? Math.max(0, time - this.lastTime) : 0;
    this.lastTime = time;
    const kept = dets.filter((d) => this.keep(d, width, height));
    const predicted = this.objects.map((o) => this.predict(o, dt));

    // Candidate pairs of the same class: by overlap first, then by centre distance.
    type Pair = { o: number; d: number; rank: number };
    const pairs: Pair[] = [];
    for (let oi = 0; oi < this.objects.length; oi++) {
      const o = this.objects[oi];
      const pb = predicted[oi];
      const reach = 0.5 * Math.sqrt(area(pb));
      const [pcx, pcy] = centre(pb);
      for (let di = 0; di < kept.length; di++) {
        const d = kept[di];
        if (d.className !== o.label) continue;
        const ov = iou(pb, d.box);
        if (ov >= this.s.iou) {
          pairs.push({ o: oi, d: di, rank: 2 + ov });
          continue;
        }
        // Near, and of a similar size (not another object that appeared where this one was).
        const [dcx, dcy] = centre(d.box);
        const dist = Math.hypot(dcx - pcx, dcy - pcy);
        const ratio = area(d.box) / Math.max(1, area(pb));
        if (dist < reach && ratio > 0.5 && ratio < 2) pairs.push({ o: oi, d: di, rank: 1 - dist / reach });
      }
    }
    pairs.sort((a, b) => b.rank - a.rank);
    const matchedO = new Map<number, number>();
    const usedD = new Set<number>();
    for (const p of pairs) {
      if (matchedO.has(p.o) || usedD.has(p.d)) continue;
      matchedO.set(p.o, p.d);
      usedD.add(p.d);
    }

    const next: TrackedObject[] = [];
    for (let oi = 0; oi < this.objects.length; oi++) {
      const o = this.objects[oi];
      const di = matchedO.get(oi);
      if (di === undefined) {
        o.misses++;
        if (o.misses > this.s.max_misses) {
          if (o.reported) events.push({ type: 'end', object: o });
          this.lastPublished.delete(o.id);
          continue;
        }
        o.box = predicted[oi];
      } else {
        const d = kept[di];
        if (dt > 0) {
          const v = [(d.box.x - o.box.x) / dt, (d.box.y - o.box.y) / dt, (d.box.w - o.box.w) / dt, (d.box.h - o.box.h) / dt];
          o.velocity = o.velocity.map((x, i) => SMOOTH * v[i] + (1 - SMOOTH) * x) as TrackedObject['velocity'];
        }
        o.box = { ...d.box };
        o.score = d.score;
        o.hits++;
        o.misses = 0;
        o.lastSeen = time;
        if (d.score > o.topScore) {
          o.topScore = d.score;
          o.topBox = { ...d.box };
          o.topTime = time;
          o.topFrame = frame;
        }
      }
      o.zones = this.zonesOf(o, width, height);
      for (const z of o.zones) if (!o.enteredZones.includes(z)) o.enteredZones.push(z);
      next.push(o);
    }
    for (let di = 0; di < kept.length; di++) {
      if (usedD.has(di)) continue;
      const d = kept[di];
      const o: TrackedObject = {
        id: `${this.idPrefix}${time.toString(36)}-${(++this.n).toString(36)}`,
        label: d.className,
        classId: d.classId,
        box: { ...d.box },
        score: d.score,
        topScore: d.score,
        topBox: { ...d.box },
        topTime: time,
        topFrame: frame,
        firstBox: { ...d.box },
        start: time,
        lastSeen: time,
        hits: 1,
        misses: 0,
        reported: false,
        zones: [],
        enteredZones: [],
        velocity: [0, 0, 0, 0],
      };
      o.zones = this.zonesOf(o, width, height);
      o.enteredZones = [...o.zones];
      next.push(o);
    }
    this.objects = next;

    for (const o of next) {
      if (o.misses > 0) continue;
      if (!o.reported) {
        if (o.hits >= this.s.min_hits && o.topScore >= this.cls(o.label).threshold) {
          o.reported = true;
          events.push({ type: 'new', object: o });
          this.lastPublished.set(o.id, { at: time, topScore: o.topScore, box: { ...o.box }, zones: o.enteredZones.length });
        }
        continue;
      }
      const last = this.lastPublished.get(o.id)!;
      const changed = o.topScore > last.topScore || iou(last.box, o.box) < 0.5 || o.enteredZones.length > last.zones;
      if (changed && time - last.at >= this.s.updateIntervalMs) {
        events.push({ type: 'update', object: o });
        this.lastPublished.set(o.id, { at: time, topScore: o.topScore, box: { ...o.box }, zones: o.enteredZones.length });
      }
    }
    return { events, objects: next.filter((o) => o.reported) };
  }

  /** Ends every object (the camera stopped, or detection was switched off). */
  clear(): TrackEvent[] {
    const events = this.objects.filter((o) => o.reported).map((o) => ({ type: 'end' as const, object: o }));
    this.objects = [];
    this.lastPublished.clear();
    return events;
  }

  /** Reported objects currently tracked. */
  get current(): TrackedObject[] {
    return this.objects.filter((o) => o.reported);
  }
}

/** Reported objects per class, and per zone and class. */
export function countObjects(objects: readonly TrackedObject[], always: readonly string[]): { counts: Record<string, number>; zones: Record<string, Record<string, number>> } {
  const counts: Record<string, number> = {};
  for (const c of always) counts[c] = 0;
  const zones: Record<string, Record<string, number>> = {};
  for (const o of objects) {
    counts[o.label] = (counts[o.label] ?? 0) + 1;
    for (const z of o.zones) {
      zones[z] ??= {};
      zones[z][o.label] = (zones[z][o.label] ?? 0) + 1;
    }
  }
  return { counts, zones };
}
