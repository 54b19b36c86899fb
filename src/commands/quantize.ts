import { Command, Option } from 'commander';
import { ZeroqError } from '../util/errors.js';

/**
 * `zeroq quantize <cfg>`: a darknet model → a .zqw weight set (zero-centered fixed point), with the
 * activation formats calibrated on images of a list. Prints a per-layer report.
 */

interface QuantizeFlags {
  weights?: string;
  wbits?: string;
  avgBits?: string;
  val?: string;
  gt?: string;
  sensitivityImages: string;
  firstBits?: string;
  headBits?: string;
  abits: string;
  headAbits: string;
  calib: string;
  calibImages: string;
  searchImages?: string;
  zeroCenter: boolean;
  perChannel?: boolean;
  perLayer?: boolean;
  actCalib: string;
  percentile: string;
  biasCorrection: boolean;
  equalize?: boolean;
  alignWeights?: boolean;
  weightClip: string;
  rounding?: string;
  searchObjective: string;
  output: string;
  id?: string;
  json?: boolean;
  reportDir?: string;
  histogramLayer?: string;
  threads: string;
}

function intOption(v: string | undefined, name: string, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new ZeroqError('bad-option', `${name} must be an integer from ${lo} to ${hi}, got "${v}"`, name);
  return n;
}

export function register(program: Command): void {
  program
    .command('quantize')
    .description('quantize a darknet model to a .zqw weight set (zero-centered fixed point, calibrated activations)')
    .argument('<cfg>', 'darknet .cfg (weights beside it, or --weights)')
    .option('--weights <file>', 'darknet .weights (default: the cfg with .weights)')
    .option('--wbits <n>', 'weight width Nw of every conv layer (2..8)')
    .option('--avg-bits <b>', 'instead of --wbits: a width per conv layer (2..8) from measured per-layer sensitivity, at this average bits per weight')
    .option('--val <list>', 'with --avg-bits: validation images; the layer errors are measured on them and the candidate widths with the best AP50 there are kept')
    .option('--gt <instances.json>', 'COCO ground truth of --val (default: instances.json beside it)')
    .option('--sensitivity-images <n>', 'with --avg-bits: images the layer errors are measured on (the first of --val, else of --calib)', '32')
    .option('--first-bits <n>', 'weight width of the first conv layer (default --wbits)')
    .option('--head-bits <n>', 'weight width of the conv layers feeding yolo heads (default --wbits)')
    .option('--abits <n>', 'activation width', '8')
    .option('--head-abits <n>', 'width of the tensors feeding yolo heads (8 or 16)', '16')
    .requiredOption('--calib <list>', 'calibration image list (darknet list: one image path per line)')
    .option('--calib-images <n>', 'how many images of the list calibrate (the first ones)', '32')
    .option('--search-images <n>', 'of those, how many the format search runs (default all)')
    .option('--no-zero-center', 'plain fixed point (mu = 0), the baseline zero-centering is compared with')
    .addOption(new Option('--per-channel', 'one weight format per output channel (default)').conflicts('perLayer'))
    .addOption(new Option('--per-layer', 'one weight format per layer').conflicts('perChannel'))
    .addOption(new Option('--act-calib <method>', 'activation fraction bits by').choices(['minmax', 'percentile', 'search']).default('search'))
    .option('--percentile <p>', 'for --act-calib percentile: the percentile of |x| kept unclipped', '99.99')
    .option('--no-bias-correction', 'keep the float biases (default: each absorbs the mean error of its rounded weights)')
    .option('--equalize', 'equalize across conv pairs: activation ranges (per-channel formats) or weight ranges (per-layer); the default')
    .option('--no-equalize', 'do not equalize')
    .option('--align-weights', 'per-channel formats: rescale conv pairs so each channel\'s weights span the top of their power-of-two grid')
    .addOption(new Option('--weight-clip <rule>', 'weight fraction bits per channel: from the range, nothing clipped (minmax), or the least squared error, clipping (mse)').choices(['minmax', 'mse']).default('mse'))
    .addOption(new Option('--rounding <how>', 'weights to their nearest grid point (nearest), or for the least error of each layer\'s output on the calibration images (output; needs --act-calib search; the default with it)').choices(['nearest', 'output']))
    .addOption(new Option('--search-objective <what>', 'search: judge formats by the error they add (exact) or against the float model').choices(['exact', 'float']).default('exact'))
    .requiredOption('-o, --output <file>', 'the .zqw to write')
    .option('--id <id>', 'weight-set id (default: model, widths and a content hash)')
    .option('--json', 'print one JSON object (report and totals) instead of the table')
    .option('--report-dir <dir>', 'also write report.json and SVG pictures there')
    .option('--histogram-layer <index>', 'conv layer of the weight histogram (default: the one centering helps most)')
    .option('--threads <n>', 'threads for the float passes', '1')
    .action(async (cfg: string, flags: QuantizeFlags) => {
      const { runQuantize } = await import('./quantize-run.js');
      if ((flags.wbits === undefined) === (flags.avgBits === undefined)) {
        throw new ZeroqError('bad-option', 'give either the weight width (--wbits N) or an average (--avg-bits B)', '--wbits');
      }
      let avgBits: number | undefined;
      if (flags.avgBits !== undefined) {
        avgBits = Number(flags.avgBits);
        if (flags.avgBits.trim() === '' || !(avgBits >= 2 && avgBits <= 8)) throw new ZeroqError('bad-option', `--avg-bits must be a number from 2 to 8, got "${flags.avgBits}"`, '--avg-bits');
        for (const [f, n] of [[flags.firstBits, '--first-bits'], [flags.headBits, '--head-bits']] as const) {
          if (f !== undefined) throw new ZeroqError('bad-option', `${n} does not go with --avg-bits (the widths are chosen per layer)`, n);
        }
      } else if (flags.val !== undefined) {
        throw new ZeroqError('bad-option', '--val is used by --avg-bits only', '--val');
      }
      if (flags.rounding === 'output' && flags.actCalib !== 'search') {
        throw new ZeroqError('bad-option', 'rounding for the output error needs the format search (--act-calib search)', '--rounding');
      }
      const wbits = avgBits === undefined ? intOption(flags.wbits, '--wbits', 2, 8)! : 8;
      await runQuantize(cfg, {
        ...(avgBits !== undefined
          ? { avgBits: { target: avgBits, val: flags.val, gt: flags.gt, sensitivityImages: intOption(flags.sensitivityImages, '--sensitivity-images', 1, 1e6)! } }
          : {}),
        weights: flags.weights,
        quant: {
          wbits,
          firstBits: intOption(flags.firstBits, '--first-bits', 2, 8),
          headBits: intOption(flags.headBits, '--head-bits', 2, 8),
          abits: intOption(flags.abits, '--abits', 8, 8)!,
          headAbits: intOption(flags.headAbits, '--head-abits', 8, 16)!,
          perChannel: !flags.perLayer,
          zeroCenter: flags.zeroCenter,
          actCalib: flags.actCalib as 'minmax' | 'percentile' | 'search',
          percentile: Number(flags.percentile),
          biasCorrection: flags.biasCorrection,
          equalize: flags.equalize,
          alignWeights: flags.alignWeights ?? false,
          weightClip: flags.weightClip === 'mse' ? 'mse' : 'minmax',
          rounding: (flags.rounding ?? (flags.actCalib === 'search' ? 'output' : 'nearest')) as 'nearest' | 'output',
          searchObjective: flags.searchObjective as 'exact' | 'float',
          searchImages: intOption(flags.searchImages, '--search-images', 1, 1e6),
          threads: intOption(flags.threads, '--threads', 1, 256)!,
        },
        calib: flags.calib,
        calibImages: intOption(flags.calibImages, '--calib-images', 1, 1e6)!,
        output: flags.output,
        id: flags.id,
        json: flags.json ?? false,
        reportDir: flags.reportDir,
        histogramLayer: intOption(flags.histogramLayer, '--histogram-layer', 0, 1e6),
      });
    });
}
