/**
 * Accuracy of the quantizer: COCO AP / AP50 of quantized Yolo-Fastest models run by the integer
 * engine, beside the float model, on the same images and post-processing (darknet `detector valid`).
 *
 *   npx tsx scripts/bench-accuracy.ts sweep [--models yolo-fastest-1.1,yolo-fastest-1.1-xl] [--bits 8,6,5,4,3]
 *       [--data <dev list>] [--calib-images 32] [--out docs/benchmarks/accuracy.md] [--svg docs/benchmarks/ap50-vs-bits.svg]
 *     Nw in --bits at Na = 8, zero-centered vs plain, per layer vs per channel, the other settings at
 *     the quantizer's defaults; writes a markdown section and the AP50-vs-bits chart.
 *
 *   npx tsx scripts/bench-accuracy.ts compare --configs <spec,...> [--models ...] [--data <list>] [--skip N] [--limit N]
 *     Scores configurations on a list; with the calib list and --skip 400 this scores on calib images
 *     the calibration never saw (the calibration takes the first --calib-images of calib.txt).
 *     A spec is `float` or `w<N>[-pc|-pl][-zc|-plain][:minmax|:search|:p<percentile>][:h8|:h16][:n<images>][:f<first bits>][:e<head bits>]
 *     [:bc|:nobc][:oexact|:ofloat][:noeq|:eq<dw>/<other>][:align]` (bias correction; the search objective;
 *     equalization; weight-grid alignment),
 *     e.g. `w8-pc-zc:search:h16:n32`; unspecified parts take the quantizer's defaults.
 *
 * Common: --threads N (float passes and the int engine), --cache file.json (results already there
 * are reused, new ones appended as they finish, so an interrupted run resumes).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadDarknet } from '../src/model/darknet.js';
import { FloatEngine } from '../src/engine/float.js';
import { loadEvalSet, readImageList } from '../src/eval/dataset.js';
import { dataPath } from '../src/util/paths.js';
import { collectStats, quantizeDefaults, quantizeModel, type QuantizeOptions } from '../src/quant/quantize.js';
import { loadFrames, scoreEngine, scoreQNet, type ScoredSet } from '../src/eval/accuracy.js';
import { lineChartSvg, type Series } from '../src/quant/svg.js';
import type { ActivationStats } from '../src/quant/calibrate.js';
import type { Frame } from '../src/engine/engine.js';
import type { LoadedDarknet } from '../src/model/darknet.js';

interface Result {
  model: string;
  spec: string;
  data: string;
  images: number;
  AP: number;
  AP50: number;
  avgBits?: number;
  quantizeSeconds?: number;
}

const { positionals, values: args } = parseArgs({
  allowPositionals: true,
  options: {
    models: { type: 'string', default: 'yolo-fastest-1.1,yolo-fastest-1.1-xl' },
    bits: { type: 'string', default: '8,6,5,4,3' },
    configs: { type: 'string' },
    data: { type: 'string' },
    skip: { type: 'string', default: '0' },
    limit: { type: 'string' },
    'calib-images': { type: 'string', default: '32' },
    threads: { type: 'string', default: '1' },
    cache: { type: 'string' },
    out: { type: 'string', default: 'docs/benchmarks/accuracy.md' },
    svg: { type: 'string', default: 'docs/benchmarks/ap50-vs-bits.svg' },
  },
});
const mode = positionals[0] ?? 'sweep';
const threads = Number(args.threads);
const calibImages = Number(args['calib-images']);
const models = args.models!.split(',');

function parseSpec(spec: string): QuantizeOptions | 'float' {
  if (spec === 'float') return 'float';
  const [head, ...rest] = spec.split(':');
  const m = /^w(\d)((?:-(?:pc|pl|zc|plain))*)$/.exec(head);
  if (!m) throw new Error(`bad spec ${spec}`);
  const o: QuantizeOptions = { ...quantizeDefaults(), wbits: Number(m[1]) };
  for (const flag of m[2].split('-').filter(Boolean)) {
    if (flag === 'pc') o.perChannel = true;
    if (flag === 'pl') o.perChannel = false;
    if (flag === 'zc') o.zeroCenter = true;
    if (flag === 'plain') o.zeroCenter = false;
  }
  for (const t of rest) {
    if (t === 'minmax' || t === 'search') o.actCalib = t;
    else if (t === 'bc') o.biasCorrection = true;
    else if (t === 'noeq') o.equalize = false;
    else if (t === 'align') o.alignWeights = true;
    else if (t.startsWith('eq')) {
      const [dw, other] = t.slice(2).split('/').map(Number);
      o.equalize = { depthwise: Number.isFinite(dw) ? dw : 1, other: Number.isFinite(other) ? other : 0.5 };
    }
    else if (t === 'ofloat' || t === 'oexact') o.searchObjective = t === 'ofloat' ? 'float' : 'exact';
    else if (t === 'nobc') o.biasCorrection = false;
    else if (t.startsWith('p')) {
      o.actCalib = 'percentile';
      o.percentile = Number(t.slice(1));
    } else if (t === 'h8' || t === 'h16') o.headAbits = Number(t.slice(1));
    else if (t.startsWith('n')) o.searchImages = Number(t.slice(1));
    else if (t.startsWith('f')) o.firstBits = Number(t.slice(1));
    else if (t.startsWith('e')) o.headBits = Number(t.slice(1));
    else throw new Error(`bad spec part ${t} in ${spec}`);
  }
  return o;
}

const cacheFile = args.cache;
const cache: Result[] = cacheFile && existsSync(cacheFile) ? (JSON.parse(readFileSync(cacheFile, 'utf8')) as Result[]) : [];
const dataKey = (list: string, skip: number, limit?: number) => `${path.basename(list)}[${skip}:${limit ?? ''}]`;

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
}

/** Scores specs for one model on one set, reusing one float engine, one set of frames and statistics. */
async function run(modelName: string, specs: string[], list: string, skip: number, limit?: number): Promise<Result[]> {
  const key = dataKey(list, skip, limit);
  const todo = specs.filter((s) => !cache.some((r) => r.model === modelName && r.spec === s && r.data === key));
  const out = cache.filter((r) => r.model === modelName && specs.includes(r.spec) && r.data === key);
  if (todo.length === 0) return out;
  const model: LoadedDarknet = await loadDarknet(dataPath('models', 'yolo-fastest', `${modelName}.cfg`));
  const evalSet = await loadEvalSet(list);
  const images = evalSet.images.slice(skip, limit === undefined ? undefined : skip + limit);
  const set: ScoredSet = { images, gt: evalSet.gt };
  let engine: FloatEngine | undefined;
  let frames: Frame[] | undefined;
  let stats: ActivationStats | undefined;
  try {
    for (const spec of todo) {
      const opts = parseSpec(spec);
      let res: Result;
      if (opts === 'float') {
        const fe = await FloatEngine.create(model, { threads });
        const s = await scoreEngine(fe, set);
        await fe.close();
        res = { model: modelName, spec, data: key, images: images.length, AP: s.AP, AP50: s.AP50 };
      } else {
        engine ??= await FloatEngine.create(model, { allOutputs: true, threads });
        if (!frames) {
          const calib = readImageList(dataPath('coco-val', 'calib.txt')).slice(0, calibImages);
          frames = await loadFrames(calib, model.net);
          stats = await collectStats(engine, model, frames);
        }
        const t0 = performance.now();
        const q = await quantizeModel(model, frames, { ...opts, threads }, undefined, { engine, stats });
        const seconds = (performance.now() - t0) / 1000;
        const s = await scoreQNet(q.qnet, set, threads);
        let n = 0;
        let bits = 0;
        for (const c of q.qnet.convs) if (c) (n += c.q.length), (bits += c.q.length * c.wbits);
        res = { model: modelName, spec, data: key, images: images.length, AP: s.AP, AP50: s.AP50, avgBits: bits / n, quantizeSeconds: seconds };
      }
      log(`${modelName} ${spec} on ${key}: AP50 ${(100 * res.AP50).toFixed(2)} AP ${(100 * res.AP).toFixed(2)}${res.quantizeSeconds ? ` (quantized in ${res.quantizeSeconds.toFixed(0)} s)` : ''}`);
      out.push(res);
      cache.push(res);
      if (cacheFile) writeFileSync(cacheFile, JSON.stringify(cache, null, 1));
    }
  } finally {
    await engine?.close();
  }
  return out;
}

const pct = (v: number | undefined): string => (v === undefined ? '–' : (100 * v).toFixed(2));

async function compare(): Promise<void> {
  const specs = (args.configs ?? 'float').split(',');
  const list = args.data ?? dataPath('coco-val', 'calib.txt');
  const skip = Number(args.skip);
  const limit = args.limit === undefined ? undefined : Number(args.limit);
  const lines = ['| model | configuration | AP50 | AP | Δ AP50 vs float |', '|---|---|---:|---:|---:|'];
  for (const m of models) {
    const rs = await run(m, specs, list, skip, limit);
    const fl = rs.find((r) => r.spec === 'float');
    for (const s of specs) {
      const r = rs.find((x) => x.spec === s)!;
      lines.push(`| ${m} | ${s} | ${pct(r.AP50)} | ${pct(r.AP)} | ${fl && s !== 'float' ? (100 * (r.AP50 - fl.AP50)).toFixed(2) : ''} |`);
    }
  }
  process.stdout.write(`Images: ${dataKey(list, skip, limit)}; calibration: the first ${calibImages} of calib.txt.\n\n${lines.join('\n')}\n`);
}

const VARIANTS = [
  { id: 'pc-zc', label: 'per channel, zero-centered' },
  { id: 'pc-plain', label: 'per channel, plain' },
  { id: 'pl-zc', label: 'per layer, zero-centered' },
  { id: 'pl-plain', label: 'per layer, plain' },
];

async function sweep(): Promise<void> {
  const bits = args.bits!.split(',').map(Number);
  const list = args.data ?? dataPath('coco-val', 'dev.txt');
  const specs = ['float', ...bits.flatMap((b) => VARIANTS.map((v) => `w${b}-${v.id}`))];
  const d = quantizeDefaults();
  const md: string[] = [
    '## Accuracy of the quantized models (scripts/bench-accuracy.ts)',
    '',
    `COCO AP50 / AP (percent, pycocotools rules) on ${path.basename(list)}, integer engine, darknet \`detector valid\` post-processing`,
    `(threshold 0.001, the cfg's NMS at 0.6, 100 detections per image). Activations Na = 8 with ${d.headAbits}-bit head tensors, activation`,
    `formats by ${d.actCalib} on the first ${calibImages} images of calib.txt; every conv layer at Nw (first and head layers included).`,
    `Regenerate: \`npx tsx scripts/bench-accuracy.ts sweep --bits ${bits.join(',')} --calib-images ${calibImages}\`.`,
    '',
  ];
  const series: Series[] = [];
  const refs: { label: string; y: number }[] = [];
  for (const m of models) {
    const rs = await run(m, specs, list, 0);
    const fl = rs.find((r) => r.spec === 'float')!;
    md.push(`### ${m} (float: AP50 ${pct(fl.AP50)}, AP ${pct(fl.AP)})`, '');
    md.push(`| Nw | ${VARIANTS.map((v) => v.label).join(' | ')} |`, `|---:|${VARIANTS.map(() => '---:|').join('')}`);
    for (const b of bits) {
      const cells = VARIANTS.map((v) => {
        const r = rs.find((x) => x.spec === `w${b}-${v.id}`)!;
        return `${pct(r.AP50)} / ${pct(r.AP)}`;
      });
      md.push(`| ${b} | ${cells.join(' | ')} |`);
    }
    md.push('');
    refs.push({ label: `${m} float`, y: 100 * fl.AP50 });
    for (const v of VARIANTS) {
      series.push({
        label: `${m.replace('yolo-fastest-', '')} ${v.id}`,
        dashed: m.endsWith('xl'),
        points: bits.map((b) => {
          const r = rs.find((x) => x.spec === `w${b}-${v.id}`)!;
          return { x: r.avgBits ?? b, y: 100 * r.AP50 };
        }),
      });
    }
  }
  md.push(`![AP50 against bits per weight](${path.relative(path.dirname(args.out!), args.svg!)})`, '');
  mkdirSync(path.dirname(args.out!), { recursive: true });
  mkdirSync(path.dirname(args.svg!), { recursive: true });
  writeFileSync(args.out!, md.join('\n'));
  writeFileSync(args.svg!, lineChartSvg(`AP50 on ${path.basename(list)} against bits per weight (Na = 8)`, 'bits per weight', 'AP50 (%)', series, refs));
  process.stdout.write(md.join('\n'));
}

if (mode === 'compare') await compare();
else if (mode === 'sweep') await sweep();
else throw new Error(`unknown mode ${mode} (sweep, compare)`);
