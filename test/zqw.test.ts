import t from 'tap';

const tap = t;
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { detachedSignature, parseZqw, readZqw, signZqw, writeZqw, ZQW_MAGIC } from '../src/qnet/zqw.js';
import { architectureHash } from '../src/qnet/arch.js';
import { packedBytes, packWeights, unpackWeights } from '../src/qnet/pack.js';
import { loadDarknet, parseCfgFile } from '../src/model/darknet.js';
import { quantizeConvs } from '../src/quant/quantize.js';
import { formatsFromStats, outputBits, ActivationStats } from '../src/quant/calibrate.js';
import { dataPath } from '../src/util/paths.js';
import { NetBuilder, randomQNet, rng } from './helpers/random-qnet.js';
import type { QNet } from '../src/qnet/types.js';

const META = { source: { model: 'test' }, created: '2026-01-01T00:00:00.000Z' };

function smallQNet(seed = 3): QNet {
  const b = new NetBuilder({ c: 3, h: 8, w: 8 }, 'small');
  b.conv({ filters: 8, size: 3, stride: 2, from: -1 });
  b.conv({ filters: 8, size: 3, groups: 8 });
  b.conv({ filters: 6, size: 1, pad: 0, activation: 'linear' });
  b.maxpool(2, 1);
  b.route([3, 0]);
  b.conv({ filters: 18, size: 1, pad: 0, activation: 'linear' });
  b.yolo();
  return randomQNet(b.build(), rng(seed), { p16: 1 });
}

function sameQNet(t: Pick<typeof tap, 'same' | 'ok' | 'equal'>, a: QNet, b: QNet): void {
  t.same(b.net, a.net, 'network description');
  t.same(b.formats, a.formats, 'formats');
  a.convs.forEach((c, i) => {
    const d = b.convs[i];
    if (!c) return t.equal(d, undefined, `layer ${i} has no conv`);
    t.ok(d, `layer ${i} conv`);
    for (const k of ['q', 'fw', 'm', 'fm', 'bias'] as const) {
      t.ok(Buffer.from(c[k].buffer, c[k].byteOffset, c[k].byteLength).equals(Buffer.from(d![k].buffer, d![k].byteOffset, d![k].byteLength)), `layer ${i} ${k} bit-identical`);
    }
    t.same([d!.wbits, d!.perChannel, d!.zeroCentered], [c.wbits, c.perChannel, c.zeroCentered]);
  });
}

t.test('sub-byte packing round-trips every width 2..8, including the extremes', async (t) => {
  const r = rng(11);
  for (let bits = 2; bits <= 8; bits++) {
    const lo = -(2 ** (bits - 1));
    const hi = 2 ** (bits - 1) - 1;
    for (const n of [1, 7, 8, 9, 1001]) {
      const q = Int8Array.from({ length: n }, (_, i) => (i === 0 ? lo : i === 1 ? hi : lo + Math.floor(r() * (hi - lo + 1))));
      const packed = packWeights(q, bits);
      t.equal(packed.length, Math.ceil((n * bits) / 8), `Nw=${bits} n=${n}: ceil(n·Nw/8) bytes`);
      t.same(Array.from(unpackWeights(packed, n, bits)), Array.from(q), `Nw=${bits} n=${n}`);
    }
  }
  // The bit order: value i at bits [i·Nw, (i+1)·Nw), little-endian, two's complement.
  // 1 = 001, -1 = 111, 2 = 010, -2 = 110, written low bit first: bits 0..11 = 100 111 010 011.
  t.same(Array.from(packWeights(Int8Array.of(1, -1, 2, -2), 3)), [0b10111001, 0b00001100]);
  t.same(Array.from(packWeights(Int8Array.of(-8, 7), 4)), [0x78]);
  t.throws(() => packWeights(Int8Array.of(4), 3), { code: 'pack-range' });
  t.equal(packedBytes(10, 6), 8);
});

t.test('write → read gives a bit-identical QNet (random QNet with a 16-bit head)', async (t) => {
  const qnet = smallQNet();
  for (const deflate of [true, false]) {
    const buf = writeZqw(qnet, { ...META, deflate });
    const { qnet: back, manifest } = parseZqw(buf);
    sameQNet(t, qnet, back);
    t.equal(manifest.architecture, architectureHash(qnet.net));
    t.equal(manifest.created, META.created);
    t.match(manifest.id, /^small-w\d/);
  }
  t.ok(writeZqw(qnet, META).equals(writeZqw(qnet, META)), 'the same QNet and meta give the same bytes');
});

t.test('rejections: truncated, flipped byte, wrong version, bad magic, trailing bytes, wrong architecture', async (t) => {
  const qnet = smallQNet();
  const buf = writeZqw(qnet, META);
  for (const n of [0, 10, 23, 24, 100, buf.length - 37, buf.length - 1]) {
    t.throws(() => parseZqw(buf.subarray(0, n)), { code: 'zqw-truncated' }, `cut at ${n} bytes`);
  }
  for (const at of [30, Math.floor(buf.length / 2), buf.length - 40]) {
    const bad = Buffer.from(buf);
    bad[at] ^= 0x10;
    t.throws(() => parseZqw(bad), { code: 'zqw-digest' }, `byte ${at} flipped`);
  }
  const v2 = Buffer.from(buf);
  v2.writeUInt16LE(2, 8);
  t.throws(() => parseZqw(v2), { code: 'zqw-version', message: /version 2; this zeroq reads version 1/ });
  const magic = Buffer.from(buf);
  magic[1] = 0x41;
  t.throws(() => parseZqw(magic), { code: 'zqw-magic' });
  t.throws(() => parseZqw(Buffer.concat([buf, Buffer.from([0])])), { code: 'zqw-trailing' });
  t.ok(ZQW_MAGIC.equals(buf.subarray(0, 8)));

  const arch = architectureHash(qnet.net);
  t.ok(parseZqw(buf, { expectArch: arch }), 'the right architecture is accepted');
  const other = smallQNet();
  other.net.layers[1] = { ...other.net.layers[1], activation: 'relu' } as typeof other.net.layers[1];
  t.throws(() => parseZqw(buf, { expectArch: architectureHash(other.net) }), { code: 'zqw-arch', message: /expected sha256:/ });
});

/** Rewrites a file's manifest and fixes the digest: what a buggy or malicious writer could produce. */
function withManifest(buf: Buffer, edit: (m: Record<string, unknown>) => void): Buffer {
  const ml = buf.readUInt32LE(12);
  const pl = buf.readUInt32LE(16);
  const p = (24 + ml + 3) & ~3;
  const m = JSON.parse(inflateRawSync(buf.subarray(24, 24 + ml)).toString()) as Record<string, unknown>;
  edit(m);
  const stored = deflateRawSync(Buffer.from(JSON.stringify(m)));
  const header = Buffer.from(buf.subarray(0, 24));
  header.writeUInt32LE(stored.length, 12);
  const pad = Buffer.alloc(((24 + stored.length + 3) & ~3) - 24 - stored.length);
  const body = Buffer.concat([header, stored, pad, buf.subarray(p, p + pl)]);
  return Buffer.concat([body, createHash('sha256').update(body).digest(), Buffer.alloc(4)]);
}

t.test('a consistent digest does not save a bad manifest: architecture, schema, payload, shapes', async (t) => {
  const buf = writeZqw(smallQNet(), META);
  const net = (m: Record<string, unknown>) => m.network as { layers: { out: { c: number }; kind: string; filters?: number }[] };
  t.throws(() => parseZqw(withManifest(buf, (m) => (net(m).layers[2].out.c = 7))), { code: 'zqw-arch', message: /hashes to/ }, 'edited network, stale hash');
  t.throws(() => parseZqw(withManifest(buf, (m) => delete m.layers)), { code: 'zqw-manifest', message: /manifest\.layers/ });
  t.throws(() => parseZqw(withManifest(buf, (m) => (m.payloadBytes = 12))), { code: 'zqw-payload' });
  t.throws(
    () =>
      parseZqw(
        withManifest(buf, (m) => {
          net(m).layers[2].out.c = 7;
          net(m).layers[2].filters = 7;
          m.architecture = architectureHash(m.network as QNet['net']);
        }),
      ),
    { code: 'zqw-network', message: /layer 3 \(maxpool\): output 6x/ },
    'shapes that do not follow from the layers are refused',
  );
  t.throws(() => parseZqw(withManifest(buf, (m) => ((m.layers as { conv?: { fw: number[] } }[])[0].conv!.fw.pop()))), { code: 'zqw-payload', message: /fw has 7 entries/ });
});

t.test('signatures: embedded and detached Ed25519, wrong key, unsigned', async (t) => {
  const buf = writeZqw(smallQNet(), META);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const signed = signZqw(buf, privateKey);
  t.equal(signed.length, buf.length + 97);
  t.ok(parseZqw(signed, { trust: [publicKey] }).signature, 'embedded signature verifies');
  t.throws(() => parseZqw(signed, { trust: [other.publicKey] }), { code: 'zqw-signature', message: /not trusted/ });
  t.ok(parseZqw(signed, { trust: [other.publicKey, publicKey] }).signature, 'any trusted key of several verifies');
  t.throws(() => parseZqw(signed, { trust: [] }), { code: 'zqw-signature', message: /not trusted/ }, 'an empty trust list trusts nobody');
  t.ok(parseZqw(signed).signature, 'without a trust list the signature is parsed, not checked');
  const bent = Buffer.from(signed);
  bent[bent.length - 5] ^= 0x40;
  t.throws(() => parseZqw(bent, { trust: [publicKey] }), { code: 'zqw-signature', message: /does not verify/ }, 'corrupted signature bytes');
  t.throws(() => parseZqw(buf, { trust: [publicKey] }), { code: 'zqw-signature', message: /not signed/ });
  const sig = detachedSignature(buf, privateKey);
  t.ok(parseZqw(buf, { trust: [publicKey], detachedSignature: sig }).signature, 'detached signature verifies');
  const forged = Buffer.from(sig);
  forged[60] ^= 1;
  t.throws(() => parseZqw(buf, { trust: [publicKey], detachedSignature: forged }), { code: 'zqw-signature', message: /does not verify/ });
});

t.test('real model: yolo-fastest-1.1 at Nw = 6 round-trips and takes at most 22% of the darknet weights', async (t) => {
  const cfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
  const model = await loadDarknet(cfg);
  // Formats from made-up statistics: the file layout does not depend on calibration.
  const stats = new ActivationStats(model.net);
  for (const l of model.net.layers) stats.add(l.index, Float32Array.of(-4, 6));
  const formats = formatsFromStats(model.net, stats, outputBits(model.net, 8, 16), 'minmax');
  const { convs } = quantizeConvs(model, formats, () => ({ wbits: 6, perChannel: true, zeroCenter: true }));
  const qnet: QNet = { net: model.net, formats, convs };
  const buf = writeZqw(qnet, { source: { model: model.net.name }, classes: ['person'] });
  const ratio = buf.length / model.weightsBytes;
  t.ok(ratio <= 0.22, `${buf.length} bytes = ${(100 * ratio).toFixed(1)}% of ${model.weightsBytes}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'zqw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'w6.zqw');
  writeFileSync(file, buf);
  const back = await readZqw(file, { expectArch: architectureHash(parseCfgFile(cfg)) });
  sameQNet(t, qnet, back.qnet);
  t.equal(back.manifest.quantization.avgBitsPerWeight, 6);
  await t.rejects(readZqw(path.join(dir, 'missing.zqw')), { code: 'zqw-read' });
});
