/**
 * Feature distillation: the student's inner activations pulled towards the float teacher's, so that
 * every layer gets a direct signal and not only what reaches it back from the heads.
 *
 * For each chosen layer j: the squared difference between the student's output (the integer run,
 * in real units) and the teacher's, summed over the batch and divided by the teacher's sum of
 * squares, i.e. a relative mean squared error (scale-free, so that early wide activations and late
 * narrow ones count alike); the loss is the sum over the layers.
 */
import type { Network } from '../model/ir.js';

/** Conv layers whose output no yolo layer reads (the heads have their own distillation). */
export function innerConvLayers(net: Network): number[] {
  const headInputs = new Set(net.heads.map((h) => net.layers[h].inputs[0]));
  return net.layers.filter((l) => l.kind === 'conv' && !headInputs.has(l.index)).map((l) => l.index);
}

export interface FeatureLossResult {
  loss: number;
  /** dLoss/d(student output), indexed like net.layers (undefined where no term). */
  grads: (Float32Array | undefined)[];
}

/**
 * student[j] × 2^-frac[j] (the integer run's output in real units) against teacher[j], layer j's
 * output for the whole batch in the same layout; loss and gradients scaled by `weight`.
 */
export function featureLoss(
  layers: readonly number[], student: readonly ArrayLike<number>[], frac: ArrayLike<number>, teacher: readonly Float32Array[], weight: number, count: number,
): FeatureLossResult {
  const grads: (Float32Array | undefined)[] = new Array(count);
  let loss = 0;
  for (const j of layers) {
    const s = student[j];
    const t = teacher[j];
    if (!s || s.length !== t.length) throw new Error(`layer ${j}: student and teacher outputs differ in size`);
    const scale = 2 ** -frac[j];
    let tt = 0;
    for (let i = 0; i < t.length; i++) tt += t[i] * t[i];
    // A layer that is all zeros for this batch: measured against its element count instead.
    const norm = tt > 0 ? tt : t.length;
    const k = (2 * weight) / norm;
    let sq = 0;
    const g = new Float32Array(t.length);
    for (let i = 0; i < t.length; i++) {
      const d = s[i] * scale - t[i];
      sq += d * d;
      g[i] = k * d;
    }
    loss += (weight * sq) / norm;
    grads[j] = g;
  }
  return { loss, grads };
}
