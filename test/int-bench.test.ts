// zeroq bench on the data folder's yolo-fastest-1.1: the harness measures what it says (a few
// frames only: speed itself is measured by the bench, never asserted by a test).
import t from 'tap';
import { existsSync } from 'node:fs';
import { runBench, formatBench } from '../src/eval/bench.js';
import { dataPath } from '../src/util/paths.js';

const cfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');

t.test('bench --compare runs float and int alternately and reports the ratio', { skip: !existsSync(cfg) && 'no cfg' }, async (t) => {
  const r = await runBench({ model: cfg, engine: 'int', compare: true, frames: 4, warmup: 1, profile: true });
  t.same(r.engines.map((e) => e.engine), ['float', 'int']);
  t.equal(r.network, 'yolo-fastest-1.1');
  t.same(r.input, { width: 320, height: 320 });
  for (const e of r.engines) {
    t.ok(e.networkMs.median > 0 && e.endToEndMs.median >= e.networkMs.min, `${e.engine}: network and end-to-end times`);
    t.ok(e.preMs.median > 0, `${e.engine}: pre-processing of the real image timed`);
    t.equal(e.fps.network, 1000 / e.networkMs.median);
  }
  const int = r.engines[1];
  t.equal(int.randomWeights, true, 'a cfg gives the int engine random weights of its shapes');
  t.ok(int.layerKinds && int.layerKinds['conv 1x1'] > 0 && int.layerKinds['conv depthwise'] > 0, 'per-layer-kind profile');
  // The per-layer profile: every layer, its work, and rates that follow from them.
  const layers = int.layers!;
  t.equal(layers.length, 131, 'one entry per layer');
  const macs = layers.reduce((a, l) => a + l.macs, 0);
  t.equal(macs, 125437600, 'multiply-adds of the whole network');
  const dw = layers[2];
  t.same([dw.kind, dw.out, dw.macs], ['conv dw 3x3', '8x160x160', 160 * 160 * 8 * 9], 'a depthwise layer');
  t.ok(dw.kernel.length > 0 && dw.bytes >= 2 * 160 * 160 * 8, `its code path (${dw.kernel}) and bytes (input and output at least)`);
  for (const l of layers.filter((x) => x.ms > 0 && x.macs > 0)) {
    if (Math.abs(l.gmacPerS - l.macs / l.ms / 1e6) > 1e-9 || Math.abs(l.gbPerS - l.bytes / l.ms / 1e6) > 1e-9) t.fail(`layer ${l.index}: rates`);
  }
  t.ok(layers.some((l) => l.kind === 'maxpool 9' && l.bytes > 0 && l.macs === 0), 'a maxpool: bytes, no multiply-adds');
  t.match(formatBench(r), /GMAC\/s/, 'the table in the report');
  t.ok(r.ratio && Math.abs(r.ratio.network - int.networkMs.median / r.engines[0].networkMs.median) < 1e-12, 'ratio int/float');
  t.ok(r.peakRssMb > 10, 'peak RSS');
  t.match(formatBench(r), /int\/float: network/);
});

t.test('bench --compare in blocks: every requested frame measured once per engine; --no-spin reaches the float engine', { skip: !existsSync(cfg) && 'no cfg' }, async (t) => {
  const seen: number[] = [];
  const r = await runBench({ model: cfg, engine: 'int', compare: true, spin: false, frames: 13, warmup: 0 }, (done, total) => {
    t.equal(total, 13);
    seen.push(done);
  });
  t.same(seen, [10, 13], 'a block of 10, then the remaining 3');
  t.equal(r.engines[0].spin, false, 'the float engine ran without spinning workers');
  t.equal(r.engines[1].spin, undefined, 'spinning is a float-engine setting');
});

t.test('bench on a .zqw: int runs its weights; --compare without the float cfg is refused clearly', { skip: !existsSync(cfg) && 'no cfg' }, async (t) => {
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { parseCfgFile } = await import('../src/model/darknet.js');
  const { writeZqw } = await import('../src/qnet/zqw.js');
  const { randomQNet, rng } = await import('./helpers/random-qnet.js');
  const dir = mkdtempSync(path.join(tmpdir(), 'zeroq-bench-'));
  t.teardown(async () => (await import('node:fs')).rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'set.zqw');
  const qnet = randomQNet(parseCfgFile(cfg), rng(9), { wbits: [8, 8] });
  writeFileSync(file, writeZqw(qnet, { id: 'bench-test', source: { model: 'no-such-model', cfg: 'no-such-model.cfg' } }));
  const r = await runBench({ model: file, engine: 'int', frames: 2, warmup: 0 });
  t.equal(r.engines[0].modelId, 'bench-test', 'the weight set id');
  t.notOk(r.engines[0].randomWeights);
  await t.rejects(runBench({ model: file, engine: 'int', compare: true, frames: 1 }), { code: 'bench-float-model' });
});

t.test('bench --against-threads: the same engine at two thread counts, alternating, and their ratio', { skip: !existsSync(cfg) && 'no cfg' }, async (t) => {
  const seen: number[] = [];
  const r = await runBench({ model: cfg, engine: 'int', threads: 2, againstThreads: 1, frames: 12, warmup: 1 }, (done) => seen.push(done));
  t.same(seen, [10, 12], 'blocks of 10 frames, as --compare');
  t.same(r.engines.map((e) => [e.engine, e.threads]), [['int', 1], ['int', 2]], 'the reference thread count first, as the engines report running them');
  t.ok(r.threadRatio, 'a thread ratio');
  t.equal(r.threadRatio!.network, r.engines[1].networkMs.median / r.engines[0].networkMs.median, 'network time at 2 threads over 1');
  t.same([r.threadRatio!.threads, r.threadRatio!.againstThreads], [2, 1]);
  t.notOk(r.ratio, 'no int/float ratio without float');
  t.match(formatBench(r), /2 threads \/ 1: network \d+\.\d{3}/);
  await t.rejects(runBench({ model: cfg, engine: 'int', threads: 2, againstThreads: 2, frames: 1 }), { code: 'bench-options' }, 'the same thread count twice');
  await t.rejects(runBench({ model: cfg, engine: 'int', threads: 2, againstThreads: 1, compare: true, frames: 1 }), { code: 'bench-options' }, 'not with --compare');
});
