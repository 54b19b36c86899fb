/** The HTTP port: /healthz, /metrics and the live view; restarted on reload when its section changed. */
import os from 'node:os';
import type { Config } from '../config.js';
import type { DaemonContext } from '../context.js';
import { startOpsServer, type OpsServer } from '../http.js';
import { LiveView } from '../web/live-view.js';
import type { DaemonPart } from '../part.js';

export class HttpPart implements DaemonPart {
  readonly name = 'http';
  private server?: OpsServer;
  private live?: LiveView;

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return cfg.http;
  }

  get port(): number | undefined {
    return this.server?.port;
  }

  /** The address others reach the live view at. */
  get url(): string | undefined {
    if (!this.server) return undefined;
    const h = this.ctx.config.http;
    if (h.public_url) return h.public_url.replace(/\/+$/, '');
    const host = h.host === '0.0.0.0' || h.host === '::' ? os.hostname() : h.host.includes(':') ? `[${h.host}]` : h.host;
    return `http://${host}:${this.server.port}`;
  }

  async start(cfg: Config): Promise<void> {
    if (cfg.http.port === 0) return;
    this.live = new LiveView(this.ctx);
    this.server = await startOpsServer(cfg.http.host, cfg.http.port, () => this.ctx.health(), this.ctx.telemetry.registry, this.ctx.log.child({ mod: 'http' }), this.live.routes);
  }

  async reload(cfg: Config): Promise<boolean> {
    await this.stop();
    await this.start(cfg);
    return true;
  }

  async stop(): Promise<void> {
    this.live?.close();
    this.live = undefined;
    await this.server?.close();
    this.server = undefined;
  }
}
