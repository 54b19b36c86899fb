import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { readZqw } from '../src/qnet/zqw.js';
import { architectureHash } from '../src/qnet/arch.js';
import { parseCfgFile } from '../src/model/darknet.js';
import { equalizablePairs } from '../src/quant/equalize.js';
import { dataPath, repoRoot } from '../src/util/paths.js';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'zeroq-quantize-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const CALIB = dataPath('coco-val', 'calib.txt');

async function zeroq(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), 'quantize', ...args], {
      cwd: repoRoot,
      maxBuffer: 64 * 2 ** 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

t.test('quantize W6 per layer: a .zqw that reads back, the JSON report, pictures', async (t) => {
  const out = path.join(dir, 'w6.zqw');
  const report = path.join(dir, 'report');
  const r = await zeroq(CFG, '--wbits', '6', '--per-layer', '--calib', CALIB, '--calib-images', '2', '--act-calib', 'minmax', '-o', out, '--json', '--report-dir', report);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    id: string;
    totals: { avgBitsPerWeight: number; bytes: number; ratioToDarknet: number; weights: number };
    layers: { index: number; kind: string; conv?: { wbits: number; sqnrCentered: number; sqnrPlain: number } }[];
    report: string[];
  };
  t.equal(j.totals.avgBitsPerWeight, 6);
  t.equal(j.totals.bytes, readFileSync(out).length);
  t.ok(j.totals.ratioToDarknet < 0.22);
  t.equal(j.layers.filter((l) => l.conv).length, 84, 'every conv layer reported');
  t.ok(j.layers.every((l) => !l.conv || (l.conv.wbits === 6 && l.conv.sqnrCentered > 0 && l.conv.sqnrPlain > 0)));
  const zqw = await readZqw(out, { expectArch: architectureHash(parseCfgFile(CFG)) });
  t.equal(zqw.manifest.id, j.id);
  t.equal(zqw.manifest.quantization.perChannel, false);
  t.same((zqw.manifest.calibration as { imageIds: number[] }).imageIds.length, 2);
  t.ok(zqw.qnet.convs.every((c) => !c || (!c.perChannel && c.fw.every((f) => f === c.fw[0]))), 'per-layer formats');
  for (const f of j.report) {
    t.ok(existsSync(f), `${path.basename(f)} written`);
    if (f.endsWith('.svg')) t.match(readFileSync(f, 'utf8'), /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  }
  t.ok(j.report.some((f) => /weights-layer\d+\.svg$/.test(f)), 'the weight histogram');
});

t.test('--align-weights: the first conv of every pair uses the top of its 4-bit grid in every channel', async (t) => {
  const topShare = async (align: boolean) => {
    const out = path.join(dir, `w4${align ? '-aligned' : ''}.zqw`);
    const r = await zeroq(CFG, '--wbits', '4', '--calib', CALIB, '--calib-images', '1', '--act-calib', 'minmax', '-o', out, ...(align ? ['--align-weights'] : []));
    t.equal(r.code, 0, r.stderr);
    const zqw = await readZqw(out);
    t.equal(zqw.manifest.quantization.alignedWeights, align ? true : undefined);
    let top = 0;
    let channels = 0;
    for (const { a } of equalizablePairs(zqw.qnet.net)) {
      const c = zqw.qnet.convs[a]!;
      const per = c.q.length / c.fw.length;
      for (let o = 0; o < c.fw.length; o++) {
        let m = 0;
        for (let i = o * per; i < (o + 1) * per; i++) m = Math.max(m, Math.abs(c.q[i]));
        channels++;
        if (m === 7) top++;
      }
    }
    return top / channels;
  };
  const plain = await topShare(false);
  const aligned = await topShare(true);
  // Without alignment a channel's largest |Q| is 4..7; with it, 7 (7.25 steps rounded) wherever fw is not lowered.
  t.ok(plain < 0.6, `without alignment ${(100 * plain).toFixed(1)}% of the channels reach 7`);
  t.ok(aligned > 0.99, `with alignment ${(100 * aligned).toFixed(1)}% of the channels reach 7`);
});

t.test('--center fit: recorded, finer grids in some channels, never coarser, nothing clipped', async (t) => {
  const fws = async (center: string) => {
    const out = path.join(dir, `w4-${center}.zqw`);
    const r = await zeroq(CFG, '--wbits', '4', '--calib', CALIB, '--calib-images', '1', '--act-calib', 'minmax', '--center', center, '-o', out);
    t.equal(r.code, 0, r.stderr);
    const zqw = await readZqw(out);
    t.equal(zqw.manifest.quantization.center, center);
    return zqw.qnet.convs.flatMap((c) => (c ? [{ fw: Array.from(c.fw), q: c.q }] : []));
  };
  const mean = await fws('mean');
  const fit = await fws('fit');
  // The default ('auto') is fit at 4 bits.
  const auto = await fws('auto');
  t.ok(auto.every((c, k) => c.fw.every((f, o) => f === fit[k].fw[o]) && c.q.every((v, i) => v === fit[k].q[i])), 'auto at 4 bits: the integers of fit');
  let finer = 0;
  let channels = 0;
  mean.forEach((m, k) => m.fw.forEach((f, o) => {
    channels++;
    if (fit[k].fw[o] > f) finer++;
    if (fit[k].fw[o] < f) t.fail(`conv ${k} channel ${o}: fit's grid is coarser`);
  }));
  t.ok(fit.every((c) => c.q.every((v) => Math.abs(v) <= 7)), 'every integer within ±7');
  // Yolo-Fastest-1.1 at 4 bits (equalized): 22% of the channels sit lopsided enough about their mean.
  t.ok(finer > channels / 10, `${finer} of ${channels} channels got a finer grid`);
  const bad = await zeroq(CFG, '--wbits', '4', '--calib', CALIB, '--center', 'middle', '-o', path.join(dir, 'x.zqw'));
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--center/);
});

t.test('--rounding-order energy: recorded, other integers in the same grids, refused without output rounding', async (t) => {
  const ints = async (order: string) => {
    const out = path.join(dir, `w4-order-${order}.zqw`);
    const r = await zeroq(CFG, '--wbits', '4', '--calib', CALIB, '--calib-images', '1', '--rounding-order', order, '--rounding-target', 'layer', '-o', out);
    t.equal(r.code, 0, r.stderr);
    const zqw = await readZqw(out);
    t.equal(zqw.manifest.quantization.roundingOrder, order === 'energy' ? 'energy' : undefined);
    return zqw.qnet.convs.flatMap((c) => (c ? [{ fw: Array.from(c.fw), q: c.q }] : []));
  };
  const [index, energy] = [await ints('index'), await ints('energy')];
  t.ok(energy.every((c, k) => c.fw.every((f, o) => f === index[k].fw[o])), 'the same grids');
  t.ok(energy.every((c) => c.q.every((v) => Math.abs(v) <= 7)), 'every integer within ±7');
  const moved = energy.reduce((n, c, k) => n + c.q.reduce((m, v, i) => m + (v !== index[k].q[i] ? 1 : 0), 0), 0);
  t.ok(moved > 0, `${moved} integers rounded differently`);
  const bad = await zeroq(CFG, '--wbits', '4', '--calib', CALIB, '--rounding', 'nearest', '--rounding-order', 'energy', '-o', path.join(dir, 'x.zqw'));
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--rounding-order/);
});

t.test('--rounding-target float: recorded, the heads closer to the float network on the calibration images; the default at 4 bits', async (t) => {
  const run = async (target?: string) => {
    const out = path.join(dir, `w4-target-${target ?? 'default'}.zqw`);
    const r = await zeroq(CFG, '--wbits', '4', '--calib', CALIB, '--calib-images', '2', ...(target ? ['--rounding-target', target] : []), '-o', out, '--json');
    t.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { layers: { index: number; actSqnr?: number }[] };
    const zqw = await readZqw(out);
    t.equal(zqw.manifest.quantization.roundingTarget, target === 'layer' ? undefined : (target ?? 'auto'));
    return {
      // the two tensors the yolo layers read (16 bits): what the detections are made from
      heads: j.layers.filter((l) => l.index === 120 || l.index === 129).map((l) => l.actSqnr!),
      q: zqw.qnet.convs.flatMap((c) => (c ? [c.q] : [])),
    };
  };
  const [layer, float, auto] = [await run('layer'), await run('float'), await run()];
  t.equal(float.heads.length, 2);
  float.heads.forEach((s, k) => t.ok(s > layer.heads[k] + 2, `head ${k}: ${s.toFixed(1)} dB against ${layer.heads[k].toFixed(1)} dB for the layer's own error`));
  t.ok(auto.q.every((q, k) => q.every((v, i) => v === float.q[k][i])), 'the default (auto) at 4 bits: the integers of float');
  const bad = await zeroq(CFG, '--wbits', '4', '--calib', CALIB, '--act-calib', 'minmax', '--rounding-target', 'float', '-o', path.join(dir, 'x.zqw'));
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--rounding-target/);
});

t.test('the text report: a row per layer and the totals', async (t) => {
  const out = path.join(dir, 'w8.zqw');
  const r = await zeroq(CFG, '--wbits', '8', '--first-bits', '8', '--head-bits', '8', '--calib', CALIB, '--calib-images', '1', '--act-calib', 'percentile', '-o', out);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^\s+#\s+kind\s+output\s+Nw\s+mu/m);
  t.match(r.stdout, /^\s*129\s+conv\s+255x20x20\s+8 .* 16\/\d+/m, 'the head conv is 16-bit');
  t.match(r.stdout, /84 conv layers, 319024 weights, 8\.00 bits per weight/);
  t.match(r.stdout, /% of the darknet weights file \(1384268\)/);
});

t.test('bad arguments are refused with a clear message', async (t) => {
  const out = path.join(dir, 'bad.zqw');
  const a = await zeroq(CFG, '--wbits', '9', '--calib', CALIB, '-o', out);
  t.equal(a.code, 2);
  t.match(a.stderr, /'--wbits <n>' argument '9' is invalid\. expected an integer from 2 to 8/);
  const b = await zeroq(CFG, '--wbits', '8', '--calib', path.join(dir, 'missing.txt'), '-o', out);
  t.not(b.code, 0);
  t.match(b.stderr, /cannot read image list/);
  const c = await zeroq(CFG, '--wbits', '8', '--head-abits', '12', '--calib', CALIB, '--calib-images', '1', '-o', out);
  t.equal(c.code, 2);
  t.match(c.stderr, /'--head-abits <n>' argument '12' is invalid\. expected 8 or 16/);
  t.notOk(existsSync(out), 'nothing written');
});
