/**
 * Where the retraining server keeps what it must not lose: weight-set files by content (sha256),
 * small JSON documents (the registry's state, device reports), and the pool of uploaded frames.
 * The registry sees only this interface; the file system is the default implementation. Every write
 * is a temporary file, fsync, rename: after kill -9 a reader finds the old content or the new one,
 * never a part (docs/decisions/update-server.md).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { writeFileAtomic } from '../util/atomic.js';
import { ZeroqError } from '../util/errors.js';

export interface BlobInfo {
  sha256: string;
  size: number;
}

export interface PoolItem {
  name: string;
  size: number;
  /** ms since the epoch (from the name, so it survives copies). */
  time: number;
}

export interface Storage {
  /** Stores bytes under their sha256 (durable before it resolves); a no-op when already stored. */
  putBlob(data: Uint8Array): Promise<BlobInfo>;
  statBlob(sha256: string): Promise<BlobInfo | undefined>;
  /** The bytes [start, end] (inclusive) of a stored blob, or all of it. */
  readBlob(sha256: string, range?: { start: number; end: number }): Readable;
  /** A local file holding the blob, for child processes (file-system stores). */
  blobPath(sha256: string): string;
  loadDoc<T>(name: string): Promise<T | undefined>;
  saveDoc(name: string, value: unknown): Promise<void>;
  /** The pool of uploaded frames: one file per frame, with a JSON sidecar. */
  putPool(name: string, data: Uint8Array, meta: unknown): Promise<void>;
  listPool(): Promise<PoolItem[]>;
  removePool(name: string): Promise<void>;
  poolPath(name: string): string;
  /** A scratch folder for a job. */
  jobDir(id: string): Promise<string>;
}

const SHA = /^[0-9a-f]{64}$/;
const NAME = /^[A-Za-z0-9._-]+$/;

export class FsStorage implements Storage {
  private constructor(readonly root: string) {}

  static async open(root: string): Promise<FsStorage> {
    const s = new FsStorage(path.resolve(root));
    for (const d of ['blobs', 'docs', 'pool', 'jobs']) await mkdir(path.join(s.root, d), { recursive: true });
    await s.removeTemporaries();
    return s;
  }

  /** Temporary files left by a process that was killed mid-write are garbage: the renames never happened. */
  private async removeTemporaries(): Promise<void> {
    for (const d of ['blobs', 'docs', 'pool', '.']) {
      const dir = path.join(this.root, d);
      for (const f of await readdir(dir)) if (f.startsWith('.') && f.endsWith('.tmp')) await unlink(path.join(dir, f)).catch(() => undefined);
    }
  }

  blobPath(sha256: string): string {
    if (!SHA.test(sha256)) throw new ZeroqError('server-blob', 'not a sha256', sha256);
    return path.join(this.root, 'blobs', `${sha256}.zqw`);
  }

  async putBlob(data: Uint8Array): Promise<BlobInfo> {
    const sha256 = createHash('sha256').update(data).digest('hex');
    const file = this.blobPath(sha256);
    const have = await this.statBlob(sha256);
    if (have && have.size === data.length) return have;
    await writeFileAtomic(file, data);
    return { sha256, size: data.length };
  }

  async statBlob(sha256: string): Promise<BlobInfo | undefined> {
    if (!SHA.test(sha256)) return undefined;
    try {
      const s = await stat(this.blobPath(sha256));
      return { sha256, size: s.size };
    } catch {
      return undefined;
    }
  }

  readBlob(sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.blobPath(sha256), range ? { start: range.start, end: range.end } : {});
  }

  private docPath(name: string): string {
    if (!NAME.test(name)) throw new ZeroqError('server-doc', 'bad document name', name);
    return path.join(this.root, 'docs', `${name}.json`);
  }

  async loadDoc<T>(name: string): Promise<T | undefined> {
    const file = this.docPath(name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      // Atomic writes make this impossible short of disk damage or a hand edit: say so, do not guess.
      throw new ZeroqError('server-state', `not valid JSON: ${(e as Error).message}`, file, { cause: e });
    }
  }

  async saveDoc(name: string, value: unknown): Promise<void> {
    await writeFileAtomic(this.docPath(name), JSON.stringify(value, null, 1) + '\n');
  }

  poolPath(name: string): string {
    if (!NAME.test(name)) throw new ZeroqError('server-pool', 'bad pool file name', name);
    return path.join(this.root, 'pool', name);
  }

  async putPool(name: string, data: Uint8Array, meta: unknown): Promise<void> {
    // The frame first, its sidecar last: a frame without a sidecar is not listed.
    await writeFileAtomic(this.poolPath(name), data);
    await writeFileAtomic(this.poolPath(`${name}.json`), JSON.stringify(meta) + '\n');
  }

  async listPool(): Promise<PoolItem[]> {
    const dir = path.join(this.root, 'pool');
    const names = new Set(await readdir(dir));
    const out: PoolItem[] = [];
    for (const n of names) {
      if (n.endsWith('.json') || n.startsWith('.') || !names.has(`${n}.json`)) continue;
      const m = /^(\d+)-/.exec(n);
      const s = await stat(path.join(dir, n)).catch(() => undefined);
      if (!s) continue;
      out.push({ name: n, size: s.size, time: m ? Number(m[1]) : s.mtimeMs });
    }
    return out.sort((a, b) => a.time - b.time || (a.name < b.name ? -1 : 1));
  }

  async removePool(name: string): Promise<void> {
    await rm(this.poolPath(`${name}.json`), { force: true });
    await rm(this.poolPath(name), { force: true });
  }

  async jobDir(id: string): Promise<string> {
    if (!NAME.test(id)) throw new ZeroqError('server-job', 'bad job id', id);
    const d = path.join(this.root, 'jobs', id);
    await mkdir(d, { recursive: true });
    return d;
  }

  /** Blob files present (for consistency checks). */
  blobNames(): string[] {
    const dir = path.join(this.root, 'blobs');
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.zqw')).map((f) => f.slice(0, -4)) : [];
  }
}
