/**
 * The daemon's lifecycle: start (engine, MQTT, health port, source, frame loop), reload (SIGHUP:
 * rebuild only what changed; a bad new config is logged and ignored), stop (finish the frame,
 * flush, publish `stopped`). It wires the parts together and owns the retained state it publishes.
 */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import { COCO_NAMES } from '../detect/names.js';
import { ZeroqError } from '../util/errors.js';
import { dataPath } from '../util/paths.js';
import { sourceFactory, type ResolvedSource } from './capture/open.js';
import { SourceSupervisor, type CapturedFrame, type SupervisorStatus } from './capture/supervisor.js';
import type { Config } from './config.js';
import { loadConfig, type LoadOptions } from './config-load.js';
import { FrameLoop, type DetectSettings, type LoopEnd, type ProcessedFrame } from './frame-loop.js';
import { startOpsServer, type Health, type OpsServer } from './http.js';
import { Mailbox } from './mailbox.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './mqtt/broker.js';
import { discoveryConfigs } from './mqtt/ha-discovery.js';
import { countClasses, countsPayload, detectionsPayload, type EngineInfo } from './mqtt/payloads.js';
import { startPrinter, type Printer } from './mqtt/printer.js';
import { Publisher, type PublisherOptions } from './mqtt/publisher.js';
import { AVAILABILITY, PAYLOAD_VERSION, topicsFor, type Topics } from './mqtt/topics.js';
import { SdNotify } from './sdnotify.js';
import { renderSnapshot } from './snapshot.js';
import { Telemetry, round } from './telemetry.js';

export interface DaemonOptions {
  load: LoadOptions;
  /** Where --print writes. */
  out: Writable;
  log: Logger;
  version: string;
  /** Opens engines (tests may count calls); default: engine/open.ts. */
  openEngine?: (kind: 'float' | 'int', model: string, threads: number, trust: readonly KeyObject[] | null) => Promise<Engine>;
}

/** The model used when none is configured (float engine). */
export function defaultModelPath(): string {
  return dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
}

async function defaultOpenEngine(kind: 'float' | 'int', model: string, threads: number, trust: readonly KeyObject[] | null): Promise<Engine> {
  const { openEngine } = await import('../engine/open.js');
  return openEngine(kind, model, { threads, trust });
}

/** model.trust as keys (null: no signature check). */
async function trustOf(cfg: Config): Promise<KeyObject[] | null> {
  if (!cfg.model.trust) return null;
  const { loadTrust } = await import('../qnet/keys.js');
  return loadTrust(cfg.model.trust, 'model.trust');
}

function modelPath(cfg: Config): string {
  if (cfg.model.path) return cfg.model.path;
  if (cfg.model.engine === 'float') return defaultModelPath();
  throw new ZeroqError('config', 'the int engine needs a weight set (.zqw): set model.path or --model', 'model.path');
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

interface MqttPart {
  publisher: Publisher;
  broker?: EmbeddedBroker;
  printer?: Printer;
  topics: Topics;
  /** Discovery topics currently published. */
  discovery: Set<string>;
  url: string;
}

export class Daemon {
  private cfg: Config;
  private readonly telemetry = new Telemetry();
  private readonly mailbox: Mailbox<CapturedFrame>;
  private readonly sd: SdNotify;
  private readonly log: Logger;
  private engine!: Engine;
  private loop!: FrameLoop;
  private supervisor?: SourceSupervisor;
  private resolvedSource?: ResolvedSource;
  private mqtt?: MqttPart;
  private ops?: OpsServer;
  private statsTimer?: NodeJS.Timeout;
  private lastCounts = '';
  private lastSnapshotAt = 0;
  private snapshotBusy = false;
  private stopping?: Promise<number>;
  private reloading: Promise<void> = Promise.resolve();
  private loopDone?: Promise<LoopEnd>;
  private resolveDone!: (code: number) => void;
  /** Resolves with the exit code once the daemon stopped. */
  readonly done: Promise<number>;

  private constructor(
    cfg: Config,
    private readonly o: DaemonOptions,
  ) {
    this.cfg = cfg;
    this.log = o.log;
    this.sd = new SdNotify(o.log.child({ mod: 'sd_notify' }));
    this.mailbox = new Mailbox<CapturedFrame>(() => this.telemetry.skipped());
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Loads the config, starts every part, and returns the running daemon. Throws on a bad config. */
  static async start(o: DaemonOptions): Promise<Daemon> {
    const cfg = loadConfig(o.load);
    const d = new Daemon(cfg, o);
    try {
      await d.startParts();
    } catch (err) {
      await d.teardown().catch(() => undefined);
      throw err;
    }
    return d;
  }

  get config(): Config {
    return this.cfg;
  }

  get httpPort(): number | undefined {
    return this.ops?.port;
  }

  get mqttUrl(): string | undefined {
    return this.mqtt?.url;
  }

  private async openEngine(cfg: Config): Promise<Engine> {
    const open = this.o.openEngine ?? defaultOpenEngine;
    return open(cfg.model.engine, modelPath(cfg), cfg.model.threads, await trustOf(cfg));
  }

  private detectSettings(cfg: Config): DetectSettings {
    const known = new Set(COCO_NAMES);
    for (const c of cfg.detect.classes) {
      if (!known.has(c)) this.log.warn({ class: c }, 'detect.classes names a class the COCO names do not have');
    }
    return {
      decode: { threshold: cfg.detect.threshold, nms: cfg.detect.nms, maxDetections: cfg.detect.max_detections, nmsSpace: 'relative' },
      classes: new Set(cfg.detect.classes),
    };
  }

  private engineInfo(): EngineInfo {
    const e = this.loop.currentEngine;
    return { kind: e.kind, model: e.net.name, weights: e.modelId, threads: this.cfg.model.threads };
  }

  private async startParts(): Promise<void> {
    const cfg = this.cfg;
    // Check the source before anything slow, so a typo fails fast.
    const t0 = performance.now();
    this.engine = await this.openEngine(cfg);
    this.log.info({ engine: this.engine.kind, model: this.engine.modelId, ms: Math.round(performance.now() - t0) }, 'engine ready');
    this.loop = new FrameLoop(this.engine, this.detectSettings(cfg), cfg.max_frames, (r) => this.onFrame(r), this.log.child({ mod: 'loop' }));
    this.noteEngine();
    this.startSupervisorParts(cfg, false);
    this.mqtt = await this.startMqtt(cfg);
    if (cfg.http.port !== 0) this.ops = await startOpsServer(cfg.http.host, cfg.http.port, () => this.health(), this.telemetry.registry, this.log.child({ mod: 'http' }));
    this.startStatsTimer();

    this.supervisor!.start();
    this.loopDone = this.loop.run(this.mailbox);
    this.loopDone.then(
      (end) => {
        if (end !== 'stopped') {
          this.log.info({ reason: end, frames: this.loop.processed }, 'input finished; stopping');
          void this.stop(0);
        }
      },
      (err: unknown) => {
        this.log.fatal({ err: (err as Error).message }, 'frame loop failed');
        void this.stop(1);
      },
    );
    await this.sd.ready(`running: ${this.supervisor!.current.description}`);
    this.sd.startWatchdog(() => this.loop.busyMs() < 60_000);
    this.log.info({ device: cfg.device_id, source: this.resolvedSource, mqtt: this.mqtt.url }, 'daemon running');
  }

  private noteEngine(): void {
    const e = this.loop.currentEngine;
    this.telemetry.engine(e.kind, e.net.name, e.modelId, this.cfg.model.threads);
  }

  /** Builds the supervisor for cfg.source (the old one must be stopped by the caller). */
  private startSupervisorParts(cfg: Config, start: boolean): void {
    const net = this.loop.currentEngine.net;
    const { resolved, create } = sourceFactory(cfg.source, net, this.log.child({ mod: 'capture' }));
    this.resolvedSource = resolved;
    const s = new SourceSupervisor({
      create,
      stallTimeoutMs: cfg.source.stall_timeout_s * 1000,
      maxBadFrames: cfg.source.max_bad_frames,
      restart: { initialMs: cfg.source.restart.initial_ms, maxMs: cfg.source.restart.max_ms, factor: cfg.source.restart.factor },
      stableAfterMs: cfg.source.stable_after_s * 1000,
      log: this.log.child({ mod: 'capture' }),
    });
    let prev: SupervisorStatus = s.current;
    s.on('state', (st: SupervisorStatus) => {
      if (s !== this.supervisor) return;
      if (st.restarts > prev.restarts) this.telemetry.sourceRestart();
      this.telemetry.sourceUp(st.state === 'running');
      prev = st;
      this.publishStatus();
      if (st.state === 'ended') this.mailbox.close(); // the loop processes what is pending, then ends
      if (st.state === 'running' || st.state === 'restarting') void this.sd.status(`${st.state}: ${st.description}`);
    });
    s.on('bad', () => this.telemetry.badFrame());
    s.deliver = (f, live) => {
      this.telemetry.captured();
      if (live) {
        this.mailbox.put(f);
        return;
      }
      this.loop.prepare(f);
      return this.mailbox.putWait(f);
    };
    this.supervisor = s;
    if (start) s.start();
  }

  private async startMqtt(cfg: Config): Promise<MqttPart> {
    const log = this.log.child({ mod: 'mqtt' });
    let broker: EmbeddedBroker | undefined;
    let url = cfg.mqtt.url;
    if (!url) {
      broker = await startEmbeddedBroker(cfg.mqtt.embedded.host, cfg.mqtt.embedded.port, log);
      url = broker.url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
    }
    const topics = topicsFor(cfg.mqtt.prefix, cfg.device_id!);
    const m = cfg.mqtt;
    const readOpt = (file: string | undefined, key: string): Buffer | undefined => {
      if (!file) return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new ZeroqError('config', `cannot read ${file}: ${(err as Error).message}`, key);
      }
    };
    let password = m.password;
    if (m.password_file) password = readOpt(m.password_file, 'mqtt.password_file')!.toString('utf8').replace(/\r?\n$/, '');
    const tls = m.tls
      ? { ca: readOpt(m.tls.ca, 'mqtt.tls.ca'), cert: readOpt(m.tls.cert, 'mqtt.tls.cert'), key: readOpt(m.tls.key, 'mqtt.tls.key'), rejectUnauthorized: m.tls.reject_unauthorized }
      : undefined;
    const popts: PublisherOptions = {
      url,
      clientId: m.client_id ?? `zeroq-${cfg.device_id}`,
      username: m.username,
      password,
      tls,
      keepaliveS: m.keepalive_s,
      reconnect: { minMs: m.reconnect.min_ms, maxMs: m.reconnect.max_ms },
      buffer: { maxMessages: m.buffer.max_messages, maxBytes: m.buffer.max_bytes },
      maxInflight: m.max_inflight,
      will: { topic: topics.availability, payload: AVAILABILITY.offline },
      log,
    };
    const publisher = new Publisher(popts);
    const part: MqttPart = { publisher, broker, topics, discovery: new Set(), url };

    let printer: Printer | undefined;
    if (cfg.print) {
      printer = startPrinter(url, `${topics.base}/#`, this.o.out, { username: m.username, password, ca: tls?.ca, cert: tls?.cert, key: tls?.key, rejectUnauthorized: tls?.rejectUnauthorized });
      part.printer = printer;
    }

    // `online` is the first state topic, so every (re)connect announces it before the rest.
    publisher.setState(topics.availability, AVAILABILITY.online);
    publisher.on('connect', ({ reconnect }) => {
      this.telemetry.mqttConnected(true);
      if (reconnect) this.telemetry.mqttReconnect();
    });
    publisher.on('offline', () => this.telemetry.mqttConnected(false));
    publisher.on('dropped', (n) => {
      this.telemetry.mqttDropped(n);
      log.warn({ dropped: n, total: publisher.dropped }, 'offline buffer full; dropped the oldest messages');
    });
    publisher.on('message', (topic, payload) => {
      if (topic === `${cfg.homeassistant.discovery_prefix}/status` && payload.toString() === 'online') {
        log.info('Home Assistant is online; sending discovery again');
        publisher.republish(() => true);
      }
    });
    this.publishDiscovery(part, cfg);
    if (cfg.homeassistant.enabled) publisher.subscribe(`${cfg.homeassistant.discovery_prefix}/status`);
    publisher.connect();
    if (printer) {
      // Let the printer subscribe first so that it shows the first frames; a broker that is down
      // must not hold the daemon back.
      await Promise.race([printer.ready, new Promise((r) => setTimeout(r, 3000).unref())]);
    }
    return part;
  }

  private publishDiscovery(part: MqttPart, cfg: Config): void {
    const configs = cfg.homeassistant.enabled
      ? discoveryConfigs({
          discoveryPrefix: cfg.homeassistant.discovery_prefix,
          deviceId: cfg.device_id!,
          topics: part.topics,
          classes: cfg.homeassistant.classes,
          model: this.loop.currentEngine.net.name,
          version: this.o.version,
        })
      : new Map<string, string>();
    for (const t of part.discovery) if (!configs.has(t)) part.publisher.setState(t, '');
    for (const [t, payload] of configs) part.publisher.setState(t, payload);
    part.discovery = new Set(configs.keys());
  }

  private publishStatus(): void {
    if (!this.mqtt || !this.supervisor) return;
    const s = this.supervisor.current;
    const state = this.stopping ? 'stopping' : s.state === 'running' ? 'running' : s.state === 'starting' ? 'starting' : 'degraded';
    this.mqtt.publisher.setState(
      this.mqtt.topics.status,
      JSON.stringify({
        v: PAYLOAD_VERSION,
        time: new Date().toISOString(),
        state,
        source: {
          url: this.cfg.source.url,
          kind: this.resolvedSource?.kind,
          state: s.state,
          restarts: s.restarts,
          frames: s.frames,
          bad_frames: s.badFrames,
          last_error: s.lastError ?? null,
          retry_in_ms: s.retryInMs ?? null,
        },
        engine: this.engineInfo(),
      }),
    );
  }

  private statsPayload(): string {
    const w = this.telemetry.window();
    const c = this.telemetry.counts;
    const s = this.supervisor?.current;
    return JSON.stringify({
      v: PAYLOAD_VERSION,
      time: new Date().toISOString(),
      uptime_s: Math.round((Date.now() - this.telemetry.startedAt) / 1000),
      camera_fps: w.cameraFps,
      processed_fps: w.processedFps,
      frames: { captured: c.captured, processed: c.processed, skipped: c.skipped, bad: c.badFrames },
      detections: c.detections,
      source: { state: s?.state, restarts: c.sourceRestarts },
      mqtt: { connected: this.mqtt?.publisher.connected ?? false, reconnects: c.mqttReconnects, buffered: this.mqtt?.publisher.buffered ?? 0, dropped: c.mqttDropped },
      inference_ms: w.inferenceMs,
      latency_ms: w.latencyMs,
      engine: this.engineInfo(),
    });
  }

  private startStatsTimer(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = setInterval(() => {
      if (!this.mqtt) return;
      this.telemetry.mqttBuffered(this.mqtt.publisher.buffered);
      this.mqtt.publisher.setState(this.mqtt.topics.stats, this.statsPayload());
    }, this.cfg.publish.stats_interval_s * 1000);
  }

  private onFrame(r: ProcessedFrame): void {
    const names = r.detections.map((d) => d.className);
    this.telemetry.processed(r.inferenceMs, r.latencyMs, names);
    const m = this.mqtt;
    if (!m) return;
    const f = r.frame;
    const cfg = this.cfg;
    if (r.detections.length > 0 || cfg.publish.empty_frames) {
      const payload = detectionsPayload(
        cfg.device_id!,
        { seq: f.seq, time: f.time, width: f.srcWidth, height: f.srcHeight, inferenceMs: r.inferenceMs, latencyMs: r.latencyMs, detections: r.detections },
        this.engineInfo(),
        (d) => d.classId,
      );
      m.publisher.stream(m.topics.detections, payload, cfg.mqtt.qos);
    }
    this.log.debug({ frame: f.seq, detections: r.detections.length, ms: round(r.inferenceMs, 1), mqtt: m.publisher.connected ? 'sent' : 'buffered' }, 'frame');
    if (cfg.publish.counts) {
      const counts = countClasses(r.detections, cfg.homeassistant.enabled ? cfg.homeassistant.classes : []);
      const key = JSON.stringify(counts);
      if (key !== this.lastCounts) {
        this.lastCounts = key;
        m.publisher.setState(m.topics.counts, countsPayload(f.seq, f.time, counts));
      }
    }
    const snap = cfg.publish.snapshot;
    if (snap.enabled && !this.snapshotBusy && Date.now() - this.lastSnapshotAt >= snap.interval_s * 1000) {
      this.snapshotBusy = true;
      this.lastSnapshotAt = Date.now();
      renderSnapshot({ ...f, detections: r.detections }, snap.max_size, snap.quality)
        .then((jpeg) => this.mqtt?.publisher.setState(this.mqtt.topics.snapshot, jpeg))
        .catch((err: Error) => this.log.warn({ err: err.message }, 'snapshot failed'))
        .finally(() => (this.snapshotBusy = false));
    }
  }

  health(): Health {
    const s = this.supervisor?.current;
    const now = Date.now();
    const staleMs = this.cfg.http.stale_after_s * 1000;
    const last = this.telemetry.lastProcessedAt;
    const problems: string[] = [];
    if (!s || s.state !== 'running') problems.push(`source ${s?.state ?? 'missing'}${s?.lastError ? `: ${s.lastError}` : ''}`);
    // Frames must flow: the first within stale_after_s of the start, then at least one per stale_after_s.
    const since = last > 0 ? now - last : now - this.telemetry.startedAt;
    if (since > staleMs) problems.push(`no frame processed for ${(since / 1000).toFixed(1)} s`);
    if (this.loop.busyMs() > staleMs) problems.push(`engine busy on one frame for ${(this.loop.busyMs() / 1000).toFixed(1)} s`);
    if (this.stopping) problems.push('stopping');
    return {
      ok: problems.length === 0,
      problems,
      source: s ? { state: s.state, description: s.description, restarts: s.restarts, last_error: s.lastError ?? null } : null,
      engine: this.engineInfo(),
      last_frame_age_s: last > 0 ? round((now - last) / 1000, 2) : null,
      frames: { ...this.telemetry.counts },
      mqtt: { connected: this.mqtt?.publisher.connected ?? false, buffered: this.mqtt?.publisher.buffered ?? 0 },
    };
  }

  /** SIGHUP: reads the config again and swaps what changed. A bad config is logged and ignored. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload());
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    if (this.stopping) return;
    await this.sd.reloading();
    const old = this.cfg;
    let cfg: Config;
    try {
      cfg = loadConfig(this.o.load);
      if (cfg.model.engine === 'int' && !cfg.model.path) modelPath(cfg);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'reload: new configuration rejected; keeping the running one');
      await this.sd.ready('reload rejected; running the previous configuration');
      return;
    }
    const changed: string[] = [];
    let inputChanged = false;
    try {
      if (!same(old.model, cfg.model)) {
        const next = await this.openEngine(cfg);
        const prevNet = this.loop.currentEngine.net;
        const prev = await this.loop.swapEngine(next);
        await prev.close();
        this.engine = next;
        inputChanged = !same([prevNet.input, prevNet.letterbox], [next.net.input, next.net.letterbox]);
        changed.push('model');
      }
      this.cfg = cfg;
      this.noteEngine();
      if (!same(old.detect, cfg.detect)) {
        this.loop.setSettings(this.detectSettings(cfg));
        changed.push('detect');
      }
      this.loop.maxFrames = cfg.max_frames;
      // ffmpeg scales to the network input: a new input size needs a new source.
      if (!same(old.source, cfg.source) || inputChanged) {
        const prev = this.supervisor;
        await prev?.stop();
        this.mailbox.reopen();
        this.startSupervisorParts(cfg, true);
        changed.push('source');
      }
      const mqttKeys = (c: Config) => [c.mqtt, c.device_id, c.print, c.homeassistant.enabled, c.homeassistant.discovery_prefix];
      if (!same(mqttKeys(old), mqttKeys(cfg))) {
        const prev = this.mqtt;
        this.mqtt = undefined;
        if (prev) await this.closeMqtt(prev);
        this.mqtt = await this.startMqtt(cfg);
        changed.push('mqtt');
      } else if (this.mqtt && (!same(old.homeassistant, cfg.homeassistant) || changed.includes('model'))) {
        this.publishDiscovery(this.mqtt, cfg);
        changed.push('homeassistant');
      }
      if (!same(old.publish, cfg.publish)) {
        this.startStatsTimer();
        if (old.publish.snapshot.enabled && !cfg.publish.snapshot.enabled && this.mqtt) this.mqtt.publisher.setState(this.mqtt.topics.snapshot, '');
        changed.push('publish');
      }
      if (!same(old.http, cfg.http)) {
        await this.ops?.close();
        this.ops = undefined;
        if (cfg.http.port !== 0) this.ops = await startOpsServer(cfg.http.host, cfg.http.port, () => this.health(), this.telemetry.registry, this.log.child({ mod: 'http' }));
        changed.push('http');
      }
      this.publishStatus();
      this.log.info({ changed }, 'configuration reloaded');
      await this.sd.ready(`reloaded (${changed.join(', ') || 'nothing changed'})`);
    } catch (err) {
      // Parts already swapped stay; what failed keeps its previous state where it could.
      this.log.error({ err: (err as Error).message, changed }, 'reload failed part way');
      await this.sd.ready('reload failed part way');
    }
  }

  private async closeMqtt(m: MqttPart): Promise<void> {
    await m.publisher.close(m.topics.availability, AVAILABILITY.stopped, this.cfg.mqtt.flush_timeout_s * 1000);
    if (m.printer) {
      await m.printer.waitFor(m.topics.availability, AVAILABILITY.stopped, 2000);
      await m.printer.close();
    }
    await m.broker?.close();
  }

  /** Finishes the frame in progress, flushes MQTT, publishes `stopped`, releases everything. */
  stop(code = 0): Promise<number> {
    if (!this.stopping) {
      this.stopping = (async () => {
        await this.reloading.catch(() => undefined);
        this.log.info({ code }, 'stopping');
        await this.sd.stopping();
        await this.teardown();
        this.resolveDone(code);
        return code;
      })();
    }
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    this.sd.stopWatchdog();
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.loop?.stop();
    await this.supervisor?.stop();
    this.mailbox.close();
    await this.loopDone?.catch(() => undefined);
    if (this.mqtt) {
      this.mqtt.publisher.setState(this.mqtt.topics.stats, this.statsPayload());
      const m = this.mqtt;
      this.mqtt = undefined;
      await this.closeMqtt(m);
    }
    await this.ops?.close();
    await this.engine?.close();
  }
}
