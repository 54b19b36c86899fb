// Inputs that once got past a decoder (or crashed it), each refused now with a coded error — in
// the decoder, and through the CLI as exit 2 with one line.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCfg } from '../src/model/darknet-cfg.js';
import { readDarknetWeights } from '../src/model/darknet-weights.js';
import { LIMITS } from '../src/model/network-check.js';
import type { Network } from '../src/model/ir.js';
import { parseZqw, writeZqw } from '../src/qnet/zqw.js';
import { validateQNet } from '../src/qnet/validate.js';
import { loadConfig } from '../src/daemon/config-load.js';
import { IntEngine } from '../src/engine/int.js';
import { runReference } from '../src/engine/int-reference.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import { isZeroqError } from '../src/util/errors.js';
import { dataPath } from '../src/util/paths.js';
import { parseCfgFile } from '../src/model/darknet-cfg.js';
import { NetBuilder, randomFrame, randomQNet, rng } from './helpers/random-qnet.js';
import { SMALL_CFG, smallCfgNet, weightsSeeds, zqwSeeds } from './fuzz/corpus.js';
import { joinZqw, splitZqw } from './fuzz/mutate.js';
import { checkPlanner } from './fuzz/targets.js';
import { refusalProblem, zeroq } from './helpers/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-findings-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, data: string | Uint8Array): string => {
  const p = path.join(dir, name);
  writeFileSync(p, data);
  return p;
};
const IMAGE = dataPath('reference', 'samples', 'dog.jpg');

function code(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    return isZeroqError(e) ? e.code : `not a ZeroqError: ${String(e)}`;
  }
}

type Manifest = { network: Network; layers: { conv?: Record<string, unknown>; format: { frac: number } }[] } & Record<string, unknown>;

/** The small seed weight set with its manifest edited, architecture hash and digest recomputed. */
function edited(edit: (m: Manifest) => void, opts: { payload?: (p: Buffer) => Buffer } = {}): Buffer {
  const parts = splitZqw(zqwSeeds()[0]);
  const manifest = structuredClone(parts.manifest) as Manifest;
  edit(manifest);
  return joinZqw({ ...parts, manifest, payload: opts.payload ? opts.payload(Buffer.from(parts.payload)) : parts.payload }, { fixArch: true });
}
const yoloOf = (m: Manifest) => m.network.layers.find((l) => l.kind === 'yolo') as Extract<Network['layers'][number], { kind: 'yolo' }>;
const convEntry = (m: Manifest) => m.layers.find((l) => l.conv)!.conv as { fw: number[]; m: number[]; fm: number[]; bias: { offset: number; bytes: number }; weights: { offset: number; bytes: number } };

t.test('a re-digested .zqw with a yolo mask index of 99 or no anchors is refused like the cfg', async (t) => {
  t.equal(code(() => parseZqw(zqwSeeds()[0])), 'accepted', 'the seed reads');
  t.equal(code(() => parseZqw(edited((m) => (yoloOf(m).mask[0] = 99)))), 'zqw-network', 'mask index 99');
  t.equal(code(() => parseZqw(edited((m) => (yoloOf(m).anchors = [])))), 'zqw-network', 'anchors: []');
  t.equal(code(() => parseZqw(edited((m) => (yoloOf(m).classes = 7)))), 'zqw-network', 'classes that do not match the channels');
  t.equal(code(() => parseZqw(edited((m) => (yoloOf(m).anchors[0] = 1e300)))), 'zqw-network', 'an absurd anchor');
  // The same rules in the cfg parser (one implementation, network-check.ts).
  t.equal(code(() => parseCfg(SMALL_CFG.replace('mask=0,1', 'mask=0,99'), 'm.cfg')), 'cfg-bad-value');
  t.equal(code(() => parseCfg(SMALL_CFG.replace('anchors=10,14, 23,27, 37,58\nclasses=1\nnum=3\nscale', 'anchors=\nclasses=1\nnum=3\nscale'), 'a.cfg')), 'cfg-bad-value');
});

t.test('integer fields are range-checked before they become Int32Arrays; sections may not overlap', async (t) => {
  t.equal(code(() => parseZqw(edited((m) => (m.layers[0].format.frac = 2 ** 31 + 5)))), 'zqw-manifest', 'a frac past 2^31 (it used to wrap)');
  t.equal(code(() => parseZqw(edited((m) => (m.layers[0].format.frac = 65)))), 'zqw-manifest', 'a frac past the ±64 range');
  t.equal(code(() => parseZqw(edited((m) => (convEntry(m).fw[0] = 2 ** 32)))), 'zqw-manifest', 'fw of 2^32');
  t.equal(code(() => parseZqw(edited((m) => (convEntry(m).fm[0] = -(2 ** 31) - 1)))), 'zqw-manifest', 'fm below -2^31');
  t.equal(code(() => parseZqw(edited((m) => (convEntry(m).m[0] = 2 ** 15)))), 'zqw-manifest', 'M of 2^15');
  const overlap = edited((m) => {
    const convs = m.layers.filter((l) => l.conv).map((l) => l.conv as { bias: { offset: number; bytes: number } });
    convs[1].bias.offset = convs[0].bias.offset; // two layers share their biases
  });
  t.equal(code(() => parseZqw(overlap)), 'zqw-payload', 'overlapping sections');
  t.equal(code(() => parseZqw(edited((m) => ((m as unknown as { payloadBytes: number }).payloadBytes = 2 ** 31 - 1)))), 'zqw-payload', 'a payload larger than the layers need');
  // A manifest length near 2^31 in the header once made a negative offset (32-bit alignment arithmetic).
  const header = Buffer.alloc(100);
  header.set([0x89, 0x5a, 0x51, 0x57, 0x0d, 0x0a, 0x1a, 0x0a]);
  header.writeUInt16LE(1, 8);
  header.writeUInt32LE(2 ** 31 - 24, 12);
  t.equal(code(() => parseZqw(header)), 'zqw-truncated', 'a manifest length of 2^31 - 24');
});

t.test('the reader and the native planner agree on re-digested mutants of a Yolo-Fastest weight set', async (t) => {
  const native = loadNativeKernels().kernels;
  if (!native) {
    t.comment('native kernels not built: skipped');
    return;
  }
  const net = parseCfgFile(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));
  const seed = writeZqw(randomQNet(net, rng(4)), { source: { model: 'yf' }, created: '2024-01-01T00:00:00Z', deflate: false });
  const parts = splitZqw(seed);
  const r = rng(9);
  const edges = [0, -1, 1, 99, 255, 2 ** 15, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 65, -65, 64, 3, 1000];
  let accepted = 0;
  let refused = 0;
  for (let k = 0; k < 300; k++) {
    const m = structuredClone(parts.manifest) as Manifest;
    // One number anywhere in the network or the layer entries set to an edge value.
    const nums: [Record<string, unknown>, string][] = [];
    const walk = (o: unknown): void => {
      if (o && typeof o === 'object') {
        for (const [key, v] of Object.entries(o)) {
          if (typeof v === 'number') nums.push([o as Record<string, unknown>, key]);
          else walk(v);
        }
      }
    };
    walk(r() < 0.5 ? m.network : m.layers);
    const [obj, key] = nums[Math.floor(r() * nums.length)];
    obj[key] = edges[Math.floor(r() * edges.length)];
    let qnet;
    try {
      qnet = parseZqw(joinZqw({ ...parts, manifest: m }, { fixArch: true })).qnet;
    } catch (e) {
      if (!isZeroqError(e)) t.fail(`mutant ${k}: refused with ${String(e)}, not a ZeroqError`);
      refused++;
      continue;
    }
    accepted++;
    checkPlanner(qnet, `mutant ${k}`, false); // throws when the planner refuses what the reader accepted
  }
  t.ok(accepted > 0 && refused > 0, `${accepted} accepted (and planned), ${refused} refused`);
});

t.test('declared sizes past the documented limits are refused before anything is allocated', async (t) => {
  const big = new NetBuilder({ c: 3, h: 64000, w: 64000 });
  big.conv({ filters: 1, size: 1 });
  const zqw = edited((m) => (m.network = big.build()));
  t.equal(code(() => parseZqw(zqw)), 'zqw-limit', 'a 64000x64000 .zqw');
  const cfg64 = SMALL_CFG.replace('width=16\nheight=16', 'width=64000\nheight=64000');
  t.equal(code(() => parseCfg(cfg64, 'big.cfg')), 'cfg-limit', 'a 64000x64000 cfg');
  t.equal(code(() => parseCfg(SMALL_CFG, 's.cfg', { width: LIMITS.inputSide + 1, height: 16 })), 'cfg-limit', 'an input size override past the limit');
  const wide = SMALL_CFG.replace('width=16\nheight=16', 'width=4096\nheight=4096').replace('filters=8\nsize=3\nstride=2', 'filters=16\nsize=3\nstride=1');
  t.equal(code(() => parseCfg(wide, 'f.cfg')), 'cfg-limit', 'a tensor past the limit (16x4096x4096)');
  // Through the CLI: a 100000x100000 cfg with weights beside it, in the float engine.
  const cfg = file('huge.cfg', SMALL_CFG.replace('width=16\nheight=16', 'width=100000\nheight=100000'));
  file('huge.weights', weightsSeeds()[0]);
  const r = await zeroq(['detect', cfg, IMAGE]);
  t.notOk(refusalProblem(r), `detect on a 100000x100000 cfg: ${refusalProblem(r) ?? 'exit 2, one line'}: ${r.stderr}`);
  t.match(r.stderr, /cfg-limit/);
  const z = file('huge.zqw', zqw);
  const ri = await zeroq(['detect', z, IMAGE]);
  t.notOk(refusalProblem(ri), `detect on a 64000x64000 .zqw: ${refusalProblem(ri) ?? 'exit 2, one line'}: ${ri.stderr}`);
});

t.test('.weights with inf or NaN anywhere, or a version darknet does not write, are refused', async (t) => {
  const net = smallCfgNet();
  const good = weightsSeeds()[0];
  t.equal(code(() => readDarknetWeights(net, good, 'w')), 'accepted');
  const at = (offset: number, v: number): Buffer => {
    const b = Buffer.from(good);
    b.writeFloatLE(v, offset);
    return b;
  };
  // Layer 0 (batch norm): biases at 20, scales 52, means 84, variances 116, weights from 148.
  for (const [where, offset] of [['bias', 20], ['scale', 52], ['mean', 84], ['variance', 116], ['weight', 148], ['last weight', good.length - 4]] as const) {
    for (const v of [Infinity, -Infinity, NaN]) t.equal(code(() => readDarknetWeights(net, at(offset, v), 'w')), 'weights-bad-value', `${v} as a ${where}`);
  }
  for (const [major, minor] of [[1, 0], [1000, 2], [-1, 0], [0, 3], [0, 1001]]) {
    const b = Buffer.from(good);
    b.writeInt32LE(major, 0);
    b.writeInt32LE(minor, 4);
    t.equal(code(() => readDarknetWeights(net, b, 'w')), 'weights-version', `version ${major}.${minor}`);
  }
  // A huge scale over a tiny variance folds to infinity: refused when folded.
  const cfg = file('small.cfg', SMALL_CFG);
  const w = Buffer.from(good);
  w.writeFloatLE(3e38, 52);
  w.writeFloatLE(0, 116);
  file('small.weights', w);
  const r = await zeroq(['detect', cfg, IMAGE]);
  t.notOk(refusalProblem(r), `detect with weights that fold to infinity: ${refusalProblem(r) ?? 'refused'}: ${r.stderr}`);
  t.match(r.stderr, /weights-bad-value/);
  file('small.weights', at(148, NaN));
  const r2 = await zeroq(['inspect', cfg, '--weights', path.join(dir, 'small.weights')]);
  t.notOk(refusalProblem(r2), `inspect with a NaN weight: ${refusalProblem(r2) ?? 'refused'}: ${r2.stderr}`);
});

t.test('threads: one bound (64) everywhere, and a pool with more threads than cores does not hang', async (t) => {
  t.match(code(() => loadConfig({ env: { ZEROQ_THREADS: '256' } })), 'config');
  const native = loadNativeKernels().kernels;
  if (!native) return;
  const q = randomQNet(smallCfgNet(), rng(2));
  validateQNet(q);
  t.throws(() => new IntEngine(q, native, { threads: 65 }), /threads 65/, 'the planner refuses 65 threads');
  // 64 threads on this machine's few cores: every frame completes (workers yield instead of spinning).
  process.env.ZEROQ_INT_PARALLEL_MIN = '0';
  const engine = new IntEngine(q, native, { threads: 64 });
  const frame = randomFrame(q.net, rng(3));
  for (let i = 0; i < 20; i++) await engine.infer(frame);
  await engine.close();
  delete process.env.ZEROQ_INT_PARALLEL_MIN;
  t.pass('20 frames on 64 threads');
});

t.test('a YAML alias bomb, a dangling alias and deep nesting are config errors (exit 2 through the CLI)', async (t) => {
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefgh'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n');
  t.equal(code(() => loadConfig({ text: bomb, file: 'bomb.yaml', env: {} })), 'config', 'alias bomb');
  t.equal(code(() => loadConfig({ text: 'a: *zz\n', file: 'dangling.yaml', env: {} })), 'config', 'alias to no anchor');
  t.equal(code(() => loadConfig({ text: '['.repeat(100_000) + ']'.repeat(100_000), file: 'deep.yaml', env: {} })), 'config', 'deep nesting');
  const r = await zeroq(['run', '--config', file('bomb.yaml', bomb)]);
  t.notOk(refusalProblem(r), `zeroq run --config bomb.yaml: ${refusalProblem(r) ?? 'exit 2, one line'}: ${r.stderr}`);
  const r2 = await zeroq(['run', '--config', file('bad.yaml', 'source:\n  fps: -1\nhttp:\n  port: 70000\nbogus: 1\n')]);
  t.notOk(refusalProblem(r2), `three config problems on one line: ${refusalProblem(r2) ?? 'ok'}: ${r2.stderr}`);
});

t.test('the native planner uses the same limits as the TypeScript checks', async (t) => {
  const native = loadNativeKernels().kernels as unknown as { limits?: () => Record<string, number> } | undefined;
  if (!native?.limits) {
    t.comment('native kernels not built: skipped');
    return;
  }
  const l = native.limits();
  for (const [k, v] of Object.entries(LIMITS)) if (k in l) t.equal(l[k], v, `LIMITS.${k}`);
  t.equal(l.threads, 64);
});

t.test('an error message quoting damaged input stays on one line', async (t) => {
  const { ZeroqError } = await import('../src/util/errors.js');
  t.equal(new ZeroqError('zqw-manifest', 'manifest is not JSON: Unexpected token ]\n],"fm":[5', 'w.zqw').message, 'w.zqw: manifest is not JSON: Unexpected token ] ],"fm":[5');
});

t.test('leaky convs with an output shift past 16 bits compute what the reference computes', async (t) => {
  const native = loadNativeKernels().kernels;
  if (!native) {
    t.comment('native kernels not built: skipped');
    return;
  }
  // The fast leaky epilogue folded the output rounding 2^(rsh-1) into a 32-bit constant
  // (2^14 + 29491 * 2^(rsh-1)), which overflowed from rsh 18 on (signed overflow in the planner,
  // found by UBSan; negative values came out one step low). Layer 1 is a plain or depthwise leaky
  // conv with rsh = fw + faIn - faOut and biases that keep Y negative but within the 32-bit bound.
  for (const groups of [1, 8]) {
    for (const rsh of [16, 17, 18, 20, 24]) {
      const b = new NetBuilder({ c: 3, h: 8, w: 8 });
      b.conv({ filters: 8, size: 3, activation: 'linear' });
      b.conv({ filters: groups === 1 ? 16 : 8, size: 3, groups, activation: 'leaky' });
      b.conv({ filters: 18, size: 1, activation: 'linear' });
      b.yolo();
      const q = randomQNet(b.build(), rng(5));
      const c = q.convs[1]!;
      q.formats[1] = { bits: 8, frac: q.formats[0].frac + 10 - rsh };
      c.zeroCentered = false;
      for (let o = 0; o < c.fw.length; o++) {
        c.fw[o] = 10;
        c.m[o] = 0;
        c.fm[o] = 10;
        c.bias[o] = -500_000 + o * 40_000;
      }
      for (let j = 0; j < c.q.length; j++) c.q[j] = (j % 3) - 1;
      validateQNet(q);
      const engine = new IntEngine(q, native, { threads: 1 });
      const frame = randomFrame(q.net, rng(1));
      const heads = engine.inferSync(frame);
      const ref = runReference(q, frame, true);
      let differ = 0;
      heads.forEach((h, k) => ref.heads[k].raw!.forEach((v, i) => (differ += h.raw![i] !== v ? 1 : 0)));
      t.equal(differ, 0, `${groups === 1 ? 'conv' : 'depthwise'}, rsh ${rsh}: native head values equal to the reference`);
      await engine.close();
    }
  }
});
