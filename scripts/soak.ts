/**
 * Operations checks of `zeroq run` (not part of npm test; needs `npm run build`, mosquitto, ffmpeg).
 * Every mode prints one JSON object with the measurements and a `checks` object (true = passed);
 * the exit code is 1 when a check failed.
 *
 *   npx tsx scripts/soak.ts throughput [--engine float|int] [--model M] [--threads 1] [--images 300] [--rounds 5]
 *     Processed frames/s of the daemon on a folder of dev images (every image processed, end to end:
 *     decode, resize, network, decode, MQTT through mosquitto) against `zeroq bench` end to end on the
 *     same engine and threads, rounds alternating; every detections message is checked against the
 *     schema of docs/mqtt.md and every frame must arrive exactly once.
 *
 *   npx tsx scripts/soak.ts outage [--engine int --model w8.zqw] [--buffer 1000] [--fps 12] [--before 20] [--outage 20] [--after 20]
 *     The daemon on a real-time looping video with mosquitto; mosquitto is stopped (SIGTERM) for
 *     --outage seconds and started again; SIGTERM to the daemon --after seconds after it reconnected.
 *     A subscriber with a persistent session records everything. Accounts for every processed frame:
 *     received + dropped (the daemon's own counter) == published.
 *
 *   npx tsx scripts/soak.ts soak [--engine int --model w8.zqw] [--minutes 11] [--fps 15] [--threads 1]
 *       [--node-options "<flags>"]
 *     The daemon on a looping video with mosquitto for N minutes: RSS of the daemon at 1 min and
 *     10 min (and its JS heap), its peak RSS (VmHWM), frame rates, skipped frames, messages received
 *     against processed, and the frame path's time against the network time (from the messages).
 *     The daemon runs with the NODE_OPTIONS of systemd/zeroq.service unless --node-options is given.
 *
 * --model defaults to the Yolo-Fastest 1.1 cfg (float engine); the int engine needs a .zqw, e.g. from
 * `bin/zeroq quantize $ZEROQ_DATA/models/yolo-fastest/yolo-fastest-1.1.cfg --wbits 8 --calib $ZEROQ_DATA/coco-val/calib.txt -o /tmp/w8.zqw`.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { makeVideo } from '../test/helpers/ffmpeg.js';
import { freePort, startMosquitto } from '../test/helpers/mosquitto.js';
import { DaemonProcess, Watcher, type Msg } from '../test/helpers/daemon.js';
import { COCO_NAMES } from '../src/detect/names.js';
import { dataPath } from '../src/util/paths.js';
import { engineKinds, engineModule } from '../src/engine/registry.js';
import { defaultWeightSet } from '../src/daemon/config.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// --cli <dist/cli.js of another checkout> measures that build instead (e.g. before a change).
const cli = path.resolve(arg('cli', path.join(repo, 'dist', 'cli.js')));
const defaultCfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

/** Engine, model and threads from the command line (engines from the registry; default int on the shipped W8 set). */
function engineArgs(): { engine: string; model: string; threads: number } {
  const engine = engineModule(arg('engine', 'int')).kind;
  const model = arg('model', engine === 'float' ? defaultCfg : defaultWeightSet());
  if (!existsSync(model)) throw new Error(`--model ${model}: no such file`);
  return { engine, model: path.resolve(model), threads: Number(arg('threads', '1')) };
}

function devImages(n: number): string[] {
  return readFileSync(dataPath('coco-val', 'dev.txt'), 'utf8')
    .trim()
    .split('\n')
    .slice(0, n)
    .map((rel) => dataPath('coco-val', rel.trim()));
}

/**
 * A looping real-time video of the first `images` dev images in `dir`, and a daemon config for it
 * (mqtt and publish: the inside of their YAML maps) with a free HTTP port.
 */
async function liveVideoDaemon(
  dir: string,
  o: { device: string; images: number; fps: number; engine: string; model: string; threads: number; mqtt: string; publish: string },
): Promise<{ config: string; httpPort: number }> {
  const video = path.join(dir, 'loop.mp4');
  await makeVideo(devImages(o.images), video, { width: 640, height: 480, fps: o.fps });
  const httpPort = await freePort();
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(
    config,
    [
      `device_id: ${o.device}`,
      `source: { url: ${video}, loop: true, realtime: true }`,
      `model: { engine: ${o.engine}, path: ${o.model}, threads: ${o.threads} }`,
      `mqtt: { ${o.mqtt} }`,
      `publish: { ${o.publish} }`,
      `http: { port: ${httpPort} }`,
    ].join('\n') + '\n',
  );
  return { config, httpPort };
}

/** A process's resident set (VmRSS), or its peak since it started (VmHWM), MB. */
function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system) of a process so far, ms (0 once it is gone). */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in 1/100 s (CLK_TCK)
  } catch {
    return 0;
  }
}

/** `zeroq run` from dist/, its JSON log lines parsed (test/helpers/daemon.ts). */
/**
 * The NODE_OPTIONS the installed daemon runs with (systemd/zeroq.service), so that the daemon is
 * measured as deployed; `--node-options` overrides it ('' for none).
 */
function daemonNodeOptions(): string {
  const i = process.argv.indexOf('--node-options');
  if (i > 0) return process.argv[i + 1] ?? '';
  const unit = readFileSync(path.join(repo, 'systemd', 'zeroq.service'), 'utf8');
  return /^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1].trim() ?? '';
}

function startDaemon(args: string[], level = 'info'): DaemonProcess {
  const env = { ...process.env, ZEROQ_LOG_LEVEL: level, NODE_OPTIONS: daemonNodeOptions() };
  const child = spawn(process.execPath, [cli, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  return new DaemonProcess(child);
}

const at = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r1 = (v: number) => Math.round(v * 10) / 10;
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const med = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];

async function getJson(url: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return fetch(url).then((r) => r.json());
}

/** Reads `name` (no labels) from a Prometheus text page. */
function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The retained payload of a topic as a new clean-session subscriber gets it (undefined: none within 2 s). */
async function retainedValue(url: string, topic: string): Promise<string | undefined> {
  const w = await Watcher.connect(url, [topic]);
  try {
    return (await w.waitFor((m) => m.retain, `retained ${topic}`, 2000)).text;
  } catch {
    return undefined;
  } finally {
    await w.close();
  }
}

// ---- the detections payload of docs/mqtt.md, interface version 1 ---------------------------------

const tenth = (v: number) => Math.abs(v * 10 - Math.round(v * 10)) < 1e-6;
const detectionSchema = z
  .object({
    class: z.string().refine((c) => COCO_NAMES.includes(c), 'not a class of the model'),
    class_id: z.int().min(0).max(COCO_NAMES.length - 1),
    score: z.number().gt(0).lte(1),
    box: z
      .object({ x: z.number().min(0), y: z.number().min(0), w: z.number().min(0), h: z.number().min(0) })
      .refine((b) => tenth(b.x) && tenth(b.y) && tenth(b.w) && tenth(b.h), 'box not rounded to 0.1 px'),
  })
  .refine((d) => COCO_NAMES[d.class_id] === d.class, 'class_id is not the index of class');

const detectionsSchema = z
  .object({
    v: z.literal(2),
    device: z.string().regex(/^[A-Za-z0-9_-]+$/),
    camera: z.string().regex(/^[a-z0-9_-]+$/),
    frame: z.int().positive(),
    time: z.iso.datetime(),
    ts: z.int().positive(),
    model: z.string().min(1),
    weights: z.string().min(1),
    engine: z.string().refine((k) => engineKinds().includes(k), 'not a registered engine kind'),
    computed_on: z.literal('cpu').optional(),
    width: z.int().positive(),
    height: z.int().positive(),
    inference_ms: z.number().nonnegative(),
    latency_ms: z.number().nonnegative(),
    detections: z.array(detectionSchema),
  })
  .refine((m) => Date.parse(m.time) === m.ts, 'time and ts are not the same instant')
  .refine((m) => m.detections.every((d, i, a) => i === 0 || a[i - 1].score >= d.score), 'detections not sorted by score, highest first')
  .refine((m) => m.detections.every((d) => d.box.x + d.box.w <= m.width + 0.15 && d.box.y + d.box.h <= m.height + 0.15), 'box outside the picture');

interface Expect {
  device: string;
  engine: string;
  /** detect.threshold: every score is above it. */
  threshold: number;
}

/** The problems of one detections message (empty: conforms to docs/mqtt.md). */
export function checkDetections(m: Msg, e: Expect): string[] {
  if (m.retain) return ['retained (detections are not retained)'];
  if (m.json === undefined) return ['payload is not JSON'];
  const r = detectionsSchema.safeParse(m.json);
  if (!r.success) return r.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`);
  const p: string[] = [];
  const v = r.data;
  if (v.device !== e.device) p.push(`device ${v.device}, expected ${e.device}`);
  if (v.engine !== e.engine) p.push(`engine ${v.engine}, expected ${e.engine}`);
  if (v.engine === 'float' && v.weights !== v.model) p.push('float engine: weights must be the model name');
  if (v.detections.some((d) => d.score < e.threshold)) p.push(`a score below detect.threshold ${e.threshold}`);
  return p;
}

/** Checks every detections message of a subscriber; counts problems by kind. */
class SchemaCheck {
  messages = 0;
  bad = 0;
  readonly problems = new Map<string, number>();
  constructor(private readonly e: Expect) {}
  add(m: Msg): void {
    this.messages++;
    const p = checkDetections(m, this.e);
    if (p.length > 0) this.bad++;
    for (const x of p) this.problems.set(x, (this.problems.get(x) ?? 0) + 1);
  }
  summary() {
    return { messages: this.messages, nonConforming: this.bad, problems: Object.fromEntries(this.problems) };
  }
}

// ---- throughput ------------------------------------------------------------------------------------

async function throughput(): Promise<{ result: object; ok: boolean }> {
  const { engine, model, threads } = engineArgs();
  const n = Number(arg('images', '300'));
  const rounds = Number(arg('rounds', '5'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-tput-'));
  const broker = await startMosquitto();
  const run = promisify(execFile);
  const device = 'tput';
  try {
    const folder = path.join(dir, 'images');
    mkdirSync(folder);
    const images = devImages(n);
    images.forEach((f, i) => symlinkSync(f, path.join(folder, `${String(i).padStart(5, '0')}.jpg`)));
    const schema = new SchemaCheck({ device, engine, threshold: 0.25 });
    const frameProblems: string[] = [];
    const skip = 10;

    // The daemon: every image of the folder once (not live), every message through mosquitto. The
    // subscriber only notes arrival times during the round (it shares the 2 cores); the messages are
    // checked after the daemon exited. CPU time per frame of the daemon, the broker and this process
    // over the same window as the rate.
    const cpu: { daemonMs: number; brokerMs: number; observerMs: number }[] = [];
    const medianIntervalFps: number[] = [];
    const daemonRound = async (round: number): Promise<number> => {
      const w = await Watcher.connect(broker.url, [`zeroq/${device}/detections`]);
      const times: number[] = [];
      const marks: { d: number; b: number; o: number }[] = [];
      const d = startDaemon(['--source', folder, '--engine', engine, '--model', model, '--threads', String(threads), '--mqtt-url', broker.url, '--device-id', device, '--http-port', '0']);
      const mark = () => {
        const o = process.cpuUsage();
        marks.push({ d: cpuMs(d.pid), b: cpuMs(broker.pid!), o: (o.user + o.system) / 1000 });
      };
      w.client.on('message', () => {
        times.push(performance.now());
        if (times.length === skip + 1 || times.length === n) mark();
      });
      const { code } = await d.exit;
      // The daemon exits once the broker acknowledged every message; the last ones may still be on
      // their way to the subscriber. Missing ones show in frameProblems.
      if (w.messages.length < n) await w.waitFor(() => w.messages.length >= n, `${n} detections`, 10_000).catch(() => undefined);
      await w.close();
      if (code !== 0) throw new Error(`daemon exited with ${code}:\n${d.stderrText.slice(-2000)}`);
      const frames = new Map<number, number>();
      for (const m of w.messages) {
        schema.add(m);
        frames.set(m.json?.frame, (frames.get(m.json?.frame) ?? 0) + 1);
      }
      const missing = [...Array(n).keys()].map((i) => i + 1).filter((f) => !frames.has(f));
      const dup = [...frames.values()].filter((c) => c > 1).length;
      const extra = [...frames.keys()].filter((f) => !(f >= 1 && f <= n));
      if (missing.length || dup || extra.length) frameProblems.push(`round ${round}: missing ${missing.slice(0, 20).join(',')} (${missing.length}), duplicated ${dup}, unknown ids ${extra.length}`);
      const k = times.length - 1 - skip;
      if (marks.length === 2) cpu.push({ daemonMs: (marks[1].d - marks[0].d) / k, brokerMs: (marks[1].b - marks[0].b) / k, observerMs: (marks[1].o - marks[0].o) / k });
      // `zeroq bench` reports 1000 / median ms per frame; the like-for-like figure of the daemon is
      // the median interval between the capture times of consecutive frames (ms resolution).
      const ts = w.messages.map((m) => m.json?.ts as number).sort((a, b) => a - b).slice(skip);
      medianIntervalFps.push(1000 / med(ts.slice(1).map((t, i) => t - ts[i])));
      // Rate from the 11th to the last message: start-up (engine, JIT) is not part of it.
      return k / ((times[times.length - 1] - times[skip]) / 1000);
    };
    // zeroq bench, same engine, model and threads, end to end (decode, resize, network, decode) on the first dev image.
    const benchRound = async () => {
      const { stdout } = await run(process.execPath, [cli, 'bench', model, '--engine', engine, '--threads', String(threads), '--frames', '200', '--image', images[0], '--json'], { maxBuffer: 1 << 24 });
      const b = (JSON.parse(stdout) as { engines: { fps: { network: number; endToEnd: number }; networkCpuMs: { median: number } }[] }).engines[0];
      return { ...b.fps, networkCpuMs: b.networkCpuMs.median };
    };
    // Alternate the two so that both see the same load on a shared machine; compare medians.
    const load0 = os.loadavg().map(r1);
    const rows: { daemonFps: number; daemonMedianIntervalFps: number; benchEndToEndFps: number; benchNetworkFps: number; benchNetworkCpuMs: number; ratio: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      const daemonFps = await daemonRound(r);
      const b = await benchRound();
      rows.push({ daemonFps: r1(daemonFps), daemonMedianIntervalFps: r1(medianIntervalFps[r]), benchEndToEndFps: r1(b.endToEnd), benchNetworkFps: r1(b.network), benchNetworkCpuMs: r3(b.networkCpuMs), ratio: r3(daemonFps / b.endToEnd) });
    }
    const ratio = med(rows.map((x) => x.ratio));
    const s = schema.summary();
    const checks = {
      everyFrameOnceEveryRound: frameProblems.length === 0,
      everyMessageConformsToSchema: s.nonConforming === 0 && s.messages === rounds * n,
      daemonFpsAtLeast90PercentOfBench: ratio >= 0.9,
    };
    return {
      ok: Object.values(checks).every(Boolean),
      result: {
        mode: 'throughput',
        engine,
        model,
        threads,
        images: n,
        rounds: rows,
        median: {
          daemonFps: med(rows.map((x) => x.daemonFps)),
          daemonMedianIntervalFps: med(rows.map((x) => x.daemonMedianIntervalFps)),
          benchEndToEndFps: med(rows.map((x) => x.benchEndToEndFps)),
          benchNetworkFps: med(rows.map((x) => x.benchNetworkFps)),
          ratioToBenchEndToEnd: ratio,
          ratioMedianIntervalToBench: med(rows.map((x) => r3(x.daemonMedianIntervalFps / x.benchEndToEndFps))),
        },
        cpuMsPerFrame: {
          daemon: r3(med(cpu.map((c) => c.daemonMs))),
          broker: r3(med(cpu.map((c) => c.brokerMs))),
          observer: r3(med(cpu.map((c) => c.observerMs))),
        },
        schema: s,
        frameProblems,
        checks,
        load: { start: load0, end: os.loadavg().map(r1) },
      },
    };
  } finally {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- broker outage ---------------------------------------------------------------------------------

async function outage(): Promise<{ result: object; ok: boolean }> {
  const { engine, model, threads } = engineArgs();
  const bufferArg = arg('buffer', '');
  const bound = bufferArg ? Number(bufferArg) : 1000; // docs/config.md: mqtt.buffer.max_messages
  const fps = Number(arg('fps', '12'));
  const beforeS = Number(arg('before', '20'));
  const outageS = Number(arg('outage', '20'));
  const afterS = Number(arg('after', '20'));
  const device = 'outage';
  const base = `zeroq/${device}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-outage-'));
  const broker = await startMosquitto();
  const t0 = Date.now();
  const since = (t: number) => r1((t - t0) / 1000);
  const events: { t: number; what: string }[] = [];
  const note = (what: string, t = Date.now()) => events.push({ t: since(t), what });
  let daemon: DaemonProcess | undefined;
  let w: Watcher | undefined;
  try {
    const { config, httpPort } = await liveVideoDaemon(dir, {
      device, images: 60, fps, engine, model, threads,
      mqtt: `url: ${broker.url}${bufferArg ? `, buffer: { max_messages: ${bufferArg} }` : ''}`,
      publish: 'stats_interval_s: 2',
    });

    // The subscriber: persistent session (QoS 1), so what the broker queued for it survives a restart.
    w = await Watcher.connect(broker.url, [`${base}/#`], { clientId: `zeroq-outage-sub-${process.pid}`, clean: false });
    // Arrival time and the DUP flag (a QoS 1 message sent again after a broken connection).
    const arrival = new Map<Msg, { t: number; dup: boolean }>();
    w.client.on('message', (_t, _p, packet) => arrival.set(w!.messages[w!.messages.length - 1], { t: Date.now(), dup: packet.dup }));
    let subscriberUp = true;
    w.client.on('close', () => {
      if (subscriberUp) note('subscriber: connection closed');
      subscriberUp = false;
    });
    w.client.on('connect', (p) => {
      subscriberUp = true;
      note(`subscriber: connected again (session present: ${p.sessionPresent})`);
    });

    const d = startDaemon(['--config', config], 'debug');
    daemon = d;
    const pid = d.pid;
    await w.waitFor((m) => m.topic === `${base}/detections`, 'the first detections', 120_000);
    note('first detections received');

    // /healthz while the broker is away: the daemon's own view of its buffer.
    let maxBuffered = 0;
    let healthFails = 0;
    const poll = setInterval(() => {
      getJson(`http://127.0.0.1:${httpPort}/healthz`)
        .then((h) => (maxBuffered = Math.max(maxBuffered, h.mqtt?.buffered ?? 0)))
        .catch(() => healthFails++);
    }, 250);

    await at(beforeS * 1000);
    const stopAt = Date.now();
    note('broker: SIGTERM');
    await broker.stop();
    note('broker: exited');
    const lostLog = d.waitLog((l) => l.msg === 'mqtt connection lost', 'the daemon seeing the broker go', 30_000, 0);
    await at(outageS * 1000);
    const aliveDuringOutage = d.child.exitCode === null && d.child.signalCode === null;
    const processedBeforeRestart = d.logs.filter((l) => l.msg === 'frame').length;
    await broker.start();
    const startAt = Date.now();
    note('broker: running again');
    // What a client that subscribes now (before the daemon is back) is told: the retained availability.
    const retainedAfterRestart = await retainedValue(broker.url, `${base}/availability`);
    note(`fresh subscriber: retained availability ${JSON.stringify(retainedAfterRestart)}`);
    const lost = await lostLog;
    note('daemon: mqtt connection lost', lost.time as number);
    const back = await d.waitLog((l) => l.msg === 'mqtt connected' && l.reconnect === true, 'the daemon reconnecting', 120_000, 0);
    note(`daemon: mqtt connected again (${back.buffered as number} buffered)`, back.time as number);
    await at(afterS * 1000);
    clearInterval(poll);
    const metricsText = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text());
    const rss = rssMb(pid);

    const stoppedFrom = w.messages.length;
    note('daemon: SIGTERM');
    const exit = await d.kill('SIGTERM');
    note(`daemon: exited (${exit.code ?? exit.signal})`);
    // `stopped` is published after every buffered message was acknowledged: once the subscriber has
    // it, it has everything the broker took before it.
    await w.waitFor((m) => m.topic === `${base}/availability` && m.text === 'stopped', '`stopped`', 30_000, stoppedFrom);
    note('subscriber: `stopped` received');

    // --- accounting
    const frameLogs = d.logs.filter((l) => l.msg === 'frame');
    const published = frameLogs.map((l) => l.frame as number);
    const bufferedIds = frameLogs.filter((l) => l.mqtt === 'buffered').map((l) => l.frame as number);
    const stats = w.on(`${base}/stats`).pop()?.json;
    const dropped = stats?.mqtt?.dropped as number;
    const processed = stats?.frames?.processed as number;
    const dets = w.on(`${base}/detections`);
    const schema = new SchemaCheck({ device, engine, threshold: 0.25 });
    dets.forEach((m) => schema.add(m));
    const seen = new Map<number, number>();
    for (const m of dets) seen.set(m.json?.frame, (seen.get(m.json?.frame) ?? 0) + 1);
    const publishedSet = new Set(published);
    const missing = published.filter((f) => !seen.has(f));
    const unknown = [...seen.keys()].filter((f) => !publishedSet.has(f));
    const duplicates = [...seen.values()].reduce((a, c) => a + c - 1, 0);
    let outOfOrder = 0;
    for (let i = 1; i < dets.length; i++) if (dets[i].json?.frame < dets[i - 1].json?.frame) outOfOrder++;
    const runs = (ids: number[]) => {
      const out: string[] = [];
      for (let i = 0; i < ids.length; ) {
        let j = i;
        while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
        out.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
        i = j + 1;
      }
      return out;
    };
    const availability = w.on(`${base}/availability`).map((m) => ({ t: since(arrival.get(m)!.t), payload: m.text, retained: m.retain, dup: arrival.get(m)!.dup }));
    const framesDuringOutage = frameLogs.filter((l) => (l.time as number) >= stopAt && (l.time as number) < (back.time as number)).length;

    const checks = {
      daemonStayedUp: aliveDuringOutage && exit.code === 0,
      processedEqualsPublishedFrames: processed === published.length,
      metricsAgree: metric(metricsText, 'zeroq_mqtt_dropped_total') === dropped || dropped === undefined,
      receivedPlusDroppedEqualsPublished: seen.size - unknown.length + dropped === published.length,
      missingAreTheOldestBuffered: missing.length === dropped && missing.every((f, i) => f === bufferedIds[i]),
      noUnknownFrames: unknown.length === 0,
      // The buffer fills while disconnected and drains only after the reconnect: it drops exactly the excess.
      dropsExactlyBeyondTheBound: dropped === Math.max(0, bufferedIds.length - bound),
      everyMessageConformsToSchema: schema.bad === 0,
      stoppedLast: w.on(`${base}/availability`).pop()?.text === 'stopped',
    };
    return {
      ok: Object.values(checks).every(Boolean),
      result: {
        mode: 'outage',
        engine,
        model,
        threads,
        sourceFps: fps,
        bufferMaxMessages: bufferArg ? bound : `${bound} (default)`,
        seconds: { before: beforeS, outage: outageS, after: afterS },
        timeline: events.sort((a, b) => a.t - b.t),
        brokerDownS: r1((startAt - stopAt) / 1000),
        daemonReconnectAfterBrokerStartS: r1(((back.time as number) - startAt) / 1000),
        frames: {
          published: published.length,
          processedByStats: processed,
          duringOutage: framesDuringOutage,
          beforeBrokerRestart: processedBeforeRestart,
          bufferedWhileDisconnected: bufferedIds.length,
          bufferedIdRange: bufferedIds.length ? [bufferedIds[0], bufferedIds[bufferedIds.length - 1]] : [],
        },
        received: { messages: dets.length, uniqueFrames: seen.size, duplicates, outOfOrder, unknownFrames: unknown.length },
        missing: { count: missing.length, frames: runs(missing) },
        daemonCounters: {
          statsDropped: dropped,
          metricsDropped: metric(metricsText, 'zeroq_mqtt_dropped_total'),
          metricsReconnects: metric(metricsText, 'zeroq_mqtt_reconnects_total'),
          metricsProcessed: metric(metricsText, 'zeroq_frames_processed_total'),
          metricsSkipped: metric(metricsText, 'zeroq_frames_skipped_total'),
          maxBufferedSeenByHealthz: maxBuffered,
          healthzFailures: healthFails,
          finalStats: stats,
        },
        availability,
        retainedAvailabilityAfterBrokerRestart: retainedAfterRestart,
        rssMbBeforeStop: r1(rss),
        schema: schema.summary(),
        checks,
        load: os.loadavg().map(r1),
      },
    };
  } catch (err) {
    if (daemon) process.stderr.write(daemon.stderrText.slice(-3000));
    throw err;
  } finally {
    await daemon?.kill('SIGKILL');
    await w?.close();
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- soak ------------------------------------------------------------------------------------------

/** The soak daemon's stats interval (s). */
const SOAK_STATS_S = 5;

/** p50s of inference_ms and publish_ms over stats messages: their medians and the publish step's overhead. */
function publishedPath(stats: { inference_ms?: { p50: number } | null; publish_ms?: { p50: number } | null }[]): { toPublishedP50Ms?: number; inferenceP50Ms?: number; overheadToPublished?: number } {
  const both = stats.filter((s) => s?.inference_ms && s?.publish_ms);
  if (both.length === 0) return {};
  const inf = med(both.map((s) => s.inference_ms!.p50));
  const pub = med(both.map((s) => s.publish_ms!.p50));
  return { toPublishedP50Ms: pub, inferenceP50Ms: inf, overheadToPublished: Math.round((pub / inf - 1) * 1000) / 1000 };
}

async function soak(): Promise<{ result: object; ok: boolean }> {
  const { engine, model, threads } = engineArgs();
  const minutes = Number(arg('minutes', '11'));
  const fps = Number(arg('fps', '15'));
  const device = 'soak';
  const base = `zeroq/${device}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-soak-'));
  const broker = await startMosquitto();
  let d: DaemonProcess | undefined;
  try {
    const { config, httpPort } = await liveVideoDaemon(dir, {
      device, images: 150, fps, engine, model, threads,
      mqtt: `url: ${broker.url}`,
      publish: `stats_interval_s: ${SOAK_STATS_S}, snapshot: { enabled: true, interval_s: 5 }`,
    });
    const w = await Watcher.connect(broker.url, [`${base}/#`]);
    const schema = new SchemaCheck({ device, engine, threshold: 0.25 });
    const frames = new Set<number>();
    let detections = 0;
    // Per detections message: the network time, the frame's age when its detections were decoded
    // (latency_ms: from the raw frame read from ffmpeg), and its age when the message arrived here.
    const timing = { inference: [] as number[], latency: [] as number[], received: [] as number[] };
    w.client.on('message', (topic) => {
      if (topic !== `${base}/detections`) return;
      const now = Date.now();
      detections++;
      const m = w.messages[w.messages.length - 1];
      schema.add(m);
      frames.add(m.json?.frame);
      if (m.json && typeof m.json.ts === 'number') {
        timing.inference.push(m.json.inference_ms);
        timing.latency.push(m.json.latency_ms);
        timing.received.push(now - m.json.ts);
      }
      w.messages.pop(); // keep the subscriber's memory flat over a long run
    });
    d = startDaemon(['--config', config]);
    const pid = d.pid;
    await d.waitLog((l) => l.msg === 'daemon running', 'the daemon running', 120_000);
    const t0 = Date.now();
    const samples: { s: number; rssMb: number; peakRssMb: number; heapUsedMb?: number; ffmpegRssMb?: number; processed?: number }[] = [];
    const end = t0 + minutes * 60_000;
    while (Date.now() < end) {
      await at(Math.min(10_000, Math.max(0, end - Date.now())));
      const ff = d.children().find((c) => c.comm === 'ffmpeg');
      const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text()).catch(() => '');
      const heap = metric(text, 'zeroq_nodejs_heap_size_used_bytes');
      samples.push({
        s: Math.round((Date.now() - t0) / 1000),
        rssMb: r1(rssMb(pid)),
        peakRssMb: r1(rssMb(pid, 'VmHWM')),
        heapUsedMb: heap === undefined ? undefined : r1(heap / 2 ** 20),
        ffmpegRssMb: ff ? r1(rssMb(ff.pid)) : undefined,
        processed: metric(text, 'zeroq_frames_processed_total'),
      });
    }
    // The peak resident set since the start (VmHWM), read just before the stop.
    const peakRss = r1(rssMb(pid, 'VmHWM'));
    const from = w.messages.length;
    const exit = await d.kill('SIGTERM');
    await w.waitFor((m) => m.topic === `${base}/availability` && m.text === 'stopped', '`stopped`', 30_000, from);
    const allStats = w.on(`${base}/stats`).map((m) => m.json);
    const lastStats = allStats[allStats.length - 1];
    await w.close();
    const near = (s: number) => samples.reduce((a, b) => (Math.abs(b.s - s) < Math.abs(a.s - s) ? b : a), samples[0]);
    const at1 = near(60);
    const at10 = minutes >= 10 ? near(600) : undefined;
    const rssRatio = at10 ? r3(at10.rssMb / at1.rssMb) : undefined;
    const processed = lastStats?.frames?.processed as number;
    // The frame path's cost over the network time. latency_ms and the arrival times count whole
    // milliseconds (Date.now), so the means carry the figure; the first minute (start-up) is left out.
    const skip = Math.min(timing.inference.length - 1, Math.round(fps * 60));
    const mean = (v: number[]) => v.slice(skip).reduce((a, b) => a + b, 0) / Math.max(1, v.length - skip);
    const framePath = {
      messages: Math.max(0, timing.inference.length - skip),
      inferenceMs: { mean: r3(mean(timing.inference)), median: med(timing.inference.slice(skip)) },
      toDecodedMs: { mean: r3(mean(timing.latency)), median: med(timing.latency.slice(skip)) },
      toSubscriberMs: { mean: r3(mean(timing.received)), median: med(timing.received.slice(skip)) },
      overheadToDecoded: r3(mean(timing.latency) / mean(timing.inference) - 1),
      overheadToSubscriber: r3(mean(timing.received) / mean(timing.inference) - 1),
      // The daemon's own path up to the detections message handed to the MQTT client, from its stats
      // (publish_ms, sub-millisecond clock): medians over the stats messages after the first minute of
      // their 512-frame p50s, against inference_ms's the same way.
      ...publishedPath(allStats.slice(Math.ceil(60 / SOAK_STATS_S))),
    };
    const checks = {
      rss10minWithin10PercentOf1min: rssRatio !== undefined && Math.abs(rssRatio - 1) <= 0.1,
      everyProcessedFrameReceived: frames.size + (lastStats?.mqtt?.dropped ?? 0) === processed,
      everyMessageConformsToSchema: schema.bad === 0,
      cleanExit: exit.code === 0,
      peakRssAtMost120Mb: peakRss <= 120,
      framePathWithin30PercentOfNetwork: framePath.overheadToPublished !== undefined && framePath.overheadToPublished <= 0.3,
    };
    return {
      ok: Object.values(checks).every(Boolean),
      result: {
        mode: 'soak',
        engine,
        model,
        threads,
        minutes,
        sourceFps: fps,
        rssMb: { at1min: at1.rssMb, at10min: at10?.rssMb, atEnd: samples[samples.length - 1].rssMb, peak: peakRss, ratio10to1: rssRatio },
        heapUsedMb: { at1min: at1.heapUsedMb, at10min: at10?.heapUsedMb, atEnd: samples[samples.length - 1].heapUsedMb },
        ffmpegRssMb: { at1min: at1.ffmpegRssMb, atEnd: samples[samples.length - 1].ffmpegRssMb },
        nodeOptions: daemonNodeOptions(),
        framePath,
        samples,
        lastStats,
        detectionMessages: detections,
        uniqueFrames: frames.size,
        schema: schema.summary(),
        checks,
        exitCode: exit.code,
        load: os.loadavg().map(r1),
      },
    };
  } finally {
    await d?.kill('SIGKILL');
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const modes: Record<string, () => Promise<{ result: object; ok: boolean }>> = { throughput, outage, soak };
  const mode = modes[process.argv[2]];
  if (!mode) throw new Error('usage: tsx scripts/soak.ts throughput|outage|soak [options]');
  const { result, ok } = await mode();
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  if (!ok) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
