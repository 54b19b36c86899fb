/**
 * The daemon's MQTT connection (mqtt.js). Two kinds of messages:
 * - state: retained, one current value per topic (availability, status, counts, stats, snapshot,
 *   Home Assistant discovery). The latest value of each is remembered and all are published again,
 *   `online` first, on every (re)connect; while offline only the latest value is kept.
 * - stream: the per-frame detection messages. They are handed to mqtt.js only while connected and
 *   while fewer than max_inflight are unacknowledged; the rest wait in a bounded buffer (messages
 *   and bytes) that drops its oldest entries when full, and counts them. mqtt.js itself re-sends
 *   QoS 1/2 messages that were in flight when the connection broke.
 * Reconnects back off exponentially between reconnect.min_ms and max_ms.
 */
import { EventEmitter } from 'node:events';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { redact } from '../../util/redact.js';

export type QoS = 0 | 1 | 2;

export interface PublisherOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean };
  keepaliveS: number;
  reconnect: { minMs: number; maxMs: number };
  buffer: { maxMessages: number; maxBytes: number };
  maxInflight: number;
  /** Last will: this payload on this topic, retained, QoS 1. */
  will: { topic: string; payload: string };
  log: Logger;
}

interface Pending {
  topic: string;
  payload: Buffer;
  qos: QoS;
}

interface State {
  payload: Buffer;
  qos: QoS;
}

export interface PublisherEvents {
  connect: [{ reconnect: boolean }];
  offline: [];
  dropped: [number];
  message: [string, Buffer];
}

export class Publisher extends EventEmitter<PublisherEvents> {
  private client?: MqttClient;
  private readonly states = new Map<string, State>();
  private readonly buffer: Pending[] = [];
  private bufferBytes = 0;
  private inflight = 0;
  private everConnected = false;
  private wasConnected = false;
  private nextDelay: number;
  private readonly subscriptions = new Set<string>();
  private drainWaiters: (() => void)[] = [];
  private closing = false;
  private errorReported = false;
  /** Messages dropped from the full buffer since the start. */
  dropped = 0;
  /** Stream messages accepted by the broker (callback without error). */
  delivered = 0;

  constructor(private readonly o: PublisherOptions) {
    super();
    this.nextDelay = o.reconnect.minMs;
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  get buffered(): number {
    return this.buffer.length;
  }

  connect(): void {
    const o = this.o;
    const opts: IClientOptions = {
      clientId: o.clientId,
      clean: true,
      protocolVersion: 4,
      keepalive: o.keepaliveS,
      reconnectPeriod: o.reconnect.minMs,
      connectTimeout: 10_000,
      reconnectOnConnackError: true,
      resubscribe: false, // clean sessions: subscriptions are renewed in the connect handler
      will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: 1, retain: true },
      // Without this, mqtt-packet keeps a 2-byte Buffer for each of the 65536 packet ids (about 8 MB
      // of heap and buffers) to save an allocation per packet (the setting is global to mqtt-packet).
      writeCache: false,
    };
    if (o.username !== undefined) opts.username = o.username;
    if (o.password !== undefined) opts.password = o.password;
    if (o.tls) {
      if (o.tls.ca) opts.ca = o.tls.ca;
      if (o.tls.cert) opts.cert = o.tls.cert;
      if (o.tls.key) opts.key = o.tls.key;
      opts.rejectUnauthorized = o.tls.rejectUnauthorized;
    }
    const client = connect(o.url, opts);
    this.client = client;
    const url = redact(o.url);

    client.on('connect', () => {
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.wasConnected = true;
      this.errorReported = false;
      this.nextDelay = o.reconnect.minMs;
      client.options.reconnectPeriod = o.reconnect.minMs;
      o.log.info({ url, reconnect, buffered: this.buffer.length }, 'mqtt connected');
      for (const [topic, s] of this.states) this.send(topic, s.payload, s.qos, true);
      for (const t of this.subscriptions) client.subscribe(t, { qos: 1 });
      this.emit('connect', { reconnect });
      this.drain();
    });
    client.on('close', () => {
      if (this.wasConnected) {
        this.wasConnected = false;
        if (this.closing) return;
        o.log.warn({ url }, 'mqtt connection lost');
        this.emit('offline');
      }
      // Back off: the next attempt waits twice as long, up to max_ms.
      client.options.reconnectPeriod = this.nextDelay;
      this.nextDelay = Math.min(o.reconnect.maxMs, this.nextDelay * 2);
    });
    client.on('error', (err) => {
      // Failed attempts repeat with back-off: the first error after a good connection (or the
      // start) is a warning, the repeats are debug.
      o.log[this.errorReported ? 'debug' : 'warn']({ url, err: redact(err.message) }, 'mqtt error');
      this.errorReported = true;
    });
    client.on('message', (topic, payload) => this.emit('message', topic, payload));
  }

  /** Sets a retained state topic (empty payload: remove it from the broker and from the table). */
  setState(topic: string, payload: string | Buffer, qos: QoS = 1): void {
    const buf = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (buf.length === 0) this.states.delete(topic);
    else {
      // Keep insertion order (availability first) when a value is replaced.
      const had = this.states.has(topic);
      if (had) this.states.get(topic)!.payload = buf;
      else this.states.set(topic, { payload: buf, qos });
    }
    if (this.connected) this.send(topic, buf, qos, true);
  }

  /** The current retained value of a state topic. */
  state(topic: string): Buffer | undefined {
    return this.states.get(topic)?.payload;
  }

  /** Re-sends retained state topics whose name passes the filter (e.g. after Home Assistant restarts). */
  republish(filter: (topic: string) => boolean): void {
    if (!this.connected) return;
    for (const [topic, s] of this.states) if (filter(topic)) this.send(topic, s.payload, s.qos, true);
  }

  /** A per-frame message: sent now, or buffered while offline or while too many are unacknowledged. */
  stream(topic: string, payload: string | Buffer, qos: QoS): void {
    const buf = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (this.connected && this.buffer.length === 0 && this.inflight < this.o.maxInflight) {
      this.sendStream(topic, buf, qos);
      return;
    }
    this.buffer.push({ topic, payload: buf, qos });
    this.bufferBytes += buf.length;
    let dropped = 0;
    const { maxMessages, maxBytes } = this.o.buffer;
    while (this.buffer.length > 0 && (this.buffer.length > maxMessages || this.bufferBytes > maxBytes)) {
      const old = this.buffer.shift()!;
      this.bufferBytes -= old.payload.length;
      dropped++;
    }
    if (dropped > 0) {
      this.dropped += dropped;
      this.emit('dropped', dropped);
    }
    this.drain();
  }

  subscribe(topic: string): void {
    this.subscriptions.add(topic);
    if (this.connected) this.client!.subscribe(topic, { qos: 1 });
  }

  private send(topic: string, payload: Buffer, qos: QoS, retain: boolean): void {
    this.client!.publish(topic, payload, { qos, retain }, (err) => {
      if (err) this.o.log.debug({ topic, err: err.message }, 'mqtt publish failed');
    });
  }

  private sendStream(topic: string, payload: Buffer, qos: QoS): void {
    this.inflight++;
    this.client!.publish(topic, payload, { qos, retain: false }, (err) => {
      this.inflight--;
      if (!err) this.delivered++;
      this.drain();
    });
  }

  private drain(): void {
    while (this.connected && this.buffer.length > 0 && this.inflight < this.o.maxInflight) {
      const p = this.buffer.shift()!;
      this.bufferBytes -= p.payload.length;
      this.sendStream(p.topic, p.payload, p.qos);
    }
    if (this.buffer.length === 0 && this.inflight === 0 && this.drainWaiters.length > 0) {
      const ws = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Resolves when the buffer is empty and everything sent was acknowledged, or after timeoutMs. */
  flush(timeoutMs: number): Promise<boolean> {
    if (this.buffer.length === 0 && this.inflight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.drainWaiters.push(done);
    });
  }

  /**
   * Publishes the final availability (e.g. `stopped`, retained), waits up to timeoutMs for what is
   * buffered and in flight (and as long again for a connection, if messages wait for one), and
   * disconnects cleanly (so the broker does not send the will). Closing again returns the first
   * close's promise.
   */
  close(finalTopic: string, finalPayload: string, timeoutMs: number): Promise<void> {
    this.closed ??= this.closeOnce(finalTopic, finalPayload, timeoutMs);
    return this.closed;
  }

  private closed?: Promise<void>;

  private async closeOnce(finalTopic: string, finalPayload: string, timeoutMs: number): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.closing = true;
    if (!this.connected && this.buffer.length > 0) {
      // Still connecting (or reconnecting): give it the same time to deliver what is waiting.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.once('connect', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if (this.connected) {
      this.states.set(finalTopic, { payload: Buffer.from(finalPayload), qos: 1 });
      const flushed = await this.flush(timeoutMs);
      const acked = await new Promise<boolean>((resolve) => {
        if (!this.connected) return resolve(false);
        const t = setTimeout(() => resolve(false), timeoutMs);
        // The final state, QoS 1: wait for its acknowledgement (mqtt.js keeps order per connection).
        client.publish(finalTopic, finalPayload, { qos: 1, retain: true }, (err) => {
          clearTimeout(t);
          resolve(!err);
        });
      });
      if (!flushed || !acked) this.o.log.warn({ buffered: this.buffer.length, inflight: this.inflight }, 'mqtt: not everything was acknowledged before closing');
    } else if (this.buffer.length > 0) {
      this.o.log.warn({ buffered: this.buffer.length }, 'mqtt: broker unreachable at exit; buffered messages lost');
    }
    await client.endAsync(!this.connected);
  }
}
