import type { Command } from 'commander';
import type { CocoEvaluation, CocoResult } from '../eval/coco.js';
import type { DecodeOptions } from '../detect/types.js';
import { addEngineOptions, engineChoice } from '../cli/engine-options.js';
import { choice, opt, parse, UsageError } from '../cli/options.js';
import { ZeroqError } from '../util/errors.js';

interface EvalFlags {
  results?: string;
  annotations?: string;
  data?: string;
  engine?: string;
  limit?: number;
  threshold: number;
  nms: number;
  nmsKind?: DecodeOptions['nmsKind'];
  maxDets: number;
  saveResults?: string;
  json?: boolean;
  perClass?: boolean;
  [flag: string]: unknown;
}


const pct = (v: number) => (v < 0 ? '   -' : (v * 100).toFixed(2).padStart(6));
/** -1 (nothing to score, e.g. no small objects) becomes null in JSON. */
const fig = (v: number) => (v < 0 ? null : v);

function figures(ev: CocoEvaluation, perClass: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { images: ev.images, detections: ev.detections };
  for (const [k, v] of Object.entries(ev.stats)) out[k] = fig(v);
  if (perClass) {
    out.per_class = ev.perClass.map((c) => ({
      category_id: c.categoryId,
      name: c.name,
      gt: c.gt,
      detections: c.detections,
      AP: fig(c.AP),
      AP50: fig(c.AP50),
      AR100: fig(c.AR100),
    }));
  }
  return out;
}

function perClassTable(ev: CocoEvaluation): string {
  const rows = ['per class (percent, all areas, maxDets 100):', `${'category'.padEnd(16)} ${'gt'.padStart(5)} ${'dets'.padStart(6)} ${'AP'.padStart(6)} ${'AP50'.padStart(6)} ${'AR100'.padStart(6)}`];
  for (const c of ev.perClass) {
    rows.push(`${c.name.padEnd(16)} ${String(c.gt).padStart(5)} ${String(c.detections).padStart(6)} ${pct(c.AP)} ${pct(c.AP50)} ${pct(c.AR100)}`);
  }
  return rows.join('\n') + '\n';
}

async function readResults(file: string): Promise<unknown[]> {
  const { readFile } = await import('node:fs/promises');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ZeroqError('results-read', `cannot read results: ${(err as Error).message}`, file, { cause: err });
  }
  if (!Array.isArray(json)) throw new ZeroqError('results-format', 'a COCO results file is a JSON array of detections', file);
  return json;
}

async function saveResults(file: string, results: CocoResult[]): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  const body = results.map((r) => JSON.stringify(r)).join(',\n');
  await writeFile(file, `[\n${body}\n]\n`);
}

/** Scores an existing COCO results file. */
async function scoreResults(flags: EvalFlags): Promise<void> {
  const { evaluateCoco, formatSummary } = await import('../eval/coco.js');
  const { loadEvalSet, readInstances } = await import('../eval/dataset.js');
  const resultsFile = flags.results!;
  let gt;
  let imageIds: number[] | undefined;
  let gtSource: string;
  if (flags.data) {
    const set = await loadEvalSet(flags.data, { annotations: flags.annotations, limit: flags.limit });
    gt = set.gt;
    imageIds = set.images.map((im) => im.id);
    gtSource = set.gtSource;
  } else {
    if (!flags.annotations) throw new UsageError('scoring a results file needs --annotations <instances.json> (or --data <list>)', 'eval');
    gt = await readInstances(flags.annotations);
    gtSource = flags.annotations;
  }
  const ev = evaluateCoco(gt, await readResults(resultsFile), { imageIds, resultsName: resultsFile });
  if (flags.json) {
    process.stdout.write(JSON.stringify({ results: resultsFile, annotations: gtSource, ...figures(ev, !!flags.perClass) }) + '\n');
    return;
  }
  let out = `${resultsFile}: ${ev.images} images, ${ev.detections} detections scored against ${gtSource}`;
  if (ev.droppedOtherImages) out += ` (${ev.droppedOtherImages} on other images left out)`;
  if (ev.droppedUnknownCategory) out += ` (${ev.droppedUnknownCategory} of categories not in the ground truth left out)`;
  out += '; fractions, as pycocotools prints them\n' + formatSummary(ev);
  if (flags.perClass) out += perClassTable(ev);
  process.stdout.write(out);
}

/** Runs a model over a list, then scores it. */
async function runAndScore(model: string, flags: EvalFlags): Promise<void> {
  if (!flags.data) throw new UsageError('running a model needs --data <list.txt>', 'eval');
  const { module, options } = engineChoice(model, flags);
  const kind = module.kind;
  const threads = (options.threads ??= 1);
  const decode: DecodeOptions = {
    threshold: flags.threshold,
    nms: flags.nms,
    nmsKind: flags.nmsKind,
    maxDetections: flags.maxDets,
  };
  const limit = flags.limit;

  const { evaluateCoco, formatSummary } = await import('../eval/coco.js');
  const { loadEvalSet } = await import('../eval/dataset.js');
  const { runModel, median } = await import('../eval/run-model.js');
  const engine = await module.open(model, options);
  let run;
  let set;
  let link: import('../engine/engine.js').EngineLinkStatus | undefined;
  try {
    const head = engine.net.layers[engine.net.heads[0]];
    set = await loadEvalSet(flags.data, { annotations: flags.annotations, limit, classes: head?.kind === 'yolo' ? head.classes : undefined });
    const { progress } = await import('../cli/progress.js');
    const p = progress('eval');
    p.phase('running the model', set.images.length, 'images');
    try {
      run = await runModel(engine, set.images, { decode, onImage: (done) => p.update(done) });
    } finally {
      p.stop();
    }
    link = engine.link?.();
  } finally {
    await engine.close();
  }
  if (flags.saveResults) await saveResults(flags.saveResults, run.results);
  const ev = evaluateCoco(set.gt, run.results, { imageIds: set.images.map((im) => im.id) });
  const ms = median(run.msPerImage);
  if (flags.json) {
    process.stdout.write(
      JSON.stringify({
        engine: kind,
        model: engine.modelId,
        modelFile: model,
        data: flags.data,
        annotations: set.gtSource,
        threads,
        decode,
        ms_per_image: Number(ms.toFixed(3)),
        ms_per_image_stat: 'median of network + decode/NMS per image',
        wall_s: Number((run.wallMs / 1000).toFixed(3)),
        ...(link ? { link } : {}),
        ...figures(ev, !!flags.perClass),
      }) + '\n',
    );
    return;
  }
  let out = `${engine.modelId} (${kind}, ${threads} thread${threads > 1 ? 's' : ''}) on ${set.images.length} images of ${flags.data}\n`;
  out += `ground truth: ${set.gtSource}${set.missingLabels ? ` (${set.missingLabels} images without a label file)` : ''}; ${ev.detections} detections\n`;
  out += `time: ${ms.toFixed(2)} ms per image (median, network + decode/NMS), ${(run.wallMs / 1000).toFixed(2)} s wall\n`;
  if (link) {
    out += `link ${link.device}: ${link.state}; ${link.deviceFrames} images on the device, ${link.fallbackFrames} on the CPU; ${link.retries} retries, ${link.crcErrors} CRC errors, ${link.resyncs} resyncs\n`;
  }
  out += 'COCO bbox figures (fractions, as pycocotools prints them):\n';
  out += formatSummary(ev);
  if (flags.perClass) out += perClassTable(ev);
  process.stdout.write(out);
}

/** `zeroq eval`: COCO bbox mAP of a results file, or of a model run over an image list. */
export function register(program: Command): void {
  const cmd = program
    .command('eval [model]')
    .description('COCO bbox evaluation (as pycocotools): score a results file, or run a model over an image list and score it')
    .option('--results <file>', 'COCO results JSON to score (instead of running a model)')
    .option('--annotations <file>', 'ground truth instances.json (default: the one beside the --data list, else darknet labels)')
    .option('--data <list>', 'image list, one path per line relative to the list (limits scoring to these images)')
    .addOption(opt('--limit <n>', 'only the first n images of the list', parse.positiveInt))
    .addOption(opt('--threshold <p>', 'keep detections above this probability', parse.fraction, 0.001))
    .addOption(opt('--nms <iou>', 'NMS threshold', parse.fraction, 0.6))
    .addOption(choice('--nms-kind <kind>', "NMS kind (default: the cfg's)", ['default', 'greedynms', 'diounms']))
    .addOption(opt('--max-dets <n>', 'best detections kept per image', parse.positiveInt, 100))
    .option('--save-results <file>', 'write the detections as a COCO results file')
    .option('--json', 'one JSON object on stdout (figures as fractions)')
    .option('--per-class', 'add AP, AP50 and AR100 per category')
    .addHelpText(
      'after',
      '\nWithout --json the summary is printed as pycocotools prints it (fractions, three decimals).\n' +
        'Examples:\n' +
        '  zeroq eval --results dets.json --annotations coco-val/instances.json --data coco-val/dev.txt\n' +
        '  zeroq eval models/yolo-fastest/yolo-fastest-1.1.cfg --data coco-val/dev.txt --json',
    );
  addEngineOptions(cmd, { threads: 1 });
  cmd.action(async (model: string | undefined, flags: EvalFlags) => {
      if (flags.results) {
        if (model) throw new UsageError('give either a model or --results, not both', 'eval');
        await scoreResults(flags);
      } else if (model) {
        await runAndScore(model, flags);
      } else {
        throw new UsageError('nothing to evaluate: give a model (with --data) or --results (with --annotations)', 'eval');
      }
    });
}
