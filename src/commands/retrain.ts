import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { ZeroqError } from '../util/errors.js';
import type { RetrainArgs } from '../retrain/run.js';
import type { ActCalibMethod } from '../quant/calibrate.js';
import { recipeFor } from '../retrain/recipes.js';
import { centerAt, CENTER_RULES, type CenterRule } from '../quant/weights.js';
import { ROUNDING_TARGET_RULES, type RoundingTargetRule } from '../quant/float-target.js';
import { choice, intIn, MAX_THREADS, numberIn, opt, parse, required, UsageError } from '../cli/options.js';

/** The flags as commander parsed them (numbers and choices checked already); unset ones take the width's recipe. */
export interface RetrainFlags {
  wbits?: number;
  avgBits?: number;
  sensitivityImages?: number;
  weightClip?: 'minmax' | 'mse';
  center?: CenterRule;
  rounding?: 'nearest' | 'output';
  roundingTarget?: RoundingTargetRule;
  crop?: number;
  mix?: number;
  abits: number;
  data?: string;
  val?: string;
  gt?: string;
  weights?: string;
  teacher?: string;
  teacherWeights?: string;
  iterations?: number;
  epochs?: number;
  schedule?: number[];
  labels?: boolean;
  featureWeight?: number;
  labelWeight: number;
  budgetMinutes?: number;
  seed: number;
  resume?: boolean;
  checkpoint?: string;
  batch: number;
  lr?: number;
  lrUnit: 'absolute' | 'step';
  lrDecay?: number;
  flip?: boolean;
  keepFormats?: boolean;
  averageDecay?: number;
  freezeOscillations?: number;
  distill: 'objectness' | 'uniform';
  perLayer?: boolean;
  zeroCenter: boolean;
  headAbits: 8 | 16;
  actCalib: ActCalibMethod;
  percentile: number;
  biasCorrection: boolean;
  equalize: boolean;
  alignWeights?: boolean;
  searchObjective: 'exact' | 'float';
  calibImages: number;
  keepIterations?: boolean;
  keepBest?: boolean;
  threads: number;
  maxSteps?: number;
  output?: string;
  json?: boolean;
}

/** Checks what no single flag can (files exist, flags that go together) and turns the flags into the run's arguments. */
export function parseRetrainFlags(cfg: string, o: RetrainFlags): RetrainArgs {
  if (!existsSync(cfg)) throw new ZeroqError('bad-option', 'no such cfg file', cfg);
  if (!o.data) throw new UsageError('give the training image list (--data list.txt)', 'retrain');
  if (!existsSync(o.data)) throw new ZeroqError('bad-option', 'no such image list', o.data);
  if (o.val && !existsSync(o.val)) throw new ZeroqError('bad-option', 'no such image list', o.val);
  if (o.keepBest && !o.val) throw new UsageError('choosing the best iteration (--keep-best) needs a validation list (--val)', 'retrain');
  if (!o.output) throw new UsageError('give the output weight set (-o out.zqw)', 'retrain');
  let schedule: number[];
  const avgBits = o.avgBits;
  if (avgBits !== undefined) {
    if (o.wbits !== undefined || o.schedule !== undefined) throw new UsageError('--avg-bits chooses the widths: give it without --wbits and --schedule', 'retrain');
    if (o.perLayer) throw new UsageError('--avg-bits needs per-channel formats (not --per-layer)', 'retrain');
    // Every conv layer gets its own width; the run's nominal width is the widest allowed.
    schedule = [8];
  } else if (o.schedule !== undefined) {
    schedule = o.schedule;
    if (o.wbits !== undefined && o.wbits !== schedule[schedule.length - 1]) {
      throw new UsageError(`--wbits ${o.wbits} disagrees with the last width of --schedule ${schedule.join(',')}`, 'retrain');
    }
    for (let i = 1; i < schedule.length; i++) {
      if (schedule[i] > schedule[i - 1]) throw new UsageError(`--schedule ${schedule.join(',')}: the schedule must not widen`, 'retrain');
    }
  } else {
    if (o.wbits === undefined) throw new UsageError('give the weight width (--wbits N), a schedule (--schedule) or an average (--avg-bits B)', 'retrain');
    schedule = [o.wbits];
  }
  // Settings not given take the recipe of the (narrowest) width.
  const recipe = recipeFor(avgBits !== undefined ? Math.floor(avgBits) : schedule[schedule.length - 1]);
  const iterations = o.iterations ?? Math.max(recipe.iterations, schedule.length);
  if (iterations < schedule.length) {
    throw new UsageError(`--iterations ${iterations} cannot run the ${schedule.length} widths of the schedule`, 'retrain');
  }
  const weightClip = (o.weightClip ?? recipe.weightClip) as 'minmax' | 'mse';
  const center = o.center ?? recipe.center;
  // Recorded only where it moves a center, so that checkpoints made before the option still resume.
  const centerMoves = avgBits !== undefined || schedule.some((b) => centerAt(center, b) === 'fit');
  const rounding = (o.rounding ?? (o.actCalib === 'search' ? recipe.rounding : 'nearest')) as 'nearest' | 'output';
  if (rounding === 'output' && o.actCalib !== 'search') throw new UsageError('--rounding output (the least output error) needs --act-calib search', 'retrain');
  if (o.roundingTarget && rounding !== 'output') throw new UsageError('--rounding-target chooses the error of --rounding output: not with rounding to nearest', 'retrain');
  const alignWeights = o.alignWeights ?? recipe.alignWeights;
  const crop = o.crop ?? recipe.crop;
  const mix = o.mix ?? recipe.mix;
  if (o.teacher && !existsSync(o.teacher)) throw new ZeroqError('bad-option', 'no such cfg file', o.teacher);
  if (o.teacherWeights && !o.teacher) throw new UsageError('--teacher-weights goes with --teacher', 'retrain');
  if (mix > 0 && o.labels) throw new UsageError('--mix blends frames, which have no labels: not with --labels', 'retrain');
  return {
    cfg,
    weights: o.weights,
    data: o.data,
    val: o.val,
    gt: o.gt,
    out: o.output,
    checkpoint: o.checkpoint,
    resume: o.resume ?? false,
    calibImages: o.calibImages,
    keepIterations: o.keepIterations ?? false,
    keepBest: o.keepBest ?? false,
    ...(o.teacher ? { teacher: { cfg: o.teacher, ...(o.teacherWeights ? { weights: o.teacherWeights } : {}) } } : {}),
    ...(avgBits !== undefined ? { avgBits, sensitivityImages: o.sensitivityImages ?? 32 } : {}),
    train: {
      quant: {
        abits: 8, headBits: o.headAbits, perChannel: !o.perLayer, zeroCentered: o.zeroCenter, actCalib: o.actCalib, percentile: o.percentile,
        biasCorrection: o.biasCorrection, equalize: o.equalize && !o.perLayer,
        ...(alignWeights && !o.perLayer ? { alignWeights: true } : {}), searchObjective: o.searchObjective,
        ...(weightClip === 'mse' ? { weightClip } : {}),
        ...(centerMoves && center !== 'mean' ? { center } : {}),
        ...(rounding === 'output' ? { rounding } : {}),
        ...(o.roundingTarget ? { roundingTarget: o.roundingTarget } : {}),
      },
      schedule,
      iterations,
      epochs: o.epochs ?? recipe.epochs,
      batch: o.batch,
      lr: o.lr ?? recipe.lr,
      lrUnit: o.lrUnit,
      lrDecay: o.lrDecay ?? recipe.lrDecay,
      flip: o.flip ?? recipe.flip,
      ...((o.keepFormats ?? recipe.keepFormats) ? { keepFormats: true } : {}),
      ...(o.averageDecay ? { averageDecay: o.averageDecay } : {}),
      ...(o.freezeOscillations !== undefined ? { freezeOscillations: o.freezeOscillations } : {}),
      ...(crop < 1 ? { crop } : {}),
      ...(mix > 0 ? { mix } : {}),
      distill: o.distill,
      seed: o.seed,
      threads: o.threads,
      labelWeight: o.labels ? o.labelWeight : 0,
      featureWeight: o.featureWeight ?? recipe.featureWeight,
      budgetMs: (o.budgetMinutes ?? 0) * 60_000,
      maxStepsPerEpoch: o.maxSteps ?? 0,
    },
  };
}

export function register(program: Command): void {
  program
    .command('retrain')
    .description('Iterative quantization-aware retraining of a darknet model into a fixed-point weight set')
    .argument('<cfg>', 'darknet cfg (weights: the same path with .weights, or --weights)')
    .option('--weights <file>', 'darknet .weights file')
    .addOption(opt('--wbits <n>', 'weight width of the result (2..8); settings not given take the values measured best for it (docs/retraining.md)', parse.weightBits))
    .addOption(
      opt('--avg-bits <b>', 'instead of --wbits: a width per conv layer (2..8) at this average bits per weight, chosen from measured per-layer sensitivity (as zeroq quantize --avg-bits; with --val, on it)', numberIn(2, 8)),
    )
    .addOption(opt('--sensitivity-images <n>', 'with --avg-bits: images the layer errors are measured on (the first of --val, else of --data)', parse.positiveInt, 32))
    .option('--teacher <cfg>', 'distil the heads towards this darknet network\'s float outputs instead of the model\'s own (same input, heads, anchors and classes; e.g. a larger sibling); inner layers still follow the model\'s own')
    .option('--teacher-weights <file>', 'the --teacher network\'s .weights (default: beside its cfg)')
    .addOption(opt('--abits <n>', 'activation width (8)', intIn(8, 8), 8))
    .addOption(required('--data <list>', 'training images, one path per line (labels not needed)'))
    .option('--val <list>', 'validation images for a per-iteration AP (disjoint from training and evaluation images)')
    .option('--gt <instances.json>', 'COCO ground truth of the validation images (default: instances.json beside --val)')
    .addOption(opt('--iterations <k>', 'quantize-then-fine-tune iterations (default: per width, at least the schedule length)', parse.positiveInt))
    .addOption(opt('--epochs <e>', 'epochs per iteration (default: per width)', parse.positiveInt))
    .addOption(opt('--schedule <widths>', 'weight width per iteration, narrowing, e.g. 8,6,5,4', parse.weightBitsList))
    .option('--labels', 'add the YOLO loss against darknet labels (images/x.jpg -> labels/x.txt)')
    .addOption(opt('--label-weight <w>', 'weight of the label loss', numberIn(0, 1e6, { lo: true }), 1))
    .addOption(opt('--budget-minutes <m>', 'stop after this much training time (a checkpoint and the weight set are written)', numberIn(0, 1e7, { lo: true })))
    .addOption(opt('--seed <s>', 'random seed (shuffling, calibration sampling)', parse.count, 1))
    .option('--resume', 'continue from the checkpoint')
    .option('--checkpoint <file>', 'checkpoint file (default: <output>.ckpt.json)')
    .addOption(opt('--batch <n>', 'images per step', parse.positiveInt, 8))
    .addOption(opt('--lr <rate>', 'Adam learning rate of the first iteration (default: per width)', numberIn(0, 1, { lo: true, hi: true })))
    .addOption(opt('--lr-decay <f>', 'factor on the learning rate at each next iteration (1: constant; default: per width)', numberIn(0, 1, { lo: true })))
    .option('--flip', 'mirror each training image left-right with probability 1/2 at every step (default: per width)')
    .option('--no-flip', 'do not mirror training images')
    .option('--keep-formats', 'formats from the quantizer at the first iteration only (and where --schedule changes the width); later iterations keep them (default: per width)')
    .option('--no-keep-formats', 'formats from the quantizer at every iteration')
    .addOption(
      opt('--average-decay <d>', 'train on, but end each iteration with the running average of the shadow weights (avg = d*avg + (1-d)*w after every step); 0: none', numberIn(0, 1, { hi: true })),
    )
    .addOption(
      opt('--freeze-oscillations <f>', 'fix an integer weight that flips back and forth more often than f per step (averaged) on its averaged grid point for the rest of the iteration (0..1; 1: only count the oscillations)', numberIn(0, 1)),
    )
    .addOption(opt('--crop <f>', 'random crops: each training image at every step is a window of [f, 1] of its width and height, scaled back (1: none; default: per width)', numberIn(0, 1, { lo: true })))
    .addOption(opt('--mix <a>', 'blends: each training image at every step becomes (1-a) itself + a another image of the list, a drawn from [0, <a>] (up to 0.5; 0: none; default: per width); the teacher sees the same blend', numberIn(0, 0.5)))
    .addOption(choice('--lr-unit <unit>', 'absolute, or step: the learning rate in units of each channel\'s quantization step', ['absolute', 'step'], 'absolute'))
    .addOption(
      opt('--feature-weight <w>', 'also distil the inner conv layers\' outputs (relative squared error to the float model\'s, summed over layers) with this weight; 0: heads only (default: per width)', numberIn(0, 1e6)),
    )
    .addOption(choice('--distill <weighting>', 'objectness: class and x, y terms weighted by the teacher\'s objectness; uniform: every position alike', ['objectness', 'uniform'], 'objectness'))
    .option('--per-layer', 'one weight format per layer instead of per output channel')
    .option('--no-zero-center', 'plain fixed point (mu = 0), the baseline zero-centering is compared with')
    .addOption(opt('--head-abits <n>', 'width of the tensors feeding the yolo heads (8 or 16)', parse.tensorBits, 16))
    .addOption(choice('--act-calib <method>', 'activation fraction bits by (as zeroq quantize)', ['minmax', 'percentile', 'search'], 'search'))
    .addOption(opt('--percentile <p>', 'for --act-calib percentile: the percentile of |x| kept unclipped', numberIn(0, 100, { lo: true }), 99.99))
    .option('--no-bias-correction', 'keep the shadow biases at each iteration start (default: the quantizer corrects them)')
    .option('--no-equalize', 'do not equalize activation ranges before the first iteration')
    .option('--align-weights', 'before the first iteration, rescale conv pairs so each channel\'s weights span the top of their power-of-two grid (as zeroq quantize; default: per width)')
    .option('--no-align-weights', 'do not align the weight grid')
    .addOption(
      choice('--rounding-target <error>', 'with --rounding output: the error it rounds for at the first iteration, each layer\'s own output (layer, the default) or the float network\'s output (float; auto: float at 4 bits and narrower), as zeroq quantize', [...ROUNDING_TARGET_RULES]),
    )
    .addOption(choice('--rounding <how>', 'weights to their nearest grid point (nearest) or for the least error of each layer\'s output (output), as zeroq quantize (default: per width)', ['nearest', 'output']))
    .addOption(choice('--weight-clip <rule>', 'weight fraction bits: minmax (nothing clipped) or mse (least squared error, clipping), as zeroq quantize (default: per width)', ['minmax', 'mse']))
    .addOption(choice('--center <rule>', 'each channel\'s integers centered on the mean (mean), where a finer grid holds every weight (fit), or fit at 5 bits and narrower (auto), as zeroq quantize (default: per width)', [...CENTER_RULES]))
    .addOption(choice('--search-objective <what>', 'search: judge formats by the error they add (exact) or against the float model', ['exact', 'float'], 'exact'))
    .addOption(opt('--calib-images <n>', 'the first n training images calibrate the formats at each iteration (as zeroq quantize)', parse.positiveInt, 32))
    .option('--keep-best', 'with --val: write the iteration with the best validation AP50 as the output, not the last one')
    .option('--keep-iterations', 'also write the weight set of every iteration (<output>.it<k>.zqw; it0: the quantizer\'s, before retraining)')
    .addOption(opt('--threads <n>', `threads of the training core (1..${MAX_THREADS})`, parse.threads, 2))
    .addOption(opt('--max-steps <n>', 'at most this many steps per epoch', parse.positiveInt))
    .addOption(required('-o, --output <file>', 'the weight set to write (.zqw)'))
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
