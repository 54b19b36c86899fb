import { Command, Option } from 'commander';
import { quantizeDefaults } from '../quant/quantize.js';
import { CENTER_RULES, type CenterRule } from '../quant/weights.js';
import type { RoundingOrder } from '../quant/gptq.js';
import { ROUNDING_TARGET_RULES, type RoundingTargetRule } from '../quant/float-target.js';
import { choice, intIn, MAX_THREADS, numberIn, opt, parse, required, requireOneOf, UsageError } from '../cli/options.js';

/**
 * `zeroq quantize <cfg>`: a darknet model → a .zqw weight set (zero-centered fixed point), with the
 * activation formats calibrated on images of a list. Prints a per-layer report.
 */

interface QuantizeFlags {
  weights?: string;
  wbits?: number;
  avgBits?: number;
  val?: string;
  gt?: string;
  sensitivityImages: number;
  firstBits?: number;
  headBits?: number;
  abits: number;
  headAbits: 8 | 16;
  calib: string;
  calibImages: number;
  searchImages?: number;
  zeroCenter: boolean;
  perChannel?: boolean;
  perLayer?: boolean;
  actCalib: 'minmax' | 'percentile' | 'search';
  percentile: number;
  biasCorrection: boolean;
  equalize?: boolean;
  alignWeights?: boolean;
  weightClip: 'minmax' | 'mse';
  center: CenterRule;
  rounding?: 'nearest' | 'output';
  roundingOrder?: RoundingOrder;
  roundingTarget?: RoundingTargetRule;
  searchObjective: 'exact' | 'float';
  output: string;
  id?: string;
  json?: boolean;
  reportDir?: string;
  histogramLayer?: number;
  threads: number;
}

export function register(program: Command): void {
  const cmd = program
    .command('quantize')
    .description('quantize a darknet model to a .zqw weight set (zero-centered fixed point, calibrated activations)')
    .argument('<cfg>', 'darknet .cfg (weights beside it, or --weights)')
    .option('--weights <file>', 'darknet .weights (default: the cfg with .weights)')
    .addOption(opt('--wbits <n>', 'weight width Nw of every conv layer (2..8) (required: this or --avg-bits)', parse.weightBits))
    .addOption(
      opt('--avg-bits <b>', 'instead of --wbits: a width per conv layer (2..8) from measured per-layer sensitivity, at this average bits per weight', numberIn(2, 8)),
    )
    .option('--val <list>', 'with --avg-bits: validation images; the layer errors are measured on them and the candidate widths with the best AP50 there are kept')
    .option('--gt <instances.json>', 'COCO ground truth of --val (default: instances.json beside it)')
    .addOption(opt('--sensitivity-images <n>', 'with --avg-bits: images the layer errors are measured on (the first of --val, else of --calib)', parse.positiveInt, 32))
    .addOption(opt('--first-bits <n>', 'weight width of the first conv layer (default --wbits)', parse.weightBits))
    .addOption(opt('--head-bits <n>', 'weight width of the conv layers feeding yolo heads (default --wbits)', parse.weightBits))
    .addOption(opt('--abits <n>', 'activation width (8)', intIn(8, 8), 8))
    .addOption(opt('--head-abits <n>', 'width of the tensors feeding yolo heads (8 or 16)', parse.tensorBits, 16))
    .addOption(required('--calib <list>', 'calibration image list (darknet list: one image path per line)'))
    .addOption(opt('--calib-images <n>', 'how many images of the list calibrate (the first ones)', parse.positiveInt, 32))
    .addOption(opt('--search-images <n>', 'of those, how many the format search runs (default all)', parse.positiveInt))
    .option('--no-zero-center', 'plain fixed point (mu = 0), the baseline zero-centering is compared with')
    .addOption(new Option('--per-channel', 'one weight format per output channel (default)').conflicts('perLayer'))
    .addOption(new Option('--per-layer', 'one weight format per layer').conflicts('perChannel'))
    .addOption(choice('--act-calib <method>', 'activation fraction bits by', ['minmax', 'percentile', 'search'], 'search'))
    .addOption(opt('--percentile <p>', 'for --act-calib percentile: the percentile of |x| kept unclipped', numberIn(0, 100, { lo: true }), 99.99))
    .option('--no-bias-correction', 'keep the float biases (default: each absorbs the mean error of its rounded weights)')
    .option('--equalize', 'equalize across conv pairs: activation ranges (per-channel formats) or weight ranges (per-layer); the default')
    .option('--no-equalize', 'do not equalize')
    .option('--align-weights', 'per-channel formats: rescale conv pairs so each channel\'s weights span the top of their power-of-two grid')
    .addOption(choice('--weight-clip <rule>', 'weight fraction bits per channel: from the range, nothing clipped (minmax), or the least squared error, clipping (mse)', ['minmax', 'mse'], 'minmax'))
    .addOption(choice('--center <rule>', 'each channel\'s integers centered on the weights\' mean (mean, the paper), on the point nearest it from which a finer grid holds every weight (fit), or fit at 5 bits and narrower (auto)', [...CENTER_RULES], quantizeDefaults().center ?? 'mean'))
    .addOption(
      choice('--rounding <how>', 'weights to their nearest grid point (nearest), or for the least error of each layer\'s output on the calibration images (output; needs --act-calib search; the default with it)', ['nearest', 'output']),
    )
    .addOption(choice('--rounding-order <order>', 'with --rounding output: round each channel\'s weights in index order (index), or those of the inputs with the most energy first (energy, GPTQ\'s act-order)', ['index', 'energy']))
    .addOption(choice('--rounding-target <error>', 'with --rounding output: the error of each layer\'s own output on its integer inputs (layer), against the float network\'s output (float: also makes up for the error of the layers before), or float at 4 bits and narrower (auto, the default with --wbits; layer with --avg-bits)', [...ROUNDING_TARGET_RULES]))
    .addOption(choice('--search-objective <what>', 'search: judge formats by the error they add (exact) or against the float model', ['exact', 'float'], 'exact'))
    .addOption(required('-o, --output <file>', 'the .zqw to write'))
    .option('--id <id>', 'weight-set id (default: model, widths and a content hash)')
    .option('--json', 'print one JSON object (report and totals) instead of the table')
    .option('--report-dir <dir>', 'also write report.json and SVG pictures there')
    .addOption(opt('--histogram-layer <index>', 'conv layer of the weight histogram (default: the one centering helps most)', parse.count))
    .addOption(opt('--threads <n>', `threads for the float passes (1..${MAX_THREADS})`, parse.threads, 1));
  requireOneOf(cmd, '--wbits', '--avg-bits');
  cmd.action(async (cfg: string, flags: QuantizeFlags) => {
    const { runQuantize } = await import('../cli/quantize-run.js');
    const avgBits = flags.avgBits;
    if (avgBits !== undefined) {
      for (const [f, n] of [[flags.firstBits, '--first-bits'], [flags.headBits, '--head-bits']] as const) {
        if (f !== undefined) throw new UsageError(`${n} does not go with --avg-bits (the widths are chosen per layer)`, 'quantize');
      }
    } else if (flags.val !== undefined) {
      throw new UsageError('--val is used by --avg-bits only', 'quantize');
    }
    if (flags.roundingOrder !== undefined && (flags.rounding === 'nearest' || flags.actCalib !== 'search')) {
      throw new UsageError('--rounding-order is the order of --rounding output (with --act-calib search)', 'quantize');
    }
    if (flags.roundingTarget !== undefined && (flags.rounding === 'nearest' || flags.actCalib !== 'search')) {
      throw new UsageError('--rounding-target is the error --rounding output minimises (with --act-calib search)', 'quantize');
    }
    if (flags.rounding === 'output' && flags.actCalib !== 'search') {
      throw new UsageError('--rounding output (the least output error) needs the format search (--act-calib search)', 'quantize');
    }
    await runQuantize(cfg, {
      ...(avgBits !== undefined ? { avgBits: { target: avgBits, val: flags.val, gt: flags.gt, sensitivityImages: flags.sensitivityImages } } : {}),
      weights: flags.weights,
      quant: {
        wbits: flags.wbits ?? 8,
        firstBits: flags.firstBits,
        headBits: flags.headBits,
        abits: flags.abits,
        headAbits: flags.headAbits,
        perChannel: !flags.perLayer,
        zeroCenter: flags.zeroCenter,
        actCalib: flags.actCalib,
        percentile: flags.percentile,
        biasCorrection: flags.biasCorrection,
        equalize: flags.equalize,
        alignWeights: flags.alignWeights ?? false,
        weightClip: flags.weightClip,
        center: flags.center,
        rounding: flags.rounding ?? (flags.actCalib === 'search' ? 'output' : 'nearest'),
        ...(flags.roundingOrder ? { roundingOrder: flags.roundingOrder } : {}),
        // With --avg-bits the layer's own error: on the 727 calibration-free images its 4.5-bit set scored 16.48 so,
        // 15.73 with 'auto' and 16.08 with 'float' (docs/decisions/quantizer-defaults.md).
        roundingTarget: flags.roundingTarget ?? (avgBits !== undefined ? 'layer' : quantizeDefaults().roundingTarget),
        searchObjective: flags.searchObjective,
        searchImages: flags.searchImages,
        threads: flags.threads,
      },
      calib: flags.calib,
      calibImages: flags.calibImages,
      output: flags.output,
      id: flags.id,
      json: flags.json ?? false,
      reportDir: flags.reportDir,
      histogramLayer: flags.histogramLayer,
    });
  });
}
