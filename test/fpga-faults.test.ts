// The fpga engine on a link that goes wrong: bridge-host behind the fault relay (its own pty pair),
// corrupting bytes, dropping frames, stalling, closing the port mid-response, unplugging; and a
// bridge killed and restarted in the middle of a weight upload. Every result must be the
// reference's integers (from the device or from the CPU fallback), every fault counted, and the
// engine back on the device within 1 s of the fault ending.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runReference } from '../src/engine/int-reference.js';
import { openIntEngine } from '../src/engine/int.js';
import { FpgaEngine, type LinkState } from '../src/engine/fpga/engine.js';
import type { Frame } from '../src/engine/engine.js';
import type { QNet } from '../src/qnet/types.js';
import { buildFirmware, startBridge, startRelay, tempDir, type LineProcess, type Relay } from './helpers/bridge.js';
import { NetBuilder, randomFrame, randomQNet, rng } from './helpers/random-qnet.js';

buildFirmware();

function smallNet() {
  const b = new NetBuilder({ c: 3, h: 96, w: 96 }, 'faults');
  b.conv({ filters: 16, size: 3, stride: 2, from: -1 }); // 48x48
  b.conv({ filters: 32, size: 3, stride: 2 }); // 24x24
  const p = b.maxpool(2, 2); // 12x12
  b.conv({ filters: 18, size: 1, activation: 'linear' });
  b.yolo();
  b.upsample(2, p); // 24x24
  b.conv({ filters: 18, size: 3, activation: 'linear' });
  b.yolo();
  return b.build();
}

const net = smallNet();
const r = rng(11);
const qnet = randomQNet(net, r, { p16: 1 });
const frames: Frame[] = Array.from({ length: 4 }, () => randomFrame(net, r));
const want = frames.map((f) => runReference(qnet, f).heads.map((h) => Array.from(h.raw!)));

interface Rig {
  bridge: LineProcess;
  relay: Relay;
  eng: FpgaEngine;
}

async function rig(t: Test, q: QNet = qnet): Promise<Rig> {
  const { dir, remove } = tempDir();
  const bridge = await startBridge(path.join(dir, 'bridge'));
  const relay = await startRelay(path.join(dir, 'bridge'), path.join(dir, 'relay'), 5);
  const eng = await FpgaEngine.open(q, { device: path.join(dir, 'relay'), fallback: openIntEngine(q), requireDevice: true });
  t.teardown(async () => {
    await eng.close();
    await relay.stop();
    await bridge.stop();
    remove();
  });
  return { bridge, relay, eng };
}

/** Runs every frame `rounds` times; returns how many results differ from the reference. */
async function runFrames(eng: FpgaEngine, rounds = 1): Promise<number> {
  let bad = 0;
  for (let k = 0; k < rounds; k++) {
    for (const [i, f] of frames.entries()) {
      const got = (await eng.infer(f)).map((h) => Array.from(h.raw!));
      if (JSON.stringify(got) !== JSON.stringify(want[i])) bad++;
    }
  }
  return bad;
}

/** Resolves with the ms from now until the engine reports `state`, or rejects after `limitMs`. */
function timeTo(eng: FpgaEngine, state: LinkState, limitMs: number): Promise<number> {
  const t0 = performance.now();
  if (eng.status().state === state) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      eng.off('state', on);
      reject(new Error(`not ${state} within ${limitMs} ms (${eng.status().state}: ${eng.status().reason})`));
    }, limitMs);
    const on = (s: LinkState): void => {
      if (s !== state) return;
      clearTimeout(timer);
      eng.off('state', on);
      resolve(performance.now() - t0);
    };
    eng.on('state', on);
  });
}

t.test('1% of bytes corrupted: only right answers, faults counted, back on the device after', async (t) => {
  const { relay, eng } = await rig(t);
  t.equal(await runFrames(eng), 0, 'clean link: exact');
  t.equal(await relay.command('corrupt 0.01'), 'ok corrupt 0.01');
  t.equal(await runFrames(eng, 3), 0, 'corrupting link: every result exact');
  const s = eng.status().counters;
  t.ok(s.crcErrors + s.framingErrors + s.timeouts > 0, `faults counted (crc ${s.crcErrors}, framing ${s.framingErrors}, timeouts ${s.timeouts})`);
  t.ok(s.fallbackFrames > 0, `frames computed by the CPU meanwhile (${s.fallbackFrames})`);
  await relay.command('pass');
  const ms = await timeTo(eng, 'ready', 3000);
  t.ok(ms < 1000, `back on the device ${ms.toFixed(0)} ms after the fault ended`);
  const before = eng.status().counters.deviceFrames;
  t.equal(await runFrames(eng), 0, 'exact after');
  t.equal(eng.status().counters.deviceFrames - before, frames.length, 'and on the device');
});

t.test('frames dropped: retries recover them', async (t) => {
  const { relay, eng } = await rig(t);
  await relay.command('drop 0.1');
  t.equal(await runFrames(eng, 3), 0, 'every result exact');
  const s = eng.status().counters;
  t.ok(s.retries > 0, `retries counted (${s.retries})`);
  t.ok(s.deviceFrames > 0, `frames still computed by the device (${s.deviceFrames} of ${3 * frames.length})`);
  t.equal(s.deviceFrames + s.fallbackFrames, 3 * frames.length, 'every frame counted once');
});

t.test('a 2 s stall: the CPU takes over, the device is back within 1 s of the end', async (t) => {
  const { relay, eng } = await rig(t);
  await relay.command('stall 2000');
  const stallEnd = performance.now() + 2000;
  t.equal(await runFrames(eng), 0, 'results during the stall exact');
  t.ok(eng.status().counters.fallbackFrames > 0, 'the stall sent frames to the CPU');
  await timeTo(eng, 'ready', 5000);
  const late = performance.now() - stallEnd;
  t.ok(late < 1000, `back on the device ${late.toFixed(0)} ms after the stall ended`);
  t.equal(await runFrames(eng), 0, 'exact after');
});

t.test('the port closed in the middle of a response, and unplugged: reconnected', async (t) => {
  const { relay, eng } = await rig(t);
  t.equal(await relay.command('cut 300'), 'ok cut 300');
  t.equal(await runFrames(eng), 0, 'results around the cut exact');
  await timeTo(eng, 'ready', 3000);
  t.ok(eng.status().counters.resyncs > 0 && eng.status().counters.reconnects > 0, 'the engine resynchronised and reconnected');
  const d0 = eng.status().counters.deviceFrames;
  t.equal(await runFrames(eng), 0, 'exact after the cut');
  t.equal(eng.status().counters.deviceFrames - d0, frames.length, 'on the device again');
  await relay.command('unplug 500');
  const back = performance.now() + 500;
  t.equal(await runFrames(eng), 0, 'results while unplugged exact');
  await timeTo(eng, 'ready', 3000);
  t.ok(performance.now() - back < 1000, `replugged and back within 1 s (${(performance.now() - back).toFixed(0)} ms)`);
  t.match(await relay.command('stats'), /cuts=2/, 'the relay cut twice');
});

t.test('the bridge killed and restarted in the middle of a weight upload', async (t) => {
  // A weight set large enough that its upload at 3 Mbaud (300 kB/s) takes most of a second.
  const b = new NetBuilder({ c: 3, h: 32, w: 32 }, 'upload');
  b.conv({ filters: 64, size: 3, from: -1 });
  b.conv({ filters: 128, size: 3 });
  b.conv({ filters: 128, size: 3 });
  b.conv({ filters: 18, size: 1, activation: 'linear' });
  b.yolo();
  const big = b.build();
  const rb = rng(3);
  const q = randomQNet(big, rb, { wbits: [8, 8], p16: 1 });
  const f = randomFrame(big, rb);
  const expect = runReference(q, f).heads.map((h) => Array.from(h.raw!));
  const { dir, remove } = tempDir();
  const link = path.join(dir, 'bridge');
  const state = path.join(dir, 'state');
  const args = ['--state', state, '--baud', '3000000'];
  let bridge = await startBridge(link, args);
  let restarted: Promise<LineProcess> | undefined;
  const eng = await FpgaEngine.open(q, {
    device: link,
    baud: 3000000,
    fallback: openIntEngine(q),
    onUpload: (done, total) => {
      if (!restarted && done > total * 0.3) {
        restarted = bridge.kill().then(() => startBridge(link, args));
      }
    },
  });
  t.teardown(async () => {
    await eng.close();
    await bridge.stop();
    remove();
  });
  t.ok(eng.image.length > 80000, `an image of ${eng.image.length} bytes`);
  t.ok(restarted, 'the bridge was killed during the upload');
  bridge = await restarted!;
  t.not(eng.status().state, 'ready', 'the interrupted upload did not leave the engine on the device');
  t.same((await eng.infer(f)).map((h) => Array.from(h.raw!)), expect, 'meanwhile the CPU answers, exactly');
  await timeTo(eng, 'ready', 10000);
  t.equal(eng.status().counters.uploads, 1, 'one complete upload, to the restarted bridge');
  const stored = readFileSync(path.join(state, 'image.zqdi'));
  t.equal(createHash('sha256').update(stored).digest('hex'), eng.digest, 'the bridge stored exactly the image');
  t.notOk(existsSync(path.join(state, 'image.zqdi.new')), 'no staged leftovers');
  const d0 = eng.status().counters.deviceFrames;
  t.same((await eng.infer(f)).map((h) => Array.from(h.raw!)), expect, 'exact from the device');
  t.equal(eng.status().counters.deviceFrames, d0 + 1, 'computed by the device');
});

t.test('every packet lost while the writes complete: the engine keeps its port open', async (t) => {
  // A relay in between (socat, a user's own) still reads what the engine writes; closing and
  // reopening its pty gains nothing and some relays end when their client closes.
  const { relay, eng } = await rig(t);
  const portOf = (): unknown => (eng as unknown as { port?: unknown }).port;
  t.equal(await runFrames(eng), 0, 'exact');
  const port = portOf();
  t.ok(port, 'an open port');
  await relay.command('drop 1');
  t.equal(await runFrames(eng), 0, 'every packet lost: results exact (from the CPU)');
  const lost = eng.status().counters;
  t.ok(lost.fallbackFrames > 0, `frames went to the CPU (${lost.fallbackFrames})`);
  // Let the reconnect loop fail without an answer a few times (it has no event per attempt).
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (eng.status().counters.reconnects >= lost.reconnects + 3) {
        clearInterval(poll);
        resolve();
      }
    }, 50);
  });
  t.equal(portOf(), port, 'the same port after unanswered reconnects');
  await relay.command('pass');
  const ms = await timeTo(eng, 'ready', 3000);
  t.ok(ms < 1000, `back on the device ${ms.toFixed(0)} ms after the loss ended`);
  t.equal(portOf(), port, 'on the same port');
  const d0 = eng.status().counters.deviceFrames;
  t.equal(await runFrames(eng), 0, 'exact after');
  t.equal(eng.status().counters.deviceFrames - d0, frames.length, 'on the device');
});
