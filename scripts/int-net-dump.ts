// Writes a weight set's network in the file format of src/kernels/netfile.h (descriptors and
// conv parameters exactly as the int engine hands them to the native planner), for the native
// tools that run without Node (src/kernels/bench_main.cc, scripts/arm64-counts.sh).
//   npx tsx scripts/int-net-dump.ts <set.zqw> <out file>
import { writeFileSync } from 'node:fs';
import { readZqw } from '../src/qnet/zqw.js';
import { describeLayer, nativeConv } from '../src/engine/int/native.js';

const [file, out] = process.argv.slice(2);
if (!file || !out) {
  console.error('usage: npx tsx scripts/int-net-dump.ts <set.zqw> <out file>');
  process.exit(2);
}
const qnet = (await readZqw(file)).qnet;
const words = (a: ArrayLike<number>): Buffer => Buffer.from(Int32Array.from(a).buffer);
const { c, h, w } = qnet.net.input;
const parts: Buffer[] = [words([qnet.net.layers.length, c, h, w])];
for (const l of qnet.net.layers) {
  const d = describeLayer(qnet, l);
  parts.push(words([d.length]), words(d));
  const cv = nativeConv(qnet, l.index);
  if (!cv) {
    parts.push(words([0]));
    continue;
  }
  parts.push(words([1, cv.q.length, cv.fw.length, cv.lut?.length ?? 0]));
  parts.push(Buffer.from(cv.q.buffer, cv.q.byteOffset, cv.q.length), Buffer.alloc((4 - (cv.q.length % 4)) % 4));
  parts.push(words(cv.fw), words(cv.m), words(cv.fm), words(cv.bias));
  if (cv.lut) parts.push(words(cv.lut));
}
writeFileSync(out, Buffer.concat(parts));
console.log(`${qnet.net.name}: ${qnet.net.layers.length} layers -> ${out}`);
