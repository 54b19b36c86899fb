/**
 * The capture watchdog: runs a source, numbers its frames, checks them, and restarts the source with
 * exponential back-off when it dies, stalls (no frame for stall_timeout_s) or keeps delivering
 * malformed frames. Every change of state is an event, for the status topic, metrics and logs.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { redact } from '../../util/redact.js';
import type { Frame } from '../../engine/engine.js';
import { Backoff } from './backoff.js';
import type { CaptureSource, RawFrame } from './source.js';

export interface CapturedFrame extends RawFrame {
  /** Frame id: counts every frame the daemon received since it started, across source restarts. */
  seq: number;
  /** The network input made from this frame ahead of time (see FrameLoop.prepare), if any. */
  input?: Frame;
  /** The camera it came from (set when it is handed to the engine's queue). */
  camera?: string;
}

export type SourceState = 'starting' | 'running' | 'restarting' | 'ended' | 'stopped';

export interface SupervisorOptions {
  /** Makes a fresh source instance (each start or restart). */
  create: () => CaptureSource;
  stallTimeoutMs: number;
  maxBadFrames: number;
  restart: { initialMs: number; maxMs: number; factor: number };
  /** Back-off is reset once a source delivered frames for this long. */
  stableAfterMs: number;
  log: Logger;
}

export interface SupervisorStatus {
  state: SourceState;
  description: string;
  restarts: number;
  frames: number;
  badFrames: number;
  lastError?: string;
  /** ms since the epoch of the last frame, 0 before the first. */
  lastFrameAt: number;
  /** Delay before the pending restart, while restarting. */
  retryInMs?: number;
}

/** Frame sizes the daemon refuses: empty, or larger than 8K. */
const MAX_SIDE = 8192;

export class SourceSupervisor extends EventEmitter {
  private source?: CaptureSource;
  private generation = 0;
  private seq = 0;
  private readonly backoff: Backoff;
  private stallTimer?: NodeJS.Timeout;
  private restartTimer?: NodeJS.Timeout;
  private consecutiveBad = 0;
  private runningSince = 0;
  private waitingOnConsumer = false;
  private stopWaiters = new Set<() => void>();
  private status: SupervisorStatus;
  /** Where frames go; return a promise to hold a non-live source until the frame is taken. */
  deliver: (f: CapturedFrame, live: boolean) => void | Promise<void> = () => undefined;

  constructor(private readonly o: SupervisorOptions) {
    super();
    this.backoff = new Backoff(o.restart.initialMs, o.restart.maxMs, o.restart.factor);
    this.status = { state: 'stopped', description: '', restarts: 0, frames: 0, badFrames: 0, lastFrameAt: 0 };
  }

  get current(): SupervisorStatus {
    return { ...this.status };
  }

  /** The running source instance (tests and diagnostics). */
  get instance(): CaptureSource | undefined {
    return this.source;
  }

  start(): void {
    this.launch();
  }

  private setState(patch: Partial<SupervisorStatus>): void {
    const before = this.status.state;
    this.status = { ...this.status, ...patch };
    if (patch.state !== undefined || patch.restarts !== undefined || before !== this.status.state) {
      this.emit('state', this.current);
    }
  }

  private launch(): void {
    const gen = ++this.generation;
    const src = this.o.create();
    this.source = src;
    this.consecutiveBad = 0;
    this.runningSince = 0;
    this.setState({ state: 'starting', description: src.description, retryInMs: undefined });
    this.armStall(gen);
    const current = () => gen === this.generation;
    src.start({
      frame: (raw) => {
        if (!current()) return;
        const bad = checkFrame(raw);
        if (bad) {
          this.onBad(gen, bad);
          return;
        }
        this.consecutiveBad = 0;
        const now = Date.now();
        if (this.runningSince === 0) this.runningSince = now;
        else if (now - this.runningSince >= this.o.stableAfterMs) this.backoff.reset();
        const f: CapturedFrame = { ...raw, seq: ++this.seq };
        this.status.frames++;
        this.status.lastFrameAt = now;
        if (this.status.state !== 'running') this.setState({ state: 'running', lastError: this.status.lastError });
        this.armStall(gen);
        const wait = this.deliver(f, src.live);
        if (!wait) return;
        this.waitingOnConsumer = true;
        this.clearStall();
        // Resolves when taken, or when this supervisor stops or restarts the source.
        return new Promise<void>((resolve) => {
          const done = () => {
            this.stopWaiters.delete(done);
            if (current()) {
              this.waitingOnConsumer = false;
              this.armStall(gen);
            }
            resolve();
          };
          this.stopWaiters.add(done);
          void wait.then(done);
        });
      },
      bad: (reason) => {
        if (current()) this.onBad(gen, redact(reason));
      },
      end: () => {
        if (!current()) return;
        this.clearStall();
        this.o.log.info({ source: src.description, frames: this.status.frames }, 'source ended');
        this.setState({ state: 'ended' });
      },
      fail: (err) => {
        if (current()) this.restart(gen, err.message);
      },
    });
  }

  private onBad(gen: number, reason: string): void {
    this.status.badFrames++;
    this.consecutiveBad++;
    this.emit('bad', reason);
    this.o.log.warn({ reason, consecutive: this.consecutiveBad }, 'bad frame');
    if (this.consecutiveBad >= this.o.maxBadFrames) this.restart(gen, `${this.consecutiveBad} bad frames in a row (${reason})`);
  }

  private armStall(gen: number): void {
    this.clearStall();
    if (this.waitingOnConsumer) return;
    this.stallTimer = setTimeout(() => {
      if (gen === this.generation) this.restart(gen, `no frame for ${(this.o.stallTimeoutMs / 1000).toFixed(1)} s`);
    }, this.o.stallTimeoutMs);
  }

  private clearStall(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  private releaseWaiters(): void {
    for (const w of [...this.stopWaiters]) w();
    this.waitingOnConsumer = false;
  }

  /** Stops the current instance and schedules a fresh one after the back-off delay. */
  private restart(gen: number, why: string): void {
    const reason = redact(why);
    if (gen !== this.generation || this.status.state === 'stopped') return;
    this.generation++;
    this.clearStall();
    this.releaseWaiters();
    const old = this.source;
    const delay = this.backoff.next();
    this.o.log.warn({ source: old?.description, reason, retryInMs: delay, restarts: this.status.restarts + 1 }, 'source failed; restarting');
    this.setState({ state: 'restarting', lastError: reason, restarts: this.status.restarts + 1, retryInMs: delay });
    const stopped = old ? old.stop().catch(() => undefined) : Promise.resolve();
    const scheduled = this.generation;
    this.restartTimer = setTimeout(() => {
      void stopped.then(() => {
        if (this.generation === scheduled && this.status.state === 'restarting') this.launch();
      });
    }, delay);
  }

  /** Stops the source for good. */
  async stop(): Promise<void> {
    this.generation++;
    this.clearStall();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.releaseWaiters();
    const src = this.source;
    this.source = undefined;
    this.setState({ state: 'stopped', retryInMs: undefined });
    await src?.stop();
  }
}

/** Why a frame cannot be used, or undefined when it is fine. */
export function checkFrame(f: RawFrame): string | undefined {
  const okSide = (v: number) => Number.isInteger(v) && v > 0 && v <= MAX_SIDE;
  if (!okSide(f.width) || !okSide(f.height)) return `frame size ${f.width}x${f.height}`;
  if (!okSide(f.srcWidth) || !okSide(f.srcHeight)) return `picture size ${f.srcWidth}x${f.srcHeight}`;
  if (f.rgb.length !== f.width * f.height * 3) return `${f.rgb.length} bytes for a ${f.width}x${f.height} RGB frame`;
  return undefined;
}
