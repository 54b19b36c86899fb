// `zeroq run --engine fpga` as a real process: bridge-host behind the fault relay, a looping image
// folder, mosquitto. Detections carry "engine":"fpga" and are always the int engine's; a corrupting
// link moves the retained status to fallback and back to ready within 1 s of the fault ending; the
// stats and /metrics count what happened; the daemon keeps running throughout.
import t from 'tap';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeHeads } from '../src/detect/decode.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { openEngine } from '../src/engine/registry.js';
import { defaultWeightSet } from '../src/daemon/config.js';
import { dataPath } from '../src/util/paths.js';
import { buildFirmware, startBridge, startRelay, tempDir } from './helpers/bridge.js';
import { DaemonProcess, Watcher, type Msg } from './helpers/daemon.js';
import { freePort, startMosquitto } from './helpers/mosquitto.js';

buildFirmware();

t.test('zeroq run --engine fpga through a faulty link', async (t) => {
  const { dir, remove } = tempDir();
  t.teardown(remove);
  // Four COCO images of four different sizes, so a message's width and height name its image.
  const names = ['000000031817.jpg', '000000033104.jpg', '000000007977.jpg', '000000011149.jpg'];
  const folder = mkdtempSync(path.join(os.tmpdir(), 'zeroq-fpga-frames-'));
  t.teardown(() => rmSync(folder, { recursive: true, force: true }));
  for (const n of names) symlinkSync(dataPath('coco-val', 'images', n), path.join(folder, n));

  // What the int engine finds in each image, as the daemon publishes it.
  const int = await openEngine('int', defaultWeightSet());
  const expected = new Map<string, string>();
  for (const n of names) {
    const { frame, width, height } = await prepareFrame(path.join(folder, n), int.net);
    const dets = decodeHeads(await int.infer(frame), int.net, width, height, { threshold: 0.25, nms: 0.45, maxDetections: 100, nmsSpace: 'relative' });
    const key = `${width}x${height}`;
    t.notOk(expected.has(key), `${n}: a size of its own`);
    expected.set(key, JSON.stringify(dets.map((x) => [x.className, x.classId, Math.round(x.score * 1e4) / 1e4, ...[x.box.x, x.box.y, x.box.w, x.box.h].map((v) => Math.round(v * 10) / 10)])));
  }
  await int.close();

  const bridge = await startBridge(path.join(dir, 'bridge'));
  const relay = await startRelay(path.join(dir, 'bridge'), path.join(dir, 'relay'), 9);
  const broker = await startMosquitto();
  const httpPort = await freePort();
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(
    config,
    [
      'device_id: fpga-test',
      `source: { url: "${folder}", loop: true, fps: 8 }`,
      `model: { engine: fpga, path: "${defaultWeightSet()}", device: "${path.join(dir, 'relay')}" }`,
      `mqtt: { url: "${broker.url}" }`,
      'publish: { stats_interval_s: 1 }',
      `http: { port: ${httpPort} }`,
    ].join('\n'),
  );
  const w = await Watcher.connect(broker.url, ['zeroq/fpga-test/#']);
  const d = DaemonProcess.start(['--config', config]);
  t.teardown(async () => {
    await d.kill('SIGTERM');
    await w.close();
    await relay.stop();
    await bridge.stop();
    await broker.stop();
  });

  const isDet = (m: Msg) => m.topic === 'zeroq/fpga-test/detections';
  const status = (state: string) => (m: Msg) => m.topic === 'zeroq/fpga-test/status' && m.json?.engine?.link?.state === state;
  await w.waitFor(status('ready'), 'status: link ready', 60_000);
  const first = await w.waitFor(isDet, 'detections', 60_000);
  t.equal(first.json.engine, 'fpga', 'detections say "engine":"fpga"');

  // Corrupt 1% of the bytes for a while: the status says fallback, detections keep coming.
  t.equal(await relay.command('corrupt 0.01'), 'ok corrupt 0.01');
  const mark = w.messages.length;
  // The state changes when a frame has failed its packets' retries and a resynchronisation: each waits out
  // deadlines, which on a machine loaded far beyond its cores took more than 30 s once.
  await w.waitFor(status('fallback'), 'status: link fallback', 90_000, mark);
  const during = w.messages.length;
  /** Waits for the n-th detections message from index `from` on. */
  const nthDetection = (n: number, from: number, what: string) =>
    w.waitFor((m) => isDet(m) && w.messages.slice(from, w.messages.indexOf(m) + 1).filter(isDet).length >= n, what, 60_000, from);
  await nthDetection(5, during, 'five detections messages during the fault');
  t.equal(await relay.command('pass'), 'ok pass');
  const passed = performance.now();
  const back = await w.waitFor(status('ready'), 'status: link ready again', 10_000, w.messages.length);
  const ms = performance.now() - passed;
  // Measured through the daemon's frame loop, MQTT and the relay: on a machine loaded far beyond its
  // cores every step is many times slower, and the bound is not the daemon's to keep.
  const overloaded = os.loadavg()[0] > 4 * os.cpus().length;
  t.ok(ms < 1000 || overloaded, `back on the device ${ms.toFixed(0)} ms after the fault ended${overloaded ? ` (load ${os.loadavg()[0].toFixed(0)} on ${os.cpus().length} cores)` : ''}`);
  t.equal(back.json.state, 'running', 'the daemon kept running');
  await nthDetection(3, w.messages.indexOf(back), 'detections after the fault');

  // The stats count the fault; every published detection is the int engine's for its image.
  const stats = await w.waitFor(
    (m) => m.topic === 'zeroq/fpga-test/stats' && m.json?.engine?.link?.device_frames > 0 && m.json.engine.link.fallback_frames > 0,
    'stats with device and fallback frames',
    10_000,
  );
  const l = stats.json.engine.link;
  t.ok(l.crc_errors + l.framing_errors + l.timeouts > 0, `faults counted: crc ${l.crc_errors}, framing ${l.framing_errors}, timeouts ${l.timeouts}, retries ${l.retries}, resyncs ${l.resyncs}`);
  t.ok(l.bytes_out > 300000 && l.bytes_in > 0, 'bytes counted');
  const dets = w.on('zeroq/fpga-test/detections').map((m) => m.json);
  const wrong = dets.filter((m) => {
    const want = expected.get(`${m.width}x${m.height}`);
    const got = JSON.stringify(m.detections.map((x: any) => [x.class, x.class_id, x.score, x.box.x, x.box.y, x.box.w, x.box.h])); // eslint-disable-line @typescript-eslint/no-explicit-any
    return m.engine !== 'fpga' || got !== want;
  });
  t.ok(dets.length >= 9, `${dets.length} detection messages`);
  t.equal(wrong.length, 0, `all ${dets.length} detection messages are the int engine's (device or fallback)`);
  // The frames the CPU fallback computed say so; the device's do not.
  const onCpu = dets.filter((m) => m.computed_on === 'cpu').length;
  t.ok(onCpu > 0 && onCpu < dets.length, `${onCpu} of ${dets.length} messages say "computed_on":"cpu"`);
  t.ok(dets.every((m) => m.computed_on === undefined || m.computed_on === 'cpu'), 'computed_on is absent or "cpu"');

  const readMetrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const linkState = (text: string) => /zeroq_engine_link_state\{state="([a-z]+)",device="[^"]+"\} 1/.exec(text)?.[1];
  const mark2 = w.messages.length;
  let metrics = await readMetrics();
  if (linkState(metrics) === 'fallback') {
    // On a loaded machine a request can time out (250 ms) after the fault ended, and the link falls back
    // again until its next probe: /metrics must follow the status to ready then.
    await w.waitFor(status('ready'), 'status: ready after a late fallback', 30_000, mark2);
    metrics = await readMetrics();
  }
  t.equal(linkState(metrics), 'ready', '/metrics: link state');
  t.match(metrics, /zeroq_engine_link_frames_total\{on="fallback"\} [1-9]/, '/metrics: fallback frames');
  t.match(metrics, /zeroq_engine_link_bytes_total\{direction="out"\} [1-9]/, '/metrics: bytes');
  t.equal(d.child.exitCode, null, 'still running');
});
