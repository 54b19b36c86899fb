/**
 * The engine: opened at the start (through DaemonContext.openEngine), replaced on reload when the
 * model section changed — the new engine is opened before the frame loop lets go of the old one,
 * which is then closed.
 */
import type { Engine } from '../../engine/engine.js';
import type { Config } from '../config.js';
import type { DaemonContext } from '../context.js';
import type { DaemonPart, PartHealth } from '../part.js';
import type { EngineInfo } from '../mqtt/payloads.js';

export class ModelPart implements DaemonPart {
  readonly name = 'model';
  private engine?: Engine;
  private threads = 1;
  private unwatch?: () => void;

  constructor(private readonly ctx: DaemonContext) {
    // Another part (updates) may swap the engine: the one in use is the one to close at stop.
    ctx.events.on('engine', (e) => {
      this.engine = e;
      this.note();
    });
  }

  section(cfg: Config): unknown {
    return cfg.model;
  }

  async start(cfg: Config): Promise<void> {
    const t0 = performance.now();
    this.engine = await this.ctx.openEngine(cfg.model);
    this.threads = cfg.model.threads;
    this.ctx.log.info({ engine: this.engine.kind, model: this.engine.modelId, ms: Math.round(performance.now() - t0) }, 'engine ready');
    this.ctx.loop.setEngine(this.engine);
    this.watch(this.engine);
    this.note();
  }

  /** An engine behind a link: its state changes go to the log and the retained status at once. */
  private watch(e: Engine): void {
    this.unwatch?.();
    this.unwatch = undefined;
    this.ctx.telemetry.engineLink(e.link ? () => e.link!() : undefined);
    if (!e.onLinkChange) return;
    this.unwatch = e.onLinkChange((l) => {
      const fields = { engine: e.kind, device: l.device, state: l.state, reason: l.reason };
      if (l.state === 'ready') this.ctx.log.info(fields, 'engine link ready');
      else this.ctx.log.warn(fields, 'engine link not on the device');
      this.ctx.publishStatus();
    });
  }

  async reload(cfg: Config): Promise<boolean> {
    const next = await this.ctx.openEngine(cfg.model);
    const prev = await this.ctx.loop.swapEngine(next);
    await prev?.close();
    this.engine = next;
    this.watch(next);
    this.threads = cfg.model.threads;
    this.note();
    this.ctx.events.emit('engine', next);
    return true;
  }

  info(): EngineInfo {
    const e = this.ctx.loop.currentEngine;
    const link = e.link?.();
    return { kind: e.kind, model: e.net.name, weights: e.modelId, threads: this.threads, ...(link ? { link } : {}) };
  }

  private note(): void {
    const i = this.info();
    this.ctx.telemetry.engine(i.kind, i.model, i.weights, i.threads);
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    this.unwatch = undefined;
    await this.engine?.close();
    this.engine = undefined;
  }

  health(): PartHealth {
    return { details: { engine: this.info() } };
  }
}
