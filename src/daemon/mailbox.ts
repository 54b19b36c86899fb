/**
 * A single-slot mailbox between the capture side and inference: a new item replaces one that was
 * not taken yet (and is counted as skipped), so inference always gets the newest frame and nothing
 * queues up. Non-live producers use putWait() to wait until their item is taken instead.
 */
export class Mailbox<T> {
  private item: T | undefined;
  private has = false;
  private taken: (() => void) | undefined;
  private waiter: ((v: T | undefined) => void) | undefined;
  private closed = false;
  /** Items replaced before anyone took them. */
  skipped = 0;

  constructor(private readonly onSkip?: (dropped: T) => void) {}

  /** Offers an item; an untaken previous one is dropped. */
  put(item: T): void {
    if (this.closed) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(item);
      return;
    }
    if (this.has) {
      this.skipped++;
      this.onSkip?.(this.item as T);
      this.release();
    }
    this.item = item;
    this.has = true;
  }

  /** Offers an item and resolves when it was taken (or dropped by a later put, or on close). */
  putWait(item: T): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.waiter) {
      this.put(item);
      return Promise.resolve();
    }
    this.put(item);
    return new Promise<void>((resolve) => {
      this.taken = resolve;
    });
  }

  /** The newest item; waits for one when empty. undefined once closed. */
  take(): Promise<T | undefined> {
    if (this.has) {
      const v = this.item as T;
      this.item = undefined;
      this.has = false;
      this.release();
      return Promise.resolve(v);
    }
    if (this.closed) return Promise.resolve(undefined);
    if (this.waiter) throw new Error('Mailbox.take: one taker at a time');
    return new Promise<T | undefined>((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Wakes a waiting taker with undefined; later puts are ignored. A pending item stays takeable. */
  close(): void {
    this.closed = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(undefined);
    }
    this.release();
  }

  /** Clears a pending item (counted as skipped) and reopens the mailbox. */
  reopen(): void {
    if (this.has) {
      this.skipped++;
      this.onSkip?.(this.item as T);
    }
    this.item = undefined;
    this.has = false;
    this.release();
    this.closed = false;
  }

  get pending(): boolean {
    return this.has;
  }

  private release(): void {
    const t = this.taken;
    this.taken = undefined;
    t?.();
  }
}
