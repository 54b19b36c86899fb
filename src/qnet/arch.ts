/**
 * The architecture of a network as data: a canonical description (everything that determines what
 * the network computes and how its heads are decoded, without names or cfg line numbers), its
 * sha256 (the architecture hash a device checks before accepting a weight set), and the schema that
 * reads a Network back from a weight-set manifest.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Layer, Network } from '../model/ir.js';

/** JSON with object keys sorted at every level: one text per value. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

function describeLayer(l: Layer): Record<string, unknown> {
  const { source: _source, index: _index, ...rest } = l;
  return rest;
}

/** What the architecture hash covers: input, letterbox, heads and every layer without its source. */
export function describeNetwork(net: Network): Record<string, unknown> {
  return { input: net.input, letterbox: net.letterbox, heads: net.heads, layers: net.layers.map(describeLayer) };
}

/** "sha256:<hex>" of the canonical description. */
export function architectureHash(net: Network): string {
  return 'sha256:' + createHash('sha256').update(canonicalJson(describeNetwork(net))).digest('hex');
}

const int = z.number().int();
const nat = int.nonnegative();
const shape = z.strictObject({ c: nat, h: nat, w: nat });
const activation = z.enum(['linear', 'leaky', 'relu', 'mish', 'swish', 'logistic']);
const base = { index: nat, inputs: z.array(int.min(-1)).min(1), out: shape, source: z.string().optional() };

const layerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    ...base,
    kind: z.literal('conv'),
    filters: int.positive(),
    size: int.positive(),
    stride: int.positive(),
    pad: nat,
    groups: int.positive(),
    activation,
    batchNormalize: z.boolean(),
  }),
  z.strictObject({ ...base, kind: z.literal('maxpool'), size: int.positive(), stride: int.positive(), padding: nat }),
  z.strictObject({ ...base, kind: z.literal('route'), groups: int.positive(), groupId: nat }),
  z.strictObject({ ...base, kind: z.literal('shortcut'), activation }),
  z.strictObject({ ...base, kind: z.literal('upsample'), stride: int.positive() }),
  z.strictObject({ ...base, kind: z.literal('dropout'), probability: z.number() }),
  z.strictObject({
    ...base,
    kind: z.literal('yolo'),
    classes: int.positive(),
    anchors: z.array(z.number()),
    mask: z.array(nat),
    scaleXY: z.number(),
    newCoords: z.boolean(),
    nmsKind: z.enum(['default', 'greedynms', 'diounms', 'cornersnms']),
    betaNms: z.number(),
  }),
]);

export const networkSchema = z.strictObject({
  name: z.string(),
  input: shape,
  letterbox: z.boolean(),
  layers: z.array(layerSchema).min(1),
  heads: z.array(nat),
});
