/**
 * `zeroq serve`: the retraining server put together — storage, registry, jobs, the hard-frame pool,
 * the HTTP API and the MQTT announcer — with an explicit start and close.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { readPrivateKey } from '../qnet/keys.js';
import { writeFileAtomic } from '../util/atomic.js';
import { ZeroqError } from '../util/errors.js';
import { Announcer } from './announce.js';
import { buildApp } from './app.js';
import { JobRunner, type JobOptions } from './jobs.js';
import { HardFramePool, type PoolOptions } from './pool.js';
import { Registry } from './registry.js';
import { FsStorage } from './storage.js';

export interface ServerOptions {
  dataDir: string;
  host: string;
  port: number;
  /** Admin token; default: read from (or created in) DATA_DIR/admin-token. */
  adminToken?: string;
  /** Keys whose signatures publishing accepts, besides the server's own key. */
  trust: readonly KeyObject[];
  mqtt?: { url: string; prefix: string; username?: string; password?: string };
  /** The URL devices reach the server at (default http://host:port), for announcements. */
  publicUrl?: string;
  maxSetBytes: number;
  pool: PoolOptions;
  jobs: Omit<JobOptions, 'log'>;
  /** Start a retraining job per model after this many new frames in the pool (0: never). */
  retrainAfter: number;
  retrainChannels: { from: string; to: string };
  log: Logger;
  version: string;
}

export interface RunningServer {
  url: string;
  adminTokenFile?: string;
  registry: Registry;
  jobs: JobRunner;
  app: FastifyInstance;
  close(): Promise<void>;
}

async function adminToken(o: ServerOptions): Promise<{ token: string; file?: string }> {
  if (o.adminToken) return { token: o.adminToken };
  const file = path.join(o.dataDir, 'admin-token');
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if (t.length >= 16) return { token: t, file };
  } catch {
    /* first start */
  }
  const token = `zqa_${randomBytes(24).toString('base64url')}`;
  await writeFileAtomic(file, token + '\n', 0o600);
  return { token, file };
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log;
  const storage = await FsStorage.open(o.dataDir);
  const trust = [...o.trust];
  if (o.jobs.key) trust.push(createPublicKey(readPrivateKey(o.jobs.key)));
  if (trust.length === 0) log.warn('no trusted keys (--trust, --key): published sets must be signed, but by any key');
  const registry = await Registry.open(storage, trust);
  const jobs = new JobRunner(registry, storage, { ...o.jobs, log: log.child({ mod: 'jobs' }) });
  const pool = new HardFramePool(storage, o.pool);
  const { token, file } = await adminToken(o);

  let sinceRetrain = 0;
  const onFrame = () => {
    if (o.retrainAfter <= 0 || ++sinceRetrain < o.retrainAfter) return;
    sinceRetrain = 0;
    for (const [model, m] of Object.entries(registry.models())) {
      if (!m.channels[o.retrainChannels.from]) continue;
      if (jobs.pending().some((j) => j.kind === 'retrain' && j.model === model)) continue;
      void jobs.enqueue({ kind: 'retrain', model, ...o.retrainChannels, by: `${o.retrainAfter} new hard frames` });
    }
  };
  const app = await buildApp({ registry, jobs, pool, adminToken: token, maxSetBytes: o.maxSetBytes, scoreNew: !!o.jobs.validation, log: log.child({ mod: 'http' }), version: o.version, onFrame });

  let announcer: Announcer | undefined;
  const closeAll = async () => {
    await app.close().catch(() => undefined);
    await jobs.stop();
    await announcer?.close();
    await registry.close();
  };
  try {
    await app.listen({ host: o.host, port: o.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : o.port;
    const realUrl = o.publicUrl ?? `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
    if (o.mqtt) {
      announcer = new Announcer({ ...o.mqtt, serverUrl: realUrl, log: log.child({ mod: 'announce' }), current: () => registry.allDescriptors() });
      registry.on('channel', (d) => announcer!.announce(d));
    }
    await jobs.start();
    log.info({ url: realUrl, dataDir: storage.root, adminTokenFile: file, mqtt: o.mqtt?.url ?? null }, 'server listening');
    return { url: realUrl, adminTokenFile: file, registry, jobs, app, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** "host:port" → parts ("[::1]:8470" for IPv6). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  if (!m) throw new ZeroqError('bad-option', 'expected HOST:PORT, e.g. 127.0.0.1:8470', s);
  const port = Number(m[3]);
  if (port > 65535) throw new ZeroqError('bad-option', 'port out of range', s);
  return { host: m[1] ?? m[2], port };
}

/** A token given directly or in a file. */
export function readToken(value: string | undefined, file: string | undefined, what: string): string | undefined {
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new ZeroqError('bad-option', `cannot read the ${what}: ${(e as Error).message}`, file);
    }
  }
  return value;
}
