/**
 * Runs an engine over an image list and collects COCO results, as darknet `detector valid` writes
 * them. Decoding and resizing of the next images overlap inference of the current one; besides the
 * image being inferred, at most `prefetch` images are being decoded or held.
 */
import type { Engine, Frame } from '../engine/engine.js';
import { decodeHeads } from '../detect/decode.js';
import { prepareFrame } from '../detect/preprocess.js';
import type { DecodeOptions } from '../detect/types.js';
import type { Network, YoloLayer } from '../model/ir.js';
import type { CocoResult } from './coco.js';
import { categoriesFor, type ListedImage } from './dataset.js';

/** darknet `detector valid`: threshold 0.001, the cfg's NMS kind at 0.6, the 100 best per image. */
export const VALID_DECODE: DecodeOptions = { threshold: 0.001, nms: 0.6, maxDetections: 100 };

export interface RunOptions {
  decode?: DecodeOptions;
  /** Images decoded ahead of the one being inferred (default 2). */
  prefetch?: number;
  onImage?: (done: number, total: number) => void;
  /** Image file → network frame and original size (default detect/preprocess prepareFrame). */
  prepare?: (imagePath: string, net: Network) => Promise<PreparedImage>;
}

export interface RunResult {
  results: CocoResult[];
  /** Per image: network + decode/NMS time in ms (image decoding and resizing excluded). */
  msPerImage: number[];
  /** Wall time of the whole run, decoding included, in ms. */
  wallMs: number;
}

/** Rounded as darknet prints them (%f: six decimals). */
const r6 = (v: number): number => Math.round(v * 1e6) / 1e6;

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface PreparedImage {
  frame: Frame;
  width: number;
  height: number;
}

export async function runModel(engine: Engine, images: readonly ListedImage[], opts: RunOptions = {}): Promise<RunResult> {
  const net = engine.net;
  const decode = opts.decode ?? VALID_DECODE;
  const prefetch = Math.max(1, opts.prefetch ?? 2);
  const head = net.layers[net.heads[0]] as YoloLayer | undefined;
  const categories = categoriesFor(head?.classes ?? 80);

  const prepare = opts.prepare ?? prepareFrame;
  const pending = new Map<number, Promise<PreparedImage>>();
  const start = (i: number) => {
    if (i >= images.length || pending.has(i)) return;
    const p = prepare(images[i].path, net);
    p.catch(() => undefined); // awaited (and rethrown) in order below; avoid an unhandled rejection meanwhile
    pending.set(i, p);
  };

  const results: CocoResult[] = [];
  const msPerImage: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < prefetch; i++) start(i);
  for (let i = 0; i < images.length; i++) {
    const prepared = await pending.get(i)!;
    pending.delete(i);
    start(i + prefetch);
    const t = performance.now();
    const heads = await engine.infer(prepared.frame);
    const dets = decodeHeads(heads, net, prepared.width, prepared.height, decode);
    msPerImage.push(performance.now() - t);
    for (const d of dets) {
      results.push({
        image_id: images[i].id,
        category_id: categories[d.classId].id,
        bbox: [r6(d.box.x), r6(d.box.y), r6(d.box.w), r6(d.box.h)],
        score: r6(d.score),
      });
    }
    opts.onImage?.(i + 1, images.length);
  }
  return { results, msPerImage, wallMs: performance.now() - t0 };
}
