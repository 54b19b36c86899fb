/** Progress of a retraining run on stderr: a bar with loss and ETA on a TTY, plain lines otherwise. */
import cliProgress from 'cli-progress';
import type { ProgressEvent } from './trainer.js';

export function progressReporter() {
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  let smooth = NaN;
  return {
    onIterationStart(iteration: number, wbits: number, stepsPerEpoch: number) {
      bar?.stop();
      smooth = NaN;
      if (tty) {
        bar = new cliProgress.SingleBar(
          { format: `iteration ${iteration + 1} W${wbits} |{bar}| {value}/{total} loss {loss} ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(stepsPerEpoch, 0, { loss: '-' });
      }
    },
    onProgress(e: ProgressEvent) {
      smooth = Number.isNaN(smooth) ? e.loss : 0.95 * smooth + 0.05 * e.loss;
      if (bar) {
        if (e.step === 1) bar.setTotal(e.stepsPerEpoch);
        bar.update(e.step, { loss: smooth.toFixed(2) });
      } else if (Date.now() - lastLine > 30_000 || e.step === e.stepsPerEpoch) {
        lastLine = Date.now();
        process.stderr.write(`iteration ${e.iteration + 1} W${e.wbits} epoch ${e.epoch + 1} step ${e.step}/${e.stepsPerEpoch} loss ${smooth.toFixed(3)} ${(e.elapsedMs / 60000).toFixed(1)} min\n`);
      }
    },
    log(msg: string) {
      if (bar) bar.stop(), (bar = undefined);
      process.stderr.write(`${msg}\n`);
    },
    stop() {
      bar?.stop();
    },
  };
}
