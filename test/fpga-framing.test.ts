// The host side of the bridge's framing: COBS on the vectors of the firmware's tests, CRC-32,
// packets through the decoder in pieces, and the decoder's refusals (corruption, length, overrun).
import t from 'tap';
import { cobsDecode, cobsEncode, crc, encodePacket, FrameDecoder, wireBytes } from '../src/engine/fpga/framing.js';
import { rng } from './helpers/random-qnet.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

t.test('COBS vectors and round trips', (t) => {
  const cases: [number[], number[]][] = [
    [[0], [1, 1]],
    [[0, 0], [1, 1, 1]],
    [[0x11, 0x22, 0, 0x33], [3, 0x11, 0x22, 2, 0x33]],
    [[0x11, 0x22, 0x33, 0x44], [5, 0x11, 0x22, 0x33, 0x44]],
    [[0x11, 0, 0, 0], [2, 0x11, 1, 1, 1]],
    [[], [1]],
  ];
  for (const [raw, enc] of cases) {
    t.equal(hex(cobsEncode(Uint8Array.from(raw))), hex(Uint8Array.from(enc)), `encode ${hex(Uint8Array.from(raw))}`);
    t.equal(hex(cobsDecode(Uint8Array.from(enc))!), hex(Uint8Array.from(raw)), `decode ${hex(Uint8Array.from(enc))}`);
  }
  const run = Uint8Array.from({ length: 254 }, (_, i) => i + 1);
  t.equal(hex(cobsEncode(run)), hex(Uint8Array.from([0xff, ...run, 1])), '254 non-zero bytes: a full block, then an empty one');
  const r = rng(4);
  for (let k = 0; k < 300; k++) {
    const a = Uint8Array.from({ length: Math.floor(r() * 1200) }, () => (r() < 0.2 ? 0 : Math.floor(r() * 256)));
    const e = cobsEncode(a);
    if (e.includes(0) || hex(cobsDecode(e)!) !== hex(a) || e.length > a.length + Math.floor(a.length / 254) + 1) {
      t.fail(`round trip ${k}`);
      break;
    }
  }
  t.equal(cobsDecode(Uint8Array.from([5, 1, 2])), undefined, 'a code past the end is refused');
  t.equal(cobsDecode(Uint8Array.from([3, 1, 0, 2])), undefined, 'a zero inside is refused');
  t.end();
});

t.test('CRC-32 and packets through the decoder', (t) => {
  t.equal(crc(Buffer.from('123456789')), 0xcbf43926, 'the CRC-32 check value');
  const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));
  const wire = Buffer.concat([Buffer.from([0x55, 0x13, 0, 0]), encodePacket(0xa1, 0, 0xbeef, payload), encodePacket(0x82, 4, 2)]);
  t.ok(encodePacket(0x11, 0, 1, Buffer.alloc(4096, 0x5a)).length <= wireBytes(4096), 'wireBytes bounds a packet');
  const d = new FrameDecoder(4104);
  const got = [];
  for (let i = 0; i < wire.length; i += 7) got.push(...d.push(wire.subarray(i, i + 7)));
  t.equal(got.length, 2, 'two packets after garbage, fed in pieces');
  t.same([got[0].type, got[0].status, got[0].seq], [0xa1, 0, 0xbeef]);
  t.ok(got[0].payload.equals(payload), 'payload intact');
  t.same([got[1].type, got[1].status, got[1].seq, got[1].payload.length], [0x82, 4, 2, 0]);
  t.equal(d.counters.framingErrors, 1, 'the garbage counted once');
  const bad = encodePacket(0xa0, 0, 9, Buffer.from('hello'));
  bad[4] ^= 0x20;
  t.equal(d.push(bad).length, 0, 'a corrupted packet is dropped');
  t.equal(d.counters.crcErrors + d.counters.framingErrors, 2, 'and counted');
  const long = Buffer.concat([Buffer.alloc(5000, 0x41), Buffer.of(0), encodePacket(0xa2, 0, 3)]);
  t.same(d.push(long).map((p) => p.seq), [3], 'an overrun, then back in step');
  t.equal(d.counters.overruns, 1);
  t.end();
});
