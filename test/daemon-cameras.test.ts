/**
 * Several cameras in one daemon with one engine (real float engine, real sources): each camera
 * publishes on its own topics, stats and status report each one, objects become events, counts come
 * from tracked objects; a reload adds and removes cameras.
 */
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import sharp from 'sharp';
import { Daemon } from '../src/daemon/daemon.js';
import { loadConfig } from '../src/daemon/config-load.js';
import { camerasOf } from '../src/daemon/config.js';
import { dataPath } from '../src/util/paths.js';
import { DaemonProcess, Watcher } from './helpers/daemon.js';
import { haveFfmpeg } from './helpers/ffmpeg.js';
import { freePort } from './helpers/mosquitto.js';

const haveModel = existsSync(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'zeroq-cams-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('config: cameras map or source; names checked; camera settings over the device-wide ones', async (t) => {
  const dir = tmpdir(t);
  const f = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const one = loadConfig({ file: f('one.yaml', 'source: { url: demo }\n'), env: {} });
  t.same(camerasOf(one).map((c) => [c.name, c.topicLevel]), [['main', undefined]], 'source: one camera, topics without a camera level');
  const two = loadConfig({
    file: f('two.yaml', 'objects: { threshold: 0.5, classes: { car: { min_area: 100 } } }\ncameras:\n  front: { url: demo, objects: { threshold: 0.7 } }\n  back: { url: demo, zones: { door: { points: [[0,0],[1,0],[1,1]] } } }\n'),
    env: {},
  });
  const cams = camerasOf(two);
  t.same(cams.map((c) => [c.name, c.topicLevel]), [['front', 'front'], ['back', 'back']]);
  t.equal(cams[0].objects.threshold, 0.7, 'the camera setting wins');
  t.equal(cams[1].objects.threshold, 0.5, 'else the device-wide one');
  t.same(cams[1].objects.classes, { car: { min_area: 100 } });
  const fails = (text: string, flags = {}) => {
    try {
      loadConfig({ file: f('bad.yaml', text), env: {}, flags });
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };
  t.match(fails('cameras:\n  status: { url: demo }\n'), 'this name is a topic of the device');
  t.match(fails('cameras:\n  Front: { url: demo }\n'), 'camera names: a-z');
  t.match(fails('cameras: {}\n'), 'no camera');
  t.match(fails('cameras:\n  a: { url: demo }\n', { source: '/dev/video0' }), 'source (from --source) and cameras: use one of them');
  t.match(fails('source: { zones: { z: { points: [[0,0],[1,1]] } } }\n'), 'a polygon needs at least 3 points');
});

t.test('two cameras, one engine: both publish on their topics; per-camera stats; events and counts from tracked objects; reload adds and removes a camera', { timeout: 120_000, skip: (!haveModel && 'no model') || (!haveFfmpeg && 'no ffmpeg') }, async (t) => {
  const dir = tmpdir(t);
  const folder = path.join(dir, 'images');
  mkdirSync(folder);
  // A skier, then an empty grey picture (every image of the data folder has people in it).
  symlinkSync(dataPath('coco-val', 'images', '000000000785.jpg'), path.join(folder, 'a.jpg'));
  await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 128, g: 128, b: 128 } } }).jpeg().toFile(path.join(folder, 'b.jpg'));
  const config = path.join(dir, 'zeroq.yaml');
  const write = (third: boolean) =>
    writeFileSync(
      config,
      [
        'device_id: multi',
        'cameras:',
        '  yard: { url: "lavfi:testsrc2=size=640x360:rate=8" }',
        `  door: { url: ${folder}, fps: 8, hold: 12, loop: true }`,
        ...(third ? [`  side: { url: ${folder}, fps: 2, loop: true }`] : []),
        'mqtt: { embedded: { port: 0 } }',
        'objects: { threshold: 0.3, min_hits: 2, max_misses: 2 }',
        'publish: { stats_interval_s: 1, occupancy_off_delay_s: 0.5 }',
        `http: { port: ${httpPort} }`,
      ].join('\n') + '\n',
    );
  const httpPort = await freePort();
  write(false);
  const d = await Daemon.start({ load: { file: config, env: {} }, out: new PassThrough(), log: pino({ level: 'silent' }), version: 'test' });
  t.teardown(() => d.stop(1));
  const w = await Watcher.connect(d.mqttUrl!, ['zeroq/multi/#']);
  t.teardown(() => w.close());

  const yard = await w.waitFor((m) => m.topic === 'zeroq/multi/yard/detections', 'yard detections');
  const door = await w.waitFor((m) => m.topic === 'zeroq/multi/door/detections', 'door detections');
  t.match(yard.json, { v: 2, device: 'multi', camera: 'yard', width: 640, height: 360 });
  t.match(door.json, { v: 2, device: 'multi', camera: 'door' });
  t.notOk(w.messages.some((m) => m.topic === 'zeroq/multi/detections'), 'no device-level detections topic with cameras:');

  const stats = await w.waitFor((m) => m.topic === 'zeroq/multi/stats' && m.json.cameras?.yard?.frames.processed > 0 && m.json.cameras?.door?.frames.processed > 0, 'stats of both');
  for (const c of ['yard', 'door']) {
    t.type(stats.json.cameras[c].camera_fps, 'number', `${c}: camera_fps`);
    t.type(stats.json.cameras[c].frames.skipped, 'number', `${c}: skipped`);
  }
  t.equal(stats.json.frames.processed >= stats.json.cameras.yard.frames.processed + stats.json.cameras.door.frames.processed - 2, true, 'device totals cover the cameras');
  const status = await w.waitFor((m) => m.topic === 'zeroq/multi/status' && m.json.state === 'running', 'status running');
  t.same(Object.keys(status.json.cameras), ['yard', 'door']);
  t.equal(status.json.cameras.door.kind, 'folder');

  // The door camera holds each picture 12 frames: its people become objects, then events end
  // when the picture changes.
  const created = await w.waitFor((m) => m.topic === 'zeroq/multi/door/events' && m.json.type === 'new' && m.json.label === 'person', 'a new person event', 30_000);
  t.match(created.json, { v: 2, camera: 'door', device: 'multi', end_time: null });
  t.match(created.json.id, /^door-/);
  t.equal(created.json.snapshot_url, `http://127.0.0.1:${httpPort}/cameras/door/events/${created.json.id}.jpg`);
  const ended = await w.waitFor((m) => m.topic === 'zeroq/multi/door/events' && m.json.type === 'end' && m.json.id === created.json.id, 'its end', 30_000);
  t.ok(Date.parse(ended.json.end_time) >= Date.parse(ended.json.start_time));
  t.ok(ended.json.top_score >= 0.3);
  const counts = await w.waitFor((m) => m.topic === 'zeroq/multi/door/counts' && m.json.counts.person > 0, 'door counts');
  t.match(counts.json, { v: 2, camera: 'door' });
  await w.waitFor((m) => m.topic === 'zeroq/multi/door/occupancy' && m.json.occupancy.person === 'ON', 'occupied');
  // Off only once no person was reported for occupancy_off_delay_s (0.5 s) after the last went.
  const endIdx = w.messages.indexOf(ended);
  const off = await w.waitFor((m) => m.topic === 'zeroq/multi/door/occupancy' && m.json.occupancy.person === 'OFF', 'not occupied', 30_000, endIdx);
  t.ok(Date.parse(off.json.time) - Date.parse(ended.json.end_time) >= 500, `off ${Date.parse(off.json.time) - Date.parse(ended.json.end_time)} ms after the person was last seen (delay 500 ms, plus max_misses frames)`);

  // Reload: a third camera.
  write(true);
  await d.reload();
  await w.waitFor((m) => m.topic === 'zeroq/multi/side/detections', 'the new camera publishes', 30_000);
  t.same([...d.cameras.keys()], ['yard', 'door', 'side']);
  // And away again: its retained topics are cleared.
  const n = w.messages.length;
  write(false);
  await d.reload();
  t.same([...d.cameras.keys()], ['yard', 'door']);
  await w.waitFor((m) => m.topic === 'zeroq/multi/side/counts' && m.payload.length === 0, 'side counts cleared', 10_000, n);
  t.equal(await d.stop(0), 0);
});

t.test('the demo source as zeroq run shows it: events new and end, counts from objects; per-frame detections off', { timeout: 90_000, skip: !haveModel && 'no model' }, async (t) => {
  const dir = tmpdir(t);
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(config, 'mqtt: { embedded: { port: 0 } }\nhttp: { port: 0 }\npublish: { detections: false }\n');
  const d = DaemonProcess.start(['--config', config, '--print', '--max-frames', '30', '--device-id', 'demo']);
  const exit = await d.exit;
  t.same(exit, { code: 0, signal: null }, d.stderrText.slice(-2000));
  const lines = d.stdout.trim().split('\n');
  const payloads = (topic: string) => lines.filter((l) => l.startsWith(`${topic} `)).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
  t.same(payloads('zeroq/demo/detections'), [], 'publish.detections: false: no per-frame messages');
  const events = payloads('zeroq/demo/events');
  t.ok(events.some((e) => e.type === 'new'), 'new events');
  const ended = events.filter((e) => e.type === 'end');
  t.ok(ended.length > 0, 'end events: the demo moves on to the next image after 10 frames');
  for (const e of ended) t.ok(events.some((x) => x.type === 'new' && x.id === e.id), `${e.label} ${e.id} had a new event`);
  const counts = payloads('zeroq/demo/counts');
  t.ok(counts.some((c) => c.total > 0), 'counts of tracked objects');
  t.ok(counts.length < 15, `counts are published when they change (${counts.length} messages in 30 frames)`);
  t.equal(lines[lines.length - 1], 'zeroq/demo/availability stopped');
});
