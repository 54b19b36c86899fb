/**
 * Self-test frames carried in a weight set (manifest key `selftest`, docs/formats/weight-set.md):
 * a few network inputs with the digest of the integer head tensors the set must produce on them. A
 * device runs them on the engine that will run the set before it swaps it in; any engine that
 * follows docs/formats/fixed-point.md gives the same integers, so the same digest.
 *
 * A frame is stored at 1/scale of the network input (scale 4, 2 or 1: the largest dividing both
 * sides), raw RGB, raw-deflated, base64; it is expanded to the input size by repeating each pixel
 * scale×scale times. About 20 KB per frame at 320×320 instead of 300 KB.
 */
import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { z } from 'zod';
import type { Engine, Frame, HeadTensor } from '../engine/engine.js';
import type { Network } from '../model/ir.js';
import { ZeroqError } from '../util/errors.js';
import { loadSharp } from '../util/sharp.js';

export const goldenFrameSchema = z.strictObject({
  name: z.string(),
  scale: z.union([z.literal(1), z.literal(2), z.literal(4)]),
  rgb: z.string().min(1),
  heads: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});
export const selftestSchema = z.looseObject({ frames: z.array(goldenFrameSchema) });

export type GoldenFrame = z.infer<typeof goldenFrameSchema>;

export function goldenScale(w: number, h: number): 1 | 2 | 4 {
  for (const s of [4, 2] as const) if (w % s === 0 && h % s === 0) return s;
  return 1;
}

/** The network input of a golden frame. */
export function expandGolden(g: GoldenFrame, net: Network): Frame {
  const { w, h } = net.input;
  if (w % g.scale !== 0 || h % g.scale !== 0) throw new ZeroqError('selftest', `scale ${g.scale} does not divide the input ${w}x${h}`, g.name);
  const sw = w / g.scale;
  const sh = h / g.scale;
  let small: Buffer;
  try {
    small = inflateRawSync(Buffer.from(g.rgb, 'base64'), { maxOutputLength: sw * sh * 3 + 1 });
  } catch (e) {
    throw new ZeroqError('selftest', `frame does not inflate: ${(e as Error).message}`, g.name);
  }
  if (small.length !== sw * sh * 3) throw new ZeroqError('selftest', `${small.length} bytes, expected ${sw}x${sh} RGB`, g.name);
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const sy = Math.floor(y / g.scale);
    for (let x = 0; x < w; x++) {
      const s = (sy * sw + Math.floor(x / g.scale)) * 3;
      const d = (y * w + x) * 3;
      rgb[d] = small[s];
      rgb[d + 1] = small[s + 1];
      rgb[d + 2] = small[s + 2];
    }
  }
  return { rgb, width: w, height: h };
}

/** sha256 over the integer head tensors, in head order, each as little-endian int32. */
export function headsDigest(heads: readonly HeadTensor[]): string {
  const h = createHash('sha256');
  for (const t of heads) {
    if (!t.raw) throw new ZeroqError('selftest', 'the engine gives no integer head tensors (self-tests need an integer engine)', `layer ${t.layer}`);
    const b = Buffer.alloc(t.raw.length * 4);
    for (let i = 0; i < t.raw.length; i++) b.writeInt32LE(t.raw[i], i * 4);
    h.update(b);
  }
  return `sha256:${h.digest('hex')}`;
}

/** Makes a golden frame from an image (resized to 1/scale of the input) with its digest on `engine`. */
export async function makeGoldenFrame(image: string, engine: Engine): Promise<GoldenFrame> {
  const { w, h } = engine.net.input;
  const scale = goldenScale(w, h);
  const sharp = await loadSharp();
  let small: Buffer;
  try {
    small = await sharp(image, { failOn: 'error' }).removeAlpha().toColourspace('srgb').resize(w / scale, h / scale, { fit: 'fill' }).raw().toBuffer();
  } catch (e) {
    throw new ZeroqError('image-read', `cannot decode image: ${(e as Error).message}`, image);
  }
  const g0: GoldenFrame = { name: image.split('/').pop()!, scale, rgb: deflateRawSync(small, { level: 9 }).toString('base64'), heads: `sha256:${'0'.repeat(64)}` };
  const heads = await engine.infer(expandGolden(g0, engine.net));
  return { ...g0, heads: headsDigest(heads) };
}

/** The golden frames of a manifest ([] when it has none). */
export function goldenFramesOf(manifest: Record<string, unknown>, where: string): GoldenFrame[] {
  if (manifest.selftest === undefined) return [];
  const r = selftestSchema.safeParse(manifest.selftest);
  if (!r.success) throw new ZeroqError('selftest', `manifest.selftest.${r.error.issues[0].path.join('.')}: ${r.error.issues[0].message}`, where);
  return r.data.frames;
}

export interface SelfTestResult {
  ok: boolean;
  frames: { name: string; ok: boolean; expected: string; got?: string; error?: string }[];
}

/** Runs the golden frames on an engine and compares the digests. */
export async function runSelfTest(frames: readonly GoldenFrame[], engine: Engine): Promise<SelfTestResult> {
  const out: SelfTestResult['frames'] = [];
  for (const g of frames) {
    try {
      const got = headsDigest(await engine.infer(expandGolden(g, engine.net)));
      out.push({ name: g.name, ok: got === g.heads, expected: g.heads, got });
    } catch (e) {
      out.push({ name: g.name, ok: false, expected: g.heads, error: (e as Error).message });
    }
  }
  return { ok: out.length > 0 && out.every((f) => f.ok), frames: out };
}

/**
 * The weight set with golden frames made from `images` (replacing any it had), computed on the
 * integer engine. The weights and the id stay; the digest changes, so sign the result afterwards.
 */
export async function addGoldenFrames(buf: Uint8Array, images: readonly string[], where: string): Promise<Buffer> {
  const { parseZqw, writeZqw } = await import('../qnet/zqw.js');
  const { openIntEngine } = await import('../engine/int.js');
  const f = parseZqw(buf, { trust: null, name: where });
  const m = f.manifest as Record<string, unknown> & typeof f.manifest;
  const engine = openIntEngine(f.qnet, { modelId: m.id });
  let frames: GoldenFrame[];
  try {
    frames = [];
    for (const im of images) frames.push(await makeGoldenFrame(im, engine));
  } finally {
    await engine.close();
  }
  const known = new Set(['format', 'formatVersion', 'arithmetic', 'id', 'created', 'source', 'architecture', 'network', 'input', 'classes', 'quantization', 'calibration', 'layers', 'payloadBytes']);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (!known.has(k)) extra[k] = v;
  extra.selftest = { frames };
  const { weights: _w, avgBitsPerWeight: _a, ...quantization } = m.quantization as Record<string, unknown>;
  const deflated = (Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).readUInt16LE(10) & 3) !== 0;
  return writeZqw(f.qnet, {
    id: m.id,
    created: m.created,
    source: m.source as { model: string },
    classes: m.classes,
    quantization,
    calibration: m.calibration as Record<string, unknown> | undefined,
    deflate: deflated,
    extra,
  });
}
