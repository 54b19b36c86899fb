/**
 * Operations checks of `zeroq run` (not part of npm test; needs `npm run build`, mosquitto, ffmpeg):
 *
 *   npx tsx scripts/soak.ts soak [--minutes 10] [--fps 15] [--threads 1]
 *     The daemon on a looping video (made from dev images) with mosquitto for N minutes: RSS of the
 *     daemon at 1 min and at 10 min (and at the end), frame rates, skipped frames, messages received.
 *
 *   npx tsx scripts/soak.ts throughput [--images 300] [--threads 1] [--engine float]
 *     Processed frames/s of the daemon on a folder of dev images (every image processed, end to end:
 *     decode, resize, network, decode, MQTT) against `zeroq bench` on the same engine and threads.
 *
 * Prints one JSON object.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { makeVideo } from '../test/helpers/ffmpeg.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { Watcher } from '../test/helpers/daemon.js';
import { dataPath } from '../src/util/paths.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(repo, 'dist', 'cli.js');
const model = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

function devImages(n: number): string[] {
  return readFileSync(dataPath('coco-val', 'dev.txt'), 'utf8')
    .trim()
    .split('\n')
    .slice(0, n)
    .map((rel) => dataPath('coco-val', rel.trim()));
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function startDaemon(args: string[]) {
  const child = spawn(process.execPath, [cli, 'run', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ZEROQ_LOG_LEVEL: 'info' } });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr += s;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exit, stderr: () => stderr };
}

const at = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function soak(): Promise<object> {
  const minutes = Number(arg('minutes', '10'));
  const fps = arg('fps', '15');
  const threads = arg('threads', '1');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-soak-'));
  const broker = await startMosquitto();
  try {
    const video = path.join(dir, 'loop.mp4');
    await makeVideo(devImages(150), video, { width: 640, height: 480, fps: Number(fps) });
    const config = path.join(dir, 'zeroq.yaml');
    writeFileSync(
      config,
      [
        'device_id: soak',
        `source: { url: ${video}, loop: true, realtime: true }`,
        `model: { threads: ${threads} }`,
        `mqtt: { url: ${broker.url} }`,
        'publish: { stats_interval_s: 5, snapshot: { enabled: true, interval_s: 5 } }',
        'http: { port: 0 }',
      ].join('\n') + '\n',
    );
    const w = await Watcher.connect(broker.url, ['zeroq/soak/#']);
    let detections = 0;
    w.client.on('message', (topic) => {
      if (topic === 'zeroq/soak/detections') detections++;
    });
    const d = startDaemon(['--config', config]);
    const t0 = Date.now();
    const samples: { s: number; rssMb: number; ffmpegRssMb?: number }[] = [];
    const ffmpegPid = () => {
      try {
        const kids = readFileSync(`/proc/${d.child.pid}/task/${d.child.pid}/children`, 'utf8').trim().split(/\s+/);
        return kids.map(Number).find((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ffmpeg');
      } catch {
        return undefined;
      }
    };
    const end = t0 + minutes * 60_000;
    while (Date.now() < end) {
      await at(10_000);
      const fp = ffmpegPid();
      samples.push({ s: Math.round((Date.now() - t0) / 1000), rssMb: rssMb(d.child.pid!), ffmpegRssMb: fp ? rssMb(fp) : undefined });
    }
    const lastStats = w.messages.filter((m) => m.topic === 'zeroq/soak/stats').pop()?.json;
    d.child.kill('SIGTERM');
    const code = await d.exit;
    await w.close();
    const near = (s: number) => samples.reduce((a, b) => (Math.abs(b.s - s) < Math.abs(a.s - s) ? b : a), samples[0]);
    const round = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 10) / 10);
    return {
      mode: 'soak',
      minutes,
      sourceFps: Number(fps),
      threads: Number(threads),
      rssMb: { at1min: round(near(60).rssMb), at10min: minutes >= 10 ? round(near(600).rssMb) : undefined, atEnd: round(samples[samples.length - 1].rssMb) },
      ffmpegRssMb: { at1min: round(near(60).ffmpegRssMb), atEnd: round(samples[samples.length - 1].ffmpegRssMb) },
      samples,
      lastStats,
      detectionMessages: detections,
      exitCode: code,
    };
  } finally {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function throughput(): Promise<object> {
  const n = Number(arg('images', '300'));
  const threads = arg('threads', '1');
  const engine = arg('engine', 'float');
  const rounds = Number(arg('rounds', '3'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-tput-'));
  const broker = await startMosquitto();
  const run = promisify(execFile);
  try {
    const folder = path.join(dir, 'images');
    mkdirSync(folder);
    const images = devImages(n);
    images.forEach((f, i) => symlinkSync(f, path.join(folder, `${String(i).padStart(5, '0')}.jpg`)));

    // The daemon: every image of the folder once (not live), all messages through mosquitto.
    const daemonRound = async (): Promise<number> => {
      const w = await Watcher.connect(broker.url, ['zeroq/tput/detections']);
      const times: number[] = [];
      w.client.on('message', () => times.push(performance.now()));
      const d = startDaemon(['--source', folder, '--engine', engine, '--threads', threads, '--mqtt-url', broker.url, '--device-id', 'tput', '--http-port', '0']);
      const code = await d.exit;
      await w.close();
      if (code !== 0 || times.length !== n) throw new Error(`daemon exited with ${code} after ${times.length} messages:\n${d.stderr().slice(-2000)}`);
      // Rate from the 11th to the last message: start-up (engine, JIT) is not part of it.
      const skip = 10;
      return (times.length - 1 - skip) / ((times[times.length - 1] - times[skip]) / 1000);
    };
    // zeroq bench, same engine and threads, end to end (decode, resize, network, decode) on a dev image.
    const benchRound = async () => {
      const { stdout } = await run(process.execPath, [cli, 'bench', model, '--engine', engine, '--threads', threads, '--frames', '200', '--image', images[0], '--json'], { maxBuffer: 1 << 24 });
      const b = (JSON.parse(stdout) as { engines: { fps: { network: number; endToEnd: number } }[] }).engines[0];
      return b.fps;
    };
    // Alternate the two so that both see the same load on a shared machine; compare medians.
    const rows: { daemonFps: number; benchEndToEndFps: number; benchNetworkFps: number; ratio: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      const daemonFps = await daemonRound();
      const b = await benchRound();
      rows.push({ daemonFps: r1(daemonFps), benchEndToEndFps: r1(b.endToEnd), benchNetworkFps: r1(b.network), ratio: r3(daemonFps / b.endToEnd) });
    }
    const med = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
    return {
      mode: 'throughput',
      engine,
      threads: Number(threads),
      images: n,
      rounds: rows,
      median: {
        daemonFps: med(rows.map((x) => x.daemonFps)),
        benchEndToEndFps: med(rows.map((x) => x.benchEndToEndFps)),
        benchNetworkFps: med(rows.map((x) => x.benchNetworkFps)),
        ratioToBenchEndToEnd: med(rows.map((x) => x.ratio)),
      },
      load: os.loadavg().map(r1),
    };
  } finally {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

const r1 = (v: number) => Math.round(v * 10) / 10;
const r3 = (v: number) => Math.round(v * 1000) / 1000;

async function main(): Promise<void> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const mode = process.argv[2];
  const result = mode === 'soak' ? await soak() : mode === 'throughput' ? await throughput() : undefined;
  if (!result) throw new Error('usage: tsx scripts/soak.ts soak|throughput [options]');
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
