/**
 * `zeroq run` as a real process with the real float engine on Yolo-Fastest 1.1: a live lavfi camera
 * against mosquitto (health, metrics, stats, snapshot, source killed, broker restarted, SIGHUP
 * reload, systemd notifications, SIGTERM), a crash (last will), an image folder on the embedded
 * broker with --print, and bad configurations.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { decodeHeads } from '../src/detect/decode.js';
import { prepareFrame } from '../src/detect/preprocess.js';
import { openEngine } from '../src/engine/registry.js';
import { defaultWeightSet } from '../src/daemon/config.js';
import { dataPath } from '../src/util/paths.js';
import { DaemonProcess, Watcher, repo, type LogLine } from './helpers/daemon.js';
import { haveFfmpeg } from './helpers/ffmpeg.js';
import { freePort, makeCertificates, mosquittoBinary, startMosquitto } from './helpers/mosquitto.js';

const cfgPath = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const haveModel = existsSync(cfgPath);
const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'zeroq-run-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}

/** A NOTIFY_SOCKET listener that, like systemd, releases the barrier fd systemd-notify sends. */
function notifyListener(sock: string) {
  const code = [
    'import socket, sys, os, array',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("ready", flush=True)',
    'while True:',
    '    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(64))',
    '    for level, typ, data in anc:',
    '        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:',
    '            fds = array.array("i"); fds.frombytes(data[: len(data) - len(data) % 4])',
    '            for fd in fds: os.close(fd)',
    '    print(msg.decode().replace("\\n", " "), flush=True)',
  ].join('\n');
  const child = spawn(python!, ['-c', code, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: { pred: (l: string) => boolean; resolve: () => void }[] = [];
  let tail = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s: string) => {
    const parts = (tail + s).split('\n');
    tail = parts.pop() ?? '';
    for (const l of parts) {
      lines.push(l);
      for (const w of [...waiters]) if (w.pred(l)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
    }
  });
  const waitLine = (pred: (l: string) => boolean) =>
    new Promise<void>((resolve) => {
      if (lines.some(pred)) return resolve();
      waiters.push({ pred, resolve });
    });
  return { child, lines, waitLine, ready: waitLine((l) => l === 'ready') };
}

const isFrame = (l: LogLine) => l.msg === 'frame';

t.test('live camera on mosquitto: interface, health, source and broker failures, reload, systemd, SIGTERM', { timeout: 120_000, skip: (!mosquittoBinary() && 'no mosquitto') || (!haveFfmpeg && 'no ffmpeg') || (!haveModel && 'no model') }, async (t) => {
  const dir = tmpdir(t);
  const broker = await startMosquitto();
  t.teardown(() => broker.dispose());
  const httpPort = await freePort();
  const config = path.join(dir, 'zeroq.yaml');
  // A weight set for the int engine, made meanwhile; the reload below swaps the engine to it.
  const zqw = path.join(dir, 'yf8.zqw');
  const calib = path.join(dir, 'calib.txt');
  writeFileSync(calib, ['000000000139.jpg', '000000000785.jpg'].map((n) => dataPath('coco-val', 'images', n)).join('\n') + '\n');
  const quantized = new Promise<number | null>((resolve) => {
    const q = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'src', 'cli.ts'), 'quantize', cfgPath, '--wbits', '8', '--calib', calib, '--calib-images', '2', '--act-calib', 'minmax', '-o', zqw], { stdio: 'ignore' });
    q.on('exit', resolve);
  });
  const writeConfig = (device: string, threads: number, engine = 'float', modelPath = cfgPath) =>
    writeFileSync(
      config,
      [
        `device_id: ${device}`,
        'source:',
        '  url: "lavfi:testsrc2=size=640x360:rate=15"',
        '  stall_timeout_s: 5',
        '  restart: { initial_ms: 1500, max_ms: 3000 }',
        'model:',
        `  threads: ${threads}`,
        `  engine: ${engine}`,
        `  path: ${modelPath}`,
        'mqtt:',
        `  url: ${broker.url}`,
        '  prefix: zq',
        '  qos: 1',
        '  reconnect: { min_ms: 100, max_ms: 500 }',
        'publish:',
        '  stats_interval_s: 1',
        '  snapshot: { enabled: true, interval_s: 1, max_size: 320 }',
        'homeassistant:',
        '  classes: [person, car]',
        'http:',
        `  port: ${httpPort}`,
      ].join('\n') + '\n',
    );
  writeConfig('cam1', 1);

  const sock = path.join(dir, 'notify.sock');
  const notify = python ? notifyListener(sock) : undefined;
  if (notify) {
    t.teardown(() => void notify.child.kill());
    await notify.ready;
  }
  const env: Record<string, string> = notify ? { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '1000000' } : {};
  // A back end's subscriber: persistent session, so it gets what was queued while it was away.
  const w = await Watcher.connect(broker.url, ['zq/#', 'homeassistant/#'], { clientId: 'backend-run', clean: false });
  t.teardown(() => w.close());

  const d = DaemonProcess.start(['--config', config], env);
  t.teardown(() => void d.kill('SIGKILL'));

  // --- the published interface
  await w.waitFor((m) => m.topic === 'zq/cam1/availability' && m.text === 'online', 'online');
  const det = await w.waitFor((m) => m.topic === 'zq/cam1/detections', 'detections');
  t.match(det.json, { v: 2, device: 'cam1', camera: 'main', model: 'yolo-fastest-1.1', weights: 'yolo-fastest-1.1', engine: 'float', width: 640, height: 360 });
  t.type(det.json.frame, 'number');
  t.type(det.json.inference_ms, 'number');
  t.ok(Array.isArray(det.json.detections));
  t.equal(Date.parse(det.json.time), det.json.ts);
  const ha = await w.waitFor((m) => m.topic === 'homeassistant/sensor/zeroq_cam1/car_count/config', 'discovery');
  t.equal(ha.json.state_topic, 'zq/cam1/counts');
  const stats = await w.waitFor((m) => m.topic === 'zq/cam1/stats' && m.json?.frames.processed > 0, 'stats');
  t.ok(stats.json.camera_fps > 0 && stats.json.processed_fps > 0, 'frame rates');
  t.type(stats.json.latency_ms.p50, 'number');
  // Handed to MQTT after the detections were decoded: the publish step on top of the path to them.
  t.ok(stats.json.publish_ms.p50 >= stats.json.latency_ms.p50 - 1, `publish_ms ${JSON.stringify(stats.json.publish_ms)} after latency_ms ${JSON.stringify(stats.json.latency_ms)}`);
  t.match(stats.json.engine, { kind: 'float', threads: 1 });
  const snap = await w.waitFor((m) => m.topic === 'zq/cam1/snapshot', 'snapshot');
  const meta = await sharp(snap.payload).metadata();
  t.same([meta.format, meta.width, meta.height], ['jpeg', 320, 180], 'snapshot at the camera aspect ratio');

  // --- health and metrics
  const h = await getJson(`http://127.0.0.1:${httpPort}/healthz`);
  t.equal(h.status, 200);
  t.equal(h.body.ok, true);
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  t.match(metrics, /zeroq_frames_processed_total [1-9]/);
  t.match(metrics, /zeroq_engine_info\{kind="float",model="yolo-fastest-1.1",weights="yolo-fastest-1.1",threads="1"\} 1/);
  t.match(metrics, /zeroq_mqtt_connected 1/);

  // --- systemd: ready and watchdog pings
  if (notify) {
    await notify.waitLine((l) => l.includes('READY=1'));
    await notify.waitLine((l) => l.includes('WATCHDOG=1'));
  }

  // --- the camera's ffmpeg dies: restarted, reported on the status topic, /healthz 503 meanwhile
  const ffmpeg = d.children().find((c) => c.comm === 'ffmpeg');
  t.ok(ffmpeg, 'ffmpeg runs as a child of the daemon');
  let n = w.messages.length;
  process.kill(ffmpeg!.pid, 'SIGKILL');
  const degraded = await w.waitFor((m) => m.topic === 'zq/cam1/status' && m.json?.state === 'degraded', 'degraded status', 10_000, n);
  t.match(degraded.json.source, { state: 'restarting', restarts: 1 });
  t.match(degraded.json.source.last_error, /ffmpeg killed by SIGKILL/);
  const sick = await getJson(`http://127.0.0.1:${httpPort}/healthz`);
  t.equal(sick.status, 503, '/healthz reports the source down');
  t.match(sick.body.problems[0], /source restarting/);
  await w.waitFor((m) => m.topic === 'zq/cam1/status' && m.json?.state === 'running', 'running again', 20_000, n);
  const lastBefore = det.json.frame;
  const after = await w.waitFor((m) => m.topic === 'zq/cam1/detections' && m.json.frame > lastBefore + 5, 'frames after restart', 20_000, n);
  t.ok(after, 'frames flow again');
  t.match((await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text())), /zeroq_source_restarts_total 1/);

  // --- the broker goes away: frames are buffered (QoS 1) and all arrive after it is back
  const logFrom = d.logs.length;
  await broker.stop('SIGTERM');
  await d.waitLog((l) => l.msg === 'mqtt connection lost', 'connection lost', 10_000, logFrom);
  const lostAt = d.logs.length;
  // Ten frames processed while the broker is away.
  let seen = 0;
  await d.waitLog((l) => isFrame(l) && l.mqtt === 'buffered' && ++seen >= 10, 'ten buffered frames', 20_000, lostAt);
  const buffered = d.logs.slice(lostAt).filter((l) => isFrame(l) && l.mqtt === 'buffered').map((l) => l.frame as number);
  n = w.messages.length;
  await broker.start();
  await w.waitFor((m) => m.topic === 'zq/cam1/availability' && m.text === 'online', 'online after the broker restart', 20_000, n);
  const lastBuffered = buffered[buffered.length - 1];
  await w.waitFor((m) => m.topic === 'zq/cam1/detections' && m.json.frame >= lastBuffered, 'buffered frames', 20_000, n);
  const received = new Set(w.messages.filter((m) => m.topic === 'zq/cam1/detections').map((m) => m.json.frame as number));
  const missing = buffered.filter((f) => !received.has(f));
  t.same(missing, [], `all ${buffered.length} frames buffered during the outage arrived`);
  t.ok(buffered.length >= 10);
  const processedDuring = d.logs.slice(logFrom).filter(isFrame).map((l) => l.frame as number);
  t.same(processedDuring.filter((f) => f <= lastBuffered && !received.has(f)), [], 'no processed frame lost around the outage');

  // --- SIGHUP: device id and engine (float → int weight set, 2 threads) change; the source keeps running
  t.equal(await quantized, 0, 'zeroq quantize made the weight set');
  const sourceStarts = d.logs.filter((l) => l.msg === 'capture started').length;
  writeConfig('cam2', 2, 'int', zqw);
  n = w.messages.length;
  let mark = d.logs.length;
  d.child.kill('SIGHUP');
  const reloaded = await d.waitLog((l) => l.msg === 'configuration reloaded', 'reload', 30_000, mark);
  t.same(reloaded.changed, ['model', 'mqtt']);
  await w.waitFor((m) => m.topic === 'zq/cam1/availability' && m.text === 'stopped', 'old device stopped', 10_000, n);
  await w.waitFor((m) => m.topic === 'zq/cam2/availability' && m.text === 'online', 'new device online', 10_000, n);
  const det2 = await w.waitFor((m) => m.topic === 'zq/cam2/detections', 'detections on the new topic', 10_000, n);
  t.ok(det2.json.frame > lastBuffered, 'frame ids continue');
  t.equal(det2.json.engine, 'int');
  t.match(det2.json.weights, /^yolo-fastest-1\.1-w8/, 'the weight-set id');
  await w.waitFor((m) => m.topic === 'zq/cam2/stats' && m.json?.engine.threads === 2 && m.json.engine.kind === 'int', 'new engine in stats', 10_000, n);
  t.equal(d.logs.filter((l) => l.msg === 'capture started').length, sourceStarts, 'the source was not restarted');
  if (notify) await notify.waitLine((l) => l.includes('RELOADING=1') && l.includes('MONOTONIC_USEC='));

  // --- SIGHUP with a broken file: logged, ignored, still running
  writeFileSync(config, 'mqtt:\n  qos: 7\n');
  mark = d.logs.length;
  d.child.kill('SIGHUP');
  const rejected = await d.waitLog((l) => /rejected/.test(String(l.msg)), 'rejected reload', 10_000, mark);
  t.match(rejected.err, /mqtt\.qos: expected 0, 1 or 2/);
  n = w.messages.length;
  await w.waitFor((m) => m.topic === 'zq/cam2/detections', 'still publishing', 10_000, n);

  // --- SIGTERM: the frame in progress finishes, `stopped` is published, exit 0
  n = w.messages.length;
  const exit = await d.kill('SIGTERM');
  t.same(exit, { code: 0, signal: null });
  const stopped = w.messages.slice(n).filter((m) => m.topic === 'zq/cam2/availability');
  t.same(stopped.map((m) => m.text), ['stopped']);
  t.notOk(w.messages.slice(n).some((m) => m.topic === 'zq/cam2/availability' && m.text === 'offline'), 'no last will on a clean exit');
  if (notify) await notify.waitLine((l) => l.includes('STOPPING=1'));
  t.comment(`buffered during the broker outage: ${buffered.length} frames, all delivered`);
});

t.test('a crash leaves the last will: offline, retained', { timeout: 60_000, skip: (!mosquittoBinary() && 'no mosquitto') || (!haveModel && 'no model') }, async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.dispose());
  const w = await Watcher.connect(broker.url, ['zeroq/crashy/availability']);
  t.teardown(() => w.close());
  const d = DaemonProcess.start(['--source', dataPath('coco-val', 'images'), '--mqtt-url', broker.url, '--device-id', 'crashy', '--http-port', '0']);
  await w.waitFor((m) => m.text === 'online', 'online');
  await d.waitLog(isFrame, 'a frame');
  await d.kill('SIGKILL');
  await w.waitFor((m) => m.text === 'offline', 'last will');
  const late = await Watcher.connect(broker.url, ['zeroq/crashy/availability']);
  t.teardown(() => late.close());
  const m = await late.waitFor((x) => x.retain, 'retained');
  t.equal(m.text, 'offline');
  await late.close();
});

t.test('image folder on the embedded broker: --max-frames beyond the folder processes each image once, --print shows it', { timeout: 60_000, skip: !haveModel && 'no model' }, async (t) => {
  const dir = tmpdir(t);
  const folder = path.join(dir, 'images');
  const names = ['000000000139.jpg', '000000000785.jpg', '000000000872.jpg'];
  const { mkdirSync } = await import('node:fs');
  mkdirSync(folder);
  for (const n of names) symlinkSync(dataPath('coco-val', 'images', n), path.join(folder, n));
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(config, 'mqtt:\n  embedded:\n    port: 0\nhttp:\n  port: 0\n');
  const d = DaemonProcess.start(['--config', config, '--source', folder, '--max-frames', '10', '--print', '--device-id', 'demo']);
  const exit = await d.exit;
  t.same(exit, { code: 0, signal: null }, d.stderrText.slice(-2000));
  const lines = d.stdout.trim().split('\n');
  const dets = lines.filter((l) => l.startsWith('zeroq/demo/detections ')).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)));
  t.same(dets.map((x) => x.frame), [1, 2, 3], 'each image once, in order');
  t.equal(lines[lines.length - 1], 'zeroq/demo/availability stopped', 'stopped is the last message');
  t.match(lines[0], /^zeroq\/demo\/availability (\(retained\) )?online$/);

  // What was published is what the default engine (int, the shipped W8 weight set) finds on these images.
  t.ok(dets.every((x) => x.engine === 'int'), 'the integer engine is the default');
  const engine = await openEngine('int', defaultWeightSet());
  t.teardown(() => engine.close());
  for (let i = 0; i < names.length; i++) {
    const { frame, width, height } = await prepareFrame(path.join(folder, names[i]), engine.net);
    const want = decodeHeads(await engine.infer(frame), engine.net, width, height, { threshold: 0.25, nms: 0.45, maxDetections: 100, nmsSpace: 'relative' });
    t.same([dets[i].width, dets[i].height], [width, height]);
    t.same(
      dets[i].detections.map((x: any) => [x.class, x.class_id, x.score, x.box.x, x.box.y, x.box.w, x.box.h]),
      want.map((x) => [x.className, x.classId, Math.round(x.score * 1e4) / 1e4, ...[x.box.x, x.box.y, x.box.w, x.box.h].map((v) => Math.round(v * 10) / 10)]),
      `detections of ${names[i]}`,
    );
  }
  t.ok(dets.some((x) => x.detections.length > 0));
});

t.test('bad configuration: exit code 2 and a message naming file, line and key', { timeout: 60_000 }, async (t) => {
  const dir = tmpdir(t);
  const config = path.join(dir, 'bad.yaml');
  writeFileSync(config, 'source:\n  url: demo\nmqtt:\n  qos: 3\n  colour: blue\n');
  const d = DaemonProcess.start(['--config', config]);
  const exit = await d.exit;
  t.equal(exit.code, 2);
  t.match(d.stderrText, `${config}:4: mqtt.qos: expected 0, 1 or 2`);
  t.match(d.stderrText, `${config}:5: mqtt.colour: unknown key`);
  const e = DaemonProcess.start(['--threads', 'many', '--source', '/nonexistent/cam.mp4']);
  const exit2 = await e.exit;
  t.equal(exit2.code, 2);
  t.match(e.stderrText, "'--threads <n>' argument 'many' is invalid", 'the flag is named (the CLI parses numbers before the config does)');
  const f = DaemonProcess.start(['--source', '/nonexistent/cam.mp4', '--http-port', '0']);
  t.equal((await f.exit).code, 2);
  t.match(f.stderrText, 'source.url "/nonexistent/cam.mp4": no such file, folder or device');
});

t.test('TLS with a client certificate and a password file, in process: Daemon.start to done', { timeout: 60_000, skip: (!mosquittoBinary() && 'no mosquitto') || (!haveModel && 'no model') || (!existsSync('/usr/bin/openssl') && 'no openssl') }, async (t) => {
  const dir = tmpdir(t);
  const certs = makeCertificates(dir);
  const broker = await startMosquitto({ tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey, clientCert: certs.clientCert, clientKey: certs.clientKey }, user: { name: 'cam', password: 's3cret' } });
  t.teardown(() => broker.dispose());
  const { readFileSync } = await import('node:fs');
  const w = await Watcher.connect(broker.url, ['zeroq/tls/#'], {
    client: { ca: readFileSync(certs.ca), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey), username: 'cam', password: 's3cret' },
  });
  t.teardown(() => w.close());
  const folder = path.join(dir, 'images');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(folder);
  for (const n of ['000000000139.jpg', '000000000785.jpg']) symlinkSync(dataPath('coco-val', 'images', n), path.join(folder, n));
  const pw = path.join(dir, 'password');
  writeFileSync(pw, 's3cret\n');
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(
    config,
    [
      'device_id: tls',
      `source: { url: ${folder} }`,
      'mqtt:',
      `  url: ${broker.url}`,
      '  username: cam',
      `  password_file: ${pw}`,
      `  tls: { ca: ${certs.ca}, cert: ${certs.clientCert}, key: ${certs.clientKey} }`,
      'http: { port: 0 }',
    ].join('\n') + '\n',
  );
  const { Daemon } = await import('../src/daemon/daemon.js');
  const { pino } = await import('pino');
  const { PassThrough } = await import('node:stream');
  const daemon = await Daemon.start({ load: { file: config, env: {} }, out: new PassThrough(), log: pino({ level: 'silent' }), version: 'test' });
  t.teardown(() => daemon.stop(1));
  t.equal(await daemon.done, 0, 'a folder without loop ends the run cleanly');
  await w.waitFor((m) => m.topic === 'zeroq/tls/availability' && m.text === 'stopped', 'stopped');
  t.same(
    w.messages.filter((m) => m.topic === 'zeroq/tls/detections').map((m) => m.json.frame),
    [1, 2],
  );

  // A wrong password is refused by the broker: the daemon keeps trying and buffers, it does not die.
  writeFileSync(pw, 'wrong\n');
  writeFileSync(config, readFileSync(config, 'utf8').replace('mqtt:\n', 'mqtt:\n  flush_timeout_s: 0.5\n'));
  const lines: string[] = [];
  const sink = new PassThrough();
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  sink.on('data', (b: Buffer) => {
    lines.push(...b.toString().trim().split('\n'));
    for (const w of [...waiters]) if (lines.some((l) => w.re.test(l))) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  });
  const logged = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      if (lines.some((l) => re.test(l))) return resolve();
      const timer = setTimeout(() => reject(new Error(`no log line ${re}:\n${lines.join('\n')}`)), 20_000);
      waiters.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
    });
  const refused = await Daemon.start({
    load: { file: config, env: {}, flags: { source: dataPath('coco-val', 'images') } },
    out: new PassThrough(),
    log: pino({ level: 'debug' }, sink),
    version: 'test',
  });
  t.teardown(() => refused.stop(1));
  await logged(/"level":40.*(Not authorized|Bad username or password)/i);
  t.pass('the refusal is logged as a warning');
  await logged(/"mqtt":"buffered","msg":"frame"/);
  t.equal(await refused.stop(0), 0, 'the daemon stopped cleanly');
  await logged(/broker unreachable at exit; buffered messages lost/);
  t.pass('what could not be sent is reported');
});
