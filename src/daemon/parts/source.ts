/**
 * The source: resolved and checked first (a typo fails fast), run by the capture supervisor, frames
 * into the mailbox of the frame loop. Restarted on reload when its section changed, or when a new
 * engine has another input size (ffmpeg scales to it).
 */
import type { Network } from '../../model/ir.js';
import { resolveSource, sourceFactory, type ResolvedSource } from '../capture/open.js';
import { SourceSupervisor, type SupervisorStatus } from '../capture/supervisor.js';
import type { Config } from '../config.js';
import type { DaemonContext, SourceView } from '../context.js';
import type { DaemonPart, PartHealth } from '../part.js';

const inputKey = (net: Network) => JSON.stringify([net.input, net.letterbox]);

export class SourcePart implements DaemonPart, SourceView {
  readonly name = 'source';
  readonly follows = ['model'];
  private supervisor?: SourceSupervisor;
  private builtFor = '';
  resolved: ResolvedSource | undefined;
  url = '';

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return cfg.source;
  }

  check(cfg: Config): void {
    resolveSource(cfg.source);
  }

  get current(): SupervisorStatus {
    return this.supervisor!.current;
  }

  async start(cfg: Config): Promise<void> {
    const ctx = this.ctx;
    const net = ctx.loop.currentEngine.net;
    const log = ctx.log.child({ mod: 'capture' });
    const { resolved, create } = sourceFactory(cfg.source, net, log);
    this.resolved = resolved;
    this.url = cfg.source.url;
    this.builtFor = inputKey(net);
    const s = new SourceSupervisor({
      create,
      stallTimeoutMs: cfg.source.stall_timeout_s * 1000,
      maxBadFrames: cfg.source.max_bad_frames,
      restart: { initialMs: cfg.source.restart.initial_ms, maxMs: cfg.source.restart.max_ms, factor: cfg.source.restart.factor },
      stableAfterMs: cfg.source.stable_after_s * 1000,
      log,
    });
    let prev: SupervisorStatus = s.current;
    s.on('state', (st: SupervisorStatus) => {
      if (s !== this.supervisor) return;
      if (st.restarts > prev.restarts) ctx.telemetry.sourceRestart();
      ctx.telemetry.sourceUp(st.state === 'running');
      prev = st;
      ctx.publishStatus();
      if (st.state === 'ended') ctx.mailbox.close(); // the loop processes what is pending, then ends
      if (st.state === 'running' || st.state === 'restarting') void ctx.sd.status(`${st.state}: ${st.description}`);
    });
    s.on('bad', () => ctx.telemetry.badFrame());
    s.deliver = (f, live) => {
      ctx.telemetry.captured();
      if (live) {
        ctx.mailbox.put(f);
        return;
      }
      ctx.loop.prepare(f);
      return ctx.mailbox.putWait(f);
    };
    this.supervisor = s;
    ctx.source = this;
    s.start();
  }

  async reload(cfg: Config, r: { prev: Config }): Promise<boolean> {
    const sameSection = JSON.stringify(r.prev.source) === JSON.stringify(cfg.source);
    if (sameSection && inputKey(this.ctx.loop.currentEngine.net) === this.builtFor) return false;
    await this.supervisor?.stop();
    this.ctx.mailbox.reopen();
    await this.start(cfg);
    return true;
  }

  async drain(): Promise<void> {
    await this.supervisor?.stop();
  }

  async stop(): Promise<void> {
    await this.supervisor?.stop();
  }

  health(): PartHealth {
    const s = this.supervisor?.current;
    const problems: string[] = [];
    if (!s || s.state !== 'running') problems.push(`source ${s?.state ?? 'missing'}${s?.lastError ? `: ${s.lastError}` : ''}`);
    return {
      problems,
      details: { source: s ? { state: s.state, description: s.description, restarts: s.restarts, last_error: s.lastError ?? null } : null },
    };
  }
}
