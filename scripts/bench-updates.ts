/**
 * 200 simulated devices take a new weight-set version from a real `zeroq serve` (and a real
 * mosquitto): each is a light in-process client that checks its channel, downloads the set, verifies
 * its sha256 and its Ed25519 signature, and reports the version it runs. Twice: devices that listen
 * for the retained MQTT announcement (and poll rarely), and devices that only poll. Measured: time from
 * the publish until every device runs the new version, the server's CPU time and peak RSS over the
 * run, requests and bytes the server sent. Results: docs/benchmarks/updates.md.
 *
 *   tsx scripts/bench-updates.ts [--devices 200] [--poll-s 20] [--out docs/benchmarks/updates.md]
 *
 * A simulated device skips the manifest parsing and the self-test of a real one (measured on a real
 * daemon: docs/benchmarks/updates.md): both run on the device's CPU, not on the server's, and 200 of
 * them on this machine's two cores would measure this machine rather than the server.
 */
import { createHash, createPublicKey, generateKeyPairSync, verify as edVerify, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { keyId, signZqw } from '../src/qnet/zqw.js';
import { addGoldenFrames } from '../src/update/golden.js';
import { dataPath, repoRoot } from '../src/util/paths.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { ServerProcess } from '../test/helpers/server.js';
import { nudged, variant } from '../test/helpers/variants.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const DEVICES = Number(arg('devices', '200'));
const POLL_S = Number(arg('poll-s', '20'));
const OUT = arg('out', path.join(repoRoot, 'docs', 'benchmarks', 'updates.md'));
const MODEL = 'yolo-fastest-1.1';

interface Counters {
  retries: number;
  requests: number;
  bytes: number;
  notModified: number;
  downloads: number;
}

/** CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc. */
function procStats(pid: number): { cpuS: number; hwmMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuS: ticks / 100, hwmMiB: hwm ? Number(hwm[1]) / 1024 : NaN };
}

/** The signature check a device makes: the file's digest over its body, and the Ed25519 signature of it. */
function verifySet(buf: Buffer, key: KeyObject, kid: string): boolean {
  const sl = 97;
  if (buf.length < 36 + sl || buf.readUInt32LE(buf.length - 4 - sl) !== sl) return false;
  const block = buf.subarray(buf.length - sl);
  const digest = buf.subarray(buf.length - 4 - sl - 32, buf.length - 4 - sl);
  if (!createHash('sha256').update(buf.subarray(0, buf.length - 4 - sl - 32)).digest().equals(digest)) return false;
  if (block[0] !== 1 || block.subarray(1, 33).toString('hex') !== kid) return false;
  return edVerify(null, digest, key, block.subarray(33));
}

class Device {
  running: string | null = null;
  ranAt = 0;
  busy = false;
  private again = false;
  private timer?: NodeJS.Timeout;
  mqtt?: MqttClient;

  constructor(
    readonly id: string,
    private readonly token: string,
    private readonly server: string,
    private readonly key: KeyObject,
    private readonly kid: string,
    private readonly c: Counters,
  ) {}

  start(o: { announceUrl?: string; pollS: number }): Promise<void> {
    // Polls with ±10% jitter, as the daemon does.
    const poll = () => {
      this.timer = setTimeout(() => {
        void this.check();
        poll();
      }, o.pollS * 1000 * (0.9 + Math.random() * 0.2));
    };
    poll();
    if (!o.announceUrl) return this.check();
    return new Promise((resolve) => {
      this.mqtt = connect(o.announceUrl!, { clientId: `sim-${this.id}`, reconnectPeriod: 1000 });
      this.mqtt.on('message', (_t, p) => {
        const d = JSON.parse(p.toString()) as { sha256: string };
        if (d.sha256 !== this.running) void this.check();
      });
      this.mqtt.once('connect', () => this.mqtt!.subscribe(`zeroq/updates/${MODEL}/stable`, { qos: 1 }, () => resolve()));
    });
  }

  /** A failed exchange (e.g. a connection the server closed as it was reused) is tried again. */
  async check(): Promise<void> {
    for (let tries = 0; ; tries++) {
      try {
        return await this.checkOnce();
      } catch (e) {
        this.c.retries++;
        if (tries >= 5) throw e;
        await new Promise((r) => setTimeout(r, 200 * 2 ** tries));
      }
    }
  }

  private async checkOnce(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
      if (this.running) {
        headers['if-none-match'] = `"${this.running}"`;
        headers['x-zeroq-running'] = this.running;
      }
      const r = await fetch(`${this.server}/v1/models/${MODEL}/channels/stable/latest`, { headers });
      this.c.requests++;
      const text = await r.text();
      this.c.bytes += text.length;
      if (r.status === 304) {
        this.c.notModified++;
        return;
      }
      const d = JSON.parse(text) as { sha256: string; url: string; size: number };
      if (d.sha256 === this.running) return;
      const b = await fetch(this.server + d.url);
      const buf = Buffer.from(await b.arrayBuffer());
      this.c.requests++;
      this.c.downloads++;
      this.c.bytes += buf.length;
      if (buf.length !== d.size || createHash('sha256').update(buf).digest('hex') !== d.sha256 || !verifySet(buf, this.key, this.kid)) {
        throw new Error(`${this.id}: the download does not verify`);
      }
      this.running = d.sha256;
      this.ranAt = Date.now();
      // Report: the next check carries the running set.
      const rep = await fetch(`${this.server}/v1/models/${MODEL}/channels/stable/latest`, { headers: { authorization: `Bearer ${this.token}`, 'if-none-match': `"${d.sha256}"`, 'x-zeroq-running': d.sha256, 'x-zeroq-state': 'idle' } });
      await rep.arrayBuffer();
      this.c.requests++;
      if (rep.status === 304) this.c.notModified++;
    } finally {
      this.busy = false;
      if (this.again) {
        this.again = false;
        void this.check();
      }
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.mqtt?.endAsync(true);
  }
}

interface Result {
  mode: string;
  devices: number;
  allRunS: number;
  p50S: number;
  p90S: number;
  serverCpuS: number;
  serverPeakMiB: number;
  requests: number;
  notModified: number;
  downloads: number;
  mib: number;
  idleReqPerS: number;
  retries: number;
}

const quantile = (v: number[], q: number) => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function scenario(mode: 'announce' | 'poll', sets: Buffer[], key: KeyObject): Promise<Result> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-bench-updates-'));
  const broker = await startMosquitto();
  const trust = path.join(dir, 'k.pub');
  writeFileSync(trust, key.export({ format: 'pem', type: 'spki' }) as string);
  const server = ServerProcess.start(path.join(dir, 'data'), ['--listen', '127.0.0.1:0', '--trust', trust, '--mqtt-url', broker.url], { ZEROQ_LOG_LEVEL: 'warn' });
  try {
    const url = await server.ready;
    const admin = server.adminToken;
    const pub = async (buf: Buffer) => {
      const r = await fetch(`${url}/v1/sets?channel=stable`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' }, body: buf as unknown as string });
      if (!r.ok) throw new Error(await r.text());
    };
    await pub(sets[0]);
    const c: Counters = { retries: 0, requests: 0, bytes: 0, notModified: 0, downloads: 0 };
    const kid = keyId(key);
    const devices: Device[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const r = await fetch(`${url}/v1/devices`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: `sim${i}` }) });
      devices.push(new Device(`sim${i}`, ((await r.json()) as { token: string }).token, url, key, kid, c));
    }
    // With announcements devices poll once an hour (the default); without, every POLL_S.
    await Promise.all(devices.map((d) => d.start(mode === 'announce' ? { announceUrl: broker.url, pollS: 3600 } : { pollS: POLL_S })));
    // Every device runs version 1: wait for the first polls in poll mode.
    while (devices.some((d) => d.running === null || d.busy)) await new Promise((r) => setTimeout(r, 100));

    // Idle traffic over one poll interval (polling devices ask and get 304).
    const idle0 = c.requests;
    const idleT0 = Date.now();
    if (mode === 'poll') await new Promise((r) => setTimeout(r, POLL_S * 1000));
    const idleReqPerS = mode === 'poll' ? (c.requests - idle0) / ((Date.now() - idleT0) / 1000) : 0;

    const before = procStats(server.child.pid!);
    const c0 = { ...c };
    const t0 = Date.now();
    await pub(sets[1]);
    const target = createHash('sha256').update(sets[1]).digest('hex');
    const deadline = t0 + (POLL_S * 3 + 60) * 1000;
    while (devices.some((d) => d.running !== target) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const missing = devices.filter((d) => d.running !== target).length;
    if (missing > 0) throw new Error(`${missing} devices did not take the new version`);
    // Let the reports land.
    await new Promise((r) => setTimeout(r, 500));
    const after = procStats(server.child.pid!);
    const times = devices.map((d) => (d.ranAt - t0) / 1000);
    await Promise.all(devices.map((d) => d.stop()));
    return {
      mode,
      devices: DEVICES,
      allRunS: Math.max(...times),
      p50S: quantile(times, 0.5),
      p90S: quantile(times, 0.9),
      serverCpuS: after.cpuS - before.cpuS,
      serverPeakMiB: after.hwmMiB,
      requests: c.requests - c0.requests,
      notModified: c.notModified - c0.notModified,
      downloads: c.downloads - c0.downloads,
      mib: (c.bytes - c0.bytes) / 2 ** 20,
      idleReqPerS,
      retries: c.retries - c0.retries,
    };
  } finally {
    await server.kill('SIGTERM');
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pubKey = createPublicKey(privateKey);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-bench-sets-'));
  const base = path.join(repoRoot, 'deploy', 'weights', 'yolo-fastest-1.1-w8.zqw');
  const golden = dataPath('coco-val', 'images', '000000000139.jpg');
  const sets: Buffer[] = [];
  for (const k of [1, 2]) {
    const f = path.join(dir, `v${k}.zqw`);
    variant(base, f, (q) => nudged(q, k));
    sets.push(signZqw(await addGoldenFrames(readFileSync(f), [golden], f), privateKey));
  }
  rmSync(dir, { recursive: true, force: true });
  const load0 = os.loadavg()[0];
  const results: Result[] = [];
  for (const mode of ['announce', 'poll'] as const) {
    const r = await scenario(mode, sets, pubKey);
    process.stderr.write(`${JSON.stringify(r)}\n`);
    results.push(r);
  }
  const load1 = os.loadavg()[0];
  const f = (v: number, d = 2) => v.toFixed(d);
  const lines = [
    '## Weight-set updates: 200 simulated devices',
    '',
    `Written by \`tsx scripts/bench-updates.ts --devices ${DEVICES} --poll-s ${POLL_S}\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus()[0]?.model.trim()}, ${os.cpus().length} cores,`,
    `Node ${process.version}; load average ${f(load0, 1)} at the start and ${f(load1, 1)} at the end (the machine is shared).`,
    'A real `zeroq serve` and a real mosquitto on this machine; the devices are light clients in one process (check, download,',
    'sha256 and Ed25519 check of the file, report). One set of',
    `${sets[1].length} bytes (Yolo-Fastest-1.1 W8 with one self-test frame) replaces another.`,
    '',
    '| devices learn of it by | devices | all run it after s | median s | 90% s | server CPU s | server peak RSS MiB | requests | 304s | downloads | MiB sent | idle requests/s | retried |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.mode === 'announce' ? 'retained MQTT announcement (poll every 3600 s)' : `polling every ${POLL_S} s ±10%`} | ${r.devices} | ${f(r.allRunS)} | ${f(r.p50S)} | ${f(r.p90S)} | ${f(r.serverCpuS)} | ${f(r.serverPeakMiB, 0)} | ${r.requests} | ${r.notModified} | ${r.downloads} | ${f(r.mib, 1)} | ${f(r.idleReqPerS, 1)} | ${r.retries} |`,
    ),
    '',
    '`retried`: exchanges a device tried again after a network error (e.g. a kept-alive connection the server closed as it was reused).',
    'Server CPU is the user+system time of the server process from the publish until every device reported (from /proc);',
    'peak RSS is its high-water mark over the whole run (it runs from the sources under tsx, which adds to it). Requests and bytes are counted at the devices (response bodies).',
    'The server is not what the devices wait for: its CPU time is a small part of the time to all, which goes to the',
    "clients' own work (200 downloads and checks in one process) on a shared machine. With polling the time to all is",
    'bounded by the poll interval, and the fleet asks `…/latest` all the time (`idle requests/s`, answered 304) for nothing.',
    'docs/decisions/updates-at-scale.md takes these figures to 10,000 devices.',
    '',
  ];
  // The hand-written measurements of a real daemon below the table are kept.
  const KEEP = '### One real daemon';
  const old = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '';
  const kept = old.includes(KEEP) ? old.slice(old.indexOf(KEEP)) : '';
  writeFileSync(OUT, lines.join('\n') + (kept ? `\n${kept}` : ''));
  process.stdout.write(lines.join('\n'));
}

await main();
