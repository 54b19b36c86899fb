/**
 * The fpga engine: runs a QNet on a serial-attached accelerator through the bridge firmware
 * (docs/formats/serial-protocol.md), with the CPU integer engine as its bit-exact fallback.
 *
 * A frame goes to the device while the link is up. A request without an answer is retried; then
 * the link is resynchronised (HELLO with a session reset, the image uploaded again if the device
 * lost it) and the frame tried once more; then the frame and the following ones are computed by
 * the int engine while a background loop reconnects with back-off (100 ms doubling to 250 ms),
 * reopening the port if it vanished. Every result from the device is checked (packet CRCs, the
 * result's CRC, the image digest, the head shapes and formats), so a detection never comes from
 * integers the device did not compute from this frame and these weights.
 */
import { EventEmitter } from 'node:events';
import { ZeroqError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import type { QNet } from '../../qnet/types.js';
import type { Engine, EngineLinkStatus, Frame, HeadTensor } from '../engine.js';
import { validateQNet } from '../../qnet/validate.js';
import { BridgeClient, DeviceError, HOST_MAX_PAYLOAD } from './client.js';
import { deviceRefusal, encodeDeviceImage, imageDigest } from './image.js';
import { SerialLink } from './link.js';
import { Err, isPermanent, type Capabilities, type InferResult } from './protocol.js';

/** Where the engine is: on the device, connecting, on the CPU while reconnecting, or on the CPU for good. */
export type LinkState = 'connecting' | 'ready' | 'fallback' | 'unsupported' | 'closed';

export interface FpgaCounters {
  /** Frames computed by the device / by the int engine. */
  deviceFrames: number;
  fallbackFrames: number;
  bytesOut: number;
  bytesIn: number;
  requests: number;
  retries: number;
  timeouts: number;
  /** Requests resent at once because a later one was answered first. */
  lost: number;
  /** Packets from the device dropped for a bad CRC / bad framing (COBS, length, overrun). */
  crcErrors: number;
  framingErrors: number;
  /** Results refused by the end-to-end checks (result CRC, digest, heads). */
  resultErrors: number;
  /** Resynchronisations after a failed frame / attempts of the background reconnect loop. */
  resyncs: number;
  reconnects: number;
  uploads: number;
  uploadBytes: number;
  /** Sum of the device's accelerator cycles and its frame time over device frames. */
  accelCycles: number;
  deviceUs: number;
}

export interface FpgaStatus {
  state: LinkState;
  device: string;
  counters: FpgaCounters;
  caps?: Capabilities;
  /** Why the engine is not on the device (the last failure), if it is not. */
  reason?: string;
  digest: string;
  imageBytes: number;
}

export interface FpgaEngineOptions {
  /** The bridge's port: a serial device, or the path bridge-host --link made. */
  device: string;
  /** A UART's baud rate: paces the deadlines (default: the link is taken to carry 1 MB/s). */
  baud?: number;
  /** The weight-set id (default the network's name). */
  modelId?: string;
  /** The CPU engine used when the device cannot compute a frame (bit-exact by contract). */
  fallback: Engine;
  /** Frames in flight at once (default 1; at most the device's slots). */
  inflight?: number;
  /** Fail `open` when the device cannot be reached or cannot run the network (default: fall back). */
  requireDevice?: boolean;
  /** The longest the device may compute one frame, ms (default: 10 times the last frame's device time, at least 30 s). */
  computeLimitMs?: number;
  /** Deadline floor per request, ms (default 250). */
  baseTimeoutMs?: number;
  /** Back-off of the reconnect loop, ms (default 100 doubling to 250). */
  backoffMs?: [number, number];
  /** Called with upload progress. */
  onUpload?: (done: number, total: number) => void;
}

const zeroCounters = (): FpgaCounters => ({
  deviceFrames: 0, fallbackFrames: 0, bytesOut: 0, bytesIn: 0, requests: 0, retries: 0, timeouts: 0, lost: 0, crcErrors: 0,
  framingErrors: 0, resultErrors: 0, resyncs: 0, reconnects: 0, uploads: 0, uploadBytes: 0, accelCycles: 0, deviceUs: 0,
});

/**
 * Emits 'state' (state: LinkState, reason?: string) whenever the link state changes.
 */
export class FpgaEngine extends EventEmitter implements Engine {
  readonly kind = 'fpga' as const;
  readonly net;
  readonly modelId: string;
  readonly image: Buffer;
  readonly digest: string;
  private _state: LinkState = 'connecting';
  private reason?: string;
  private port?: SerialLink;
  private client?: BridgeClient;
  private readonly counters = zeroCounters();
  /** Counters of links already closed (the live link's are added on read). */
  private readonly past = { bytesOut: 0, bytesIn: 0, requests: 0, retries: 0, timeouts: 0, lost: 0, crcErrors: 0, framingErrors: 0 };
  private connecting?: Promise<boolean>;
  private reconnectTimer?: NodeJS.Timeout;
  private backoff: number;
  private frameId = 1;
  private freeSlots: number[] = [];
  private slotWaiters: ((slot: number) => void)[] = [];
  private generation = 0;
  private fallbackQueue: Promise<unknown> = Promise.resolve();
  private lastDeviceUs = 0;
  private readonly expected: { layer: number; c: number; h: number; w: number; bits: number; frac: number }[];

  private constructor(
    private readonly qnet: QNet,
    private readonly opts: FpgaEngineOptions,
  ) {
    super();
    validateQNet(qnet);
    this.net = qnet.net;
    this.modelId = opts.modelId ?? qnet.net.name;
    this.image = encodeDeviceImage(qnet, this.modelId);
    this.digest = imageDigest(this.image);
    this.backoff = (opts.backoffMs ?? [100, 500])[0];
    this.expected = qnet.net.heads.map((y) => {
      const src = qnet.net.layers[y].inputs[0];
      const s = qnet.net.layers[src].out;
      return { layer: y, c: s.c, h: s.h, w: s.w, bits: qnet.formats[src].bits, frac: qnet.formats[src].frac };
    });
  }

  /**
   * Opens the engine: encodes the image, connects and uploads it when the device does not hold it.
   * Without `requireDevice` an unreachable device is not an error: frames run on the fallback
   * engine until the reconnect loop reaches it.
   */
  static async open(qnet: QNet, opts: FpgaEngineOptions): Promise<FpgaEngine> {
    const e = new FpgaEngine(qnet, opts);
    const ok = await e.connect();
    if (!ok) {
      if (opts.requireDevice) {
        await e.close();
        throw new ZeroqError('fpga-unavailable', e.reason ?? 'the device is not reachable', opts.device);
      }
      log.warn({ device: opts.device, reason: e.reason }, 'fpga: device not available; running on the CPU integer engine until it is');
    }
    return e;
  }

  private get state(): LinkState {
    return this._state;
  }

  private set state(s: LinkState) {
    if (s === this._state) return;
    this._state = s;
    this.emit('state', s, this.reason);
  }

  /** A method, not a field test: close() may run while a frame awaits. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  status(): FpgaStatus {
    const c = { ...this.counters };
    const live = this.liveCounters();
    for (const k of Object.keys(this.past) as (keyof typeof this.past)[]) c[k] = this.past[k] + live[k];
    return { state: this.state, device: this.opts.device, counters: c, caps: this.client?.caps, reason: this.reason, digest: this.digest, imageBytes: this.image.length };
  }

  link(): EngineLinkStatus {
    const s = this.status();
    const c = s.counters;
    return {
      state: s.state, device: s.device, reason: s.reason, bytesOut: c.bytesOut, bytesIn: c.bytesIn, retries: c.retries,
      timeouts: c.timeouts, crcErrors: c.crcErrors + c.resultErrors, framingErrors: c.framingErrors, resyncs: c.resyncs,
      reconnects: c.reconnects, uploads: c.uploads, deviceFrames: c.deviceFrames, fallbackFrames: c.fallbackFrames,
    };
  }

  onLinkChange(listener: (s: EngineLinkStatus) => void): () => void {
    const on = (): void => listener(this.link());
    this.on('state', on);
    return () => this.off('state', on);
  }

  private liveCounters(): typeof this.past {
    const l = this.port;
    const cl = this.client;
    return {
      bytesOut: l?.counters.bytesOut ?? 0,
      bytesIn: l?.counters.bytesIn ?? 0,
      requests: cl?.counters.requests ?? 0,
      retries: cl?.counters.retries ?? 0,
      timeouts: cl?.counters.timeouts ?? 0,
      lost: cl?.counters.lost ?? 0,
      crcErrors: l?.decoder.counters.crcErrors ?? 0,
      framingErrors: (l?.decoder.counters.framingErrors ?? 0) + (l?.decoder.counters.overruns ?? 0),
    };
  }

  private async dropLink(): Promise<void> {
    const live = this.liveCounters();
    for (const k of Object.keys(this.past) as (keyof typeof this.past)[]) this.past[k] += live[k];
    const l = this.port;
    this.port = undefined;
    this.client = undefined;
    if (l) await l.close();
  }

  /** Connects (or resynchronises): one attempt at a time; true when frames can go to the device. */
  private connect(): Promise<boolean> {
    if (!this.connecting) {
      this.connecting = this.connectOnce().finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async connectOnce(): Promise<boolean> {
    if (this.state === 'closed' || this.state === 'unsupported') return false;
    let answered = false;
    try {
      if (!this.port?.isOpen) {
        await this.dropLink();
        const link = await SerialLink.open(this.opts.device, this.opts.baud ?? 115200, HOST_MAX_PAYLOAD);
        if (this.isClosed()) {
          await link.close();
          return false;
        }
        this.port = link;
        this.client = new BridgeClient(link, {
          bytesPerSecond: this.opts.baud ? this.opts.baud / 10 : undefined,
          baseTimeoutMs: this.opts.baseTimeoutMs,
        });
        link.on('close', (why: string) => this.onLinkClosed(link, why));
      } else {
        // Resynchronise an open link: forget a partial packet, end one at the device.
        this.port.flushInput();
        this.port.send(Buffer.alloc(16));
      }
      const client = this.client!;
      const reconnect = this._state === 'fallback';
      const caps = await client.hello(true, reconnect ? 1 : 2);
      answered = true;
      this.generation++;
      const refusal = caps.version !== 1 ? `protocol version ${caps.version}` : deviceRefusal(this.qnet, caps, this.image.length);
      if (refusal) return this.unsupported(refusal);
      if (!(caps.imageState === 1 && caps.imageDigest === this.digest)) {
        const t0 = performance.now();
        log.info({ device: this.opts.device, weights: this.modelId, bytes: this.image.length }, 'fpga: uploading the weight set');
        const sent = await client.upload(this.image, this.digest, this.opts.onUpload);
        if (sent) {
          this.counters.uploads++;
          this.counters.uploadBytes += this.image.length;
          log.info({ device: this.opts.device, weights: this.modelId, ms: Math.round(performance.now() - t0) }, 'fpga: weight set uploaded');
        }
        await client.hello(false, 2);
      }
      if (reconnect) {
        // A link that answers a short HELLO may still lose every full-size packet (heavy corruption):
        // go back to the device only when a full-size packet survives the trip.
        const probe = Buffer.alloc(client.chunkBytes(), 0x5a);
        const echo = await client.ping(probe, 1);
        if (!echo.equals(probe)) throw new ZeroqError('fpga-probe', 'the link probe came back altered');
      }
      const slots = Math.max(1, Math.min(caps.slots, this.opts.inflight ?? 1));
      this.freeSlots = Array.from({ length: slots }, (_, i) => i);
      for (const wake of this.slotWaiters.splice(0)) wake(-1);
      this.reason = undefined;
      this.state = 'ready';
      this.backoff = (this.opts.backoffMs ?? [100, 250])[0];
      return true;
    } catch (e) {
      if (e instanceof DeviceError && isPermanent(e.status)) return this.unsupported(e.message);
      this.reason = (e as Error).message;
      // A port whose writes do not complete is reopened by the next attempt: a pty or USB device
      // that went away is not always reported (a write blocked on a hung-up port waits forever), and
      // the path may now name a new one. A port that only lost packets stays open.
      if (!answered && (this.port?.backlog ?? 0) > 0) await this.dropLink();
      if (!this.isClosed()) this.state = 'fallback';
      // A device that answered is there: try again soon (its link may be clearing); silence backs off.
      if (answered) this.backoff = (this.opts.backoffMs ?? [100, 250])[0];
      this.scheduleReconnect();
      return false;
    }
  }

  private unsupported(reason: string): false {
    this.reason = reason;
    this.state = 'unsupported';
    log.warn({ device: this.opts.device, reason }, 'fpga: the device cannot run this weight set; running on the CPU integer engine');
    return false;
  }

  private onLinkClosed(link: SerialLink, why: string): void {
    if (link !== this.port) return;
    this.reason = `link closed: ${why}`;
    if (this.state === 'ready' || this.state === 'connecting') {
      this.state = 'fallback';
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.state === 'closed' || this.state === 'unsupported') return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, (this.opts.backoffMs ?? [100, 250])[1]);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.state !== 'fallback') return;
      this.counters.reconnects++;
      void this.connect();
    }, delay);
    this.reconnectTimer.unref?.();
  }

  private takeSlot(): Promise<number> {
    const s = this.freeSlots.shift();
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((r) => this.slotWaiters.push(r));
  }

  private giveSlot(s: number, gen: number): void {
    if (gen !== this.generation) return; // slots were renewed by a resynchronisation
    const w = this.slotWaiters.shift();
    if (w) w(s);
    else this.freeSlots.push(s);
  }

  /** Heads from a checked device result. */
  private heads(info: InferResult, result: Buffer): HeadTensor[] {
    if (info.digestPrefix !== this.digest.slice(0, 16)) throw new ZeroqError('fpga-result', `the device ran image ${info.digestPrefix}…, not ${this.digest.slice(0, 16)}…`);
    if (info.heads.length !== this.expected.length) throw new ZeroqError('fpga-result', `${info.heads.length} heads, expected ${this.expected.length}`);
    return info.heads.map((h, i) => {
      const e = this.expected[i];
      if (h.layer !== e.layer || h.c !== e.c || h.h !== e.h || h.w !== e.w || h.bits !== e.bits || h.frac !== e.frac) {
        throw new ZeroqError('fpga-result', `head ${i}: layer ${h.layer} ${h.c}x${h.h}x${h.w} ${h.bits}-bit frac ${h.frac}, expected layer ${e.layer} ${e.c}x${e.h}x${e.w} ${e.bits}-bit frac ${e.frac}`);
      }
      const n = h.c * h.h * h.w;
      const bytes = (n * h.bits) / 8;
      if (h.offset + bytes > result.length) throw new ZeroqError('fpga-result', `head ${i} past the result`);
      const raw = new Int32Array(n);
      if (h.bits === 16) for (let j = 0; j < n; j++) raw[j] = result.readInt16LE(h.offset + 2 * j);
      else for (let j = 0; j < n; j++) raw[j] = result.readInt8(h.offset + j);
      const scale = 2 ** -h.frac;
      const data = new Float32Array(n);
      for (let j = 0; j < n; j++) data[j] = raw[j] * scale;
      return { layer: h.layer, c: h.c, h: h.h, w: h.w, raw, data, frac: h.frac };
    });
  }

  /** One frame on the device; throws on any failure after the client's retries. */
  private async onDevice(frame: Frame): Promise<HeadTensor[]> {
    const client = this.client;
    if (!client || this.state !== 'ready') throw new ZeroqError('fpga-not-ready', 'the device is not ready');
    const gen = this.generation;
    const slot = await this.takeSlot();
    if (slot < 0 || gen !== this.generation) throw new ZeroqError('fpga-resync', 'the link was resynchronised');
    try {
      const id = this.frameId;
      this.frameId = (this.frameId + 1) >>> 0 || 1;
      // The device answers INFER when the frame is computed (and a repeat with E_BUSY before):
      // the first answer is expected after about the last frame's device time (the first frame: 2 s),
      // a device computing for 10 times that (at least 30 s), or computeLimitMs, is taken as stuck.
      const lastMs = this.lastDeviceUs / 1000;
      const limitMs = this.opts.computeLimitMs ?? Math.max(30000, 10 * lastMs);
      const { info, result } = await client.frame(slot, id, frame.rgb, lastMs > 0 ? 1.5 * lastMs : 2000, limitMs);
      let heads: HeadTensor[];
      try {
        heads = this.heads(info, result);
      } catch (e) {
        this.counters.resultErrors++;
        throw e;
      }
      this.lastDeviceUs = info.deviceUs;
      this.counters.accelCycles += Number(info.accelCycles);
      this.counters.deviceUs += info.deviceUs;
      return heads;
    } catch (e) {
      if ((e as ZeroqError).code === 'fpga-result-crc') this.counters.resultErrors++;
      throw e;
    } finally {
      this.giveSlot(slot, gen);
    }
  }

  private checkFrame(frame: Frame): void {
    const { w, h } = this.net.input;
    if (frame.width !== w || frame.height !== h || frame.rgb.length !== w * h * 3) {
      throw new ZeroqError('FRAME_SIZE', `frame ${frame.width}x${frame.height} does not match the network input ${w}x${h}`, this.net.name);
    }
  }

  async infer(frame: Frame): Promise<HeadTensor[]> {
    if (this.state === 'closed') throw new ZeroqError('fpga-closed', 'the engine is closed', this.modelId);
    this.checkFrame(frame);
    if (this.state === 'ready') {
      for (let attempt = 0; attempt < 2 && this.state === 'ready'; attempt++) {
        const gen = this.generation;
        try {
          const heads = await this.onDevice(frame);
          this.counters.deviceFrames++;
          return heads;
        } catch (e) {
          if (this.isClosed()) throw new ZeroqError('fpga-closed', 'the engine closed during the frame', this.modelId);
          this.reason = (e as Error).message;
          if (e instanceof DeviceError && isPermanent(e.status)) {
            this.unsupported(e.message);
            break;
          }
          if (e instanceof DeviceError && e.status === Err.BUSY) continue;
          if (gen !== this.generation) continue; // another frame resynchronised meanwhile: just try again
          if (attempt > 0) break;
          this.counters.resyncs++;
          if (!(await this.connect())) break; // resynchronise, then one more try
        }
      }
      if (this.state === 'ready') {
        this.state = 'fallback';
        this.scheduleReconnect();
      }
    }
    return this.onFallback(frame);
  }

  /** The int engine, one frame at a time; its buffers are copied since it reuses them. */
  private onFallback(frame: Frame): Promise<HeadTensor[]> {
    const run = this.fallbackQueue.then(async () => {
      const heads = await this.opts.fallback.infer(frame);
      this.counters.fallbackFrames++;
      return heads.map((h) => ({ ...h, data: Float32Array.from(h.data), raw: h.raw ? Int32Array.from(h.raw) : undefined, computedOn: 'cpu' as const }));
    });
    this.fallbackQueue = run.catch(() => undefined);
    return run;
  }

  /** Per-layer accelerator cycles of the last frame in slot 0 (for benchmarks). */
  async layerCycles(frameId?: number): Promise<Uint32Array | undefined> {
    if (!this.client || this.state !== 'ready') return undefined;
    return this.client.layerCycles(0, frameId ?? ((this.frameId - 1) >>> 0), this.net.layers.length);
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    for (const wake of this.slotWaiters.splice(0)) wake(-1);
    await this.connecting?.catch(() => undefined);
    await this.dropLink();
    await this.fallbackQueue;
    await this.opts.fallback.close();
  }
}
