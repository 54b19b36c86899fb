/**
 * The embedded broker (aedes, in process) used when no broker URL is configured, so that the daemon
 * runs on a fresh machine. Safe by default:
 * - it listens on localhost unless configured otherwise, and beyond localhost only with a user name
 *   and password that every other client must give;
 * - the daemon logs in with a secret made at start, and only it may publish on the device's topics
 *   and its Home Assistant discovery topics; other clients may publish commands (`…/set`, not
 *   retained) and Home Assistant's `<discovery_prefix>/status`;
 * - a message larger than max_message_bytes closes the connection as soon as its header arrives
 *   (before the body is buffered), and retained messages of other clients are refused beyond
 *   max_retained_bytes in all.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Client } from 'aedes';
import type { Logger } from 'pino';
import { ZeroqError } from '../../util/errors.js';

export interface BrokerAccess {
  /** Required of every client but the daemon (absent: anonymous clients, on localhost only). */
  auth?: { username: string; password: string };
  /** `<prefix>/<device_id>`: only the daemon publishes below it, except commands. */
  base?: string;
  /** Home Assistant's discovery prefix: only the daemon publishes below it, except `status`. */
  discoveryPrefix?: string;
  maxMessageBytes: number;
  maxRetainedBytes: number;
}

export const BROKER_LIMITS = { maxMessageBytes: 4 * 1024 * 1024, maxRetainedBytes: 32 * 1024 * 1024 };

export interface EmbeddedBroker {
  url: string;
  port: number;
  /** The daemon's own login. */
  internal: { username: string; password: string };
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host) || /^::ffff:127\./.test(host);
}

const equal = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

function notAuthorized(message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode: 5 });
}

/**
 * Watches the MQTT fixed headers on a connection and destroys it when a packet announces more than
 * maxBytes: the broker's parser would otherwise buffer the whole body first.
 */
export function guardPacketSize(sock: net.Socket, maxBytes: number, onTooBig: (bytes: number) => void): void {
  // 0: at a packet's first byte; 1: in the remaining-length bytes; 2: skipping the body.
  let stage = 0;
  let length = 0;
  let mult = 1;
  let skip = 0;
  sock.on('data', (chunk: Buffer) => {
    let i = 0;
    while (i < chunk.length) {
      if (stage === 0) {
        stage = 1;
        length = 0;
        mult = 1;
        i++;
      } else if (stage === 1) {
        const b = chunk[i++];
        length += (b & 0x7f) * mult;
        mult *= 128;
        if (b & 0x80) {
          if (mult > 128 ** 4) return sock.destroy();
          continue;
        }
        if (length > maxBytes) {
          onTooBig(length);
          sock.destroy();
          return;
        }
        skip = length;
        stage = skip === 0 ? 0 : 2;
      } else {
        const n = Math.min(skip, chunk.length - i);
        skip -= n;
        i += n;
        if (skip === 0) stage = 0;
      }
    }
  });
}

export async function startEmbeddedBroker(host: string, port: number, log: Logger, access: BrokerAccess = BROKER_LIMITS): Promise<EmbeddedBroker> {
  if (!access.auth && !isLoopback(host)) {
    throw new ZeroqError('config', `the embedded broker listens on ${host}, beyond localhost: set username and password (or password_file)`, 'mqtt.embedded');
  }
  const internal = { username: 'zeroq-daemon', password: randomBytes(24).toString('base64url') };
  const trusted = new WeakSet<Client>();
  /** Retained bytes per topic stored for clients other than the daemon. */
  const retained = new Map<string, number>();
  let retainedBytes = 0;
  const under = (topic: string, prefix: string | undefined) => prefix !== undefined && (topic === prefix || topic.startsWith(`${prefix}/`));

  // Loaded only here: a daemon with a broker URL does not carry aedes.
  const { Aedes } = await import('aedes');
  const aedes = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const pw = password ?? Buffer.alloc(0);
      if (username === internal.username && equal(pw, Buffer.from(internal.password))) {
        trusted.add(client);
        return done(null, true);
      }
      if (!access.auth) return done(null, true);
      if (username === access.auth.username && equal(pw, Buffer.from(access.auth.password))) return done(null, true);
      log.warn({ client: client.id }, 'embedded broker: login refused');
      const err = Object.assign(new Error('bad user name or password'), { returnCode: 4 as const });
      done(err, false);
    },
    authorizePublish(client, packet, done) {
      if (!client || trusted.has(client)) return done(null);
      const topic = packet.topic;
      const size = packet.payload.length;
      if (size > access.maxMessageBytes) return done(notAuthorized(`message of ${size} bytes`));
      const own = under(topic, access.base);
      const discovery = under(topic, access.discoveryPrefix);
      const command = own && topic.endsWith('/set') && !packet.retain;
      const haStatus = topic === `${access.discoveryPrefix}/status`;
      if ((own && !command) || (discovery && !haStatus)) {
        log.warn({ client: client.id, topic }, 'embedded broker: refused a publish on the daemon\'s topics');
        return done(notAuthorized(`${topic} is the daemon's`));
      }
      if (packet.retain) {
        const before = retained.get(topic) ?? 0;
        const after = retainedBytes - before + size;
        if (after > access.maxRetainedBytes) {
          log.warn({ client: client.id, topic, bytes: size }, 'embedded broker: retained storage full; refused');
          return done(notAuthorized('retained storage full'));
        }
        retainedBytes = after;
        if (size === 0) retained.delete(topic);
        else retained.set(topic, size);
      }
      done(null);
    },
  });
  const server = net.createServer((sock) => {
    aedes.handle(sock);
    guardPacketSize(sock, access.maxMessageBytes + 65_536 + 8, (bytes) => log.warn({ remote: sock.remoteAddress, bytes }, 'embedded broker: message too large; connection closed'));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      aedes.close();
      const hint = err.code === 'EADDRINUSE' ? ' (a broker already runs there? set mqtt.url to use it, or mqtt.embedded.port)' : '';
      reject(new ZeroqError('mqtt-broker', `cannot listen on ${host}:${port}: ${err.message}${hint}`, 'mqtt.embedded'));
    });
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `mqtt://${hostPart}:${addr.port}`;
  log.info({ url, auth: access.auth ? 'password' : 'anonymous on localhost' }, 'embedded MQTT broker listening');
  return {
    url,
    port: addr.port,
    internal,
    close: () =>
      new Promise<void>((resolve) => {
        // Clients (ours included) are disconnected by aedes.close; the server then closes.
        aedes.close(() => server.close(() => resolve()));
      }),
  };
}
