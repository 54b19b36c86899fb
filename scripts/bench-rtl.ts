/**
 * Speed of the accelerator's RTL from simulated clock cycles: every conv layer of a network (the
 * shapes of its cfg) runs through the Verilated RTL on random data - the RTL's timing does not
 * depend on the values, and every layer is also checked against the reference - for the UP5K
 * configuration at two memory timings and for the large configuration. From the cycles: frames/s
 * at a clock, the memory port's load, the serial link's bound, and on paper a mid-size FPGA.
 * With --write, replaces the generated section of docs/benchmarks/rtl.md.
 *
 *   npx tsx scripts/bench-rtl.ts [--cfg CFG] [--write]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dataPath, repoRoot } from '../src/util/paths.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string): string => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const cfg = opt('--cfg', dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));
const write = argv.includes('--write');
const rtl = path.join(repoRoot, 'firmware-bridge', 'rtl');

interface Layer {
  index: number; kind: string; inputs: number[]; input: { c: number; h: number; w: number };
  output: { c: number; h: number; w: number }; size: number; stride: number; pad: number; groups: number;
  activation: string; macs: number;
}
const inspect = JSON.parse(execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'zeroq'), 'inspect', '--json', cfg], { encoding: 'utf8', maxBuffer: 64 << 20 }));
const layers: Layer[] = inspect.layers;
const heads = new Set<number>(layers.filter((l) => l.kind === 'yolo').flatMap((l) => l.inputs));
const convs = layers.filter((l) => l.kind === 'conv');
const acts: Record<string, number> = { linear: 0, leaky: 1, relu: 2 };
const stdin = convs
  .map((l) => {
    const flags = (l.inputs[0] === -1 ? 1 : 0) | (acts[l.activation] << 1) | (heads.has(l.index) ? 8 : 0);
    return [l.index, l.input.c, l.input.h, l.input.w, l.output.c, l.output.h, l.output.w, l.size, l.stride, l.pad, l.groups, flags].join(' ');
  })
  .join('\n');

interface Run { name: string; lanes: number; latency: number; interval: number; per: Map<number, { cycles: number; words: number }>; cycles: number; words: number }
function run(name: string, large: boolean, latency: number, interval: number): Run {
  const args = large ? ['CFG=large'] : [];
  const bin = large ? 'build/large/net_cycles' : 'build/net_cycles';
  execFileSync('make', ['-s', '-C', rtl, ...args, bin], { stdio: ['ignore', 'ignore', 'inherit'] });
  const conf = readFileSync(path.join(rtl, large ? 'build/large/zq_config.h' : 'build/zq_config.h'), 'utf8');
  const out = execFileSync(path.join(rtl, bin), [String(latency), String(interval)], { input: stdin, encoding: 'utf8', maxBuffer: 64 << 20 });
  const per = new Map<number, { cycles: number; words: number }>();
  for (const line of out.trim().split('\n')) {
    const [idx, cycles, reads, writes, , ok] = line.split(' ').map(Number);
    if (ok !== 1) throw new Error(`${name}: layer ${idx} differs from the reference`);
    per.set(idx, { cycles, words: reads + writes });
  }
  const lanesMatch = large ? /ZQ_CFG_LARGE[\s\S]*?ZQ_LANES\s+(\d+)/.exec(conf) : /#else[\s\S]*?ZQ_LANES\s+(\d+)/.exec(conf);
  const total = [...per.values()].reduce((a, v) => ({ cycles: a.cycles + v.cycles, words: a.words + v.words }), { cycles: 0, words: 0 });
  console.error(`${name}: ${total.cycles} cycles`);
  return { name, lanes: Number(lanesMatch?.[1] ?? 0), latency, interval, per, ...total };
}

const runs = [
  run('UP5K configuration, SRAM-like port', false, 4, 1),
  run('UP5K configuration, QSPI PSRAM-like port', false, 20, 8),
  run('large configuration, SRAM-like port', true, 4, 1),
];

const totalMacs = convs.reduce((a, l) => a + l.macs, 0);
const fmt = (v: number, d = 0): string => v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
function kindOf(l: Layer): string {
  if (l.inputs[0] === -1) return `first layer ${l.size}x${l.size}/${l.stride}`;
  if (l.groups > 1 && l.groups === l.output.c) return `depthwise ${l.size}x${l.size}`;
  return `${l.size}x${l.size}${l.groups > 1 ? ' grouped' : ''}`;
}
const kinds = [...new Set(convs.map(kindOf))];

// Fmax from `make synth`, when the UP5K design placed and routed
const synthTxt = path.join(rtl, 'build', 'synth', 'up5k.txt');
const fmaxMatch = existsSync(synthTxt) ? /Max frequency for clock[^:]*: ([\d.]+) MHz/.exec(readFileSync(synthTxt, 'utf8')) : null;
const fmax = fmaxMatch ? Number(fmaxMatch[1]) : undefined;
const clocks = [12, 24, ...(fmax ? [fmax] : [])];

// the serial link: the frame in, the head tensors out (bytes of the tensors; the protocol adds its framing)
const inBytes = inspect.input.c * inspect.input.h * inspect.input.w;
const headBytes = layers.filter((l) => heads.has(l.index)).reduce((a, l) => a + l.output.c * l.output.h * l.output.w * 2, 0);
const links: [string, number][] = [
  ['UART 115200 baud', 11520], ['UART 921600 baud', 92160], ['UART 3 Mbaud', 300000],
  ['USB full-speed CDC (~1 MB/s)', 1e6], ['SPI 50 MHz', 6.25e6], ['USB high-speed FIFO (FT232H, ~40 MB/s)', 40e6],
];

// on paper: the design scaled to a part with ~150 multipliers (e.g. ECP5-85F: 156): 128 lanes,
// 4 output stages (4 x 4 DSPs), a 128-bit memory port; each layer bounded by its lane cycles (the
// simulated 32-lane cycles minus the output-stage excess, scaled by 32/128), its output pixels / 4
// and its port words / 4
const large = runs[2];
let paper = 0;
for (const l of convs) {
  const sim = large.per.get(l.index)!;
  const outPx = l.output.c * l.output.h * l.output.w;
  const flat = l.size === 1 && l.stride === 1 && l.pad === 0;
  const wo = flat ? l.output.h * l.output.w : l.output.w;
  const ho = flat ? 1 : l.output.h;
  const taps = (l.input.c / l.groups) * l.size * l.size;
  const lanes = l.output.c * ho * Math.ceil(wo / 128) * taps;
  paper += Math.max(lanes, outPx / 4, sim.words / 4);
}

const lines: string[] = [];
lines.push(`Network: \`${path.basename(cfg)}\`, ${convs.length} conv layers on the accelerator, ${fmt(totalMacs)} MACs per ${inspect.input.w}x${inspect.input.h} frame. ` +
  `Cycles are the RTL's CYCLES register (start to done, every memory wait included), from \`npx tsx scripts/bench-rtl.ts\`.`);
lines.push('');
lines.push('| configuration | memory port | cycles/frame | MAC/cycle (of lanes) | port words/frame | port busy |');
lines.push('|---|---|---:|---:|---:|---:|');
for (const r of runs)
  lines.push(`| ${r.name.split(',')[0]} (${r.lanes} lanes) | latency ${r.latency}, a word every ${r.interval} cycle${r.interval > 1 ? 's' : ''} | ${fmt(r.cycles)} | ${fmt(totalMacs / r.cycles, 2)} (${r.lanes}) | ${fmt(r.words)} | ${fmt((100 * r.words * r.interval) / r.cycles)}% |`);
lines.push('');
lines.push('Cycles per layer kind:');
lines.push('');
lines.push(`| layer kind | layers | MACs | ${runs.map((r) => r.name.replace(' configuration', '').replace(' port', '')).join(' | ')} |`);
lines.push(`|---|---:|---:|${runs.map(() => '---:').join('|')}|`);
for (const k of kinds) {
  const ls = convs.filter((l) => kindOf(l) === k);
  lines.push(`| ${k} | ${ls.length} | ${fmt(ls.reduce((a, l) => a + l.macs, 0))} | ${runs.map((r) => fmt(ls.reduce((a, l) => a + r.per.get(l.index)!.cycles, 0))).join(' | ')} |`);
}
lines.push('');
lines.push('Frames/s of the conv layers alone (the CPU\'s layers - pooling, route, upsample - and the link come on top):');
lines.push('');
lines.push(`| configuration | ${clocks.map((c) => `${fmt(c, c % 1 ? 1 : 0)} MHz${fmax === c ? ' (UP5K Fmax)' : ''}`).join(' | ')} | 100 MHz |`);
lines.push(`|---|${clocks.map(() => '---:').join('|')}|---:|`);
for (const r of runs) lines.push(`| ${r.name} | ${clocks.map((c) => fmt((c * 1e6) / r.cycles, 2)).join(' | ')} | ${fmt(1e8 / r.cycles, 2)} |`);
lines.push(`| on paper: 128 lanes, 4 output stages, 128-bit port (~150 multipliers) | ${clocks.map((c) => fmt((c * 1e6) / paper, 2)).join(' | ')} | ${fmt(1e8 / paper, 1)} |`);
lines.push('');
lines.push(`The link carries ${fmt(inBytes)} bytes of frame in and ${fmt(headBytes)} bytes of 16-bit head tensors out per frame (before framing):`);
lines.push('');
lines.push('| link | bytes/s each way | frames/s bound |');
lines.push('|---|---:|---:|');
for (const [name, bps] of links) lines.push(`| ${name} | ${fmt(bps)} | ${fmt(bps / Math.max(inBytes, headBytes), 2)} |`);
const md = lines.join('\n');
console.log(md);

if (write) {
  const doc = path.join(repoRoot, 'docs', 'benchmarks', 'rtl.md');
  const text = readFileSync(doc, 'utf8');
  const begin = '<!-- bench-rtl:begin -->';
  const end = '<!-- bench-rtl:end -->';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${doc}: no ${begin} ... ${end} section`);
  writeFileSync(doc, `${text.slice(0, a + begin.length)}\n${md}\n${text.slice(b)}`);
}
