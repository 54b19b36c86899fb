/**
 * The settings `zeroq retrain` uses at each weight width when the command line does not give them:
 * the ones that measured best for that width on the validation split (calib.txt images 559–758,
 * trained on the other 559; the later choices at 6, 5 and 4 bits on the mean of that and a second fold, images 359–558;
 * docs/decisions/retrain-recipe.md). A flag given on the command line always wins.
 *
 * At 4 bits retraining rounds to the nearest grid point, as the measured runs did. Rounding for the
 * output error (the quantizer's default) gives a better first network but does not survive
 * re-quantization: at W4 the loss went from 35 at the end of iteration 1 to 150 at the start of
 * iteration 2 (to nearest: 59 -> 53), so the iterations undo instead of build on each other; with its
 * formats kept (keepFormats) it levelled with the nearest-rounded recipe at W4. At 5 bits and wider it
 * is the start.
 *
 * Centers: retraining at 6 bits and narrower centers every channel where the finest grid fits ('fit'; at
 * 5 bits and narrower that is also the quantizer's rule, so W5 and W4 start from `zeroq quantize`'s own
 * sets). On the two validation folds it was ahead of the mean at W6 (two-fold means of the outputs: 1.1
 * 19.55 against 18.99, xl 27.11 against 26.99), at W5 (1.1 17.74 against 17.61, xl fold A 24.35 against
 * 22.32) and at W4 (1.1 15.03 against 14.35). 7 and 8 bits keep the quantizer's rule (the mean there): not
 * measured. The W4 recipe stops after 9 iterations, where the two-fold mean of the fitted runs peaked
 * (16.37; 15.03 after 12) (docs/benchmarks/retrain.md).
 */

import type { CenterRule } from '../quant/weights.js';

export interface Recipe {
  iterations: number;
  epochs: number;
  lr: number;
  lrDecay: number;
  flip: boolean;
  /** Random crops down to this fraction of width and height (1: none). */
  crop: number;
  /** Blends with another training image, up to this weight (0: none; trainer.ts mix). */
  mix: number;
  alignWeights: boolean;
  featureWeight: number;
  weightClip: 'minmax' | 'mse';
  /** Where each channel's integers are centered (weights.ts CenterRule). */
  center: CenterRule;
  rounding: 'nearest' | 'output';
  /** Formats from the quantizer at the first iteration only (trainer.ts keepFormats). */
  keepFormats: boolean;
  /** Where the recipe was measured. */
  measured: string;
}

/**
 * 5 bits and wider: the quantizer's own set (rounded for the output error) is kept as the start and its
 * formats are kept; a small step refines it. On two validation folds this was the only retraining that
 * did not lose to the quantizer's set; the earlier W6 recipe (nearest rounding, Adam 1e-4) lost to it on both
 * networks (docs/benchmarks/retrain.md). At 5 bits it replaced that same earlier recipe: 1.1 two-fold mean
 * 17.61 against 17.20, xl (fold A) 22.32 against 22.12 (the quantizer's set alone: 17.56, 22.24). 7 and 8
 * bits take it too, not measured there.
 */
const WIDE: Recipe = {
  iterations: 3, epochs: 1, lr: 2e-5, lrDecay: 0.5, flip: false, crop: 1, mix: 0, alignWeights: false, featureWeight: 0, weightClip: 'minmax', center: 'auto', rounding: 'output', keepFormats: true,
  measured: 'docs/decisions/retrain-recipe.md (W6 and W5: the quantizer\'s output-rounded set and formats kept, 3 iterations, Adam 2e-5 halved per iteration, centered by fit)',
};

const NARROW: Recipe = {
  iterations: 9, epochs: 1, lr: 1e-4, lrDecay: 0.7, flip: true, crop: 1, mix: 0, alignWeights: true, featureWeight: 0.5, weightClip: 'minmax', center: 'auto', rounding: 'nearest', keepFormats: false,
  measured: 'docs/decisions/retrain-recipe.md (W4: 9 iterations, x0.7 per iteration, mirrored frames, grid alignment, inner layers x0.5, centered by fit)',
};

/** The recipe of a weight width (of the narrowest width of a schedule; of the floor of an average). */
export function recipeFor(wbits: number): Recipe {
  if (wbits <= 4) return { ...NARROW };
  // 'auto' is fit at 5 bits (recorded as before, so W5 checkpoints resume) and the mean at 7–8.
  return { ...WIDE, center: wbits === 6 ? 'fit' : 'auto' };
}
