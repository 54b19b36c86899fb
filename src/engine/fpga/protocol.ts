/**
 * Messages of docs/formats/serial-protocol.md (version 1): types, error codes, and the payloads the
 * host builds and reads.
 */
import { ZeroqError } from '../../util/errors.js';

export const PROTOCOL_VERSION = 1;

export const Msg = {
  HELLO: 0x01,
  PING: 0x02,
  STATS: 0x03,
  UPLOAD_BEGIN: 0x10,
  UPLOAD_DATA: 0x11,
  UPLOAD_END: 0x12,
  FRAME_DATA: 0x20,
  INFER: 0x21,
  READ: 0x22,
} as const;

export const Err = {
  VERSION: 1,
  TYPE: 2,
  ARG: 3,
  STATE: 4,
  DIGEST: 5,
  IMAGE: 6,
  NO_MEMORY: 7,
  TOO_BIG: 8,
  BUSY: 9,
  RANGE: 10,
  INPUT: 11,
  ACCEL: 12,
  STORAGE: 13,
} as const;

const ERR_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Err).map(([k, v]) => [v, `E_${k}`]));

export function errorName(status: number): string {
  return ERR_NAMES[status] ?? `error ${status}`;
}

/** Errors after which the device cannot run this weight set: fall back for good. */
export function isPermanent(status: number): boolean {
  return (
    status === Err.VERSION ||
    status === Err.TYPE ||
    status === Err.IMAGE ||
    status === Err.NO_MEMORY ||
    status === Err.TOO_BIG ||
    status === Err.ACCEL ||
    status === Err.STORAGE
  );
}

export const LAYER_KINDS = { conv: 1, maxpool: 2, route: 3, shortcut: 4, upsample: 5, dropout: 6, yolo: 7 } as const;
export const ACTIVATIONS = { linear: 0, leaky: 1, relu: 2, mish: 3, swish: 4, logistic: 5 } as const;

/** What HELLO answers (§3, 176 bytes). */
export interface Capabilities {
  version: number;
  minVersion: number;
  maxPayload: number;
  window: number;
  slots: number;
  maxLayers: number;
  layerKinds: number;
  weightBits: number;
  actBits: number;
  activations: number;
  maxInputs: number;
  maxK: number;
  maxStride: number;
  maxLut: number;
  maxSide: number;
  accelMem: number;
  imageCapacity: number;
  accelId: number;
  clockHz: number;
  bootId: number;
  /** 0 none, 1 loaded, 2 stored but refused at load. */
  imageState: number;
  /** sha256 of the loaded image, hex (zeros without one). */
  imageDigest: string;
  imageBytes: number;
  memUsed: number;
  firmware: string;
  imageName: string;
}

const cstr = (b: Buffer): string => {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
};

export function parseHello(p: Buffer): Capabilities {
  if (p.length < 176) throw new ZeroqError('fpga-protocol', `HELLO response of ${p.length} bytes (176)`);
  return {
    version: p[0],
    minVersion: p[1],
    maxPayload: p.readUInt16LE(2),
    window: p[4],
    slots: p[5],
    maxLayers: p.readUInt16LE(6),
    layerKinds: p.readUInt32LE(8),
    weightBits: p.readUInt16LE(12),
    actBits: p[14],
    activations: p[15],
    maxInputs: p[16],
    maxK: p[17],
    maxStride: p[18],
    maxLut: p.readUInt16LE(20),
    maxSide: p.readUInt16LE(22),
    accelMem: p.readUInt32LE(24),
    imageCapacity: p.readUInt32LE(28),
    accelId: p.readUInt32LE(32),
    clockHz: p.readUInt32LE(36),
    bootId: p.readUInt32LE(40),
    imageState: p[44],
    imageDigest: p.subarray(48, 80).toString('hex'),
    imageBytes: p.readUInt32LE(80),
    memUsed: p.readUInt32LE(84),
    firmware: cstr(p.subarray(88, 112)),
    imageName: cstr(p.subarray(112, 176)),
  };
}

export function helloRequest(resetSession: boolean, hostMaxPayload: number): Buffer {
  const b = Buffer.alloc(4);
  b[0] = PROTOCOL_VERSION;
  b[1] = resetSession ? 1 : 0;
  b.writeUInt16LE(hostMaxPayload, 2);
  return b;
}

export interface HeadDesc {
  layer: number;
  c: number;
  h: number;
  w: number;
  bits: number;
  frac: number;
  offset: number;
}

/** INFER's response (§3.2). */
export interface InferResult {
  frameId: number;
  slot: number;
  layersAccel: number;
  layersCpu: number;
  resultBytes: number;
  resultCrc: number;
  accelCycles: bigint;
  deviceUs: number;
  digestPrefix: string;
  heads: HeadDesc[];
}

export function parseInfer(p: Buffer): InferResult {
  if (p.length < 44) throw new ZeroqError('fpga-protocol', `INFER response of ${p.length} bytes`);
  const n = p[5];
  if (p.length !== 44 + 16 * n) throw new ZeroqError('fpga-protocol', `INFER response of ${p.length} bytes for ${n} heads`);
  const heads: HeadDesc[] = [];
  for (let i = 0; i < n; i++) {
    const d = p.subarray(44 + 16 * i);
    heads.push({ layer: d.readUInt16LE(0), c: d.readUInt16LE(2), h: d.readUInt16LE(4), w: d.readUInt16LE(6), bits: d[8], frac: d.readInt16LE(10), offset: d.readUInt32LE(12) });
  }
  return {
    frameId: p.readUInt32LE(0),
    slot: p[4],
    layersAccel: p.readUInt16LE(6),
    resultBytes: p.readUInt32LE(8),
    resultCrc: p.readUInt32LE(12),
    accelCycles: p.readBigUInt64LE(16),
    deviceUs: p.readUInt32LE(24),
    digestPrefix: p.subarray(28, 36).toString('hex'),
    layersCpu: p.readUInt16LE(36),
    heads,
  };
}

/** STATS (§3): the device's counters. */
export interface DeviceStats {
  framesRx: number;
  bytesRx: number;
  crcErrors: number;
  framingErrors: number;
  overruns: number;
  framesTx: number;
  bytesTx: number;
  inferred: number;
  accelErrors: number;
  uploads: number;
  refused: number;
  uptimeMs: number;
}

export function parseStats(p: Buffer): DeviceStats {
  if (p.length < 48) throw new ZeroqError('fpga-protocol', `STATS response of ${p.length} bytes`);
  const v = (i: number): number => p.readUInt32LE(4 * i);
  return {
    framesRx: v(0), bytesRx: v(1), crcErrors: v(2), framingErrors: v(3), overruns: v(4), framesTx: v(5),
    bytesTx: v(6), inferred: v(7), accelErrors: v(8), uploads: v(9), refused: v(10), uptimeMs: v(11),
  };
}
