/**
 * The device's side of the HTTP API (docs/formats/update-protocol.md): ask for a channel's current
 * version, download a set (resuming a part already on disk with a Range request), upload a frame.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, unlink } from 'node:fs/promises';
import { ZeroqError } from '../../util/errors.js';
import type { Descriptor } from '../../update/descriptor.js';

export type { Descriptor };

export interface CheckRequest {
  server: string;
  model: string;
  channel: string;
  token?: string;
  /** sha256 of the running set (If-None-Match, and reported). */
  running: string | null;
  /** Send If-None-Match (the running sha256): 304 when the channel still points at it. */
  conditional: boolean;
  state: string;
  timeoutMs?: number;
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor;
  return !!x && typeof x.sha256 === 'string' && /^[0-9a-f]{64}$/.test(x.sha256) && Number.isInteger(x.size) && x.size > 0 && Number.isInteger(x.version) && typeof x.url === 'string';
}

const base = (server: string) => (server.endsWith('/') ? server : `${server}/`);

/** The channel's current version; undefined when it is the running one (304). */
export async function checkLatest(r: CheckRequest): Promise<Descriptor | undefined> {
  const url = new URL(`v1/models/${encodeURIComponent(r.model)}/channels/${encodeURIComponent(r.channel)}/latest`, base(r.server));
  const headers: Record<string, string> = { 'x-zeroq-state': r.state };
  if (r.running) {
    if (r.conditional) headers['if-none-match'] = `"${r.running}"`;
    headers['x-zeroq-running'] = r.running;
  }
  if (r.token) headers.authorization = `Bearer ${r.token}`;
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: AbortSignal.timeout(r.timeoutMs ?? 15_000) });
  } catch (e) {
    throw new ZeroqError('update-unreachable', `cannot reach the update server: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`, url.origin);
  }
  if (res.status === 304) return undefined;
  const text = await res.text();
  if (!res.ok) throw new ZeroqError('update-server', `${res.status} from the update server: ${text.slice(0, 200)}`, url.pathname);
  let d: unknown;
  try {
    d = JSON.parse(text);
  } catch {
    throw new ZeroqError('update-server', 'the answer is not JSON', url.pathname);
  }
  if (!isDescriptor(d)) throw new ZeroqError('update-server', 'the answer is not a version descriptor', url.pathname);
  return d;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface DownloadOptions {
  server: string;
  d: Descriptor;
  /** The partial file (appended to; kept across restarts). */
  part: string;
  maxBytes: number;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (bytes: number, size: number) => void;
}

/**
 * Downloads the set into `part`, resuming what is there, then checks size and sha256 and flushes
 * the file to disk. A part that turns out wrong is removed (the next try starts over).
 */
export async function download(o: DownloadOptions): Promise<void> {
  const { d } = o;
  if (d.size > o.maxBytes) throw new ZeroqError('update-size', `the set is ${d.size} bytes, more than update.max_bytes (${o.maxBytes})`, d.sha256);
  let have = (await stat(o.part).catch(() => undefined))?.size ?? 0;
  if (have > d.size) {
    await unlink(o.part);
    have = 0;
  }
  if (have < d.size) {
    const url = new URL(d.url, base(o.server));
    const headers: Record<string, string> = {};
    if (have > 0) {
      headers.range = `bytes=${have}-`;
      headers['if-range'] = `"${d.sha256}"`;
    }
    const signals = [AbortSignal.timeout(o.timeoutMs), ...(o.signal ? [o.signal] : [])];
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: AbortSignal.any(signals) });
    } catch (e) {
      throw new ZeroqError('update-unreachable', `download failed: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`, url.href);
    }
    if (res.status !== 200 && res.status !== 206) throw new ZeroqError('update-server', `${res.status} for the download`, url.href);
    if (res.status === 200) have = 0; // the whole file again
    const h = await open(o.part, have === 0 ? 'w' : 'a');
    try {
      const reader = res.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (have + value.length > d.size) throw new ZeroqError('update-size', `the server sends more than the ${d.size} bytes announced`, url.href);
        await h.write(value);
        have += value.length;
        o.onProgress?.(have, d.size);
      }
      await h.sync();
    } catch (e) {
      if (e instanceof ZeroqError) throw e;
      throw new ZeroqError('update-unreachable', `download interrupted at ${have} of ${d.size} bytes: ${(e as Error).message}`, url.href);
    } finally {
      await h.close();
    }
  }
  const size = (await stat(o.part)).size;
  if (size !== d.size) throw new ZeroqError('update-size', `downloaded ${size} bytes, the server announced ${d.size}`, d.sha256);
  const got = await sha256File(o.part);
  if (got !== d.sha256) {
    await unlink(o.part).catch(() => undefined);
    throw new ZeroqError('update-sha256', `the download hashes to ${got.slice(0, 16)}…, the server announced ${d.sha256.slice(0, 16)}…`, d.sha256);
  }
}

/** Uploads a hard frame to the server's pool; resolves false when the server asks to slow down. */
export async function uploadFrame(server: string, token: string, jpeg: Uint8Array, meta: Record<string, unknown>): Promise<boolean> {
  const url = new URL('v1/frames', base(server));
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'image/jpeg', 'x-zeroq-meta': JSON.stringify(meta) },
    body: jpeg as unknown as string,
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer().catch(() => undefined);
  if (res.status === 429) return false;
  if (!res.ok) throw new ZeroqError('update-server', `${res.status} for a frame upload`, url.href);
  return true;
}
