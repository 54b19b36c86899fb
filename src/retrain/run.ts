/**
 * `zeroq retrain` end to end: options → model, frames, labels, ground truth → iterations with
 * progress, checkpoints and validation → the integer network written as a weight set.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { loadDarknet } from '../model/darknet.js';
import { validateQNet } from '../engine/int/validate.js';
import type { QNet } from '../quant/qnet.js';
import { writeZqw, type ZqwMeta } from '../quant/zqw.js';
import { ZeroqError } from '../util/errors.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { loadFrames, readGroundTruth, readImageList, readLabels } from './data.js';
import { checkSupported } from './sim.js';
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
  train: TrainConfig;
  /** Network input size override (tests). */
  size?: { width: number; height: number };
  log?(msg: string): void;
  onProgress?(e: ProgressEvent): void;
  onIterationStart?(iteration: number, wbits: number, stepsPerEpoch: number): void;
}

export interface RetrainReport {
  out: string;
  history: IterationRecord[];
  stoppedByBudget: boolean;
  elapsedMs: number;
}

/** Writes the weight set atomically (temporary file, then rename). */
async function writeWeightSet(qnet: QNet, out: string, meta: ZqwMeta): Promise<string> {
  const tmp = `${out}.tmp-${process.pid}`;
  await writeFile(tmp, writeZqw(qnet, meta));
  await rename(tmp, out);
  return out;
}

export async function runRetrain(a: RetrainArgs): Promise<RetrainReport> {
  const log = a.log ?? (() => {});
  const model = await loadDarknet(a.cfg, a.weights, a.size ?? {});
  const net = model.net;
  checkSupported(net);
  const trainPaths = await readImageList(a.data);
  const valPaths = a.val ? await readImageList(a.val) : undefined;
  if (valPaths) {
    const trainSet = new Set(trainPaths.map((p) => path.resolve(p)));
    const both = valPaths.filter((p) => trainSet.has(path.resolve(p)));
    if (both.length > 0) {
      throw new ZeroqError('retrain-val', `${both.length} validation images are also training images (e.g. ${both[0]}); use a disjoint list`, a.val);
    }
  }
  log(`loading ${trainPaths.length} training images`);
  const frames = await loadFrames(net, trainPaths);
  const labels = a.train.labelWeight > 0 ? await Promise.all(trainPaths.map(readLabels)) : undefined;
  let validate: ((q: QNet) => Promise<{ ap: number; ap50: number }>) | undefined;
  if (valPaths) {
    const gtFile = a.gt ?? path.join(path.dirname(a.val!), 'instances.json');
    const gt = await readGroundTruth(gtFile);
    log(`loading ${valPaths.length} validation images`);
    const valFrames = await loadFrames(net, valPaths);
    validate = (q) => Promise.resolve(validationAp(q, valFrames, gt, a.train.threads));
  }
  const ckpt = a.checkpoint ?? `${a.out}.ckpt.json`;
  const settings: Record<string, unknown> = {
    net: net.name, input: net.input, data: path.resolve(a.data), schedule: a.train.schedule, quant: a.train.quant,
    batch: a.train.batch, seed: a.train.seed, lr: a.train.lr, labelWeight: a.train.labelWeight, epochs: a.train.epochs,
  };
  let state = initialState(model.params, a.train.seed);
  if (a.resume) {
    if (!existsSync(ckpt)) throw new ZeroqError('retrain-checkpoint', 'no checkpoint to resume from', ckpt);
    state = await loadCheckpoint(ckpt, settings);
    log(`resuming at iteration ${state.iteration + 1}, epoch ${state.epoch + 1}, step ${state.step}`);
  }
  const result = await train(net, model.params, state, frames, labels, a.train, {
    onProgress: a.onProgress,
    onIterationStart: a.onIterationStart,
    checkpointEvery: 50,
    onCheckpoint: (s) => saveCheckpoint(ckpt, settings, s),
    validate,
    onIterationEnd: (r) =>
      log(`iteration ${r.iteration + 1}: W${r.wbits}, mean loss ${r.meanLoss.toFixed(3)}` +
        (r.ap50 !== undefined ? `, validation AP ${r.ap!.toFixed(4)} AP50 ${r.ap50.toFixed(4)}` : '')),
  });
  validateQNet(result.qnet);
  const last = result.state.history[result.state.history.length - 1];
  const meta: ZqwMeta = {
    source: { model: net.name, cfg: path.resolve(a.cfg), ...(a.weights ? { weights: path.resolve(a.weights) } : {}) },
    quantization: {
      method: 'iterative retraining', schedule: a.train.schedule, ...a.train.quant, iterations: result.state.history.length,
      epochs: a.train.epochs, seed: a.train.seed, ...(last?.ap50 !== undefined ? { validationAP: last.ap, validationAP50: last.ap50 } : {}),
    },
  };
  const written = await writeWeightSet(result.qnet, a.out, meta);
  return {
    out: written, history: result.state.history,
    stoppedByBudget: result.stoppedByBudget, elapsedMs: result.state.elapsedMs,
  };
}
