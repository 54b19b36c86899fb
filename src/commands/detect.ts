import type { Command } from 'commander';
import type { Detection, DecodeOptions } from '../detect/types.js';
import { addEngineOptions, engineChoice } from '../cli/engine-options.js';
import { ZeroqError } from '../util/errors.js';

interface DetectFlags {
  engine?: string;
  threshold: string;
  nms: string;
  nmsKind?: string;
  maxDets: string;
  names?: string;
  threads?: string;
  json?: boolean;
  [flag: string]: unknown;
}

function numberFlag(value: string, flag: string, check: (v: number) => boolean, what: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v) || !check(v)) throw new ZeroqError('bad-option', `"${value}" is not ${what}`, flag);
  return v;
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

/** JSON entry of one image: scores to 6 digits, pixels to 0.01 (as darknet prints them). */
function jsonEntry(r: ImageResult): unknown {
  return {
    image: r.image,
    width: r.width,
    height: r.height,
    ms: round(r.ms, 2),
    detections: r.detections.map((d) => ({
      classId: d.classId,
      className: d.className,
      score: round(d.score, 6),
      box: { x: round(d.box.x, 2), y: round(d.box.y, 2), w: round(d.box.w, 2), h: round(d.box.h, 2) },
    })),
  };
}

/** `zeroq detect`: run a model on image files and print what it finds, as darknet `detector test` does. */
export function register(program: Command): void {
  const cmd = program
    .command('detect')
    .description('detect objects in images (darknet `detector test` post-processing)')
    .argument('<model>', 'darknet .cfg (float engine; weights beside it as .weights) or a weight set (int engine)')
    .argument('<images...>', 'image files (JPEG, PNG, ...)')
    .option('--threshold <p>', 'keep a box and class when objectness × class probability is above this', '0.25')
    .option('--nms <iou>', 'NMS threshold (0 turns NMS off)', '0.45')
    .option('--nms-kind <kind>', "override the cfg's nms_kind: default, greedynms or diounms")
    .option('--max-dets <n>', 'at most this many detections per image', '100')
    .option('--names <file>', 'class names, one per line (default: COCO names for 80 classes)')
    .option('--json', 'print JSON (one array, an entry per image) instead of text');
  addEngineOptions(cmd, { threads: '1' });
  cmd.action(async (model: string, images: string[], flags: DetectFlags) => {
      const fraction = (v: string, f: string) => numberFlag(v, f, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
      const positiveInt = (v: string, f: string) => numberFlag(v, f, (x) => Number.isInteger(x) && x > 0, 'a positive integer');
      const nmsKind = flags.nmsKind;
      if (nmsKind !== undefined && nmsKind !== 'default' && nmsKind !== 'greedynms' && nmsKind !== 'diounms') {
        throw new ZeroqError('bad-option', `unknown NMS kind "${nmsKind}" (default, greedynms or diounms)`, '--nms-kind');
      }
      const decode: DecodeOptions = {
        threshold: fraction(flags.threshold, '--threshold'),
        nms: fraction(flags.nms, '--nms'),
        nmsKind,
        maxDetections: positiveInt(flags.maxDets, '--max-dets'),
        // darknet `detector test` runs NMS on boxes relative to the image
        nmsSpace: 'relative',
      };
      const { module, options } = engineChoice(model, flags);
      const names = flags.names ? await readNames(flags.names) : undefined;

      const { prepareFrame } = await import('../detect/preprocess.js');
      const { decodeHeads } = await import('../detect/decode.js');
      const engine = await module.open(model, options);
      const results: ImageResult[] = [];
      try {
        for (const image of images) {
          const p = await prepareFrame(image, engine.net, { keepFloat: !module.capabilities.integer });
          const t0 = performance.now();
          const heads = await engine.infer(p.frame);
          const detections = decodeHeads(heads, engine.net, p.width, p.height, decode, names);
          const r = { image, width: p.width, height: p.height, ms: performance.now() - t0, detections };
          if (flags.json) results.push(r);
          else process.stdout.write(textReport(r));
        }
      } finally {
        await engine.close();
      }
      if (flags.json) process.stdout.write(JSON.stringify(results.map(jsonEntry), null, 1) + '\n');
    });
}
