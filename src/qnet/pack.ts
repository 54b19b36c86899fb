/**
 * Sub-byte packing of Nw-bit signed weights: value i occupies bits [i·Nw, (i+1)·Nw) of a
 * little-endian bit stream (bit k of the stream is bit k%8 of byte floor(k/8)), in two's complement.
 * The last byte is zero-padded.
 */
import { ZeroqError } from '../util/errors.js';

export function packedBytes(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}

export function packWeights(q: Int8Array, bits: number, where?: string): Uint8Array {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new ZeroqError('pack-bits', `cannot pack ${bits}-bit values`, where);
  const out = new Uint8Array(packedBytes(q.length, bits));
  if (bits === 8) {
    out.set(new Uint8Array(q.buffer, q.byteOffset, q.length));
    return out;
  }
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const mask = (1 << bits) - 1;
  let acc = 0;
  let n = 0;
  let o = 0;
  for (let i = 0; i < q.length; i++) {
    const v = q[i];
    if (v < lo || v > hi) throw new ZeroqError('pack-range', `weight ${i} = ${v} does not fit ${bits} bits`, where);
    acc |= (v & mask) << n;
    n += bits;
    while (n >= 8) {
      out[o++] = acc & 0xff;
      acc >>>= 8;
      n -= 8;
    }
  }
  if (n > 0) out[o] = acc & 0xff;
  return out;
}

export function unpackWeights(data: Uint8Array, count: number, bits: number, where?: string): Int8Array {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new ZeroqError('pack-bits', `cannot unpack ${bits}-bit values`, where);
  if (data.length !== packedBytes(count, bits)) {
    throw new ZeroqError('pack-length', `${data.length} bytes hold ${count} ${bits}-bit values only in ${packedBytes(count, bits)}`, where);
  }
  const out = new Int8Array(count);
  if (bits === 8) {
    out.set(new Int8Array(data.buffer, data.byteOffset, count));
    return out;
  }
  const mask = (1 << bits) - 1;
  const sign = 1 << (bits - 1);
  let acc = 0;
  let n = 0;
  let p = 0;
  for (let i = 0; i < count; i++) {
    while (n < bits) {
      acc |= data[p++] << n;
      n += 8;
    }
    const u = acc & mask;
    out[i] = u & sign ? u - (mask + 1) : u;
    acc >>>= bits;
    n -= bits;
  }
  return out;
}
