/**
 * `zeroq retrain` end to end: options → model, frames, labels, ground truth → iterations with
 * progress, checkpoints and validation → the integer network written as a weight set.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { Frame } from '../engine/engine.js';
import { prepareFrame } from '../detect/preprocess.js';
import { loadDarknet } from '../model/darknet.js';
import { validateQNet } from '../qnet/validate.js';
import type { QNet } from '../qnet/types.js';
import { writeZqw, type ZqwMeta } from '../qnet/zqw.js';
import { ZeroqError } from '../util/errors.js';
import { loadCheckpoint, readCheckpointSettings, saveCheckpoint } from './checkpoint.js';
import { imageIdOf, loadFrames, readGroundTruth, readImageList, readLabels, type FrameSet } from './data.js';
import { chooseLayerWidths } from './bit-widths.js';
import { quantizeOptionsOf } from './formats.js';
import { checkSupported } from './sim.js';
import { checkHeadTeacher } from './head-teacher.js';
import { initialState, train, type IterationRecord, type ProgressEvent, type TrainConfig } from './trainer.js';
import { validationAp } from './validate.js';

export interface RetrainArgs {
  cfg: string;
  weights?: string;
  data: string;
  val?: string;
  gt?: string;
  out: string;
  checkpoint?: string;
  resume: boolean;
  /** The first n training images calibrate the quantizer at every iteration. */
  calibImages: number;
  /** Also write every iteration's weight set (<out>.it<k>.zqw). */
  keepIterations?: boolean;
  /**
   * With a validation list: the output is the weight set of the iteration with the best validation
   * AP50 (written when it is validated), not the last one.
   */
  keepBest?: boolean;
  /**
   * A width per conv layer at this average (bit-widths.ts), chosen before the first iteration on the
   * first `sensitivityImages` of the validation list (else of the training list); a resumed run takes
   * the widths from its checkpoint.
   */
  avgBits?: number;
  sensitivityImages?: number;
  train: TrainConfig;
  /** A larger float network the heads are distilled towards (head-teacher.ts): its cfg and weights. */
  teacher?: { cfg: string; weights?: string };
  /** Network input size override (tests). */
  size?: { width: number; height: number };
  log?(msg: string): void;
  onProgress?(e: ProgressEvent): void;
  onIterationStart?(iteration: number, wbits: number, stepsPerEpoch: number): void;
}

export interface RetrainReport {
  out: string;
  /** Validation AP of the quantizer's output before retraining (with --val). */
  quantized?: { ap: number; ap50: number };
  history: IterationRecord[];
  /** With keepBest: the iteration (0-based, as in history) whose weight set is the output. */
  bestIteration?: number;
  /** With keepIterations: the weight set of every iteration ([0]: the quantizer's, before retraining). */
  iterations?: string[];
  stoppedByBudget: boolean;
  /** Training time (quantizer and validation included), summed over resumed runs. */
  elapsedMs: number;
  /** Wall time of this invocation, image loading and writing included. */
  wallMs: number;
}

/** Writes the weight set atomically (temporary file, then rename). */
async function writeWeightSet(qnet: QNet, out: string, meta: ZqwMeta): Promise<string> {
  const tmp = `${out}.tmp-${process.pid}`;
  await writeFile(tmp, writeZqw(qnet, meta));
  await rename(tmp, out);
  return out;
}

async function sha256Of(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

function imageIdOrName(p: string): number | string {
  try {
    return imageIdOf(p);
  } catch {
    return path.basename(p);
  }
}

/** The validated iteration with the highest AP50 (the first of equals); ap50 -Infinity when none. */
function bestOf(history: IterationRecord[]): { iteration?: number; ap50: number } {
  let best: { iteration?: number; ap50: number } = { ap50: -Infinity };
  for (const h of history) if (h.ap50 !== undefined && h.ap50 > best.ap50) best = { iteration: h.iteration, ap50: h.ap50 };
  return best;
}

export async function runRetrain(a: RetrainArgs): Promise<RetrainReport> {
  const t0 = Date.now();
  const log = a.log ?? (() => {});
  const model = await loadDarknet(a.cfg, a.weights, a.size ?? {});
  const net = model.net;
  checkSupported(net);
  let teacherSetting: Record<string, unknown> = {};
  if (a.teacher) {
    const t = await loadDarknet(a.teacher.cfg, a.teacher.weights, a.size ?? {});
    checkHeadTeacher(net, t.net, a.teacher.cfg);
    checkSupported(t.net);
    a.train.headTeacher = { net: t.net, params: t.params };
    teacherSetting = { teacher: { model: t.net.name, weightsSha256: await sha256Of(t.weightsPath) } };
  }
  const trainPaths = await readImageList(a.data);
  const valPaths = a.val ? await readImageList(a.val) : undefined;
  if (valPaths) {
    const trainSet = new Set(trainPaths.map((p) => path.resolve(p)));
    const both = valPaths.filter((p) => trainSet.has(path.resolve(p)));
    if (both.length > 0) {
      throw new ZeroqError('retrain-val', `${both.length} validation images are also training images (e.g. ${both[0]}); use a disjoint list`, a.val);
    }
  }
  // The ground truth is read before any image, so a wrong --gt fails at once, not after the loading.
  const gt = valPaths ? await readGroundTruth(a.gt ?? path.join(path.dirname(a.val!), 'instances.json')) : undefined;
  log(`loading ${trainPaths.length} training images`);
  const frames = await loadFrames(net, trainPaths);
  const labels = a.train.labelWeight > 0 ? await Promise.all(trainPaths.map(readLabels)) : undefined;
  // The calibration frames as `zeroq quantize` reads them (float planes included).
  const calib: Frame[] = [];
  for (const p of trainPaths.slice(0, a.calibImages)) calib.push((await prepareFrame(p, net)).frame);
  let validate: ((q: QNet) => Promise<{ ap: number; ap50: number }>) | undefined;
  let valFrames: FrameSet | undefined;
  if (valPaths && gt) {
    log(`loading ${valPaths.length} validation images`);
    const frames = await loadFrames(net, valPaths);
    valFrames = frames;
    validate = (q) => {
      const v = validationAp(q, frames, gt, a.train.threads);
      log(`validation AP ${v.ap.toFixed(4)} AP50 ${v.ap50.toFixed(4)}`);
      return Promise.resolve(v);
    };
  }
  const ckpt = a.checkpoint ?? `${a.out}.ckpt.json`;
  let widths: Record<string, unknown> | undefined;
  if (a.avgBits !== undefined) {
    if (a.resume && existsSync(ckpt)) {
      const saved = (await readCheckpointSettings(ckpt)).quant as { layerBits?: number[] } | undefined;
      if (!saved?.layerBits) throw new ZeroqError('retrain-checkpoint', 'the checkpoint was not made with --avg-bits', ckpt);
      a.train.quant.layerBits = saved.layerBits;
      widths = { method: 'layer sensitivity', avgBitsTarget: a.avgBits, resumed: true };
    } else {
      const sensPaths = (valPaths ?? trainPaths).slice(0, a.sensitivityImages ?? 32);
      log(`choosing widths per layer at ${a.avgBits} bits per weight`);
      const ch = await chooseLayerWidths(model, calib, {
        quant: quantizeOptionsOf({ ...a.train.quant, wbits: 8 }, a.train.quant.equalize, a.train.threads),
        avgBits: a.avgBits, sensitivity: await loadFrames(net, sensPaths),
        ...(valFrames && gt ? { val: { frames: valFrames, gt } } : {}), threads: a.train.threads, log,
      });
      a.train.quant.layerBits = ch.chosen.layerBits;
      widths = {
        method: 'layer sensitivity', errorModel: ch.errorModel, avgBitsTarget: a.avgBits, minBits: ch.chosen.minBits, sensitivityImages: ch.sensitivityImages,
        candidates: ch.candidates.map((c) => ({ minBits: c.minBits, avgBits: c.avgBits, error: c.error, ...(c.ap50 !== undefined ? { validationAP: c.ap, validationAP50: c.ap50 } : {}) })),
      };
    }
    a.train.schedule = [Math.max(...a.train.quant.layerBits)];
  }
  const featureSetting = a.train.featureWeight ? { featureWeight: a.train.featureWeight } : {};
  const cropSetting = a.train.crop !== undefined && a.train.crop < 1 ? { crop: a.train.crop } : {};
  const mixSetting = a.train.mix ? { mix: a.train.mix } : {};
  const keepSetting = a.train.keepFormats ? { keepFormats: true } : {};
  const averageSetting = a.train.averageDecay ? { averageDecay: a.train.averageDecay } : {};
  const freezeSetting = a.train.freezeOscillations !== undefined ? { freezeOscillations: a.train.freezeOscillations } : {};
  const settings: Record<string, unknown> = {
    net: net.name, input: net.input, data: path.resolve(a.data), schedule: a.train.schedule, quant: a.train.quant,
    batch: a.train.batch, seed: a.train.seed, lr: a.train.lr, lrUnit: a.train.lrUnit ?? 'absolute', lrDecay: a.train.lrDecay ?? 0.5, flip: a.train.flip ?? false,
    distill: a.train.distill ?? 'objectness', labelWeight: a.train.labelWeight, epochs: a.train.epochs,
    calibImages: a.calibImages,
    // Only when used, so that checkpoints made before the option existed still resume.
    ...featureSetting,
    ...cropSetting,
    ...mixSetting,
    ...keepSetting,
    ...averageSetting,
    ...freezeSetting,
    ...teacherSetting,
  };
  let state = initialState(model.params, a.train.seed);
  if (a.resume) {
    if (!existsSync(ckpt)) throw new ZeroqError('retrain-checkpoint', 'no checkpoint to resume from', ckpt);
    state = await loadCheckpoint(ckpt, settings);
    log(`resuming at iteration ${state.iteration + 1}, epoch ${state.epoch + 1}, step ${state.step}`);
  }
  const source = {
    model: net.name, cfg: path.resolve(a.cfg), weights: model.weightsPath,
    weightsSha256: await sha256Of(model.weightsPath),
  };
  const quantization = (iterations: number, v?: { ap?: number; ap50?: number }) => ({
    method: 'iterative retraining', schedule: a.train.schedule, ...a.train.quant, wbits: a.train.schedule[Math.min(iterations, a.train.schedule.length) - 1],
    iterations, epochs: a.train.epochs, batch: a.train.batch, lr: a.train.lr, lrUnit: a.train.lrUnit ?? 'absolute', lrDecay: a.train.lrDecay ?? 0.5, flip: a.train.flip ?? false, ...cropSetting, ...mixSetting, distill: a.train.distill ?? 'objectness', ...featureSetting, ...keepSetting, ...averageSetting, ...freezeSetting, ...teacherSetting, seed: a.train.seed,
    ...(widths ? { widths } : {}),
    ...(v?.ap50 !== undefined ? { validationAP: v.ap, validationAP50: v.ap50 } : {}),
  });
  const calibration = { method: a.train.quant.actCalib, images: calib.length, list: path.basename(a.data), imageIds: trainPaths.slice(0, calib.length).map(imageIdOrName) };
  const iterationFiles: string[] = [];
  const iterationFile = (k: number) => a.out.replace(/(\.zqw)?$/, `.it${k}.zqw`);
  const result = await train(net, model.params, state, { frames, labels, calib }, a.train, {
    onProgress: a.onProgress,
    onQuantized: async (k, qnet) => {
      log(`iteration ${k + 1}: formats from the quantizer`);
      // The quantizer's output for the float model: what retraining starts from.
      if (k === 0 && a.keepIterations) {
        iterationFiles[0] = await writeWeightSet(qnet, iterationFile(0), { source, quantization: { ...quantization(1), method: 'quantizer', iterations: 0 }, calibration });
      }
    },
    onIterationStart: a.onIterationStart,
    checkpointEvery: 50,
    onCheckpoint: (s) => saveCheckpoint(ckpt, settings, s),
    validate,
    onIterationEnd: async (r, qnet) => {
      log(`iteration ${r.iteration + 1}: W${r.wbits}, mean loss ${r.meanLoss.toFixed(3)}, ${(r.elapsedMs / 60000).toFixed(1)} min` +
        (r.ap50 !== undefined ? `, validation AP ${r.ap!.toFixed(4)} AP50 ${r.ap50.toFixed(4)}` : '') +
        (r.oscillation ? `, integer changes ${r.oscillation.changes}, oscillations ${r.oscillation.oscillations}, frozen ${r.oscillation.frozen}` : ''));
      if (a.keepIterations) {
        iterationFiles[r.iteration + 1] = await writeWeightSet(qnet, iterationFile(r.iteration + 1), { source, quantization: quantization(r.iteration + 1, r), calibration });
      }
      // The history already holds r; earlier bests (also of a resumed run's first part) are in it.
      if (a.keepBest && r.ap50 !== undefined && bestOf(state.history.slice(0, -1)).ap50 < r.ap50) {
        validateQNet(qnet);
        await writeWeightSet(qnet, a.out, { source, quantization: quantization(r.iteration + 1, r), calibration });
        log(`iteration ${r.iteration + 1}: best validation AP50 so far, written to ${a.out}`);
      }
    },
  });
  validateQNet(result.qnet);
  const last = result.state.history[result.state.history.length - 1];
  const best = a.keepBest ? bestOf(result.state.history) : undefined;
  let written = a.out;
  if (best?.iteration === undefined || !existsSync(a.out)) {
    const meta: ZqwMeta = { source, quantization: quantization(Math.max(1, result.state.history.length), last), calibration };
    written = await writeWeightSet(result.qnet, a.out, meta);
  }
  return {
    out: written,
    ...(result.state.quantized ? { quantized: result.state.quantized } : {}),
    history: result.state.history,
    ...(best?.iteration !== undefined && existsSync(a.out) ? { bestIteration: best.iteration } : {}),
    // A resumed run's earlier iterations were written by the earlier process: list them too.
    ...(a.keepIterations ? { iterations: Array.from({ length: result.state.history.length + 1 }, (_, k) => iterationFiles[k] ?? (existsSync(iterationFile(k)) ? iterationFile(k) : '')) } : {}),
    stoppedByBudget: result.stoppedByBudget, elapsedMs: result.state.elapsedMs, wallMs: Date.now() - t0,
  };
}
