/**
 * The weight-set registry: versions per model (stored by content), channels that point at one
 * version each with their history, devices with their tokens, and what each device last reported.
 * Every change is written through Storage before it is visible (and before an HTTP answer says it
 * happened); changes are serialised, one at a time. docs/formats/update-protocol.md describes what
 * the HTTP API shows of it.
 */
import { createHash, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { parseZqw, type ZqwFile } from '../qnet/zqw.js';
import { ZeroqError } from '../util/errors.js';
import type { Storage } from './storage.js';
import type { Descriptor, SetFacts } from '../update/descriptor.js';

export type { Descriptor };

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A published version as the registry keeps it: what devices are told, and more. */
export interface VersionRecord extends SetFacts {
  input: { width: number; height: number; channels: number };
  classes: number;
  scored?: { list: string; images: number; time: string };
  /** Self-test frames carried in the set. */
  golden: number;
  job?: string;
}

export interface ChannelEvent {
  version: number;
  time: string;
  by: string;
  action: 'publish' | 'rollback';
  from: number | null;
}

export interface ChannelRecord {
  version: number;
  history: ChannelEvent[];
}

export interface ModelRecord {
  versions: VersionRecord[];
  channels: Record<string, ChannelRecord>;
}

export interface DeviceRecord {
  /** sha256 of the token, hex. */
  tokenHash: string;
  created: string;
}

export interface JobRecord {
  id: string;
  kind: 'score' | 'retrain';
  model: string;
  /** retrain: the channel whose set is retrained, and where a good result goes. */
  from?: string;
  to?: string;
  /** score: the version scored. */
  version?: number;
  state: 'queued' | 'running' | 'done' | 'failed';
  created: string;
  started?: string;
  ended?: string;
  /** One line: what came out (published version, not published and why, the error). */
  result?: string;
  by: string;
}

interface State {
  v: 1;
  models: Record<string, ModelRecord>;
  devices: Record<string, DeviceRecord>;
  jobs: JobRecord[];
}

export interface DeviceReport {
  time: string;
  model: string;
  channel: string;
  /** sha256 of the set the device runs, and its version when the registry knows it. */
  running: string | null;
  version: number | null;
  state: string | null;
  address?: string;
}


const JOBS_KEPT = 200;
const sha256Hex = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');

export interface PublishInput {
  data: Uint8Array;
  channel: string;
  publisher: string;
  parent?: number;
  job?: string;
}

export interface RegistryEvents {
  channel: [Descriptor];
}

export class Registry extends EventEmitter<RegistryEvents> {
  private state: State = { v: 1, models: {}, devices: {}, jobs: [] };
  private reports: Record<string, DeviceReport> = {};
  private chain: Promise<unknown> = Promise.resolve();
  private reportsDirty = false;
  private reportsTimer?: NodeJS.Timeout;
  private tokenIndex = new Map<string, string>();

  private constructor(
    readonly storage: Storage,
    /** Keys whose signatures publishing accepts (empty: any well-formed signature). */
    private readonly trust: readonly KeyObject[],
  ) {
    super();
  }

  static async open(storage: Storage, trust: readonly KeyObject[]): Promise<Registry> {
    const r = new Registry(storage, trust);
    const s = await storage.loadDoc<State>('state');
    if (s) {
      if (s.v !== 1) throw new ZeroqError('server-state', `state version ${String(s.v)}; this zeroq reads version 1`, 'state.json');
      r.state = s;
    }
    r.reports = (await storage.loadDoc<Record<string, DeviceReport>>('reports')) ?? {};
    r.indexTokens();
    // Every version must have its file: the file is written (and synced) before the state names it.
    for (const [name, m] of Object.entries(r.state.models)) {
      for (const v of m.versions) {
        const b = await storage.statBlob(v.sha256);
        if (!b || b.size !== v.size) throw new ZeroqError('server-state', `version ${v.version} of ${name}: its weight set ${v.sha256} is missing or has the wrong size`, 'blobs');
      }
    }
    return r;
  }

  private indexTokens(): void {
    this.tokenIndex = new Map(Object.entries(this.state.devices).map(([id, d]) => [d.tokenHash, id]));
  }

  /** Runs state changes one at a time; `fn` changes a copy, which replaces the state once stored. */
  private change<T>(fn: (s: State) => T | Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const next = structuredClone(this.state);
      const out = await fn(next);
      await this.storage.saveDoc('state', next);
      this.state = next;
      this.indexTokens();
      return out;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  models(): Record<string, ModelRecord> {
    return this.state.models;
  }

  model(name: string): ModelRecord {
    const m = this.state.models[name];
    if (!m) throw new ZeroqError('not-found', 'no such model', name);
    return m;
  }

  versionOf(model: string, version: number): VersionRecord {
    const v = this.model(model).versions.find((x) => x.version === version);
    if (!v) throw new ZeroqError('not-found', `no version ${version}`, model);
    return v;
  }

  channel(model: string, channel: string): ChannelRecord {
    const c = this.model(model).channels[channel];
    if (!c) throw new ZeroqError('not-found', `no channel "${channel}"`, model);
    return c;
  }

  descriptor(model: string, channel: string): Descriptor {
    const c = this.channel(model, channel);
    const v = this.versionOf(model, c.version);
    return {
      v: 1,
      model,
      channel,
      version: v.version,
      sha256: v.sha256,
      size: v.size,
      id: v.id,
      digest: v.digest,
      keyId: v.keyId,
      architecture: v.architecture,
      bits: v.bits,
      ap50: v.ap50,
      parent: v.parent,
      publisher: v.publisher,
      time: v.time,
      url: `/v1/blobs/${v.sha256}`,
    };
  }

  /** Every channel's descriptor (for announcing them again after a broker reconnect). */
  allDescriptors(): Descriptor[] {
    const out: Descriptor[] = [];
    for (const [m, rec] of Object.entries(this.state.models)) for (const c of Object.keys(rec.channels)) out.push(this.descriptor(m, c));
    return out;
  }

  /** Checks a weight set for publishing: intact, signed, and signed by a trusted key when keys are set. */
  checkSet(data: Uint8Array): ZqwFile {
    const f = parseZqw(data, { name: 'published set', trust: this.trust.length > 0 ? this.trust : null });
    if (!f.signature) throw new ZeroqError('zqw-signature', 'the weight set is not signed (zeroq sign SET.zqw --key NAME.key)', 'published set');
    return f;
  }

  /**
   * Stores a signed weight set and points the channel at it. A set already stored keeps its version
   * (publishing it to another channel promotes it); a new one gets the next version number, with the
   * channel's current version as its parent unless one is given.
   */
  async publish(p: PublishInput): Promise<{ descriptor: Descriptor; created: boolean }> {
    if (!NAME_RE.test(p.channel)) throw new ZeroqError('bad-request', 'channel names are letters, digits, ".", "_" and "-"', p.channel);
    const f = this.checkSet(p.data);
    const model = f.manifest.network.name;
    if (!NAME_RE.test(model)) throw new ZeroqError('bad-request', 'model names are letters, digits, ".", "_" and "-"', model);
    const blob = await this.storage.putBlob(p.data);
    let created = false;
    await this.change((s) => {
      const m = (s.models[model] ??= { versions: [], channels: {} });
      const now = new Date().toISOString();
      let v = m.versions.find((x) => x.sha256 === blob.sha256);
      const ch = m.channels[p.channel];
      if (!v) {
        if (p.parent !== undefined && !m.versions.some((x) => x.version === p.parent)) throw new ZeroqError('bad-request', `parent version ${p.parent} does not exist`, model);
        const q = f.manifest.quantization as { avgBitsPerWeight?: number };
        const sel = (f.manifest as { selftest?: { frames?: unknown[] } }).selftest;
        v = {
          model,
          version: (m.versions.at(-1)?.version ?? 0) + 1,
          sha256: blob.sha256,
          size: blob.size,
          id: f.manifest.id,
          digest: f.digest,
          keyId: f.signature!.keyId,
          architecture: f.manifest.architecture,
          input: { width: f.manifest.input.width, height: f.manifest.input.height, channels: f.manifest.input.channels },
          classes: f.manifest.classes?.length ?? 0,
          bits: Math.round((q.avgBitsPerWeight ?? 0) * 100) / 100,
          parent: p.parent ?? ch?.version ?? null,
          ap50: null,
          publisher: p.publisher,
          time: now,
          golden: Array.isArray(sel?.frames) ? sel.frames.length : 0,
          ...(p.job ? { job: p.job } : {}),
        };
        m.versions.push(v);
        created = true;
      } else if (ch?.version === v.version) {
        return; // already the channel's version: nothing changes
      }
      const c = (m.channels[p.channel] ??= { version: v.version, history: [] });
      c.history.push({ version: v.version, time: now, by: p.publisher, action: 'publish', from: ch ? ch.version : null });
      c.version = v.version;
    });
    const d = this.descriptor(model, p.channel);
    this.emit('channel', d);
    return { descriptor: d, created };
  }

  /** Points a channel back at an earlier version (default: the one before the current in its history). */
  async rollback(model: string, channel: string, by: string, to?: number): Promise<Descriptor> {
    await this.change((s) => {
      const m = s.models[model];
      const c = m?.channels[channel];
      if (!m || !c) throw new ZeroqError('not-found', `no channel "${channel}"`, model);
      let target = to;
      if (target === undefined) {
        const earlier = [...c.history].reverse().find((e) => e.version !== c.version);
        if (!earlier) throw new ZeroqError('bad-request', 'the channel has had no other version to go back to', `${model}/${channel}`);
        target = earlier.version;
      }
      if (!m.versions.some((v) => v.version === target)) throw new ZeroqError('not-found', `no version ${target}`, model);
      if (target === c.version) throw new ZeroqError('bad-request', `the channel already runs version ${target}`, `${model}/${channel}`);
      c.history.push({ version: target, time: new Date().toISOString(), by, action: 'rollback', from: c.version });
      c.version = target;
    });
    const d = this.descriptor(model, channel);
    this.emit('channel', d);
    return d;
  }

  async setScore(model: string, version: number, ap50: number, list: string, images: number): Promise<void> {
    await this.change((s) => {
      const v = s.models[model]?.versions.find((x) => x.version === version);
      if (!v) throw new ZeroqError('not-found', `no version ${version}`, model);
      v.ap50 = ap50;
      v.scored = { list, images, time: new Date().toISOString() };
    });
  }

  // --- devices

  /** Registers a device (or gives it a new token); returns the token, which is stored only hashed. */
  async addDevice(id: string): Promise<string> {
    if (!NAME_RE.test(id)) throw new ZeroqError('bad-request', 'device ids are letters, digits, ".", "_" and "-"', id);
    const token = `zqd_${randomBytes(24).toString('base64url')}`;
    await this.change((s) => {
      s.devices[id] = { tokenHash: sha256Hex(token), created: new Date().toISOString() };
    });
    return token;
  }

  devices(): Record<string, DeviceRecord> {
    return this.state.devices;
  }

  /** The device a token belongs to. */
  deviceFor(token: string): string | undefined {
    return this.tokenIndex.get(sha256Hex(token));
  }

  /** Records a device's report (written within a couple of seconds; losing the last ones costs nothing). */
  report(device: string, r: DeviceReport): void {
    const m = this.state.models[r.model];
    const v = r.running ? m?.versions.find((x) => x.sha256 === r.running) : undefined;
    this.reports[device] = { ...r, version: v?.version ?? null };
    this.reportsDirty = true;
    this.reportsTimer ??= setTimeout(() => void this.flushReports(), 2000);
  }

  reportsSnapshot(): Record<string, DeviceReport> {
    return this.reports;
  }

  async flushReports(): Promise<void> {
    if (this.reportsTimer) clearTimeout(this.reportsTimer);
    this.reportsTimer = undefined;
    if (!this.reportsDirty) return;
    this.reportsDirty = false;
    await this.storage.saveDoc('reports', this.reports).catch(() => (this.reportsDirty = true));
  }

  // --- jobs

  jobs(): JobRecord[] {
    return this.state.jobs;
  }

  async putJob(j: JobRecord): Promise<void> {
    await this.change((s) => {
      const i = s.jobs.findIndex((x) => x.id === j.id);
      if (i >= 0) s.jobs[i] = j;
      else s.jobs.push(j);
      if (s.jobs.length > JOBS_KEPT) s.jobs.splice(0, s.jobs.length - JOBS_KEPT);
    });
  }

  async close(): Promise<void> {
    await this.chain;
    await this.flushReports();
  }
}

/** Constant-time comparison of a presented secret with the expected one. */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
