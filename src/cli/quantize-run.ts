/**
 * The work behind `zeroq quantize`: load the model and calibration images, quantize, write the
 * .zqw atomically, print the per-layer report (or JSON), and write pictures to a report folder.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadDarknet } from '../model/darknet.js';
import type { ConvLayer, YoloLayer } from '../model/ir.js';
import { COCO_NAMES } from '../detect/names.js';
import { readImageList } from '../eval/dataset.js';
import { ZeroqError } from '../util/errors.js';
import { loadFrames } from '../eval/accuracy.js';
import { quantizeModel, type LayerReport, type ProgressPhase, type QuantizeOptions, type QuantizeResult } from '../quant/quantize.js';
import { architectureHash } from '../qnet/arch.js';
import { writeZqw } from '../qnet/zqw.js';
import { inputScaleFor } from '../quant/conv.js';
import { quantizeWeights } from '../quant/weights.js';
import { lineChartSvg, weightHistogramSvg } from '../quant/svg.js';
import { chooseLayerWidths, type WidthChoice } from '../retrain/bit-widths.js';
import { loadFrames as loadFrameSet, readGroundTruth, readImageList as readTrainList, type FrameSet } from '../retrain/data.js';
import type { GroundTruth } from '../eval/coco.js';
import type { Frame } from '../engine/engine.js';
import { roundingTargetAt } from '../quant/float-target.js';

export interface QuantizeCommand {
  weights?: string;
  quant: QuantizeOptions;
  /** Widths per layer at an average (quant.wbits is then ignored). */
  avgBits?: { target: number; val?: string; gt?: string; sensitivityImages: number };
  calib: string;
  calibImages: number;
  output: string;
  id?: string;
  json: boolean;
  reportDir?: string;
  histogramLayer?: number;
}

export interface Totals {
  convLayers: number;
  weights: number;
  avgBitsPerWeight: number;
  bytes: number;
  /** float32 weights and biases of the conv layers. */
  floatBytes: number;
  ratioToFloat: number;
  darknetBytes: number;
  ratioToDarknet: number;
  /** Channels whose fw was lowered for the accumulator bound. */
  loweredChannels: number;
  minHeadroomBits: number;
}

/** Class names: a .names file beside the cfg (cfg base name, or coco.names) with one name per class, else COCO's for 80 classes. */
function classNames(cfg: string, classes: number): string[] | undefined {
  const dir = path.dirname(cfg);
  for (const f of [path.basename(cfg, path.extname(cfg)) + '.names', 'coco.names']) {
    const p = path.join(dir, f);
    if (!existsSync(p)) continue;
    const names = readFileSync(p, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    if (names.length === classes) return classes === COCO_NAMES.length ? [...COCO_NAMES] : names;
  }
  return classes === COCO_NAMES.length ? [...COCO_NAMES] : undefined;
}

const fx = (v: number | undefined, d = 2): string => (v === undefined ? '' : Number.isFinite(v) ? v.toFixed(d) : v > 0 ? 'inf' : '-inf');
const fe = (v: number): string => (v === 0 ? '0' : Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toFixed(4) : v.toExponential(2));

function table(rows: string[][], right: boolean[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd()).join('\n');
}

export function reportTable(layers: LayerReport[]): string {
  const rows: string[][] = [['#', 'kind', 'output', 'Nw', 'mu', 'w min', 'w max', 'fw', 'SQNR zc', 'SQNR plain', 'act', 'act SQNR', 'headroom']];
  for (const l of layers) {
    if (l.kind === 'yolo') continue;
    const c = l.conv;
    rows.push([
      String(l.index),
      l.kind,
      `${l.out.c}x${l.out.h}x${l.out.w}`,
      c ? String(c.wbits) : '',
      c ? fe(c.mu) : '',
      c ? fe(c.wMin) : '',
      c ? fe(c.wMax) : '',
      c ? (c.fwMin === c.fwMax ? String(c.fwMin) : `${c.fwMin}..${c.fwMax}`) : '',
      c ? fx(c.sqnrCentered, 1) : '',
      c ? fx(c.sqnrPlain, 1) : '',
      `${l.format.bits}/${l.format.frac}${l.calibrated ? '' : '='}`,
      fx(l.actSqnr, 1),
      c ? `${fx(c.headroomBits, 1)}b` : '',
    ]);
  }
  return table(rows, [true, false, false, true, true, true, true, true, true, true, true, true, true]);
}

export function totalsOf(res: QuantizeResult, bytes: number, darknetBytes: number): Totals {
  let weights = 0;
  let bits = 0;
  let biases = 0;
  let lowered = 0;
  let headroom = Infinity;
  for (const l of res.layers) {
    if (!l.conv) continue;
    weights += l.conv.count;
    bits += l.conv.count * l.conv.wbits;
    biases += l.out.c;
    lowered += l.conv.loweredChannels;
    headroom = Math.min(headroom, l.conv.headroomBits);
  }
  const floatBytes = 4 * (weights + biases);
  return {
    convLayers: res.layers.filter((l) => l.conv).length,
    weights,
    avgBitsPerWeight: bits / weights,
    bytes,
    floatBytes,
    ratioToFloat: bytes / floatBytes,
    darknetBytes,
    ratioToDarknet: bytes / darknetBytes,
    loweredChannels: lowered,
    minHeadroomBits: headroom,
  };
}

/** The conv layer where zero-centering gains the most SQNR (the histogram's default). */
function mostCentered(res: QuantizeResult): number {
  let best = -1;
  let gain = -Infinity;
  for (const l of res.layers) {
    if (!l.conv || !Number.isFinite(l.conv.sqnrCentered) || !Number.isFinite(l.conv.sqnrPlain)) continue;
    const g = l.conv.sqnrCentered - l.conv.sqnrPlain;
    if (g > gain) (gain = g), (best = l.index);
  }
  return best;
}

async function writeReport(dir: string, res: QuantizeResult, summary: Record<string, unknown>, layer?: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const put = async (name: string, text: string): Promise<void> => {
    const p = path.join(dir, name);
    await writeFile(p, text);
    written.push(p);
  };
  await put('report.json', JSON.stringify(summary, null, 2) + '\n');
  const model = res.model;

  const idx = layer ?? mostCentered(res);
  const l = model.net.layers[idx];
  if (!l || l.kind !== 'conv') throw new ZeroqError('bad-option', `layer ${idx} is not a conv layer`, '--histogram-layer');
  const conv = l as ConvLayer;
  const p = model.params[idx]!;
  const qc = res.qnet.convs[idx]!;
  const scale = inputScaleFor(conv);
  // Per-channel formats: the channel whose mean is largest against its spread; else the whole layer.
  let from = 0;
  let to = p.weight.length;
  let label = 'all channels';
  if (qc.perChannel) {
    const per = p.weight.length / conv.filters;
    let best = -1;
    for (let o = 0; o < conv.filters; o++) {
      const wq = quantizeWeights(p.weight.subarray(o * per, (o + 1) * per), 1, { wbits: qc.wbits, perChannel: false, zeroCenter: true, inputScale: scale });
      const spread = wq.q.reduce((a, v) => Math.max(a, Math.abs(v)), 0) * 2 ** -wq.fw[0];
      const ratio = Math.abs(wq.mu[0]) / (spread || 1);
      if (ratio > best) (best = ratio), (from = o * per), (to = (o + 1) * per), (label = `channel ${o}`);
    }
  }
  const weights = Float32Array.from(p.weight.subarray(from, to), (w) => w * scale);
  const opts = { wbits: qc.wbits, perChannel: false };
  const centered = quantizeWeights(weights, 1, { ...opts, zeroCenter: true });
  const plain = quantizeWeights(weights, 1, { ...opts, zeroCenter: false });
  await put(
    `weights-layer${idx}.svg`,
    weightHistogramSvg({
      title: `${model.net.name} layer ${idx} (${conv.size}x${conv.size}${conv.groups > 1 ? `, groups ${conv.groups}` : ''}), ${label}: ${qc.wbits}-bit weights${res.equalized?.length ? ', after equalization' : ''}`,
      weights,
      mu: centered.mu[0],
      stepPlain: 2 ** -plain.fw[0],
      stepCentered: 2 ** -centered.fw[0],
      wbits: qc.wbits,
    }),
  );
  const convs = res.layers.filter((r) => r.conv && Number.isFinite(r.conv.sqnrCentered) && Number.isFinite(r.conv.sqnrPlain));
  await put(
    'weight-sqnr.svg',
    lineChartSvg(`${model.net.name}: weight SQNR per conv layer`, 'layer', 'SQNR (dB)', [
      { label: 'zero-centered', points: convs.map((r) => ({ x: r.index, y: r.conv!.sqnrCentered })) },
      { label: 'plain', points: convs.map((r) => ({ x: r.index, y: r.conv!.sqnrPlain })), dashed: true },
    ]),
  );
  const acts = res.layers.filter((r) => r.actSqnr !== undefined && Number.isFinite(r.actSqnr));
  if (acts.length > 0) {
    await put(
      'activation-sqnr.svg',
      lineChartSvg(`${model.net.name}: integer vs float activations`, 'layer', 'SQNR (dB)', [
        { label: 'calibration images', points: acts.map((r) => ({ x: r.index, y: r.actSqnr! })) },
      ]),
    );
  }
  return written;
}

/**
 * The widths per layer for --avg-bits: layer errors on the first images of --val (else of the
 * calibration list: all of it, not only the --calib-images the formats are calibrated on).
 */
async function chooseWidths(
  model: Awaited<ReturnType<typeof loadDarknet>>, calib: Frame[], calibPaths: string[], listPaths: string[], quant: QuantizeOptions,
  a: NonNullable<QuantizeCommand['avgBits']>,
): Promise<WidthChoice> {
  const { net } = model;
  const log = (m: string) => process.stderr.write(`${m}\n`);
  let val: { frames: FrameSet; gt: GroundTruth } | undefined;
  let sensPaths = listPaths.slice(0, a.sensitivityImages);
  if (a.val) {
    const paths = await readTrainList(a.val);
    const calibSet = new Set(calibPaths.map((p) => path.resolve(p)));
    const both = paths.filter((p) => calibSet.has(path.resolve(p)));
    if (both.length > 0) throw new ZeroqError('bad-option', `${both.length} validation images are also calibration images (e.g. ${both[0]})`, a.val);
    const gt = await readGroundTruth(a.gt ?? path.join(path.dirname(a.val), 'instances.json'));
    log(`loading ${paths.length} validation images`);
    val = { frames: await loadFrameSet(net, paths), gt };
    sensPaths = paths.slice(0, a.sensitivityImages);
  }
  const sensitivity = await loadFrameSet(net, sensPaths);
  return chooseLayerWidths(model, calib, { quant, avgBits: a.target, sensitivity, ...(val ? { val } : {}), threads: quant.threads ?? 1, log });
}

function widthsMeta(w: WidthChoice, a: NonNullable<QuantizeCommand['avgBits']>): Record<string, unknown> {
  return {
    method: 'layer sensitivity',
    errorModel: w.errorModel,
    avgBitsTarget: a.target,
    minBits: w.chosen.minBits,
    sensitivityImages: w.sensitivityImages,
    ...(a.val ? { validationList: path.basename(a.val) } : {}),
    candidates: w.candidates.map((c) => ({
      minBits: c.minBits, avgBits: c.avgBits, error: c.error, ...(c.ap50 !== undefined ? { validationAP: c.ap, validationAP50: c.ap50 } : {}),
    })),
  };
}

function widthLines(w: WidthChoice): string[] {
  const hist = new Map<number, number>();
  for (const b of w.chosen.layerBits) if (b) hist.set(b, (hist.get(b) ?? 0) + 1);
  const lines = [`  widths per layer: ${[...hist].sort((x, y) => x[0] - y[0]).map(([b, n]) => `${n} layers at ${b}`).join(', ')} (narrowest allowed ${w.chosen.minBits})`];
  for (const c of w.candidates) {
    lines.push(`    candidate ${c.minBits}..8: ${c.avgBits.toFixed(3)} bits, summed error ${c.error.toFixed(3)}${c.ap50 !== undefined ? `, validation AP50 ${(100 * c.ap50).toFixed(2)}` : ''}${c === w.chosen ? ' (chosen)' : ''}`);
  }
  return lines;
}

export async function runQuantize(cfg: string, cmd: QuantizeCommand): Promise<void> {
  const model = await loadDarknet(cfg, cmd.weights);
  const allImages = readImageList(cmd.calib);
  const list = allImages.slice(0, cmd.calibImages);
  // Progress on stderr: a bar per phase on a terminal, a line about every 10% otherwise.
  const { progress } = await import('./progress.js');
  const p = progress('quantize');
  const PHASES: Record<string, [string, string]> = {
    images: ['loading calibration images', 'images'],
    float: ['float passes', 'images'],
    search: ['format search', 'layers'],
    weights: ['weights', 'layers'],
  };
  let phase = '';
  const step = (name: string, done: number, total: number): void => {
    if (name !== phase) {
      phase = name;
      const [label, unit] = PHASES[name] ?? [name, 'steps'];
      p.phase(label, total, unit);
    }
    p.update(done);
  };
  let res: QuantizeResult;
  let widths: WidthChoice | undefined;
  try {
    const frames = await loadFrames(list, model.net, (k) => step('images', k, list.length));
    if (cmd.avgBits) {
      p.stop();
      phase = '';
      widths = await chooseWidths(model, frames, list.map((im) => im.path), allImages.map((im) => im.path), cmd.quant, cmd.avgBits);
      res = widths.result;
    } else {
      res = await quantizeModel(model, frames, cmd.quant, (ph: ProgressPhase, done, total) => step(ph, done, total));
    }
  } finally {
    p.stop();
  }

  const heads = model.net.heads.map((h) => model.net.layers[h] as YoloLayer);
  // Recorded where some layer was rounded against the float network (at 5 bits and wider 'auto' changes nothing).
  const aimedAtFloat = res.qnet.convs.some((c) => c !== undefined && roundingTargetAt(cmd.quant.roundingTarget, c.wbits) === 'float');
  const weightsBytes = await readFile(model.weightsPath);
  const buf = writeZqw(res.qnet, {
    id: cmd.id,
    source: {
      model: model.net.name,
      cfg: path.basename(cfg),
      weights: path.basename(model.weightsPath),
      weightsSha256: createHash('sha256').update(weightsBytes).digest('hex'),
    },
    classes: classNames(cfg, heads[0]?.classes ?? 0),
    quantization: {
      wbits: widths ? Math.max(...res.qnet.convs.map((c) => c?.wbits ?? 0)) : cmd.quant.wbits,
      ...(widths ? { widths: widthsMeta(widths, cmd.avgBits!) } : {}),
      ...(cmd.quant.firstBits !== undefined ? { firstBits: cmd.quant.firstBits } : {}),
      ...(cmd.quant.headBits !== undefined ? { headBits: cmd.quant.headBits } : {}),
      abits: cmd.quant.abits,
      headAbits: cmd.quant.headAbits,
      perChannel: cmd.quant.perChannel,
      zeroCentered: cmd.quant.zeroCenter,
      biasCorrection: cmd.quant.biasCorrection ?? false,
      equalized: res.equalized?.length ?? 0,
      ...(cmd.quant.alignWeights && cmd.quant.perChannel ? { alignedWeights: true } : {}),
      ...(cmd.quant.weightClip === 'mse' ? { weightClip: 'mse' } : {}),
      center: cmd.quant.center ?? 'mean',
      ...(cmd.quant.rounding === 'output' ? { rounding: 'output', ...(cmd.quant.roundingOrder === 'energy' ? { roundingOrder: 'energy' } : {}), ...(aimedAtFloat ? { roundingTarget: cmd.quant.roundingTarget } : {}) } : {}),
      ...(res.calibration.method === 'search' ? { searchObjective: cmd.quant.searchObjective ?? 'exact' } : {}),
    },
    calibration: { ...res.calibration, list: path.basename(cmd.calib), imageIds: list.map((im) => im.id) },
  });
  const out = path.resolve(cmd.output);
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  await writeFile(tmp, buf);
  await rename(tmp, out);

  const totals = totalsOf(res, buf.length, model.weightsBytes);
  const summary = {
    output: out,
    id: (await import('../qnet/zqw.js')).parseZqw(buf).manifest.id,
    architecture: architectureHash(model.net),
    model: model.net.name,
    options: widths ? { ...cmd.quant, wbits: undefined, avgBits: cmd.avgBits!.target } : cmd.quant,
    ...(widths ? { widths: widthsMeta(widths, cmd.avgBits!) } : {}),
    calibration: { ...res.calibration, list: cmd.calib },
    totals,
    layers: res.layers,
  };
  let pictures: string[] = [];
  if (cmd.reportDir) pictures = await writeReport(cmd.reportDir, res, summary, cmd.histogramLayer);
  if (cmd.json) {
    process.stdout.write(JSON.stringify({ ...summary, ...(pictures.length ? { report: pictures } : {}) }, (_k, v) => (v === Infinity ? 'inf' : v)) + '\n');
    return;
  }
  const t = totals;
  process.stdout.write(
    [
      reportTable(res.layers),
      '',
      `act: bits/frac of the output ("=" kept from the input); SQNR in dB; headroom: bits left above the worst-case |Y|.`,
      `${model.net.name} → ${out}`,
      `  id ${summary.id}`,
      `  ${t.convLayers} conv layers, ${t.weights} weights, ${t.avgBitsPerWeight.toFixed(2)} bits per weight`,
      ...(widths ? widthLines(widths) : []),
      `  ${t.bytes} bytes: ${(100 * t.ratioToFloat).toFixed(1)}% of float32 (${t.floatBytes}), ${(100 * t.ratioToDarknet).toFixed(1)}% of the darknet weights file (${t.darknetBytes})`,
      `  activations ${res.calibration.method} on ${res.calibration.images} images${res.calibration.searchImages !== undefined ? ` (search on ${res.calibration.searchImages})` : ''}; minimum accumulator headroom ${t.minHeadroomBits.toFixed(1)} bits${t.loweredChannels ? `; fw lowered on ${t.loweredChannels} channels` : ''}`,
      ...(pictures.length ? [`  report: ${pictures.join(', ')}`] : []),
      '',
    ].join('\n'),
  );
}
