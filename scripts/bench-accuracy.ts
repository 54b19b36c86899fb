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
 *     [:bc|:nobc][:oexact|:ofloat][:noeq|:eq<dw>/<other>][:align][:wclip|:nowclip][:gptq|:nearest]` (bias correction; the search objective;
 *     equalization; weight-grid alignment; weight fraction bits by least squared error with clipping; rounding
 *     for the least output error),
 *     e.g. `w8-pc-zc:search:h16:n32`; unspecified parts take the quantizer's defaults.
 *
 *   npx tsx scripts/bench-accuracy.ts widths --val <list> [--models ...] [--avg 4,4.5,5,6] [--uniform 4,5,6,8] [--floors 2,3,4]
 *       [--data <dev list>] [--errors-dir dir] [--weights-dir docs/benchmarks/weights] [--out docs/benchmarks/bit-widths.md]
 *       [--svg docs/benchmarks/ap50-vs-avg-bits.svg] [--error-reference float|base] [--error-model measured|fitted]
 *       [--center mean|fit|auto]  (default mean: the figures in docs were made with it)
 *     Widths per layer at an average (`zeroq quantize --avg-bits`) against uniform widths: the layer errors
 *     measured once per model on the first --sensitivity-images of --val, every candidate scored on --val,
 *     the chosen one (best validation AP50) and the uniform widths scored on --val and on --data; the
 *     chosen weight sets are written to --weights-dir.
 *
 * Common: --threads N (float passes and the int engine), --cache file.json (results already there
 * are reused, new ones appended as they finish, so an interrupted run resumes).
 */
import type { ErrorModel, ErrorReference } from '../src/retrain/bit-widths.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadDarknet } from '../src/model/darknet.js';
import { FloatEngine } from '../src/engine/float.js';
import { loadEvalSet, readImageList } from '../src/eval/dataset.js';
import { dataPath } from '../src/util/paths.js';
import { collectStats, quantizeDefaults as quantizerDefaults, quantizeModel, type QuantizeOptions } from '../src/quant/quantize.js';
import { CENTER_RULES, type CenterRule } from '../src/quant/weights.js';
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
    out: { type: 'string' },
    svg: { type: 'string' },
    avg: { type: 'string', default: '4,4.5,5,6' },
    uniform: { type: 'string', default: '4,5,6,8' },
    val: { type: 'string' },
    'sensitivity-images': { type: 'string', default: '32' },
    floors: { type: 'string' },
    'errors-dir': { type: 'string' },
    'error-reference': { type: 'string' },
    'error-model': { type: 'string' },
    center: { type: 'string' },
    'weights-dir': { type: 'string', default: 'docs/benchmarks/weights' },
  },
});
const mode = positionals[0] ?? 'sweep';
args.out ??= mode === 'widths' ? 'docs/benchmarks/bit-widths.md' : 'docs/benchmarks/accuracy.md';
args.svg ??= mode === 'widths' ? 'docs/benchmarks/ap50-vs-avg-bits.svg' : 'docs/benchmarks/ap50-vs-bits.svg';
const threads = Number(args.threads);
const errorReference = (args['error-reference'] ?? 'float') as ErrorReference;
if (errorReference !== 'float' && errorReference !== 'base') throw new Error('--error-reference: float or base');
// The curve in bit-widths.md was measured with the errors as measured; `--error-model fitted` (the
// commands' default since, src/quant/bit-allocation.ts fittedErrors) tags its results and files.
const errorModel = (args['error-model'] ?? 'measured') as ErrorModel;
if (errorModel !== 'measured' && errorModel !== 'fitted') throw new Error('--error-model: measured or fitted');
// Every figure this script wrote to docs/ was quantized with the mean as the center (before `--center auto`
// became the quantizer's default); `--center auto|fit` tags its results and files.
const center = (args.center ?? 'mean') as CenterRule;
if (!CENTER_RULES.includes(center)) throw new Error(`--center: ${CENTER_RULES.join(', ')}`);
const quantizeDefaults = (): ReturnType<typeof quantizerDefaults> => ({ ...quantizerDefaults(), center });
/** The reference (and error model, center) as results and file names record them (absent for the curve's). */
const errTag = (errorReference === 'float' ? '' : `-${errorReference}`) + (center === 'mean' ? '' : `-center-${center}`);
const refTag = errTag + (errorModel === 'measured' ? '' : `-${errorModel}`);
const sameSettings = (r: WidthResult) => (r.errorReference ?? 'float') === errorReference && (r.errorModel ?? 'measured') === errorModel && (r.center ?? 'mean') === center;
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
    else if (t === 'wclip') o.weightClip = 'mse';
    else if (t === 'nowclip') o.weightClip = 'minmax';
    else if (t === 'gptq') o.rounding = 'output';
    else if (t === 'nearest') o.rounding = 'nearest';
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

/** A list of images to score on: the images of `list` from `skip` (`limit` of them). */
interface ScoreOn {
  list: string;
  skip: number;
  limit?: number;
}

/** Scores specs for one model on one set, reusing one float engine, one set of frames and statistics. */
async function run(modelName: string, specs: string[], list: string, skip: number, limit?: number): Promise<Result[]> {
  return runOn(modelName, specs, [{ list, skip, ...(limit === undefined ? {} : { limit }) }]);
}

/**
 * Scores specs for one model on several sets: each quantization is made once and scored on every set
 * it has no cached result for; with `weightsDir`, its weight set is written there as `<model>-<spec>.zqw`.
 */
async function runOn(modelName: string, specs: string[], sets: ScoreOn[], weightsDir?: string): Promise<Result[]> {
  const keys = sets.map((s) => dataKey(s.list, s.skip, s.limit));
  const cached = (spec: string, key: string) => cache.find((r) => r.model === modelName && r.spec === spec && r.data === key);
  const zqwOf = (spec: string) => (weightsDir && spec !== 'float' ? path.join(weightsDir, `${modelName}-${spec}.zqw`) : undefined);
  const todo = specs.filter((s) => keys.some((k) => !cached(s, k)) || (zqwOf(s) !== undefined && !existsSync(zqwOf(s)!)));
  const out = cache.filter((r) => r.model === modelName && specs.includes(r.spec) && keys.includes(r.data));
  if (todo.length === 0) return out;
  const model: LoadedDarknet = await loadDarknet(dataPath('models', 'yolo-fastest', `${modelName}.cfg`));
  const scored: ScoredSet[] = [];
  for (const s of sets) {
    const evalSet = await loadEvalSet(s.list);
    scored.push({ images: evalSet.images.slice(s.skip, s.limit === undefined ? undefined : s.skip + s.limit), gt: evalSet.gt });
  }
  let engine: FloatEngine | undefined;
  let frames: Frame[] | undefined;
  let stats: ActivationStats | undefined;
  let calib: ReturnType<typeof readImageList> = [];
  const keep = (res: Result) => {
    log(`${modelName} ${res.spec} on ${res.data}: AP50 ${(100 * res.AP50).toFixed(2)} AP ${(100 * res.AP).toFixed(2)}${res.quantizeSeconds ? ` (quantized in ${res.quantizeSeconds.toFixed(0)} s)` : ''}`);
    const i = out.findIndex((r) => r.spec === res.spec && r.data === res.data);
    if (i >= 0) out.splice(i, 1);
    out.push(res);
    const j = cache.findIndex((r) => r.model === res.model && r.spec === res.spec && r.data === res.data);
    if (j >= 0) cache.splice(j, 1);
    cache.push(res);
    if (cacheFile) writeFileSync(cacheFile, JSON.stringify(cache, null, 1));
  };
  try {
    for (const spec of todo) {
      const opts = parseSpec(spec);
      if (opts === 'float') {
        const fe = await FloatEngine.create(model, { threads });
        for (const [k, set] of scored.entries()) {
          if (cached(spec, keys[k])) continue;
          const s = await scoreEngine(fe, set);
          keep({ model: modelName, spec, data: keys[k], images: set.images.length, AP: s.AP, AP50: s.AP50 });
        }
        await fe.close();
        continue;
      }
      engine ??= await FloatEngine.create(model, { allOutputs: true, threads });
      if (!frames) {
        calib = readImageList(dataPath('coco-val', 'calib.txt')).slice(0, calibImages);
        frames = await loadFrames(calib, model.net);
        stats = await collectStats(engine, model, frames);
      }
      const t0 = performance.now();
      const q = await quantizeModel(model, frames, { ...opts, threads }, undefined, { engine, stats });
      const seconds = (performance.now() - t0) / 1000;
      let n = 0;
      let bits = 0;
      for (const c of q.qnet.convs) if (c) (n += c.q.length), (bits += c.q.length * c.wbits);
      const file = zqwOf(spec);
      if (file) {
        const { writeZqw } = await import('../src/qnet/zqw.js');
        const { createHash } = await import('node:crypto');
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, writeZqw(q.qnet, {
          source: { model: modelName, cfg: `${modelName}.cfg`, weights: `${modelName}.weights`, weightsSha256: createHash('sha256').update(readFileSync(model.weightsPath)).digest('hex') },
          quantization: { wbits: opts.wbits, abits: 8, headAbits: opts.headAbits, perChannel: opts.perChannel, zeroCentered: opts.zeroCenter, biasCorrection: opts.biasCorrection, spec },
          calibration: { ...q.calibration, list: 'calib.txt', imageIds: calib.map((im) => im.id) },
        }));
      }
      // Quantization is deterministic: a cached figure is that of these integers.
      for (const [k, set] of scored.entries()) {
        if (cached(spec, keys[k])) continue;
        const s = await scoreQNet(q.qnet, set, threads);
        keep({ model: modelName, spec, data: keys[k], images: set.images.length, AP: s.AP, AP50: s.AP50, avgBits: bits / n, quantizeSeconds: seconds });
      }
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

interface WidthResult {
  model: string;
  avgBits: number;
  chosen: { minBits: number; avgBits: number; layerBits: number[]; val: { AP: number; AP50: number }; dev: { AP: number; AP50: number }; file: string; id: string };
  candidates: { minBits: number; avgBits: number; error: number; valAP50: number }[];
  seconds: number;
  /** Only when not the default ('float'); results measured otherwise are not reused for it. */
  errorReference?: ErrorReference;
  /** Only when not 'measured'. */
  errorModel?: ErrorModel;
  /** Only when not 'mean'. */
  center?: CenterRule;
}

async function widths(): Promise<void> {
  const { chooseLayerWidths, layerErrors } = await import('../src/retrain/bit-widths.js');
  const { loadFrames: loadFrameSet, readGroundTruth, readImageList: readPaths } = await import('../src/retrain/data.js');
  const { writeZqw, parseZqw } = await import('../src/qnet/zqw.js');
  const { createHash } = await import('node:crypto');
  if (!args.val) throw new Error('--val <list> is required (the validation split)');
  const avgs = args.avg!.split(',').map(Number);
  const uniform = args.uniform!.split(',').map(Number);
  const dev = args.data ?? dataPath('coco-val', 'dev.txt');
  const valList = args.val;
  const sensN = Number(args['sensitivity-images']);
  const weightsDir = args['weights-dir']!;
  mkdirSync(weightsDir, { recursive: true });
  const resultsFile = path.join(weightsDir, '..', 'bit-widths.json');
  const results: WidthResult[] = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as WidthResult[]) : [];
  const d = quantizeDefaults();
  const series: Series[] = [];
  const refs: { label: string; y: number }[] = [];
  const md: string[] = [
    '## Weight widths per layer at an average (`zeroq quantize --avg-bits`)',
    '',
    `Validation split: ${path.basename(valList)} = calib.txt images 559–758 (0-based; the last 200), never used for calibration or training;`,
    `every choice below (the candidate widths, see src/retrain/bit-widths.ts) is made on it. ${path.basename(dev)} is only reported.`,
    `Layer errors: each conv layer alone at 2..7 bits (8-bit formats otherwise), ${errorReference === 'float' ? "growth of the heads' distillation loss" : "the heads' distillation loss against the all-8-bit network's"} on the first ${sensN}`,
    `images of the validation split, ${errorModel === 'measured' ? 'used as measured (the commands fit a model above 4 bits since: avg-bits-check.md)' : 'above 4 bits from the fitted model (src/quant/bit-allocation.ts fittedErrors)'}. Candidates: the least summed error at the average with the narrowest width allowed at each of the`,
    `floors in the last column${args.floors ? ` (${args.floors})` : ''}; the one with the best validation AP50 is kept. Quantizer defaults otherwise (${d.actCalib}, bias correction, equalization, per channel,`,
    `zero-centered), calibration on the first ${calibImages} images of calib.txt; AP50 / AP in percent, integer engine, darknet \`detector valid\`.`,
    `Regenerate: \`npx tsx scripts/bench-accuracy.ts widths --val val.txt --avg ${avgs.join(',')} --uniform ${uniform.join(',')}${args.floors ? ` --floors ${args.floors}` : ''}\`` +
      ` (val.txt: \`tail -n 200 calib.txt\` with absolute paths). Every weight set in the tables is in [weights/](weights/) (score one again: \`zeroq eval <set> --data dev.txt\`).`,
    '',
  ];
  for (const m of models) {
    const model = await loadDarknet(dataPath('models', 'yolo-fastest', `${m}.cfg`));
    const valPaths = await readPaths(valList);
    const gt = await readGroundTruth(path.join(path.dirname(dataPath('coco-val', 'calib.txt')), 'instances.json'));
    const valFrames = await loadFrameSet(model.net, valPaths);
    const sens = await loadFrameSet(model.net, valPaths.slice(0, sensN));
    const calibList = readImageList(dataPath('coco-val', 'calib.txt')).slice(0, calibImages);
    const calib = await loadFrames(calibList, model.net);
    const errFile = args['errors-dir'] ? path.join(args['errors-dir'], `errors-${m}${errTag}.json`) : undefined;
    let measured: Awaited<ReturnType<typeof layerErrors>> | undefined = errFile && existsSync(errFile) ? JSON.parse(readFileSync(errFile, 'utf8')) : undefined;
    if (!measured) {
      const t0 = performance.now();
      const base = await quantizeModel(model, calib, { ...d, wbits: 8, threads });
      measured = layerErrors(base.qnet, base.model, sens, { quant: { ...d, wbits: 8 }, threads, log, reference: errorReference });
      log(`${m}: layer errors in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      if (errFile) writeFileSync(errFile, JSON.stringify(measured));
    }
    const devSet = await loadEvalSet(dev);
    const devScored: ScoredSet = { images: devSet.images, gt: devSet.gt };
    for (const B of avgs) {
      if (results.some((r) => r.model === m && r.avgBits === B && sameSettings(r))) continue;
      const t0 = performance.now();
      // --floors: the narrowest widths tried (those above the average are left out).
      const floors = args.floors?.split(',').map(Number).filter((f) => f <= B);
      const ch = await chooseLayerWidths(model, calib, { quant: { ...d, wbits: 8, threads }, avgBits: B, sensitivity: sens, val: { frames: valFrames, gt }, threads, measured, errorModel, log, ...(floors ? { floors } : {}) });
      const devS = await scoreQNet(ch.result.qnet, devScored, threads);
      const buf = writeZqw(ch.result.qnet, {
        source: { model: m, cfg: `${m}.cfg`, weights: `${m}.weights`, weightsSha256: createHash('sha256').update(readFileSync(model.weightsPath)).digest('hex') },
        quantization: {
          wbits: Math.max(...ch.chosen.layerBits), abits: 8, headAbits: d.headAbits, perChannel: d.perChannel, zeroCentered: d.zeroCenter, biasCorrection: true,
          widths: { method: 'layer sensitivity', errorReference, errorModel, avgBitsTarget: B, minBits: ch.chosen.minBits, sensitivityImages: sensN, validationList: 'calib.txt[559:759]',
            candidates: ch.candidates.map((c) => ({ minBits: c.minBits, avgBits: c.avgBits, error: c.error, validationAP50: c.ap50 })) },
        },
        calibration: { ...ch.result.calibration, list: 'calib.txt', imageIds: calibList.map((im) => im.id) },
      });
      const file = path.join(weightsDir, `${m}-avg${B}${refTag}.zqw`);
      writeFileSync(file, buf);
      results.push({
        model: m, avgBits: B, seconds: (performance.now() - t0) / 1000, ...(errorReference !== 'float' ? { errorReference } : {}), ...(errorModel !== 'measured' ? { errorModel } : {}), ...(center !== 'mean' ? { center } : {}),
        chosen: { minBits: ch.chosen.minBits, avgBits: ch.chosen.avgBits, layerBits: ch.chosen.layerBits, val: { AP: ch.chosen.ap!, AP50: ch.chosen.ap50! }, dev: { AP: devS.AP, AP50: devS.AP50 }, file: path.basename(file), id: parseZqw(buf).manifest.id },
        candidates: ch.candidates.map((c) => ({ minBits: c.minBits, avgBits: c.avgBits, error: c.error, valAP50: c.ap50! })),
      });
      writeFileSync(resultsFile, JSON.stringify(results, null, 1));
      log(`${m} avg ${B}: chose ${ch.chosen.minBits}..8 (${ch.chosen.avgBits.toFixed(3)} bits), val AP50 ${pct(ch.chosen.ap50)}, dev ${pct(devS.AP50)}`);
    }
    // Uniform widths and float on both splits.
    const valKey = { list: dataPath('coco-val', 'calib.txt'), skip: 559 };
    const uspecs = ['float', ...uniform.map((b) => `w${b}`)];
    const both = await runOn(m, uspecs, [{ list: valKey.list, skip: valKey.skip }, { list: dev, skip: 0 }], weightsDir);
    const uv = both.filter((r) => r.data === dataKey(valKey.list, valKey.skip));
    const ud = both.filter((r) => r.data === dataKey(dev, 0));
    const fv = uv.find((r) => r.spec === 'float')!;
    const fd = ud.find((r) => r.spec === 'float')!;
    const mine = results.filter((r) => r.model === m && avgs.includes(r.avgBits) && sameSettings(r)).sort((a, b) => a.avgBits - b.avgBits);
    md.push(`### ${m} (float: validation AP50 ${pct(fv.AP50)}, ${path.basename(dev)} ${pct(fd.AP50)})`, '');
    md.push('| weights | bits per weight | validation AP50 / AP | Δ | dev AP50 / AP | Δ | widths chosen by | weight set |', '|---|---:|---:|---:|---:|---:|---|---|');
    const wlink = (f: string) => `[${f}](${path.relative(path.dirname(args.out!), path.join(weightsDir, f))})`;
    for (const b of uniform) {
      const v = uv.find((r) => r.spec === `w${b}`)!;
      const dv = ud.find((r) => r.spec === `w${b}`)!;
      md.push(`| uniform W${b} | ${b.toFixed(2)} | ${pct(v.AP50)} / ${pct(v.AP)} | ${(100 * (v.AP50 - fv.AP50)).toFixed(2)} | ${pct(dv.AP50)} / ${pct(dv.AP)} | ${(100 * (dv.AP50 - fd.AP50)).toFixed(2)} | none (one width) | ${wlink(`${m}-w${b}.zqw`)} |`);
    }
    for (const r of mine) {
      const hist = new Map<number, number>();
      r.chosen.layerBits.forEach((b) => b && hist.set(b, (hist.get(b) ?? 0) + 1));
      const spread = [...hist].sort((a, b) => a[0] - b[0]).map(([b, n]) => `${n}×${b}`).join(' ');
      md.push(`| --avg-bits ${r.avgBits} (${spread}) | ${r.chosen.avgBits.toFixed(2)} | ${pct(r.chosen.val.AP50)} / ${pct(r.chosen.val.AP)} | ${(100 * (r.chosen.val.AP50 - fv.AP50)).toFixed(2)} | ${pct(r.chosen.dev.AP50)} / ${pct(r.chosen.dev.AP)} | ${(100 * (r.chosen.dev.AP50 - fd.AP50)).toFixed(2)} | validation split: best of ${r.candidates.map((c) => `${c.minBits}..8 ${pct(c.valAP50)}`).join(', ')} | ${wlink(r.chosen.file)} |`);
    }
    md.push('');
    refs.push({ label: `${m} float (dev)`, y: 100 * fd.AP50 });
    const short = m.replace('yolo-fastest-', '');
    series.push({ label: `${short} uniform (dev)`, dashed: true, points: uniform.map((b) => ({ x: b, y: 100 * ud.find((r) => r.spec === `w${b}`)!.AP50 })) });
    series.push({ label: `${short} per layer (dev)`, points: mine.map((r) => ({ x: r.chosen.avgBits, y: 100 * r.chosen.dev.AP50 })) });
  }
  md.push(`![AP50 on dev against average bits per weight](${path.relative(path.dirname(args.out!), args.svg!)})`, '');
  writeFileSync(args.out!, md.join('\n'));
  writeFileSync(args.svg!, lineChartSvg(`AP50 on ${path.basename(dev)} against average bits per weight`, 'bits per weight', 'AP50 (%)', series, refs));
  process.stdout.write(md.join('\n'));
}

if (mode === 'compare') await compare();
else if (mode === 'widths') await widths();
else if (mode === 'sweep') await sweep();
else throw new Error(`unknown mode ${mode} (sweep, compare)`);
