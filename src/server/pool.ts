/**
 * The pool of hard frames devices upload (frames whose detections sit near the threshold): per
 * device a token bucket limits the rate, a size limit bounds each frame, and the pool keeps at most
 * a set number of frames (the oldest go first). Retraining jobs train on it.
 */
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { ZeroqError } from '../util/errors.js';
import type { Storage } from './storage.js';

export interface PoolOptions {
  /** Largest frame accepted, bytes. */
  maxFrameBytes: number;
  /** Frames kept at most; beyond, the oldest are removed. */
  maxFrames: number;
  /** Per device: sustained frames per hour, and how many may come at once. */
  perHour: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class HardFramePool {
  private readonly buckets = new Map<string, Bucket>();
  private count = -1;
  /** Frames accepted since the process started (for automatic retraining). */
  accepted = 0;

  constructor(
    private readonly storage: Storage,
    readonly o: PoolOptions,
  ) {}

  /** ms until the device may upload again (0: now), taking a token when it may. */
  private take(device: string, now = Date.now()): number {
    const rate = this.o.perHour / 3_600_000; // tokens per ms
    const b = this.buckets.get(device) ?? { tokens: this.o.burst, at: now };
    b.tokens = Math.min(this.o.burst, b.tokens + (now - b.at) * rate);
    b.at = now;
    this.buckets.set(device, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / rate);
  }

  /**
   * Stores a frame from a device. Throws ZeroqError 'rate-limited' (with retryAfterS), 'too-large' or
   * 'bad-request'.
   */
  async add(device: string, data: Buffer, meta: Record<string, unknown>): Promise<{ name: string; width: number; height: number }> {
    if (data.length > this.o.maxFrameBytes) throw new ZeroqError('too-large', `${data.length} bytes; the limit is ${this.o.maxFrameBytes}`, device);
    const jpeg = data.length > 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff;
    const png = data.length > 8 && data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    if (!jpeg && !png) throw new ZeroqError('bad-request', 'a frame is a JPEG or PNG image', device);
    const wait = this.take(device);
    if (wait > 0) {
      const e = new ZeroqError('rate-limited', `too many frames from ${device}; retry in ${Math.ceil(wait / 1000)} s`, device);
      (e as ZeroqError & { retryAfterS: number }).retryAfterS = Math.ceil(wait / 1000);
      throw e;
    }
    let info;
    try {
      info = await sharp(data).metadata();
    } catch (e) {
      throw new ZeroqError('bad-request', `not a readable image: ${(e as Error).message}`, device);
    }
    if (!info.width || !info.height || info.width > 8192 || info.height > 8192) throw new ZeroqError('bad-request', 'image size out of range', device);
    const name = `${Date.now()}-${device}-${randomBytes(4).toString('hex')}.${jpeg ? 'jpg' : 'png'}`;
    await this.storage.putPool(name, data, { device, time: new Date().toISOString(), width: info.width, height: info.height, ...meta });
    this.accepted++;
    if (this.count >= 0) this.count++;
    await this.trim();
    return { name, width: info.width, height: info.height };
  }

  private async trim(): Promise<void> {
    if (this.count >= 0 && this.count <= this.o.maxFrames) return;
    const items = await this.storage.listPool();
    for (const it of items.slice(0, Math.max(0, items.length - this.o.maxFrames))) await this.storage.removePool(it.name);
    this.count = Math.min(items.length, this.o.maxFrames);
  }

  async size(): Promise<number> {
    if (this.count < 0) this.count = (await this.storage.listPool()).length;
    return this.count;
  }
}
