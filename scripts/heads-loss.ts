// The distillation loss of weight sets' heads against their float model (src/retrain/loss.ts, the
// training's head term with objectness weighting) on the images of a list: a paired, continuous measure
// of how far a set's outputs are from float, much less noisy than AP50 on a few hundred images.
//   npx tsx scripts/heads-loss.ts <model.cfg> <list.txt> <set.zqw>... [--images N]
// Prints one line per set: the mean loss per image (0 when a set's heads equal the float model's).
import { loadDarknet } from '../src/model/darknet.js';
import { readZqw } from '../src/qnet/zqw.js';
import { fromQNet } from '../src/retrain/formats.js';
import { floatForward, floatHeadValues, headValues, quantForward, type Batch } from '../src/retrain/sim.js';
import { distillationLoss } from '../src/retrain/loss.js';
import { frameBatch, loadFrames, readImageList } from '../src/retrain/data.js';

const args = process.argv.slice(2);
const at = args.indexOf('--images');
const limit = at >= 0 ? Number(args.splice(at, 2)[1]) : Infinity;
const [cfg, list, ...sets] = args;
if (!cfg || !list || sets.length === 0 || !(limit > 0)) {
  console.error('usage: npx tsx scripts/heads-loss.ts <model.cfg> <list.txt> <set.zqw>... [--images N]');
  process.exit(2);
}
const model = await loadDarknet(cfg);
const { net } = model;
const paths = (await readImageList(list)).slice(0, limit);
const frames = await loadFrames(net, paths, (k) => process.stderr.write(`\rloading images ${k}/${paths.length}`));
process.stderr.write('\n');
const B = 8;
const batches: Batch[] = [];
for (let b0 = 0; b0 < paths.length; b0 += B) batches.push(frameBatch(frames, b0, Math.min(B, paths.length - b0)));
const teacher = batches.map((b) => floatHeadValues(net, floatForward(net, model.params, b)));
for (const file of sets) {
  const { qnet } = await readZqw(file);
  if (qnet.net.name !== net.name) throw new Error(`${file}: a set of ${qnet.net.name}, not of ${net.name}`);
  const q = fromQNet(qnet);
  let sum = 0;
  batches.forEach((b, k) => {
    sum += distillationLoss(net, headValues(qnet.net, q, quantForward(qnet.net, q, b)), teacher[k], b.n).loss * b.n;
  });
  console.log(`${file}\t${(sum / paths.length).toFixed(3)}`);
}
