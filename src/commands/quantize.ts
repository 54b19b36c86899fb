import { Command, Option } from 'commander';
import { ZeroqError } from '../util/errors.js';

/**
 * `zeroq quantize <cfg>`: a darknet model → a .zqw weight set (zero-centered fixed point), with the
 * activation formats calibrated on images of a list. Prints a per-layer report.
 */

interface QuantizeFlags {
  weights?: string;
  wbits: string;
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
    .requiredOption('--wbits <n>', 'weight width Nw of every conv layer (2..8)')
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
    .addOption(new Option('--search-objective <what>', 'search: judge formats by the error they add (exact) or against the float model').choices(['exact', 'float']).default('exact'))
    .requiredOption('-o, --output <file>', 'the .zqw to write')
    .option('--id <id>', 'weight-set id (default: model, widths and a content hash)')
    .option('--json', 'print one JSON object (report and totals) instead of the table')
    .option('--report-dir <dir>', 'also write report.json and SVG pictures there')
    .option('--histogram-layer <index>', 'conv layer of the weight histogram (default: the one centering helps most)')
    .option('--threads <n>', 'threads for the float passes', '1')
    .action(async (cfg: string, flags: QuantizeFlags) => {
      const { runQuantize } = await import('../cli/quantize-run.js');
      const wbits = intOption(flags.wbits, '--wbits', 2, 8)!;
      await runQuantize(cfg, {
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
