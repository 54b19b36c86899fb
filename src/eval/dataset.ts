/**
 * Evaluation sets: a darknet image list (one path per line, relative to the list's folder or
 * absolute), and its ground truth — the instances.json beside the list when there is one (crowd
 * regions included), otherwise darknet labels ("cls cx cy w h", normalised) from the parallel
 * labels/ folder, turned into COCO boxes in pixels.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { COCO_CATEGORY_IDS, COCO_NAMES } from '../detect/names.js';
import { ZeroqError } from '../util/errors.js';
import type { Bbox, CocoCategory, CocoImage, GroundTruth, GtAnnotation } from './coco.js';

export interface ListedImage {
  /** COCO image id: the number in the file name. */
  id: number;
  /** Absolute path of the image. */
  path: string;
}

/** Image id from a file name: its last run of digits (000000000139.jpg → 139). */
export function imageIdOf(file: string): number | undefined {
  const base = path.basename(file, path.extname(file));
  const m = /(\d+)(?!.*\d)/.exec(base);
  return m ? Number(m[1]) : undefined;
}

/** Reads an image list; every image must exist and carry a distinct id in its name. */
export function readImageList(listPath: string): ListedImage[] {
  let text: string;
  try {
    text = readFileSync(listPath, 'utf8');
  } catch (err) {
    throw new ZeroqError('list-read', `cannot read image list: ${(err as Error).message}`, listPath, { cause: err });
  }
  const dir = path.dirname(path.resolve(listPath));
  const seen = new Map<number, number>();
  const out: ListedImage[] = [];
  text.split(/\r?\n/).forEach((raw, n) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${listPath}:${n + 1}`;
    const id = imageIdOf(line);
    if (id === undefined) throw new ZeroqError('list-image-id', `no image id (a number) in the file name "${line}"`, where);
    const prev = seen.get(id);
    if (prev !== undefined) throw new ZeroqError('list-duplicate', `image id ${id} already listed at line ${prev}`, where);
    seen.set(id, n + 1);
    const file = path.resolve(dir, line);
    if (!existsSync(file) || !statSync(file).isFile()) throw new ZeroqError('image-missing', `image not found: ${file}`, where);
    out.push({ id, path: file });
  });
  if (out.length === 0) throw new ZeroqError('list-empty', 'the image list names no image', listPath);
  return out;
}

/** darknet's label path for an image: the last images/ folder becomes labels/, the extension .txt. */
export function labelPathOf(imagePath: string): string {
  const parts = imagePath.split(path.sep);
  const i = parts.lastIndexOf('images');
  if (i >= 0 && i < parts.length - 1) parts[i] = 'labels';
  const p = parts.join(path.sep);
  return p.slice(0, p.length - path.extname(p).length) + '.txt';
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Parses a COCO instances.json (bbox fields only), checking what the evaluator relies on. */
export function parseInstances(json: unknown, where: string): GroundTruth {
  const o = json as { images?: unknown; annotations?: unknown; categories?: unknown } | null;
  if (typeof o !== 'object' || o === null || !Array.isArray(o.images) || !Array.isArray(o.annotations) || !Array.isArray(o.categories)) {
    throw new ZeroqError('annotations-format', 'expected an object with "images", "annotations" and "categories" arrays', where);
  }
  const categories: CocoCategory[] = o.categories.map((c: { id?: unknown; name?: unknown }, n: number) => {
    if (!Number.isInteger(c?.id)) throw new ZeroqError('annotations-format', 'category id is not an integer', `${where}: categories[${n}]`);
    return { id: c.id as number, name: typeof c.name === 'string' ? c.name : String(c.id) };
  });
  const catIds = new Set(categories.map((c) => c.id));
  const images: CocoImage[] = o.images.map((im: { id?: unknown; width?: unknown; height?: unknown; file_name?: unknown }, n: number) => {
    if (!Number.isInteger(im?.id)) throw new ZeroqError('annotations-format', 'image id is not an integer', `${where}: images[${n}]`);
    return {
      id: im.id as number,
      width: num(im.width) ? im.width : 0,
      height: num(im.height) ? im.height : 0,
      fileName: typeof im.file_name === 'string' ? im.file_name : undefined,
    };
  });
  const imageIds = new Set(images.map((im) => im.id));
  const annotations: GtAnnotation[] = o.annotations.map(
    (a: { id?: unknown; image_id?: unknown; category_id?: unknown; bbox?: unknown; area?: unknown; iscrowd?: unknown }, n: number) => {
      const at = `${where}: annotations[${n}]`;
      if (typeof a !== 'object' || a === null) throw new ZeroqError('annotations-format', 'not an object', at);
      if (!Number.isInteger(a.image_id) || !imageIds.has(a.image_id as number)) {
        throw new ZeroqError('annotations-image', `image_id ${String(a.image_id)} is not among the images`, at);
      }
      if (!Number.isInteger(a.category_id) || !catIds.has(a.category_id as number)) {
        throw new ZeroqError('unknown-category', `category_id ${String(a.category_id)} is not among the categories`, at);
      }
      const b = a.bbox;
      if (!Array.isArray(b) || b.length !== 4 || !b.every(num)) throw new ZeroqError('annotations-format', 'bbox must be [x, y, w, h]', at);
      const bbox: Bbox = [b[0], b[1], b[2], b[3]];
      return {
        id: Number.isInteger(a.id) ? (a.id as number) : n + 1,
        imageId: a.image_id as number,
        categoryId: a.category_id as number,
        bbox,
        area: num(a.area) ? a.area : bbox[2] * bbox[3],
        iscrowd: a.iscrowd === 1 || a.iscrowd === true,
      };
    },
  );
  return { images, categories, annotations };
}

export async function readInstances(file: string): Promise<GroundTruth> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ZeroqError('annotations-read', `cannot read annotations: ${(err as Error).message}`, file, { cause: err });
  }
  return parseInstances(json, file);
}

/** The category ids and names for a model's classes: COCO's for 80 classes, else 1..n. */
export function categoriesFor(classes: number, names?: readonly string[]): CocoCategory[] {
  if (classes === COCO_NAMES.length) return COCO_NAMES.map((name, k) => ({ id: COCO_CATEGORY_IDS[k], name }));
  return Array.from({ length: classes }, (_, k) => ({ id: k + 1, name: names?.[k] ?? String(k) }));
}

/** Parses one darknet label file into pixel boxes (area = w·h, never crowd). */
export function parseLabels(
  text: string,
  file: string,
  image: CocoImage,
  categories: readonly CocoCategory[],
  firstId: number,
): GtAnnotation[] {
  const out: GtAnnotation[] = [];
  text.split(/\r?\n/).forEach((raw, n) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${file}:${n + 1}`;
    const f = line.split(/\s+/);
    const v = f.map(Number);
    if (f.length !== 5 || !v.every(Number.isFinite)) {
      throw new ZeroqError('label-format', `expected "class cx cy w h" (5 numbers), got "${line}"`, where);
    }
    const [cls, cx, cy, w, h] = v;
    if (!Number.isInteger(cls) || cls < 0) throw new ZeroqError('label-format', `class "${f[0]}" is not a class index`, where);
    if (cls >= categories.length) {
      throw new ZeroqError('unknown-category', `class ${cls} is out of range (${categories.length} classes)`, where);
    }
    if (w < 0 || h < 0) throw new ZeroqError('label-format', 'negative box size', where);
    const W = image.width;
    const H = image.height;
    const bbox: Bbox = [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H];
    out.push({ id: firstId + out.length, imageId: image.id, categoryId: categories[cls].id, bbox, area: bbox[2] * bbox[3], iscrowd: false });
  });
  return out;
}

export interface EvalSet {
  listPath: string;
  images: ListedImage[];
  gt: GroundTruth;
  /** Where the ground truth came from: an instances.json path, or 'labels'. */
  gtSource: string;
  /** Label-built ground truth: images without a label file (read as images without objects). */
  missingLabels: number;
}

export interface LoadSetOptions {
  /** Ground truth file; default the instances.json beside the list, else darknet labels. */
  annotations?: string;
  /** Evaluate only the first N images of the list. */
  limit?: number;
  /** Classes of the label files (label-built ground truth only); default 80 (COCO). */
  classes?: number;
  names?: readonly string[];
}

async function jpegSize(file: string): Promise<{ width: number; height: number }> {
  const { default: sharp } = await import('sharp');
  try {
    const m = await sharp(file).metadata();
    if (!m.width || !m.height) throw new Error('no size in the header');
    return { width: m.width, height: m.height };
  } catch (err) {
    throw new ZeroqError('image-read', `cannot read the image size: ${(err as Error).message}`, file, { cause: err });
  }
}

/** Loads an image list and its ground truth. */
export async function loadEvalSet(listPath: string, opts: LoadSetOptions = {}): Promise<EvalSet> {
  let images = readImageList(listPath);
  if (opts.limit !== undefined) images = images.slice(0, Math.max(0, opts.limit));
  const beside = path.join(path.dirname(path.resolve(listPath)), 'instances.json');
  const annotations = opts.annotations ?? (existsSync(beside) ? beside : undefined);
  if (annotations) {
    const gt = await readInstances(annotations);
    const known = new Set(gt.images.map((im) => im.id));
    for (const im of images) {
      if (!known.has(im.id)) throw new ZeroqError('annotations-image', `image ${im.id} (${im.path}) is not in ${annotations}`, listPath);
    }
    return { listPath, images, gt, gtSource: annotations, missingLabels: 0 };
  }

  const categories = categoriesFor(opts.classes ?? COCO_NAMES.length, opts.names);
  const cocoImages: CocoImage[] = [];
  const anns: GtAnnotation[] = [];
  let missingLabels = 0;
  for (const im of images) {
    const { width, height } = await jpegSize(im.path);
    const image: CocoImage = { id: im.id, width, height, fileName: path.basename(im.path) };
    cocoImages.push(image);
    const lp = labelPathOf(im.path);
    let text: string;
    try {
      text = await readFile(lp, 'utf8');
    } catch (err) {
      // darknet reads a missing label file as an image without objects
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        missingLabels++;
        continue;
      }
      throw new ZeroqError('label-read', `cannot read labels: ${(err as Error).message}`, lp, { cause: err });
    }
    anns.push(...parseLabels(text, lp, image, categories, anns.length + 1));
  }
  return { listPath, images, gt: { images: cocoImages, categories, annotations: anns }, gtSource: 'labels', missingLabels };
}
