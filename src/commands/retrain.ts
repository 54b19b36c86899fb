import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { ZeroqError } from '../util/errors.js';
import type { RetrainArgs } from '../retrain/run.js';
import type { ActCalibMethod } from '../quant/calibrate.js';
import { recipeFor } from '../retrain/recipes.js';

export interface RetrainFlags {
  wbits?: string;
  avgBits?: string;
  sensitivityImages?: string;
  weightClip?: string;
  rounding?: string;
  crop?: string;
  abits: string;
  data?: string;
  val?: string;
  gt?: string;
  weights?: string;
  iterations?: string;
  epochs?: string;
  schedule?: string;
  labels?: boolean;
  featureWeight?: string;
  labelWeight: string;
  budgetMinutes?: string;
  seed: string;
  resume?: boolean;
  checkpoint?: string;
  batch: string;
  lr?: string;
  lrUnit: string;
  lrDecay?: string;
  flip?: boolean;
  distill: string;
  perLayer?: boolean;
  zeroCenter: boolean;
  headAbits: string;
  actCalib: string;
  percentile: string;
  biasCorrection: boolean;
  equalize: boolean;
  alignWeights?: boolean;
  searchObjective: string;
  calibImages: string;
  keepIterations?: boolean;
  keepBest?: boolean;
  threads: string;
  maxSteps?: string;
  output?: string;
  json?: boolean;
}

function num(value: string, flag: string, ok: (v: number) => boolean, what: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v) || !ok(v)) throw new ZeroqError('bad-option', `"${value}" is not ${what}`, flag);
  return v;
}
const posInt = (v: string, f: string) => num(v, f, (x) => Number.isInteger(x) && x > 0, 'a positive integer');
const width = (v: string, f: string) => num(v, f, (x) => Number.isInteger(x) && x >= 2 && x <= 8, 'a weight width from 2 to 8');

function lrUnit(v: string): 'absolute' | 'step' {
  if (v !== 'absolute' && v !== 'step') throw new ZeroqError('bad-option', `"${v}" is not a learning-rate unit (absolute, step)`, '--lr-unit');
  return v;
}

function distillWeighting(v: string): 'objectness' | 'uniform' {
  if (v !== 'objectness' && v !== 'uniform') throw new ZeroqError('bad-option', `"${v}" is not a distillation weighting (objectness, uniform)`, '--distill');
  return v;
}

/** Checks the flags and turns them into the run's arguments (no file is read but for existence). */
export function parseRetrainFlags(cfg: string, o: RetrainFlags): RetrainArgs {
  if (!existsSync(cfg)) throw new ZeroqError('bad-option', 'no such cfg file', cfg);
  if (!o.data) throw new ZeroqError('bad-option', 'give the training image list (--data list.txt)', '--data');
  if (!existsSync(o.data)) throw new ZeroqError('bad-option', 'no such image list', o.data);
  if (o.val && !existsSync(o.val)) throw new ZeroqError('bad-option', 'no such image list', o.val);
  if (o.keepBest && !o.val) throw new ZeroqError('bad-option', 'choosing the best iteration needs a validation list (--val)', '--keep-best');
  if (!o.output) throw new ZeroqError('bad-option', 'give the output weight set (-o out.zqw)', '--output');
  if (o.abits !== '8') throw new ZeroqError('bad-option', `activation width ${o.abits} is not supported (8)`, '--abits');
  let schedule: number[];
  let avgBits: number | undefined;
  if (o.avgBits !== undefined) {
    avgBits = num(o.avgBits, '--avg-bits', (x) => x >= 2 && x <= 8, 'an average width from 2 to 8');
    if (o.wbits !== undefined || o.schedule !== undefined) throw new ZeroqError('bad-option', '--avg-bits chooses the widths: give it without --wbits and --schedule', '--avg-bits');
    if (o.perLayer) throw new ZeroqError('bad-option', '--avg-bits needs per-channel formats', '--per-layer');
    // Every conv layer gets its own width; the run's nominal width is the widest allowed.
    schedule = [8];
  } else if (o.schedule !== undefined) {
    schedule = o.schedule.split(',').map((s) => width(s.trim(), '--schedule'));
    if (o.wbits !== undefined && Number(o.wbits) !== schedule[schedule.length - 1]) {
      throw new ZeroqError('bad-option', `--wbits ${o.wbits} disagrees with the last width of --schedule ${o.schedule}`, '--wbits');
    }
    for (let i = 1; i < schedule.length; i++) {
      if (schedule[i] > schedule[i - 1]) throw new ZeroqError('bad-option', 'the schedule must not widen', '--schedule');
    }
  } else {
    if (o.wbits === undefined) throw new ZeroqError('bad-option', 'give the weight width (--wbits N), a schedule or an average (--avg-bits B)', '--wbits');
    schedule = [width(o.wbits, '--wbits')];
  }
  // Settings not given take the recipe of the (narrowest) width.
  const recipe = recipeFor(avgBits !== undefined ? Math.floor(avgBits) : schedule[schedule.length - 1]);
  const iterations = o.iterations !== undefined ? posInt(o.iterations, '--iterations') : Math.max(recipe.iterations, schedule.length);
  if (iterations < schedule.length) {
    throw new ZeroqError('bad-option', `${iterations} iterations cannot run the ${schedule.length} widths of the schedule`, '--iterations');
  }
  const headBits = num(o.headAbits, '--head-abits', (x) => x === 8 || x === 16, '8 or 16') as 8 | 16;
  if (!['minmax', 'percentile', 'search'].includes(o.actCalib)) {
    throw new ZeroqError('bad-option', `"${o.actCalib}" is not an activation calibration (minmax, percentile, search)`, '--act-calib');
  }
  if (o.searchObjective !== 'exact' && o.searchObjective !== 'float') {
    throw new ZeroqError('bad-option', `"${o.searchObjective}" is not a search objective (exact, float)`, '--search-objective');
  }
  const percentile = num(o.percentile, '--percentile', (x) => x > 0 && x <= 100, 'a percentile in (0, 100]');
  if (o.weightClip !== undefined && o.weightClip !== 'minmax' && o.weightClip !== 'mse') {
    throw new ZeroqError('bad-option', `"${o.weightClip}" is not a weight-clip rule (minmax, mse)`, '--weight-clip');
  }
  const weightClip = (o.weightClip ?? recipe.weightClip) as 'minmax' | 'mse';
  if (o.rounding !== undefined && o.rounding !== 'nearest' && o.rounding !== 'output') {
    throw new ZeroqError('bad-option', `"${o.rounding}" is not a rounding (nearest, output)`, '--rounding');
  }
  const rounding = (o.rounding ?? (o.actCalib === 'search' ? recipe.rounding : 'nearest')) as 'nearest' | 'output';
  if (rounding === 'output' && o.actCalib !== 'search') throw new ZeroqError('bad-option', 'rounding for the output error needs --act-calib search', '--rounding');
  const alignWeights = o.alignWeights ?? recipe.alignWeights;
  const budget = o.budgetMinutes !== undefined ? num(o.budgetMinutes, '--budget-minutes', (x) => x > 0, 'a positive number of minutes') : 0;
  return {
    cfg,
    weights: o.weights,
    data: o.data,
    val: o.val,
    gt: o.gt,
    out: o.output,
    checkpoint: o.checkpoint,
    resume: o.resume ?? false,
    calibImages: posInt(o.calibImages, '--calib-images'),
    keepIterations: o.keepIterations ?? false,
    keepBest: o.keepBest ?? false,
    ...(avgBits !== undefined ? { avgBits, sensitivityImages: posInt(o.sensitivityImages ?? '32', '--sensitivity-images') } : {}),
    train: {
      quant: {
        abits: 8, headBits, perChannel: !o.perLayer, zeroCentered: o.zeroCenter, actCalib: o.actCalib as ActCalibMethod, percentile,
        biasCorrection: o.biasCorrection, equalize: o.equalize && !o.perLayer,
        ...(alignWeights && !o.perLayer ? { alignWeights: true } : {}), searchObjective: o.searchObjective as 'exact' | 'float',
        ...(weightClip === 'mse' ? { weightClip } : {}),
        ...(rounding === 'output' ? { rounding } : {}),
      },
      schedule,
      iterations,
      epochs: o.epochs !== undefined ? posInt(o.epochs, '--epochs') : recipe.epochs,
      batch: posInt(o.batch, '--batch'),
      lr: o.lr !== undefined ? num(o.lr, '--lr', (x) => x > 0 && x < 1, 'a learning rate in (0, 1)') : recipe.lr,
      lrUnit: lrUnit(o.lrUnit),
      lrDecay: o.lrDecay !== undefined ? num(o.lrDecay, '--lr-decay', (x) => x > 0 && x <= 1, 'a factor in (0, 1]') : recipe.lrDecay,
      flip: o.flip ?? recipe.flip,
      ...(() => {
        const crop = o.crop !== undefined ? num(o.crop, '--crop', (x) => x > 0 && x <= 1, 'a fraction in (0, 1]') : recipe.crop;
        return crop < 1 ? { crop } : {};
      })(),
      distill: distillWeighting(o.distill),
      seed: num(o.seed, '--seed', (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer'),
      threads: posInt(o.threads, '--threads'),
      labelWeight: o.labels ? num(o.labelWeight, '--label-weight', (x) => x > 0, 'a positive number') : 0,
      featureWeight: o.featureWeight !== undefined ? num(o.featureWeight, '--feature-weight', (x) => x >= 0, 'a non-negative number') : recipe.featureWeight,
      budgetMs: budget * 60_000,
      maxStepsPerEpoch: o.maxSteps !== undefined ? posInt(o.maxSteps, '--max-steps') : 0,
    },
  };
}

export function register(program: Command): void {
  program
    .command('retrain')
    .description('Iterative quantization-aware retraining of a darknet model into a fixed-point weight set')
    .argument('<cfg>', 'darknet cfg (weights: the same path with .weights, or --weights)')
    .option('--weights <file>', 'darknet .weights file')
    .option('--wbits <n>', 'weight width of the result (2..8); settings not given take the values measured best for it (docs/retraining.md)')
    .option('--avg-bits <b>', 'instead of --wbits: a width per conv layer (2..8) at this average bits per weight, chosen from measured per-layer sensitivity (as zeroq quantize --avg-bits; with --val, on it)')
    .option('--sensitivity-images <n>', 'with --avg-bits: images the layer errors are measured on (the first of --val, else of --data)', '32')
    .option('--abits <n>', 'activation width', '8')
    .requiredOption('--data <list>', 'training images, one path per line (labels not needed)')
    .option('--val <list>', 'validation images for a per-iteration AP (disjoint from training and evaluation images)')
    .option('--gt <instances.json>', 'COCO ground truth of the validation images (default: instances.json beside --val)')
    .option('--iterations <k>', 'quantize-then-fine-tune iterations (default: per width, at least the schedule length)')
    .option('--epochs <e>', 'epochs per iteration (default: per width)')
    .option('--schedule <widths>', 'weight width per iteration, narrowing, e.g. 8,6,5,4')
    .option('--labels', 'add the YOLO loss against darknet labels (images/x.jpg -> labels/x.txt)')
    .option('--label-weight <w>', 'weight of the label loss', '1')
    .option('--budget-minutes <m>', 'stop after this much training time (a checkpoint and the weight set are written)')
    .option('--seed <s>', 'random seed (shuffling, calibration sampling)', '1')
    .option('--resume', 'continue from the checkpoint')
    .option('--checkpoint <file>', 'checkpoint file (default: <output>.ckpt.json)')
    .option('--batch <n>', 'images per step', '8')
    .option('--lr <rate>', 'Adam learning rate of the first iteration (default: per width)')
    .option('--lr-decay <f>', 'factor on the learning rate at each next iteration (1: constant; default: per width)')
    .option('--flip', 'mirror each training image left-right with probability 1/2 at every step (default: per width)')
    .option('--no-flip', 'do not mirror training images')
    .option('--crop <f>', 'random crops: each training image at every step is a window of [f, 1] of its width and height, scaled back (1: none; default: per width)')
    .option('--lr-unit <unit>', 'absolute, or step: the learning rate in units of each channel\'s quantization step', 'absolute')
    .option('--feature-weight <w>', 'also distil the inner conv layers\' outputs (relative squared error to the float model\'s, summed over layers) with this weight; 0: heads only (default: per width)')
    .option('--distill <weighting>', 'objectness: class and x, y terms weighted by the teacher\'s objectness; uniform: every position alike', 'objectness')
    .option('--per-layer', 'one weight format per layer instead of per output channel')
    .option('--no-zero-center', 'plain fixed point (mu = 0), the baseline zero-centering is compared with')
    .option('--head-abits <n>', 'width of the tensors feeding the yolo heads (8 or 16)', '16')
    .option('--act-calib <method>', 'activation fraction bits by minmax, percentile or search (as zeroq quantize)', 'search')
    .option('--percentile <p>', 'for --act-calib percentile: the percentile of |x| kept unclipped', '99.99')
    .option('--no-bias-correction', 'keep the shadow biases at each iteration start (default: the quantizer corrects them)')
    .option('--no-equalize', 'do not equalize activation ranges before the first iteration')
    .option('--align-weights', 'before the first iteration, rescale conv pairs so each channel\'s weights span the top of their power-of-two grid (as zeroq quantize; default: per width)')
    .option('--no-align-weights', 'do not align the weight grid')
    .option('--rounding <how>', 'weights to their nearest grid point (nearest) or for the least error of each layer\'s output (output), as zeroq quantize (default: per width)')
    .option('--weight-clip <rule>', 'weight fraction bits: minmax (nothing clipped) or mse (least squared error, clipping), as zeroq quantize (default: per width)')
    .option('--search-objective <what>', 'search: judge formats by the error they add (exact) or against the float model', 'exact')
    .option('--calib-images <n>', 'the first n training images calibrate the formats at each iteration (as zeroq quantize)', '32')
    .option('--keep-best', 'with --val: write the iteration with the best validation AP50 as the output, not the last one')
    .option('--keep-iterations', 'also write the weight set of every iteration (<output>.it<k>.zqw; it0: the quantizer\'s, before retraining)')
    .option('--threads <n>', 'threads of the training core', '2')
    .option('--max-steps <n>', 'at most this many steps per epoch')
    .option('-o, --output <file>', 'the weight set to write (.zqw)')
    .option('--json', 'print the report as JSON on stdout')
    .action(async (cfg: string, flags: RetrainFlags) => {
      const args = parseRetrainFlags(cfg, flags);
      const { runRetrain } = await import('../retrain/run.js');
      const { progressReporter } = await import('../retrain/progress.js');
      const progress = progressReporter();
      const report = await runRetrain({ ...args, ...progress, log: (m) => progress.log(m) }).finally(() => progress.stop());
      if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        if (report.quantized) {
          process.stdout.write(`quantized only  AP ${(report.quantized.ap * 100).toFixed(2)}  AP50 ${(report.quantized.ap50 * 100).toFixed(2)}\n`);
        }
        for (const r of report.history) {
          const ap = r.ap50 !== undefined ? `  AP ${(r.ap! * 100).toFixed(2)}  AP50 ${(r.ap50 * 100).toFixed(2)}` : '';
          process.stdout.write(`iteration ${r.iteration + 1}  W${r.wbits}  loss ${r.meanLoss.toFixed(3)}  ${(r.elapsedMs / 60000).toFixed(1)} min${ap}\n`);
        }
        const which = report.bestIteration !== undefined ? ` (iteration ${report.bestIteration + 1}, the best on --val)` : '';
        process.stdout.write(`${report.stoppedByBudget ? 'stopped by the time budget; ' : ''}wrote ${report.out}${which}\n`);
      }
    });
}
