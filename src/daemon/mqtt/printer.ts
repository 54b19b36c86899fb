/**
 * --print: a subscriber on the daemon's own topics and its Home Assistant discovery topics that
 * writes one line per message received, so what is printed is what any client of the broker sees.
 */
import { connect, type MqttClient } from 'mqtt';
import type { Writable } from 'node:stream';

export interface Printer {
  /** Resolves once the subscription is active. */
  ready: Promise<void>;
  /** Resolves when the latest message on this topic has this payload (false after timeoutMs). */
  waitFor(topic: string, payload: string, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export function formatMessage(topic: string, payload: Buffer, retain: boolean): string {
  const binary = payload.length >= 3 && payload[0] === 0xff && payload[1] === 0xd8 && payload[2] === 0xff;
  const body = binary ? `<jpeg ${payload.length} bytes>` : payload.toString('utf8');
  return `${topic}${retain ? ' (retained)' : ''} ${body}`;
}

export function startPrinter(url: string, filter: string | string[], out: Writable, clientOpts: Record<string, unknown> = {}): Printer {
  const client: MqttClient = connect(url, { ...clientOpts, clientId: `zeroq-print-${process.pid}`, clean: true, reconnectPeriod: 1000, writeCache: false });
  const waiters: { topic: string; payload: string; done: () => void }[] = [];
  const latest = new Map<string, string>();
  client.on('message', (topic, payload, packet) => {
    out.write(formatMessage(topic, payload, packet.retain) + '\n');
    latest.set(topic, payload.toString());
    for (const w of [...waiters]) if (w.topic === topic && w.payload === payload.toString()) w.done();
  });
  client.on('error', () => undefined);
  const ready = new Promise<void>((resolve) => {
    client.on('connect', () => {
      client.subscribe(filter, { qos: 1 }, () => resolve());
    });
  });
  return {
    ready,
    waitFor(topic, payload, timeoutMs) {
      if (latest.get(topic) === payload) return Promise.resolve(true);
      return new Promise((resolve) => {
        const w = {
          topic,
          payload,
          done: () => {
            clearTimeout(t);
            waiters.splice(waiters.indexOf(w), 1);
            resolve(true);
          },
        };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          resolve(false);
        }, timeoutMs);
        waiters.push(w);
      });
    },
    close: () => client.endAsync(true),
  };
}
