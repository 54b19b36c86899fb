/**
 * The cameras: each source resolved and checked first (a typo fails fast), run by its capture
 * supervisor, its frames into the engine's fair queue; each processed frame goes through the
 * camera's tracker (the `track` event). On reload: cameras added, removed, restarted when their
 * source keys changed or a new engine has another input size (ffmpeg scales to it), retuned in
 * place when only zones, masks or object settings changed.
 */
import { resolveSource } from '../capture/open.js';
import type { SupervisorStatus } from '../capture/supervisor.js';
import { Camera, trackerSettings } from '../camera.js';
import { camerasOf, type CameraDef, type Config } from '../config.js';
import type { DaemonContext } from '../context.js';
import type { ProcessedFrame } from '../frame-loop.js';
import type { DaemonPart, PartHealth } from '../part.js';

/** The keys of a camera that need its source restarted when they change. */
function sourceKeys(d: CameraDef): string {
  const { zones: _z, masks: _m, objects: _o, ...rest } = d.cfg;
  return JSON.stringify(rest);
}

export class CamerasPart implements DaemonPart {
  readonly name = 'cameras';
  readonly follows = ['model'];
  private readonly onFrame = (r: ProcessedFrame) => {
    const cam = r.frame.camera === undefined ? undefined : this.ctx.cameras.get(r.frame.camera);
    if (!cam) return;
    this.ctx.events.emit('track', cam, cam.track(r), r);
  };

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return [camerasOf(cfg), cfg.publish.event_update_interval_s];
  }

  check(cfg: Config): void {
    for (const c of camerasOf(cfg)) resolveSource(c.cfg);
  }

  private make(def: CameraDef, cfg: Config): Camera {
    const ctx = this.ctx;
    const t = ctx.telemetry;
    return new Camera(
      def,
      ctx.queue,
      {
        state: (c: Camera, st: SupervisorStatus, prev: SupervisorStatus) => {
          if (st.restarts > prev.restarts) t.sourceRestart(c.name);
          t.sourceUp(c.name, st.state === 'running');
          ctx.publishStatus();
          if (st.state === 'running' || st.state === 'restarting') void ctx.sd.status(`${c.name} ${st.state}: ${st.description}`);
        },
        captured: (c) => t.captured(c.name),
        skipped: (c) => t.skipped(c.name),
        bad: (c) => t.badFrame(c.name),
        prepare: (f) => ctx.loop.prepare(f),
      },
      cfg.publish.event_update_interval_s,
    );
  }

  async start(cfg: Config): Promise<void> {
    this.ctx.events.on('frame', this.onFrame);
    const net = this.ctx.loop.currentEngine.net;
    for (const def of camerasOf(cfg)) {
      const cam = this.make(def, cfg);
      this.ctx.cameras.set(def.name, cam);
      cam.start(net, this.ctx.log);
    }
  }

  async reload(cfg: Config, r: { prev: Config }): Promise<boolean> {
    const ctx = this.ctx;
    const net = ctx.loop.currentEngine.net;
    const defs = camerasOf(cfg);
    let changed = false;
    const next = new Map<string, Camera>();
    for (const def of defs) {
      const cam = ctx.cameras.get(def.name);
      // A camera keeps its source and counters unless its place in the topics changes.
      if (cam && cam.def.topicLevel === def.topicLevel) {
        const restart = sourceKeys(cam.def) !== sourceKeys(def) || cam.needsRestart(net);
        const retune = JSON.stringify([cam.def.objects, cam.def.cfg.zones, cam.def.cfg.masks]) !== JSON.stringify([def.objects, def.cfg.zones, def.cfg.masks]) || r.prev.publish.event_update_interval_s !== cfg.publish.event_update_interval_s;
        cam.def = def;
        if (retune) cam.tracker.setSettings(trackerSettings(def, cfg.publish.event_update_interval_s));
        if (restart) await cam.restart(net, ctx.log);
        changed ||= restart || retune;
        next.set(def.name, cam);
      } else {
        if (cam) await this.remove(cam);
        const fresh = this.make(def, cfg);
        next.set(def.name, fresh);
        fresh.start(net, ctx.log);
        changed = true;
      }
    }
    for (const [name, cam] of ctx.cameras) {
      if (next.has(name)) continue;
      await this.remove(cam);
      changed = true;
    }
    ctx.cameras.clear();
    for (const [n, c] of next) ctx.cameras.set(n, c);
    if (changed) ctx.events.emit('cameras');
    return changed;
  }

  private async remove(cam: Camera): Promise<void> {
    await cam.stop();
    this.ctx.queue.remove(cam.slot);
    this.ctx.events.emit('track', cam, cam.clear(), undefined);
    this.ctx.events.emit('camera-removed', cam);
  }

  async drain(): Promise<void> {
    for (const cam of this.ctx.cameras.values()) await cam.stop();
  }

  async stop(): Promise<void> {
    this.ctx.events.off('frame', this.onFrame);
    for (const cam of this.ctx.cameras.values()) await cam.stop();
  }

  health(): PartHealth {
    const problems: string[] = [];
    const cams = [...this.ctx.cameras.values()];
    const single = cams.length === 1 && cams[0].def.topicLevel === undefined;
    const view = (c: Camera) => {
      const s = c.current;
      return { state: s.state, description: s.description, restarts: s.restarts, last_error: s.lastError ?? null };
    };
    for (const c of cams) {
      const s = c.current;
      if (s.state !== 'running') problems.push(`${single ? '' : `camera ${c.name}: `}source ${s.state}${s.lastError ? `: ${s.lastError}` : ''}`);
    }
    if (cams.length === 0) problems.push('source missing');
    return {
      problems,
      details: {
        source: cams[0] ? view(cams[0]) : null,
        cameras: Object.fromEntries(cams.map((c) => [c.name, { ...view(c), detecting: c.detecting, frames: { ...c.counts } }])),
      },
    };
  }
}
