/**
 * The device image (docs/formats/serial-protocol.md §7): a QNet in the binary form the bridge
 * firmware executes, and the check of a QNet against what a device says it can run.
 */
import { createHash } from 'node:crypto';
import type { Layer } from '../../model/ir.js';
import { packWeights } from '../../qnet/pack.js';
import type { QNet, TensorFormat } from '../../qnet/types.js';
import { ZeroqError } from '../../util/errors.js';
import { layerWhere } from '../../qnet/validate.js';
import { ACTIVATIONS, LAYER_KINDS, type Capabilities } from './protocol.js';

export const IMAGE_VERSION = 1;
const HEADER = 128;
const RECORD = 56;
const MAX_INPUTS = 4;
const align4 = (n: number): number => (n + 3) & ~3;

function inFormat(qnet: QNet, i: number): TensorFormat {
  return i === -1 ? { bits: 8, frac: 8 } : qnet.formats[i];
}

function fits(v: number, lo: number, hi: number): boolean {
  return Number.isInteger(v) && v >= lo && v <= hi;
}

/**
 * Encodes a (validated) QNet. `name` (the weight-set id) is stored truncated to 63 bytes. Throws a
 * ZeroqError 'fpga-image' naming the layer when a number does not fit the image's fields.
 */
export function encodeDeviceImage(qnet: QNet, name: string): Buffer {
  const { net } = qnet;
  const L = net.layers.length;
  const need = (ok: boolean, what: string, layer?: Layer): void => {
    if (!ok) throw new ZeroqError('fpga-image', `${what} does not fit the device image`, layer ? layerWhere(layer) : net.name);
  };
  need(L <= 0xffff && net.heads.length <= 0xffff, `${L} layers`);
  need(fits(net.input.h, 1, 0xffff) && fits(net.input.w, 1, 0xffff) && net.input.c === 3, `input ${net.input.c}x${net.input.h}x${net.input.w}`);
  // Data blocks: channel parameters, packed weights, tables; offsets fixed in a first pass.
  const blocks: Buffer[] = [];
  let at = HEADER + RECORD * L;
  const add = (b: Buffer): number => {
    const off = at;
    const padded = Buffer.alloc(align4(b.length));
    b.copy(padded);
    blocks.push(padded);
    at += padded.length;
    return off;
  };
  const records = Buffer.alloc(RECORD * L);
  for (const layer of net.layers) {
    const r = records.subarray(RECORD * layer.index, RECORD * (layer.index + 1));
    need(layer.inputs.length >= 1 && layer.inputs.length <= MAX_INPUTS, `${layer.inputs.length} inputs`, layer);
    const fmt = layer.kind === 'yolo' ? inFormat(qnet, layer.inputs[0]) : qnet.formats[layer.index];
    need(fits(fmt.frac, -32768, 32767), `fraction bits ${fmt.frac}`, layer);
    need(fits(layer.out.c, 1, 0xffff) && fits(layer.out.h, 1, 0xffff) && fits(layer.out.w, 1, 0xffff), 'output shape', layer);
    r[0] = LAYER_KINDS[layer.kind];
    r[2] = layer.inputs.length;
    r[3] = fmt.bits;
    r.writeInt16LE(fmt.frac, 4);
    for (let j = 0; j < MAX_INPUTS; j++) r.writeInt16LE(j < layer.inputs.length ? layer.inputs[j] : -1, 8 + 2 * j);
    r.writeUInt16LE(layer.out.c, 16);
    r.writeUInt16LE(layer.out.h, 18);
    r.writeUInt16LE(layer.out.w, 20);
    const params = (vals: number[]): void => {
      vals.forEach((v, j) => {
        need(fits(v, 0, 0xffff), `parameter ${v}`, layer);
        r.writeUInt16LE(v, 24 + 2 * j);
      });
    };
    switch (layer.kind) {
      case 'conv': {
        const q = qnet.convs[layer.index]!;
        r[1] = ACTIVATIONS[layer.activation];
        params([layer.filters, layer.size, layer.stride, layer.pad, layer.groups, q.wbits]);
        const O = layer.filters;
        const p = Buffer.alloc(8 * O);
        for (let o = 0; o < O; o++) {
          need(fits(q.fw[o], -128, 127) && fits(q.fm[o], -128, 127), `fw ${q.fw[o]} / fm ${q.fm[o]} of channel ${o} (int8)`, layer);
          need(fits(q.m[o], -32768, 32767), `M ${q.m[o]} of channel ${o}`, layer);
          need(fits(q.bias[o], -(2 ** 31), 2 ** 31 - 1), `B ${q.bias[o]} of channel ${o}`, layer);
          p.writeInt32LE(q.bias[o], 8 * o);
          p.writeInt16LE(q.m[o], 8 * o + 4);
          p.writeInt8(q.fw[o], 8 * o + 6);
          p.writeInt8(q.fm[o], 8 * o + 7);
        }
        r.writeUInt32LE(add(p), 36);
        r.writeUInt32LE(add(Buffer.from(packWeights(q.q, q.wbits, layerWhere(layer)))), 40);
        if (q.lut) {
          need(fits(q.lut.length, 1, 0xffff), `a table of ${q.lut.length} entries`, layer);
          need(fits(q.lutShift!, -32768, 32767) && fits(q.lutOffset!, -(2 ** 31), 2 ** 31 - 1), 'table shift/offset', layer);
          const t = Buffer.alloc(2 * q.lut.length);
          q.lut.forEach((v, j) => {
            need(fits(v, -32768, 32767), `table entry ${v}`, layer);
            t.writeInt16LE(v, 2 * j);
          });
          r.writeUInt32LE(add(t), 44);
          r.writeUInt16LE(q.lut.length, 48);
          r.writeInt16LE(q.lutShift!, 50);
          r.writeInt32LE(q.lutOffset!, 52);
        }
        break;
      }
      case 'maxpool':
        params([layer.size, layer.stride, layer.padding]);
        break;
      case 'route':
        params([layer.groups, layer.groupId]);
        break;
      case 'shortcut':
        r[1] = ACTIVATIONS[layer.activation];
        break;
      case 'upsample':
        params([layer.stride]);
        break;
      case 'dropout':
      case 'yolo':
        break;
    }
  }
  const h = Buffer.alloc(HEADER);
  h.write('ZQDI', 0, 'latin1');
  h.writeUInt16LE(IMAGE_VERSION, 4);
  h.writeUInt16LE(HEADER, 6);
  h.writeUInt32LE(at, 8);
  h.writeUInt16LE(L, 12);
  h.writeUInt16LE(net.heads.length, 14);
  h.writeUInt16LE(3, 16);
  h.writeUInt16LE(net.input.h, 18);
  h.writeUInt16LE(net.input.w, 20);
  h.writeUInt16LE(RECORD, 22);
  h.writeUInt32LE(HEADER, 24);
  h.writeUInt32LE(HEADER + RECORD * L, 28);
  h.writeUInt32LE(1, 32); // docs/formats/fixed-point.md version
  let nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > 63) nameBytes = nameBytes.subarray(0, 63);
  nameBytes.copy(h, 64);
  return Buffer.concat([h, records, ...blocks]);
}

export function imageDigest(image: Uint8Array): string {
  return createHash('sha256').update(image).digest('hex');
}

/**
 * Why a device cannot run this QNet (undefined when it can, as far as the handshake tells: the
 * memory the image needs only the device knows).
 */
export function deviceRefusal(qnet: QNet, caps: Capabilities, imageBytes: number): string | undefined {
  const { net } = qnet;
  if (net.layers.length > caps.maxLayers) return `${net.layers.length} layers, the device takes ${caps.maxLayers}`;
  if (Math.max(net.input.w, net.input.h) > caps.maxSide) return `input ${net.input.w}x${net.input.h}, the device takes sides up to ${caps.maxSide}`;
  if (imageBytes > caps.imageCapacity) return `device image of ${imageBytes} bytes, the device stores ${caps.imageCapacity}`;
  for (const layer of net.layers) {
    const where = layerWhere(layer);
    if (!(caps.layerKinds & (1 << LAYER_KINDS[layer.kind]))) return `${where}: the device does not run ${layer.kind} layers`;
    if (layer.inputs.length > caps.maxInputs) return `${where}: ${layer.inputs.length} inputs, the device takes ${caps.maxInputs}`;
    const fmt = qnet.formats[layer.index];
    if (layer.kind !== 'yolo' && !(caps.actBits & (fmt.bits === 16 ? 2 : 1))) return `${where}: ${fmt.bits}-bit tensors`;
    if (layer.kind === 'conv' || layer.kind === 'shortcut') {
      if (!(caps.activations & (1 << ACTIVATIONS[layer.activation]))) return `${where}: activation ${layer.activation}`;
    }
    if (layer.kind !== 'conv') continue;
    const q = qnet.convs[layer.index]!;
    if (!(caps.weightBits & (1 << q.wbits))) return `${where}: ${q.wbits}-bit weights`;
    if (layer.size > caps.maxK) return `${where}: kernel ${layer.size}, the accelerator takes up to ${caps.maxK}`;
    if (layer.stride > caps.maxStride) return `${where}: stride ${layer.stride}, the accelerator takes up to ${caps.maxStride}`;
    if (q.lut) {
      if (q.lut.length > caps.maxLut) return `${where}: a table of ${q.lut.length} entries, the device takes ${caps.maxLut}`;
      const z = q.lutOffset!;
      if (z > 32768 || q.lut.length - 1 - z > 32767) return `${where}: table offset ${z} beyond the accelerator's 16-bit output`;
    }
  }
  return undefined;
}
