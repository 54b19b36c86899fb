/**
 * How the daemon's frames/s split over several cameras sharing one engine (not part of npm test).
 * For each camera count, the daemon runs in process (embedded broker, nothing subscribed) on N
 * real-time lavfi cameras that deliver faster than the engine can take, so the engine is the
 * bottleneck; after a warm-up, the processed and skipped frames of each camera are counted over a
 * window. Prints one JSON object; with --md, a Markdown table too.
 *
 *   npx tsx scripts/bench-cameras.ts [--counts 1,2,4] [--seconds 20] [--warmup 4] [--fps 25]
 *                                     [--size 640x360] [--engine int] [--threads 1] [--rounds 1] [--md]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { Daemon } from '../src/daemon/daemon.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const counts = arg('counts', '1,2,4').split(',').map(Number);
const seconds = Number(arg('seconds', '20'));
const warmup = Number(arg('warmup', '4'));
const fps = Number(arg('fps', '25'));
const size = arg('size', '640x360');
const engine = arg('engine', 'int');
const threads = Number(arg('threads', '1'));
const rounds = Number(arg('rounds', '1'));
const md = process.argv.includes('--md');

interface CameraFigures {
  captured: number;
  processed: number;
  skipped: number;
  processedFps: number;
}

interface Run {
  cameras: number;
  round: number;
  totalFps: number;
  /** Frames processed per second of the daemon's CPU time (user + system, all its threads). */
  framesPerCpuSecond: number;
  cpuShare: number;
  perCamera: CameraFigures[];
  /** Lowest camera rate over the highest. */
  fairness: number;
  load: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(n: number, round: number): Promise<Run> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-bench-cams-'));
  const config = path.join(dir, 'zeroq.yaml');
  // Each camera its own test pattern (a different seed of the mandelbrot zoom would also do).
  writeFileSync(
    config,
    [
      'device_id: bench',
      'cameras:',
      ...Array.from({ length: n }, (_, i) => `  cam${i + 1}: { url: "lavfi:testsrc2=size=${size}:rate=${fps}" }`),
      `model: { engine: ${engine}, threads: ${threads} }`,
      'mqtt: { embedded: { port: 0 } }',
      'publish: { snapshot: { enabled: false }, stats_interval_s: 60 }',
      'homeassistant: { enabled: false }',
      'http: { port: 0 }',
    ].join('\n') + '\n',
  );
  const d = await Daemon.start({ load: { file: config, env: {} }, out: new PassThrough(), log: pino({ level: 'warn' }), version: 'bench' });
  try {
    await sleep(warmup * 1000);
    const cams = [...d.cameras.values()];
    const before = cams.map((c) => ({ ...c.counts }));
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await sleep(seconds * 1000);
    const dt = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    const perCamera = cams.map((c, i) => {
      const b = before[i];
      const processed = c.counts.processed - b.processed;
      return { captured: c.counts.captured - b.captured, processed, skipped: c.counts.skipped - b.skipped, processedFps: Math.round((processed / dt) * 100) / 100 };
    });
    const rates = perCamera.map((c) => c.processedFps);
    const processed = perCamera.reduce((a, c) => a + c.processed, 0);
    return {
      cameras: n,
      round,
      totalFps: Math.round(rates.reduce((a, b) => a + b, 0) * 100) / 100,
      framesPerCpuSecond: Math.round((processed / cpuS) * 10) / 10,
      cpuShare: Math.round((cpuS / dt) * 100) / 100,
      perCamera,
      fairness: Math.round((Math.min(...rates) / Math.max(...rates)) * 1000) / 1000,
      load: os.loadavg().map((x) => Math.round(x * 100) / 100),
    };
  } finally {
    await d.stop(0);
    rmSync(dir, { recursive: true, force: true });
  }
}

const runs: Run[] = [];
for (let r = 1; r <= rounds; r++) for (const n of counts) runs.push(await measure(n, r));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = counts.map((n) => {
  const rs = runs.filter((r) => r.cameras === n);
  return {
    cameras: n,
    totalFps: median(rs.map((r) => r.totalFps)),
    perCameraFps: median(rs.map((r) => r.totalFps / n)),
    fairness: median(rs.map((r) => r.fairness)),
    framesPerCpuSecond: median(rs.map((r) => r.framesPerCpuSecond)),
    cpuShare: median(rs.map((r) => r.cpuShare)),
  };
});
const one = summary.find((s) => s.cameras === 1)?.totalFps;
console.log(JSON.stringify({ settings: { counts, seconds, warmup, fps, size, engine, threads, rounds, cpus: os.cpus().length, node: process.version }, runs, summary }, null, 1));
if (md) {
  const oneCpu = summary.find((s) => s.cameras === 1)?.framesPerCpuSecond;
  console.log('\n| cameras | total frames/s (median) | per camera | lowest/highest camera (median) | total vs 1 camera | frames per daemon CPU-second | vs 1 camera | daemon CPU (cores) |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of summary) {
    console.log(
      `| ${s.cameras} | ${s.totalFps.toFixed(1)} | ${s.perCameraFps.toFixed(1)} | ${s.fairness.toFixed(3)} | ${one ? (s.totalFps / one).toFixed(2) : '–'} | ${s.framesPerCpuSecond.toFixed(1)} | ${oneCpu ? (s.framesPerCpuSecond / oneCpu).toFixed(2) : '–'} | ${s.cpuShare.toFixed(2)} |`,
    );
  }
  console.log('\nPer round (cameras: total frames/s = each camera):');
  for (const r of runs) console.log(`- round ${r.round}, ${r.cameras}: ${r.totalFps.toFixed(1)} = ${r.perCamera.map((c) => c.processedFps.toFixed(1)).join(' + ')}; load ${r.load[0]}`);
}
process.exit(0);
