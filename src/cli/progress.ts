/**
 * Progress of a long command (quantize, eval, retrain) on stderr: a bar when stderr is a terminal,
 * otherwise one line about every 10% of each phase (and at its end), so that a log or a CI job
 * shows the command is alive and how far it is.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Starts a phase of `total` units ("images", "layers", "steps"); ends the previous one. */
  phase(label: string, total: number, unit: string): void;
  /** Units done so far in the current phase; `info` goes at the end of the bar or line (e.g. "loss 1.23"). */
  update(done: number, info?: string): void;
  /** A message between phases (the bar is closed first). */
  log(message: string): void;
  stop(): void;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** `name` starts every line (the command); `stream` defaults to stderr and `tty` to whether it is a terminal. */
export function progress(name: string, opts: { stream?: NodeJS.WriteStream; tty?: boolean } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? stream.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  let label = '';
  let unit = '';
  let total = 0;
  let t0 = 0;
  let nextTenth = 1;
  const end = (): void => {
    bar?.stop();
    bar = undefined;
  };
  return {
    phase(l, n, u) {
      end();
      label = l;
      unit = u;
      total = n;
      t0 = Date.now();
      nextTenth = 1;
      if (tty && n > 0) {
        bar = new cliProgress.SingleBar(
          { stream, format: `${name} ${l} [{bar}] {value}/{total} ${u} {info}| {eta_formatted} left`, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(n, 0, { info: '' });
      }
    },
    update(done, info = '') {
      if (bar) {
        bar.update(done, { info: info ? `${info} ` : '' });
        return;
      }
      if (total <= 0 || done * 10 < nextTenth * total) return;
      // One line per tenth reached (several tenths at once give one line).
      nextTenth = Math.floor((done * 10) / total) + 1;
      const elapsed = Date.now() - t0;
      const left = done < total ? `, about ${duration((elapsed * (total - done)) / done)} left` : '';
      stream.write(`${name}: ${label} ${done}/${total} ${unit} (${Math.floor((100 * done) / total)}%), ${duration(elapsed)}${left}${info ? `, ${info}` : ''}\n`);
    },
    log(message) {
      end();
      stream.write(`${message}\n`);
    },
    stop: end,
  };
}
