import type { Command } from 'commander';
import type { Layer, Network, Shape } from '../model/ir.js';
import type { WeightsHeader } from '../model/darknet-weights.js';
import { inputShape } from '../model/ir.js';
import { networkCost, shapeString } from '../model/shapes.js';
import { opt, parse, UsageError } from '../cli/options.js';
import { CONSUMERS, layerSupport, type Consumer, type Support } from '../model/layer-kinds.js';

export interface InspectLayer {
  index: number;
  kind: Layer['kind'];
  source?: string;
  inputs: number[];
  input: Shape;
  output: Shape;
  params: number;
  macs: number;
  /** Per part of zeroq (float and int engines, quantizer, trainer): true, or why it refuses the layer. */
  support: Record<Consumer, Support>;
  /** The layer's own settings (filters, size, stride, ...), as in the IR. */
  [setting: string]: unknown;
}

export interface InspectWeights {
  file: string;
  bytes: number;
  version: string;
  seen: number;
}

export interface InspectReport {
  model: string;
  input: Shape;
  letterbox: boolean;
  heads: number[];
  layers: InspectLayer[];
  totals: { params: number; macs: number; weightsBytes?: number };
  /** Per part of zeroq: true when it takes every layer, else the refused layers' indices. */
  support: Record<Consumer, true | number[]>;
  weights?: InspectWeights;
}

export function inspectReport(net: Network, weights?: { file: string; bytes: number; header: WeightsHeader }): InspectReport {
  const cost = networkCost(net);
  const layers = net.layers.map((l, i): InspectLayer => {
    const { index, kind, source, inputs, out, ...settings } = l;
    return { index, kind, source, inputs, input: inputShape(net, l), output: out, ...settings, ...cost.layers[i], support: layerSupport(l) };
  });
  const support = Object.fromEntries(
    CONSUMERS.map((c) => {
      const bad = layers.filter((l) => l.support[c] !== true).map((l) => l.index);
      return [c, bad.length === 0 ? true : bad];
    }),
  ) as Record<Consumer, true | number[]>;
  const report: InspectReport = {
    model: net.name,
    input: net.input,
    letterbox: net.letterbox,
    heads: net.heads,
    layers,
    totals: { params: cost.params, macs: cost.macs },
    support,
  };
  if (weights) {
    const h = weights.header;
    report.totals.weightsBytes = weights.bytes;
    report.weights = { file: weights.file, bytes: weights.bytes, version: `${h.major}.${h.minor}.${h.revision}`, seen: h.seen };
  }
  return report;
}

function details(l: Layer): string {
  switch (l.kind) {
    case 'conv':
      return `${l.filters} ${l.size}x${l.size}/${l.stride}${l.groups > 1 ? ` g${l.groups}` : ''}${l.batchNormalize ? ' bn' : ''}`;
    case 'maxpool':
      return `${l.size}x${l.size}/${l.stride}${l.padding !== l.size - 1 ? ` padding ${l.padding}` : ''}`;
    case 'route':
      return `layers ${l.inputs.join(',')}${l.groups > 1 ? ` group ${l.groupId}/${l.groups}` : ''}`;
    case 'shortcut':
      return `from ${l.inputs.slice(1).join(',')}`;
    case 'upsample':
      return `x${l.stride}`;
    case 'dropout':
      return `p ${l.probability}`;
    case 'yolo':
      return `${l.classes} classes, anchors ${l.mask.map((m) => `${l.anchors[2 * m]}x${l.anchors[2 * m + 1]}`).join(' ')}`;
  }
}

const num = (n: number): string => n.toLocaleString('en-US');

/** The report as a text table, one row per layer, then the totals. */
export function formatInspectTable(net: Network, report: InspectReport): string {
  const rows = net.layers.map((l, i) => {
    const r = report.layers[i];
    const act = l.kind === 'conv' || l.kind === 'shortcut' ? l.activation : '';
    return [String(l.index), l.kind, `${shapeString(r.input)} -> ${shapeString(r.output)}`, details(l), act, num(r.params), num(r.macs)];
  });
  const header = ['#', 'kind', 'shape c x h x w', 'filters size/stride groups', 'activation', 'params', 'MACs'];
  const right = [true, false, false, false, false, true, true];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]): string =>
    cells.map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  const out = [
    `${report.model}: input ${shapeString(report.input)}${report.letterbox ? ' (letterbox)' : ''}, ${net.layers.length} layers, heads ${report.heads.join(', ') || 'none'}`,
    line(header),
    ...rows.map(line),
    `total params ${num(report.totals.params)} (${(report.totals.params / 1e6).toFixed(3)} M), ` +
      `MACs ${num(report.totals.macs)} (${(report.totals.macs / 1e9).toFixed(3)} G)`,
  ];
  for (const c of CONSUMERS) {
    const bad = report.support[c];
    if (bad === true) continue;
    const first = report.layers[bad[0]];
    out.push(`${c}: refuses ${bad.length} layer${bad.length > 1 ? 's' : ''} (${bad.join(', ')}); layer ${first.index}: ${String(first.support[c])}`);
  }
  if (report.weights) {
    const w = report.weights;
    out.push(`weights ${w.file}: ${num(w.bytes)} bytes, format ${w.version}, seen ${num(w.seen)}`);
  }
  return out.join('\n') + '\n';
}

/** `zeroq inspect <cfg|zqw>`: layers, shapes, parameters and MACs of a darknet model or a weight set's network. */
export function register(program: Command): void {
  program
    .command('inspect')
    .description('show the layers of a darknet model (or of the network in a .zqw weight set): shapes, parameters, MACs (and check a weights file)')
    .argument('<model>', 'darknet .cfg file, or a .zqw weight set (read and verified as an engine would)')
    .option('--weights <file>', 'darknet .weights file to load and check against the cfg')
    .addOption(opt('--size <WxH>', 'input size to use instead of the cfg width/height (e.g. 416 or 416x320)', parse.size))
    .option('--json', 'print one JSON object instead of a table')
    .action(async (model: string, opts: { weights?: string; size?: { width: number; height: number }; json?: boolean }) => {
      const { loadDarknet, parseCfgFile } = await import('../model/darknet.js');
      const size = opts.size ?? {};
      let net: Network;
      let weights: Parameters<typeof inspectReport>[1];
      if (/\.zqw$/i.test(model)) {
        if (opts.weights !== undefined || opts.size !== undefined) throw new UsageError('--weights and --size apply to a .cfg, not to a weight set', 'inspect');
        const { readZqw } = await import('../qnet/zqw.js');
        net = (await readZqw(model)).qnet.net;
      } else if (opts.weights !== undefined) {
        const m = await loadDarknet(model, opts.weights, size);
        net = m.net;
        weights = { file: opts.weights, bytes: m.weightsBytes, header: m.header };
      } else {
        net = parseCfgFile(model, size);
      }
      const report = inspectReport(net, weights);
      process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatInspectTable(net, report));
    });
}
