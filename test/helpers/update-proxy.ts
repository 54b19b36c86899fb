/**
 * A proxy in front of the retraining server, standing for the network between it and a device: it
 * forwards every request, and can (1) answer the channel check with another file than the server
 * has — as someone who controls the server or the network would — and serve that file, or (2)
 * stall a download after some bytes, as a link that goes quiet.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Substitute {
  bytes: Buffer;
}

export class UpdateProxy {
  private server!: http.Server;
  /** Served instead of the channel's file (descriptor rewritten to match it). */
  substitute?: Substitute;
  /** Blob downloads stop sending after this many bytes until `release()`. */
  stallAfter?: number;
  private releaseStall?: () => void;
  private stalledResolve?: () => void;
  /** Resolves when a download reached the stall point. */
  stalled: Promise<void> = new Promise((r) => (this.stalledResolve = r));
  readonly ranges: string[] = [];
  url = '';

  constructor(private readonly upstream: string) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  release(): void {
    this.stallAfter = undefined;
    this.releaseStall?.();
    this.stalled = new Promise((r) => (this.stalledResolve = r));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const sub = this.substitute;
    const subSha = sub ? createHash('sha256').update(sub.bytes).digest('hex') : undefined;
    if (sub && /\/channels\/[^/]+\/latest$/.test(req.url ?? '')) {
      const up = await fetch(this.upstream + req.url, { headers: { authorization: req.headers.authorization ?? '' } });
      const d = (await up.json()) as Record<string, unknown>;
      if (req.headers['if-none-match'] === `"${subSha}"`) {
        res.writeHead(304).end();
        return;
      }
      const body = JSON.stringify({ ...d, sha256: subSha, size: sub.bytes.length, url: `/v1/blobs/${subSha}` });
      res.writeHead(200, { 'content-type': 'application/json', etag: `"${subSha}"` }).end(body);
      return;
    }
    if (sub && req.url === `/v1/blobs/${subSha}`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': sub.bytes.length }).end(sub.bytes);
      return;
    }
    const headers: Record<string, string> = {};
    for (const h of ['authorization', 'range', 'if-range', 'if-none-match', 'x-zeroq-running', 'x-zeroq-state', 'x-zeroq-meta', 'content-type']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    if (headers.range) this.ranges.push(headers.range);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const up = await fetch(this.upstream + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (!['transfer-encoding', 'connection', 'keep-alive'].includes(k)) out[k] = v;
    });
    res.writeHead(up.status, out);
    if (!up.body) return void res.end();
    const isBlob = req.url?.startsWith('/v1/blobs/');
    let sent = 0;
    const reader = up.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let chunk = Buffer.from(value);
      if (isBlob && this.stallAfter !== undefined && sent + chunk.length > this.stallAfter) {
        const first = chunk.subarray(0, this.stallAfter - sent);
        if (first.length) res.write(first);
        sent += first.length;
        this.stalledResolve?.();
        await new Promise<void>((r) => {
          this.releaseStall = r;
          res.once('close', r);
        });
        if (res.destroyed) return;
        chunk = chunk.subarray(first.length);
      }
      res.write(chunk);
      sent += chunk.length;
    }
    res.end();
  }

  close(): Promise<void> {
    this.releaseStall?.();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
