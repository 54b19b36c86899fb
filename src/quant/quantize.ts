/**
 * A float model and calibration frames → a QNet: activation statistics from the float engine, the
 * activation formats (min/max, percentile, or the search through the integer pipeline), then every
 * conv layer's integer parameters for the format of the tensor it reads.
 */
import { unsupportedLayers, unsupportedMessage } from '../model/layer-kinds.js';
import type { ConvLayer, FloatModel, Layer, Shape } from '../model/ir.js';
import type { Frame } from '../engine/engine.js';
import { FloatEngine } from '../engine/float.js';
import { validateQNet } from '../qnet/validate.js';
import type { QConv, QNet, TensorFormat } from '../qnet/types.js';
import { ActivationStats, feedsOnlyHeads, formatsFromStats, outputBits, ownsFormat, type ActCalibMethod } from './calibrate.js';
import { quantizeConv, type ConvQuantOptions, type ConvStats } from './conv.js';
import { networkInput, tensorInput } from '../qnet/bounds.js';
import { searchFormats } from './search.js';
import type { RoundingOrder } from './gptq.js';
import type { RoundingTargetRule } from './float-target.js';
import { centerAt, checkWbits, type CenterRule, type WeightClip, type WeightRounding } from './weights.js';
import { alignWeightGrid, equalizeModel, equalizeWeightsModel, type EqualizedPair, type EqualizeOptions } from './equalize.js';
import { ZeroqError } from '../util/errors.js';

export interface QuantizeOptions {
  /** Weight width Nw of every conv layer (2..8)... */
  wbits: number;
  /** ...except the first (reading the frame) and the head convs (read only by yolo layers), when given. */
  firstBits?: number;
  headBits?: number;
  /**
   * Per-layer weight widths, indexed like the network's layers (0 or absent: the rules above). Made by
   * the bit allocation (`--avg-bits`, src/retrain/bit-widths.ts); overrides wbits, firstBits and headBits.
   */
  layerBits?: number[];
  perChannel: boolean;
  zeroCenter: boolean;
  /** Weight fraction bits from the range ('minmax', default) or by least squared error with clipping ('mse'). */
  weightClip?: WeightClip;
  /** Where each channel's integers are centered, by width (weights.ts CenterRule); absent: the mean. */
  center?: CenterRule;
  /**
   * 'output': round each layer's weights for the least error of its output (gptq.ts) on the integer
   * inputs the format search computes; with the other activation calibrations (no such inputs) it
   * rounds to nearest. Default 'nearest' (quantizeDefaults: 'output').
   */
  rounding?: WeightRounding;
  /** With 'output': the order the weights of a channel are rounded in (gptq.ts RoundingOrder); default 'index'. */
  roundingOrder?: RoundingOrder;
  /**
   * With 'output': the error rounded for, by layer width (float-target.ts roundingTargetAt): the layer's own
   * ('layer', when absent) or against the float network's ('float'); quantizeDefaults: 'auto'.
   */
  roundingTarget?: RoundingTargetRule;
  /** Activation width (8) and width of the tensors read only by yolo layers (8 or 16). */
  abits: number;
  headAbits: number;
  actCalib: ActCalibMethod;
  /** For 'percentile': the percentile of |x| kept unclipped. */
  percentile?: number;
  /**
   * Correct conv biases for the mean error of the rounded weights: Σ (w − ŵ)·E[x] with the input
   * means of the integer pipeline (search) or of the float model (minmax, percentile).
   */
  biasCorrection?: boolean;
  /**
   * Equalize across conv pairs first (equalize.ts): with per-channel weight formats the activation
   * ranges (with these exponents; true: the defaults), with per-layer formats the weight ranges.
   * Default on.
   */
  equalize?: EqualizeOptions | boolean;
  /**
   * With per-channel formats: after equalizing, scale conv pairs so that each channel's weight range
   * lands just below the top of its power-of-two grid (equalize.ts alignWeightGrid). Default off.
   */
  alignWeights?: boolean;
  /** For 'search': the error each candidate format is judged by (see SearchOptions.objective). */
  searchObjective?: 'exact' | 'float';
  /** For 'search': how many of the frames it runs (default all). */
  searchImages?: number;
  /** onnxruntime threads for the float passes. */
  threads?: number;
}

export type ProgressPhase = 'float' | 'search' | 'weights';

/** One layer of the report. */
export interface LayerReport {
  index: number;
  kind: Layer['kind'];
  out: Shape;
  format: TensorFormat;
  calibrated: boolean;
  /** Float range of the output over the calibration images. */
  min?: number;
  max?: number;
  /** Search only: signal-to-error ratio (dB) of the integer output against the float one. */
  actSqnr?: number;
  conv?: ConvStats;
}

export interface QuantizeResult {
  qnet: QNet;
  /** The float model the QNet was made from (the equalized one when equalization is on). */
  model: FloatModel;
  equalized?: EqualizedPair[];
  layers: LayerReport[];
  calibration: { method: ActCalibMethod; percentile?: number; images: number; searchImages?: number };
}

export function quantizeDefaults(): Omit<QuantizeOptions, 'wbits'> {
  return {
    perChannel: true, zeroCenter: true, abits: 8, headAbits: 16, actCalib: 'search', percentile: 99.99, biasCorrection: true, searchObjective: 'exact',
    // The paper's rule: fraction bits from each channel's min and max, so no weight is clipped
    // (--weight-clip mse clips for the least squared error; docs/decisions/quantizer-defaults.md).
    weightClip: 'minmax', rounding: 'output',
    // Off the mean at 5 bits and narrower, where it gives a finer grid (weights.ts CenterRule).
    center: 'auto',
    // At 4 bits and narrower, rounded against the float network's output (float-target.ts).
    roundingTarget: 'auto',
  };
}

/** The weight options of a conv layer: --first-bits / --head-bits override Nw where given. */
export function convOptionsFor(opts: QuantizeOptions, heads: boolean[]): (layer: ConvLayer) => ConvQuantOptions {
  return (layer) => {
    let wbits = opts.wbits;
    if (opts.layerBits?.[layer.index]) wbits = opts.layerBits[layer.index];
    else if (layer.inputs[0] === -1 && opts.firstBits !== undefined) wbits = opts.firstBits;
    else if (heads[layer.index] && opts.headBits !== undefined) wbits = opts.headBits;
    return {
      wbits, perChannel: opts.perChannel, zeroCenter: opts.zeroCenter,
      ...(opts.weightClip === 'mse' ? { clip: 'mse' as const } : {}), ...(centerAt(opts.center, wbits) === 'fit' ? { center: 'fit' as const } : {}),
    };
  };
}

function checkOptions(opts: QuantizeOptions): void {
  checkWbits(opts.wbits, '--wbits');
  if (opts.firstBits !== undefined) checkWbits(opts.firstBits, '--first-bits');
  if (opts.headBits !== undefined) checkWbits(opts.headBits, '--head-bits');
  opts.layerBits?.forEach((b, i) => {
    if (b !== 0) checkWbits(b, `layer ${i} width`);
  });
  if (!['minmax', 'percentile', 'search'].includes(opts.actCalib)) {
    throw new ZeroqError('quant-options', `activation calibration must be minmax, percentile or search, got ${opts.actCalib}`, '--act-calib');
  }
  const p = opts.percentile ?? 99.99;
  if (!(p > 0 && p <= 100)) throw new ZeroqError('quant-options', `percentile must be in (0, 100], got ${p}`, '--percentile');
}

/** Float statistics of every layer's output over the frames (histograms: for the percentile rule). */
export async function collectStats(
  engine: FloatEngine, model: FloatModel, frames: Frame[], onImage?: (done: number) => void, histogram = true,
): Promise<ActivationStats> {
  const stats = new ActivationStats(model.net, { histogram });
  for (let k = 0; k < frames.length; k++) {
    stats.addInput(frames[k].rgb);
    for (const out of await engine.inferLayers(frames[k])) stats.add(out.layer, out.data);
    stats.images++;
    onImage?.(k + 1);
  }
  return stats;
}

/**
 * Conv parameters of every conv layer for given activation formats; with `means` (float statistics)
 * the biases are corrected for the mean error of the rounded weights.
 */
export function quantizeConvs(
  model: FloatModel,
  formats: TensorFormat[],
  convOptions: (layer: ConvLayer) => ConvQuantOptions,
  means?: ActivationStats,
): { convs: (QConv | undefined)[]; stats: (ConvStats | undefined)[] } {
  const convs: (QConv | undefined)[] = [];
  const stats: (ConvStats | undefined)[] = [];
  for (const l of model.net.layers) {
    if (l.kind !== 'conv') {
      convs.push(undefined);
      stats.push(undefined);
      continue;
    }
    const p = model.params[l.index];
    if (!p) throw new ZeroqError('quant-params', 'conv layer without parameters', l.source ?? `layer ${l.index}`);
    const src = l.inputs[0];
    const o = convOptions(l);
    if (means) o.inputMean = means.channelMean(src);
    const r = quantizeConv(model.net, l, p, o, src === -1 ? networkInput() : tensorInput(formats[src]));
    convs.push(r.qconv);
    stats.push(r.stats);
  }
  return { convs, stats };
}

/** What several quantizations of one model on the same frames can share. */
export interface QuantizeShared {
  /** A float engine created with allOutputs (left open). */
  engine?: FloatEngine;
  /** Statistics of the same frames. */
  stats?: ActivationStats;
}

export async function quantizeModel(
  model0: FloatModel,
  frames: Frame[],
  opts: QuantizeOptions,
  progress?: (phase: ProgressPhase, done: number, total: number) => void,
  shared: QuantizeShared = {},
): Promise<QuantizeResult> {
  checkOptions(opts);
  const { net } = model0;
  const refused = unsupportedLayers(net.layers, 'quantizer');
  if (refused.length > 0) throw new ZeroqError('quant-unsupported', unsupportedMessage(refused), net.name);
  if (opts.layerBits && opts.layerBits.length !== net.layers.length) {
    throw new ZeroqError('quant-bits', `${opts.layerBits.length} layer widths for ${net.layers.length} layers`, net.name);
  }
  if (frames.length === 0) throw new ZeroqError('quant-calib', 'calibration needs at least one image', net.name);
  const equalize = opts.equalize ?? true;
  const bits = outputBits(net, opts.abits, opts.headAbits);
  const heads = feedsOnlyHeads(net);
  const convOptions = convOptionsFor(opts, heads);
  const histogram = opts.actCalib === 'percentile';
  const engines: FloatEngine[] = [];
  const floatEngine = async (m: FloatModel): Promise<FloatEngine> => {
    const e = await FloatEngine.create(m, { allOutputs: true, threads: opts.threads ?? 1 });
    engines.push(e);
    return e;
  };
  try {
    let model = model0;
    let engine = shared.engine ?? (await floatEngine(model));
    let stats = shared.stats ?? (await collectStats(engine, model, frames, (k) => progress?.('float', k, frames.length), histogram));
    let equalized: EqualizedPair[] | undefined;
    if (equalize) {
      const eq = opts.perChannel ? equalizeModel(model, stats.channelMax, equalize === true ? {} : equalize) : equalizeWeightsModel(model);
      model = eq.model;
      equalized = eq.pairs;
      engine = await floatEngine(model);
      stats = await collectStats(engine, model, frames, (k) => progress?.('float', k, frames.length), histogram);
    }
    if (opts.alignWeights && opts.perChannel) {
      model = alignWeightGrid(model, { wbits: (l) => convOptions(l).wbits, zeroCenter: opts.zeroCenter }).model;
      engine = await floatEngine(model);
      stats = await collectStats(engine, model, frames, (k) => progress?.('float', k, frames.length), histogram);
    }
    let formats: TensorFormat[];
    let convs: (QConv | undefined)[];
    let convStats: (ConvStats | undefined)[];
    let sqnr: (number | undefined)[] = [];
    let searchImages: number | undefined;
    if (opts.actCalib === 'search') {
      searchImages = Math.min(frames.length, opts.searchImages ?? frames.length);
      const r = await searchFormats(model, engine, frames.slice(0, searchImages), {
        bits,
        convOptions,
        stats,
        biasCorrection: opts.biasCorrection ?? false,
        ...(opts.rounding === 'output' ? { rounding: 'output' as const, roundingOrder: opts.roundingOrder ?? 'index', roundingTarget: opts.roundingTarget ?? 'layer' } : {}),
        objective: opts.searchObjective ?? 'exact',
        threads: opts.threads ?? 1,
        onLayer: (d, t) => progress?.('search', d, t),
      });
      ({ formats, convs, convStats, sqnr } = r);
    } else {
      formats = formatsFromStats(net, stats, bits, opts.actCalib, opts.percentile);
      ({ convs, stats: convStats } = quantizeConvs(model, formats, convOptions, opts.biasCorrection ? stats : undefined));
      progress?.('weights', 1, 1);
    }
    const qnet: QNet = { net, formats, convs };
    validateQNet(qnet);
    const layers: LayerReport[] = net.layers.map((l) => ({
      index: l.index,
      kind: l.kind,
      out: l.out,
      format: formats[l.index],
      calibrated: ownsFormat(l),
      ...(l.kind !== 'yolo' && stats.count[l.index] > 0 ? { min: stats.min[l.index], max: stats.max[l.index] } : {}),
      ...(sqnr[l.index] !== undefined ? { actSqnr: sqnr[l.index] } : {}),
      ...(convStats[l.index] ? { conv: convStats[l.index] } : {}),
    }));
    return {
      qnet,
      model,
      ...(equalized ? { equalized } : {}),
      layers,
      calibration: {
        method: opts.actCalib,
        ...(opts.actCalib === 'percentile' ? { percentile: opts.percentile ?? 99.99 } : {}),
        images: frames.length,
        ...(searchImages !== undefined ? { searchImages } : {}),
      },
    };
  } finally {
    for (const e of engines) await e.close();
  }
}
