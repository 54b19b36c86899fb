import type { Network } from '../model/ir.js';

/**
 * A quantized network: the network IR plus, per layer, the fixed-point format of its output
 * tensor and, per conv layer, its integer parameters. This is what the .zqw file carries and what
 * every integer implementation (reference, fast kernels, FPGA model) executes. The arithmetic is
 * specified in docs/formats/fixed-point.md (after ../shared/DESIGN.md "The fixed-point arithmetic").
 *
 * An integer T with f fraction bits stands for T * 2^-f.
 */

/** Format of one activation tensor. */
export interface TensorFormat {
  /** Signed word width of the stored values: 8 or 16. The network input is unsigned 8-bit. */
  bits: 8 | 16;
  /** Fraction bits (may be negative or exceed the width). */
  frac: number;
}

/** Integer parameters of one conv layer (per-layer formats are per-channel arrays of equal values). */
export interface QConv {
  /** Weight width Nw (2..8). */
  wbits: number;
  perChannel: boolean;
  zeroCentered: boolean;
  /** Q = round((w - mu) * 2^fw): OIHW [filters][inC/groups][size][size], each in Nw-bit range. */
  q: Int8Array;
  /** Weight fraction bits, one per output channel. */
  fw: Int32Array;
  /** M = round(mu * 2^fm), one per output channel (0 without zero-centering); fits 16 bits. */
  m: Int32Array;
  /** Fraction bits of M, one per output channel. */
  fm: Int32Array;
  /** B = round(bias * 2^(fw + faIn)), one per output channel. */
  bias: Int32Array;
  /**
   * Non-linear activations (mish, swish, logistic): table mapping the pre-activation to the output
   * format; see docs/formats/fixed-point.md. Absent for linear, leaky and relu.
   */
  lut?: Int32Array;
  lutShift?: number;
  lutOffset?: number;
}

export interface QNet {
  net: Network;
  /** Output format of every layer, indexed like net.layers. */
  formats: TensorFormat[];
  /** Integer parameters of every conv layer (undefined elsewhere). */
  convs: (QConv | undefined)[];
}

/** The network input: uint8 pixel P read as P/256 (the 256/255 factor is folded into layer 0). */
export const INPUT_FRAC = 8;
