/**
 * The live view on the HTTP port: `GET /` (web/live.html: one page, plain JS and CSS, no build
 * step), `GET /api/state` (what the page shows: engine, weight-set id, stats, per camera its
 * counts, objects and recent events), and per camera `GET /cameras/<name>/latest.jpg` (the latest
 * processed frame with its boxes), `GET /cameras/<name>/stream` (the same as MJPEG,
 * multipart/x-mixed-replace, at most http.stream_fps pictures a second) and
 * `GET /cameras/<name>/events/<id>.jpg` (an event's best frame with the object's box).
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { repoRoot } from '../../util/paths.js';
import type { Camera, EventRecord } from '../camera.js';
import type { DaemonContext } from '../context.js';
import type { ProcessedFrame } from '../frame-loop.js';
import { renderSnapshot } from '../snapshot.js';
import { round } from '../telemetry.js';
import { countObjects, type TrackResult } from '../track/tracker.js';

const BOUNDARY = 'zeroqframe';
/** JPEG quality of the stream and latest.jpg. */
const QUALITY = 75;

interface StreamClient {
  res: http.ServerResponse;
  /** The client has not taken the previous picture yet: skip until it drains. */
  busy: boolean;
}

interface CameraStream {
  clients: Set<StreamClient>;
  lastAt: number;
  rendering: boolean;
  /** The latest picture and the frame it shows. */
  jpeg?: Buffer;
  seq: number;
}

let page: string | undefined;
function livePage(): string {
  page ??= readFileSync(path.join(repoRoot, 'src', 'daemon', 'web', 'live.html'), 'utf8');
  return page;
}

export class LiveView {
  private readonly streams = new Map<Camera, CameraStream>();
  private readonly onFrame = (r: ProcessedFrame) => this.frame(r);
  /** An event that ended gets its picture now, and lets go of its frame. */
  private readonly onTrack = (cam: Camera, res: TrackResult) => {
    for (const e of res.events) {
      if (e.type !== 'end') continue;
      const rec = cam.events.find((x) => x.id === e.object.id);
      if (rec?.frame) this.eventPicture(rec).catch((err: Error) => this.ctx.log.warn({ err: err.message, camera: cam.name }, 'live view: event picture failed'));
    }
  };

  constructor(private readonly ctx: DaemonContext) {
    ctx.events.on('frame', this.onFrame);
    ctx.events.on('track', this.onTrack);
  }

  close(): void {
    this.ctx.events.off('frame', this.onFrame);
    this.ctx.events.off('track', this.onTrack);
    for (const s of this.streams.values()) for (const c of s.clients) c.res.end();
    this.streams.clear();
  }

  private stream(cam: Camera): CameraStream {
    let s = this.streams.get(cam);
    if (!s) {
      s = { clients: new Set(), lastAt: 0, rendering: false, seq: -1 };
      this.streams.set(cam, s);
    }
    return s;
  }

  /** The picture of a camera's latest frame (rendered once per frame, shared by every client). */
  private async picture(cam: Camera): Promise<Buffer | undefined> {
    const latest = cam.latest;
    if (!latest) return undefined;
    const s = this.stream(cam);
    if (s.jpeg && s.seq === latest.seq) return s.jpeg;
    const jpeg = await renderSnapshot({ ...latest.frame, detections: latest.detections }, this.ctx.config.publish.snapshot.max_size, QUALITY);
    s.jpeg = jpeg;
    s.seq = latest.seq;
    return jpeg;
  }

  private frame(r: ProcessedFrame): void {
    const cam = r.frame.camera === undefined ? undefined : this.ctx.cameras.get(r.frame.camera);
    if (!cam) return;
    const s = this.streams.get(cam);
    if (!s || s.clients.size === 0 || s.rendering) return;
    const now = performance.now();
    if (now - s.lastAt < 1000 / this.ctx.config.http.stream_fps) return;
    s.lastAt = now;
    s.rendering = true;
    this.picture(cam)
      .then((jpeg) => {
        if (jpeg) for (const c of s.clients) this.send(c, jpeg);
      })
      .catch((err: Error) => this.ctx.log.warn({ err: err.message, camera: cam.name }, 'live view: picture failed'))
      .finally(() => (s.rendering = false));
  }

  private send(c: StreamClient, jpeg: Buffer): void {
    if (c.busy) return;
    const head = `--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`;
    c.res.write(head);
    c.res.write(jpeg);
    if (!c.res.write('\r\n')) {
      c.busy = true;
      c.res.once('drain', () => (c.busy = false));
    }
  }

  /** The routes of the live view; false for a URL that is not one of them. */
  readonly routes = (url: string, req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    if (url === '/' || url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : livePage());
      return true;
    }
    if (url === '/api/state') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(this.state()));
      return true;
    }
    const m = /^\/cameras\/([a-z0-9_-]+)\/(latest\.jpg|stream|events\/([A-Za-z0-9_-]+)\.jpg)$/.exec(url);
    if (!m) return false;
    const cam = this.ctx.cameras.get(m[1]);
    if (!cam) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no camera ${m[1]}\n`);
      return true;
    }
    if (m[2] === 'latest.jpg') {
      this.picture(cam).then(
        (jpeg) => {
          if (!jpeg) res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('no frame yet\n');
          else res.writeHead(200, { 'content-type': 'image/jpeg', 'cache-control': 'no-store', 'content-length': jpeg.length }).end(req.method === 'HEAD' ? undefined : jpeg);
        },
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
      return true;
    }
    if (m[2] === 'stream') {
      res.writeHead(200, {
        'content-type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`,
        'cache-control': 'no-store',
        connection: 'close',
      });
      if (req.method === 'HEAD') {
        res.end();
        return true;
      }
      const s = this.stream(cam);
      const c: StreamClient = { res, busy: false };
      s.clients.add(c);
      res.on('close', () => s.clients.delete(c));
      // The latest picture at once, so that a still camera shows something.
      this.picture(cam).then(
        (jpeg) => jpeg && this.send(c, jpeg),
        () => undefined,
      );
      return true;
    }
    const ev = cam.events.find((e) => e.id === m[3]);
    this.eventPicture(ev).then(
      (jpeg) => {
        if (!jpeg) res.writeHead(404, { 'content-type': 'text/plain' }).end('no such event (or no longer kept)\n');
        else res.writeHead(200, { 'content-type': 'image/jpeg', 'cache-control': 'max-age=3600', 'content-length': jpeg.length }).end(req.method === 'HEAD' ? undefined : jpeg);
      },
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
    return true;
  };

  private async eventPicture(ev: EventRecord | undefined): Promise<Buffer | undefined> {
    if (!ev) return undefined;
    if (ev.jpeg && !ev.frame) return ev.jpeg;
    const f = ev.frame;
    if (!f) return ev.jpeg;
    const det = { classId: ev.classId, className: ev.label, score: ev.topScore, box: ev.box };
    const jpeg = await renderSnapshot({ ...f, detections: [det] }, this.ctx.config.publish.snapshot.max_size, QUALITY);
    // Ended events keep only their JPEG; open ones may still get a better frame.
    if (ev.frame === f) {
      ev.jpeg = jpeg;
      if (ev.end !== null) ev.frame = undefined;
    }
    return jpeg;
  }

  /** What the page shows. */
  state(): Record<string, unknown> {
    const ctx = this.ctx;
    const t = ctx.telemetry;
    const cams = [...ctx.cameras.values()];
    return {
      device: ctx.config.device_id,
      version: ctx.version,
      engine: ctx.engineInfo(),
      uptime_s: Math.round((Date.now() - t.startedAt) / 1000),
      processed_fps: round(cams.reduce((a, c) => a + c.fps(), 0), 2),
      inference_ms: t.inferencePercentiles(),
      cameras: cams.map((c) => {
        const objects = c.tracker.current;
        return {
          name: c.name,
          state: c.current.state,
          detecting: c.detecting,
          threshold: c.threshold ?? ctx.config.detect.threshold,
          fps: round(c.fps(), 2),
          frames: { captured: c.counts.captured, processed: c.counts.processed, skipped: c.counts.skipped, bad: c.counts.bad },
          width: c.latest?.frame.srcWidth ?? null,
          height: c.latest?.frame.srcHeight ?? null,
          counts: countObjects(objects, ctx.config.homeassistant.enabled ? ctx.config.homeassistant.classes : []).counts,
          objects: objects.map((o) => ({ id: o.id, label: o.label, score: round(o.score, 3), box: o.box, zones: o.zones })),
          events: c.events
            .filter((e) => e.frame !== undefined || e.jpeg !== undefined)
            .map((e) => ({ id: e.id, type: e.type, label: e.label, top_score: round(e.topScore, 3), start: e.start, end: e.end, zones: e.zones, snapshot: `/cameras/${c.name}/events/${e.id}.jpg` })),
        };
      }),
    };
  }
}
