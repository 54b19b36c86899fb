/**
 * The server's jobs, run one at a time as child processes of zeroq itself (a crash or a long
 * computation never stops the server from answering): scoring a version on the validation list,
 * and retraining a channel's set on the calibration images plus the pool of hard frames, then
 * publishing the result to the canary channel when it scores no worse than the current version
 * minus a tolerance. Each job writes a log that says what it did and why.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { parseZqw } from '../qnet/zqw.js';
import { ZeroqError } from '../util/errors.js';
import { dataPath, repoRoot } from '../util/paths.js';
import type { JobRecord, Registry } from './registry.js';
import type { Storage } from './storage.js';

export interface JobOptions {
  /** Image list the server scores every version on (AP50); none: versions are not scored. */
  validation?: string;
  /** Only the first n images of the validation list. */
  validationLimit?: number;
  /** Training images of retraining jobs, besides the pool (default: $ZEROQ_DATA/coco-val/calib.txt). */
  calib: string;
  /** Only the first n images of the calibration list. */
  calibLimit?: number;
  /** Extra `zeroq retrain` arguments (iterations, epochs, …). */
  retrainArgs: string[];
  /** A retrained set is published when its AP50 >= the current version's minus this (fraction). */
  tolerance: number;
  /** The server's private key: retrained sets are signed with it. */
  key?: string;
  /** Images whose expected head digests go into a retrained set as its self-test. */
  golden: string[];
  /** Where darknet cfg/weights named by a set's manifest are looked for (default $ZEROQ_DATA/models). */
  modelsDir: string;
  /** Engine threads of the child processes. */
  threads: number;
  log: Logger;
}

export type JobRequest = { kind: 'score'; model: string; version: number; by: string } | { kind: 'retrain'; model: string; from: string; to: string; by: string };

/** The command line that runs this zeroq (sources under tsx, or the compiled dist/). */
export function zeroqCommand(): string[] {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) return [process.execPath, '--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts')];
  return [process.execPath, path.join(repoRoot, 'dist', 'cli.js')];
}

function findFile(name: string | undefined, root: string): string | undefined {
  if (!name) return undefined;
  if (path.isAbsolute(name) && existsSync(name)) return name;
  const base = path.basename(name);
  const walk = (dir: string, depth: number): string | undefined => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return undefined;
    }
    if (entries.includes(base) && statSync(path.join(dir, base)).isFile()) return path.join(dir, base);
    if (depth === 0) return undefined;
    for (const e of entries) {
      const p = path.join(dir, e);
      if (statSync(p).isDirectory()) {
        const f = walk(p, depth - 1);
        if (f) return f;
      }
    }
    return undefined;
  };
  return walk(root, 3);
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'unscored' : `${(v * 100).toFixed(2)}`);

export class JobRunner {
  private queue: JobRecord[] = [];
  private running?: { job: JobRecord; child?: ChildProcess };
  private idle = Promise.resolve();
  private stopped = false;
  private readonly cmd = zeroqCommand();

  constructor(
    private readonly registry: Registry,
    private readonly storage: Storage,
    readonly o: JobOptions,
  ) {}

  /** Picks up after a restart: a job that was running is marked failed, queued ones run again. */
  async start(): Promise<void> {
    for (const j of this.registry.jobs()) {
      if (j.state === 'running') {
        await this.registry.putJob({ ...j, state: 'failed', ended: new Date().toISOString(), result: 'interrupted: the server stopped while it ran' });
        await this.logLine(j.id, 'interrupted: the server stopped while this job ran');
      } else if (j.state === 'queued') this.queue.push(j);
    }
    this.kick();
  }

  async enqueue(r: JobRequest): Promise<JobRecord> {
    const now = new Date();
    const id = `${now.toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${r.kind}-${randomBytes(3).toString('hex')}`;
    const job: JobRecord = r.kind === 'score'
      ? { id, kind: 'score', model: r.model, version: r.version, state: 'queued', created: now.toISOString(), by: r.by }
      : { id, kind: 'retrain', model: r.model, from: r.from, to: r.to, state: 'queued', created: now.toISOString(), by: r.by };
    await this.registry.putJob(job);
    await this.logLine(id, `queued by ${r.by}: ${r.kind} ${r.model}${r.kind === 'score' ? ` version ${r.version}` : ` from channel ${r.from} to ${r.to}`}`);
    this.queue.push(job);
    this.kick();
    return job;
  }

  get current(): JobRecord | undefined {
    return this.running?.job;
  }

  pending(): JobRecord[] {
    return [...this.queue];
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    const next = this.queue.shift();
    if (!next) return;
    this.running = { job: next };
    this.idle = this.run(next).finally(() => {
      this.running = undefined;
      this.kick();
    });
  }

  /** Resolves when no job runs and none is queued. */
  async drained(): Promise<void> {
    while (this.running || (this.queue.length > 0 && !this.stopped)) await this.idle;
  }

  async logPath(id: string): Promise<string> {
    return path.join(await this.storage.jobDir(id), 'log.txt');
  }

  async log(id: string): Promise<string> {
    return readFile(await this.logPath(id), 'utf8').catch(() => '');
  }

  private async logLine(id: string, line: string): Promise<void> {
    await appendFile(await this.logPath(id), `${new Date().toISOString()} ${line}\n`);
  }

  private async run(job: JobRecord): Promise<void> {
    const started = { ...job, state: 'running' as const, started: new Date().toISOString() };
    await this.registry.putJob(started);
    this.running = { job: started };
    this.o.log.info({ job: job.id, kind: job.kind, model: job.model }, 'job started');
    let result: string;
    let state: 'done' | 'failed' = 'done';
    try {
      result = job.kind === 'score' ? await this.score(started) : await this.retrain(started);
    } catch (e) {
      state = 'failed';
      result = `failed: ${(e as Error).message}`;
    }
    await this.logLine(job.id, result);
    await this.registry.putJob({ ...started, state, ended: new Date().toISOString(), result });
    this.o.log.info({ job: job.id, state, result }, 'job ended');
  }

  /** Runs `zeroq <args>`; stderr goes to the job log, stdout is returned. */
  private exec(job: JobRecord, args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new Error('the server is stopping'));
      void this.logLine(job.id, `run: zeroq ${args.join(' ')}`);
      const env = { ...process.env };
      delete env.ZEROQ_TRUST; // the set was checked when it was published
      const child = spawn(this.cmd[0], [...this.cmd.slice(1), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      if (this.running) this.running.child = child;
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (this.running) this.running.child = undefined;
        const tail = err.trim().split('\n').slice(-20).join('\n');
        const logged = tail ? this.logPath(job.id).then((f) => appendFile(f, tail.replace(/^/gm, '  | ') + '\n')).catch(() => undefined) : Promise.resolve();
        void logged.then(() => {
          if (code === 0) resolve(out);
          else reject(new Error(`zeroq ${args[0]} exited with ${signal ?? code}: ${err.trim().split('\n').at(-1) ?? ''}`));
        });
      });
    });
  }

  /** AP50 of a weight-set file on the validation list. */
  private async ap50Of(job: JobRecord, file: string): Promise<{ ap50: number; images: number }> {
    if (!this.o.validation) throw new ZeroqError('server-job', 'no validation list (zeroq serve --validation LIST)', job.id);
    const args = ['eval', file, '--data', this.o.validation, '--json', '--threads', String(this.o.threads)];
    if (this.o.validationLimit) args.push('--limit', String(this.o.validationLimit));
    const out = await this.exec(job, args);
    const j = JSON.parse(out.trim().split('\n').at(-1)!) as { AP50: number; images: number };
    return { ap50: j.AP50, images: j.images };
  }

  private async scoreVersion(job: JobRecord, model: string, version: number): Promise<number> {
    const v = this.registry.versionOf(model, version);
    const s = await this.ap50Of(job, this.storage.blobPath(v.sha256));
    await this.registry.setScore(model, version, s.ap50, path.basename(this.o.validation!), s.images);
    await this.logLine(job.id, `version ${version} (${v.id}): AP50 ${pct(s.ap50)} on ${s.images} images of ${path.basename(this.o.validation!)}`);
    return s.ap50;
  }

  private async score(job: JobRecord): Promise<string> {
    const ap50 = await this.scoreVersion(job, job.model, job.version!);
    return `scored version ${job.version}: AP50 ${pct(ap50)}`;
  }

  private async retrain(job: JobRecord): Promise<string> {
    const from = job.from!;
    const to = job.to!;
    const base = this.registry.versionOf(job.model, this.registry.channel(job.model, from).version);
    await this.logLine(job.id, `base: ${job.model} version ${base.version} (${base.id}), current on channel ${from}`);
    if (!this.o.key) throw new ZeroqError('server-job', 'the server has no signing key (zeroq serve --key NAME.key): a retrained set could not be signed', job.id);
    const baseAp = base.ap50 ?? (await this.scoreVersion(job, job.model, base.version));
    const manifest = parseZqw(await readFile(this.storage.blobPath(base.sha256)), { trust: null }).manifest;
    const src = manifest.source as { cfg?: string; weights?: string };
    const cfg = findFile(src.cfg, this.o.modelsDir);
    if (!cfg) throw new ZeroqError('server-job', `the float model ${src.cfg ?? '(none named)'} of version ${base.version} is not in ${this.o.modelsDir}`, job.id);
    const weights = findFile(src.weights, this.o.modelsDir) ?? cfg.replace(/\.cfg$/, '.weights');
    const q = manifest.quantization as Record<string, unknown>;
    const wbits = typeof q.wbits === 'number' ? q.wbits : Math.round(Number(q.avgBitsPerWeight ?? 8));

    // Training images: the calibration list plus every frame of the pool.
    const dir = await this.storage.jobDir(job.id);
    const calib = (await readFile(this.o.calib, 'utf8'))
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => path.resolve(path.dirname(this.o.calib), l));
    const calibUsed = this.o.calibLimit ? calib.slice(0, this.o.calibLimit) : calib;
    const pool = (await this.storage.listPool()).map((p) => this.storage.poolPath(p.name));
    const list = path.join(dir, 'train.txt');
    await writeFile(list, [...calibUsed, ...pool].join('\n') + '\n');
    await this.logLine(job.id, `training images: ${calibUsed.length} of ${path.basename(this.o.calib)} + ${pool.length} from the pool`);

    const out = path.join(dir, 'retrained.zqw');
    const args = ['retrain', cfg, '--weights', weights, '--wbits', String(wbits), '--data', list, '-o', out, '--threads', String(this.o.threads)];
    if (q.perChannel === false) args.push('--per-layer');
    if (q.zeroCentered === false) args.push('--no-zero-center');
    if (q.alignWeights === true) args.push('--align-weights');
    if (typeof q.featureWeight === 'number' && q.featureWeight > 0) args.push('--feature-weight', String(q.featureWeight));
    args.push(...this.o.retrainArgs);
    await this.exec(job, args);
    const s = await this.ap50Of(job, out);
    const floor = baseAp - this.o.tolerance;
    await this.logLine(job.id, `retrained: AP50 ${pct(s.ap50)}; current version ${base.version}: ${pct(baseAp)}; tolerance ${pct(this.o.tolerance)} → bar ${pct(floor)}`);
    if (!(s.ap50 >= floor)) {
      return `not published: AP50 ${pct(s.ap50)} is below ${pct(floor)} (version ${base.version}'s ${pct(baseAp)} minus ${pct(this.o.tolerance)})`;
    }
    const signArgs = ['sign', out, '--key', this.o.key];
    if (this.o.golden.length > 0) signArgs.push('--golden', ...this.o.golden);
    await this.exec(job, signArgs);
    const { descriptor, created } = await this.registry.publish({ data: await readFile(out), channel: to, publisher: `job ${job.id}`, parent: base.version, job: job.id });
    if (created) await this.registry.setScore(job.model, descriptor.version, s.ap50, path.basename(this.o.validation!), s.images);
    return `published version ${descriptor.version} to ${to}: AP50 ${pct(s.ap50)} >= ${pct(floor)}`;
  }

  /** Stops the running job's process; queued jobs stay queued for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.running?.child?.kill('SIGTERM');
    await this.idle.catch(() => undefined);
  }
}

/** Default calibration list and models folder. */
export function defaultJobPaths(): { calib: string; modelsDir: string } {
  return { calib: dataPath('coco-val', 'calib.txt'), modelsDir: dataPath('models') };
}
