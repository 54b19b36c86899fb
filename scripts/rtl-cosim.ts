/**
 * Whole-network co-simulation of the accelerator's RTL: the fpga engine talks over a pty to
 * bridge-host, whose firmware runs every conv layer on the Verilated RTL (--accel rtl) and the other
 * layers on its CPU; each frame's raw head integers must equal the CPU integer engine's. Prints the
 * device cycles per frame and per layer kind; with --write, replaces the co-simulation section of
 * docs/benchmarks/rtl.md.
 *
 *   npx tsx scripts/rtl-cosim.ts [--model W.zqw] [--data LIST] [--limit N] [--write]
 *
 * The simulation runs about a million clock cycles a second, so a 320x320 Yolo-Fastest-1.1 frame
 * (~73 M cycles on the UP5K configuration) takes a minute or so: keep --limit small.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readZqw } from '../src/qnet/zqw.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { readImageList } from '../src/eval/dataset.js';
import { openIntEngine } from '../src/engine/int.js';
import { FpgaEngine } from '../src/engine/fpga/engine.js';
import { dataPath, repoRoot } from '../src/util/paths.js';
import { firmwareDir, startBridge, tempDir } from '../test/helpers/bridge.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string): string => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const model = opt('--model', path.join(repoRoot, 'deploy', 'weights', 'yolo-fastest-1.1-w8.zqw'));
const list = opt('--data', dataPath('coco-val', 'dev.txt'));
const limit = Number(opt('--limit', '3'));
const write = argv.includes('--write');

// the RTL library, and bridge-host linked with it
execFileSync('make', ['-s', '-C', path.join(firmwareDir, 'rtl')], { stdio: ['ignore', 'ignore', 'inherit'] });
execFileSync('make', ['-s', '-C', firmwareDir, 'host', 'ACCEL_RTL_LIB=rtl/build/libaccel_rtl.a'], { stdio: ['ignore', 'ignore', 'inherit'] });

const { qnet, manifest } = await readZqw(model);
const images = readImageList(list).slice(0, limit);
const { dir, remove } = tempDir('zeroq-rtl-cosim-');
const link = path.join(dir, 'link');
const bridge = await startBridge(link, ['--accel', 'rtl', '--mem', '16']);
const int = openIntEngine(qnet, { threads: 1, modelId: manifest.id });
const fpga = await FpgaEngine.open(qnet, {
  device: link,
  fallback: openIntEngine(qnet, { threads: 1 }),
  requireDevice: true,
  modelId: manifest.id,
  baseTimeoutMs: 20 * 60 * 1000, // a simulated frame takes tens of seconds
});

interface Row { image: string; same: boolean; cycles: number; wallS: number }
const rows: Row[] = [];
let layerCycles: Uint32Array | undefined;
try {
  for (const im of images) {
    const { frame } = await prepareFrame(im.path, qnet.net, { keepFloat: false });
    const want = (await int.infer(frame)).map((h) => Array.from(h.raw!));
    const before = fpga.status().counters.accelCycles;
    const t0 = performance.now();
    const got = (await fpga.infer(frame)).map((h) => Array.from(h.raw!));
    const wallS = (performance.now() - t0) / 1000;
    const same = got.length === want.length && got.every((g, k) => g.length === want[k].length && g.every((v, i) => v === want[k][i]));
    rows.push({ image: path.basename(im.path), same, cycles: fpga.status().counters.accelCycles - before, wallS });
    console.error(`${path.basename(im.path)}: heads ${same ? 'identical' : 'DIFFER'}, ${rows.at(-1)!.cycles} cycles, ${wallS.toFixed(1)} s`);
    layerCycles ??= await fpga.layerCycles();
  }
} finally {
  var status = fpga.status();
  await fpga.close();
  await int.close();
  await bridge.stop();
  remove();
}

// cycles per layer kind (conv layers split by kernel and grouping; others are the CPU's)
const kinds = new Map<string, { layers: number; cycles: number }>();
if (layerCycles) {
  for (const [i, l] of qnet.net.layers.entries()) {
    if (l.kind !== 'conv') continue;
    const k = l.groups > 1 && l.groups === l.filters ? `conv ${l.size}x${l.size} depthwise` : `conv ${l.size}x${l.size}${l.groups > 1 ? ' grouped' : ''}`;
    const e = kinds.get(k) ?? { layers: 0, cycles: 0 };
    e.layers++;
    e.cycles += layerCycles[i];
    kinds.set(k, e);
  }
}
const allSame = rows.every((r) => r.same) && status.counters.fallbackFrames === 0 && status.counters.deviceFrames === rows.length;
const md = [
  `Weight set \`${path.basename(model)}\` (${manifest.id}), ${rows.length} images of \`${path.relative(dataPath(), list).startsWith('..') ? list : path.relative(dataPath(), list)}\`, ` +
    `fpga engine → pty → bridge-host firmware → Verilated RTL (UP5K configuration, memory latency 4 cycles).`,
  '',
  '| image | raw heads = int engine | accelerator cycles | simulation wall time |',
  '|---|---|---:|---:|',
  ...rows.map((r) => `| ${r.image} | ${r.same ? 'yes' : '**no**'} | ${r.cycles.toLocaleString('en-US')} | ${r.wallS.toFixed(1)} s |`),
  '',
  `Frames on the device: ${status.counters.deviceFrames}, on the CPU fallback: ${status.counters.fallbackFrames}, retries: ${status.counters.retries}.`,
  '',
  ...(kinds.size
    ? ['| conv layers (first frame) | layers | cycles |', '|---|---:|---:|', ...[...kinds].map(([k, v]) => `| ${k} | ${v.layers} | ${v.cycles.toLocaleString('en-US')} |`)]
    : []),
].join('\n');
console.log(md);

if (write) {
  const doc = path.join(repoRoot, 'docs', 'benchmarks', 'rtl.md');
  const text = readFileSync(doc, 'utf8');
  const begin = '<!-- rtl-cosim:begin -->';
  const end = '<!-- rtl-cosim:end -->';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${doc}: no ${begin} ... ${end} section`);
  writeFileSync(doc, `${text.slice(0, a + begin.length)}\n${md}\n${text.slice(b)}`);
}
process.exitCode = allSame ? 0 : 1;
