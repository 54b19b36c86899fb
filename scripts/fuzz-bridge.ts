/**
 * Fuzzes the bridge firmware's byte input (frame parser, COBS, CRC), its packet handlers and its
 * device-image loader with libFuzzer (firmware-bridge/fuzz/fuzz_frame.c, clang with address and
 * undefined-behaviour sanitizers), for a number of inputs, and writes the figures into
 * docs/benchmarks/fuzz.md (section "Bridge firmware").
 *
 *   npx tsx scripts/fuzz-bridge.ts [--runs N] [--jobs J] [--write]
 *
 * With --jobs J, J fuzzer processes share the corpus and run runs/J inputs each.
 *
 * Seeds: a packet on the wire, framed packets of every request type, and device images of a small
 * network with every layer kind (made by the encoder the fpga engine uses).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { encodePacket, crc } from '../src/engine/fpga/framing.js';
import { encodeDeviceImage } from '../src/engine/fpga/image.js';
import { Msg } from '../src/engine/fpga/protocol.js';
import { repoRoot } from '../src/util/paths.js';
import { NetBuilder, randomQNet, rng } from '../test/helpers/random-qnet.js';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? NaN) || 10_000_000;
const write = args.includes('--write');
const jobs = Math.max(1, Number(args[args.indexOf('--jobs') + 1] ?? NaN) || 1);
const fw = path.join(repoRoot, 'firmware-bridge');
const build = path.join(fw, 'build');

execFileSync('make', ['-s', '-C', fw, 'fuzz'], { stdio: 'inherit' });
const seeds = path.join(build, 'fuzz-seeds');
const corpus = path.join(build, 'fuzz-corpus');
mkdirSync(seeds, { recursive: true });
mkdirSync(corpus, { recursive: true });

/** Mode-1 input: [type, len lo, len hi, payload]… framed by the harness. */
function packets(mode: number, list: [number, Buffer][]): Buffer {
  return Buffer.concat([Buffer.of(mode), ...list.map(([t, p]) => Buffer.concat([Buffer.of(t, p.length & 0xff, p.length >> 8), p]))]);
}
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const hello = Buffer.of(1, 1, 0x08, 0x10);
const frame = Buffer.of(10, 20, 30, 200, 0, 255); // the tiny image's 1x2 input
const seedFiles: Record<string, Buffer> = {
  'wire-hello': Buffer.concat([Buffer.of(0), encodePacket(Msg.HELLO, 0, 1, hello), encodePacket(Msg.STATS, 0, 2)]),
  'packets-upload': packets(1, [
    [Msg.HELLO, hello],
    [Msg.UPLOAD_BEGIN, Buffer.concat([u32(252), Buffer.alloc(32, 7)])],
    [Msg.UPLOAD_DATA, Buffer.concat([Buffer.of(1, 0), u32(0), Buffer.alloc(64, 3)])],
    [Msg.UPLOAD_END, Buffer.of(1, 0)],
  ]),
  'packets-frame': packets(3, [
    [Msg.FRAME_DATA, Buffer.concat([Buffer.of(0), u32(0), frame])],
    [Msg.INFER, Buffer.concat([Buffer.of(0, 0, 0, 0), u32(9), u32(crc(frame))])],
    [Msg.READ, Buffer.concat([Buffer.of(0, 0, 4, 0), u32(9), u32(0)])],
    [Msg.READ, Buffer.concat([Buffer.of(0, 1, 8, 0), u32(9), u32(0)])],
    [Msg.PING, Buffer.from('ping')],
  ]),
};
// Device images of small networks with every layer kind the firmware runs.
const b = new NetBuilder({ c: 3, h: 12, w: 10 }, 'fuzz');
b.conv({ filters: 8, size: 3, activation: 'leaky', from: -1 });
const dw = b.conv({ filters: 8, size: 3, stride: 2, groups: 8, activation: 'linear' });
b.maxpool(2, 1);
const c3 = b.conv({ filters: 4, size: 1, activation: 'relu' });
b.conv({ filters: 4, size: 3, groups: 2, activation: 'mish' });
b.shortcut(c3, 'leaky');
b.route([5, dw], 2, 1);
b.upsample(2);
b.dropout();
b.conv({ filters: 6, size: 1, activation: 'logistic' });
b.yolo();
const net = b.build();
for (const seed of [1, 2, 3]) {
  seedFiles[`image-${seed}`] = Buffer.concat([Buffer.of(4), encodeDeviceImage(randomQNet(net, rng(seed), { p16: 0.5, wbits: [2, 8] }), `fuzz-${seed}`)]);
}
for (const [name, data] of Object.entries(seedFiles)) writeFileSync(path.join(seeds, name), data);

const t0 = Date.now();
/** One fuzzer process; resolves with its exit code and its output (the tail of it). */
function fuzzOnce(i: number, n: number): Promise<{ code: number; log: string }> {
  const child = spawn(path.join(build, 'fuzz-frame'), [`-runs=${n}`, `-seed=${i + 1}`, '-print_final_stats=1', '-timeout=10', '-rss_limit_mb=2048', `-artifact_prefix=${build}/`, corpus, seeds], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d: Buffer) => {
    log += d.toString();
    if (log.length > 4e6) log = log.slice(-2e6);
  });
  return new Promise((r) => child.on('exit', (c) => r({ code: c ?? 1, log })));
}
const results = await Promise.all(Array.from({ length: jobs }, (_, i) => fuzzOnce(i, Math.ceil(runs / jobs))));
const seconds = (Date.now() - t0) / 1000;
const code = Math.max(...results.map((x) => x.code));
const stat = (k: string): number[] => results.map((x) => Number(new RegExp(`stat::${k}:\\s+(\\d+)`).exec(x.log)?.[1] ?? NaN));
const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0);
const covs = results.map((x) => [...x.log.matchAll(/cov: (\d+) ft: (\d+) corp: (\d+)/g)].pop()).filter((m): m is RegExpExecArray => !!m);
const cov = covs.sort((a, b) => Number(b[1]) - Number(a[1]))[0];
const log = results.map((x) => x.log).join('\n');
const crashes = (log.match(/==\d+==ERROR|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)|deadly signal|timeout after/g) ?? []).length;
const clang = execFileSync('clang', ['--version'], { encoding: 'utf8' }).split('\n')[0];
const section = `## Bridge firmware: frame parser, packet handlers, device-image loader (libFuzzer)

\`npx tsx scripts/fuzz-bridge.ts --runs ${runs}${jobs > 1 ? ` --jobs ${jobs}` : ''} --write\` — target firmware-bridge/fuzz/fuzz_frame.c
(${clang}, \`-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all\`), ${jobs} process${jobs > 1 ? 'es sharing the corpus' : ''}. Inputs go
to the link as raw bytes, as well-framed packets of any content (every handler, with and without a
loaded image), or as a device image that is checked, loaded and, when it loads, run on a frame.
Seeds: ${Object.keys(seedFiles).length} (a HELLO on the wire, upload and frame packet sequences, three
device images of a 11-layer network with every layer kind).

| inputs | time | inputs/s | coverage (edges / features) | corpus | peak RSS | crashes, sanitizer reports, timeouts |
|---:|---:|---:|---:|---:|---:|---:|
| ${sum(stat('number_of_executed_units')).toLocaleString('en')} | ${(seconds / 60).toFixed(1)} min | ${sum(stat('average_exec_per_sec')).toLocaleString('en')} | ${cov ? `${cov[1]} / ${cov[2]}` : '?'} | ${cov?.[3] ?? '?'} | ${Math.max(...stat('peak_rss_mb'))} MB | ${crashes}${code !== 0 ? ` (exit ${code})` : ''} |
`;
process.stdout.write(`\n${section}`);
// docs/benchmarks/fpga.md carries the outcome in short, beside the rest of the bridge's figures.
const summary = `## The bridge firmware under fuzzing

\`npx tsx scripts/fuzz-bridge.ts --runs ${runs}${jobs > 1 ? ` --jobs ${jobs}` : ''} --write\`: ${sum(stat('number_of_executed_units')).toLocaleString('en')} inputs (raw link bytes, framed
packets of every request type, device images) through the firmware's frame parser, packet handlers
and image loader under address and undefined-behaviour sanitizers in ${(seconds / 60).toFixed(1)} min: ${crashes} crashes,
sanitizer reports or timeouts${code !== 0 ? ` (exit ${code})` : ''}. Coverage and corpus: docs/benchmarks/fuzz.md.
`;
/** Replaces the text between `<!-- key:start -->` and `<!-- key:end -->` in a doc, or appends it. */
function splice(file: string, key: string, body: string, title: string): void {
  const doc = path.join(repoRoot, 'docs', 'benchmarks', file);
  const start = `<!-- ${key}:start -->`;
  const end = `<!-- ${key}:end -->`;
  const block = `${start}\n${body}${end}\n`;
  let text = existsSync(doc) ? readFileSync(doc, 'utf8') : `# ${title}\n\n`;
  text = text.includes(start) ? text.replace(new RegExp(`${start}[\\s\\S]*?${end}\\n?`), block) : `${text.trimEnd()}\n\n${block}`;
  writeFileSync(doc, text);
  console.log(`written to ${path.relative(repoRoot, doc)}`);
}
if (write) {
  splice('fuzz.md', 'bridge-fuzz', section, 'Fuzzing');
  splice('fpga.md', 'bridge-fuzz-summary', summary, 'The FPGA path');
}
process.exitCode = code === 0 && crashes === 0 ? 0 : 1;
