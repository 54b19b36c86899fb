/**
 * The decoders' properties as fast-check properties over damaged inputs: shared by the tests (a few
 * hundred inputs each) and `npm run fuzz` (hundreds of thousands).
 */
import fc from 'fast-check';
import { cfgSeeds, configSeeds, imageSeeds, smallCfgNet, weightsSeeds, zqwSeeds } from './corpus.js';
import { mutatedBytes, mutatedText, mutatedZqw } from './mutate.js';
import { cfgTarget, configTarget, imageTarget, weightsTarget, zqwTarget, type Outcome } from './targets.js';

export const DECODERS = ['cfg', 'weights', 'zqw', 'config', 'image'] as const;
export type Decoder = (typeof DECODERS)[number];

/** Accepted and refused inputs (by refusal code) of one run. */
export interface Tally {
  inputs: number;
  accepted: number;
  refused: Record<string, number>;
}

export interface PropertyOf {
  property: fc.IAsyncPropertyWithHooks<[unknown]> | fc.IPropertyWithHooks<[unknown]>;
  tally: Tally;
}

function counted<T>(tally: Tally, check: (x: T) => Outcome): (x: T) => void {
  return (x) => {
    const o = check(x);
    tally.inputs++;
    if (o === 'ok') tally.accepted++;
    else tally.refused[o] = (tally.refused[o] ?? 0) + 1;
  };
}

/** The property of one decoder, counting outcomes into its tally. */
export async function decoderProperty(d: Decoder): Promise<PropertyOf> {
  const tally: Tally = { inputs: 0, accepted: 0, refused: {} };
  switch (d) {
    case 'cfg':
      return { tally, property: fc.property(mutatedText(cfgSeeds(), 'cfg'), counted(tally, cfgTarget)) as fc.IPropertyWithHooks<[unknown]> };
    case 'weights': {
      const net = smallCfgNet();
      return { tally, property: fc.property(mutatedBytes(weightsSeeds()), counted(tally, (b: Buffer) => weightsTarget(net, b))) as fc.IPropertyWithHooks<[unknown]> };
    }
    case 'zqw':
      return { tally, property: fc.property(mutatedZqw(zqwSeeds()), counted(tally, zqwTarget)) as fc.IPropertyWithHooks<[unknown]> };
    case 'config':
      return { tally, property: fc.property(mutatedText(configSeeds(), 'yaml'), counted(tally, configTarget)) as fc.IPropertyWithHooks<[unknown]> };
    case 'image': {
      const seeds = await imageSeeds();
      const property = fc.asyncProperty(mutatedBytes(seeds), async (b: Buffer) => {
        const o = await imageTarget(b);
        tally.inputs++;
        if (o === 'ok') tally.accepted++;
        else tally.refused[o] = (tally.refused[o] ?? 0) + 1;
      });
      return { tally, property: property as fc.IAsyncPropertyWithHooks<[unknown]> };
    }
  }
}

/** Runs a decoder's property for `numRuns` inputs from `seed`; throws (with fast-check's report) on a violation. */
export async function fuzzDecoder(d: Decoder, numRuns: number, seed: number): Promise<Tally> {
  const { property, tally } = await decoderProperty(d);
  await fc.assert(property as fc.IAsyncProperty<[unknown]>, { numRuns, seed, endOnFailure: false });
  return tally;
}
