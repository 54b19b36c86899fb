/**
 * Activation format search through the quantized pipeline, layer by layer: the calibration images
 * run through the integer network as quantized so far; at each calibrated layer every candidate
 * fraction-bit count is tried on the integers actually reaching that layer, and the one with the
 * smallest squared error summed over the images is kept before moving on, so each choice sees the
 * errors of the layers before it. The error is measured against the layer's own exact values
 * (objective 'exact', the default) or against the float model's output ('float'); the float outputs
 * are needed either way for the report (integer-vs-float SQNR of every tensor).
 */
import type { ConvLayer, FloatModel, Layer } from '../model/ir.js';
import type { FloatEngine } from '../engine/float.js';
import type { Frame } from '../engine/engine.js';
import type { ITensor } from '../engine/int/tensor.js';
import { frameTensor } from '../engine/int/heads.js';
import { maxpoolReference } from '../engine/int/maxpool.js';
import { upsampleReference } from '../engine/int/upsample.js';
import { routeReference } from '../engine/int/route.js';
import { INPUT_FRAC, type QConv, type TensorFormat } from '../qnet/types.js';
import { ActivationStats, FA_MAX, FA_MIN, inheritedFormat, ownsFormat } from './calibrate.js';
import { convActivatedFrames, requantize, routeInt, shortcutInt, squaredError } from './calib-sim.js';
import { inputScaleFor, quantizeConv, type ConvQuantOptions, type ConvStats } from './conv.js';
import { networkInput, tensorInput } from '../qnet/bounds.js';
import { ZeroqError } from '../util/errors.js';
import { inputHessian, type RoundingOrder } from './gptq.js';
import { floatTargetParams, inputChannelMeans, roundingTargetAt, type RoundingTargetRule } from './float-target.js';
import type { WeightRounding } from './weights.js';

export interface SearchOptions {
  /** Output width of every layer. */
  bits: (8 | 16)[];
  /** Weight options of each conv layer. */
  convOptions: (layer: ConvLayer) => ConvQuantOptions;
  /** Correct each conv bias for the mean error of its rounded weights, using the inputs' means. */
  biasCorrection?: boolean;
  /** 'output': round each conv's weights for the least error of its output on the integer inputs (gptq.ts). */
  rounding?: WeightRounding;
  /** With 'output', the order each channel's weights are rounded in. */
  roundingOrder?: RoundingOrder;
  /** With 'output': the error rounded for, by layer width (float-target.ts roundingTargetAt); absent: the layer's own. */
  roundingTarget?: RoundingTargetRule;
  /**
   * What each candidate format is compared with: 'exact', the values the layer computes from its
   * (integer) inputs before its own output rounding — the error this format adds; or 'float', the
   * float model's output — which also counts the error arriving from earlier layers, and then
   * favours formats that shrink (clip) a noisy tensor.
   */
  objective?: 'exact' | 'float';
  /** Float statistics (min/max) of the same images: the candidates are centred on the min/max frac. */
  stats: ActivationStats;
  /** Candidates from (min/max frac − below) to (min/max frac + above). */
  below?: number;
  above?: number;
  /** Memory for float targets held at once (bytes); more layers than fit are loaded in chunks. */
  budgetBytes?: number;
  /** Threads of the integer convs over the frames (native kernels). */
  threads?: number;
  onLayer?: (done: number, total: number) => void;
}

export interface SearchResult {
  formats: TensorFormat[];
  convs: (QConv | undefined)[];
  convStats: (ConvStats | undefined)[];
  /** Per calibrated layer: signal-to-error ratio (dB) of its integer output against the float model's. */
  sqnr: (number | undefined)[];
}

/** Float outputs of the calibrated layers (and of any `also` asked for) for every image, loaded chunk by chunk within a budget. */
class FloatTargets {
  private readonly chunkOf: number[];
  private loaded = -1;
  private data = new Map<number, Float32Array[]>();

  constructor(
    private readonly engine: FloatEngine,
    private readonly frames: Frame[],
    model: FloatModel,
    budgetBytes: number,
    also: Set<number> = new Set(),
  ) {
    this.chunkOf = new Array<number>(model.net.layers.length).fill(-1);
    let chunk = 0;
    let used = 0;
    for (const l of model.net.layers) {
      if (!ownsFormat(l) && !also.has(l.index)) continue;
      const bytes = l.out.c * l.out.h * l.out.w * 4 * frames.length;
      if (used > 0 && used + bytes > budgetBytes) {
        chunk++;
        used = 0;
      }
      used += bytes;
      this.chunkOf[l.index] = chunk;
    }
  }

  async get(layer: number): Promise<Float32Array[]> {
    const chunk = this.chunkOf[layer];
    if (chunk !== this.loaded) {
      this.data = new Map();
      this.loaded = chunk;
      const want = new Set(this.chunkOf.flatMap((c, i) => (c === chunk ? [i] : [])));
      for (const i of want) this.data.set(i, []);
      for (const frame of this.frames) {
        for (const out of await this.engine.inferLayers(frame)) {
          if (want.has(out.layer)) this.data.get(out.layer)!.push(out.data.slice());
        }
      }
    }
    return this.data.get(layer)!;
  }
}

function where(layer: Layer): string {
  return layer.source ? `layer ${layer.index} (${layer.source})` : `layer ${layer.index} (${layer.kind})`;
}

/** Candidate fracs around the min/max frac, within the allowed range. */
function candidates(center: number, below: number, above: number): number[] {
  const out: number[] = [];
  for (let f = Math.max(FA_MIN, center - below); f <= Math.min(FA_MAX, center + above); f++) out.push(f);
  return out;
}

/** The real values a shortcut or route computes from its integer inputs, before rounding to its format. */
function exactMerge(layer: Layer, xs: ITensor[], fracs: number[]): Float32Array {
  if (layer.kind === 'shortcut') {
    const out = new Float32Array(xs[0].data.length);
    xs.forEach((x, k) => {
      const s = 2 ** -fracs[k];
      for (let i = 0; i < out.length; i++) out[i] += x.data[i] * s;
    });
    if (layer.activation === 'leaky') for (let i = 0; i < out.length; i++) out[i] = out[i] < 0 ? out[i] * (3277 / 32768) : out[i];
    if (layer.activation === 'relu') for (let i = 0; i < out.length; i++) out[i] = Math.max(0, out[i]);
    return out;
  }
  if (layer.kind !== 'route') throw new ZeroqError('quant-layer', `no merge for ${layer.kind}`, where(layer));
  const { c, h, w } = layer.out;
  const plane = h * w;
  const out = new Float32Array(c * plane);
  let oc = 0;
  xs.forEach((x, k) => {
    const cs = x.c / layer.groups;
    const s = 2 ** -fracs[k];
    const from = cs * layer.groupId * plane;
    for (let i = 0; i < cs * plane; i++) out[oc * plane + i] = x.data[from + i] * s;
    oc += cs;
  });
  return out;
}

function energy(targets: Float32Array[]): number {
  let e = 0;
  for (const t of targets) for (let i = 0; i < t.length; i++) e += t[i] * t[i];
  return e;
}

/** Picks the candidate with the least summed error (ties: the wider range, i.e. the smaller frac). */
function pick(cands: number[], errorOf: (frac: number) => number): { frac: number; err: number } {
  let best = { frac: cands[0], err: Infinity };
  for (const f of cands) {
    const e = errorOf(f);
    if (e < best.err) best = { frac: f, err: e };
  }
  return best;
}

export async function searchFormats(model: FloatModel, engine: FloatEngine, frames: Frame[], opts: SearchOptions): Promise<SearchResult> {
  const { net } = model;
  if (frames.length === 0) throw new ZeroqError('quant-calib', 'the format search needs at least one calibration image', net.name);
  const below = opts.below ?? 1;
  const above = opts.above ?? 6;
  // Rounding against the float network also needs the float inputs of every conv.
  const aimsAtFloat = (l: ConvLayer): boolean => opts.rounding === 'output' && roundingTargetAt(opts.roundingTarget, opts.convOptions(l).wbits) === 'float';
  const convInputs = new Set(net.layers.flatMap((l) => (l.kind === 'conv' && l.inputs[0] >= 0 && aimsAtFloat(l) ? [l.inputs[0]] : [])));
  const targets = new FloatTargets(engine, frames, model, opts.budgetBytes ?? 512 * 2 ** 20, convInputs);
  const n = net.layers.length;

  // Last reader of every tensor, so that integer outputs are dropped as soon as nothing needs them.
  const lastReader = new Array<number>(n + 1).fill(-1);
  for (const l of net.layers) for (const i of l.inputs) lastReader[i + 1] = Math.max(lastReader[i + 1], l.index);

  const inputs: ITensor[] = frames.map((f) => frameTensor(net, f));
  const outs: (ITensor | undefined)[][] = frames.map(() => new Array<ITensor | undefined>(n));
  const get = (k: number, i: number): ITensor => {
    const t = i === -1 ? inputs[k] : outs[k][i];
    if (!t) throw new ZeroqError('quant-calib', `tensor of layer ${i} was released too early`, net.name);
    return t;
  };
  const formatOf = (formats: TensorFormat[], i: number): TensorFormat => (i === -1 ? { bits: 8, frac: INPUT_FRAC } : formats[i]);

  const formats: TensorFormat[] = [];
  const convs: (QConv | undefined)[] = new Array(n).fill(undefined);
  const convStats: (ConvStats | undefined)[] = new Array(n).fill(undefined);
  const sqnr: (number | undefined)[] = new Array(n).fill(undefined);

  for (const layer of net.layers) {
    const L = layer.index;
    const bits = opts.bits[L];
    if (!ownsFormat(layer)) {
      const f = inheritedFormat(layer, formats);
      formats.push(f);
      for (let k = 0; k < frames.length; k++) {
        const x = get(k, layer.inputs[0]);
        switch (layer.kind) {
          case 'maxpool':
            outs[k][L] = maxpoolReference(layer, x);
            break;
          case 'upsample':
            outs[k][L] = upsampleReference(layer, x);
            break;
          case 'route':
            outs[k][L] = routeReference(layer, [x], [f], f);
            break;
          case 'dropout':
            outs[k][L] = x;
            break;
          case 'yolo':
            break;
          default:
            throw new ZeroqError('quant-layer', `unexpected layer kind ${layer.kind}`, where(layer));
        }
      }
    } else {
      const tgt = await targets.get(L);
      const center = opts.stats.frac(L, bits, 'minmax');
      const cands = candidates(center, below, above);
      const { c, h, w } = layer.out;
      let produce: (k: number, frac: number) => Int32Array;
      let exact: (k: number) => Float32Array;
      if (layer.kind === 'conv') {
        const src = layer.inputs[0];
        const inFmt = formatOf(formats, src);
        const copts = opts.convOptions(layer);
        const xs = frames.map((_, k) => get(k, src));
        if (opts.biasCorrection) copts.inputMean = inputChannelMeans(xs, 2 ** -inFmt.frac);
        let params = model.params[L]!;
        if (opts.rounding === 'output') {
          const qInputs = xs.map((x) => ({ ...x, frac: inFmt.frac }));
          copts.hessian = inputHessian(net, layer, qInputs, undefined, opts.threads ?? 1, opts.roundingOrder);
          // The network input is the same integers in both networks: nothing to aim at.
          if (aimsAtFloat(layer) && src !== -1) {
            const fInputs = await targets.get(src);
            const means = copts.inputMean ? { quantized: copts.inputMean, float: inputChannelMeans(xs.map((x, k) => ({ ...x, data: fInputs[k] })), 1) } : undefined;
            params = floatTargetParams(net, layer, params, copts.hessian, qInputs, fInputs, inputScaleFor(layer), means);
          }
        }
        const { qconv, stats } = quantizeConv(net, layer, params, copts, src === -1 ? networkInput() : tensorInput(inFmt));
        convs[L] = qconv;
        convStats[L] = stats;
        const act = convActivatedFrames(layer, qconv, frames.map((_, k) => get(k, src)), opts.threads ?? 1);
        const buf = new Int32Array(c * h * w);
        produce = (k, frac) => requantize(act[k], qconv, h * w, inFmt.frac, frac, bits, buf);
        exact = (k) => {
          const out = new Float32Array(act[k].length);
          const plane = h * w;
          for (let o = 0; o < c; o++) {
            const s = 2 ** -(qconv.fw[o] + inFmt.frac);
            for (let p = o * plane; p < (o + 1) * plane; p++) out[p] = act[k][p] * s;
          }
          return out;
        };
      } else {
        const inFracs = layer.inputs.map((i) => formatOf(formats, i).frac);
        produce = (k, frac) => {
          const xs = layer.inputs.map((i) => get(k, i));
          return layer.kind === 'shortcut'
            ? shortcutInt(layer, xs, inFracs, frac, bits)
            : routeInt(layer as Extract<Layer, { kind: 'route' }>, xs, inFracs, frac, bits);
        };
        exact = (k) => exactMerge(layer, layer.inputs.map((i) => get(k, i)), inFracs);
      }
      const ref = (opts.objective ?? 'exact') === 'exact' ? frames.map((_, k) => exact(k)) : tgt;
      const best = pick(cands, (frac) => {
        let e = 0;
        for (let k = 0; k < frames.length; k++) e += squaredError(produce(k, frac), frac, ref[k]);
        return e;
      });
      formats.push({ bits, frac: best.frac });
      let err = 0;
      for (let k = 0; k < frames.length; k++) {
        const data = produce(k, best.frac).slice();
        outs[k][L] = { c, h, w, data };
        err += squaredError(data, best.frac, tgt[k]);
      }
      sqnr[L] = err === 0 ? Infinity : 10 * Math.log10(energy(tgt) / err);
    }
    for (const i of layer.inputs) {
      if (lastReader[i + 1] === L && i >= 0) for (const o of outs) o[i] = undefined;
    }
    opts.onLayer?.(L + 1, n);
  }
  return { formats, convs, convStats, sqnr };
}
