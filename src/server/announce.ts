/**
 * Announces every channel's current version as a retained MQTT message, so a device learns of a new
 * version within the broker's latency instead of at its next poll, and a device that connects later
 * finds the current one waiting. Topic and payload: docs/formats/update-protocol.md.
 */
import { connect, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Descriptor } from './registry.js';

export const ANNOUNCE_VERSION = 1;

/** `<prefix>/updates/<model>/<channel>` */
export function announceTopic(prefix: string, model: string, channel: string): string {
  return `${prefix}/updates/${model}/${channel}`;
}

export interface AnnouncerOptions {
  url: string;
  prefix: string;
  username?: string;
  password?: string;
  /** The server's public URL, put into the payload so a device can download without other config. */
  serverUrl: string;
  log: Logger;
  /** All current descriptors: published again on every (re)connect, in case the broker lost them. */
  current: () => Descriptor[];
}

export class Announcer {
  private readonly client: MqttClient;
  private readonly last = new Map<string, string>();

  constructor(private readonly o: AnnouncerOptions) {
    this.client = connect(o.url, {
      clientId: `zeroq-server-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      username: o.username,
      password: o.password,
      reconnectPeriod: 1000,
      // Offline, publish() queues (QoS 1): an announcement made while the broker is down goes out on reconnect.
      queueQoSZero: false,
    });
    this.client.on('connect', () => {
      o.log.info({ url: o.url }, 'announcing on MQTT');
      for (const d of o.current()) this.announce(d, true);
    });
    this.client.on('error', (e) => o.log.warn({ err: e.message }, 'MQTT error'));
  }

  payload(d: Descriptor): string {
    return JSON.stringify({ ...d, v: ANNOUNCE_VERSION, url: new URL(d.url, this.o.serverUrl).href });
  }

  /** Publishes the descriptor (retained, QoS 1); unchanged payloads are not sent again unless forced. */
  announce(d: Descriptor, force = false): void {
    const topic = announceTopic(this.o.prefix, d.model, d.channel);
    const payload = this.payload(d);
    if (!force && this.last.get(topic) === payload) return;
    this.last.set(topic, payload);
    this.client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (err) this.o.log.warn({ topic, err: err.message }, 'announcement not delivered');
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync(false).catch(() => undefined);
  }
}
