/**
 * The decoders under fuzzing, each wrapped as a check: the input is either accepted, with what the
 * rest of the system relies on holding, or refused with a ZeroqError. Anything else — another
 * exception, an error message over several lines, an accepted weight set the native planner
 * refuses or computes differently from the reference — throws a FuzzViolation.
 */
import { parseCfg } from '../../src/model/darknet-cfg.js';
import { foldBatchNorm, readDarknetWeights } from '../../src/model/darknet-weights.js';
import type { Network } from '../../src/model/ir.js';
import { parseZqw } from '../../src/qnet/zqw.js';
import { validateQNet } from '../../src/qnet/validate.js';
import type { QNet } from '../../src/qnet/types.js';
import { loadConfig } from '../../src/daemon/config-load.js';
import { decodeImage, resizeForNet } from '../../src/detect/preprocess.js';
import { runReference } from '../../src/engine/int-reference.js';
import { IntEngine } from '../../src/engine/int.js';
import { loadNativeKernels } from '../../src/engine/int/native.js';
import { isZeroqError } from '../../src/util/errors.js';
import { randomFrame, randomQNet, rng } from '../helpers/random-qnet.js';

export class FuzzViolation extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuzzViolation';
  }
}

/** 'ok' when accepted, else the refusal's code; a refusal that is not a one-line ZeroqError is a violation. */
export type Outcome = 'ok' | string;

function refused(e: unknown, what: string): string {
  if (e instanceof FuzzViolation) throw e;
  if (!isZeroqError(e)) {
    throw new FuzzViolation(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`, { cause: e });
  }
  if (/[\r\n]/.test(e.message)) throw new FuzzViolation(`${what}: a message over several lines [${e.code}]: ${JSON.stringify(e.message)}`);
  return e.code;
}

/** Networks small enough to run per input (values over all layer outputs). */
const smallEnough = (net: Network, limit = 100_000): boolean => net.layers.reduce((s, l) => s + l.out.c * l.out.h * l.out.w, 0) <= limit;

const native = loadNativeKernels().kernels;

/**
 * The native planner must accept a QNet validation accepted, and (when small) compute what the
 * reference computes, bit for bit, on a random frame.
 */
export function checkPlanner(qnet: QNet, what: string, compare = true): void {
  if (!native) return;
  let engine: IntEngine;
  try {
    engine = new IntEngine(qnet, native, { threads: 1 });
  } catch (e) {
    throw new FuzzViolation(`${what}: validation accepted a QNet the native planner refuses: ${(e as Error).message}`, { cause: e });
  }
  try {
    if (!compare || !smallEnough(qnet.net)) return;
    const frame = randomFrame(qnet.net, rng(11));
    const heads = engine.inferSync(frame);
    const ref = runReference(qnet, frame, true);
    heads.forEach((h, k) => {
      const r = ref.heads[k].raw!;
      for (let i = 0; i < r.length; i++) {
        if (h.raw![i] !== r[i]) throw new FuzzViolation(`${what}: head ${k} value ${i}: native ${h.raw![i]}, reference ${r[i]}`);
      }
    });
  } finally {
    void engine.close();
  }
}

/** .zqw bytes: refused, or a QNet both integer implementations run identically. */
export function zqwTarget(bytes: Uint8Array): Outcome {
  let qnet: QNet;
  try {
    qnet = parseZqw(bytes, { name: 'fuzz.zqw' }).qnet;
  } catch (e) {
    return refused(e, 'zqw reader');
  }
  checkPlanner(qnet, 'zqw reader');
  return 'ok';
}

/** cfg text: refused, or a network whose random QNet, when valid, the native planner accepts. */
export function cfgTarget(text: string): Outcome {
  let net: Network;
  try {
    net = parseCfg(text, 'fuzz.cfg');
  } catch (e) {
    return refused(e, 'cfg parser');
  }
  if (net.input.c === 3 && smallEnough(net, 400_000)) {
    let qnet: QNet | undefined;
    try {
      qnet = randomQNet(net, rng(1));
      validateQNet(qnet);
    } catch (e) {
      refused(e, 'QNet validation of a parsed cfg');
      qnet = undefined;
    }
    if (qnet) checkPlanner(qnet, 'cfg parser', false);
  }
  return 'ok';
}

/** .weights bytes for `net`: refused, or every folded number finite. */
export function weightsTarget(net: Network, bytes: Uint8Array): Outcome {
  try {
    const raw = readDarknetWeights(net, bytes, 'fuzz.weights');
    for (const l of raw.layers) {
      if (!l) continue;
      const p = foldBatchNorm(l, 'fuzz.weights');
      if (p.weight.some((v) => !Number.isFinite(v)) || p.bias.some((v) => !Number.isFinite(v))) {
        throw new FuzzViolation('weights reader: accepted numbers that fold to infinity or NaN');
      }
    }
  } catch (e) {
    return refused(e, 'weights reader');
  }
  return 'ok';
}

/** Config text: refused, or a configuration. */
export function configTarget(text: string): Outcome {
  try {
    loadConfig({ text, file: 'fuzz.yaml', env: {} });
  } catch (e) {
    return refused(e, 'config loader');
  }
  return 'ok';
}

const imageNet = (letterbox: boolean): Network => ({
  name: 'img',
  input: { c: 3, h: 12, w: 16 },
  letterbox,
  layers: [],
  heads: [],
});

/** Image bytes: refused, or decoded and resized to a network input (plain and letterboxed). */
export async function imageTarget(bytes: Uint8Array): Promise<Outcome> {
  try {
    const img = await decodeImage(bytes, 'fuzz.img');
    resizeForNet(img, imageNet(false));
    resizeForNet(img, imageNet(true), { keepFloat: false });
  } catch (e) {
    return refused(e, 'image loader');
  }
  return 'ok';
}
