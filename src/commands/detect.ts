import type { Command } from 'commander';
import type { Detection, DecodeOptions } from '../detect/types.js';
import { addEngineOptions, engineChoice } from '../cli/engine-options.js';
import { choice, opt, parse } from '../cli/options.js';
import { ZeroqError } from '../util/errors.js';

interface DetectFlags {
  threshold: number;
  nms: number;
  nmsKind?: DecodeOptions['nmsKind'];
  maxDets: number;
  names?: string;
  json?: boolean;
  save?: string;
  [flag: string]: unknown;
}

async function readNames(file: string): Promise<string[]> {
  const { readFile } = await import('node:fs/promises');
  try {
    return (await readFile(file, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  } catch (err) {
    throw new ZeroqError('names-read', `cannot read class names: ${(err as Error).message}`, file, { cause: err });
  }
}

interface ImageResult {
  image: string;
  width: number;
  height: number;
  ms: number;
  detections: Detection[];
}

function textReport(r: ImageResult): string {
  const lines = [`${r.image}: ${r.width}x${r.height}, ${r.detections.length} object${r.detections.length === 1 ? '' : 's'} (${r.ms.toFixed(1)} ms)`];
  for (const d of r.detections) {
    const b = d.box;
    lines.push(
      `  ${d.className.padEnd(14)} ${(d.score * 100).toFixed(1).padStart(5)}%  x=${b.x.toFixed(1)} y=${b.y.toFixed(1)} w=${b.w.toFixed(1)} h=${b.h.toFixed(1)}`,
    );
  }
  return lines.join('\n') + '\n';
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));

/**
 * JSON entry of one image: detections with the field names of the MQTT detections payload
 * (docs/mqtt.md: class, class_id, score, box), scores to 6 digits and pixels to 0.01 (as darknet prints them).
 */
async function jsonEntry(r: ImageResult): Promise<unknown> {
  const { detectionFields } = await import('../daemon/mqtt/payloads.js');
  return {
    image: r.image,
    width: r.width,
    height: r.height,
    ms: round(r.ms, 2),
    detections: r.detections.map((d) => detectionFields(d, d.classId, { score: 6, box: 2 })),
  };
}

/** Writes the image with its detections drawn into dir, as <name>.jpg; returns the file. */
async function saveAnnotated(dir: string, image: string, rgb: Uint8Array, width: number, height: number, dets: Detection[], used: Set<string>): Promise<string> {
  const [{ default: sharp }, path, { drawDetections }] = await Promise.all([import('sharp'), import('node:path'), import('../detect/draw.js')]);
  const base = path.basename(image, path.extname(image));
  let name = `${base}.jpg`;
  for (let k = 2; used.has(name); k++) name = `${base}-${k}.jpg`;
  used.add(name);
  const file = path.join(dir, name);
  const img = { data: new Uint8Array(rgb), width, height };
  drawDetections(img, dets, 1, 1);
  try {
    await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(file);
  } catch (err) {
    throw new ZeroqError('save', `cannot write the annotated image: ${(err as Error).message}`, file, { cause: err });
  }
  return file;
}

/** `zeroq detect`: run a model on image files and print what it finds, as darknet `detector test` does. */
export function register(program: Command): void {
  const cmd = program
    .command('detect')
    .description('detect objects in images (darknet `detector test` post-processing)')
    .argument('<model>', 'darknet .cfg (float engine; weights beside it as .weights) or a weight set (int engine)')
    .argument('<images...>', 'image files (JPEG, PNG, ...)')
    .addOption(opt('--threshold <p>', 'keep a box and class when objectness × class probability is above this', parse.fraction, 0.25))
    .addOption(opt('--nms <iou>', 'NMS threshold (0 turns NMS off)', parse.fraction, 0.45))
    .addOption(choice('--nms-kind <kind>', "override the cfg's nms_kind", ['default', 'greedynms', 'diounms']))
    .addOption(opt('--max-dets <n>', 'at most this many detections per image', parse.positiveInt, 100))
    .option('--names <file>', 'class names, one per line (default: COCO names for 80 classes)')
    .option('--json', 'print JSON (one array, an entry per image; detections as the MQTT payload has them: class, class_id, score, box)')
    .option('--save <dir>', 'also write each image with its detections drawn into this folder (<name>.jpg)');
  addEngineOptions(cmd, { threads: 1 });
  cmd.action(async (model: string, images: string[], flags: DetectFlags) => {
    const decode: DecodeOptions = {
      threshold: flags.threshold,
      nms: flags.nms,
      nmsKind: flags.nmsKind,
      maxDetections: flags.maxDets,
      // darknet `detector test` runs NMS on boxes relative to the image
      nmsSpace: 'relative',
    };
    const { module, options } = engineChoice(model, flags);
    const names = flags.names ? await readNames(flags.names) : undefined;
    if (flags.save) {
      const { mkdir } = await import('node:fs/promises');
      await mkdir(flags.save, { recursive: true }).catch((err: Error) => {
        throw new ZeroqError('save', `cannot create the folder: ${err.message}`, flags.save, { cause: err });
      });
    }

    const { decodeImage, resizeForNet } = await import('../detect/preprocess.js');
    const { decodeHeads } = await import('../detect/decode.js');
    const engine = await module.open(model, options);
    const results: ImageResult[] = [];
    const saved = new Set<string>();
    try {
      for (const image of images) {
        const img = await decodeImage(image, image);
        const frame = resizeForNet(img, engine.net, { keepFloat: !module.capabilities.integer });
        const t0 = performance.now();
        const heads = await engine.infer(frame);
        const detections = decodeHeads(heads, engine.net, img.width, img.height, decode, names);
        const r = { image, width: img.width, height: img.height, ms: performance.now() - t0, detections };
        if (flags.save) await saveAnnotated(flags.save, image, img.data, img.width, img.height, detections, saved);
        if (flags.json) results.push(r);
        else process.stdout.write(textReport(r));
      }
    } finally {
      await engine.close();
    }
    if (flags.json) process.stdout.write(JSON.stringify(await Promise.all(results.map(jsonEntry)), null, 1) + '\n');
  });
}
