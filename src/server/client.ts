/** A small client of the server's HTTP API for the command line (publish, rollback, devices, jobs). */
import { ZeroqError } from '../util/errors.js';

export interface ClientOptions {
  server: string;
  token?: string;
  publisher?: string;
}

export async function call<T>(o: ClientOptions, method: string, pathname: string, body?: { json?: unknown; bytes?: Uint8Array }): Promise<{ status: number; body: T }> {
  const url = new URL(pathname, o.server.endsWith('/') ? o.server : `${o.server}/`);
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.publisher) headers['x-zeroq-publisher'] = o.publisher;
  let payload: string | Uint8Array | undefined;
  if (body?.json !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body.json);
  } else if (body?.bytes) {
    headers['content-type'] = 'application/octet-stream';
    payload = body.bytes;
  }
  let r: Response;
  try {
    r = await fetch(url, { method, headers, body: payload as string | undefined });
  } catch (e) {
    throw new ZeroqError('server-unreachable', `cannot reach the server: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`, url.origin);
  }
  const text = await r.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  if (!r.ok) {
    const j = json as { error?: string; message?: string } | undefined;
    throw new ZeroqError(j?.error ?? `http-${r.status}`, `the server answered ${r.status}: ${j?.message ?? text.slice(0, 200)}`, `${method} ${url.pathname}`);
  }
  return { status: r.status, body: json as T };
}
