/**
 * Weight widths per layer at an average number of bits per weight (`zeroq quantize --avg-bits`,
 * `zeroq retrain --avg-bits`).
 *
 * 1. Sensitivity: the quantizer at 8 bits gives the formats; then each conv layer alone is quantized
 *    at every narrower width (same formats, bias correction from the integer inputs' means) and the
 *    integer network is run on a few frames. A layer's error at a width is how much the distillation
 *    loss of the heads against the float model (the training loss, loss.ts) grows over the all-8-bit
 *    network. Layers before the changed one are not run again. With output-error rounding (the
 *    quantizer's default) each variant is rounded that way, from the layer's inputs in the 8-bit
 *    network: rounded to the nearest point instead, narrow layers looked far worse than the quantizer
 *    then makes them, and the widths went to the wrong layers.
 *    The errors at 5 to 7 bits are mostly measurement noise (±0.1 on 32 images, either sign), which
 *    the allocation read as real: it moved bits by it. So they are replaced by a model (fittedErrors):
 *    a quantization step one bit finer has a quarter of the noise power, so e(b) ≈ s·4^-b, with s fitted
 *    by least squares to the measured 3-, 4- and 5-bit errors (where the signal stands above the
 *    noise); the measured errors are kept up to 4 bits.
 * 2. Allocation (src/quant/bit-allocation.ts): the widths with the least summed error at the average,
 *    once for each narrowest width allowed (2, 3, ... up to the average): the errors are measured one
 *    layer at a time, and their sum says less the more layers are narrow at once, so a floor is a
 *    real alternative. With the floor at an integer average, the candidate is the uniform width.
 * 3. Choice: each candidate is quantized (`zeroq quantize` with those widths) and, with a validation
 *    list, scored there; the best validation AP50 is kept. Without one, the candidate of the default
 *    floor is taken.
 */
import type { FloatModel } from '../model/ir.js';
import type { Frame } from '../engine/engine.js';
import type { GroundTruth } from '../eval/coco.js';
import type { QNet } from '../qnet/types.js';
import { INPUT_FRAC } from '../qnet/types.js';
import { networkInput, tensorInput } from '../qnet/bounds.js';
import { quantizeConv } from '../quant/conv.js';
import { centerAt } from '../quant/weights.js';
import { inputHessian, type InputHessian } from '../quant/gptq.js';
import { quantizeModel, type QuantizeOptions, type QuantizeResult } from '../quant/quantize.js';
import { allocateBits, fittedErrors, MAX_WIDTH, MIN_WIDTH, type LayerErrors } from '../quant/bit-allocation.js';
import { ZeroqError } from '../util/errors.js';
import { fromQNet, intConvOf } from './formats.js';
import { distillationLoss } from './loss.js';
import { floatForward, floatHeadValues, headValues, quantForward, type IntConv, type IntNet } from './sim.js';
import { frameBatch, type FrameSet } from './data.js';
import { validationAp } from './validate.js';

/** The narrowest width allowed when no validation list chooses among the candidates. */
export const DEFAULT_FLOOR = 3;

export interface WidthOptions {
  /** The quantizer's options (their wbits, firstBits, headBits and layerBits are replaced). */
  quant: QuantizeOptions;
  /** Target average bits per weight (over all conv weights). */
  avgBits: number;
  /** Frames the per-layer errors are measured on. */
  sensitivity: FrameSet;
  /** With a validation list: every candidate is scored there and the best AP50 kept. */
  val?: { frames: FrameSet; gt: GroundTruth };
  /** Floors tried (default: 2 up to the average); without a validation list only `floor` is used. */
  floors?: number[];
  /** The floor used without a validation list (default DEFAULT_FLOOR, or the average when lower). */
  floor?: number;
  batch?: number;
  threads: number;
  /**
   * What the allocation sees: the measured errors up to 4 bits and the model e(b) = s·4^-b above
   * (fitted, the default), or the errors as measured.
   */
  errorModel?: ErrorModel;
  /** Layer errors measured before (layerErrors) for the same model, options and frames: not measured again. */
  measured?: { errors: LayerErrors[]; baseLoss: number };
  log?(msg: string): void;
}

export interface WidthCandidate {
  /** Narrowest width allowed. */
  minBits: number;
  /** Width per network layer (0 for layers without weights). */
  layerBits: number[];
  avgBits: number;
  /** Summed error of the widths, as the allocation read it (errorModel). */
  error: number;
  /** Validation figures of its quantization (with a validation list). */
  ap?: number;
  ap50?: number;
}

export interface WidthChoice {
  /** The chosen candidate and the quantizer's result for it. */
  chosen: WidthCandidate;
  result: QuantizeResult;
  candidates: WidthCandidate[];
  /** Measured error per conv layer and width. */
  errors: LayerErrors[];
  /** Distillation loss of the all-8-bit network on the sensitivity frames. */
  baseLoss: number;
  sensitivityImages: number;
  /** What the allocation read: the fitted model above 4 bits, or the errors as measured. */
  errorModel: ErrorModel;
}

/**
 * What a layer's error is measured against. 'float': the growth of the distillation loss against the
 * float network over the all-8-bit network's. Its first-order part has either sign, so at 5 to 7 bits
 * the measured errors are mostly noise around 0 (negative for many layers on 32 images) and the
 * allocation reads them as free. 'base': the distillation loss of the network with the one layer
 * narrowed against the all-8-bit network's own heads: never negative, second order in the change.
 * 'float' stays the default: on 1.1 at 4.5 bits 'base' chose widths 1.3 AP50 worse on the validation
 * split (docs/benchmarks/avg-bits-check.md).
 */
export type ErrorReference = 'float' | 'base';
export type ErrorModel = 'fitted' | 'measured';
export const DEFAULT_ERROR_MODEL: ErrorModel = 'fitted';
export const DEFAULT_ERROR_REFERENCE: ErrorReference = 'float';

/**
 * Measured error of every conv layer alone at each width below 8 (index = width; [8] = 0), with the
 * formats of `base` (an 8-bit quantization of `model`, the equalized float model it was made from).
 */
export function layerErrors(
  base: QNet, model: FloatModel, frames: FrameSet,
  opts: { quant: QuantizeOptions; threads: number; batch?: number; minBits?: number; reference?: ErrorReference; log?(m: string): void },
): { errors: LayerErrors[]; baseLoss: number } {
  const { net } = model;
  const minBits = opts.minBits ?? MIN_WIDTH;
  const reference = opts.reference ?? DEFAULT_ERROR_REFERENCE;
  const N = frames.paths.length;
  if (N === 0) throw new ZeroqError('quant-calib', 'measuring layer errors needs at least one image', net.name);
  const B = opts.batch ?? 8;
  const q8 = fromQNet(base);
  const convLayers = net.layers.filter((l) => l.kind === 'conv');

  // Input means of every conv layer over the frames (real values of the 8-bit network's integers),
  // for the bias correction, as the quantizer's search takes them.
  const sums = new Map<number, Float64Array>();
  const srcOf = (i: number) => (net.layers[i].inputs[0] as number);
  for (const l of convLayers) if (!sums.has(srcOf(l.index))) sums.set(srcOf(l.index), new Float64Array(srcOf(l.index) === -1 ? net.input.c : net.layers[srcOf(l.index)].out.c));
  for (let b0 = 0; b0 < N; b0 += B) {
    const n = Math.min(B, N - b0);
    const tape = quantForward(net, q8, frameBatch(frames, b0, n), opts.threads);
    for (const [src, s] of sums) {
      const x = src === -1 ? tape.input : tape.outs[src];
      const c = s.length;
      const plane = x.length / n / c;
      for (let k = 0; k < n; k++) for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let i = (k * c + ch) * plane, e = i + plane; i < e; i++) acc += x[i];
        s[ch] += acc;
      }
    }
  }
  const means = new Map<number, Float64Array>();
  for (const [src, s] of sums) {
    const frac = src === -1 ? INPUT_FRAC : base.formats[src].frac;
    const plane = src === -1 ? net.input.w * net.input.h : net.layers[src].out.w * net.layers[src].out.h;
    means.set(src, Float64Array.from(s, (v) => (v * 2 ** -frac) / (plane * N)));
  }

  // The integer parameters of every layer at every narrower width, rounded as the quantizer will round
  // them: with output-error rounding, from the layer's inputs in the 8-bit network on the first batch.
  const hessianFrames = Math.min(B, N);
  const firstTape = opts.quant.rounding === 'output' ? quantForward(net, q8, frameBatch(frames, 0, hessianFrames), opts.threads) : undefined;
  const variants = new Map<number, IntConv[]>();
  for (const l of convLayers) {
    if (l.kind !== 'conv') continue;
    const src = srcOf(l.index);
    const input = src === -1 ? networkInput() : tensorInput(base.formats[src]);
    let hessian: InputHessian | undefined;
    if (firstTape) {
      const shape = src === -1 ? net.input : net.layers[src].out;
      const x = src === -1 ? firstTape.input : firstTape.outs[src];
      const size = shape.c * shape.h * shape.w;
      const frac = src === -1 ? INPUT_FRAC : base.formats[src].frac;
      hessian = inputHessian(net, l, Array.from({ length: hessianFrames }, (_, k) => ({ c: shape.c, h: shape.h, w: shape.w, data: x.subarray(k * size, (k + 1) * size), frac })), undefined, opts.threads);
    }
    const list: IntConv[] = [];
    for (let b = minBits; b < MAX_WIDTH; b++) {
      const { qconv } = quantizeConv(net, l, model.params[l.index]!, {
        wbits: b, perChannel: opts.quant.perChannel, zeroCenter: opts.quant.zeroCenter, ...(opts.quant.weightClip === 'mse' ? { clip: 'mse' as const } : {}),
        ...(centerAt(opts.quant.center, b) === 'fit' ? { center: 'fit' as const } : {}),
        ...(opts.quant.biasCorrection ? { inputMean: means.get(src)! } : {}),
        ...(hessian ? { hessian } : {}),
      }, input);
      list[b] = intConvOf(l, qconv, src === -1 ? INPUT_FRAC : base.formats[src].frac, base.formats[l.index].frac);
    }
    variants.set(l.index, list);
  }

  const err = convLayers.map(() => new Array<number>(MAX_WIDTH + 1).fill(0));
  let baseLoss = 0;
  for (let b0 = 0; b0 < N; b0 += B) {
    const n = Math.min(B, N - b0);
    const batch = frameBatch(frames, b0, n);
    const outs = floatForward(net, model.params, batch, opts.threads);
    const teacher = floatHeadValues(net, outs);
    const tape = quantForward(net, q8, batch, opts.threads);
    const heads8 = headValues(net, q8, tape);
    const l0 = distillationLoss(net, heads8, teacher, n).loss;
    baseLoss += l0 * n;
    convLayers.forEach((l, k) => {
      const list = variants.get(l.index)!;
      for (let b = minBits; b < MAX_WIDTH; b++) {
        const convs = q8.convs.slice();
        convs[l.index] = list[b];
        const q: IntNet = { ...q8, convs };
        const t = quantForward(net, q, batch, opts.threads, { tape, from: l.index });
        const heads = headValues(net, q, t);
        err[k][b] += (reference === 'base' ? distillationLoss(net, heads, heads8, n).loss : distillationLoss(net, heads, teacher, n).loss - l0) * n;
      }
    });
    opts.log?.(`layer errors: ${Math.min(N, b0 + n)}/${N} images`);
  }
  return {
    errors: convLayers.map((l, k) => ({ layer: l.index, weights: model.params[l.index]!.weight.length, error: err[k].map((v) => v / N) })),
    baseLoss: baseLoss / N,
  };
}

/** Floors tried for an average: 2 up to the average (the last, at an integer average, is the uniform width). */
export function defaultFloors(avgBits: number): number[] {
  const out: number[] = [];
  for (let f = MIN_WIDTH; f <= Math.min(MAX_WIDTH, Math.floor(avgBits + 1e-9)); f++) out.push(f);
  return out;
}

export async function chooseLayerWidths(model: FloatModel, calib: Frame[], o: WidthOptions): Promise<WidthChoice> {
  const log = o.log ?? (() => {});
  const { net } = model;
  if (!(o.avgBits >= MIN_WIDTH && o.avgBits <= MAX_WIDTH)) {
    throw new ZeroqError('quant-bits', `an average of ${o.avgBits} bits per weight is outside ${MIN_WIDTH}..${MAX_WIDTH}`, '--avg-bits');
  }
  const plain: QuantizeOptions = { ...o.quant, firstBits: undefined, headBits: undefined, layerBits: undefined };
  delete plain.firstBits;
  delete plain.headBits;
  delete plain.layerBits;
  const floor = Math.min(o.floor ?? DEFAULT_FLOOR, Math.floor(o.avgBits + 1e-9));
  const floors = o.val ? (o.floors ?? defaultFloors(o.avgBits)) : [floor];
  let measured = o.measured;
  if (!measured) {
    log(`quantizing at ${MAX_WIDTH} bits for the layer errors`);
    // Alignment depends on the widths: the errors are measured without it.
    const base = await quantizeModel(model, calib, { ...plain, wbits: MAX_WIDTH, alignWeights: false });
    measured = layerErrors(base.qnet, base.model, o.sensitivity, { quant: plain, threads: o.threads, batch: o.batch, minBits: Math.min(...floors), log });
  }
  const { errors, baseLoss } = measured;
  const minMeasured = Math.min(...floors);
  const errorModel = o.errorModel ?? DEFAULT_ERROR_MODEL;
  const modelled = errorModel === 'measured' ? errors : errors.map((e) => ({ ...e, error: fittedErrors(e.error, minMeasured) }));
  const candidates: WidthCandidate[] = [];
  const seen = new Set<string>();
  for (const f of floors) {
    const a = allocateBits(modelled, o.avgBits, { minBits: f });
    const layerBits = net.layers.map(() => 0);
    modelled.forEach((e, k) => (layerBits[e.layer] = a.widths[k]));
    const key = layerBits.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    candidates.push({ minBits: f, layerBits, avgBits: a.avgBits, error: a.error });
  }
  let chosen: { c: WidthCandidate; r: QuantizeResult } | undefined;
  for (const c of candidates) {
    log(`candidate with widths ${c.minBits}..${MAX_WIDTH}: ${c.avgBits.toFixed(3)} bits per weight, summed error ${c.error.toFixed(3)}`);
    const r = await quantizeModel(model, calib, { ...plain, wbits: MAX_WIDTH, layerBits: c.layerBits });
    if (o.val) {
      const v = validationAp(r.qnet, o.val.frames, o.val.gt, o.threads);
      c.ap = v.ap;
      c.ap50 = v.ap50;
      log(`  validation AP50 ${(100 * v.ap50).toFixed(2)}`);
    }
    if (!chosen || (c.ap50 !== undefined && c.ap50 > (chosen.c.ap50 ?? -Infinity))) chosen = { c, r };
  }
  return { chosen: chosen!.c, result: chosen!.r, candidates, errors, baseLoss, sensitivityImages: o.sensitivity.paths.length, errorModel };
}
