/**
 * Who should resize video frames to the network input, ffmpeg or the host? Processed frames per
 * second of `zeroq run` (needs `npm run build`, mosquitto, ffmpeg) on a video file read as fast as
 * the daemon takes it (realtime: false, every frame processed), with `source.scale` ffmpeg, host
 * (native resize) and host with the JS resize (ZEROQ_RESIZE=js), rounds alternating so that every
 * mode sees the same machine load; medians. Detections of all frames through mosquitto.
 * With --folder, the source is a folder of the same dev images instead (always resized on the host:
 * modes host and host-js).
 *
 *   npx tsx scripts/bench-capture-scale.ts [--size 1280x720] [--frames 150] [--rounds 3] [--folder]
 *        [--engine int|float] [--model <zqw|cfg>] [--threads 1] [--modes ffmpeg,host,host-js]
 *
 * Prints one JSON object.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeVideo } from '../test/helpers/ffmpeg.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { Watcher } from '../test/helpers/daemon.js';
import { dataPath } from '../src/util/paths.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(repo, 'dist', 'cli.js');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const [width, height] = arg('size', '1280x720').split('x').map(Number);
const frames = Number(arg('frames', '150'));
const rounds = Number(arg('rounds', '3'));
const engine = arg('engine', 'int');
const threads = arg('threads', '1');
const model = arg('model', engine === 'int' ? '' : dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));
const folder = process.argv.includes('--folder');
const modes = arg('modes', folder ? 'host,host-js' : 'ffmpeg,host,host-js').split(',');

function devImages(n: number): string[] {
  return readFileSync(dataPath('coco-val', 'dev.txt'), 'utf8')
    .trim()
    .split('\n')
    .slice(0, n)
    .map((rel) => dataPath('coco-val', rel.trim()));
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const r1 = (v: number) => Math.round(v * 10) / 10;

async function main(): Promise<void> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  if (engine === 'int' && !model) throw new Error('--model <weight set .zqw> is needed for the int engine');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-scale-'));
  const broker = await startMosquitto();
  try {
    let source = path.join(dir, 'images');
    if (folder) {
      mkdirSync(source);
      devImages(frames).forEach((f, i) => symlinkSync(f, path.join(source, `${String(i).padStart(5, '0')}.jpg`)));
    } else {
      source = path.join(dir, 'clip.mp4');
      await makeVideo(devImages(frames), source, { width, height, fps: 25 });
    }

    const round = async (mode: string): Promise<number> => {
      const config = path.join(dir, `${mode}.yaml`);
      writeFileSync(
        config,
        [
          'device_id: scale',
          `source: { url: ${source}, realtime: false, scale: ${mode === 'ffmpeg' ? 'ffmpeg' : 'host'} }`,
          `model: { engine: ${engine}, threads: ${threads}${model ? `, path: ${model}` : ''} }`,
          `mqtt: { url: ${broker.url} }`,
          'http: { port: 0 }',
        ].join('\n') + '\n',
      );
      const w = await Watcher.connect(broker.url, ['zeroq/scale/detections']);
      const times: number[] = [];
      w.client.on('message', () => times.push(performance.now()));
      const env = { ...process.env, ZEROQ_LOG_LEVEL: 'warn', ...(mode === 'host-js' ? { ZEROQ_RESIZE: 'js' } : {}) };
      const child = spawn(process.execPath, [cli, 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'], env });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      await w.close();
      if (code !== 0 || times.length !== frames) throw new Error(`${mode}: daemon exited with ${code} after ${times.length} of ${frames} frames:\n${stderr}`);
      const skip = 10; // start-up (engine, JIT, ffmpeg) is not part of the rate
      return (times.length - 1 - skip) / ((times[times.length - 1] - times[skip]) / 1000);
    };

    const fps: Record<string, number[]> = Object.fromEntries(modes.map((m) => [m, []]));
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? modes : [...modes].reverse();
      for (const m of order) fps[m].push(r1(await round(m)));
    }
    const result = {
      source: folder ? `folder of ${frames} dev images` : `video ${width}x${height}, ${frames} frames`,
      engine,
      threads: Number(threads),
      model: model || undefined,
      fps,
      median: Object.fromEntries(modes.map((m) => [m, median(fps[m])])),
      load: os.loadavg().map(r1),
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
