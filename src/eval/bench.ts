/**
 * Benchmark harness: median milliseconds per frame of the network alone and end to end (decode and
 * resize a real image, network, YOLO decode + NMS), frames per second, peak RSS; optionally float
 * and int interleaved frame by frame in one process, so that both see the same machine load.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Network } from '../model/ir.js';
import type { Engine, Frame } from '../engine/engine.js';
import { engineModule, type EngineOpenOptions } from '../engine/registry.js';
import { ZeroqError } from '../util/errors.js';
import { dataPath } from '../util/paths.js';

/** A registered engine kind. */
export type BenchEngine = string;

export interface BenchOptions {
  /** A darknet .cfg (float: weights beside it; int: a random QNet of it) or a .zqw weight set. */
  model: string;
  engine: BenchEngine;
  /** Run float and int alternately and report int/float. */
  compare?: boolean;
  /** Float engine: onnxruntime's workers spin between runs (its default); false turns it off. */
  spin?: boolean;
  threads?: number;
  /**
   * Also run the same engine at this many threads, alternating with `threads` in blocks of 10
   * frames, and report threads / againstThreads (the scaling of the extra cores in one machine state).
   */
  againstThreads?: number;
  frames?: number;
  warmup?: number;
  /** The image of the end-to-end measurement (default: the data folder's dog.jpg). */
  image?: string;
  /** Float model for a .zqw (default: the weight set's source model when that file exists). */
  floatModel?: string;
  /** The engine's own options (registry keys: isa, device, ...). */
  engineOptions?: EngineOpenOptions;
  /** Per-layer profile of the int engine (time, multiply-adds, bytes moved, rates; totals by kind). */
  profile?: boolean;
}

/** One layer of the int engine's profile: median over the profiled frames. */
export interface LayerProfile {
  index: number;
  /** Layer kind with its shape: "conv 1x1", "conv dw 3x3/2", "maxpool 5", ... */
  kind: string;
  /** Output tensor, CxHxW. */
  out: string;
  /** The native code path ("gemm direct fast", "depthwise fast", ...). */
  kernel: string;
  ms: number;
  macs: number;
  /** Bytes of the tensors the layer reads and writes (stored form) and of its weights. */
  bytes: number;
  gmacPerS: number;
  gbPerS: number;
}

export interface Stats {
  median: number;
  p10: number;
  p90: number;
  min: number;
}

export interface EngineBench {
  engine: BenchEngine;
  modelId: string;
  threads: number;
  /** Integer instruction set, or "js-reference" when the native kernels are missing. */
  isa?: string;
  /** Float engine: whether onnxruntime's workers spun between runs. */
  spin?: boolean;
  /** True when the int engine ran random weights (a cfg was given, not a .zqw). */
  randomWeights?: boolean;
  networkMs: Stats;
  /** Process CPU time per network run (all threads): robust to a busy machine's time slicing. */
  networkCpuMs: Stats;
  preMs: Stats;
  postMs: Stats;
  endToEndMs: Stats;
  /** Frames per second, network only and end to end (1000 / median). */
  fps: { network: number; endToEnd: number };
  /** int: ms per frame by layer kind (conv split into 1x1, depthwise, kxk): sums of the per-layer medians. */
  layerKinds?: Record<string, number>;
  /** int: the per-layer profile. */
  layers?: LayerProfile[];
}

export interface BenchResult {
  model: string;
  network: string;
  input: { width: number; height: number };
  image: string;
  frames: number;
  warmup: number;
  engines: EngineBench[];
  /** (engine under test) / float median ratios (compare mode). */
  ratio?: { network: number; networkCpu: number; endToEnd: number };
  /** --against-threads: network time at `threads` over the time at `againstThreads` (medians). */
  threadRatio?: { threads: number; againstThreads: number; network: number; endToEnd: number };
  peakRssMb: number;
}

function stats(v: number[]): Stats {
  const s = [...v].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5), p10: at(0.1), p90: at(0.9), min: s[0] };
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

interface Opened {
  kind: BenchEngine;
  engine: Engine;
  threads: number;
  isa?: string;
  randomWeights?: boolean;
  spin?: boolean;
  profile?: (on: boolean) => Float64Array;
  layerInfo?: () => { kernel: string[]; macs: Float64Array; bytes: Float64Array };
}

/** Opens one measured engine through the registry; int on a .cfg runs random weights of its shapes. */
async function openMeasured(kind: string, opts: BenchOptions, threads: number): Promise<Opened> {
  const engineOptions: EngineOpenOptions = { ...(opts.engineOptions ?? {}), threads };
  let engine: Engine;
  let randomWeights = false;
  if (kind === 'int' && /\.cfg$/i.test(opts.model)) {
    const [{ openIntEngine }, { parseCfgFile }, { randomQNet, rng }] = await Promise.all([
      import('../engine/int.js'),
      import('../model/darknet.js'),
      import('../qnet/random.js'),
    ]);
    const net = parseCfgFile(opts.model);
    engine = openIntEngine(randomQNet(net, rng(1), { wbits: [8, 8] }), { ...engineOptions, modelId: `${net.name} (random int weights)` });
    randomWeights = true;
  } else if (kind === 'float') {
    engine = await engineModule('float').open(await floatCfgFor(opts), { ...engineOptions, spin: opts.spin ?? true });
  } else {
    engine = await engineModule(kind).open(opts.model, engineOptions);
  }
  const isa = (engine as { isa?: unknown }).isa;
  // The thread count the engine reports running (the int engine's native pool), else the one asked for.
  const ran = (engine as { threads?: unknown }).threads;
  const profile = (engine as { profile?: unknown }).profile;
  const layerInfo = (engine as { layerInfo?: unknown }).layerInfo;
  return {
    kind,
    engine,
    threads: typeof ran === 'number' ? ran : threads,
    ...(randomWeights ? { randomWeights } : {}),
    ...(kind === 'float' ? { spin: opts.spin ?? true } : {}),
    ...(typeof isa === 'string' ? { isa } : {}),
    ...(typeof profile === 'function' ? { profile: (on: boolean) => (profile as (on: boolean) => Float64Array).call(engine, on) } : {}),
    ...(typeof layerInfo === 'function' ? { layerInfo: () => (layerInfo as () => ReturnType<NonNullable<Opened['layerInfo']>>).call(engine) } : {}),
  };
}

/** The float model to compare with: the model itself when it is a cfg, else the weight set's source cfg. */
async function floatCfgFor(opts: BenchOptions): Promise<string> {
  if (/\.cfg$/i.test(opts.model)) return opts.model;
  let source: string | undefined;
  if (!opts.floatModel && /\.zqw$/i.test(opts.model)) {
    const { readZqw } = await import('../qnet/zqw.js');
    const m = (await readZqw(opts.model)).manifest;
    const cfgName = (m.source as { cfg?: unknown }).cfg;
    source = typeof cfgName === 'string' ? cfgName : `${m.source.model}.cfg`;
  }
  // The weight set records its source cfg by name: look beside the .zqw, then in the data folder.
  const candidates = opts.floatModel
    ? [opts.floatModel]
    : source
      ? [source, path.join(path.dirname(opts.model), path.basename(source)), dataPath('models', 'yolo-fastest', path.basename(source))]
      : [];
  const found = candidates.find((c) => c !== undefined && /\.cfg$/i.test(c) && existsSync(c));
  if (!found) {
    throw new ZeroqError('bench-float-model', `the float engine needs the darknet cfg of ${opts.model} (give it with --float <cfg>)`, opts.model);
  }
  return found;
}

/** Runs the benchmark; progress (done, total) is reported per measured frame. */
export async function runBench(opts: BenchOptions, progress?: (done: number, total: number) => void): Promise<BenchResult> {
  const threads = Math.max(1, opts.threads ?? 1);
  const frames = Math.max(1, opts.frames ?? 200);
  const warmup = Math.max(0, opts.warmup ?? 20);
  // --compare: float first, then the engine under test (int unless another kind is asked for).
  // --against-threads: the engine at that thread count first, then at `threads`.
  const against = opts.againstThreads;
  if (against !== undefined && opts.compare) throw new ZeroqError('bench-options', '--against-threads and --compare measure different things: give one of them');
  if (against !== undefined && (!Number.isInteger(against) || against < 1 || against === threads)) {
    throw new ZeroqError('bench-options', `--against-threads ${against}: give a thread count other than --threads ${threads}`);
  }
  const runs: Array<[string, number]> = opts.compare
    ? [['float', threads], [opts.engine === 'float' ? 'int' : opts.engine, threads]]
    : against !== undefined
      ? [[opts.engine, against], [opts.engine, threads]]
      : [[opts.engine, threads]];
  const opened: Opened[] = [];
  try {
    for (const [kind, t] of runs) opened.push(await openMeasured(kind, opts, t));
    const n = opened[opened.length - 1].engine.net;
    const { loadImage, resizeForNet } = await import('../detect/preprocess.js');
    const { decodeHeads, DEFAULT_DECODE } = await import('../detect/decode.js');
    const image = opts.image ?? dataPath('reference', 'samples', 'dog.jpg');
    if (!existsSync(image)) throw new ZeroqError('bench-image', 'image not found (give one with --image)', image);

    // One frame per engine measurement: decode + resize (pre), network, decode + NMS (post).
    const once = async (o: Opened) => {
      const t0 = now();
      const img = await loadImage(image);
      const frame: Frame = resizeForNet(img, n);
      const t1 = now();
      const heads = await o.engine.infer(frame);
      const t2 = now();
      decodeHeads(heads, n, img.width, img.height, DEFAULT_DECODE);
      const t3 = now();
      return [t1 - t0, t2 - t1, t3 - t2];
    };
    // Network-only timing on a frame prepared once.
    const frame = resizeForNet(await loadImage(image), n);
    for (const o of opened) {
      for (let i = 0; i < warmup; i++) await o.engine.infer(frame);
      await once(o);
    }
    const times = opened.map(() => ({ net: [] as number[], cpu: [] as number[], pre: [] as number[], post: [] as number[], e2e: [] as number[] }));
    // Engines alternate in blocks of BLOCK frames (the order alternating too), so each runs
    // back to back as it would in production, and both see the same machine over time. The first
    // frame of a block is not recorded: it pays for the switch (onnxruntime's workers spin for a
    // while after a run, taking the cores the other engine's next frame needs).
    const BLOCK = opened.length > 1 ? 10 : 1;
    let done = 0;
    for (let b = 0; done < frames; b++) {
      const order = b % 2 === 0 ? opened.map((_, j) => j) : opened.map((_, j) => opened.length - 1 - j);
      const count = Math.min(BLOCK, frames - done);
      for (const j of order) {
        const o = opened[j];
        for (let k = BLOCK > 1 ? -1 : 0; k < count; k++) {
          const c0 = process.cpuUsage();
          const t0 = now();
          await o.engine.infer(frame);
          const net = now() - t0;
          const c = process.cpuUsage(c0);
          const [pre, mid, post] = await once(o);
          if (k < 0) continue;
          times[j].net.push(net);
          times[j].cpu.push((c.user + c.system) / 1000);
          times[j].pre.push(pre);
          times[j].post.push(post);
          times[j].e2e.push(pre + mid + post);
        }
      }
      done += count;
      progress?.(done, frames);
    }
    const engines: EngineBench[] = [];
    for (let j = 0; j < opened.length; j++) {
      const o = opened[j];
      const networkMs = stats(times[j].net);
      const endToEndMs = stats(times[j].e2e);
      const b: EngineBench = {
        engine: o.kind,
        modelId: o.engine.modelId,
        threads: o.threads,
        ...(o.isa ? { isa: o.isa } : {}),
        ...(o.spin !== undefined ? { spin: o.spin } : {}),
        ...(o.randomWeights ? { randomWeights: true } : {}),
        networkMs,
        networkCpuMs: stats(times[j].cpu),
        preMs: stats(times[j].pre),
        postMs: stats(times[j].post),
        endToEndMs,
        fps: { network: 1000 / networkMs.median, endToEnd: 1000 / endToEndMs.median },
      };
      if (opts.profile && o.profile) {
        b.layers = await profileLayers(o, n, Math.min(frames, 100), frame);
        b.layerKinds = {};
        for (const l of n.layers) {
          const key =
            l.kind === 'conv' ? (l.groups > 1 && l.groups === l.filters ? 'conv depthwise' : l.size === 1 ? 'conv 1x1' : `conv ${l.size}x${l.size}`) : l.kind;
          b.layerKinds[key] = (b.layerKinds[key] ?? 0) + b.layers[l.index].ms;
        }
      }
      engines.push(b);
    }
    const f = engines.find((e) => e.engine === 'float');
    const q = engines.find((e) => e.engine !== 'float');
    return {
      model: opts.model,
      network: n.name,
      input: { width: n.input.w, height: n.input.h },
      image,
      frames,
      warmup,
      engines,
      ...(against !== undefined
        ? {
            threadRatio: {
              threads,
              againstThreads: against,
              network: engines[1].networkMs.median / engines[0].networkMs.median,
              endToEnd: engines[1].endToEndMs.median / engines[0].endToEndMs.median,
            },
          }
        : {}),
      ...(f && q ? { ratio: { network: q.networkMs.median / f.networkMs.median, networkCpu: q.networkCpuMs.median / f.networkCpuMs.median, endToEnd: q.endToEndMs.median / f.endToEndMs.median } } : {}),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    for (const o of opened) await o.engine.close();
  }
}

/** A layer's kind and shape as the profile names it. */
function layerKind(net: Network, i: number): string {
  const l = net.layers[i];
  if (l.kind === 'conv') {
    const dw = l.groups > 1 && l.groups === l.filters;
    return `conv ${dw ? 'dw ' : l.groups > 1 ? `g${l.groups} ` : ''}${l.size}x${l.size}${l.stride > 1 ? `/${l.stride}` : ''}`;
  }
  if (l.kind === 'maxpool') return `maxpool ${l.size}${l.stride > 1 ? `/${l.stride}` : ''}`;
  return l.kind;
}

/** Per layer: the median over `frames` frames of the native per-layer timers, with work and rates. */
async function profileLayers(o: Opened, net: Network, frames: number, frame: Frame): Promise<LayerProfile[]> {
  const per: number[][] = net.layers.map(() => []);
  o.profile!(true);
  for (let i = 0; i < frames; i++) {
    await o.engine.infer(frame);
    o.profile!(true).forEach((ns, j) => per[j].push(ns / 1e6));
  }
  o.profile!(false);
  const info = o.layerInfo?.();
  return net.layers.map((l, i) => {
    const ms = stats(per[i]).median;
    const macs = info ? info.macs[i] : 0;
    const bytes = info ? info.bytes[i] : 0;
    return {
      index: i,
      kind: layerKind(net, i),
      out: `${l.out.c}x${l.out.h}x${l.out.w}`,
      kernel: info ? info.kernel[i] : '',
      ms,
      macs,
      bytes,
      gmacPerS: ms > 0 ? macs / ms / 1e6 : 0,
      gbPerS: ms > 0 ? bytes / ms / 1e6 : 0,
    };
  });
}

/** The human-readable report. */
export function formatBench(r: BenchResult): string {
  const f2 = (v: number) => v.toFixed(2);
  const lines = [
    `${r.network} ${r.input.width}x${r.input.height}: ${r.frames} frames after ${r.warmup} warm-up, end to end on ${path.basename(r.image)}`,
    `${'engine'.padEnd(7)}${'threads'.padStart(8)}  ${'isa'.padEnd(13)}${'network ms'.padStart(11)}${'p10-p90'.padStart(14)}${'cpu ms'.padStart(8)}${'pre ms'.padStart(9)}${'post ms'.padStart(9)}${'e2e ms'.padStart(9)}${'net fps'.padStart(9)}${'e2e fps'.padStart(9)}`,
  ];
  for (const e of r.engines) {
    lines.push(
      `${e.engine.padEnd(7)}${String(e.threads).padStart(8)}  ${(e.isa ?? '-').padEnd(13)}${f2(e.networkMs.median).padStart(11)}${`${f2(e.networkMs.p10)}-${f2(e.networkMs.p90)}`.padStart(14)}${f2(e.networkCpuMs.median).padStart(8)}` +
        `${f2(e.preMs.median).padStart(9)}${f2(e.postMs.median).padStart(9)}${f2(e.endToEndMs.median).padStart(9)}${e.fps.network.toFixed(0).padStart(9)}${e.fps.endToEnd.toFixed(0).padStart(9)}`,
    );
    if (e.randomWeights) lines.push(`        (int ran random weights of the cfg's shapes: speed only)`);
    if (e.layerKinds) {
      for (const [k, v] of Object.entries(e.layerKinds).sort((a, b) => b[1] - a[1])) if (v >= 0.005) lines.push(`        ${k.padEnd(16)} ${f2(v)} ms`);
    }
    if (e.layers) {
      lines.push(
        `        ${'layer'.padStart(5)}  ${'kind'.padEnd(15)}${'out'.padEnd(12)}${'kernel'.padEnd(30)}${'ms'.padStart(7)}${'MMAC'.padStart(8)}${'KB'.padStart(8)}${'GMAC/s'.padStart(8)}${'GB/s'.padStart(7)}`,
      );
      for (const l of e.layers) {
        if (l.ms < 0.0005 && l.macs === 0) continue;  // aliases and fused layers
        lines.push(
          `        ${String(l.index).padStart(5)}  ${l.kind.padEnd(15)}${l.out.padEnd(12)}${l.kernel.padEnd(30)}${l.ms.toFixed(3).padStart(7)}${(l.macs / 1e6).toFixed(2).padStart(8)}` +
            `${(l.bytes / 1024).toFixed(0).padStart(8)}${l.gmacPerS.toFixed(1).padStart(8)}${l.gbPerS.toFixed(1).padStart(7)}`,
        );
      }
    }
  }
  if (r.ratio) {
    lines.push(`${r.engines[r.engines.length - 1].engine}/float: network ${r.ratio.network.toFixed(3)} (cpu time ${r.ratio.networkCpu.toFixed(3)}), end to end ${r.ratio.endToEnd.toFixed(3)}`);
  }
  if (r.threadRatio) {
    const tr = r.threadRatio;
    lines.push(`${tr.threads} threads / ${tr.againstThreads}: network ${tr.network.toFixed(3)}, end to end ${tr.endToEnd.toFixed(3)}`);
  }
  lines.push(`peak RSS ${r.peakRssMb.toFixed(0)} MB`);
  return lines.join('\n') + '\n';
}
