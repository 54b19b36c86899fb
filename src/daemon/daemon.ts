/**
 * The daemon's lifecycle over its list of parts (parts/index.ts): start (each part in order, then
 * the frame loop), reload (SIGHUP: the parts whose configuration section changed; a bad new config
 * is logged and ignored), stop (stop the input, finish the frame, stop the parts in reverse order).
 * It runs the frame loop and implements the context the parts share.
 */
import type { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import { engineModule, type EngineOpenOptions } from '../engine/registry.js';
import { ZeroqError } from '../util/errors.js';
import { dataPath } from '../util/paths.js';
import { redactDeep } from '../util/redact.js';
import type { Camera } from './camera.js';
import type { CapturedFrame } from './capture/supervisor.js';
import { defaultWeightSet, type Config, type ModelConfig } from './config.js';
import { loadConfig, type LoadOptions } from './config-load.js';
import type { DaemonContext, DaemonEvents, MqttLink } from './context.js';
import { FairQueue } from './fair-queue.js';
import { limitMallocArenas, MALLOC_ARENAS, trimMalloc } from './malloc.js';
import { FrameLoop, type LoopEnd, type ProcessedFrame } from './frame-loop.js';
import type { Health } from './http.js';
import { statusPayload, type EngineInfo, type SourceStatus } from './mqtt/payloads.js';
import { reloadReaches, type DaemonPart } from './part.js';
import { daemonParts } from './parts/index.js';
import type { HttpPart } from './parts/http.js';
import type { ModelPart } from './parts/model.js';
import { SdNotify } from './sdnotify.js';
import { installedModel } from './update/state.js';
import { Telemetry, round } from './telemetry.js';

export type OpenEngine = (kind: string, model: string, threads: number, options?: EngineOpenOptions) => Promise<Engine>;

/** How often malloc's free memory is given back (see ./malloc.ts). */
const TRIM_INTERVAL_MS = 5000;

export interface DaemonOptions {
  load: LoadOptions;
  /** Where --print writes. */
  out: Writable;
  log: Logger;
  version: string;
  /** Opens engines (tests may count calls); default: the engine registry. */
  openEngine?: OpenEngine;
}

/** The float model used when none is configured. */
export function defaultModelPath(): string {
  return dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
}

const defaultOpenEngine: OpenEngine = async (kind, model, threads, options = {}) =>
  engineModule(kind, 'model.engine').open(model, { ...options, threads });

/** The configured model, else the default of the engine: the cfg for float, the shipped W8 weight set for the others. */
export function modelPath(m: ModelConfig): string {
  if (m.path) return m.path;
  return m.engine === 'float' ? defaultModelPath() : defaultWeightSet();
}

/** model.trust as keys (null: no signature check). */
async function trustOf(m: ModelConfig): Promise<KeyObject[] | null> {
  if (!m.trust) return null;
  const { loadTrust } = await import('../qnet/keys.js');
  return loadTrust(m.trust, 'model.trust');
}

/** The engine's own options from the model section (everything but engine, path, threads and trust). */
function engineOptions(m: ModelConfig): EngineOpenOptions {
  const { engine: _engine, path: _path, threads: _threads, trust: _trust, ...rest } = m as Record<string, unknown>;
  return Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
}

export class Daemon implements DaemonContext {
  private cfg: Config;
  readonly telemetry = new Telemetry();
  readonly queue = new FairQueue<CapturedFrame>();
  readonly sd: SdNotify;
  readonly log: Logger;
  private trimTimer?: NodeJS.Timeout;
  readonly loop: FrameLoop;
  readonly events = new EventEmitter<DaemonEvents>();
  mqtt: MqttLink | undefined;
  readonly cameras = new Map<string, Camera>();
  private readonly parts: DaemonPart[];
  /** The configuration each started part runs with. */
  private readonly applied = new Map<DaemonPart, Config>();
  /** Parts whose start was called (a failed start included: stop() releases what it made). */
  private readonly begun: DaemonPart[] = [];
  private stoppingP?: Promise<number>;
  private reloading: Promise<void> = Promise.resolve();
  private loopDone?: Promise<LoopEnd>;
  private resolveDone!: (code: number) => void;
  /** Resolves with the exit code once the daemon stopped. */
  readonly done: Promise<number>;

  private constructor(
    cfg: Config,
    private readonly o: DaemonOptions,
  ) {
    this.cfg = cfg;
    this.log = o.log;
    this.sd = new SdNotify(o.log.child({ mod: 'sd_notify' }));
    this.loop = new FrameLoop((r) => this.onFrame(r), this.log.child({ mod: 'loop' }), (err) => this.events.emit('failed', err));
    this.parts = daemonParts(this);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Loads the config, starts every part, and returns the running daemon. Throws on a bad config. */
  static async start(o: DaemonOptions): Promise<Daemon> {
    const cfg = loadConfig(o.load);
    // Before the engine's and the picture path's threads exist.
    const arenas = limitMallocArenas();
    if (arenas !== 'applied') o.log.warn({ arenas: MALLOC_ARENAS, result: arenas }, 'malloc arenas not limited');
    const d = new Daemon(cfg, o);
    try {
      await d.startParts();
    } catch (err) {
      await d.teardown().catch(() => undefined);
      throw err;
    }
    return d;
  }

  get config(): Config {
    return this.cfg;
  }

  get version(): string {
    return this.o.version;
  }

  get out(): Writable {
    return this.o.out;
  }

  get stopping(): boolean {
    return this.stoppingP !== undefined;
  }

  get httpPort(): number | undefined {
    return this.part<HttpPart>('http')?.port;
  }

  get mqttUrl(): string | undefined {
    return this.mqtt?.url;
  }

  private part<P extends DaemonPart>(name: string): P | undefined {
    return this.parts.find((p) => p.name === name) as P | undefined;
  }

  async openEngine(m: ModelConfig): Promise<Engine> {
    const open = this.o.openEngine ?? defaultOpenEngine;
    const configured = modelPath(m);
    // A weight set installed by the update part runs instead of the configured one (docs/updates.md).
    const installed = engineModule(m.engine, 'model.engine').capabilities.integer ? installedModel(this.cfg, configured) : undefined;
    if (installed) {
      try {
        const { loadTrust } = await import('../qnet/keys.js');
        return await open(m.engine, installed.path, m.threads, { ...engineOptions(m), trust: loadTrust(installed.trust, 'model.trust, update.trust') });
      } catch (err) {
        this.log.error({ err: (err as Error).message, set: installed.path }, 'the installed weight set does not open; running the configured model');
      }
    }
    return open(m.engine, configured, m.threads, { ...engineOptions(m), trust: await trustOf(m) });
  }

  publicUrl(): string | undefined {
    return this.part<HttpPart>('http')?.url;
  }

  engineInfo(): EngineInfo {
    return this.part<ModelPart>('model')!.info();
  }

  private check(cfg: Config): void {
    modelPath(cfg.model);
    for (const p of this.parts) p.check?.(cfg);
  }

  private async startParts(): Promise<void> {
    const cfg = this.cfg;
    // Check what is quick to check (e.g. that the source exists) before anything slow.
    this.check(cfg);
    this.loop.maxFrames = cfg.max_frames;
    for (const p of this.parts) {
      this.begun.push(p);
      await p.start(cfg);
      this.applied.set(p, cfg);
    }
    this.loopDone = this.loop.run(this.queue);
    // Freed memory inside malloc's heap goes back to the system every few seconds (about a ms each).
    this.trimTimer = setInterval(trimMalloc, TRIM_INTERVAL_MS).unref();
    this.loopDone.then(
      (end) => {
        if (end !== 'stopped') {
          this.log.info({ reason: end, frames: this.loop.processed }, 'input finished; stopping');
          void this.stop(0);
        }
      },
      (err: unknown) => {
        this.log.fatal({ err: (err as Error).message }, 'frame loop failed');
        void this.stop(1);
      },
    );
    await this.sd.ready(`running: ${[...this.cameras.values()].map((c) => c.current.description).join(', ')}`);
    this.sd.startWatchdog(() => this.loop.busyMs() < 60_000);
    this.log.info({ device: cfg.device_id, cameras: redactDeep(Object.fromEntries([...this.cameras].map(([n, c]) => [n, c.resolved]))), mqtt: redactDeep(this.mqtt?.url), parts: this.parts.map((p) => p.name) }, 'daemon running');
  }

  publishStatus(): void {
    const m = this.mqtt;
    if (!m || this.cameras.size === 0) return;
    const view = (cam: Camera): SourceStatus => {
      const c = cam.current;
      return { url: cam.url, kind: cam.resolved?.kind, state: c.state, restarts: c.restarts, frames: c.frames, badFrames: c.badFrames, lastError: c.lastError, retryInMs: c.retryInMs, detecting: cam.detecting };
    };
    m.publisher.setState(
      m.topics.status,
      statusPayload({
        stopping: this.stopping,
        cameras: Object.fromEntries([...this.cameras].map(([n, c]) => [n, view(c)])),
        engine: this.engineInfo(),
      }),
    );
  }

  private onFrame(r: ProcessedFrame): void {
    this.telemetry.processed(
      r.inferenceMs,
      r.latencyMs,
      r.detections.map((d) => d.className),
      r.frame.camera,
    );
    this.events.emit('frame', r);
  }

  health(): Health {
    const now = Date.now();
    const staleMs = this.cfg.http.stale_after_s * 1000;
    const last = this.telemetry.lastProcessedAt;
    const problems: string[] = [];
    const details: Record<string, unknown> = {};
    for (const p of this.parts) {
      const h = p.health?.();
      if (!h) continue;
      problems.push(...(h.problems ?? []));
      Object.assign(details, h.details);
    }
    // Frames must flow: the first within stale_after_s of the start, then at least one per stale_after_s.
    const since = last > 0 ? now - last : now - this.telemetry.startedAt;
    if (since > staleMs) problems.push(`no frame processed for ${(since / 1000).toFixed(1)} s`);
    if (this.loop.busyMs() > staleMs) problems.push(`engine busy on one frame for ${(this.loop.busyMs() / 1000).toFixed(1)} s`);
    if (this.stopping) problems.push('stopping');
    return {
      ok: problems.length === 0,
      problems,
      ...details,
      last_frame_age_s: last > 0 ? round((now - last) / 1000, 2) : null,
      frames: { ...this.telemetry.counts },
    };
  }

  /** SIGHUP: reads the config again and swaps what changed. A bad config is logged and ignored. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload());
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    if (this.stopping) return;
    await this.sd.reloading();
    let cfg: Config;
    try {
      cfg = loadConfig(this.o.load);
      this.check(cfg);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'reload: new configuration rejected; keeping the running one');
      await this.sd.ready('reload rejected; running the previous configuration');
      return;
    }
    this.cfg = cfg;
    this.loop.maxFrames = cfg.max_frames;
    const changed: string[] = [];
    const failed: string[] = [];
    for (const p of this.parts) {
      const prev = this.applied.get(p)!;
      if (!reloadReaches(p, prev, cfg, changed)) {
        this.applied.set(p, cfg);
        continue;
      }
      try {
        if (await p.reload(cfg, { prev, changed })) changed.push(p.name);
        this.applied.set(p, cfg);
      } catch (err) {
        // The part keeps its previous state where it could; the next reload tries it again.
        failed.push(p.name);
        this.log.error({ err: (err as Error).message, part: p.name }, 'reload: a part failed');
      }
    }
    this.publishStatus();
    if (failed.length > 0) {
      this.log.error({ changed, failed }, 'reload failed part way');
      await this.sd.ready('reload failed part way');
      return;
    }
    this.log.info({ changed }, 'configuration reloaded');
    await this.sd.ready(`reloaded (${changed.join(', ') || 'nothing changed'})`);
  }

  /** Finishes the frame in progress, flushes MQTT, publishes `stopped`, releases everything. */
  stop(code = 0): Promise<number> {
    if (!this.stoppingP) {
      this.stoppingP = (async () => {
        await this.reloading.catch(() => undefined);
        this.log.info({ code }, 'stopping');
        await this.sd.stopping();
        await this.teardown();
        this.resolveDone(code);
        return code;
      })();
    }
    return this.stoppingP;
  }

  private async teardown(): Promise<void> {
    this.sd.stopWatchdog();
    clearInterval(this.trimTimer);
    this.loop.stop();
    const started = [...this.begun].reverse();
    for (const p of started) await p.drain?.();
    this.queue.close();
    await this.loopDone?.catch(() => undefined);
    for (const p of started) {
      try {
        await p.stop();
      } catch (err) {
        this.log.warn({ err: (err as Error).message, part: p.name }, 'a part failed to stop');
      }
    }
  }
}
