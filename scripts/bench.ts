/**
 * `npm run bench`: measures what docs/BENCHMARKS.md reports and rewrites that file.
 *
 * Runs the CLI as a user would (bin/zeroq, built dist/): for Yolo-Fastest 1.1 and 1.1-xl it quantizes
 * with the default settings (calibration on calib.txt), scores float and integer engines on dev.txt,
 * and times float (onnxruntime-node) against int interleaved in one process at 1 and 2 threads.
 * The long sweeps (quantizer widths, retraining) are separate scripts whose markdown sections under
 * docs/benchmarks/ are included here as they were last written, with the command that wrote them.
 *
 *   npx tsx scripts/bench.ts [--models yolo-fastest-1.1,yolo-fastest-1.1-xl] [--frames 100] [--out docs/BENCHMARKS.md]
 *   npx tsx scripts/bench.ts --sections-only
 *       keeps the measured part of --out and re-includes the docs/benchmarks/ sections (after a sweep).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dataPath, repoRoot } from '../src/util/paths.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'yolo-fastest-1.1,yolo-fastest-1.1-xl' },
    frames: { type: 'string', default: '100' },
    wbits: { type: 'string', default: '8,6' },
    out: { type: 'string', default: path.join(repoRoot, 'docs', 'BENCHMARKS.md') },
    'sections-only': { type: 'boolean', default: false },
  },
});

const SECTIONS = '<!-- included sections (scripts/bench.ts) -->';
/** The docs/benchmarks/ sections, in this order, with the command that writes each; other .md files there follow. */
const SECTION_FILES: [file: string, title: string, how: string][] = [
  ['accuracy.md', 'Quantizer sweep', 'npx tsx scripts/bench-accuracy.ts sweep'],
  ['bit-widths.md', 'Widths per layer at an average', 'npx tsx scripts/bench-accuracy.ts widths'],
  ['retrain.md', 'Iterative retraining', 'npx tsx scripts/bench-retrain.ts'],
  ['speed.md', 'Integer kernels per layer', 'zeroq bench <w8.zqw> --compare --profile --json'],
  ['daemon.md', 'Daemon', 'npx tsx scripts/soak.ts and scripts/bench-cameras.ts (figures written up from their reports)'],
  ['fpga.md', 'Serial bridge', 'npx tsx scripts/fpga-check.ts --write; npx tsx scripts/fpga-link.ts --write; npx tsx scripts/fuzz-bridge.ts --write; the zeroq eval and run commands it quotes'],
  ['rtl.md', 'Accelerator RTL', 'npx tsx scripts/bench-rtl.ts --write; npx tsx scripts/rtl-cosim.ts --write; make -C firmware-bridge/rtl synth'],
  ['updates.md', 'Weight-set updates', 'npx tsx scripts/bench-updates.ts'],
  ['fuzz.md', 'Decoders and parsers under fuzzing', 'npm run fuzz; scripts/fuzz-native.sh; npx tsx scripts/fuzz-bridge.ts'],
];

function includedSections(): string {
  const dir = path.join(repoRoot, 'docs', 'benchmarks');
  const known = new Set(SECTION_FILES.map(([f]) => f));
  const others = readdirSync(dir).filter((f) => f.endsWith('.md') && !known.has(f)).sort();
  const parts = [
    ...SECTION_FILES.filter(([f]) => existsSync(path.join(dir, f))).map(([f, title, how]) => section(f, title, how)),
    ...others.map((f) => section(f, f.replace(/\.md$/, ''), 'see the file')),
  ];
  return `${SECTIONS}\n\n${parts.join('\n')}`;
}

if (values['sections-only']) {
  const old = readFileSync(values.out!, 'utf8');
  const at = old.indexOf(SECTIONS);
  if (at < 0) throw new Error(`${values.out}: no "${SECTIONS}" line; run the whole benchmark`);
  writeFileSync(values.out!, old.slice(0, at) + includedSections());
  process.stderr.write(`re-included the sections of ${values.out}\n`);
  process.exit(0);
}

const zeroq = path.join(repoRoot, 'bin', 'zeroq');
const dev = dataPath('coco-val', 'dev.txt');
const calib = dataPath('coco-val', 'calib.txt');
const loadBefore = os.loadavg()[0];
const work = mkdtempSync(path.join(os.tmpdir(), 'zeroq-bench-'));

function run(args: string[]): string {
  process.stderr.write(`$ zeroq ${args.join(' ')}\n`);
  return execFileSync(zeroq, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
}
function runJson<T>(args: string[]): T {
  return JSON.parse(run([...args, '--json'])) as T;
}
/** Paths in printed commands: relative to the data folder, as a reader would type them. */
function show(p: string): string {
  return p.startsWith(dataPath()) ? `$ZEROQ_DATA${p.slice(dataPath().length)}` : p;
}

interface EvalJson { images: number; AP: number; AP50: number; AP75: number; ms_per_image?: number }
interface Stats { median: number }
interface BenchJson {
  engines: { engine: string; networkMs: Stats; endToEndMs: Stats }[];
  ratio?: { network: number; endToEnd: number };
  peakRssMb: number;
}

const pct = (x: number) => (100 * x).toFixed(2);
const ms = (x: number) => x.toFixed(2);

const models = values.models!.split(',');
const widths = values.wbits!.split(',').map(Number);
const accRows: string[] = [];
const speedRows: string[] = [];
const commands: string[] = [];

try {
  for (const name of models) {
    const cfg = dataPath('models', 'yolo-fastest', `${name}.cfg`);
    const float = runJson<EvalJson>(['eval', cfg, '--engine', 'float', '--data', dev]);
    commands.push(`zeroq eval ${show(cfg)} --engine float --data ${show(dev)} --json`);
    accRows.push(`| ${name} | float (onnxruntime) | 32 | ${pct(float.AP)} | ${pct(float.AP50)} | ${pct(float.AP75)} | — |`);
    let zqwForSpeed = '';
    for (const w of widths) {
      const zqw = path.join(work, `${name}-w${w}.zqw`);
      run(['quantize', cfg, '--wbits', String(w), '--calib', calib, '-o', zqw, '--json']);
      commands.push(`zeroq quantize ${show(cfg)} --wbits ${w} --calib ${show(calib)} -o ${name}-w${w}.zqw`);
      const q = runJson<EvalJson>(['eval', zqw, '--engine', 'int', '--data', dev]);
      commands.push(`zeroq eval ${name}-w${w}.zqw --engine int --data ${show(dev)} --json`);
      const d = q.AP50 - float.AP50;
      accRows.push(
        `| ${name} | int W${w}A8 (defaults) | ${w} | ${pct(q.AP)} | ${pct(q.AP50)} | ${pct(q.AP75)} | ${d >= 0 ? '+' : ''}${pct(d)} |`,
      );
      if (w === 8) zqwForSpeed = zqw;
    }
    if (!zqwForSpeed) zqwForSpeed = path.join(work, `${name}-w${widths[0]}.zqw`);
    for (const threads of [1, 2]) {
      const b = runJson<BenchJson>(['bench', zqwForSpeed, '--compare', '--threads', String(threads), '--frames', values.frames!]);
      commands.push(`zeroq bench ${path.basename(zqwForSpeed)} --compare --threads ${threads} --frames ${values.frames} --json`);
      const f = b.engines.find((e) => e.engine === 'float')!;
      const i = b.engines.find((e) => e.engine === 'int')!;
      speedRows.push(
        `| ${name} | ${threads} | ${ms(f.networkMs.median)} | ${ms(i.networkMs.median)} | ${b.ratio!.network.toFixed(3)} | ` +
          `${ms(f.endToEndMs.median)} | ${ms(i.endToEndMs.median)} | ${b.ratio!.endToEnd.toFixed(3)} | ${b.peakRssMb.toFixed(0)} |`,
      );
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

function section(file: string, title: string, how: string): string {
  const p = path.join(repoRoot, 'docs', 'benchmarks', file);
  if (!existsSync(p)) return `## ${title}\n\nNot measured yet (\`${how}\` writes docs/benchmarks/${file}).\n`;
  // Relative links of the section (charts beside it) are rewritten to point into docs/benchmarks/.
  const text = readFileSync(p, 'utf8').trim().replace(/\]\((?![a-z]+:|\/|#)([^)]+)\)/g, '](benchmarks/$1)');
  return text + `\n\n_Included from docs/benchmarks/${file}, from the measurements of \`${how}\`._\n`;
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const md = `# Benchmarks

Written by \`npm run bench\` (scripts/bench.ts) on ${new Date().toISOString().slice(0, 10)}: ${cpu}, ${os.cpus().length} cores,
Node ${process.version}, ${os.platform()}-${os.arch()}; load average ${loadBefore.toFixed(1)} at the start and ${os.loadavg()[0].toFixed(1)} at the end
(other work on the machine). The machine is shared and noisy: speed is compared as ratios
within one run (float and int alternate in blocks of 10 frames in one process), and figures are medians.
Accuracy is COCO bbox (pycocotools' method, \`zeroq eval\`) on the 400 images of coco-val/dev.txt with darknet
\`detector valid\` post-processing (threshold 0.001, the cfg's greedy DIoU NMS at 0.6, 100 best per image);
quantization calibrates on calib.txt only. darknet's own float figures on the same images: AP50 16.30 (1.1), 26.73 (xl).

## Accuracy (percent)

| model | engine | weight bits | AP | AP50 | AP75 | ΔAP50 vs float |
|---|---|---:|---:|---:|---:|---:|
${accRows.join('\n')}

## Speed: integer engine vs onnxruntime-node float, same run (ms per 320x320 frame, medians)

Network only, and end to end (JPEG decode + darknet resize + network + decode/NMS); ratio = int / float.

| model | threads | float net | int net | ratio | float e2e | int e2e | ratio | peak RSS MB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${speedRows.join('\n')}

Commands:
${commands.map((c) => `    ${c}`).join('\n')}

${includedSections()}`;
writeFileSync(values.out!, md);
process.stderr.write(`wrote ${values.out}\n`);
