/** Image lists, frames, darknet labels and COCO ground truth for retraining and its validation. */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Network } from '../model/ir.js';
import { prepareFrame } from '../detect/preprocess.js';
import type { GroundTruth } from '../eval/coco.js';
import { ZeroqError } from '../util/errors.js';
import type { LabelBox } from './loss.js';
import type { Batch } from './sim.js';

/** Image paths of a list file (one per line, relative to the list's folder unless absolute). */
export async function readImageList(listPath: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(listPath, 'utf8');
  } catch (e) {
    throw new ZeroqError('retrain-list', `cannot read the image list: ${(e as Error).message}`, listPath, { cause: e });
  }
  const dir = path.dirname(listPath);
  const out = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'))
    .map((l) => (path.isAbsolute(l) ? l : path.join(dir, l)));
  if (out.length === 0) throw new ZeroqError('retrain-list', 'the image list is empty', listPath);
  return out;
}

export interface FrameSet {
  paths: string[];
  /** Frames one after the other (HWC RGB at the network size). */
  rgb: Uint8Array;
  /** Original image sizes (for decoding detections to image pixels). */
  sizes: { width: number; height: number }[];
}

export async function loadFrames(net: Network, paths: string[], onLoaded?: (done: number) => void): Promise<FrameSet> {
  const per = net.input.w * net.input.h * 3;
  const rgb = new Uint8Array(per * paths.length);
  const sizes: { width: number; height: number }[] = [];
  for (let i = 0; i < paths.length; i++) {
    const { frame, width, height } = await prepareFrame(paths[i], net);
    rgb.set(frame.rgb, i * per);
    sizes.push({ width, height });
    onLoaded?.(i + 1);
  }
  return { paths, rgb, sizes };
}

/** Frames from..from+n-1 of a set, as one batch (a view, not a copy). */
export function frameBatch(frames: FrameSet, from: number, n: number): Batch {
  const per = frames.rgb.length / frames.paths.length;
  return { n, rgb: frames.rgb.subarray(from * per, (from + n) * per) };
}

/** darknet's label file of an image: .../images/x.jpg → .../labels/x.txt. */
export function labelPath(imagePath: string): string {
  const dir = path.dirname(imagePath);
  const base = path.basename(imagePath).replace(/\.[^.]+$/, '.txt');
  return path.join(path.dirname(dir), path.basename(dir) === 'images' ? 'labels' : path.basename(dir), base);
}

export async function readLabels(imagePath: string): Promise<LabelBox[]> {
  const file = labelPath(imagePath);
  if (!existsSync(file)) throw new ZeroqError('retrain-labels', 'no label file for this image', file);
  const lines = (await readFile(file, 'utf8')).split(/\r?\n/);
  const out: LabelBox[] = [];
  lines.forEach((line, i) => {
    const t = line.trim();
    if (!t) return;
    const v = t.split(/\s+/).map(Number);
    if (v.length !== 5 || v.some((x) => !Number.isFinite(x))) {
      throw new ZeroqError('retrain-labels', 'expected "class cx cy w h"', `${file}:${i + 1}`);
    }
    out.push({ cls: v[0], cx: v[1], cy: v[2], w: v[3], h: v[4] });
  });
  return out;
}

/** COCO image id of a file named like 000000000139.jpg. */
export function imageIdOf(imagePath: string): number {
  const m = /(\d+)\.[^.]+$/.exec(path.basename(imagePath));
  if (!m) throw new ZeroqError('retrain-val', 'cannot tell the COCO image id from the file name', imagePath);
  return Number(m[1]);
}

interface RawInstances {
  images: { id: number; width: number; height: number; file_name?: string }[];
  categories: { id: number; name: string }[];
  annotations: { id: number; image_id: number; category_id: number; bbox: number[]; area: number; iscrowd?: number }[];
}

/** Reads an instances.json (COCO detection ground truth). */
export async function readGroundTruth(file: string): Promise<GroundTruth> {
  let raw: RawInstances;
  try {
    raw = JSON.parse(await readFile(file, 'utf8')) as RawInstances;
  } catch (e) {
    throw new ZeroqError('retrain-gt', `cannot read COCO ground truth: ${(e as Error).message}`, file, { cause: e });
  }
  return {
    images: raw.images.map((i) => ({ id: i.id, width: i.width, height: i.height, fileName: i.file_name })),
    categories: raw.categories.map((c) => ({ id: c.id, name: c.name })),
    annotations: raw.annotations.map((a) => ({
      id: a.id,
      imageId: a.image_id,
      categoryId: a.category_id,
      bbox: [a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]],
      area: a.area,
      iscrowd: a.iscrowd === 1,
    })),
  };
}
