// Every decoder under a few hundred damaged inputs (fast-check; `npm run fuzz` runs hundreds of
// thousands): each input is accepted with what the engines rely on holding, or refused with a
// one-line ZeroqError — never another exception. Each run must see both outcomes, or it tests nothing.
import t from 'tap';
import { DECODERS, fuzzDecoder } from './fuzz/run.js';

const RUNS: Record<(typeof DECODERS)[number], number> = { cfg: 400, weights: 400, zqw: 300, config: 300, image: 200 };

for (const d of DECODERS) {
  t.test(`${d}: damaged inputs are accepted or refused with a coded error`, async (t) => {
    const tally = await fuzzDecoder(d, RUNS[d], 20240601);
    t.equal(tally.inputs, RUNS[d]);
    const refused = Object.values(tally.refused).reduce((a, b) => a + b, 0);
    t.ok(tally.accepted > 0 && refused > 0, `${tally.accepted} accepted, refused: ${JSON.stringify(tally.refused)}`);
  });
}
