/**
 * The settings `zeroq retrain` uses at each weight width when the command line does not give them:
 * the ones that measured best for that width on the validation split (calib.txt images 559–758,
 * trained on the other 559; docs/decisions/retrain-recipe.md). A flag given on the command line always wins.
 *
 * Retraining rounds to the nearest grid point, as the measured runs did. Rounding for the output error
 * (the quantizer's default) gives a better first network but does not survive re-quantization: at W4
 * the loss went from 35 at the end of iteration 1 to 150 at the start of iteration 2 (to nearest:
 * 59 -> 53), so the iterations undo instead of build on each other.
 */

export interface Recipe {
  iterations: number;
  epochs: number;
  lr: number;
  lrDecay: number;
  flip: boolean;
  /** Random crops down to this fraction of width and height (1: none). */
  crop: number;
  alignWeights: boolean;
  featureWeight: number;
  weightClip: 'minmax' | 'mse';
  rounding: 'nearest' | 'output';
  /** Where the recipe was measured. */
  measured: string;
}

const WIDE: Recipe = {
  iterations: 3, epochs: 1, lr: 1e-4, lrDecay: 0.5, flip: false, crop: 1, alignWeights: false, featureWeight: 0, weightClip: 'minmax', rounding: 'nearest',
  measured: 'docs/decisions/retrain-recipe.md (W6, W5: the quantizer defaults, 3 iterations, Adam 1e-4 halved per iteration)',
};

const NARROW: Recipe = {
  iterations: 12, epochs: 1, lr: 1e-4, lrDecay: 0.7, flip: true, crop: 1, alignWeights: true, featureWeight: 0.5, weightClip: 'minmax', rounding: 'nearest',
  measured: 'docs/decisions/retrain-recipe.md (W4: 12 iterations, x0.7 per iteration, mirrored frames, grid alignment, inner layers x0.5)',
};

/** The recipe of a weight width (of the narrowest width of a schedule; of the floor of an average). */
export function recipeFor(wbits: number): Recipe {
  return wbits <= 4 ? { ...NARROW } : { ...WIDE };
}
