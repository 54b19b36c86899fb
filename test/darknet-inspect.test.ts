import t from 'tap';
import { execFile } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { formatInspectTable, inspectReport, type InspectReport } from '../src/commands/inspect.js';
import { defaultWeightsPath, loadDarknet } from '../src/model/darknet.js';
import { parseCfgFile } from '../src/model/darknet-cfg.js';
import { networkCost } from '../src/model/shapes.js';
import { repoRoot } from '../src/util/paths.js';
import { DATA_CFGS, tempDir } from './helpers/darknet-fixtures.js';

const run = promisify(execFile);
const { dir, cleanup } = tempDir();
t.teardown(cleanup);

/** Runs `zeroq inspect ...` from the sources; resolves with exit code and output. */
async function zeroq(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), 'inspect', ...args], {
      cwd: repoRoot,
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

const CFG = DATA_CFGS['yolo-fastest-1.1'];
const WEIGHTS = defaultWeightsPath(CFG);

t.test('report and table of Yolo-Fastest 1.1 with its weights', async (t) => {
  const m = await loadDarknet(CFG);
  const report = inspectReport(m.net, { file: WEIGHTS, bytes: m.weightsBytes, header: m.header });
  const cost = networkCost(m.net);
  t.same(report.totals, { params: cost.params, macs: cost.macs, weightsBytes: statSync(WEIGHTS).size });
  t.same(report.weights, { file: WEIGHTS, bytes: statSync(WEIGHTS).size, version: '0.2.5', seen: m.header.seen });
  t.equal(report.layers.length, 131);
  const first = report.layers[0];
  t.same(
    [first.kind, first.input, first.output, first.filters, first.size, first.stride, first.groups, first.activation, first.params, first.macs],
    ['conv', { c: 3, h: 320, w: 320 }, { c: 8, h: 160, w: 160 }, 8, 3, 2, 1, 'leaky', 8 * 27 + 8, 160 * 160 * 8 * 27],
  );
  t.same(report.layers[8].inputs, [7, 3], 'shortcut inputs');

  const table = formatInspectTable(m.net, report);
  const rows = table.trimEnd().split('\n');
  t.equal(rows.length, 1 + 1 + 131 + 2, 'title, header, one row per layer, totals, weights');
  t.match(rows[2], /^\s*0\s+conv\s+3x320x320 -> 8x160x160\s+8 3x3\/2 bn\s+leaky\s+224\s+5,529,600$/);
  t.match(rows[2 + 130], /^130\s+yolo\s+255x20x20 -> 255x20x20\s+80 classes, anchors 12x18 37x49 52x132/);
  t.match(rows.at(-2)!, `MACs ${cost.macs.toLocaleString('en-US')}`);
  t.match(rows.at(-1)!, `${statSync(WEIGHTS).size.toLocaleString('en-US')} bytes, format 0.2.5`);
});

t.test('zeroq inspect on the command line', async (t) => {
  const json = await zeroq(CFG, '--weights', WEIGHTS, '--json');
  t.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as InspectReport;
  t.equal(report.model, 'yolo-fastest-1.1');
  t.same(report.input, { c: 3, h: 320, w: 320 });
  const cost = networkCost(parseCfgFile(CFG));
  t.same(report.totals, { params: cost.params, macs: cost.macs, weightsBytes: statSync(WEIGHTS).size });
  t.same(report.heads, [121, 130]);

  const resized = await zeroq(CFG, '--size', '416', '--json');
  t.equal(resized.code, 0, resized.stderr);
  const r = JSON.parse(resized.stdout) as InspectReport;
  t.same(r.heads.map((h) => r.layers[h].output), [{ c: 255, h: 13, w: 13 }, { c: 255, h: 26, w: 26 }], '--size 416');

  const table = await zeroq(DATA_CFGS['yolov4-tiny']);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /^yolov4-tiny: input 3x416x416, 38 layers, heads 30, 37\n/);

  const wrong = await zeroq(DATA_CFGS['yolov3-tiny'], '--weights', WEIGHTS);
  t.equal(wrong.code, 2, 'a user error exits with 2');
  t.match(wrong.stderr, /yolo-fastest-1\.1\.weights: the data ends inside layer \d+ \[convolutional\] \(yolov3-tiny\.cfg:\d+\).*\[weights-truncated\]/);

  const bad = path.join(dir, 'bad.cfg');
  writeFileSync(bad, '[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=abc\n');
  const badCfg = await zeroq(bad);
  t.equal(badCfg.code, 2);
  t.match(badCfg.stderr, "bad.cfg:6: bad value 'abc' for filters in [convolutional]: expected an integer [cfg-bad-value]");

  const badSize = await zeroq(CFG, '--size', '0x3');
  t.equal(badSize.code, 2);
  t.match(badSize.stderr, "'--size <WxH>' argument '0x3' is invalid. expected W or WxH");
});

t.test('per-layer support: the engines, the quantizer and the trainer say which layers they take, and why not', async (t) => {
  const fastest = inspectReport(parseCfgFile(CFG));
  t.same(fastest.support, { float: true, int: true, quantizer: true, trainer: true }, 'Yolo-Fastest: every part takes every layer');
  const v4 = parseCfgFile(DATA_CFGS['yolov4']);
  const r = inspectReport(v4);
  const mish = v4.layers.filter((l) => l.kind === 'conv' && l.activation === 'mish').map((l) => l.index);
  t.ok(mish.length > 50);
  t.same(r.support.quantizer, mish, 'the quantizer refuses exactly the mish layers');
  t.equal(r.support.int, true, 'the int engine runs look-up-table activations');
  t.match(r.layers[mish[0]].support, { float: true, int: true, quantizer: /mish needs a look-up table/, trainer: /mish/ });
  const leakyHead = v4.layers.find((l) => l.kind === 'conv' && l.activation === 'leaky')!;
  t.same(r.layers[leakyHead.index].support, { float: true, int: true, quantizer: true, trainer: true });
  const json = await zeroq(DATA_CFGS['yolov4'], '--json');
  t.equal(json.code, 0);
  t.same((JSON.parse(json.stdout) as InspectReport).support.quantizer, mish, 'zeroq inspect --json carries it');
  const text = await zeroq(DATA_CFGS['yolov4']);
  t.match(text.stdout, new RegExp(`quantizer: refuses ${mish.length} layers .*layer ${mish[0]}: activation mish`));

  // The quantizer refuses from the same descriptor, naming the first layer, before any work.
  const { quantizeModel } = await import('../src/quant/quantize.js');
  const model = { net: v4, params: [] } as unknown as Parameters<typeof quantizeModel>[0];
  await t.rejects(quantizeModel(model, [], { wbits: 8, abits: 8, headAbits: 16, actCalib: 'search' } as Parameters<typeof quantizeModel>[2]), {
    code: 'quant-unsupported',
    message: new RegExp(`layer ${mish[0]} \\(conv, yolov4\\.cfg:\\d+\\): activation mish needs a look-up table .*and ${mish.length - 1} more layers`),
  });
});
