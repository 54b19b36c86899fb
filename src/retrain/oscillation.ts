/**
 * Oscillating integer weights, and freezing them (Nagel et al., "Overcoming Oscillations in
 * Quantization-Aware Training", ICML 2022). With straight-through gradients a shadow weight near the
 * boundary between two grid points is pushed back across it by the gradient of whichever side it is
 * on, so its integer flips to and fro from step to step, and which side it ends an iteration on is
 * chance. Depthwise layers (9 weights per channel, most of Yolo-Fastest's layers) are where the paper
 * found it costs most.
 *
 * Per weight: an oscillation is an integer change whose direction is opposite to the weight's previous
 * change; its frequency is an exponential average over steps (momentum m), as is the integer itself.
 * A weight whose frequency passes the threshold is frozen for the rest of the iteration: its shadow
 * value is set on the grid point of its averaged integer and kept there (the optimiser's updates of
 * it are undone). The next iteration derives new formats, so the tracking starts again.
 */
import type { Network } from '../model/ir.js';
import { inputScale, type Formats } from './formats.js';
import type { IntNet, ParamSet } from './sim.js';

/** The tracked state of one iteration (checkpointed with the training state). */
export interface OscillationState {
  /** Per conv layer (network order), per weight: the integer at the previous step. */
  last: Int32Array[];
  /** Direction of the weight's previous change (−1, 0 none yet, +1). */
  dir: Int32Array[];
  /** Exponential average of oscillation events. */
  freq: Float32Array[];
  /** Exponential average of the integer. */
  avg: Float32Array[];
  /** The frozen integer + 128, or 0 when the weight is free. */
  frozen: Int32Array[];
  /** Integer changes and oscillations seen in this iteration, and weights frozen so far. */
  changes: number;
  oscillations: number;
  frozenCount: number;
}

export interface OscillationConfig {
  /** Frequency above which a weight is frozen (1, which an average of 0s and 1s never passes: observe only). */
  threshold: number;
  /** Momentum of the averages. */
  momentum: number;
}

export const OSCILLATION_MOMENTUM = 0.05;

const FROZEN_BIAS = 128;

function convs(net: Network) {
  return net.layers.filter((l) => l.kind === 'conv');
}

/** A fresh state for an iteration, from its first integers. */
export function startOscillations(net: Network, q: IntNet): OscillationState {
  const qs = convs(net).map((l) => q.convs[l.index]!.q);
  return {
    last: qs.map((a) => Int32Array.from(a)),
    dir: qs.map((a) => new Int32Array(a.length)),
    freq: qs.map((a) => new Float32Array(a.length)),
    avg: qs.map((a) => Float32Array.from(a)),
    frozen: qs.map((a) => new Int32Array(a.length)),
    changes: 0, oscillations: 0, frozenCount: 0,
  };
}

/**
 * Takes in the integers of one step (computed from the shadow weights before the step's update) and
 * freezes the weights whose oscillation frequency passed the threshold.
 */
export function observeOscillations(net: Network, st: OscillationState, q: IntNet, cfg: OscillationConfig): void {
  const m = cfg.momentum;
  convs(net).forEach((l, k) => {
    const cur = q.convs[l.index]!.q;
    const last = st.last[k], dir = st.dir[k], freq = st.freq[k], avg = st.avg[k], frozen = st.frozen[k];
    for (let i = 0; i < cur.length; i++) {
      if (frozen[i] !== 0) continue;
      const d = cur[i] - last[i];
      let o = 0;
      if (d !== 0) {
        st.changes++;
        const s = d > 0 ? 1 : -1;
        if (dir[i] !== 0 && s !== dir[i]) {
          o = 1;
          st.oscillations++;
        }
        dir[i] = s;
        last[i] = cur[i];
      }
      freq[i] = m * o + (1 - m) * freq[i];
      avg[i] = m * cur[i] + (1 - m) * avg[i];
      if (freq[i] > cfg.threshold) {
        frozen[i] = Math.round(avg[i]) + FROZEN_BIAS;
        st.frozenCount++;
      }
    }
  });
}

/** Puts every frozen weight's shadow value on the grid point of its frozen integer (after each update). */
export function pinFrozen(net: Network, st: OscillationState, params: ParamSet, formats: Formats): void {
  if (st.frozenCount === 0) return;
  convs(net).forEach((l, k) => {
    const frozen = st.frozen[k];
    const w = params[l.index]!.weight;
    const wf = formats.weights[l.index]!;
    const per = w.length / l.filters;
    const scale = inputScale(l);
    for (let i = 0; i < w.length; i++) {
      if (frozen[i] === 0) continue;
      const o = Math.floor(i / per);
      // quantizeConv rounds (w·scale − mu)·2^fw: the grid point itself rounds to the integer.
      w[i] = ((frozen[i] - FROZEN_BIAS) * 2 ** -wf.fw[o] + wf.mu[o]) / scale;
    }
  });
}
