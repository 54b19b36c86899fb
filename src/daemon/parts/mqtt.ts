/**
 * The MQTT connection (and the embedded broker when no URL is configured, and the --print
 * subscriber). Rebuilt on reload when the connection settings or the device id change: the old
 * device publishes `stopped`, the new one `online`. Other parts put their retained state on a new
 * connection when the `mqtt` event announces it.
 */
import { readFileSync } from 'node:fs';
import { ZeroqError } from '../../util/errors.js';
import type { Config } from '../config.js';
import type { DaemonContext, MqttLink } from '../context.js';
import { readSecret } from '../capture/open.js';
import { isLoopback, startEmbeddedBroker, type EmbeddedBroker } from '../mqtt/broker.js';
import { slug } from '../mqtt/ha-discovery.js';
import { startPrinter, type Printer } from '../mqtt/printer.js';
import { Publisher, type PublisherOptions } from '../mqtt/publisher.js';
import { AVAILABILITY, topicsFor } from '../mqtt/topics.js';
import type { DaemonPart, PartHealth } from '../part.js';

interface Connection {
  link: MqttLink;
  broker?: EmbeddedBroker;
  printer?: Printer;
  flushTimeoutMs: number;
}

export class MqttPart implements DaemonPart {
  readonly name = 'mqtt';
  private conn?: Connection;

  constructor(private readonly ctx: DaemonContext) {}

  section(c: Config): unknown {
    return [c.mqtt, c.device_id, c.print, c.homeassistant.enabled, c.homeassistant.discovery_prefix];
  }

  check(cfg: Config): void {
    const e = cfg.mqtt.embedded;
    if (!cfg.mqtt.url && !e.username && !isLoopback(e.host)) {
      throw new ZeroqError('config', `the embedded broker listens on ${e.host}, beyond localhost: set username and password (or password_file)`, 'mqtt.embedded');
    }
  }

  async start(cfg: Config): Promise<void> {
    this.conn = await this.connect(cfg);
  }

  async reload(cfg: Config): Promise<boolean> {
    const prev = this.conn;
    this.conn = undefined;
    this.ctx.mqtt = undefined;
    if (prev) await this.close(prev);
    this.conn = await this.connect(cfg);
    return true;
  }

  async stop(): Promise<void> {
    const c = this.conn;
    this.conn = undefined;
    this.ctx.mqtt = undefined;
    if (c) await this.close(c);
  }

  health(): PartHealth {
    const p = this.conn?.link.publisher;
    return { details: { mqtt: { connected: p?.connected ?? false, buffered: p?.buffered ?? 0 } } };
  }

  private async connect(cfg: Config): Promise<Connection> {
    const log = this.ctx.log.child({ mod: 'mqtt' });
    let broker: EmbeddedBroker | undefined;
    let url = cfg.mqtt.url;
    if (!url) {
      const e = cfg.mqtt.embedded;
      const password = e.password_file ? readSecret(e.password_file, 'mqtt.embedded.password_file') : e.password;
      broker = await startEmbeddedBroker(e.host, e.port, log, {
        auth: e.username !== undefined && password !== undefined ? { username: e.username, password } : undefined,
        base: topicsFor(cfg.mqtt.prefix, cfg.device_id!).base,
        discoveryPrefix: cfg.homeassistant.discovery_prefix,
        maxMessageBytes: e.max_message_bytes,
        maxRetainedBytes: e.max_retained_bytes,
      });
      url = broker.url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
    }
    try {
      return await this.connectTo(cfg, url, broker);
    } catch (err) {
      await broker?.close();
      throw err;
    }
  }

  private async connectTo(cfg: Config, url: string, broker: EmbeddedBroker | undefined): Promise<Connection> {
    const ctx = this.ctx;
    const log = ctx.log.child({ mod: 'mqtt' });
    const topics = topicsFor(cfg.mqtt.prefix, cfg.device_id!);
    const m = cfg.mqtt;
    const readOpt = (file: string | undefined, key: string): Buffer | undefined => {
      if (!file) return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new ZeroqError('config', `cannot read ${file}: ${(err as Error).message}`, key);
      }
    };
    let username = m.username;
    let password = m.password;
    if (m.password_file) password = readOpt(m.password_file, 'mqtt.password_file')!.toString('utf8').replace(/\r?\n$/, '');
    if (broker) ({ username, password } = broker.internal);
    const tls = m.tls
      ? { ca: readOpt(m.tls.ca, 'mqtt.tls.ca'), cert: readOpt(m.tls.cert, 'mqtt.tls.cert'), key: readOpt(m.tls.key, 'mqtt.tls.key'), rejectUnauthorized: m.tls.reject_unauthorized }
      : undefined;
    const popts: PublisherOptions = {
      url,
      clientId: m.client_id ?? `zeroq-${cfg.device_id}`,
      username,
      password,
      tls,
      keepaliveS: m.keepalive_s,
      reconnect: { minMs: m.reconnect.min_ms, maxMs: m.reconnect.max_ms },
      buffer: { maxMessages: m.buffer.max_messages, maxBytes: m.buffer.max_bytes },
      maxInflight: m.max_inflight,
      will: { topic: topics.availability, payload: AVAILABILITY.offline },
      log,
    };
    const publisher = new Publisher(popts);
    const link: MqttLink = { publisher, topics, deviceId: cfg.device_id!, url };
    const conn: Connection = { link, broker, flushTimeoutMs: m.flush_timeout_s * 1000 };

    if (cfg.print) {
      const discovery = `${cfg.homeassistant.discovery_prefix}/+/zeroq_${slug(cfg.device_id!)}/#`;
      conn.printer = startPrinter(url, cfg.homeassistant.enabled ? [`${topics.base}/#`, discovery] : `${topics.base}/#`, ctx.out, { username, password, ca: tls?.ca, cert: tls?.cert, key: tls?.key, rejectUnauthorized: tls?.rejectUnauthorized });
    }

    // `online` is the first state topic, so every (re)connect announces it before the rest.
    publisher.setState(topics.availability, AVAILABILITY.online);
    publisher.on('connect', ({ reconnect }) => {
      ctx.telemetry.mqttConnected(true);
      if (reconnect) ctx.telemetry.mqttReconnect();
    });
    publisher.on('offline', () => ctx.telemetry.mqttConnected(false));
    publisher.on('dropped', (n) => {
      ctx.telemetry.mqttDropped(n);
      log.warn({ dropped: n, total: publisher.dropped }, 'offline buffer full; dropped the oldest messages');
    });
    ctx.mqtt = link;
    ctx.events.emit('mqtt', link);
    publisher.connect();
    if (conn.printer) {
      // Let the printer subscribe first so that it shows the first frames; a broker that is down
      // must not hold the daemon back.
      await Promise.race([conn.printer.ready, new Promise((r) => setTimeout(r, 3000).unref())]);
    }
    return conn;
  }

  private async close(c: Connection): Promise<void> {
    const { publisher, topics } = c.link;
    await publisher.close(topics.availability, AVAILABILITY.stopped, c.flushTimeoutMs);
    if (c.printer) {
      await c.printer.waitFor(topics.availability, AVAILABILITY.stopped, 2000);
      await c.printer.close();
    }
    await c.broker?.close();
  }
}
