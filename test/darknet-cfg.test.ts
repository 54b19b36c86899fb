import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseCfg, parseCfgFile } from '../src/model/darknet-cfg.js';
import type { Layer, Network, Shape } from '../src/model/ir.js';
import { networkCost } from '../src/model/shapes.js';
import { ZeroqError } from '../src/util/errors.js';
import { dataPath } from '../src/util/paths.js';
import { DATA_CFGS } from './helpers/darknet-fixtures.js';

type Assert = Pick<typeof t, 'ok' | 'equal'>;

function expectError(tt: Assert, fn: () => unknown, code: string, parts: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  tt.ok(err instanceof ZeroqError, `throws a ZeroqError (got ${String(err)})`);
  if (!(err instanceof ZeroqError)) return;
  tt.equal(err.code, code, `code ${code}: ${err.message}`);
  for (const p of parts) tt.ok(err.message.includes(p), `message names ${JSON.stringify(p)}: ${err.message}`);
}

const headShapes = (net: Network): Shape[] => net.heads.map((h) => net.layers[h].out);

t.test('every cfg in the data folder parses', async (t) => {
  const dirs = [dataPath('models', 'cfg'), dataPath('models', 'yolo-fastest')];
  const files = dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.cfg')).map((f) => path.join(d, f)));
  t.ok(files.length >= 6, `${files.length} cfgs found`);
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const sections = text.split('\n').filter((l) => /^\s*\[/.test(l)).length;
    const net = parseCfgFile(f);
    t.equal(net.layers.length, sections - 1, `${path.basename(f)}: one layer per section after [net]`);
    t.ok(net.heads.length >= 2, `${path.basename(f)}: ${net.heads.length} yolo heads`);
    for (const l of net.layers) {
      t.ok(l.inputs.every((i) => i >= -1 && i < l.index), `${path.basename(f)} layer ${l.index}: inputs are earlier layers`);
      if (!(l.out.c >= 1 && l.out.h >= 1 && l.out.w >= 1)) t.fail(`${path.basename(f)} layer ${l.index}: empty output`);
      t.match(l.source, new RegExp(`^${path.basename(f).replace(/\./g, '\\.')}:\\d+$`));
    }
  }
});

t.test('head shapes of the YOLO cfgs', async (t) => {
  const h = (c: number, s: number): Shape => ({ c, h: s, w: s });
  t.same(headShapes(parseCfgFile(DATA_CFGS.yolov3)), [h(255, 13), h(255, 26), h(255, 52)], 'yolov3 at 416');
  t.same(headShapes(parseCfgFile(DATA_CFGS['yolov3-tiny'])), [h(255, 13), h(255, 26)], 'yolov3-tiny at 416');
  t.same(headShapes(parseCfgFile(DATA_CFGS['yolov4-tiny'])), [h(255, 13), h(255, 26)], 'yolov4-tiny at 416');
  t.same(headShapes(parseCfgFile(DATA_CFGS.yolov4)), [h(255, 76), h(255, 38), h(255, 19)], 'yolov4 at its cfg size 608');
  t.same(headShapes(parseCfgFile(DATA_CFGS.yolov4, { width: 416, height: 416 })), [h(255, 52), h(255, 26), h(255, 13)], 'yolov4 at 416');
  t.same(headShapes(parseCfgFile(DATA_CFGS['yolo-fastest-1.1'])), [h(255, 10), h(255, 20)], 'yolo-fastest-1.1 at 320');
  const wide = parseCfgFile(DATA_CFGS['yolov3-tiny'], { width: 640, height: 352 });
  t.same(headShapes(wide), [{ c: 255, h: 11, w: 20 }, { c: 255, h: 22, w: 40 }], 'a non-square input');
});

t.test('references, groups and darknet pooling in the real cfgs', async (t) => {
  const v3 = parseCfgFile(DATA_CFGS.yolov3);
  t.same(v3.layers[4].inputs, [3, 1], 'yolov3 shortcut from=-3 at layer 4 adds layers 3 and 1');
  t.same(v3.layers[83].inputs, [79], 'route -4 after the first head');
  t.same(v3.layers[86].inputs, [85, 61], 'route -1,61');
  t.same(v3.layers[86].out, { c: 768, h: 26, w: 26 });
  t.same(v3.layers[98].out, { c: 384, h: 52, w: 52 });
  const yolo = v3.layers[82] as Extract<Layer, { kind: 'yolo' }>;
  t.same(yolo.mask, [6, 7, 8]);
  t.same(yolo.anchors.slice(12), [116, 90, 156, 198, 373, 326]);

  const v4tiny = parseCfgFile(DATA_CFGS['yolov4-tiny']);
  const split = v4tiny.layers[3];
  t.equal(split.kind, 'route');
  if (split.kind === 'route') {
    t.same([split.inputs, split.groups, split.groupId], [[2], 2, 1], 'route layers=-1 groups=2 group_id=1');
    t.same(split.out, { c: 32, h: 104, w: 104 }, 'takes half the channels');
  }

  const tiny = parseCfgFile(DATA_CFGS['yolov3-tiny']);
  const pool = tiny.layers[11];
  t.same([pool.kind, pool.out], ['maxpool', { c: 512, h: 13, w: 13 }], 'size 2 stride 1 keeps 13x13 (darknet padding size-1)');

  const v4 = parseCfgFile(DATA_CFGS.yolov4);
  const spp = v4.layers.filter((l) => l.kind === 'maxpool');
  t.same(spp.map((l) => l.kind === 'maxpool' && [l.size, l.out.h]), [[5, 19], [9, 19], [13, 19]], 'SPP pools keep 19x19');
  const concat = v4.layers[spp[2].index + 1];
  t.same([concat.kind, concat.out.c], ['route', 2048], 'SPP concatenation');
  t.same(
    v4.layers.filter((l) => l.kind === 'conv').map((l) => l.kind === 'conv' && l.activation).filter((a, i, all) => all.indexOf(a) === i).sort(),
    ['leaky', 'linear', 'mish'],
  );
  t.equal(v4.letterbox, false);
  const head = v4.layers[v4.heads[0]];
  t.same(head.kind === 'yolo' && [head.scaleXY, head.nmsKind, head.betaNms, head.newCoords], [1.2, 'greedynms', 0.6, false]);
});

// A network small enough to count by hand.
const TINY = `# hand-countable network
[net]
width=8
height=6
channels=3
letter_box=1

[convolutional]   ; 0: 3x6x8 -> 4x6x8
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]         ; 1: 4x6x8 -> 4x3x4 (darknet rounds up on odd sizes)
size=2
stride=2

[convolutional]   ; 2: depthwise 4x3x4
filters=4
groups=4
size=3
pad=1
activation=relu

[convolutional]   ; 3: 1x1 to 8 channels
filters = 8
size = 1
activation = linear

[route]           ; 4: layers 3 and 1, 12x3x4
layers = -1, -3

[upsample]        ; 5: 12x6x8
stride=2

[route]           ; 6: layers 0 and 5, 16x6x8
layers=0,-1

[convolutional]   ; 7: 3x3 stride 2 without padding: 2x2x3
filters=2
size=3
stride=2
pad=0
activation=mish
`;

t.test('shapes, params and MACs of a hand-countable cfg', async (t) => {
  const net = parseCfg(TINY, 'tiny.cfg');
  t.equal(net.name, 'tiny');
  t.equal(net.letterbox, true);
  t.same(
    net.layers.map((l) => [l.kind, l.inputs, l.out]),
    [
      ['conv', [-1], { c: 4, h: 6, w: 8 }],
      ['maxpool', [0], { c: 4, h: 3, w: 4 }],
      ['conv', [1], { c: 4, h: 3, w: 4 }],
      ['conv', [2], { c: 8, h: 3, w: 4 }],
      ['route', [3, 1], { c: 12, h: 3, w: 4 }],
      ['upsample', [4], { c: 12, h: 6, w: 8 }],
      ['route', [0, 5], { c: 16, h: 6, w: 8 }],
      ['conv', [6], { c: 2, h: 2, w: 3 }],
    ],
  );
  t.same(
    net.layers.map((l) => l.kind === 'conv' && [l.pad, l.stride, l.groups, l.activation, l.batchNormalize]),
    [[1, 1, 1, 'leaky', true], false, [1, 1, 4, 'relu', false], [0, 1, 1, 'linear', false], false, false, false, [0, 2, 1, 'mish', false]],
  );
  const maxpool = net.layers[1];
  t.same(maxpool.kind === 'maxpool' && [maxpool.size, maxpool.stride, maxpool.padding], [2, 2, 1], 'default padding size-1');
  t.same(net.layers.map((l) => l.source), ['tiny.cfg:8', 'tiny.cfg:16', 'tiny.cfg:20', 'tiny.cfg:27', 'tiny.cfg:32', 'tiny.cfg:35', 'tiny.cfg:38', 'tiny.cfg:41']);

  const cost = networkCost(net);
  // conv0: 6*8 positions x 4 filters x 3*3*3; conv2: 3*4 x 4 x 1*3*3; conv3: 3*4 x 8 x 4; conv7: 2*3 x 2 x 16*3*3
  t.same(cost.layers.map((c) => c.macs), [5184, 0, 432, 384, 0, 0, 0, 1728]);
  t.same(cost.layers.map((c) => c.params), [4 * 27 + 4, 0, 4 * 9 + 4, 8 * 4 + 8, 0, 0, 0, 2 * 144 + 2]);
  t.equal(cost.macs, 5184 + 432 + 384 + 1728);
  t.equal(cost.params, 112 + 40 + 40 + 290);
});

t.test('shortcut, dropout, yolo and darknet defaults', async (t) => {
  const net = parseCfg(
    [
      '[network]',
      'width=4',
      'height=4',
      'channels=2',
      '[conv]',
      'filters=2',
      '[dropout]',
      '[shortcut]',
      'from=-2',
      '[convolutional]',
      'filters=18',
      'size=1',
      'activation=linear',
      '[yolo]',
      'mask=2,0',
      'num=3',
      'classes=4',
      'anchors=1,2, 3,4, 5,6',
    ].join('\n'),
    'defaults.cfg',
  );
  const [conv, drop, sc, , yolo] = net.layers;
  t.same(conv.kind === 'conv' && [conv.size, conv.stride, conv.pad, conv.groups, conv.activation], [1, 1, 0, 1, 'logistic'], 'conv defaults');
  t.same(drop.kind === 'dropout' && drop.probability, 0.2, 'dropout default probability');
  t.same(sc.kind === 'shortcut' && [sc.inputs, sc.activation], [[1, 0], 'linear']);
  t.same(
    yolo.kind === 'yolo' && [yolo.mask, yolo.anchors, yolo.scaleXY, yolo.nmsKind, yolo.betaNms],
    [[2, 0], [1, 2, 3, 4, 5, 6], 1, 'default', 0.6],
  );
  t.same(net.heads, [4]);
  const nomask = parseCfg('[net]\nwidth=1\nheight=1\nchannels=27\n[yolo]\nnum=3\nclasses=4\nanchors=1,1,2,2,3,3,4,4\n', 'n.cfg');
  const y = nomask.layers[0];
  t.same(y.kind === 'yolo' && [y.mask, y.anchors], [[0, 1, 2], [1, 1, 2, 2, 3, 3]], 'no mask: every anchor; extra anchor values dropped');
});

/** A cfg around one bad line; returns the text and that line's number. */
function withLine(bad: string, section = '[convolutional]'): { text: string; line: number } {
  const lines = ['[net]', 'width=32', 'height=32', 'channels=3', '# comment', '', section, 'filters=4', bad, 'size=3'];
  return { text: lines.join('\n'), line: lines.indexOf(bad) + 1 };
}

t.test('syntax and option errors name the file and line', async (t) => {
  const cases: [string, string, string, string?][] = [
    ['filters 16', 'cfg-syntax', 'malformed line'],
    ['=3', 'cfg-syntax', 'malformed line'],
    ['[convolutional', 'cfg-syntax', 'malformed section header'],
    ['foo=1', 'cfg-unknown-option', "unknown option 'foo' in [convolutional]"],
    ['[bogus]', 'cfg-unknown-section', 'unknown section [bogus]'],
    ['[avgpool]', 'cfg-unsupported', 'layer type [avgpool] is not supported'],
    ['stride=abc', 'cfg-bad-value', "bad value 'abc' for stride in [convolutional]: expected an integer"],
    ['stride=1.5', 'cfg-bad-value', 'expected an integer'],
    ['stride=0', 'cfg-bad-value', 'must be >= 1'],
    ['activation=foo', 'cfg-bad-value', "bad value 'foo' for activation"],
    ['activation=tanh', 'cfg-unsupported', "activation 'tanh' in [convolutional] is not supported"],
    ['batch_normalize=2', 'cfg-bad-value', 'expected 0 or 1'],
    ['pad=', 'cfg-bad-value', 'empty value'],
    ['antialiasing=1', 'cfg-unsupported', 'antialiasing=1 in [convolutional] is not supported'],
    ['dilation=2', 'cfg-unsupported', 'dilation=2'],
    ['stride_x=2', 'cfg-unsupported', 'different strides'],
    ['share_index=-2', 'cfg-unsupported', "option 'share_index'"],
    ['filters=8', 'cfg-syntax', "option 'filters' given twice in [convolutional] (first at line 8)"],
    ['groups=3', 'cfg-shape', 'groups=3'],
  ];
  for (const [bad, code, msg] of cases) {
    const { text, line } = withLine(bad);
    expectError(t, () => parseCfg(text, 'bad.cfg'), code, [`bad.cfg:${line}:`, msg]);
  }
  expectError(t, () => parseCfg('[yolo]\nmask=0,,1\n', 'y.cfg'), 'cfg-bad-value', ['y.cfg:2:', "bad value '0,,1' for mask"]);
  expectError(t, () => parseCfg('width=3\n[net]\n', 'o.cfg'), 'cfg-syntax', ['o.cfg:1:', 'before the first [section]']);
  expectError(t, () => parseCfg('[convolutional]\nfilters=1\n', 'f.cfg'), 'cfg-structure', ['f.cfg:1:', 'first section must be [net]']);
  expectError(t, () => parseCfg('[net]\nwidth=8\nchannels=3\n[maxpool]\n', 'n.cfg'), 'cfg-missing-option', ['n.cfg:1:', "'height'"]);
  expectError(t, () => parseCfg('[net]\nwidth=8\nheight=8\nchannels=3\n', 'e.cfg'), 'cfg-structure', ['no layers']);
});

t.test('structure errors: references, shapes, heads', async (t) => {
  const head = '[net]\nwidth=16\nheight=16\nchannels=3\n[convolutional]\nfilters=4\nsize=3\npad=1\n[maxpool]\nsize=2\nstride=2\n';
  // line 12 is the first line after `head`
  expectError(t, () => parseCfg(head + '[route]\nlayers=-5\n', 'r.cfg'), 'cfg-bad-reference', ['r.cfg:13:', 'layers=-5 (layer -3)', 'does not name an earlier layer (0..1)']);
  expectError(t, () => parseCfg(head + '[route]\nlayers=2\n', 'r.cfg'), 'cfg-bad-reference', ['r.cfg:13:', 'layers=2']);
  expectError(t, () => parseCfg(head + '[route]\n', 'r.cfg'), 'cfg-missing-option', ['r.cfg:12:', "[route] needs option 'layers'"]);
  expectError(t, () => parseCfg(head + '[route]\nlayers=0,1\n', 'r.cfg'), 'cfg-shape', ['r.cfg:13:', 'inputs differ in size']);
  expectError(t, () => parseCfg(head + '[route]\nlayers=1\ngroups=2\ngroup_id=2\n', 'r.cfg'), 'cfg-bad-value', ['r.cfg:15:', 'group_id=2']);
  expectError(t, () => parseCfg(head + '[shortcut]\nfrom=0\n', 's.cfg'), 'cfg-shape', ['s.cfg:13:', 'shapes differ']);
  expectError(t, () => parseCfg(head + '[shortcut]\nfrom=-9\n', 's.cfg'), 'cfg-bad-reference', ['s.cfg:13:', 'from=-9']);
  expectError(
    t,
    () => parseCfg(head + '[yolo]\nmask=0\nnum=1\nclasses=80\nanchors=10,14\n', 'y.cfg'),
    'cfg-shape',
    ['y.cfg:12:', 'needs 85 input channels', 'layer 1 gives 4'],
  );
  expectError(t, () => parseCfg(head + '[yolo]\nmask=0,3\nnum=3\nanchors=1,1\n', 'y.cfg'), 'cfg-bad-value', ['y.cfg:13:', 'mask index 3']);
  expectError(t, () => parseCfg(head + '[yolo]\nmask=0\nnum=3\nanchors=1,1\n', 'y.cfg'), 'cfg-bad-value', ['y.cfg:15:', 'num=3 needs 6']);
  expectError(t, () => parseCfg(head + '[convolutional]\nfilters=4\nsize=9\n', 'c.cfg'), 'cfg-shape', ['c.cfg:12:', 'does not fit the 8x8 input']);
  expectError(t, () => parseCfg(head + '[net]\nwidth=3\n', 'n.cfg'), 'cfg-structure', ['n.cfg:12:', 'a second [net]']);
});

t.test('parseCfgFile: a missing file', async (t) => {
  expectError(t, () => parseCfgFile('/nonexistent/x.cfg'), 'cfg-read', ['/nonexistent/x.cfg']);
});

interface LoggedLayer {
  kind: Layer['kind'];
  /** Output as darknet prints it: w, h, c. */
  out: number[];
  in?: number[];
  conv?: { filters: number; groups: number; size: number; stride: number; bflops: number };
  pool?: { size: number; stride: number };
  refs?: number[];
  probability?: number;
}

/** The layer table darknet prints when it loads a network (the model zoo's mAP logs hold one). */
function readDarknetLog(text: string): { layers: LoggedLayer[]; bflops: number } {
  const layers: LoggedLayer[] = [];
  const n = (s: string): number => Number(s);
  const shape = '(\\d+) x\\s+(\\d+) x\\s+(\\d+)';
  const conv = new RegExp(`^\\s*(?:\\d+\\s+)?conv\\s+(\\d+)(?:/\\s*(\\d+))?\\s+(\\d+) x (\\d+)/\\s*(\\d+)\\s+${shape} ->\\s+${shape}\\s+([\\d.]+) BF`);
  const max = new RegExp(`^\\s*\\d+\\s+max\\s+(\\d+)x\\s*(\\d+)/\\s*(\\d+)\\s+${shape} ->\\s+${shape}`);
  const up = new RegExp(`^\\s*\\d+\\s+upsample\\s+(\\d+)x\\s+${shape} ->\\s+${shape}`);
  let bflops = NaN;
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = conv.exec(line))) {
      const v = m.slice(1).map((x) => (x === undefined ? NaN : n(x)));
      layers.push({
        kind: 'conv',
        in: v.slice(5, 8),
        out: v.slice(8, 11),
        conv: { filters: v[0], groups: Number.isNaN(v[1]) ? 1 : v[1], size: v[2], stride: v[4], bflops: v[11] },
      });
    } else if ((m = max.exec(line))) {
      layers.push({ kind: 'maxpool', pool: { size: n(m[1]), stride: n(m[3]) }, in: m.slice(4, 7).map(n), out: m.slice(7, 10).map(n) });
    } else if ((m = up.exec(line))) {
      layers.push({ kind: 'upsample', in: m.slice(2, 5).map(n), out: m.slice(5, 8).map(n) });
    } else if ((m = /^\s*\d+\s+route\s+([\d\s]+?)\s*->\s+(\d+) x\s+(\d+) x\s+(\d+)/.exec(line))) {
      layers.push({ kind: 'route', refs: m[1].trim().split(/\s+/).map(n), out: m.slice(2, 5).map(n) });
    } else if ((m = /^\s*\d+\s+Shortcut Layer: ([\d, ]+?),\s+wt.*outputs:\s+(\d+) x\s+(\d+) x\s+(\d+)/.exec(line))) {
      layers.push({ kind: 'shortcut', refs: m[1].split(',').map((x) => n(x.trim())), out: m.slice(2, 5).map(n) });
    } else if ((m = /^\s*\d+\s+dropout\s+p = ([\d.]+)\s+(\d+)\s+->\s+(\d+)/.exec(line))) {
      layers.push({ kind: 'dropout', probability: n(m[1]), out: [n(m[3])] });
    } else if (/^\s*\d+\s+yolo\s*$/.test(line)) {
      layers.push({ kind: 'yolo', out: [] });
    } else if ((m = /Total BFLOPS ([\d.]+)/.exec(line))) {
      bflops = n(m[1]);
    }
  }
  return { layers, bflops };
}

t.test('Yolo-Fastest layer by layer as darknet printed it', async (t) => {
  const logs = { 'yolo-fastest-1.1': 'mAP_log.txt', 'yolo-fastest-1.1-xl': 'xl-mAP_log.txt' } as const;
  for (const [name, log] of Object.entries(logs)) {
    const net = parseCfgFile(DATA_CFGS[name as keyof typeof logs]);
    const cost = networkCost(net);
    const printed = readDarknetLog(readFileSync(dataPath('models', 'yolo-fastest', log), 'utf8'));
    t.equal(printed.layers.length, net.layers.length, `${name}: darknet printed ${printed.layers.length} layers`);
    const whc = (s: Shape): number[] => [s.w, s.h, s.c];
    const mismatches: string[] = [];
    const check = (i: number, what: string, got: unknown, want: unknown): void => {
      if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`layer ${i} ${what}: ${JSON.stringify(got)} != darknet ${JSON.stringify(want)}`);
    };
    net.layers.forEach((l, i) => {
      const p = printed.layers[i];
      check(i, 'kind', l.kind, p.kind);
      const input = l.inputs[0] === -1 ? net.input : net.layers[l.inputs[0]].out;
      if (p.in) check(i, 'input', whc(input), p.in);
      if (l.kind === 'dropout') check(i, 'outputs', [l.out.c * l.out.h * l.out.w], p.out);
      else if (l.kind !== 'yolo') check(i, 'output', whc(l.out), p.out);
      if (l.kind === 'conv') {
        const { bflops, ...rest } = p.conv!;
        check(i, 'conv', { filters: l.filters, groups: l.groups, size: l.size, stride: l.stride }, rest);
        // darknet prints 2*MACs in units of 1e9 with three decimals
        if (Math.abs((2 * cost.layers[i].macs) / 1e9 - bflops) > 0.0005 + 1e-9) check(i, 'BFLOPs', (2 * cost.layers[i].macs) / 1e9, bflops);
      }
      if (l.kind === 'maxpool') check(i, 'pool', { size: l.size, stride: l.stride }, p.pool);
      if (l.kind === 'route') check(i, 'inputs', l.inputs, p.refs);
      if (l.kind === 'shortcut') check(i, 'from', l.inputs.slice(1), p.refs);
      if (l.kind === 'dropout') check(i, 'probability', l.probability, p.probability);
    });
    t.same(mismatches, [], `${name}: every layer as darknet built it`);
    // darknet's total also counts max-pool and shortcut work, a fraction of a percent here
    t.ok(Math.abs((2 * cost.macs) / 1e9 - printed.bflops) < 0.003, `${name}: 2 x ${cost.macs} MACs ~ darknet's ${printed.bflops} BFLOPS`);
  }
});
