// Per-layer-kind timing of the native integer engine on a .zqw, or on a cfg with a random QNet:
//   npx tsx scripts/bench-int.ts [cfg|zqw] [frames] [threads] [isa]   (TOP=n: the n slowest layers)
import { parseCfgFile } from '../src/model/darknet.js';
import { IntEngine } from '../src/engine/int.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import { dataPath } from '../src/util/paths.js';
import { readZqw } from '../src/qnet/zqw.js';
import { randomFrame, randomQNet, rng } from '../src/qnet/random.js';

const cfg = process.argv[2] || dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const frames = Number(process.argv[3] ?? 200);
const threads = Number(process.argv[4] ?? 1);
const isa = process.argv[5] ?? 'auto';
const r = rng(1);
const qnet = cfg.endsWith('.zqw') ? (await readZqw(cfg)).qnet : randomQNet(parseCfgFile(cfg), r, { wbits: [8, 8] });
const net = qnet.net;
const frame = randomFrame(net, r);
const eng = new IntEngine(qnet, loadNativeKernels().kernels!, { threads, isa });
for (let i = 0; i < 20; i++) eng.inferSync(frame);
const times: number[] = [];
for (let i = 0; i < frames; i++) {
  const t0 = process.hrtime.bigint();
  eng.inferSync(frame);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
eng.profile(true);
for (let i = 0; i < frames; i++) eng.inferSync(frame);
const ns = eng.profile(false);
const byKind = new Map<string, number>();
net.layers.forEach((l, i) => {
  const key = l.kind === 'conv' ? `conv ${l.groups === l.filters && l.groups > 1 ? 'dw' : l.size === 1 ? '1x1' : `${l.size}x${l.size}`}` : l.kind;
  byKind.set(key, (byKind.get(key) ?? 0) + ns[i] / frames / 1e6);
});
console.log(`${net.name} ${eng.isa} threads=${eng.threads}: median ${times[frames >> 1].toFixed(3)} ms, min ${times[0].toFixed(3)} ms`);
for (const [k, v] of [...byKind].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(12)} ${v.toFixed(3)} ms`);
if (process.env.TOP) {
  const top = net.layers.map((l, i) => [i, ns[i] / frames / 1e6] as const).sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP));
  for (const [i, v] of top) { const l = net.layers[i]; console.log(`  #${i} ${l.kind} ${JSON.stringify(l.out)} ${l.kind === 'conv' ? `k${l.size} g${l.groups} s${l.stride}` : ''} ${v.toFixed(3)}`); }
}
