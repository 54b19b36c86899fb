/**
 * The frames of several cameras waiting for one engine: one slot per camera holding its newest
 * frame (a new frame replaces one not yet taken, which is counted as skipped by that camera), and
 * take() serving the cameras round-robin, so a fast camera cannot starve a slow one. Non-live
 * producers use putWait() to wait until their frame is taken instead of replacing it.
 */
export class Slot<T> {
  item: T | undefined;
  has = false;
  closed = false;
  /** Items replaced before they were taken. */
  skipped = 0;
  private taken: (() => void) | undefined;

  constructor(
    readonly name: string,
    private readonly queue: FairQueue<T>,
    private readonly onSkip?: (dropped: T) => void,
  ) {}

  /** Offers an item; an untaken previous one is dropped. */
  put(item: T): void {
    if (this.closed) return;
    if (this.has) {
      this.skipped++;
      this.onSkip?.(this.item as T);
      this.release();
    }
    this.item = item;
    this.has = true;
    this.queue.wake();
  }

  /** Offers an item and resolves when it was taken (or dropped by a later put, or on close). */
  putWait(item: T): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.put(item);
    if (!this.has) return Promise.resolve();
    return new Promise<void>((resolve) => (this.taken = resolve));
  }

  /** No more items from this slot; a pending one stays takeable. */
  close(): void {
    this.closed = true;
    this.release();
    this.queue.wake();
  }

  /** Clears a pending item (counted as skipped) and reopens the slot. */
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

  /** Hands the item over (the queue calls it). */
  take(): T {
    const v = this.item as T;
    this.item = undefined;
    this.has = false;
    this.release();
    return v;
  }

  private release(): void {
    const t = this.taken;
    this.taken = undefined;
    t?.();
  }
}

export class FairQueue<T> {
  private readonly slots: Slot<T>[] = [];
  /** Index of the slot served last. */
  private last = -1;
  private waiter: ((v: T | undefined) => void) | undefined;
  private closed = false;

  /** A new slot; its items are taken in turn with the others'. */
  add(name: string, onSkip?: (dropped: T) => void): Slot<T> {
    const s = new Slot<T>(name, this, onSkip);
    this.slots.push(s);
    return s;
  }

  /** Removes a slot (its pending item is dropped). */
  remove(slot: Slot<T>): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    slot.close();
    if (slot.has) slot.take();
    this.slots.splice(i, 1);
    if (this.last >= i) this.last--;
    this.wake();
  }

  get size(): number {
    return this.slots.length;
  }

  /**
   * The next slot's newest item, round-robin from the slot served last; waits for one when all
   * are empty. undefined once the queue is closed, or every slot is closed and empty.
   */
  take(): Promise<T | undefined> {
    const v = this.next();
    if (v !== undefined || this.finished()) return Promise.resolve(v);
    if (this.waiter) throw new Error('FairQueue.take: one taker at a time');
    return new Promise<T | undefined>((resolve) => (this.waiter = resolve));
  }

  /** Wakes a waiting taker with undefined; later puts are ignored. */
  close(): void {
    this.closed = true;
    for (const s of this.slots) s.close();
    this.wake();
  }

  /** Reopens after close() (slots stay closed until reopened themselves). */
  reopen(): void {
    this.closed = false;
  }

  /** A slot got an item or was closed: serve a waiting taker. */
  wake(): void {
    const w = this.waiter;
    if (!w) return;
    const v = this.next();
    if (v === undefined && !this.finished()) return;
    this.waiter = undefined;
    w(v);
  }

  private finished(): boolean {
    return this.closed || (this.slots.length > 0 && this.slots.every((s) => s.closed && !s.has));
  }

  private next(): T | undefined {
    const n = this.slots.length;
    for (let k = 1; k <= n; k++) {
      const i = (this.last + k) % n;
      const s = this.slots[i];
      if (s.has) {
        this.last = i;
        return s.take();
      }
    }
    return undefined;
  }
}
