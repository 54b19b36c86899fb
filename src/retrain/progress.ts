/**
 * Progress of a retraining run on stderr (src/cli/progress.ts): per epoch a bar with the smoothed
 * loss and ETA on a terminal, otherwise a line about every 10% of the epoch's steps.
 */
import { progress } from '../cli/progress.js';
import type { ProgressEvent } from './trainer.js';

export function progressReporter(opts: { stream?: NodeJS.WriteStream; tty?: boolean } = {}) {
  const p = progress('retrain', opts);
  let smooth = NaN;
  let epoch = -1;
  let iteration = -1;
  return {
    onIterationStart() {
      smooth = NaN;
      epoch = -1;
    },
    onProgress(e: ProgressEvent) {
      smooth = Number.isNaN(smooth) ? e.loss : 0.95 * smooth + 0.05 * e.loss;
      if (e.epoch !== epoch || e.iteration !== iteration) {
        epoch = e.epoch;
        iteration = e.iteration;
        p.phase(`iteration ${iteration + 1} W${e.wbits} epoch ${epoch + 1}`, e.stepsPerEpoch, 'steps');
      }
      p.update(e.step, `loss ${smooth.toFixed(3)}`);
    },
    log(msg: string) {
      p.log(msg);
    },
    stop() {
      p.stop();
    },
  };
}
