/**
 * The retraining server's HTTP API (docs/formats/update-protocol.md), on fastify: routes, the
 * admin and device tokens, conditional and ranged downloads, uploads with size limits.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isZeroqError, ZeroqError } from '../util/errors.js';
import type { JobRunner } from './jobs.js';
import { renderPage } from './page.js';
import type { HardFramePool } from './pool.js';
import { NAME_RE, sameSecret, type Registry } from './registry.js';

export interface AppOptions {
  registry: Registry;
  jobs: JobRunner;
  pool: HardFramePool;
  adminToken: string;
  /** Largest weight set accepted by publish, bytes. */
  maxSetBytes: number;
  /** Score every new version (a validation list is configured). */
  scoreNew: boolean;
  log: Logger;
  version: string;
  /** Called after a frame is accepted (automatic retraining). */
  onFrame?: () => void;
}

const STATUS: Record<string, number> = {
  'not-found': 404,
  'bad-request': 400,
  unauthorized: 401,
  forbidden: 403,
  'too-large': 413,
  'rate-limited': 429,
};

function statusOf(e: ZeroqError): number {
  if (STATUS[e.code]) return STATUS[e.code];
  if (e.code.startsWith('zqw-') || e.code.startsWith('QNET')) return 422; // a refused weight set
  return 500;
}

/** Parses a single `bytes=a-b` range; undefined: serve everything; 'bad': 416. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | 'bad' {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // several ranges or another unit: the whole file (RFC 9110 allows ignoring Range)
  const [, a, b] = m;
  if (a === '' && b === '') return 'bad';
  let start: number;
  let end: number;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'bad';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start >= size || start > end) return 'bad';
  return { start, end };
}

const bearer = (req: FastifyRequest): string | undefined => {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(\S+)$/i.exec(h) : null;
  return m?.[1];
};

function name(value: string, what: string): string {
  if (!NAME_RE.test(value)) throw new ZeroqError('bad-request', `not a valid ${what}`, value);
  return value;
}

export async function buildApp(o: AppOptions): Promise<FastifyInstance> {
  const { registry, jobs, pool } = o;
  const app = Fastify({
    loggerInstance: o.log as FastifyBaseLogger,
    // One line per request would drown the log at fleet scale; the routes log what changes state.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1 << 20,
    // Downloads of a few MB on slow links: no request timeout, but idle connections are closed.
    keepAliveTimeout: 10_000,
  });
  for (const type of ['application/octet-stream', 'image/jpeg', 'image/png']) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: Math.max(o.maxSetBytes, pool.o.maxFrameBytes) }, (_req, body, done) => done(null, body));
  }

  const admin = (req: FastifyRequest): string => {
    const t = bearer(req);
    if (!t) throw new ZeroqError('unauthorized', 'this needs the admin token (Authorization: Bearer …)', req.url);
    if (!sameSecret(t, o.adminToken)) throw new ZeroqError('forbidden', 'wrong admin token', req.url);
    const who = req.headers['x-zeroq-publisher'];
    return typeof who === 'string' && who.length > 0 && who.length < 100 ? who : 'admin';
  };
  /** The device a request comes from: undefined without a token; an unknown token is refused. */
  const device = (req: FastifyRequest, required: boolean): string | undefined => {
    const t = bearer(req);
    if (!t) {
      if (required) throw new ZeroqError('unauthorized', 'this needs a device token (Authorization: Bearer …; zeroq device add ID)', req.url);
      return undefined;
    }
    const id = registry.deviceFor(t);
    if (!id) throw new ZeroqError('forbidden', 'unknown device token', req.url);
    return id;
  };

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (isZeroqError(err)) {
      const status = statusOf(err);
      const retry = (err as ZeroqError & { retryAfterS?: number }).retryAfterS;
      if (retry) void reply.header('retry-after', String(retry));
      if (status >= 500) req.log.error({ err: err.message, url: req.url }, 'request failed');
      return reply.status(status).send({ error: err.code, message: err.message });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err: err.message, url: req.url }, 'request failed');
    return reply.status(status).send({ error: err.code ?? 'error', message: err.message });
  });

  app.get('/', async (_req, reply) => {
    const page = renderPage({
      models: registry.models(),
      reports: registry.reportsSnapshot(),
      devices: Object.keys(registry.devices()),
      jobs: registry.jobs(),
      pool: await pool.size(),
      version: o.version,
    });
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page);
  });

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/v1/models', async () => ({
    models: Object.entries(registry.models()).map(([n, m]) => ({
      name: n,
      versions: m.versions.length,
      channels: Object.fromEntries(Object.entries(m.channels).map(([c, r]) => [c, r.version])),
    })),
  }));

  app.get<{ Params: { model: string } }>('/v1/models/:model', async (req) => {
    const m = registry.model(name(req.params.model, 'model name'));
    return { name: req.params.model, ...m };
  });

  app.get<{ Params: { model: string; channel: string } }>('/v1/models/:model/channels/:channel/history', async (req) => {
    const c = registry.channel(name(req.params.model, 'model name'), name(req.params.channel, 'channel name'));
    return { model: req.params.model, channel: req.params.channel, version: c.version, history: c.history };
  });

  app.get<{ Params: { model: string; channel: string } }>('/v1/models/:model/channels/:channel/latest', async (req, reply) => {
    const model = name(req.params.model, 'model name');
    const channel = name(req.params.channel, 'channel name');
    const dev = device(req, false);
    const h = (k: string) => {
      const v = req.headers[k];
      return typeof v === 'string' && v.length < 200 ? v : null;
    };
    if (dev) {
      const running = h('x-zeroq-running');
      registry.report(dev, {
        time: new Date().toISOString(),
        model,
        channel,
        running: running && /^[0-9a-f]{64}$/.test(running) ? running : null,
        version: null,
        state: h('x-zeroq-state'),
        address: req.ip,
      });
    }
    const d = registry.descriptor(model, channel);
    const etag = `"${d.sha256}"`;
    void reply.header('etag', etag).header('cache-control', 'no-cache');
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) return reply.status(304).send();
    return d;
  });

  app.get<{ Params: { sha256: string } }>('/v1/blobs/:sha256', async (req, reply) => {
    const sha = req.params.sha256;
    const known = /^[0-9a-f]{64}$/.test(sha) && Object.values(registry.models()).some((m) => m.versions.some((v) => v.sha256 === sha));
    const info = known ? await registry.storage.statBlob(sha) : undefined;
    if (!info) throw new ZeroqError('not-found', 'no such weight set', sha);
    const etag = `"${sha}"`;
    void reply
      .header('etag', etag)
      .header('accept-ranges', 'bytes')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .type('application/octet-stream');
    if (req.headers['if-none-match'] === etag) return reply.status(304).send();
    const ifRange = req.headers['if-range'];
    const range = ifRange && ifRange !== etag ? undefined : parseRange(req.headers.range, info.size);
    if (range === 'bad') return reply.status(416).header('content-range', `bytes */${info.size}`).send();
    if (range) {
      void reply
        .status(206)
        .header('content-range', `bytes ${range.start}-${range.end}/${info.size}`)
        .header('content-length', String(range.end - range.start + 1));
      return reply.send(registry.storage.readBlob(sha, range));
    }
    void reply.header('content-length', String(info.size));
    return reply.send(registry.storage.readBlob(sha));
  });

  app.post<{ Querystring: { channel?: string; parent?: string } }>('/v1/sets', { bodyLimit: o.maxSetBytes }, async (req, reply) => {
    const by = admin(req);
    if (!Buffer.isBuffer(req.body)) throw new ZeroqError('bad-request', 'send the weight set as application/octet-stream', req.url);
    const channel = name(req.query.channel ?? '', 'channel name (?channel=…)');
    const parent = req.query.parent !== undefined ? Number(req.query.parent) : undefined;
    if (parent !== undefined && !Number.isInteger(parent)) throw new ZeroqError('bad-request', 'parent is a version number', req.query.parent);
    const { descriptor, created } = await registry.publish({ data: req.body, channel, publisher: by, parent });
    req.log.info({ model: descriptor.model, channel, version: descriptor.version, created, by }, 'published');
    if (created && o.scoreNew) await jobs.enqueue({ kind: 'score', model: descriptor.model, version: descriptor.version, by: 'publish' });
    return reply.status(created ? 201 : 200).send({ created, ...descriptor });
  });

  app.post<{ Params: { model: string; channel: string }; Body: { to?: number } | undefined }>('/v1/models/:model/channels/:channel/rollback', async (req) => {
    const by = admin(req);
    const to = req.body?.to;
    if (to !== undefined && !Number.isInteger(to)) throw new ZeroqError('bad-request', '"to" is a version number', String(to));
    const d = await registry.rollback(name(req.params.model, 'model name'), name(req.params.channel, 'channel name'), by, to);
    req.log.info({ model: d.model, channel: d.channel, version: d.version, by }, 'rolled back');
    return d;
  });

  app.post<{ Body: { id?: string } | undefined }>('/v1/devices', async (req, reply) => {
    admin(req);
    const id = name(req.body?.id ?? '', 'device id');
    const token = await registry.addDevice(id);
    return reply.status(201).send({ id, token });
  });

  app.get('/v1/devices', async (req) => {
    admin(req);
    const reports = registry.reportsSnapshot();
    return { devices: Object.entries(registry.devices()).map(([id, d]) => ({ id, created: d.created, report: reports[id] ?? null })) };
  });

  app.post('/v1/frames', { bodyLimit: pool.o.maxFrameBytes }, async (req, reply) => {
    const dev = device(req, true)!;
    if (!Buffer.isBuffer(req.body)) throw new ZeroqError('bad-request', 'send the frame as image/jpeg or image/png', req.url);
    let meta: Record<string, unknown> = {};
    const m = req.headers['x-zeroq-meta'];
    if (typeof m === 'string') {
      if (m.length > 4096) throw new ZeroqError('bad-request', 'X-Zeroq-Meta is longer than 4096 bytes', req.url);
      try {
        const j = JSON.parse(m) as unknown;
        if (j && typeof j === 'object' && !Array.isArray(j)) meta = j as Record<string, unknown>;
      } catch {
        throw new ZeroqError('bad-request', 'X-Zeroq-Meta is not JSON', req.url);
      }
    }
    const r = await pool.add(dev, req.body, { meta });
    o.onFrame?.();
    return reply.status(201).send(r);
  });

  app.post<{ Body: { kind?: string; model?: string; from?: string; to?: string } | undefined }>('/v1/jobs', async (req, reply) => {
    const by = admin(req);
    const b = req.body ?? {};
    if (b.kind !== 'retrain') throw new ZeroqError('bad-request', 'kind: "retrain" is the job one can ask for', req.url);
    const model = name(b.model ?? '', 'model name');
    const from = name(b.from ?? 'stable', 'channel name');
    const to = name(b.to ?? 'canary', 'channel name');
    registry.channel(model, from);
    const job = await jobs.enqueue({ kind: 'retrain', model, from, to, by });
    return reply.status(202).send(job);
  });

  app.get('/v1/jobs', async () => ({ jobs: registry.jobs(), running: jobs.current?.id ?? null }));

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (req) => {
    const j = registry.jobs().find((x) => x.id === req.params.id);
    if (!j) throw new ZeroqError('not-found', 'no such job', req.params.id);
    return { ...j, log: await jobs.log(j.id) };
  });

  return app;
}
