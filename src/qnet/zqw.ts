/**
 * The .zqw weight-set file: docs/formats/weight-set.md. The reader checks magic, version, lengths,
 * digest, manifest schema and architecture hash before it builds anything.
 */
import { createHash, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { z } from 'zod';
import type { Network } from '../model/ir.js';
import { convWeightCount } from '../model/ir.js';
import { FRAC_LIMIT, LUT_MAX, LUT_OFFSET_MAX, validateQNet } from './validate.js';
import { networkProblem, problemWhere } from '../model/network-check.js';
import type { QConv, QNet, TensorFormat } from './types.js';
import { architectureHash, canonicalJson, networkSchema } from './arch.js';
import { packedBytes, packWeights, unpackWeights } from './pack.js';
import { ZeroqError } from '../util/errors.js';
import { defaultTrust } from './keys.js';

export const ZQW_MAGIC = Buffer.from([0x89, 0x5a, 0x51, 0x57, 0x0d, 0x0a, 0x1a, 0x0a]);
export const ZQW_VERSION = 1;
export const ARITHMETIC_VERSION = 1;
const HEADER = 24;
const DIGEST = 32;
const FLAG_MANIFEST_DEFLATED = 1;
const FLAG_PAYLOAD_DEFLATED = 2;
const MAX_MANIFEST = 64 * 2 ** 20;
const MAX_PAYLOAD = 2 ** 31 - 1;
const SIG_ED25519 = 1;
const SIG_BYTES = 97;

// Arithmetic, not bitwise: lengths read from a header reach 2^32, past 32-bit bitwise operators.
const align4 = (n: number): number => Math.ceil(n / 4) * 4;

const int = z.number().int();
// Every integer the reader puts into an Int32Array is range-checked here first (no wrap-around).
const int32 = int.min(-(2 ** 31)).max(2 ** 31 - 1);
const frac = int.min(-FRAC_LIMIT).max(FRAC_LIMIT);
const section = z.strictObject({ offset: int.nonnegative().max(MAX_PAYLOAD), bytes: int.nonnegative().max(MAX_PAYLOAD) });
const formatSchema = z.strictObject({ bits: z.union([z.literal(8), z.literal(16)]), frac });
const convSchema = z.strictObject({
  wbits: int.min(2).max(8),
  perChannel: z.boolean(),
  zeroCentered: z.boolean(),
  fw: z.array(frac),
  m: z.array(int.min(-(2 ** 15) + 1).max(2 ** 15 - 1)),
  fm: z.array(frac),
  bias: section,
  weights: section,
  lut: z.array(int32).min(1).max(LUT_MAX).optional(),
  lutShift: frac.optional(),
  lutOffset: int.min(-LUT_OFFSET_MAX).max(LUT_OFFSET_MAX).optional(),
});

export const manifestSchema = z.looseObject({
  format: z.literal('zeroq-weight-set'),
  formatVersion: int,
  arithmetic: int,
  id: z.string().min(1),
  created: z.string(),
  source: z.looseObject({ model: z.string() }),
  architecture: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  network: networkSchema,
  input: z.looseObject({ width: int, height: int, channels: int }),
  classes: z.array(z.string()).optional(),
  quantization: z.looseObject({}),
  calibration: z.looseObject({}).optional(),
  layers: z.array(z.strictObject({ index: int, format: formatSchema, conv: convSchema.optional() })),
  payloadBytes: int.nonnegative().max(MAX_PAYLOAD),
});

export type ZqwManifest = z.infer<typeof manifestSchema>;

/** What the caller adds to the QNet when writing. */
export interface ZqwMeta {
  /** Weight-set id; default: name, widths, granularity and a content hash. */
  id?: string;
  /** ISO time; default now. */
  created?: string;
  source: { model: string; cfg?: string; weights?: string; weightsSha256?: string };
  classes?: readonly string[];
  quantization?: Record<string, unknown>;
  calibration?: Record<string, unknown>;
  /** Store manifest and payload deflated (default true). */
  deflate?: boolean;
  /** Further manifest keys, kept as given (e.g. `selftest`, docs/formats/weight-set.md). */
  extra?: Record<string, unknown>;
}

export interface ZqwSignature {
  algorithm: 'ed25519';
  /** sha256 of the raw public key, hex. */
  keyId: string;
  signature: Buffer;
}

export interface ZqwFile {
  qnet: QNet;
  manifest: ZqwManifest;
  /** sha256 digest stored in (and checked against) the file, hex. */
  digest: string;
  signature?: ZqwSignature;
}

export interface ReadZqwOptions {
  /** Refuse the file unless its architecture hash is this ("sha256:…"). */
  expectArch?: string;
  /**
   * Trusted Ed25519 public keys. When given (even empty), the file must carry a signature (embedded,
   * or `detachedSignature`) by one of them that verifies; otherwise a signature is parsed but not
   * checked. The digest alone protects against damage, not against anyone who edits the file.
   * readZqw without `trust` checks against the process's default trust list (setDefaultTrust or
   * ZEROQ_TRUST, src/qnet/keys.ts) when one is set; `null` checks nothing.
   */
  trust?: readonly KeyObject[] | null;
  /** A detached signature (the contents of a .zqw.sig file), for a file without an embedded one. */
  detachedSignature?: Uint8Array;
  /** Where the bytes came from, for error messages. */
  name?: string;
}

function err(code: string, message: string, where: string): ZeroqError {
  return new ZeroqError(code, message, where);
}

function int32Bytes(a: Int32Array): Buffer {
  const b = Buffer.alloc(a.length * 4);
  for (let i = 0; i < a.length; i++) b.writeInt32LE(a[i], i * 4);
  return b;
}

/** Average weight width over the conv layers of a QNet. */
export function averageBits(qnet: QNet): { weights: number; bits: number } {
  let n = 0;
  let bits = 0;
  for (const c of qnet.convs) {
    if (!c) continue;
    n += c.q.length;
    bits += c.q.length * c.wbits;
  }
  return { weights: n, bits: n === 0 ? 0 : bits / n };
}

function defaultId(qnet: QNet, layersJson: string, payload: Buffer): string {
  const convs = qnet.convs.filter((c): c is QConv => c !== undefined);
  const wb = new Set(convs.map((c) => c.wbits));
  const ab = new Set(qnet.formats.map((f) => f.bits));
  const w = wb.size === 1 ? `${[...wb][0]}` : `${Math.min(...wb)}-${Math.max(...wb)}`;
  // Activations: "a8", or "a8h16" when the head tensors are wider.
  const a = ab.size === 1 ? `${[...ab][0]}` : `${Math.min(...ab)}h${Math.max(...ab)}`;
  const pc = convs.every((c) => c.perChannel) ? '-pc' : convs.some((c) => c.perChannel) ? '-mixed' : '-pl';
  const zc = convs.every((c) => c.zeroCentered) ? '-zc' : '';
  const h = createHash('sha256').update(layersJson).update(payload).digest('hex').slice(0, 12);
  return `${qnet.net.name}-w${w}a${a}${pc}${zc}-${h}`;
}

/** Serialises a QNet (validated first: a file written here always reads back). */
export function writeZqw(qnet: QNet, meta: ZqwMeta): Buffer {
  validateQNet(qnet);
  const { net } = qnet;
  const parts: Buffer[] = [];
  let offset = 0;
  const layers = net.layers.map((l, i) => {
    const format = { bits: qnet.formats[i].bits, frac: qnet.formats[i].frac };
    const c = qnet.convs[i];
    if (l.kind !== 'conv' || !c) return { index: i, format };
    const bias = int32Bytes(c.bias);
    const packed = Buffer.from(packWeights(c.q, c.wbits, `layer ${i}`));
    const padded = Buffer.concat([packed, Buffer.alloc(align4(packed.length) - packed.length)]);
    const entry = {
      index: i,
      format,
      conv: {
        wbits: c.wbits,
        perChannel: c.perChannel,
        zeroCentered: c.zeroCentered,
        fw: Array.from(c.fw),
        m: Array.from(c.m),
        fm: Array.from(c.fm),
        bias: { offset, bytes: bias.length },
        weights: { offset: offset + bias.length, bytes: packed.length },
        ...(c.lut ? { lut: Array.from(c.lut), lutShift: c.lutShift, lutOffset: c.lutOffset } : {}),
      },
    };
    parts.push(bias, padded);
    offset += bias.length + padded.length;
    return entry;
  });
  const payload = Buffer.concat(parts);
  const layersJson = canonicalJson(layers);
  const avg = averageBits(qnet);
  const manifest = {
    format: 'zeroq-weight-set',
    formatVersion: ZQW_VERSION,
    arithmetic: ARITHMETIC_VERSION,
    id: meta.id ?? defaultId(qnet, layersJson, payload),
    created: meta.created ?? new Date().toISOString(),
    source: meta.source,
    architecture: architectureHash(net),
    network: net,
    input: { width: net.input.w, height: net.input.h, channels: net.input.c, pixels: 'uint8', frac: 8 },
    ...(meta.classes ? { classes: [...meta.classes] } : {}),
    quantization: { ...meta.quantization, weights: avg.weights, avgBitsPerWeight: avg.bits },
    ...(meta.calibration ? { calibration: meta.calibration } : {}),
    ...meta.extra,
    layers,
    payloadBytes: payload.length,
  };
  const json = Buffer.from(JSON.stringify(manifest), 'utf8');
  const deflate = meta.deflate ?? true;
  const stored = deflate ? deflateRawSync(json, { level: 9 }) : json;
  const storedPayload = deflate ? deflateRawSync(payload, { level: 9 }) : payload;
  const header = Buffer.alloc(HEADER);
  ZQW_MAGIC.copy(header, 0);
  header.writeUInt16LE(ZQW_VERSION, 8);
  header.writeUInt16LE(deflate ? FLAG_MANIFEST_DEFLATED | FLAG_PAYLOAD_DEFLATED : 0, 10);
  header.writeUInt32LE(stored.length, 12);
  header.writeUInt32LE(storedPayload.length, 16);
  const pad = Buffer.alloc(align4(HEADER + stored.length) - HEADER - stored.length);
  const body = Buffer.concat([header, stored, pad, storedPayload]);
  const digest = createHash('sha256').update(body).digest();
  const sigLen = Buffer.alloc(4);
  return Buffer.concat([body, digest, sigLen]);
}

/** The Ed25519 key id: sha256 of the raw 32-byte public key, hex. */
export function keyId(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new ZeroqError('zqw-signature', 'the key is not an Ed25519 key');
  }
  return createHash('sha256').update(Buffer.from(jwk.x, 'base64url')).digest('hex');
}

/** A signature block (length + block) for a file's digest. */
export function signatureBlock(digest: Uint8Array, privateKey: KeyObject): Buffer {
  const pub = createPublicKey(privateKey);
  const block = Buffer.alloc(4 + SIG_BYTES);
  block.writeUInt32LE(SIG_BYTES, 0);
  block[4] = SIG_ED25519;
  Buffer.from(keyId(pub), 'hex').copy(block, 5);
  edSign(null, digest, privateKey).copy(block, 37);
  return block;
}

/** Where the digest of a well-formed file ends (its signature block follows). */
function bodyEnd(buf: Uint8Array): number {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return align4(HEADER + view.readUInt32LE(12)) + view.readUInt32LE(16) + DIGEST;
}

/** The file with an embedded signature (replacing any), after checking it reads. */
export function signZqw(buf: Uint8Array, privateKey: KeyObject): Buffer {
  parseZqw(buf);
  const end = bodyEnd(buf);
  return Buffer.concat([Buffer.from(buf.subarray(0, end)), signatureBlock(buf.subarray(end - DIGEST, end), privateKey)]);
}

/** The detached signature (.zqw.sig contents) of a file. */
export function detachedSignature(buf: Uint8Array, privateKey: KeyObject): Buffer {
  parseZqw(buf);
  const end = bodyEnd(buf);
  return signatureBlock(buf.subarray(end - DIGEST, end), privateKey);
}

function parseSignature(block: Buffer, where: string): ZqwSignature {
  if (block.length !== SIG_BYTES || block[0] !== SIG_ED25519) {
    throw err('zqw-signature', `unknown signature block (${block.length} bytes, algorithm ${block[0]})`, where);
  }
  return { algorithm: 'ed25519', keyId: block.subarray(1, 33).toString('hex'), signature: Buffer.from(block.subarray(33)) };
}

function readInt32(payload: Buffer, offset: number, n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = payload.readInt32LE(offset + i * 4);
  return out;
}

/** Parses and checks a weight set held in memory. */
export function parseZqw(input: Uint8Array, opts: ReadZqwOptions = {}): ZqwFile {
  const where = opts.name ?? 'weight set';
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < HEADER) throw err('zqw-truncated', `${buf.length} bytes, shorter than the ${HEADER}-byte header`, where);
  if (!buf.subarray(0, 8).equals(ZQW_MAGIC)) throw err('zqw-magic', 'not a zeroq weight set (bad magic)', where);
  const version = buf.readUInt16LE(8);
  if (version !== ZQW_VERSION) throw err('zqw-version', `format version ${version}; this zeroq reads version ${ZQW_VERSION}`, where);
  const flags = buf.readUInt16LE(10);
  if ((flags & ~(FLAG_MANIFEST_DEFLATED | FLAG_PAYLOAD_DEFLATED)) !== 0 || buf.readUInt32LE(20) !== 0) throw err('zqw-header', `unknown header flags 0x${flags.toString(16)} or reserved field set`, where);
  const ml = buf.readUInt32LE(12);
  const pl = buf.readUInt32LE(16);
  const p = align4(HEADER + ml);
  const digestAt = p + pl;
  const need = digestAt + DIGEST + 4;
  if (buf.length < need) throw err('zqw-truncated', `${buf.length} bytes, the header announces at least ${need}`, where);
  const sl = buf.readUInt32LE(digestAt + DIGEST);
  const total = need + sl;
  if (buf.length < total) throw err('zqw-truncated', `${buf.length} bytes, the header and signature length announce ${total}`, where);
  if (buf.length > total) throw err('zqw-trailing', `${buf.length - total} bytes after the end of the weight set`, where);
  const digest = createHash('sha256').update(buf.subarray(0, digestAt)).digest();
  if (!digest.equals(buf.subarray(digestAt, digestAt + DIGEST))) throw err('zqw-digest', 'digest mismatch: the file is corrupted', where);

  let signature: ZqwSignature | undefined;
  if (sl > 0) signature = parseSignature(buf.subarray(need, total), where);
  else if (opts.detachedSignature) {
    const d = Buffer.from(opts.detachedSignature);
    if (d.length < 4 || d.readUInt32LE(0) !== d.length - 4) throw err('zqw-signature', 'malformed detached signature', where);
    signature = parseSignature(d.subarray(4), where);
  }
  if (opts.trust) {
    if (!signature) throw err('zqw-signature', 'the weight set is not signed', where);
    const key = opts.trust.find((k) => keyId(k) === signature.keyId);
    if (!key) throw err('zqw-signature', `signed by key ${signature.keyId.slice(0, 16)}…, which is not trusted`, where);
    if (!edVerify(null, digest, key, signature.signature)) throw err('zqw-signature', 'signature does not verify', where);
  }

  let text: Buffer = buf.subarray(HEADER, HEADER + ml);
  if (flags & FLAG_MANIFEST_DEFLATED) {
    try {
      text = inflateRawSync(text, { maxOutputLength: MAX_MANIFEST });
    } catch (e) {
      throw err('zqw-manifest', `manifest does not inflate: ${(e as Error).message}`, where);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text.toString('utf8'));
  } catch (e) {
    throw err('zqw-manifest', `manifest is not JSON: ${(e as Error).message}`, where);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw err('zqw-manifest', `manifest.${issue.path.join('.')}: ${issue.message}`, where);
  }
  const manifest = parsed.data;
  if (manifest.formatVersion !== version) throw err('zqw-version', `manifest says version ${manifest.formatVersion}, header ${version}`, where);
  if (manifest.arithmetic !== ARITHMETIC_VERSION) {
    throw err('zqw-version', `arithmetic version ${manifest.arithmetic}; this zeroq implements ${ARITHMETIC_VERSION}`, where);
  }
  const net = manifest.network as Network;
  const arch = architectureHash(net);
  if (arch !== manifest.architecture) throw err('zqw-arch', `the network description hashes to ${arch}, the manifest says ${manifest.architecture}`, where);
  if (opts.expectArch !== undefined && arch !== opts.expectArch) {
    throw err('zqw-arch', `weight set for architecture ${arch}, expected ${opts.expectArch}`, where);
  }
  // The network's rules and size limits, before anything of its size is allocated.
  const problem = networkProblem(net);
  if (problem) throw err(problem.kind === 'limit' ? 'zqw-limit' : 'zqw-network', problem.message, `${where}: ${problemWhere(problem, 'network')}`);
  const mi = manifest.input;
  if (mi.width !== net.input.w || mi.height !== net.input.h || mi.channels !== net.input.c) {
    throw err('zqw-manifest', `manifest.input ${mi.width}x${mi.height}x${mi.channels} differs from the network's ${net.input.w}x${net.input.h}x${net.input.c}`, where);
  }
  if (manifest.layers.length !== net.layers.length) {
    throw err('zqw-payload', `${manifest.layers.length} layer entries for ${net.layers.length} layers`, where);
  }
  // The payload holds each conv's biases and weights (padded to 4 bytes), nothing more.
  const layout = net.layers.reduce((sum, l) => (l.kind === 'conv' ? sum + 4 * l.filters + align4(packedBytes(convWeightCount(net, l), 8)) : sum), 0);
  if (manifest.payloadBytes > layout) {
    throw err('zqw-payload', `the manifest announces a ${manifest.payloadBytes}-byte payload; the layers need at most ${layout}`, where);
  }

  // Build the QNet.
  let payload: Buffer = buf.subarray(p, p + pl);
  if (flags & FLAG_PAYLOAD_DEFLATED) {
    try {
      payload = inflateRawSync(payload, { maxOutputLength: Math.max(1, manifest.payloadBytes) });
    } catch (e) {
      throw err('zqw-payload', `payload does not inflate to the ${manifest.payloadBytes} bytes the manifest announces: ${(e as Error).message}`, where);
    }
  }
  if (payload.length !== manifest.payloadBytes) {
    throw err('zqw-payload', `payload of ${payload.length} bytes, the manifest announces ${manifest.payloadBytes}`, where);
  }
  const size = payload.length;
  // No two sections share a byte.
  const sections = manifest.layers
    .flatMap((e) => (e.conv ? [{ ...e.conv.bias, l: e.index }, { ...e.conv.weights, l: e.index }] : []))
    .filter((x) => x.bytes > 0)
    .sort((a, b) => a.offset - b.offset);
  for (let k = 1; k < sections.length; k++) {
    const a = sections[k - 1];
    const b = sections[k];
    if (b.offset < a.offset + a.bytes) {
      throw err('zqw-payload', `layer ${b.l}: a section at ${b.offset}+${b.bytes} overlaps one of layer ${a.l} at ${a.offset}+${a.bytes}`, where);
    }
  }
  const formats: TensorFormat[] = [];
  const convs: (QConv | undefined)[] = [];
  const inside = (s: { offset: number; bytes: number }, what: string, l: number): void => {
    if (s.offset % 4 !== 0 || s.offset + s.bytes > size) throw err('zqw-payload', `layer ${l}: ${what} at ${s.offset}+${s.bytes} is outside the ${size}-byte payload`, where);
  };
  manifest.layers.forEach((entry, i) => {
    const layer = net.layers[i];
    if (entry.index !== i) throw err('zqw-payload', `layer entry ${i} has index ${entry.index}`, where);
    formats.push({ bits: entry.format.bits, frac: entry.format.frac });
    if (layer.kind !== 'conv') {
      if (entry.conv) throw err('zqw-payload', `layer ${i} (${layer.kind}) has conv parameters`, where);
      convs.push(undefined);
      return;
    }
    const c = entry.conv;
    if (!c) throw err('zqw-payload', `conv layer ${i} has no parameters`, where);
    const O = layer.filters;
    for (const [name, a] of [['fw', c.fw], ['m', c.m], ['fm', c.fm]] as const) {
      if (a.length !== O) throw err('zqw-payload', `layer ${i}: ${name} has ${a.length} entries for ${O} filters`, where);
    }
    const count = convWeightCount(net, layer);
    if (c.bias.bytes !== O * 4) throw err('zqw-payload', `layer ${i}: ${c.bias.bytes} bias bytes for ${O} filters`, where);
    if (c.weights.bytes !== packedBytes(count, c.wbits)) {
      throw err('zqw-payload', `layer ${i}: ${c.weights.bytes} weight bytes, ${count} ${c.wbits}-bit weights take ${packedBytes(count, c.wbits)}`, where);
    }
    inside(c.bias, 'bias', i);
    inside(c.weights, 'weights', i);
    convs.push({
      wbits: c.wbits,
      perChannel: c.perChannel,
      zeroCentered: c.zeroCentered,
      q: unpackWeights(payload.subarray(c.weights.offset, c.weights.offset + c.weights.bytes), count, c.wbits, `layer ${i}`),
      fw: Int32Array.from(c.fw),
      m: Int32Array.from(c.m),
      fm: Int32Array.from(c.fm),
      bias: readInt32(payload, c.bias.offset, O),
      ...(c.lut ? { lut: Int32Array.from(c.lut), lutShift: c.lutShift, lutOffset: c.lutOffset } : {}),
    });
  });
  const qnet: QNet = { net, formats, convs };
  validateQNet(qnet);
  return { qnet, manifest, digest: digest.toString('hex'), signature };
}

/** Reads a weight set from a file (or bytes) and checks it; see parseZqw. */
export async function readZqw(src: Uint8Array | string, opts: ReadZqwOptions = {}): Promise<ZqwFile> {
  if (typeof src !== 'string') return parseZqw(src, { ...opts, trust: trustFor(opts) });
  let data: Buffer;
  try {
    data = await readFile(src);
  } catch (e) {
    throw new ZeroqError('zqw-read', `cannot read the weight set: ${(e as Error).message}`, src, { cause: e });
  }
  let detached = opts.detachedSignature;
  // A detached signature lives beside the file as <name>.sig (docs/formats/weight-set.md).
  if (!detached) detached = await readFile(`${src}.sig`).catch(() => undefined);
  return parseZqw(data, { ...opts, trust: trustFor(opts), detachedSignature: detached, name: opts.name ?? src });
}

function trustFor(opts: ReadZqwOptions): readonly KeyObject[] | null {
  return opts.trust === undefined ? (defaultTrust() ?? null) : opts.trust;
}
