/**
 * Weight-set updates, as a daemon part (docs/updates.md): check the server on start, on its MQTT
 * announcement and every interval; download in the background; verify (size, sha256, signature by a
 * trusted key, fit to the running network and engine); run the set's self-test frames on a new engine;
 * install atomically; swap engines between two frames; watch a health window and roll back by itself
 * when the new set misbehaves. Every step is on MQTT (<base>/update, retained), in /metrics and in the
 * Home Assistant `update` entity.
 */
import { createHash, randomInt, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Engine } from '../../engine/engine.js';
import { engineModule } from '../../engine/registry.js';
import { loadTrust } from '../../qnet/keys.js';
import { runSelfTest } from '../../update/golden.js';
import { syncDir } from '../../util/atomic.js';
import { isZeroqError, ZeroqError } from '../../util/errors.js';
import type { Config } from '../config.js';
import type { DaemonContext, MqttLink } from '../context.js';
import { modelPath } from '../daemon.js';
import type { ProcessedFrame } from '../frame-loop.js';
import type { DaemonPart, PartHealth } from '../part.js';
import { checkLatest, download, uploadFrame, type Descriptor } from './client.js';
import { HardFrames } from './hard-frames.js';
import { MAX_ATTEMPTS, StateFiles, updateDir, type InstalledSet, type UpdateState } from './state.js';
import { statusPayload, updateDiscovery, updateTopics, UpdateMetrics, type SetRef, type UpdateStateName, type UpdateStatus } from './status.js';
import { verifyCandidate } from './verify.js';

/** Failures that say something about the set itself: it is not tried again. */
const PERMANENT = /^(zqw-|QNET|update-fit|update-selftest|update-mismatch|update-health)/;

interface Watch {
  set: InstalledSet;
  engine: Engine;
  previous: Engine;
  /** Detections per frame of the previous set, over its last frames. */
  previousRate: number;
  frames: number;
  detections: number;
  errors: number;
}

const RECENT = 100;

export class UpdatePart implements DaemonPart {
  readonly name = 'update';
  /** A new engine or connection: the part looks again at what runs and subscribes again. */
  readonly follows = ['model', 'mqtt'];
  private cfg?: Config;
  private files?: StateFiles;
  private state?: UpdateState;
  private trust: KeyObject[] = [];
  private token?: string;
  private status: UpdateStatus = { state: 'idle', running: null, available: null, progress: null, lastCheck: null, lastError: null, model: '', channel: '' };
  private running?: SetRef;
  private timer?: NodeJS.Timeout;
  private jitter?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private failures = 0;
  private busy?: Promise<void>;
  private again = false;
  private installRequested = false;
  private abort?: AbortController;
  private watch?: Watch;
  /** Detections per frame of the last frames of the running set. */
  private recent: number[] = [];
  private link?: MqttLink;
  private ownSwap?: Engine;
  private hard?: HardFrames;
  /** Waiting for enough frames of the running set to compare the new one with. */
  private baseline?: { need: number; resolve: () => void };
  private readonly metrics: UpdateMetrics;
  private readonly log;
  private readonly onFrame = (r: ProcessedFrame) => this.frame(r);
  private readonly onFailed = () => this.failedFrame();
  private readonly onEngine = (e: Engine) => this.engineChanged(e);
  private readonly onLink = (l: MqttLink) => this.attach(l);
  private readonly onMessage = (topic: string, payload: Buffer) => this.message(topic, payload);

  constructor(private readonly ctx: DaemonContext) {
    this.metrics = new UpdateMetrics(ctx.telemetry.registry);
    this.log = ctx.log.child({ mod: 'update' });
  }

  section(cfg: Config): unknown {
    return [cfg.update, cfg.model.trust, cfg.mqtt.prefix, cfg.homeassistant.enabled, cfg.homeassistant.discovery_prefix];
  }

  check(cfg: Config): void {
    const u = cfg.update;
    if (!u.server) return;
    if ((cfg.model.trust ?? []).length + u.trust.length === 0) {
      throw new ZeroqError('config', 'updates need trusted keys: set model.trust or update.trust (the public keys the sets are signed with)', 'update.trust');
    }
    const m = engineModule(cfg.model.engine, 'model.engine');
    if (!m.capabilities.integer || !m.opens('set.zqw')) {
      throw new ZeroqError('config', `the ${cfg.model.engine} engine does not run weight sets (.zqw); updates need an integer engine`, 'update.server');
    }
    if (u.token_file) {
      try {
        readFileSync(u.token_file);
      } catch (e) {
        throw new ZeroqError('config', `cannot read ${u.token_file}: ${(e as Error).message}`, 'update.token_file');
      }
    }
  }

  async start(cfg: Config): Promise<void> {
    this.cfg = cfg;
    this.ctx.events.on('mqtt', this.onLink);
    if (!cfg.update.server) return;
    const u = cfg.update;
    this.trust = loadTrust([...(cfg.model.trust ?? []), ...u.trust], 'model.trust, update.trust');
    this.token = u.token_file ? readFileSync(u.token_file, 'utf8').trim() : u.token;
    this.files = new StateFiles(updateDir(cfg));
    this.files.ensure();
    this.state = this.files.load();
    await this.recoverTrial();
    this.identifyRunning();
    this.status = { ...this.status, state: 'idle', model: this.model(), channel: u.channel, running: this.running ?? null };
    this.hard = u.hard_frames.enabled && this.token ? new HardFrames(u.hard_frames, (jpeg, meta) => uploadFrame(u.server!, this.token!, jpeg, meta), this.log) : undefined;
    this.ctx.events.on('frame', this.onFrame);
    this.ctx.events.on('failed', this.onFailed);
    this.ctx.events.on('engine', this.onEngine);
    if (this.ctx.mqtt) this.attach(this.ctx.mqtt);
    this.schedule();
    this.log.info({ server: u.server, model: this.model(), channel: u.channel, running: this.running, dir: this.files.dir }, 'updates on');
    this.checkSoon('start');
  }

  async reload(cfg: Config): Promise<boolean> {
    const prev = this.cfg;
    const same = prev && JSON.stringify(this.section(prev)) === JSON.stringify(this.section(cfg));
    if (same) {
      // Only the engine or the connection changed: look again at what runs, subscribe on the new link.
      this.cfg = cfg;
      if (this.cfg.update.server && !this.watch) this.identifyRunning();
      if (this.ctx.mqtt && this.ctx.mqtt !== this.link) this.attach(this.ctx.mqtt);
      return false;
    }
    await this.stop();
    await this.start(cfg);
    return true;
  }

  async drain(): Promise<void> {
    this.clearTimers();
    this.abort?.abort();
    this.baseline?.resolve();
  }

  async stop(): Promise<void> {
    this.clearTimers();
    this.abort?.abort();
    this.baseline?.resolve();
    await this.busy?.catch(() => undefined);
    this.ctx.events.off('frame', this.onFrame);
    this.ctx.events.off('failed', this.onFailed);
    this.ctx.events.off('engine', this.onEngine);
    this.ctx.events.off('mqtt', this.onLink);
    this.link?.publisher.off('message', this.onMessage);
    this.link = undefined;
    // A set being watched stays on trial (the next start runs the previous one); its old engine goes.
    if (this.watch) {
      await this.watch.previous.close().catch(() => undefined);
      this.watch = undefined;
    }
    this.metrics.inProgress.set(0);
  }

  health(): PartHealth {
    if (!this.cfg?.update.server) return {};
    const s = this.status;
    return { details: { update: { state: s.state, running: s.running, available: s.available, last_check: s.lastCheck, last_error: s.lastError } } };
  }

  private clearTimers(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.jitter) clearTimeout(this.jitter);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.timer = undefined;
    this.jitter = undefined;
    this.retryTimer = undefined;
  }

  private model(): string {
    return this.cfg!.update.model ?? this.ctx.loop.currentEngine.net.name;
  }

  private schedule(): void {
    const s = this.cfg!.update.check_interval_s;
    // ±10% so that a fleet started together does not check together.
    const ms = Math.round(s * 1000 * (0.9 + Math.random() * 0.2));
    this.timer = setInterval(() => this.checkSoon('interval'), ms);
    this.timer.unref();
  }

  /** A set left on trial by a process that died: the previous set runs; after three such starts it is refused. */
  private async recoverTrial(): Promise<void> {
    const s = this.state!;
    if (!s.trial) return;
    const sha = s.trial.sha256;
    s.attempts[sha] = (s.attempts[sha] ?? 0) + 1;
    if (s.attempts[sha] >= MAX_ATTEMPTS) s.refused[sha] = `the daemon stopped ${MAX_ATTEMPTS} times while this set was on trial`;
    this.log.warn({ set: s.trial, attempts: s.attempts[sha] }, 'a set was on trial when the daemon stopped; running the previous one');
    s.trial = null;
    await this.files!.save(s);
  }

  /** Which set runs: the installed one when the engine runs it, else the configured file. */
  private identifyRunning(): void {
    const e = this.ctx.loop.currentEngine;
    const cur = this.state?.current;
    if (cur && cur.id === e.modelId && this.files && existsSync(this.files.setPath(cur.sha256))) {
      this.running = { version: cur.version, sha256: cur.sha256, id: cur.id };
    } else {
      const file = modelPath(this.cfg!.model);
      let sha = '';
      try {
        sha = createHash('sha256').update(readFileSync(file)).digest('hex');
      } catch {
        /* a model that is not one file */
      }
      this.running = { version: null, sha256: sha, id: e.modelId };
    }
    this.status.running = this.running;
    this.metrics.running.set(this.running.version ?? -1);
  }

  // --- MQTT: status, announcement, command

  private attach(link: MqttLink): void {
    if (!this.cfg?.update.server) return;
    this.link?.publisher.off('message', this.onMessage);
    this.link = link;
    const u = this.cfg.update;
    link.publisher.on('message', this.onMessage);
    if (u.announce) link.publisher.subscribe(this.announceTopic());
    link.publisher.subscribe(updateTopics(link.topics).command);
    const ha = this.cfg.homeassistant;
    if (ha.enabled) {
      const [topic, payload] = updateDiscovery(ha.discovery_prefix, link.deviceId, link.topics, this.ctx.loop.currentEngine.net.name, this.ctx.version, this.ctx.publicUrl());
      link.publisher.setState(topic, payload);
    }
    this.publish();
  }

  private announceTopic(): string {
    const u = this.cfg!.update;
    return `${u.announce_prefix ?? this.cfg!.mqtt.prefix}/updates/${this.model()}/${u.channel}`;
  }

  private message(topic: string, payload: Buffer): void {
    if (!this.link) return;
    if (topic === updateTopics(this.link.topics).command) {
      const cmd = payload.toString().trim();
      if (cmd === 'install') {
        this.installRequested = true;
        this.checkSoon('install command');
      } else if (cmd === 'check') this.checkSoon('check command');
      return;
    }
    if (topic !== this.announceTopic()) return;
    let d: { sha256?: unknown; version?: unknown };
    try {
      d = JSON.parse(payload.toString()) as typeof d;
    } catch {
      return;
    }
    if (typeof d.sha256 !== 'string' || d.sha256 === this.running?.sha256 || this.state?.refused[d.sha256]) return;
    this.log.info({ version: d.version }, 'announced: a new version');
    const ms = Math.round(Math.random() * this.cfg!.update.announce_jitter_s * 1000);
    if (this.jitter) clearTimeout(this.jitter);
    this.jitter = setTimeout(() => this.checkSoon('announcement'), ms);
  }

  private publish(): void {
    this.status.running = this.running ?? null;
    if (this.link) this.link.publisher.setState(updateTopics(this.link.topics).status, statusPayload(this.status));
  }

  private set(state: UpdateStateName, patch: Partial<UpdateStatus> = {}): void {
    this.status = { ...this.status, ...patch, state };
    this.metrics.inProgress.set(['downloading', 'verifying', 'selftest', 'installing', 'watching'].includes(state) ? 1 : 0);
    this.publish();
    this.log.info({ state, ...patch }, `update: ${state}`);
  }

  // --- checking and installing

  private checkSoon(reason: string): void {
    if (!this.cfg?.update.server || this.ctx.stopping) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = this.checkAndInstall(reason)
      .catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'update check failed'))
      .finally(() => {
        this.busy = undefined;
        if (this.again && !this.watch) {
          this.again = false;
          this.checkSoon('queued');
        }
      });
  }

  private async checkAndInstall(reason: string): Promise<void> {
    if (this.watch) {
      this.again = true; // after the health window
      return;
    }
    const u = this.cfg!.update;
    this.metrics.checks.inc();
    // The state reported to the server is the one before this check.
    const reported = this.status.state;
    this.set('checking');
    let d: Descriptor | undefined;
    try {
      // Without a known version the full answer is asked for (it names the version); else 304 when unchanged.
      d = await checkLatest({ server: u.server!, model: this.model(), channel: u.channel, token: this.token, running: this.running?.sha256 || null, conditional: this.running?.version != null, state: reported });
    } catch (e) {
      this.fail(e, 'idle');
      this.retryLater();
      return;
    }
    this.failures = 0;
    this.status.lastCheck = new Date().toISOString();
    if (!d) {
      this.set('idle', { available: this.running ? { ...this.running, size: 0 } : null, lastError: null });
      return;
    }
    const available = { version: d.version, sha256: d.sha256, id: d.id, size: d.size };
    this.metrics.available.set(d.version);
    if (d.sha256 === this.running?.sha256) {
      if (this.running.version === null) this.running = { ...this.running, version: d.version };
      this.metrics.running.set(d.version);
      this.set('idle', { available, lastError: null });
      return;
    }
    const refused = this.state!.refused[d.sha256];
    if (refused) {
      this.set('failed', { available, lastError: `version ${d.version} refused earlier: ${refused}` });
      return;
    }
    if (!u.auto_install && !this.installRequested) {
      this.set('available', { available });
      return;
    }
    this.installRequested = false;
    this.log.info({ reason, version: d.version, sha256: d.sha256 }, 'installing a new version');
    this.status.available = available;
    try {
      await this.install(d);
    } catch (e) {
      if (isZeroqError(e) && PERMANENT.test(e.code)) {
        this.state!.refused[d.sha256] = e.message;
        await this.files!.save(this.state!);
        await unlink(this.files!.partPath(d.sha256)).catch(() => undefined);
      } else if (!(isZeroqError(e) && e.code === 'update-stopped')) this.retryLater();
      this.fail(e, 'failed');
    }
  }

  /** After a network error or a bad download: again in 5 s, 10 s, 20 s, … (at most the check interval), with jitter. */
  private retryLater(): void {
    if (this.ctx.stopping) return;
    this.failures++;
    const ms = Math.min(this.cfg!.update.check_interval_s * 1000, 5000 * 2 ** (this.failures - 1)) * (0.5 + Math.random());
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.checkSoon('retry');
    }, ms);
    this.retryTimer.unref();
  }

  private fail(e: unknown, state: UpdateStateName): void {
    const code = isZeroqError(e) ? e.code : 'error';
    this.metrics.failures.inc({ reason: code });
    this.set(state, { progress: null, lastError: (e as Error).message });
  }

  private async install(d: Descriptor): Promise<void> {
    const u = this.cfg!.update;
    const files = this.files!;
    const target = files.setPath(d.sha256);
    this.abort = new AbortController();
    let file = target;
    if (!existsSync(target)) {
      file = files.partPath(d.sha256);
      this.set('downloading', { progress: { bytes: 0, size: d.size } });
      let last = 0;
      let reported = 0;
      await download({
        server: u.server!,
        d,
        part: file,
        maxBytes: u.max_bytes,
        timeoutMs: u.download_timeout_s * 1000,
        signal: this.abort.signal,
        onProgress: (bytes, size) => {
          this.metrics.bytes.inc(bytes - last);
          last = bytes;
          // Progress on MQTT in steps of 10%.
          if (bytes === size || bytes - reported >= size / 10) {
            reported = bytes;
            this.status.progress = { bytes, size };
            this.publish();
          }
        },
      });
    }
    this.set('verifying', { progress: null });
    const buf = await readFile(file);
    if (createHash('sha256').update(buf).digest('hex') !== d.sha256) {
      await unlink(file).catch(() => undefined);
      throw new ZeroqError('update-sha256', 'the stored file no longer hashes to its sha256', file);
    }
    const checked = verifyCandidate(buf, d, { trust: this.trust, running: this.ctx.loop.currentEngine.net, requireSelftest: u.require_selftest });

    this.set('selftest');
    const engine = await this.ctx.openEngine({ ...this.cfg!.model, path: file, trust: [...(this.cfg!.model.trust ?? []), ...u.trust] });
    try {
      if (checked.golden.length > 0) {
        const r = await runSelfTest(checked.golden, engine);
        if (!r.ok) {
          const bad = r.frames.find((f) => !f.ok)!;
          throw new ZeroqError('update-selftest', `self-test frame ${bad.name}: ${bad.error ?? `heads ${bad.got?.slice(7, 23)}…, expected ${bad.expected.slice(7, 23)}…`}`, `version ${d.version}`);
        }
      }
      if (this.ctx.stopping) throw new ZeroqError('update-stopped', 'the daemon is stopping', `version ${d.version}`);

      // Installed: the file under its final name, then the state naming it as on trial.
      this.set('installing');
      if (file !== target) {
        await rename(file, target);
        await syncDir(files.sets);
      }
      const set: InstalledSet = { sha256: d.sha256, id: d.id, version: d.version, installed: new Date().toISOString() };
      this.state!.trial = { ...set, started: new Date().toISOString() };
      this.state!.base = path.resolve(modelPath(this.cfg!.model));
      await files.save(this.state!);
      this.log.info({ version: d.version }, 'installed; swapping engines between two frames');

      await this.waitForBaseline();
      if (this.ctx.stopping || this.abort.signal.aborted) throw new ZeroqError('update-stopped', 'the daemon is stopping', `version ${d.version}`);
      // The swap: the next frame runs the new engine; the old one stays open for a rollback.
      const previousRate = this.recent.length > 0 ? this.recent.reduce((a, b) => a + b, 0) / this.recent.length : 0;
      this.ownSwap = engine;
      const previous = (await this.ctx.loop.swapEngine(engine))!;
      this.ctx.events.emit('engine', engine);
      this.ownSwap = undefined;
      this.watch = { set, engine, previous, previousRate, frames: 0, detections: 0, errors: 0 };
      this.recent = [];
      this.running = { version: d.version, sha256: d.sha256, id: d.id };
      this.ctx.publishStatus();
      this.set('watching');
    } catch (e) {
      if (!this.watch || this.watch.engine !== engine) await engine.close().catch(() => undefined);
      throw e;
    }
  }

  // --- the health window

  /**
   * The health window compares with the running set's detections per frame: right after a start
   * there are none yet, so the swap waits for as many frames as the window has (at most a minute;
   * without frames only errors are judged).
   */
  private async waitForBaseline(): Promise<void> {
    const need = this.cfg!.update.health.frames;
    if (this.recent.length >= need) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.baseline = { need, resolve };
      timer = setTimeout(resolve, 60_000);
      this.abort?.signal.addEventListener('abort', () => resolve());
    });
    clearTimeout(timer);
    this.baseline = undefined;
    if (this.recent.length < need) this.log.warn({ frames: this.recent.length }, 'few frames of the running set to compare with: the health window judges errors only');
  }

  private frame(r: ProcessedFrame): void {
    const w = this.watch;
    if (w && r.engine === w.engine) {
      w.frames++;
      w.detections += r.detections.length;
      this.judge();
    } else if (!w) {
      this.recent.push(r.detections.length);
      if (this.recent.length > RECENT) this.recent.shift();
      if (this.baseline && this.recent.length >= this.baseline.need) this.baseline.resolve();
    }
    this.hard?.consider(r, this.ctx.config.detect.threshold, { model: this.model(), weights: r.engine.modelId });
  }

  private failedFrame(): void {
    if (!this.watch) return;
    this.watch.errors++;
    this.judge();
  }

  private judge(): void {
    const w = this.watch!;
    const h = this.cfg!.update.health;
    let reason: string | undefined;
    if (w.errors > h.max_errors) reason = `${w.errors} inference error${w.errors > 1 ? 's' : ''} in the health window`;
    else if (w.frames < h.frames) return;
    else if (w.previousRate >= h.min_rate) {
      const rate = w.detections / w.frames;
      if (rate < h.min_ratio * w.previousRate) reason = `detections per frame fell from ${w.previousRate.toFixed(2)} to ${rate.toFixed(2)}`;
      else if (rate > h.max_ratio * w.previousRate) reason = `detections per frame rose from ${w.previousRate.toFixed(2)} to ${rate.toFixed(2)}`;
    }
    this.watch = undefined;
    void (reason ? this.rollback(w, reason) : this.commit(w)).catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'update: ending the health window failed'));
  }

  private async commit(w: Watch): Promise<void> {
    const s = this.state!;
    const cfgKeep = this.cfg!.update.keep;
    if (s.current && s.current.sha256 !== w.set.sha256) s.previous = [s.current, ...s.previous.filter((p) => p.sha256 !== s.current!.sha256)].slice(0, cfgKeep);
    s.current = w.set;
    s.trial = null;
    delete s.attempts[w.set.sha256];
    await this.files!.save(s);
    await w.previous.close().catch(() => undefined);
    await this.prune();
    this.metrics.installs.inc();
    this.metrics.running.set(w.set.version ?? -1);
    this.log.info({ version: w.set.version, frames: w.frames, detections: w.detections }, 'the new set passed its health window');
    this.set('idle', { lastError: null });
    // Checking again reports the new version to the server at once (and finds a newer one if any).
    this.again = false;
    this.checkSoon('report');
  }

  private async rollback(w: Watch, reason: string): Promise<void> {
    this.ownSwap = w.previous;
    const bad = await this.ctx.loop.swapEngine(w.previous);
    this.ctx.events.emit('engine', w.previous);
    this.ownSwap = undefined;
    await bad?.close().catch(() => undefined);
    const s = this.state!;
    s.trial = null;
    s.refused[w.set.sha256] = reason;
    await this.files!.save(s);
    await unlink(this.files!.setPath(w.set.sha256)).catch(() => undefined);
    this.identifyRunning();
    this.ctx.publishStatus();
    this.metrics.rollbacks.inc();
    this.metrics.failures.inc({ reason: 'update-health' });
    this.log.warn({ version: w.set.version, reason }, 'rolled back: the new set failed its health window');
    this.set('rolled_back', { lastError: `version ${w.set.version} rolled back: ${reason}` });
  }

  /** Another part replaced the engine (a reload of the model section). */
  private engineChanged(e: Engine): void {
    if (e === this.ownSwap) return;
    const w = this.watch;
    if (w) {
      // The configuration chose another model meanwhile: the trial ends without a verdict.
      this.watch = undefined;
      void w.previous.close().catch(() => undefined);
      this.state!.trial = null;
      void this.files!.save(this.state!);
    }
    this.recent = [];
    this.identifyRunning();
    this.publish();
  }

  /** Removes installed sets that are neither running, on trial, nor kept. */
  private async prune(): Promise<void> {
    const s = this.state!;
    const keep = new Set([s.current?.sha256, s.trial?.sha256, ...s.previous.map((p) => p.sha256)]);
    for (const f of readdirSync(this.files!.sets)) {
      const sha = f.replace(/\.zqw$/, '');
      if (!keep.has(sha)) await unlink(path.join(this.files!.sets, f)).catch(() => undefined);
    }
  }
}
