/**
 * Home Assistant discovery: the retained configs on every new MQTT connection, sent again when Home
 * Assistant announces `online` on <discovery_prefix>/status, updated on reload when the classes or
 * the model change (configs of entities that went away are cleared).
 */
import type { Config } from '../config.js';
import type { DaemonContext, MqttLink } from '../context.js';
import { discoveryConfigs } from '../mqtt/ha-discovery.js';
import type { DaemonPart, ReloadContext } from '../part.js';

export class HomeAssistantPart implements DaemonPart {
  readonly name = 'homeassistant';
  readonly follows = ['model', 'http', 'cameras'];
  /** Discovery topics published on the current link. */
  private published = new Set<string>();
  private readonly onLink = (link: MqttLink) => this.attach(link);
  /** A re-send waiting for the end of the interval. */
  private pending?: NodeJS.Timeout;

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return cfg.homeassistant;
  }

  async start(): Promise<void> {
    this.ctx.events.on('mqtt', this.onLink);
    if (this.ctx.mqtt) this.attach(this.ctx.mqtt);
  }

  async reload(_cfg: Config, r: ReloadContext): Promise<boolean> {
    // A new connection got the new configs when it was made, unless the cameras or the live
    // view's address changed after it.
    if (!this.ctx.mqtt || (r.changed.includes('mqtt') && !r.changed.includes('http') && !r.changed.includes('cameras'))) return false;
    this.publish(this.ctx.mqtt);
    return true;
  }

  async stop(): Promise<void> {
    this.ctx.events.off('mqtt', this.onLink);
    if (this.pending) clearTimeout(this.pending);
    this.pending = undefined;
  }

  private attach(link: MqttLink): void {
    if (this.pending) clearTimeout(this.pending);
    this.pending = undefined;
    // The configuration being applied: a reload rebuilds the connection before this part's turn.
    const cfg = this.ctx.config;
    this.published = new Set();
    this.publish(link);
    if (!cfg.homeassistant.enabled) return;
    const status = `${cfg.homeassistant.discovery_prefix}/status`;
    // A flood of `online` messages makes one re-send now and at most one per interval after it.
    let last = -Infinity;
    link.publisher.on('message', (topic, payload) => {
      if (topic !== status || payload.toString() !== 'online' || this.pending) return;
      const wait = last + this.ctx.config.homeassistant.resend_min_interval_s * 1000 - Date.now();
      const resend = () => {
        this.pending = undefined;
        if (this.ctx.mqtt !== link) return;
        last = Date.now();
        this.ctx.log.child({ mod: 'mqtt' }).info('Home Assistant is online; sending discovery again');
        link.publisher.republish(() => true);
      };
      if (wait <= 0) resend();
      else this.pending = setTimeout(resend, wait);
    });
    link.publisher.subscribe(status);
  }

  private publish(link: MqttLink): void {
    const cfg = this.ctx.config;
    const configs = cfg.homeassistant.enabled
      ? discoveryConfigs({
          discoveryPrefix: cfg.homeassistant.discovery_prefix,
          deviceId: link.deviceId,
          topics: link.topics,
          classes: cfg.homeassistant.classes,
          model: this.ctx.loop.currentEngine.net.name,
          version: this.ctx.version,
          cameras: [...this.ctx.cameras.values()].map((c) => ({ name: c.name, topicLevel: c.def.topicLevel })),
          configurationUrl: this.ctx.publicUrl(),
        })
      : new Map<string, string>();
    for (const t of this.published) if (!configs.has(t)) link.publisher.setState(t, '');
    for (const [t, payload] of configs) link.publisher.setState(t, payload);
    this.published = new Set(configs.keys());
  }
}
