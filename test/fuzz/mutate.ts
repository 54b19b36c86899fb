/**
 * Damaged inputs as fast-check arbitraries: random bytes, truncations and bit flips of a seed, cfg
 * and YAML text edits, and weight sets whose manifest or payload is edited and then re-digested
 * (architecture hash and digest recomputed, as someone editing a file on purpose would), so that a
 * mutant gets past the digest into the checks behind it.
 */
import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { architectureHash } from '../../src/qnet/arch.js';
import type { Network } from '../../src/model/ir.js';

/** Values that sit on the edges of what decoders check. */
export const EDGE_NUMBERS = [
  0, 1, -1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 99, 127, 128, 255, 256, 1000, 4096, 4097, 16384, 32767, 32768, 65535, 65536,
  64000, 100000, 2 ** 24, 2 ** 27, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 53, -(2 ** 31), -(2 ** 31) - 1, -32768, 1e300, -1e300, 0.5,
  -0.5, 1e-300,
];

const U32_EDGES = [0, 1, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x1000000];

type ByteOp =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'u32'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'delete'; at: number; n: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'repeat'; at: number; n: number };

// Positions as fractions of the length, uniform (fast-check's bias would favour position 0).
const at = fc.noBias(fc.integer({ min: 0, max: 2 ** 30 - 1 })).map((i) => i / 2 ** 30);
const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('set' as const), at, value: fc.constantFrom(0, 0xff, 0x7f, 0x80, 0x20, 0x0a) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('u32' as const), at, value: fc.constantFrom(...U32_EDGES) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at, n: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('repeat' as const), at, n: fc.integer({ min: 1, max: 256 }) }) },
);

function applyByteOp(b: Buffer, o: ByteOp): Buffer {
  const i = Math.floor(o.at * Math.max(1, b.length));
  switch (o.op) {
    case 'flip':
      if (b.length > 0) b[i] ^= 1 << o.bit;
      return b;
    case 'set':
      if (b.length > 0) b[i] = o.value;
      return b;
    case 'u32':
      if (b.length >= 4) b.writeUInt32LE(o.value >>> 0, Math.min(i, b.length - 4));
      return b;
    case 'truncate':
      return b.subarray(0, i);
    case 'delete':
      return Buffer.concat([b.subarray(0, i), b.subarray(i + o.n)]);
    case 'insert':
      return Buffer.concat([b.subarray(0, i), Buffer.from(o.bytes), b.subarray(i)]);
    case 'repeat':
      return Buffer.concat([b.subarray(0, i + o.n), b.subarray(i)]);
  }
}

/** Bytes: a seed under 1-8 byte operations, or (rarely) random bytes. */
export function mutatedBytes(seeds: readonly Uint8Array[]): fc.Arbitrary<Buffer> {
  const edited = fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(byteOp, { minLength: 1, maxLength: 8 }))
    .map(([s, ops]) => ops.reduce<Buffer>((b, o) => applyByteOp(b, o), Buffer.from(seeds[s])));
  return fc.oneof({ weight: 12, arbitrary: edited }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a)) });
}

// ---- text (cfg, YAML) ----

/** Lines a cfg or config edit may insert: sections, options at edge values, syntax damage. */
const CFG_LINES = [
  '[net]', '[convolutional]', '[maxpool]', '[route]', '[shortcut]', '[upsample]', '[dropout]', '[yolo]', '[avgpool]', '[', ']', '[yolo',
  'mask=99', 'mask=0,1,2,3,4,5,6,7,8', 'anchors=', 'anchors=1,2,3', 'anchors=nan,inf', 'anchors=1e400,1', 'num=0', 'num=100000', 'classes=0',
  'classes=100000', 'classes=-1', 'width=64000', 'height=64000', 'width=100000', 'height=100000', 'channels=1', 'channels=0', 'channels=100000',
  'filters=65537', 'filters=0', 'size=65', 'size=0', 'stride=0', 'stride=1000', 'pad=1', 'padding=1000', 'groups=0', 'groups=3', 'layers=-1,-2',
  'layers=0', 'layers=1000', 'layers=-1000', 'from=-1', 'from=0', 'from=99', 'activation=mish', 'activation=tanh', 'activation=logistic',
  'batch_normalize=1', 'group_id=5', 'scale_x_y=1e39', 'probability=2', 'dilation=2', 'stride_x=2', '=', 'x', 'a=b=c', '#', '; comment',
  '\u0000', '\ufeff[net]', 'width=16\r', 'mask=0,,1',
];

/** YAML/JSON fragments a config edit may insert. */
const YAML_LINES = [
  'a: &a [1, 2]', 'b: *a', 'c: *zz', '<<: *a', 'model:', '  threads: 256', '  threads: 0', '  engine: fpga', '  path: ""', 'source: []', 'mqtt: null',
  '  port: 70000', 'detect:', '  threshold: 2', '  classes: [1, 2]', '!!binary aGVsbG8=', '? complex key', '- item', '{', '}', '[', ']', '"', "'",
  '--- ', '...', '%YAML 1.1', '%TAG ! tag:x,2000:', '!foo bar', 'x: !!int 1e400', 'y: 0x7fffffffffffffff', 'key: value: more', '\t- tab', 'k: &x', 'k2: *x',
  '__proto__: {polluted: 1}', 'constructor: {prototype: {x: 1}}', 'device_id: "a/b#"',
];

type TextOp =
  | { op: 'delete'; line: number }
  | { op: 'duplicate'; line: number }
  | { op: 'swap'; line: number; other: number }
  | { op: 'insert'; line: number; text: string }
  | { op: 'number'; nth: number; value: number }
  | { op: 'char'; at: number; ch: string };

function textOp(lines: readonly string[]): fc.Arbitrary<TextOp> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), line: at }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('duplicate' as const), line: at }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('swap' as const), line: at, other: at }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('insert' as const), line: at, text: fc.constantFrom(...lines) }) },
    { weight: 6, arbitrary: fc.record({ op: fc.constant('number' as const), nth: at, value: fc.constantFrom(...EDGE_NUMBERS) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('char' as const), at, ch: fc.constantFrom('', '=', ',', '[', ']', '#', ':', '-', ' ', '\n', '9', '&', '*', '{') }) },
  );
}

function applyTextOp(text: string, o: TextOp): string {
  const lines = text.split('\n');
  const k = (f: number): number => Math.floor(f * lines.length);
  switch (o.op) {
    case 'delete':
      lines.splice(k(o.line), 1);
      return lines.join('\n');
    case 'duplicate':
      lines.splice(k(o.line), 0, lines[k(o.line)] ?? '');
      return lines.join('\n');
    case 'swap': {
      const a = k(o.line);
      const b = k(o.other);
      [lines[a], lines[b]] = [lines[b], lines[a]];
      return lines.join('\n');
    }
    case 'insert':
      lines.splice(k(o.line), 0, o.text);
      return lines.join('\n');
    case 'number': {
      const nums = [...text.matchAll(/-?\d+(\.\d+)?/g)];
      if (nums.length === 0) return text;
      const m = nums[Math.floor(o.nth * nums.length)];
      return text.slice(0, m.index) + String(o.value) + text.slice(m.index! + m[0].length);
    }
    case 'char': {
      const i = Math.floor(o.at * text.length);
      return text.slice(0, i) + o.ch + text.slice(i + 1);
    }
  }
}

/** Text: a seed under 1-6 line/number/character edits. */
export function mutatedText(seeds: readonly string[], kind: 'cfg' | 'yaml'): fc.Arbitrary<string> {
  const lines = kind === 'cfg' ? CFG_LINES : YAML_LINES;
  return fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(textOp(lines), { minLength: 1, maxLength: 4 }))
    .map(([s, ops]) => ops.reduce((t, o) => applyTextOp(t, o), seeds[s]));
}

// ---- weight sets, edited and re-digested ----

const HEADER = 24;
const align4 = (n: number): number => Math.ceil(n / 4) * 4;

interface ZqwParts {
  flags: number;
  manifest: Record<string, unknown>;
  payload: Buffer;
}

/** Splits a well-formed .zqw (no signature) into its manifest and payload. */
export function splitZqw(buf: Buffer): ZqwParts {
  const flags = buf.readUInt16LE(10);
  const ml = buf.readUInt32LE(12);
  const pl = buf.readUInt32LE(16);
  const m = buf.subarray(HEADER, HEADER + ml);
  const p = buf.subarray(align4(HEADER + ml), align4(HEADER + ml) + pl);
  return {
    flags,
    manifest: JSON.parse((flags & 1 ? inflateRawSync(m) : m).toString('utf8')) as Record<string, unknown>,
    payload: Buffer.from(flags & 2 ? inflateRawSync(p) : p),
  };
}

/** A .zqw of these parts with correct lengths and digest (what someone editing on purpose writes). */
export function joinZqw(parts: ZqwParts, opts: { fixArch?: boolean } = {}): Buffer {
  const manifest = { ...parts.manifest };
  if (opts.fixArch) {
    try {
      manifest.architecture = architectureHash(manifest.network as Network);
    } catch {
      // A network the hash cannot describe stays with its old hash.
    }
  }
  const json = Buffer.from(JSON.stringify(manifest), 'utf8');
  const m = parts.flags & 1 ? deflateRawSync(json) : json;
  const p = parts.flags & 2 ? deflateRawSync(parts.payload) : parts.payload;
  const header = Buffer.alloc(HEADER);
  header.set([0x89, 0x5a, 0x51, 0x57, 0x0d, 0x0a, 0x1a, 0x0a]);
  header.writeUInt16LE(1, 8);
  header.writeUInt16LE(parts.flags, 10);
  header.writeUInt32LE(m.length, 12);
  header.writeUInt32LE(p.length, 16);
  const body = Buffer.concat([header, m, Buffer.alloc(align4(HEADER + m.length) - HEADER - m.length), p]);
  return Buffer.concat([body, createHash('sha256').update(body).digest(), Buffer.alloc(4)]);
}

/** Re-digests bytes that were a .zqw before a byte-level edit (when the header still allows it). */
export function redigest(buf: Buffer): Buffer {
  if (buf.length < HEADER + 36) return buf;
  const end = align4(HEADER + buf.readUInt32LE(12)) + buf.readUInt32LE(16);
  if (end < 0 || end + 36 > buf.length) return buf;
  const out = Buffer.from(buf);
  createHash('sha256').update(out.subarray(0, end)).digest().copy(out, end);
  return out;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every leaf and container of a JSON value with its path. */
function nodes(v: Json, path: (string | number)[] = [], out: { path: (string | number)[]; v: Json }[] = []): typeof out {
  out.push({ path, v });
  if (Array.isArray(v)) v.forEach((x, i) => nodes(x, [...path, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) nodes(x, [...path, k], out);
  return out;
}

type JsonOp =
  | { op: 'number'; pick: number; value: number }
  | { op: 'empty'; pick: number }
  | { op: 'drop'; pick: number }
  | { op: 'dup'; pick: number }
  | { op: 'word'; pick: number; value: string };

const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('number' as const), pick: at, value: fc.constantFrom(...EDGE_NUMBERS) }) },
  fc.record({ op: fc.constant('empty' as const), pick: at }),
  fc.record({ op: fc.constant('drop' as const), pick: at }),
  fc.record({ op: fc.constant('dup' as const), pick: at }),
  fc.record({ op: fc.constant('word' as const), pick: at, value: fc.constantFrom('conv', 'yolo', 'maxpool', 'route', 'mish', 'swish', 'tanh', '', 'x') }),
);

function applyJsonOp(root: Json, o: JsonOp): void {
  const all = nodes(root).filter((n) => n.path.length > 0);
  const want = (pred: (n: { v: Json }) => boolean) => {
    const c = all.filter(pred);
    return c.length ? c[Math.floor(o.pick * c.length)] : undefined;
  };
  const parentOf = (p: (string | number)[]): Json => p.slice(0, -1).reduce<Json>((x, k) => (x as Record<string | number, Json>)[k], root);
  const set = (p: (string | number)[], v: Json): void => {
    (parentOf(p) as Record<string | number, Json>)[p[p.length - 1]] = v;
  };
  switch (o.op) {
    case 'number': {
      const n = want((x) => typeof x.v === 'number');
      if (n) set(n.path, o.value);
      return;
    }
    case 'empty': {
      const n = want((x) => Array.isArray(x.v));
      if (n) set(n.path, []);
      return;
    }
    case 'drop': {
      const n = want(() => true);
      if (!n) return;
      const parent = parentOf(n.path);
      if (Array.isArray(parent)) parent.splice(n.path[n.path.length - 1] as number, 1);
      else delete (parent as Record<string, Json>)[n.path[n.path.length - 1] as string];
      return;
    }
    case 'dup': {
      const n = want((x) => Array.isArray(x.v) && x.v.length > 0);
      if (n) (n.v as Json[]).push(structuredClone((n.v as Json[])[0]));
      return;
    }
    case 'word': {
      const n = want((x) => typeof x.v === 'string');
      if (n) set(n.path, o.value);
      return;
    }
  }
}

/**
 * Weight sets edited on purpose: manifest values changed (numbers to edge values, arrays emptied or
 * grown, keys dropped) with the architecture hash recomputed (mostly) and the digest always; or
 * payload/whole-file byte edits re-digested; or plain byte damage.
 */
export function mutatedZqw(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  const parts = seeds.map(splitZqw);
  const manifestEdit = fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(jsonOp, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.integer({ min: 0, max: 9 }))
    .map(([s, ops, onNetwork, fix]) => {
      const manifest = structuredClone(parts[s].manifest) as Json;
      // Most edits go to the network or the layer entries, where the checks are.
      const target = onNetwork ? ((manifest as Record<string, Json>).network ?? manifest) : ((manifest as Record<string, Json>).layers ?? manifest);
      for (const o of ops) applyJsonOp(target, o);
      return joinZqw({ ...parts[s], manifest: manifest as Record<string, unknown> }, { fixArch: fix < 9 });
    });
  const payloadEdit = fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(byteOp, { minLength: 1, maxLength: 4 }))
    .map(([s, ops]) => joinZqw({ ...parts[s], payload: ops.reduce<Buffer>((b, o) => applyByteOp(b, o), Buffer.from(parts[s].payload)) }));
  return fc.oneof(
    { weight: 6, arbitrary: manifestEdit },
    { weight: 2, arbitrary: payloadEdit },
    { weight: 1, arbitrary: mutatedBytes(seeds).map(redigest) },
    { weight: 1, arbitrary: mutatedBytes(seeds) },
  );
}
