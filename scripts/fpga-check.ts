/**
 * The full bit-exactness check of the fpga engine: real weight sets quantized on calibration
 * images, every image of an evaluation list through bridge-host (the C model of the accelerator on
 * a pty) and through the CPU integer engine; the raw head integers must be identical on every frame.
 * Results go to docs/benchmarks/fpga.md (section "Bit-exact against the int engine") with --write.
 *
 *   npx tsx scripts/fpga-check.ts [--data LIST] [--limit N] [--calib N] [--accel model|rtl] [--write]
 *
 * Weight sets: Yolo-Fastest-1.1 at Nw 8 and 4, Yolo-Fastest-1.1-xl at Nw 6 (per channel,
 * zero-centered, the quantizer's defaults, calibrated on the first --calib images of calib.txt).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadDarknet } from '../src/model/darknet.js';
import { quantizeDefaults, quantizeModel } from '../src/quant/quantize.js';
import { writeZqw, readZqw } from '../src/qnet/zqw.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { readImageList } from '../src/eval/dataset.js';
import { openIntEngine } from '../src/engine/int.js';
import { FpgaEngine } from '../src/engine/fpga/engine.js';
import { dataPath, repoRoot } from '../src/util/paths.js';
import { buildFirmware, startBridge } from '../test/helpers/bridge.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string): string => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const list = opt('--data', dataPath('coco-val', 'dev.txt'));
const limit = Number(opt('--limit', '0')) || Infinity;
const calibN = Number(opt('--calib', '64'));
const accel = opt('--accel', 'model');
const write = argv.includes('--write');

const configs = [
  { model: 'yolo-fastest-1.1', wbits: 8 },
  { model: 'yolo-fastest-1.1', wbits: 4 },
  { model: 'yolo-fastest-1.1-xl', wbits: 6 },
];

buildFirmware();
const images = readImageList(list).slice(0, limit);
const calib = readImageList(dataPath('coco-val', 'calib.txt')).slice(0, calibN);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'zeroq-fpga-check-'));
const rows: string[] = [];
let failures = 0;
try {
  for (const c of configs) {
    const cfg = dataPath('models', 'yolo-fastest', `${c.model}.cfg`);
    const model = await loadDarknet(cfg);
    const frames = await Promise.all(calib.map((im) => prepareFrame(im.path, model.net).then((p) => p.frame)));
    const t0 = Date.now();
    const { qnet: q0 } = await quantizeModel(model, frames, { ...quantizeDefaults(), wbits: c.wbits });
    const zqwPath = path.join(tmp, `${c.model}-w${c.wbits}.zqw`);
    writeFileSync(zqwPath, writeZqw(q0, { source: { model: c.model }, calibration: { images: calib.length } }));
    const { qnet, manifest } = await readZqw(zqwPath);
    console.error(`${manifest.id}: quantized in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    const link = path.join(tmp, `link-${c.model}-${c.wbits}`);
    const bridge = await startBridge(link, ['--accel', accel, '--mem', '64']);
    const int = openIntEngine(qnet, { threads: 1, modelId: manifest.id });
    const fpga = await FpgaEngine.open(qnet, { device: link, fallback: openIntEngine(qnet, { threads: 1 }), requireDevice: true, modelId: manifest.id });
    let bad = 0;
    let first = '';
    let fpgaMs = 0;
    const t1 = Date.now();
    for (const [i, im] of images.entries()) {
      const { frame } = await prepareFrame(im.path, qnet.net, { keepFloat: false });
      const want = (await int.infer(frame)).map((h) => Buffer.from(h.raw!.buffer, h.raw!.byteOffset, h.raw!.byteLength).toString('base64'));
      const s = performance.now();
      const got = (await fpga.infer(frame)).map((h) => Buffer.from(h.raw!.buffer, h.raw!.byteOffset, h.raw!.byteLength).toString('base64'));
      fpgaMs += performance.now() - s;
      if (got.length !== want.length || got.some((g, k) => g !== want[k])) {
        bad++;
        if (!first) first = path.basename(im.path);
      }
      if ((i + 1) % 50 === 0) console.error(`  ${i + 1}/${images.length}, ${bad} differ`);
    }
    const st = fpga.status();
    const n = images.length;
    const mib = (v: number): string => (v / 2 ** 20).toFixed(2);
    rows.push(
      `| ${manifest.id} | ${n} | ${n - bad} | ${bad}${first ? ` (first: ${first})` : ''} | ${st.counters.deviceFrames} / ${st.counters.fallbackFrames} | ${st.counters.retries} | ` +
        `${(st.imageBytes / 1024).toFixed(0)} KiB | ${mib(st.caps?.memUsed ?? 0)} MiB | ${(st.counters.deviceUs / 1000 / n).toFixed(0)} ms | ` +
        `${(fpgaMs / n).toFixed(0)} ms | ${(st.counters.accelCycles / n / 1e6).toFixed(1)} M | ${(st.counters.bytesOut / n / 1024).toFixed(0)} / ${(st.counters.bytesIn / n / 1024).toFixed(0)} KiB |`,
    );
    failures += bad + st.counters.fallbackFrames;
    console.error(`${manifest.id}: ${bad} of ${n} frames differ, ${((Date.now() - t1) / 1000).toFixed(0)} s`);
    await fpga.close();
    await int.close();
    await bridge.stop();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const section = `## Bit-exact against the int engine

\`npx tsx scripts/fpga-check.ts --accel ${accel}${limit < Infinity ? ` --limit ${limit}` : ''} --write\`: every image of
${list.startsWith(dataPath()) ? path.relative(dataPath(), list) : list} (${images.length}${limit < Infinity ? ', the first of the list' : ''}) through bridge-host (the ${accel === 'model' ? 'C model' : 'Verilated RTL'} of the accelerator, unthrottled pty)
and through the CPU integer engine, same weight set (quantizer defaults: per channel, zero-centered,
16-bit heads, calibrated on the first ${calib.length} images of calib.txt), same frame: the raw head
integers compared frame by frame. Retries are requests sent again after their deadline passed
without an answer (on this clean link: a frame that computed longer than its expected time).

| weight set | frames | identical frames | frames that differ | on device / on CPU (fallbacks) | retries | device image | accelerator memory used | device time per frame | host time per frame | accelerator cycles per frame (nominal) | bytes per frame out / in |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

Device time is bridge-host's own (the C model computing on this PC), not an FPGA's; the model's
cycle counts are its nominal 8-multiplier figure. Host time per frame includes the pty transfers.
`;
process.stdout.write(section);
if (write) {
  const doc = path.join(repoRoot, 'docs', 'benchmarks', 'fpga.md');
  const start = '<!-- fpga-check:start -->';
  const end = '<!-- fpga-check:end -->';
  const block = `${start}\n${section}${end}\n`;
  let text = existsSync(doc) ? readFileSync(doc, 'utf8') : '# The FPGA path\n\n';
  text = text.includes(start) ? text.replace(new RegExp(`${start}[\\s\\S]*?${end}\\n?`), block) : `${text.trimEnd()}\n\n${block}`;
  writeFileSync(doc, text);
  console.error(`written to ${path.relative(repoRoot, doc)}`);
}
process.exitCode = failures === 0 ? 0 : 1;
