/** Adam over the conv weights and biases of a ParamSet (state kept for checkpoints). */
import type { ParamSet } from './sim.js';

export interface AdamState {
  t: number;
  m: Float32Array[];
  v: Float32Array[];
}

/** The parameter arrays in a fixed order: weight then bias of each conv layer. */
export function flatParams(params: ParamSet): Float32Array[] {
  const out: Float32Array[] = [];
  for (const p of params) if (p) out.push(p.weight, p.bias);
  return out;
}

export function newAdam(params: ParamSet): AdamState {
  const flat = flatParams(params);
  return { t: 0, m: flat.map((a) => new Float32Array(a.length)), v: flat.map((a) => new Float32Array(a.length)) };
}

/**
 * One Adam update. `channelScale` (optional, one array per parameter array, one factor per output
 * channel) multiplies the learning rate of every element of that channel.
 */
export function adamStep(
  params: ParamSet, grads: Float32Array[], state: AdamState, lr: number, channelScale?: Float64Array[], beta1 = 0.9, beta2 = 0.999, eps = 1e-8,
): void {
  const flat = flatParams(params);
  state.t++;
  const c1 = 1 - beta1 ** state.t;
  const c2 = 1 - beta2 ** state.t;
  flat.forEach((p, k) => {
    const g = grads[k];
    const m = state.m[k];
    const v = state.v[k];
    const scale = channelScale?.[k];
    const per = scale ? p.length / scale.length : p.length;
    for (let i = 0; i < p.length; i++) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const rate = scale ? lr * scale[Math.floor(i / per)] : lr;
      p[i] -= (rate * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
    }
  });
}
