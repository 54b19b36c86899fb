import type { Command } from 'commander';
import { addEngineOptions, engineChoice } from '../cli/engine-options.js';
import { opt, parse } from '../cli/options.js';

interface BenchFlags {
  engine?: string;
  frames: number;
  warmup: number;
  compare?: boolean;
  againstThreads?: number;
  spin?: boolean;
  json?: boolean;
  image?: string;
  float?: string;
  profile?: boolean;
  [flag: string]: unknown;
}

/** `zeroq bench`: speed of the float and int engines on one model. */
export function register(program: Command): void {
  const cmd = program
    .command('bench')
    .description('median ms per frame (network only and end to end), frames/s and peak RSS of an engine')
    .argument('<model>', 'darknet .cfg (float; int runs random weights of its shapes) or .zqw weight set')
    .addOption(opt('--frames <n>', 'measured frames', parse.positiveInt, 200))
    .addOption(opt('--warmup <n>', 'frames run before measuring', parse.count, 20))
    .option('--compare', 'run float and the engine under test (int unless --engine names another) alternately, blocks of 10 frames, in one process; print engine/float')
    .addOption(opt('--against-threads <n>', 'also run the engine at this many threads, alternately with --threads in blocks of 10 frames, in one process; print the ratio (the scaling in one machine state)', parse.threads))
    .option('--no-spin', "float: onnxruntime's workers do not spin waiting between runs")
    .option('--image <file>', 'image of the end-to-end measurement (default: the data folder dog.jpg)')
    .option('--float <cfg>', 'darknet cfg of the float model when the model is a .zqw')
    .option('--profile', 'int: per layer time, multiply-adds, bytes moved, GMAC/s and GB/s (median of up to 100 frames), and totals by layer kind')
    .option('--json', 'print the result as JSON');
  addEngineOptions(cmd, { threads: 1 });
  cmd.action(async (model: string, flags: BenchFlags) => {
      const { module, options } = engineChoice(model, flags);
      const engine = module.kind;
      const { threads, ...engineOptions } = options;
      const { runBench, formatBench } = await import('../eval/bench.js');
      const result = await runBench({
        model,
        engine,
        compare: flags.compare,
        againstThreads: flags.againstThreads,
        spin: flags.spin,
        threads,
        engineOptions,
        frames: flags.frames,
        warmup: flags.warmup,
        image: flags.image,
        floatModel: flags.float,
        profile: flags.profile,
      });
      process.stdout.write(flags.json ? JSON.stringify(result, null, 2) + '\n' : formatBench(result));
    });
}
