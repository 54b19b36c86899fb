/**
 * The host side of docs/formats/serial-protocol.md over one open link: requests with sequence
 * numbers, a window of requests in flight, deadlines from the bytes to carry, retries; and the
 * operations built on them (handshake, upload, one frame).
 */
import { ZeroqError } from '../../util/errors.js';
import { crc, encodePacket, PKT_RESPONSE, wireBytes, type Packet } from './framing.js';
import type { SerialLink } from './link.js';
import {
  Err,
  errorName,
  helloRequest,
  Msg,
  parseHello,
  parseInfer,
  parseStats,
  type Capabilities,
  type DeviceStats,
  type InferResult,
} from './protocol.js';

/** The device answered with an error status. */
export class DeviceError extends ZeroqError {
  constructor(
    readonly status: number,
    readonly request: number,
    detail: string,
    where?: string,
  ) {
    super('fpga-device', `${errorName(status)} for request 0x${request.toString(16)}${detail ? `: ${detail}` : ''}`, where);
  }
}

/** No answer within the deadline, after the retries. */
export class LinkTimeout extends ZeroqError {
  constructor(request: number, tries: number, floorMs: number, where?: string) {
    super('fpga-timeout', `no answer to request 0x${request.toString(16)} after ${tries} tries (each waited ${floorMs} ms beside its transfer time)`, where);
  }
}

export interface ClientCounters {
  requests: number;
  retries: number;
  timeouts: number;
  /** Requests resent at once because a later one was answered first (the device answers in order). */
  lost: number;
}

export interface ClientOptions {
  /** Bytes per second the link carries (baud/10 for a UART); default 1 MB/s. */
  bytesPerSecond?: number;
  /** Deadline floor per request, ms (default 250). */
  baseTimeoutMs?: number;
  /** Sends per request (1 + retries), default 3. */
  tries?: number;
  /** Largest response payload the host takes (default 4104). */
  hostMaxPayload?: number;
}

interface Pending {
  resolve: (p: Packet | undefined) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  /** Send order, to spot a request passed over by a later answer. */
  order: number;
  /** INFER is answered when computed, not in order. */
  deferred: boolean;
  /** Wire bytes of the request and its answer. */
  wire: number;
}

export const HOST_MAX_PAYLOAD = 4104;

export class BridgeClient {
  readonly counters: ClientCounters = { requests: 0, retries: 0, timeouts: 0, lost: 0 };
  private order = 0;
  caps?: Capabilities;
  private seq = Math.floor(Math.random() * 0xffff);
  private readonly pending = new Map<number, Pending>();
  private inflight = 0;
  private readonly waiters: (() => void)[] = [];
  private window = 1;
  private readonly rate: number;
  private readonly base: number;
  private readonly tries: number;
  readonly hostMax: number;
  private closedReason?: string;

  constructor(
    readonly link: SerialLink,
    opts: ClientOptions = {},
  ) {
    this.rate = opts.bytesPerSecond ?? 1e6;
    this.base = opts.baseTimeoutMs ?? 250;
    this.tries = opts.tries ?? 3;
    this.hostMax = opts.hostMaxPayload ?? HOST_MAX_PAYLOAD;
    link.on('packet', (p: Packet) => this.onPacket(p));
    link.on('close', (reason: string) => this.onClose(reason));
  }

  private onPacket(p: Packet): void {
    if (!(p.type & PKT_RESPONSE)) return;
    const w = this.pending.get(p.seq);
    if (!w) return; // a late answer to an abandoned try
    this.pending.delete(p.seq);
    clearTimeout(w.timer);
    w.resolve(p);
    // The device answers requests in arrival order (INFER aside): an earlier request still waiting
    // was lost on the way there or back, so resend it now rather than at its deadline.
    for (const [seq, q] of this.pending) {
      if (q.order < w.order && !q.deferred) {
        this.pending.delete(seq);
        clearTimeout(q.timer);
        this.counters.lost++;
        q.resolve(undefined);
      }
    }
  }

  private onClose(reason: string): void {
    this.closedReason = reason;
    const err = new ZeroqError('fpga-link-closed', `the link closed: ${reason}`, this.link.path);
    for (const [seq, w] of this.pending) {
      clearTimeout(w.timer);
      this.pending.delete(seq);
      w.reject(err);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  private async acquire(): Promise<void> {
    while (this.inflight >= this.window && this.closedReason === undefined) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    this.inflight++;
  }

  private release(): void {
    this.inflight--;
    this.waiters.shift()?.();
  }

  /**
   * Deadline of a request of `reqBytes` payload answered by `respBytes`, sent behind requests
   * whose `queuedWire` bytes (both ways) are still to travel: twice the time the bytes take at
   * the link's rate, plus the floor.
   */
  deadline(reqBytes: number, respBytes: number, extraMs = 0, queuedWire = 0): number {
    return this.base + (2 * (queuedWire + wireBytes(reqBytes) + wireBytes(respBytes)) * 1000) / this.rate + extraMs;
  }

  /** Sends a request once; resolves with its answer, or undefined at the deadline or when passed over. */
  private once(type: number, payload: Buffer, respBytes: number, extraMs = 0): Promise<Packet | undefined> {
    if (this.closedReason !== undefined) {
      return Promise.reject(new ZeroqError('fpga-link-closed', `the link closed: ${this.closedReason}`, this.link.path));
    }
    let queued = 0;
    for (const q of this.pending.values()) if (!q.deferred) queued += q.wire;
    const wire = wireBytes(payload.length) + wireBytes(respBytes);
    const timeoutMs = this.deadline(payload.length, respBytes, extraMs, queued);
    return new Promise((resolve, reject) => {
      this.seq = (this.seq + 1) & 0xffff;
      const seq = this.seq;
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        this.counters.timeouts++;
        resolve(undefined);
      }, timeoutMs);
      this.pending.set(seq, { resolve, reject, timer, order: this.order++, deferred: type === Msg.INFER, wire });
      try {
        this.link.send(encodePacket(type, 0, seq, payload));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(seq);
        reject(e as Error);
      }
    });
  }

  /**
   * Sends a request and waits for its answer, retrying on silence. Resolves with the response's
   * payload; rejects with DeviceError (an error status), LinkTimeout or a closed link.
   */
  async call(type: number, payload: Buffer, opts: { respBytes?: number; extraMs?: number; tries?: number } = {}): Promise<Buffer> {
    const tries = opts.tries ?? this.tries;
    await this.acquire();
    try {
      for (let t = 0; t < tries; t++) {
        if (t > 0) this.counters.retries++;
        this.counters.requests++;
        const p = await this.once(type, payload, opts.respBytes ?? 0, opts.extraMs);
        if (!p) continue; // timed out, or passed over by a later answer
        if (p.type !== (type | PKT_RESPONSE)) throw new ZeroqError('fpga-protocol', `response type 0x${p.type.toString(16)} to request 0x${type.toString(16)}`, this.link.path);
        if (p.status !== 0) throw new DeviceError(p.status, type, p.payload.toString('utf8').replace(/[^\x20-\x7e]/g, ''), this.link.path);
        return p.payload;
      }
      throw new LinkTimeout(type, tries, this.base, this.link.path);
    } finally {
      this.release();
    }
  }

  /** The handshake; with `reset` the device empties its frame slots and forgets an upload. */
  async hello(reset: boolean, tries?: number): Promise<Capabilities> {
    const p = await this.call(Msg.HELLO, helloRequest(reset, this.hostMax), { respBytes: 176, tries });
    const caps = parseHello(p);
    this.caps = caps;
    this.window = Math.max(1, caps.window);
    return caps;
  }

  async stats(): Promise<DeviceStats> {
    return parseStats(await this.call(Msg.STATS, Buffer.alloc(0), { respBytes: 48 }));
  }

  async ping(data: Buffer, tries?: number): Promise<Buffer> {
    return this.call(Msg.PING, data, { respBytes: data.length, tries });
  }

  /** Data bytes per FRAME_DATA/UPLOAD_DATA/READ packet. */
  chunkBytes(): number {
    const dev = this.caps?.maxPayload ?? 256;
    return Math.max(4, (Math.min(dev, this.hostMax) - 8) & ~3);
  }

  /** Runs `count` numbered jobs with at most the window in flight; the first failure stops the rest. */
  private async pool(count: number, job: (i: number) => Promise<void>): Promise<void> {
    let next = 0;
    let failed: unknown;
    const worker = async (): Promise<void> => {
      while (failed === undefined && next < count) {
        const i = next++;
        try {
          await job(i);
        } catch (e) {
          if (failed === undefined) failed = e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.window, count) }, worker));
    if (failed !== undefined) throw failed;
  }

  /**
   * Uploads a device image unless the device holds its digest. Returns true when bytes were sent.
   * `progress` is called with the bytes acknowledged so far.
   */
  async upload(image: Buffer, digest: string, progress?: (done: number, total: number) => void): Promise<boolean> {
    const begin = Buffer.alloc(36);
    begin.writeUInt32LE(image.length, 0);
    Buffer.from(digest, 'hex').copy(begin, 4);
    const b = await this.call(Msg.UPLOAD_BEGIN, begin, { respBytes: 8 });
    if (b[0] === 1) return false;
    const token = b.readUInt16LE(2);
    const chunk = Math.min(this.chunkBytes(), b.readUInt32LE(4) || this.chunkBytes());
    const n = Math.ceil(image.length / chunk);
    let done = 0;
    await this.pool(n, async (i) => {
      const part = image.subarray(i * chunk, Math.min(image.length, (i + 1) * chunk));
      const head = Buffer.alloc(6);
      head.writeUInt16LE(token, 0);
      head.writeUInt32LE(i * chunk, 2);
      await this.call(Msg.UPLOAD_DATA, Buffer.concat([head, part]));
      done += part.length;
      progress?.(done, image.length);
    });
    const end = Buffer.alloc(2);
    end.writeUInt16LE(token, 0);
    // The device hashes, checks and loads the image before answering: allow for it.
    const e = await this.call(Msg.UPLOAD_END, end, { respBytes: 36, extraMs: 5000 + image.length / 100 });
    if (e.subarray(0, 32).toString('hex') !== digest) {
      throw new ZeroqError('fpga-protocol', 'the device loaded another digest than the one uploaded', this.link.path);
    }
    return true;
  }

  /**
   * One frame through slot `slot`: its bytes, INFER (answered when computed) and the result.
   * The result is checked against its CRC; the caller checks the digest and the heads.
   */
  async frame(slot: number, frameId: number, rgb: Uint8Array, inferMs: number, limitMs = 30000): Promise<{ info: InferResult; result: Buffer }> {
    const chunk = this.chunkBytes();
    const n = Math.ceil(rgb.length / chunk);
    await this.pool(n, async (i) => {
      const head = Buffer.alloc(5);
      head[0] = slot;
      head.writeUInt32LE(i * chunk, 1);
      await this.call(Msg.FRAME_DATA, Buffer.concat([head, rgb.subarray(i * chunk, Math.min(rgb.length, (i + 1) * chunk))]));
    });
    const req = Buffer.alloc(12);
    req[0] = slot;
    req.writeUInt32LE(frameId >>> 0, 4);
    req.writeUInt32LE(crc(rgb), 8);
    const info = parseInfer(await this.infer(req, inferMs, limitMs));
    if (info.frameId !== frameId >>> 0 || info.slot !== slot) {
      throw new ZeroqError('fpga-protocol', `INFER answered frame ${info.frameId} slot ${info.slot}, asked ${frameId} slot ${slot}`, this.link.path);
    }
    const result = Buffer.alloc(info.resultBytes);
    const m = Math.ceil(info.resultBytes / chunk);
    await this.pool(m, async (i) => {
      const off = i * chunk;
      const len = Math.min(chunk, info.resultBytes - off);
      const r = Buffer.alloc(12);
      r[0] = slot;
      r[1] = 0;
      r.writeUInt16LE(len, 2);
      r.writeUInt32LE(frameId >>> 0, 4);
      r.writeUInt32LE(off, 8);
      const p = await this.call(Msg.READ, r, { respBytes: 8 + len });
      if (p.length !== 8 + len || p.readUInt32LE(0) !== frameId >>> 0 || p.readUInt32LE(4) !== off) {
        throw new ZeroqError('fpga-protocol', `READ answered ${p.length - 8} bytes at ${p.readUInt32LE(4)}, asked ${len} at ${off}`, this.link.path);
      }
      p.copy(result, off, 8);
    });
    if (crc(result) !== info.resultCrc) throw new ZeroqError('fpga-result-crc', 'the result does not match its CRC', this.link.path);
    return { info, result };
  }

  /**
   * INFER, answered when the frame is computed. The first send waits the expected computation
   * time; then the request is repeated: while computing the device answers a repeat with E_BUSY at
   * once, and with the result once done. So a lost request or answer costs one deadline, not a
   * computation's worth; silence `tries` times in a row is a dead link, computing beyond `limitMs`
   * a stuck device.
   */
  private async infer(req: Buffer, expectMs: number, limitMs: number): Promise<Buffer> {
    const respBytes = 44 + 16 * 8;
    const pause = Math.min(100, Math.max(10, expectMs / 8));
    const t0 = performance.now();
    let silent = 0;
    let extra = expectMs;
    await this.acquire();
    try {
      for (;;) {
        this.counters.requests++;
        const p = await this.once(Msg.INFER, req, respBytes, extra);
        extra = 0;
        if (!p) {
          if (++silent >= this.tries) throw new LinkTimeout(Msg.INFER, silent, this.base, this.link.path);
          this.counters.retries++;
          continue;
        }
        if (p.type !== (Msg.INFER | PKT_RESPONSE)) throw new ZeroqError('fpga-protocol', `response type 0x${p.type.toString(16)} to INFER`, this.link.path);
        if (p.status === Err.BUSY) {
          silent = 0;
          if (performance.now() - t0 > limitMs) throw new ZeroqError('fpga-timeout', `the device computed for more than ${Math.round(limitMs)} ms`, this.link.path);
          await new Promise((r) => setTimeout(r, pause));
          continue;
        }
        if (p.status !== 0) throw new DeviceError(p.status, Msg.INFER, p.payload.toString('utf8').replace(/[^\x20-\x7e]/g, ''), this.link.path);
        return p.payload;
      }
    } finally {
      this.release();
    }
  }

  /** Per-layer accelerator cycles of the frame last computed in `slot`. */
  async layerCycles(slot: number, frameId: number, layers: number): Promise<Uint32Array> {
    const out = new Uint32Array(layers);
    const bytes = 4 * layers;
    const chunk = this.chunkBytes();
    for (let off = 0; off < bytes; off += chunk) {
      const len = Math.min(chunk, bytes - off);
      const r = Buffer.alloc(12);
      r[0] = slot;
      r[1] = 1;
      r.writeUInt16LE(len, 2);
      r.writeUInt32LE(frameId >>> 0, 4);
      r.writeUInt32LE(off, 8);
      const p = await this.call(Msg.READ, r, { respBytes: 8 + len });
      for (let i = 0; i < len / 4; i++) out[off / 4 + i] = p.readUInt32LE(8 + 4 * i);
    }
    return out;
  }
}
