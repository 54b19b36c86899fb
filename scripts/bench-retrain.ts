/**
 * Retraining benchmark.
 *
 *   npx tsx scripts/bench-retrain.ts score --runs a.json,b.json [--data <dev list>] [--threads 2]
 *       [--results docs/benchmarks/retrain.json] [--md docs/benchmarks/retrain.md]
 *       [--svg docs/benchmarks/ap50-vs-bits-retrained.svg]
 *     Scores the weight sets of finished `zeroq retrain --keep-iterations --json` runs (the JSON
 *     reports they printed): the quantizer's output (it0) and every iteration's, on the evaluation
 *     list, by the integer engine and by the trainer's own integer simulation (they must agree);
 *     the float model beside them (a set whose id was scored before on the same list is reused).
 *     Results accumulate in --results; the tables between the
 *     "results" markers of --md and the AP50-vs-bits chart are regenerated from it.
 *
 *   npx tsx scripts/bench-retrain.ts docs [--results ...] [--md ...] [--svg ...]
 *     Regenerates the tables and the chart from --results without scoring anything.
 *
 *   npx tsx scripts/bench-retrain.ts profile [--model yolo-fastest-1.1] [--threads 2]
 *     Times the parts of one batch-8 training step.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadDarknet } from '../src/model/darknet.js';
import { dataPath } from '../src/util/paths.js';
import { FloatEngine } from '../src/engine/float.js';
import { loadEvalSet } from '../src/eval/dataset.js';
import { scoreEngine, scoreQNet } from '../src/eval/accuracy.js';
import { readZqw } from '../src/qnet/zqw.js';
import { lineChartSvg, type Series } from '../src/quant/svg.js';
import { loadFrames, readGroundTruth, readImageList } from '../src/retrain/data.js';
import { initialState, startIteration, trainStep } from '../src/retrain/trainer.js';
import { defaultQuantConfig } from '../src/retrain/formats.js';
import { validationAp } from '../src/retrain/validate.js';
import type { RetrainReport } from '../src/retrain/run.js';
import { prepareFrame } from '../src/detect/preprocess.js';

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string' },
    data: { type: 'string' },
    model: { type: 'string', default: 'yolo-fastest-1.1' },
    threads: { type: 'string', default: '2' },
    results: { type: 'string', default: 'docs/benchmarks/retrain.json' },
    md: { type: 'string', default: 'docs/benchmarks/retrain.md' },
    svg: { type: 'string', default: 'docs/benchmarks/ap50-vs-bits-retrained.svg' },
  },
});
const threads = Number(o.threads);
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const pct = (v: number | undefined) => (v === undefined ? '–' : (100 * v).toFixed(2));

interface Figures {
  AP: number;
  AP50: number;
}

interface ScoredSet {
  /** Weight-set id and file. */
  id: string;
  file: string;
  /** The integer engine (src/engine/int.ts) on the evaluation list. */
  engine: Figures;
  /** The trainer's integer simulation (src/retrain/sim.ts) on the same list. */
  sim: Figures;
}

interface RunResult {
  model: string;
  wbits: number;
  zeroCentered: boolean;
  schedule: number[];
  iterations: number;
  epochs: number;
  lr: number;
  /** Learning-rate factor per iteration (absent in older results: 0.5). */
  lrDecay?: number;
  /** Training frames mirrored at random (absent in older results: no). */
  flip?: boolean;
  /** Weight of the inner layers' distillation (absent: none). */
  featureWeight?: number;
  /** Whether the formats of the first iteration were grid-aligned (`--align-weights`). */
  alignWeights?: boolean;
  /** Seed of the run (recorded from the weight sets' metadata). */
  seed?: number;
  /** Random crops down to this fraction (absent: none). */
  crop?: number;
  /** Weight fraction bits by least squared error with clipping (absent: min/max). */
  weightClip?: 'mse';
  /** Widths per layer at this average (`--avg-bits`; absent: one width). */
  avgBits?: number;
  /** Training images (absent in older results: 559). */
  trainImages?: number;
  batch: number;
  /** The command's report and where it came from. */
  report: string;
  trainMinutes: number;
  wallMinutes: number;
  stoppedByBudget: boolean;
  /** Validation (held-out training-list images) figures the trainer reported: [0] quantizer, then iterations. */
  heldOut: (Figures | undefined)[];
  data: string;
  /** [0] the quantizer's output, then every iteration (the last one partial when stopped by the budget). */
  sets: ScoredSet[];
  /** Index in sets of the weight set the run wrote as its output (absent: the last). */
  output?: number;
}

interface Results {
  float: Record<string, Figures & { data: string }>;
  runs: RunResult[];
}

/** A file's path relative to the repository (the working folder), or undefined when it is outside. */
function inRepo(file: string): string | undefined {
  const rel = path.relative(path.resolve('.'), path.resolve(file));
  return rel.startsWith('..') || path.isAbsolute(rel) ? undefined : rel;
}

/** A weight set's path relative to the repository when it is kept there, else its file name. */
function setName(file: string): string {
  return inRepo(file) ?? path.basename(file);
}

async function score(): Promise<void> {
  if (!o.runs) throw new Error('give --runs report.json,...');
  const list = o.data ?? dataPath('coco-val', 'dev.txt');
  const results: Results = existsSync(o.results!) ? JSON.parse(readFileSync(o.results!, 'utf8')) : { float: {}, runs: [] };
  const save = () => {
    mkdirSync(path.dirname(o.results!), { recursive: true });
    writeFileSync(o.results!, JSON.stringify(results, null, 1) + '\n');
  };
  const evalSet = await loadEvalSet(list);
  const set = { images: evalSet.images, gt: evalSet.gt };
  const gt = await readGroundTruth(dataPath('coco-val', 'instances.json'));
  let frames: Awaited<ReturnType<typeof loadFrames>> | undefined;
  for (const reportFile of o.runs.split(',')) {
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as RetrainReport;
    const files = (report.iterations ?? []).filter((f) => f);
    if (files.length === 0) throw new Error(`${reportFile}: no per-iteration weight sets (run with --keep-iterations)`);
    // A run stopped by its budget wrote the partly trained iteration as its output: score it too.
    // (With --keep-best the output is one of the iterations instead.)
    if (report.stoppedByBudget && report.bestIteration === undefined) files.push(report.out);
    const first = await readZqw(files[files.length - 1]);
    const q = first.manifest.quantization as Record<string, unknown>;
    const model = first.qnet.net.name;
    if (!results.float[model]) {
      const loaded = await loadDarknet(dataPath('models', 'yolo-fastest', `${model}.cfg`));
      const fe = await FloatEngine.create(loaded, { threads });
      const s = await scoreEngine(fe, set);
      await fe.close();
      results.float[model] = { AP: s.AP, AP50: s.AP50, data: path.basename(list) };
      process.stderr.write(`${model} float: AP50 ${pct(s.AP50)}\n`);
    }
    frames ??= await loadFrames(first.qnet.net, evalSet.images.map((im) => im.path));
    const sets: ScoredSet[] = [];
    // Weight sets are named by their contents: one scored before on the same list is not scored again.
    const known = new Map(results.runs.filter((r) => r.data === path.basename(list)).flatMap((r) => r.sets.map((s) => [s.id, s] as const)));
    for (const file of files) {
      const z = await readZqw(file);
      const seen = known.get(z.manifest.id);
      if (seen) {
        sets.push({ ...seen, file: setName(file) });
        process.stderr.write(`${path.basename(file)}: scored before (${seen.id})\n`);
        continue;
      }
      const engine = await scoreQNet(z.qnet, set, threads);
      const sim = validationAp(z.qnet, frames, gt, threads);
      sets.push({ id: z.manifest.id, file: setName(file), engine: { AP: engine.AP, AP50: engine.AP50 }, sim: { AP: sim.ap, AP50: sim.ap50 } });
      process.stderr.write(`${path.basename(file)}: int engine AP50 ${pct(engine.AP50)}, trainer simulation AP50 ${pct(sim.ap50)}\n`);
    }
    const run: RunResult = {
      model,
      wbits: Number(q.wbits),
      zeroCentered: q.zeroCentered === true,
      schedule: q.schedule as number[],
      iterations: report.history.length,
      epochs: Number(q.epochs),
      lr: Number(q.lr),
      lrDecay: q.lrDecay === undefined ? 0.5 : Number(q.lrDecay),
      flip: q.flip === true,
      ...(q.featureWeight ? { featureWeight: Number(q.featureWeight) } : {}),
      ...(q.alignWeights ? { alignWeights: true } : {}),
      ...(q.seed !== undefined ? { seed: Number(q.seed) } : {}),
      ...(q.crop !== undefined ? { crop: Number(q.crop) } : {}),
      ...(q.weightClip === 'mse' ? { weightClip: 'mse' as const } : {}),
      ...((q.widths as { avgBitsTarget?: number } | undefined)?.avgBitsTarget !== undefined ? { avgBits: (q.widths as { avgBitsTarget: number }).avgBitsTarget } : {}),
      batch: Number(q.batch),
      report: path.basename(reportFile),
      trainMinutes: report.elapsedMs / 60000,
      // A resumed run reports the wall time of its last part only; its training time spans all parts.
      wallMinutes: Math.max(report.wallMs ?? 0, report.elapsedMs) / 60000,
      stoppedByBudget: report.stoppedByBudget,
      heldOut: [report.quantized ? { AP: report.quantized.ap, AP50: report.quantized.ap50 } : undefined,
        ...report.history.map((h) => (h.ap50 !== undefined ? { AP: h.ap!, AP50: h.ap50 } : undefined))],
      data: path.basename(list),
      sets,
      ...(report.bestIteration !== undefined ? { output: report.bestIteration + 1 } : {}),
    };
    results.runs = results.runs.filter((r) => r.report !== run.report);
    results.runs.push(run);
    save();
  }
  writeDocs(results);
}

/** The weight set the run wrote (-o): the best held-out iteration with --keep-best, else the last. */
function outputSet(r: RunResult): ScoredSet {
  return r.sets[r.output ?? r.sets.length - 1];
}

/** Held-out AP50 of the run's output weight set (-Infinity when the run had no validation list). */
function heldOutOfOutput(r: RunResult): number {
  return r.heldOut[r.output ?? r.heldOut.length - 1]?.AP50 ?? -Infinity;
}

function label(r: RunResult): string {
  return `${r.avgBits !== undefined ? `${r.avgBits} bits on average` : `W${r.wbits}`} ${r.zeroCentered ? 'zero-centered' : 'plain'}`;
}

/** Schedule, epochs, iterations and learning rate of a run, in a few words. */
function training(r: RunResult): string {
  const decay = r.lrDecay ?? 0.5;
  const per = r.iterations === 1 || decay === 1 ? '' : decay === 0.5 ? ' halved per it.' : ` ×${decay} per it.`;
  const lr = `Adam ${r.lr.toExponential(0)}${per}${decay === 1 && r.iterations > 1 ? ' constant' : ''}`;
  return `${r.schedule.join(',')} × ${r.epochs} epoch${r.epochs > 1 ? 's' : ''}, ${r.iterations} it., ${lr}${r.flip ? ', flip' : ''}${r.featureWeight ? `, inner layers ×${r.featureWeight}` : ''}${r.alignWeights ? ', grid-aligned' : ''}${r.crop !== undefined ? `, crops to ${r.crop}` : ''}${r.weightClip ? ', weights clipped by least squares' : ''}${r.seed !== undefined ? `, seed ${r.seed}` : ''}`;
}

function writeDocs(results: Results): void {
  const runs = results.runs.slice().sort((a, b) => a.model.localeCompare(b.model) || b.wbits - a.wbits || Number(b.zeroCentered) - Number(a.zeroCentered));
  const md: string[] = [];
  const models = [...new Set(runs.map((r) => r.model))];
  for (const m of models) {
    const fl = results.float[m];
    md.push(`### ${m} on ${fl.data} (float: AP ${pct(fl.AP)}, AP50 ${pct(fl.AP50)})`, '');
    const mine = runs.filter((r) => r.model === m);
    md.push(
      '| weights | training | quantized only | after each iteration | output | Δ AP50 vs float | trainer = engine | held-out AP50: quantized → each iteration | minutes |',
      '|---|---|---:|---|---:|---:|---|---|---:|',
    );
    const fig = (f: Figures) => `${pct(f.AP)} / ${pct(f.AP50)}`;
    for (const r of mine) {
      const last = outputSet(r);
      const agree = r.sets.every((s) => Math.abs(s.engine.AP50 - s.sim.AP50) <= 0.005) ? 'yes' : 'NO';
      const maxDiff = Math.max(...r.sets.map((s) => Math.abs(s.engine.AP50 - s.sim.AP50)));
      const ho = r.heldOut;
      md.push(`| ${label(r)} | ${training(r)} | ${fig(r.sets[0].engine)} | ${r.sets.slice(1).map((s, i) => fig(s.engine) + (r.stoppedByBudget && r.output === undefined && i === r.sets.length - 2 ? ' (partial)' : '')).join(', ')} | ${fig(last.engine)}${r.output !== undefined ? ` (it. ${r.output}, best held-out)` : ''} | ${(100 * (last.engine.AP50 - fl.AP50)).toFixed(2)} | ${agree} (max |Δ| ${(100 * maxDiff).toFixed(2)}) | ${pct(ho[0]?.AP50)} → ${ho.slice(1).map((h) => pct(h?.AP50)).join(', ')} | ${r.wallMinutes.toFixed(0)}${r.stoppedByBudget ? ' (budget)' : ''} |`);
    }
    // Where the scored weight sets are, when they are kept in the repository.
    const docDir = path.dirname(path.resolve(o.md!));
    for (const r of mine) {
      const files = r.sets.map((x) => x.file).filter((f) => f.includes('/') && inRepo(f) !== undefined && existsSync(f));
      if (files.length === r.sets.length) {
        md.push('', `${label(r)}, ${training(r)}: weight sets ${files.map((f) => `[${path.basename(f)}](${path.relative(docDir, path.resolve(f))})`).join(', ')}.`);
      }
    }
    md.push('');
  }
  md.push(`AP / AP50 in percent on the evaluation list, integer engine on the weight sets the runs wrote (\`.it<k>.zqw\`); "output" is the weight set the run wrote (\`-o\`): the last iteration, or with \`--keep-best\` the one with the best held-out AP50.`,
    `"trainer = engine": the trainer's own integer simulation gives the same AP50 within 0.5 points on every one of them.`,
    `Minutes: wall time of the whole \`zeroq retrain\` invocation (image loading included) on the shared 2-core machine; "(budget)": stopped by \`--budget-minutes\`.`,
    'The chart takes, for each width, the run whose output has the best held-out AP50 (chosen without dev.txt).', '');
  md.push(`![AP50 against weight bits, quantized and retrained](${path.relative(path.dirname(o.md!), o.svg!)})`);

  const series: Series[] = [];
  const refs: { label: string; y: number }[] = [];
  for (const m of models) {
    const short = m.replace('yolo-fastest-', '');
    refs.push({ label: `${short} float`, y: 100 * results.float[m].AP50 });
    for (const zc of [true, false]) {
      // One point per width: the run whose output has the best held-out AP50 (chosen without the
      // evaluation list).
      const byWidth = new Map<number, RunResult>();
      for (const r of results.runs) {
        if (r.model !== m || r.zeroCentered !== zc) continue;
        const had = byWidth.get(r.wbits);
        if (!had || heldOutOfOutput(r) > heldOutOfOutput(had)) byWidth.set(r.wbits, r);
      }
      const mine = [...byWidth.values()].sort((a, b) => a.wbits - b.wbits);
      if (mine.length === 0) continue;
      const name = `${short} ${zc ? 'zero-centered' : 'plain'}`;
      series.push({ label: `${name}, quantized`, dashed: true, points: mine.map((r) => ({ x: r.wbits, y: 100 * r.sets[0].engine.AP50 })) });
      series.push({ label: `${name}, retrained`, points: mine.map((r) => ({ x: r.wbits, y: 100 * outputSet(r).engine.AP50 })) });
    }
  }
  const dataName = Object.values(results.float)[0]?.data ?? 'dev.txt';
  mkdirSync(path.dirname(o.svg!), { recursive: true });
  writeFileSync(o.svg!, lineChartSvg(`AP50 on ${dataName}: quantized only and after retraining (Na = 8)`, 'weight bits', 'AP50 (%)', series, refs));

  const begin = '<!-- results:begin (scripts/bench-retrain.ts score) -->';
  const end = '<!-- results:end -->';
  const block = `${begin}\n${md.join('\n')}\n${end}`;
  const doc = existsSync(o.md!) ? readFileSync(o.md!, 'utf8') : `# Retraining results\n\n${begin}\n${end}\n`;
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  const out = a >= 0 && b > a ? doc.slice(0, a) + block + doc.slice(b + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(o.md!, out);
  process.stdout.write(md.join('\n') + '\n');
}

async function profile(): Promise<void> {
  const model = await loadDarknet(dataPath('models', 'yolo-fastest', `${o.model}.cfg`));
  const net = model.net;
  const paths = (await readImageList(dataPath('coco-val', 'calib.txt'))).slice(0, 8);
  const frames = await loadFrames(net, paths);
  const calib = await Promise.all(paths.map(async (p) => (await prepareFrame(p, net)).frame));
  const state = initialState(model.params, 1);
  const rows: Record<string, number[]> = {};
  let t = performance.now();
  const lap = (k: string) => {
    const now = performance.now();
    (rows[k] ??= []).push(now - t);
    t = now;
  };
  const { formats } = await startIteration(net, state, calib, defaultQuantConfig(4), threads);
  lap('quantizer formats (8 calibration images)');
  const batch = { n: 8, rgb: frames.rgb };
  // The trainer's own step, timed part by part: heads only, then with feature distillation.
  const base = { threads, labelWeight: 0, distill: 'objectness' as const };
  for (let rep = 0; rep < 5; rep++) {
    for (const featureWeight of [0, 0.5]) {
      t = performance.now();
      trainStep(net, model.params, state, formats, batch, undefined, { ...base, featureWeight }, 4, 1e-4, undefined, lap);
    }
  }
  console.log(`| part (${o.model}, 320x320, batch 8, ${threads} threads) | median ms |\n|---|---:|`);
  for (const [k, v] of Object.entries(rows)) console.log(`| ${k} | ${median(v).toFixed(0)} |`);
}

const mode = positionals[0] ?? 'score';
if (mode === 'score') await score();
else if (mode === 'docs') writeDocs(JSON.parse(readFileSync(o.results!, 'utf8')) as Results);
else if (mode === 'profile') await profile();
else throw new Error(`unknown mode ${mode} (score, docs, profile)`);
