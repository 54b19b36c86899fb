/**
 * The local operations port: GET /healthz (200 when source and engine are alive and frames flow,
 * 503 otherwise, JSON body saying why), GET /metrics (Prometheus text format), and whatever the
 * `routes` handler takes (the live view).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ZeroqError } from '../util/errors.js';

export interface Health {
  ok: boolean;
  [k: string]: unknown;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/** Answers a GET request it knows (true), or leaves it (false). */
export type Routes = (url: string, req: http.IncomingMessage, res: http.ServerResponse) => boolean;

export async function startOpsServer(host: string, port: number, health: () => Health, registry: Registry, log: Logger, routes?: Routes): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    res.on('error', () => undefined);
    if (routes?.(url, req, res)) return;
    if (url === '/healthz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(h) + '\n');
    } else if (url === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message);
        },
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /, /healthz or /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ZeroqError('http', `cannot listen on ${host}:${port}: ${err.message}`, 'http')));
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  log.info({ url: `http://${host}:${actual}` }, 'health and metrics listening');
  return {
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
