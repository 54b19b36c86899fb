/** Exponential back-off between restarts: initial, initial·factor, ... capped at max. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly factor = 2,
  ) {}

  /** The delay before the next attempt (and counts the attempt). */
  next(): number {
    const d = Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, this.attempt));
    this.attempt++;
    return Math.round(d);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
