/**
 * Packets of docs/formats/serial-protocol.md §1: a 6-byte header (type, status, seq, len), the
 * payload and a CRC-32, COBS-encoded and ended by 0x00. The firmware's C side is
 * firmware-bridge/src/frame.c; both follow the spec, neither is generated from the other.
 */
import { crc32 } from 'node:zlib';
import { ZeroqError } from '../../util/errors.js';

export const PKT_HEADER = 6;
export const PKT_OVERHEAD = 10;
export const PKT_RESPONSE = 0x80;

if (typeof crc32 !== 'function') {
  throw new ZeroqError('fpga-node', 'the fpga engine needs node:zlib crc32 (Node 20.15 or later)');
}

/** CRC-32 (IEEE 802.3, zlib's). */
export function crc(data: Uint8Array, init = 0): number {
  return crc32(data, init) >>> 0;
}

/** COBS: encodes `data` so that it holds no zero byte (code bytes replace zeros, one more per 254 non-zero bytes). */
export function cobsEncode(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.length + Math.floor(data.length / 254) + 1);
  let o = 1;
  let code = 0;
  let run = 1;
  for (let i = 0; i < data.length; i++) {
    const b = data[i];
    if (b === 0) {
      out[code] = run;
      code = o++;
      run = 1;
    } else {
      out[o++] = b;
      if (++run === 0xff) {
        out[code] = run;
        code = o++;
        run = 1;
      }
    }
  }
  out[code] = run;
  return out.subarray(0, o);
}

/** Decodes a COBS block (without its delimiter); undefined when it is not a valid encoding. */
export function cobsDecode(data: Uint8Array): Buffer | undefined {
  const out = Buffer.allocUnsafe(data.length);
  let i = 0;
  let o = 0;
  while (i < data.length) {
    const code = data[i++];
    if (code === 0) return undefined;
    const len = code - 1;
    if (len > data.length - i) return undefined;
    for (let j = 0; j < len; j++) {
      const b = data[i++];
      if (b === 0) return undefined;
      out[o++] = b;
    }
    if (code !== 0xff && i < data.length) out[o++] = 0;
  }
  return out.subarray(0, o);
}

export interface Packet {
  type: number;
  status: number;
  seq: number;
  payload: Buffer;
}

/** The wire bytes of one packet: COBS(header, payload, CRC) and the 0x00 delimiter. */
export function encodePacket(type: number, status: number, seq: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  if (payload.length > 0xffff) throw new ZeroqError('fpga-packet', `payload of ${payload.length} bytes exceeds 65535`);
  const pkt = Buffer.allocUnsafe(PKT_OVERHEAD + payload.length);
  pkt[0] = type;
  pkt[1] = status;
  pkt.writeUInt16LE(seq & 0xffff, 2);
  pkt.writeUInt16LE(payload.length, 4);
  pkt.set(payload, PKT_HEADER);
  pkt.writeUInt32LE(crc(pkt.subarray(0, PKT_HEADER + payload.length)), PKT_HEADER + payload.length);
  const enc = cobsEncode(pkt);
  const wire = Buffer.allocUnsafe(enc.length + 1);
  enc.copy(wire);
  wire[enc.length] = 0;
  return wire;
}

/** Wire bytes of a packet with `n` payload bytes whose content has no zero byte (the largest case). */
export function wireBytes(n: number): number {
  const m = PKT_OVERHEAD + n;
  return m + 1 + Math.floor(m / 254) + 1;
}

export interface DecoderCounters {
  packets: number;
  crcErrors: number;
  framingErrors: number;
  overruns: number;
}

/**
 * Byte-fed packet decoder: `push` returns the packets completed by a chunk. Frames that fail COBS,
 * length or CRC checks are dropped and counted; a frame longer than `maxPayload` is an overrun.
 */
export class FrameDecoder {
  readonly counters: DecoderCounters = { packets: 0, crcErrors: 0, framingErrors: 0, overruns: 0 };
  private buf: Buffer;
  private n = 0;
  private dropping = false;

  constructor(maxPayload = 65535) {
    this.buf = Buffer.allocUnsafe(PKT_OVERHEAD + maxPayload + Math.floor((PKT_OVERHEAD + maxPayload) / 254) + 2);
  }

  /** Forgets a partial frame (after a resynchronisation). */
  reset(): void {
    this.n = 0;
    this.dropping = false;
  }

  push(chunk: Uint8Array): Packet[] {
    const out: Packet[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === 0) {
        if (this.dropping) this.dropping = false;
        else if (this.n > 0) {
          const p = this.finish();
          if (p) out.push(p);
        }
        this.n = 0;
        continue;
      }
      if (this.dropping) continue;
      if (this.n === this.buf.length) {
        this.counters.overruns++;
        this.dropping = true;
        this.n = 0;
        continue;
      }
      this.buf[this.n++] = b;
    }
    return out;
  }

  private finish(): Packet | undefined {
    const d = cobsDecode(this.buf.subarray(0, this.n));
    if (!d || d.length < PKT_OVERHEAD || d.readUInt16LE(4) !== d.length - PKT_OVERHEAD) {
      this.counters.framingErrors++;
      return undefined;
    }
    const body = d.length - 4;
    if (crc(d.subarray(0, body)) !== d.readUInt32LE(body)) {
      this.counters.crcErrors++;
      return undefined;
    }
    this.counters.packets++;
    return { type: d[0], status: d[1], seq: d.readUInt16LE(2), payload: Buffer.from(d.subarray(PKT_HEADER, body)) };
  }
}
