/**
 * Iterative quantization-aware retraining (S. Kim, H. Kim, IEEE Access 9, 2021, second half):
 * every iteration derives the fixed-point formats from the current float shadow weights, then
 * fine-tunes the shadow weights through the integer forward pass (straight-through gradients),
 * distilling the float model's heads (and, optionally, fitting darknet labels). The next iteration
 * quantizes again, possibly at a narrower weight width.
 */
import type { Network } from '../model/ir.js';
import type { QNet } from '../qnet/types.js';
import { ZeroqError } from '../util/errors.js';
import { adamStep, flatParams, newAdam, type AdamState } from './adam.js';
import type { Frame } from '../engine/engine.js';
import { inputScale, intNet, qnetDifferences, quantizerFormats, toQNet, type Formats, type QuantConfig } from './formats.js';
import { featureLoss, innerConvLayers } from './feature-loss.js';
import { distillationLoss, labelLoss, type DistillWeighting, type LabelBox } from './loss.js';
import { backward, floatForward, floatHeadValues, headValues, quantForward, type Batch, type Grads, type ParamSet } from './sim.js';
import type { FrameSet } from './data.js';
import type { HeadTeacher } from './head-teacher.js';
import { observeOscillations, OSCILLATION_MOMENTUM, pinFrozen, startOscillations, type OscillationState } from './oscillation.js';

export interface TrainConfig {
  quant: Omit<QuantConfig, 'wbits'>;
  /** Weight width of each iteration (the last repeats when there are more iterations). */
  schedule: number[];
  iterations: number;
  epochs: number;
  batch: number;
  /** Learning rate of the first iteration. */
  lr: number;
  /** Factor applied to the learning rate at each following iteration (default 0.5). */
  lrDecay?: number;
  /** Mirror each training image left-right with probability 1/2 at every step (default off). */
  flip?: boolean;
  /**
   * Take the quantizer's formats at the first iteration (and where the width changes) only; the
   * following iterations keep them and decay the learning rate. For a start rounded for the output
   * error, which re-quantization to the nearest point does not give back (docs/decisions/retrain-recipe.md).
   */
  keepFormats?: boolean;
  /**
   * Average of the shadow weights: after every step avg = d·avg + (1 − d)·weights (exponential, decay d
   * per step, starting from the iteration's first weights); at the end of each iteration the weights
   * become the average, so the integer network the iteration writes and the next iteration's start
   * are the average's. 0 or absent: none. Meant to damp the 1-2 point swings of held-out AP50 from one
   * iteration to the next on a few hundred training images (measured: docs/decisions/retrain-recipe.md).
   */
  averageDecay?: number;
  /**
   * Random crops: at every step each training image is replaced by a window of a random fraction in
   * [crop, 1] of its width and height at a random place, scaled back to the full size (bilinear);
   * labels follow. 1 or absent: none.
   */
  crop?: number;
  /**
   * Blends: at every step each training image becomes (1 − a)·itself + a·another image of the list (drawn
   * at random, as it is stored), a drawn uniformly from [0, mix] (mix ≤ 0.5), after mirroring and cropping.
   * The teacher sees the same blend, so distillation still has exact targets: more distinct frames from
   * the same few hundred images (mixup for distillation, "function matching", Beyer et al. 2022).
   * Not with labels. 0 or absent: none.
   */
  mix?: number;
  /**
   * 'absolute': the Adam step size is lr for every parameter; 'step': lr times the parameter's
   * quantization step (2^-fw of its channel for weights, the LSB of the layer's output for biases),
   * so that channels whose ranges differ by orders of magnitude move alike.
   */
  lrUnit?: 'absolute' | 'step';
  /**
   * Freeze oscillating integer weights (oscillation.ts): a weight whose integer flips back and forth
   * more often than this (exponential average of oscillations per step) is fixed on its averaged grid
   * point for the rest of the iteration. Absent: none.
   */
  freezeOscillations?: number;
  seed: number;
  threads: number;
  /** How the distillation terms are weighted (loss.ts); default 'objectness'. */
  distill?: DistillWeighting;
  /** Weight of the label loss (0: distillation only). */
  labelWeight: number;
  /** Weight of the feature distillation of the inner conv layers (feature-loss.ts); 0 or absent: none. */
  featureWeight?: number;
  /**
   * Another float network the heads are distilled towards instead of the student's own float model
   * (head-teacher.ts); the inner layers (featureWeight) still follow the student's own. Absent: none.
   */
  headTeacher?: HeadTeacher;
  /** Stop (after a finished step, with a checkpoint) once this many ms have been spent; 0: none. */
  budgetMs: number;
  /** Limit the steps per epoch (tests); 0: the whole list. */
  maxStepsPerEpoch: number;
  /**
   * Keep the teacher's head outputs of every training image (and of its mirror image) for the later
   * steps that see it again (default on; it applies when frames are not cropped or blended and the
   * heads' teacher is not run anyway for the feature loss, so the teacher gives the same numbers for
   * a frame every time).
   */
  teacherCache?: boolean;
}

/** The teacher's head outputs of one batch's frames, kept from earlier steps where they were computed. */
export interface TeacherHeads {
  /** Positions in the batch whose frames have no kept outputs yet. */
  missing(): number[];
  /** Keeps the outputs of the frames at these positions (heads of a batch of just those frames). */
  fill(positions: number[], heads: Float32Array[]): void;
  /** The whole batch's outputs (after the missing ones were filled). */
  get(): Float32Array[];
}

/**
 * Per training frame (image, mirrored or not), the teacher's head inputs. The float forward computes
 * each image on its own, so the numbers are those a new forward pass would give, bit for bit.
 */
class TeacherCache {
  private readonly byFrame = new Map<number, Float32Array[]>();
  constructor(private readonly sizes: number[]) {}
  batch(keys: number[]): TeacherHeads {
    return {
      missing: () => keys.flatMap((key, b) => (this.byFrame.has(key) ? [] : [b])),
      fill: (positions, heads) => {
        positions.forEach((b, i) => this.byFrame.set(keys[b], heads.map((h, k) => h.slice(i * this.sizes[k], (i + 1) * this.sizes[k]))));
      },
      get: () =>
        this.sizes.map((s, k) => {
          const out = new Float32Array(keys.length * s);
          keys.forEach((key, b) => {
            const h = this.byFrame.get(key);
            if (!h) throw new Error(`teacher outputs of frame ${key} were not kept`);
            out.set(h[k], b * s);
          });
          return out;
        }),
    };
  }
}

/** The frames at these positions of a batch, as a batch of their own. */
function framesOf(net: Network, batch: Batch, positions: number[]): Batch {
  const per = net.input.w * net.input.h * 3;
  const rgb = new Uint8Array(per * positions.length);
  positions.forEach((b, i) => rgb.set(batch.rgb.subarray(b * per, (b + 1) * per), i * per));
  return { n: positions.length, rgb };
}

/** Everything needed to continue a run exactly where it stopped. */
/** What a run trains on. */
export interface TrainData {
  frames: FrameSet;
  /** Darknet labels of the frames (for the label loss). */
  labels?: LabelBox[][];
  /** The quantizer's calibration frames (as detect/preprocess gives them, float planes included). */
  calib: Frame[];
}

export interface TrainState {
  iteration: number;
  epoch: number;
  /** Steps done in the current epoch. */
  step: number;
  rng: number;
  order: number[];
  params: ParamSet;
  adam: AdamState;
  elapsedMs: number;
  history: IterationRecord[];
  /** Formats of the current iteration (undefined before it starts). */
  formats?: Formats;
  /** Loss sum and step count of the current iteration. */
  lossSum: number;
  lossCount: number;
  /** Validation AP of the quantizer's output for the float model (before any retraining). */
  quantized?: { ap: number; ap50: number };
  /**
   * With feature distillation: the float model as the first iteration started, i.e. equalized when
   * the quantizer equalizes. Equalization rescales channels without changing what the network
   * computes, so the heads are as the float model's, and the inner outputs become comparable with
   * the student's.
   */
  teacher?: ParamSet;
  /** With averageDecay: the running average of the shadow weights in the current iteration. */
  average?: ParamSet;
  /** With freezeOscillations: the integers' oscillations in the current iteration. */
  oscillation?: OscillationState;
}

export interface IterationRecord {
  iteration: number;
  wbits: number;
  meanLoss: number;
  steps: number;
  elapsedMs: number;
  /** Validation AP (integer arithmetic) after this iteration, when a validation list is given. */
  ap?: number;
  ap50?: number;
  /** With freezeOscillations: integer changes and oscillations over the iteration's steps, weights frozen at its end. */
  oscillation?: { changes: number; oscillations: number; frozen: number };
}

export interface ProgressEvent {
  iteration: number;
  wbits: number;
  epoch: number;
  step: number;
  stepsPerEpoch: number;
  loss: number;
  elapsedMs: number;
}

export interface TrainHooks {
  onProgress?(e: ProgressEvent): void;
  onIterationStart?(iteration: number, wbits: number, stepsPerEpoch: number): void;
  /** Called with the state after every `checkpointEvery` steps and at the end of each epoch. */
  onCheckpoint?(state: TrainState): Promise<void>;
  checkpointEvery?: number;
  /** Validation of the integer network: of the quantizer's output before training, and after each iteration. */
  validate?(qnet: QNet): Promise<{ ap: number; ap50: number }>;
  /** The quantizer's output for the shadow weights at the start of an iteration. */
  onQuantized?(iteration: number, qnet: QNet): void | Promise<void>;
  onIterationEnd?(record: IterationRecord, qnet: QNet): void | Promise<void>;
}

export interface TrainResult {
  state: TrainState;
  qnet: QNet;
  /** True when the time budget ended the run early. */
  stoppedByBudget: boolean;
}

/** mulberry32 step: returns [value in [0,1), next state]. */
function nextRandom(s: number): [number, number] {
  const a = (s + 0x6d2b79f5) >>> 0;
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, a];
}

function shuffled(n: number, state: TrainState): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const [r, s] = nextRandom(state.rng);
    state.rng = s;
    const j = Math.floor(r * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

export function cloneParams(p: ParamSet): ParamSet {
  return p.map((c) => (c ? { weight: c.weight.slice(), bias: c.bias.slice() } : undefined));
}

/** avg = d·avg + (1 − d)·p, element by element. */
export function averageInto(avg: ParamSet, p: ParamSet, d: number): void {
  const a = flatParams(avg);
  flatParams(p).forEach((x, k) => {
    const y = a[k];
    for (let i = 0; i < x.length; i++) y[i] = d * y[i] + (1 - d) * x[i];
  });
}

export function initialState(params: ParamSet, seed: number): TrainState {
  const shadow = cloneParams(params);
  return { iteration: 0, epoch: 0, step: 0, rng: seed >>> 0, order: [], params: shadow, adam: newAdam(shadow), elapsedMs: 0, history: [], lossSum: 0, lossCount: 0 };
}

export function wbitsOf(cfg: TrainConfig, iteration: number): number {
  return cfg.schedule[Math.min(iteration, cfg.schedule.length - 1)];
}

/** Mirrors an HWC RGB frame left-right in place. */
export function mirrorFrame(rgb: Uint8Array, w: number, h: number): void {
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    for (let a = 0, b = w - 1; a < b; a++, b--) {
      for (let c = 0; c < 3; c++) {
        const i = row + a * 3 + c;
        const j = row + b * 3 + c;
        const t = rgb[i];
        rgb[i] = rgb[j];
        rgb[j] = t;
      }
    }
  }
}

/** img = (1 − a)·img + a·other, rounded to the nearest 8-bit value. */
export function blendFrame(img: Uint8Array, other: Uint8Array, a: number): void {
  for (let i = 0; i < img.length; i++) img[i] = Math.round((1 - a) * img[i] + a * other[i]);
}

/** A crop window, relative to the frame: left, top, width, height in [0, 1]. */
export interface CropWindow {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The window of an HWC RGB frame scaled back to the frame's size (bilinear, pixel centres aligned), into `out`. */
export function cropFrame(src: Uint8Array, w: number, h: number, c: CropWindow, out: Uint8Array): void {
  // Source pixels per output pixel.
  const sx = c.w;
  const sy = c.h;
  for (let y = 0; y < h; y++) {
    const fy = Math.min(h - 1, Math.max(0, c.y * h + (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(h - 1, y0 + 1);
    const ay = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(w - 1, Math.max(0, c.x * w + (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(w - 1, x0 + 1);
      const ax = fx - x0;
      for (let ch = 0; ch < 3; ch++) {
        const v00 = src[(y0 * w + x0) * 3 + ch];
        const v01 = src[(y0 * w + x1) * 3 + ch];
        const v10 = src[(y1 * w + x0) * 3 + ch];
        const v11 = src[(y1 * w + x1) * 3 + ch];
        const v = (1 - ay) * ((1 - ax) * v00 + ax * v01) + ay * ((1 - ax) * v10 + ax * v11);
        out[(y * w + x) * 3 + ch] = Math.round(v);
      }
    }
  }
}

/** Label boxes seen through a crop window: moved and scaled, cut at the window, dropped when less than a tenth is left. */
export function cropLabels(boxes: LabelBox[], c: CropWindow): LabelBox[] {
  const out: LabelBox[] = [];
  for (const b of boxes) {
    const x0 = Math.max(b.cx - b.w / 2, c.x);
    const x1 = Math.min(b.cx + b.w / 2, c.x + c.w);
    const y0 = Math.max(b.cy - b.h / 2, c.y);
    const y1 = Math.min(b.cy + b.h / 2, c.y + c.h);
    if (x1 <= x0 || y1 <= y0 || (x1 - x0) * (y1 - y0) < 0.1 * b.w * b.h) continue;
    out.push({ ...b, cx: ((x0 + x1) / 2 - c.x) / c.w, cy: ((y0 + y1) / 2 - c.y) / c.h, w: (x1 - x0) / c.w, h: (y1 - y0) / c.h });
  }
  return out;
}

/**
 * The batch of the images `idx`; with `flip`, each one mirrored with probability 1/2, with `crop` < 1
 * each one cropped (cropFrame; scale and place drawn per image), labels alike; with `mix` > 0 each one
 * blended with another image of the set (blendFrame; no labels). The draws come from the state's
 * generator, so a resumed run draws the same.
 */
export function sliceBatch(
  net: Network, frames: FrameSet, idx: number[], labels: LabelBox[][] | undefined, state: TrainState, flip: boolean, crop = 1, mix = 0,
): { batch: Batch; labels?: LabelBox[][]; mirrored: boolean[] } {
  if (mix > 0 && labels) throw new ZeroqError('retrain-config', 'blended frames (mix) have no labels to go with them');
  const { w, h } = net.input;
  const per = w * h * 3;
  const rgb = new Uint8Array(per * idx.length);
  const lb = labels ? idx.map((k) => labels[k]) : undefined;
  const mirrored = idx.map(() => false);
  const draw = (): number => {
    const [r, s] = nextRandom(state.rng);
    state.rng = s;
    return r;
  };
  idx.forEach((k, i) => {
    const img = rgb.subarray(i * per, (i + 1) * per);
    img.set(frames.rgb.subarray(k * per, (k + 1) * per));
    if (flip && draw() < 0.5) {
      mirrored[i] = true;
      mirrorFrame(img, w, h);
      if (lb) lb[i] = lb[i].map((b) => ({ ...b, cx: 1 - b.cx }));
    }
    if (crop < 1) {
      const cw = crop + (1 - crop) * draw();
      const ch = crop + (1 - crop) * draw();
      const win = { x: (1 - cw) * draw(), y: (1 - ch) * draw(), w: cw, h: ch };
      cropFrame(img.slice(), w, h, win, img);
      if (lb) lb[i] = cropLabels(lb[i], win);
    }
    if (mix > 0) {
      const other = Math.min(frames.paths.length - 1, Math.floor(draw() * frames.paths.length));
      blendFrame(img, frames.rgb.subarray(other * per, (other + 1) * per), mix * draw());
    }
  });
  return { batch: { n: idx.length, rgb }, ...(lb ? { labels: lb } : {}), mirrored };
}

/**
 * Starts an iteration: the quantizer's formats for the current shadow weights (equalized and aligned
 * before the first iteration when asked), checked to give back exactly the quantizer's integers.
 *
 * Rounding for the output error applies to the first iteration only, where the weights are the float
 * model's. Later the shadow weights are what training made of rounding to the nearest point (the
 * trainer's own rounding), so they are rounded that way: rounded for the output error again, each
 * weight's error was pushed onto the others and the network the last iteration trained was lost
 * (Yolo-Fastest-1.1 at W4: the loss went from 29 at the end of iteration 1 to 320 at the start of
 * iteration 2, and validation AP50 from 13.5 to 3.3).
 */
export async function startIteration(net: Network, state: TrainState, calib: Frame[], quant0: QuantConfig, threads: number): Promise<{ formats: Formats; qnet: QNet; float: ParamSet }> {
  const quant: QuantConfig = state.iteration === 0 ? quant0 : { ...quant0, rounding: 'nearest' };
  const it = await quantizerFormats(net, state.params, calib, quant, {
    equalize: quant.equalize && state.iteration === 0, align: (quant.alignWeights ?? false) && state.iteration === 0, threads,
  });
  const ours = toQNet(net, it.formats, intNet(net, it.params, it.formats, quant.wbits), quant);
  const diff = qnetDifferences(ours, it.qnet);
  if (diff.length > 0) {
    throw new ZeroqError('retrain-formats', `the quantizer's integers are not reproduced: ${diff.slice(0, 5).join('; ')}`, net.name);
  }
  state.params = it.params;
  return { formats: it.formats, qnet: it.qnet, float: it.float };
}

/** Per parameter array (flatParams order), per output channel: its quantization step in the formats. */
export function stepScales(net: Network, formats: Formats): Float64Array[] {
  const out: Float64Array[] = [];
  for (const l of net.layers) {
    if (l.kind !== 'conv') continue;
    const wf = formats.weights[l.index]!;
    out.push(Float64Array.from(wf.fw, (f) => 2 ** -f), new Float64Array(l.filters).fill(2 ** -formats.tensors[l.index].frac));
  }
  return out;
}

function newGrads(net: Network, params: ParamSet): Grads {
  return {
    weight: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(params[l.index]!.weight.length) : undefined)),
    bias: net.layers.map((l) => (l.kind === 'conv' ? new Float32Array(params[l.index]!.bias.length) : undefined)),
  };
}

/** One optimisation step on a batch; returns the loss before the update. */
export function trainStep(
  net: Network, teacher: ParamSet, state: TrainState, formats: Formats, batch: Batch, labels: LabelBox[][] | undefined,
  cfg: Pick<TrainConfig, 'threads' | 'labelWeight' | 'distill' | 'featureWeight' | 'freezeOscillations' | 'headTeacher'>, wbits: number, lr: number, lrScale?: Float64Array[],
  /** Called after each part of the step with its name (scripts/bench-retrain.ts profile times them). */
  lap: (part: string) => void = () => {},
  /** The teacher's head outputs kept from earlier steps (frames neither cropped nor blended; train() decides). */
  cached?: TeacherHeads,
): number {
  const q = intNet(net, state.params, formats, wbits);
  if (cfg.freezeOscillations !== undefined) {
    state.oscillation ??= startOscillations(net, q);
    observeOscillations(net, state.oscillation, q, { threshold: cfg.freezeOscillations, momentum: OSCILLATION_MOMENTUM });
  }
  const tape = quantForward(net, q, batch, cfg.threads);
  const student = headValues(net, q, tape);
  lap('integer forward');
  const fw = cfg.featureWeight ?? 0;
  // The own float model's outputs: for the feature loss, and for the heads unless another teacher has them.
  const ht = cfg.headTeacher;
  const tOuts = fw > 0 ? floatForward(net, teacher, batch, cfg.threads) : undefined;
  const headsOf = (b: Batch): Float32Array[] => {
    const [n, outs] = ht ? [ht.net, floatForward(ht.net, ht.params, b, cfg.threads)] : [net, b === batch && tOuts ? tOuts : floatForward(net, teacher, b, cfg.threads)];
    return floatHeadValues(n, outs);
  };
  let tHeads: Float32Array[];
  if (cached) {
    const missing = cached.missing();
    if (missing.length > 0) cached.fill(missing, headsOf(missing.length === batch.n ? batch : framesOf(net, batch, missing)));
    tHeads = cached.get();
  } else tHeads = headsOf(batch);
  lap('float teacher forward');
  const d = distillationLoss(net, student, tHeads, batch.n, cfg.distill);
  let loss = d.loss;
  if (labels && cfg.labelWeight > 0) {
    const l = labelLoss(net, student, labels, batch.n);
    loss += cfg.labelWeight * l.loss;
    d.grads.forEach((g, k) => {
      const lg = l.grads[k];
      for (let i = 0; i < g.length; i++) g[i] += cfg.labelWeight * lg[i];
    });
  }
  let inner: (Float32Array | undefined)[] | undefined;
  if (fw > 0 && tOuts) {
    lap('loss');
    const f = featureLoss(innerConvLayers(net), tape.outs, q.frac, tOuts, fw, net.layers.length);
    loss += f.loss;
    inner = f.grads;
    lap('feature loss (--feature-weight)');
  } else lap('loss');
  const grads = newGrads(net, state.params);
  backward(net, q, tape, d.grads, grads, cfg.threads, inner);
  lap(inner ? 'backward with feature gradients' : 'backward');
  // The integer layer reading the frame applies w*256/255: chain rule back to the shadow weight.
  for (const l of net.layers) {
    if (l.kind !== 'conv') continue;
    const s = inputScale(l);
    if (s !== 1) for (const g of [grads.weight[l.index]!]) for (let i = 0; i < g.length; i++) g[i] *= s;
  }
  const flat: Float32Array[] = [];
  for (const l of net.layers) if (l.kind === 'conv') flat.push(grads.weight[l.index]!, grads.bias[l.index]!);
  adamStep(state.params, flat, state.adam, lr, lrScale);
  if (state.oscillation) pinFrozen(net, state.oscillation, state.params, formats);
  lap('optimiser step');
  return loss;
}

/**
 * Runs (or continues) the iterations. `teacher` is the float model; `state` the shadow weights and
 * optimiser (from initialState or a checkpoint), where (iteration, epoch, step) is the next step to
 * take. Returns the final integer network.
 */
export async function train(net: Network, teacher: ParamSet, state: TrainState, data: TrainData, cfg: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const { frames, labels } = data;
  if (flatParams(state.params).length !== flatParams(teacher).length) {
    throw new ZeroqError('retrain-state', 'the checkpoint does not belong to this network');
  }
  const N = frames.paths.length;
  const fullSteps = Math.floor(N / cfg.batch);
  if (fullSteps < 1) throw new ZeroqError('retrain-data', `${N} training images are fewer than one batch of ${cfg.batch}`);
  const stepsPerEpoch = cfg.maxStepsPerEpoch > 0 ? Math.min(cfg.maxStepsPerEpoch, fullSteps) : fullSteps;
  const started = Date.now() - state.elapsedMs;
  const elapsed = () => Date.now() - started;
  const every = hooks.checkpointEvery ?? 0;
  let stopped = false;
  let last: { formats: Formats; wbits: number } | undefined;
  const decay = cfg.averageDecay ?? 0;
  if (!(decay >= 0 && decay < 1)) throw new ZeroqError('retrain-config', `the average's decay must be in [0, 1), not ${decay}`);
  // Mirrored frames are cached under their own key; crops and blends make every frame new.
  const augmented = (cfg.crop !== undefined && cfg.crop < 1) || (cfg.mix ?? 0) > 0;
  const teacherCache =
    cfg.teacherCache !== false && !augmented && (!((cfg.featureWeight ?? 0) > 0) || cfg.headTeacher !== undefined)
      ? new TeacherCache(net.heads.map((h) => { const o = net.layers[net.layers[h].inputs[0]].out; return o.c * o.h * o.w; }))
      : undefined;

  while (state.iteration < cfg.iterations && !stopped) {
    const wbits = wbitsOf(cfg, state.iteration);
    const quant: QuantConfig = { ...cfg.quant, wbits };
    // Formats come from the shadow weights at the start of the iteration; the state keeps them so
    // that a resumed run continues with the same ones.
    if (!state.formats) {
      const start = await startIteration(net, state, data.calib, quant, cfg.threads);
      state.formats = start.formats;
      if ((cfg.featureWeight ?? 0) > 0 && state.iteration === 0 && !state.teacher) state.teacher = cloneParams(start.float);
      await hooks.onQuantized?.(state.iteration, start.qnet);
      if (state.iteration === 0 && hooks.validate && !state.quantized) state.quantized = await hooks.validate(start.qnet);
      await hooks.onCheckpoint?.(state);
    }
    const formats = state.formats;
    last = { formats, wbits };
    const lr = cfg.lr * (cfg.lrDecay ?? 0.5) ** state.iteration;
    const lrScale = cfg.lrUnit === 'step' ? stepScales(net, formats) : undefined;
    hooks.onIterationStart?.(state.iteration, wbits, stepsPerEpoch);
    while (state.epoch < cfg.epochs) {
      if (state.step === 0) state.order = shuffled(N, state);
      while (state.step < stepsPerEpoch) {
        if (cfg.budgetMs > 0 && elapsed() >= cfg.budgetMs) {
          stopped = true;
          break;
        }
        const idx = state.order.slice(state.step * cfg.batch, (state.step + 1) * cfg.batch);
        const b = sliceBatch(net, frames, idx, labels, state, cfg.flip ?? false, cfg.crop ?? 1, cfg.mix ?? 0);
        // The average starts from the weights before the iteration's first step.
        const before = decay > 0 && !state.average ? cloneParams(state.params) : undefined;
        const loss = trainStep(net, state.teacher ?? teacher, state, formats, b.batch, b.labels, cfg, wbits, lr, lrScale, undefined, teacherCache?.batch(idx.map((k, i) => 2 * k + (b.mirrored[i] ? 1 : 0))));
        if (!Number.isFinite(loss)) throw new ZeroqError('retrain-diverged', `loss became ${loss} at iteration ${state.iteration}, step ${state.step}`);
        if (decay > 0) averageInto(state.average ??= cloneParams(before!), state.params, decay);
        state.lossSum += loss;
        state.lossCount++;
        state.step++;
        state.elapsedMs = elapsed();
        hooks.onProgress?.({ iteration: state.iteration, wbits, epoch: state.epoch, step: state.step, stepsPerEpoch, loss, elapsedMs: state.elapsedMs });
        if (every > 0 && state.step % every === 0 && state.step < stepsPerEpoch) await hooks.onCheckpoint?.(state);
      }
      if (stopped) break;
      state.epoch++;
      state.step = 0;
      if (state.epoch < cfg.epochs) await hooks.onCheckpoint?.(state);
    }
    if (stopped) break;
    if (state.average) {
      state.params = state.average;
      state.average = undefined;
    }
    const record: IterationRecord = {
      iteration: state.iteration, wbits, meanLoss: state.lossCount ? state.lossSum / state.lossCount : NaN, steps: state.lossCount, elapsedMs: elapsed(),
    };
    const osc = state.oscillation;
    if (osc) record.oscillation = { changes: osc.changes, oscillations: osc.oscillations, frozen: osc.frozenCount };
    state.oscillation = undefined;
    const qnet = toQNet(net, formats, intNet(net, state.params, formats, wbits), quant);
    if (hooks.validate) {
      const v = await hooks.validate(qnet);
      record.ap = v.ap;
      record.ap50 = v.ap50;
    }
    state.history.push(record);
    await hooks.onIterationEnd?.(record, qnet);
    if (!(cfg.keepFormats && wbitsOf(cfg, state.iteration + 1) === wbits)) state.formats = undefined;
    state.lossSum = 0;
    state.lossCount = 0;
    state.iteration++;
    state.epoch = 0;
    state.elapsedMs = elapsed();
    if (state.iteration < cfg.iterations) await hooks.onCheckpoint?.(state);
  }
  // The integer network of the last formats used (a budget stop keeps the iteration's formats).
  const it = Math.min(state.iteration, cfg.iterations - 1);
  const wbits = last?.wbits ?? wbitsOf(cfg, it);
  const quant: QuantConfig = { ...cfg.quant, wbits };
  const f = last?.formats ?? (await startIteration(net, state, data.calib, quant, cfg.threads)).formats;
  const qnet = toQNet(net, f, intNet(net, state.params, f, wbits), quant);
  state.elapsedMs = elapsed();
  await hooks.onCheckpoint?.(state);
  return { state, qnet, stoppedByBudget: stopped };
}
