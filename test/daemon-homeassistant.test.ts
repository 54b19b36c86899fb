/**
 * Home Assistant: every discovery payload checked against the keys HA documents for its component
 * (the schema below is written from the MQTT integration's documentation: home-assistant.io
 * /integrations/{sensor,binary_sensor,switch,number,button,image,update}.mqtt/), in a unit check and on a
 * live daemon; the controls by command topics, with garbage logged and ignored.
 */
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { connectAsync } from 'mqtt';
import { pino } from 'pino';
import { Daemon } from '../src/daemon/daemon.js';
import { discoveryConfigs } from '../src/daemon/mqtt/ha-discovery.js';
import { topicsFor } from '../src/daemon/mqtt/topics.js';
import { parseCommand } from '../src/daemon/parts/controls.js';
import { updateDiscovery } from '../src/daemon/update/status.js';
import { dataPath } from '../src/util/paths.js';
import { Watcher } from './helpers/daemon.js';
import { freePort } from './helpers/mosquitto.js';

const haveModel = existsSync(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));

// ---- The schema, from Home Assistant's MQTT documentation ----------------------------------
type Check = (v: unknown) => boolean;
const str: Check = (v) => typeof v === 'string' && v.length > 0;
const num: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const bool: Check = (v) => typeof v === 'boolean';
const oneOf = (...xs: unknown[]): Check => (v) => xs.includes(v);
const topic: Check = (v) => str(v) && !/[#+]/.test(v as string);

/** Keys every MQTT entity may have (the "MQTT entity" options shared by all platforms). */
const COMMON: Record<string, Check> = {
  availability: (v) => Array.isArray(v) && v.every((a) => typeof a === 'object' && a !== null && keysIn(a, AVAILABILITY_KEYS) && topic((a as Record<string, unknown>).topic)),
  availability_mode: oneOf('all', 'any', 'latest'),
  availability_template: str,
  availability_topic: topic,
  default_entity_id: str,
  device: (v) => typeof v === 'object' && v !== null && keysIn(v, DEVICE_KEYS),
  enabled_by_default: bool,
  encoding: (v) => typeof v === 'string',
  entity_category: oneOf('config', 'diagnostic'),
  entity_picture: str,
  icon: (v) => str(v) && /^mdi:/.test(v as string),
  json_attributes_template: str,
  json_attributes_topic: topic,
  name: (v) => v === null || str(v),
  origin: (v) => typeof v === 'object' && v !== null && keysIn(v, ORIGIN_KEYS) && str((v as Record<string, unknown>).name),
  platform: oneOf('mqtt'),
  qos: oneOf(0, 1, 2),
  unique_id: str,
};
const AVAILABILITY_KEYS: Record<string, Check> = { topic, payload_available: str, payload_not_available: str, value_template: str };
const DEVICE_KEYS: Record<string, Check> = {
  configuration_url: (v) => str(v) && /^(https?|homeassistant):\/\//.test(v as string),
  connections: Array.isArray,
  hw_version: str,
  identifiers: (v) => str(v) || (Array.isArray(v) && v.every(str)),
  manufacturer: str,
  model: str,
  model_id: str,
  name: str,
  serial_number: str,
  suggested_area: str,
  sw_version: str,
  via_device: str,
};
const ORIGIN_KEYS: Record<string, Check> = { name: str, sw_version: str, support_url: str };

interface Component {
  keys: Record<string, Check>;
  required: string[][];
}
const COMPONENTS: Record<string, Component> = {
  sensor: {
    keys: { state_topic: topic, device_class: str, expire_after: num, force_update: bool, last_reset_value_template: str, options: Array.isArray, suggested_display_precision: num, state_class: oneOf('measurement', 'measurement_angle', 'total', 'total_increasing'), unit_of_measurement: str, value_template: str },
    required: [['state_topic']],
  },
  binary_sensor: {
    keys: { state_topic: topic, device_class: str, expire_after: num, force_update: bool, off_delay: num, payload_off: str, payload_on: str, value_template: str },
    required: [['state_topic']],
  },
  switch: {
    keys: { command_topic: topic, command_template: str, device_class: oneOf('outlet', 'switch'), optimistic: bool, payload_off: str, payload_on: str, retain: bool, state_off: str, state_on: str, state_topic: topic, value_template: str },
    required: [['command_topic']],
  },
  number: {
    keys: { command_topic: topic, command_template: str, device_class: str, max: num, min: num, mode: oneOf('auto', 'box', 'slider'), optimistic: bool, payload_reset: str, retain: bool, state_topic: topic, step: num, unit_of_measurement: str, value_template: str },
    required: [['command_topic']],
  },
  button: {
    keys: { command_topic: topic, command_template: str, device_class: oneOf('identify', 'restart', 'update'), payload_press: str, retain: bool },
    required: [['command_topic']],
  },
  image: {
    keys: { image_topic: topic, url_topic: topic, content_type: str, image_encoding: oneOf('b64'), url_template: str },
    // Exactly one of image_topic and url_topic.
    required: [['image_topic', 'url_topic']],
  },
  update: {
    keys: { state_topic: topic, command_topic: topic, payload_install: str, latest_version_topic: topic, latest_version_template: str, value_template: str, device_class: oneOf('firmware'), display_precision: num, release_summary: str, release_url: str, retain: bool, title: str },
    required: [['state_topic']],
  },
};

function keysIn(o: object, allowed: Record<string, Check>): boolean {
  return Object.entries(o).every(([k, v]) => k in allowed && allowed[k](v));
}

/** Problems of one discovery message (empty: conforms). */
function problems(discoveryTopic: string, payload: Record<string, unknown>): string[] {
  const out: string[] = [];
  const m = /^homeassistant\/([a-z_]+)\/([A-Za-z0-9_-]+)\/([A-Za-z0-9_-]+)\/config$/.exec(discoveryTopic);
  if (!m) return [`topic ${discoveryTopic}: not <prefix>/<component>/<node_id>/<object_id>/config`];
  const comp = COMPONENTS[m[1]];
  if (!comp) return [`${m[1]}: not a component the daemon should use`];
  for (const [k, v] of Object.entries(payload)) {
    if (k === 'object_id') out.push('object_id: deprecated since Home Assistant 2025.10 (default_entity_id)');
    else if (!(k in COMMON) && !(k in comp.keys)) out.push(`${k}: not a key of ${m[1]}`);
    else if (!(COMMON[k] ?? comp.keys[k])(v)) out.push(`${k}: bad value ${JSON.stringify(v)}`);
  }
  for (const alternatives of comp.required) {
    const n = alternatives.filter((k) => k in payload).length;
    if (n !== 1) out.push(`needs exactly one of ${alternatives.join(', ')}`);
  }
  // What the daemon promises on top of HA's rules.
  for (const k of ['unique_id', 'default_entity_id', 'origin', 'availability', 'device', 'name']) if (!(k in payload)) out.push(`${k}: missing`);
  if (payload.default_entity_id !== `${m[1]}.${payload.unique_id}`) out.push(`default_entity_id ${String(payload.default_entity_id)} is not ${m[1]}.<unique_id>`);
  return out;
}

t.test('the schema refuses what HA would not take', async (t) => {
  const ok = { name: 'x', unique_id: 'u', default_entity_id: 'sensor.u', state_topic: 'a/b', availability: [{ topic: 'a/av' }], device: { identifiers: ['d'] }, origin: { name: 'zeroq' } };
  t.same(problems('homeassistant/sensor/n/o/config', ok), []);
  t.match(problems('homeassistant/sensor/n/o/config', { ...ok, object_id: 'u' }).join(), /object_id: deprecated/);
  t.match(problems('homeassistant/sensor/n/o/config', { ...ok, image_topic: 'x' }).join(), /image_topic: not a key of sensor/);
  t.match(problems('homeassistant/image/n/o/config', { ...ok, default_entity_id: 'image.u', state_topic: undefined }).join(), /needs exactly one of image_topic, url_topic/);
  t.match(problems('homeassistant/number/n/o/config', { ...ok, default_entity_id: 'number.u', command_topic: 'a/#', state_topic: undefined }).join(), /command_topic: bad value/);
  t.match(problems('homeassistant/sensor/n/o/config', { ...ok, origin: {} }).join(), /origin: bad value/);
});

t.test('discovery payloads, single camera and several: all conform; names and topics', async (t) => {
  const topics = topicsFor('zq', 'dev');
  const single = discoveryConfigs({ discoveryPrefix: 'homeassistant', deviceId: 'dev', topics, classes: ['person', 'traffic light'], model: 'm', version: '1.2.3', configurationUrl: 'http://127.0.0.1:9464' });
  const multi = discoveryConfigs({
    discoveryPrefix: 'homeassistant',
    deviceId: 'dev',
    topics,
    classes: ['person'],
    model: 'm',
    version: '1.2.3',
    cameras: [{ name: 'front', topicLevel: 'front' }, { name: 'back', topicLevel: 'back' }],
  });
  const update = updateDiscovery('homeassistant', 'dev', topics, 'm', '1.2.3', 'http://127.0.0.1:9464');
  for (const [tp, p] of [...single, ...multi, update]) t.same(problems(tp, JSON.parse(p)), [], tp);
  const get = (m: Map<string, string>, tp: string) => JSON.parse(m.get(tp)!);
  const img = get(single, 'homeassistant/image/zeroq_dev/snapshot/config');
  t.match(img, { image_topic: 'zq/dev/snapshot', content_type: 'image/jpeg', default_entity_id: 'image.zeroq_dev_snapshot', origin: { name: 'zeroq', sw_version: '1.2.3' } });
  t.equal(img.device.configuration_url, 'http://127.0.0.1:9464');
  const occ = get(single, 'homeassistant/binary_sensor/zeroq_dev/traffic_light_occupancy/config');
  t.match(occ, { device_class: 'occupancy', state_topic: 'zq/dev/occupancy', payload_on: 'ON' });
  t.equal(occ.value_template, "{{ value_json.occupancy['traffic light'] | default('OFF') }}");
  t.match(get(single, 'homeassistant/switch/zeroq_dev/detect/config'), { command_topic: 'zq/dev/detect/set', state_topic: 'zq/dev/detect/state' });
  t.match(get(single, 'homeassistant/number/zeroq_dev/threshold/config'), { command_topic: 'zq/dev/threshold/set', min: 0.05, max: 0.95 });
  t.match(get(single, 'homeassistant/button/zeroq_dev/take_snapshot/config'), { command_topic: 'zq/dev/snapshot/set', payload_press: 'PRESS' });
  t.match(get(multi, 'homeassistant/sensor/zeroq_dev/front_person_count/config'), { name: 'front person count', state_topic: 'zq/dev/front/counts' });
  t.match(get(multi, 'homeassistant/image/zeroq_dev/back_snapshot/config'), { image_topic: 'zq/dev/back/snapshot' });
  t.equal(new Set([...multi.values()].map((p) => JSON.parse(p).unique_id)).size, multi.size, 'unique ids are unique');
});

t.test('commands: what is taken and what is garbage', async (t) => {
  t.same(parseCommand('detect', Buffer.from('ON')), { kind: 'detect', on: true });
  t.same(parseCommand('detect', Buffer.from('OFF')), { kind: 'detect', on: false });
  t.same(parseCommand('threshold', Buffer.from('0.35')), { kind: 'threshold', value: 0.35 });
  t.same(parseCommand('snapshot', Buffer.from('PRESS')), { kind: 'snapshot' });
  for (const [kind, p] of [
    ['detect', 'on'],
    ['detect', 'yes'],
    ['detect', ''],
    ['threshold', 'abc'],
    ['threshold', '2'],
    ['threshold', '-0.5'],
    ['threshold', 'NaN'],
    ['threshold', '1e-1'],
    ['threshold', '0.5x'],
    ['threshold', '0.01'],
    ['snapshot', 'press'],
    ['detect', 'ON'.padEnd(100, ' ')],
  ] as const) {
    t.type(parseCommand(kind, Buffer.from(p)), 'string', `${kind} ${JSON.stringify(p.slice(0, 12))} is refused`);
  }
  t.type(parseCommand('detect', Buffer.from([0xff, 0xfe, 0x00])), 'string', 'binary is refused');
});

t.test('live daemon: discovery conforms (no object_id; image, occupancy, controls); --print shows it; controls by command topics', { timeout: 90_000, skip: !haveModel && 'no model' }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-ha-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const folder = path.join(dir, 'images');
  mkdirSync(folder);
  for (const n of ['000000000139.jpg', '000000000785.jpg']) symlinkSync(dataPath('coco-val', 'images', n), path.join(folder, n));
  const config = path.join(dir, 'zeroq.yaml');
  const httpPort = await freePort();
  writeFileSync(
    config,
    [
      'device_id: ha1',
      `source: { url: ${folder}, fps: 6, loop: true }`,
      'mqtt: { embedded: { port: 0 } }',
      'homeassistant: { classes: [person, car] }',
      'publish: { snapshot: { interval_s: 3600 }, stats_interval_s: 1 }',
      `http: { port: ${httpPort} }`,
      'print: true',
    ].join('\n') + '\n',
  );
  const logLines: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (b: Buffer) => logLines.push(...b.toString().trim().split('\n')));
  const out = new PassThrough();
  let printed = '';
  out.on('data', (b: Buffer) => (printed += b.toString()));
  const d = await Daemon.start({ load: { file: config, env: {} }, out, log: pino({ level: 'info' }, sink), version: '9.9.9' });
  t.teardown(() => d.stop(1));
  const w = await Watcher.connect(d.mqttUrl!, ['homeassistant/#', 'zeroq/ha1/#']);
  t.teardown(() => w.close());

  await w.waitFor((m) => m.topic === 'homeassistant/sensor/zeroq_ha1/inference_ms/config', 'discovery');
  const configs = w.messages.filter((m) => m.topic.startsWith('homeassistant/') && m.topic.endsWith('/config'));
  t.equal(configs.length, 11, '2 per class (2 classes), 4 per camera, 3 per device');
  for (const m of configs) t.same(problems(m.topic, m.json), [], m.topic);
  const comps = new Set(configs.map((m) => m.topic.split('/')[1]));
  t.same([...comps].sort(), ['binary_sensor', 'button', 'image', 'number', 'sensor', 'switch']);
  t.ok(configs.some((m) => m.json.device_class === 'occupancy'), 'occupancy binary_sensors');
  t.equal(configs[0].json.device.configuration_url, `http://127.0.0.1:${httpPort}`);
  t.match(printed, /^homeassistant\/image\/zeroq_ha1\/snapshot\/config( \(retained\))? \{"name":"snapshot"/m, '--print shows the discovery messages');

  // Controls: the retained states first.
  await w.waitFor((m) => m.topic === 'zeroq/ha1/detect/state' && m.text === 'ON', 'detect state');
  await w.waitFor((m) => m.topic === 'zeroq/ha1/threshold/state' && m.text === '0.25', 'threshold state');
  const c = await connectAsync(d.mqttUrl!, { reconnectPeriod: 0 });
  t.teardown(() => c.endAsync(true));
  // Garbage: logged, ignored, states unchanged.
  for (const [tp, p] of [
    ['zeroq/ha1/detect/set', 'maybe'],
    ['zeroq/ha1/threshold/set', 'abc'],
    ['zeroq/ha1/threshold/set', '7'],
    ['zeroq/ha1/snapshot/set', 'x'.repeat(5000)],
  ]) await c.publishAsync(tp, p, { qos: 1 });
  // The threshold: applied, confirmed, and the detections follow it.
  let n = w.messages.length;
  await c.publishAsync('zeroq/ha1/threshold/set', '0.6', { qos: 1 });
  await w.waitFor((m) => m.topic === 'zeroq/ha1/threshold/state' && m.text === '0.6', 'threshold 0.6', 10_000, n);
  t.equal(logLines.filter((l) => /"msg":"command ignored"/.test(l)).length, 4, 'four bad commands logged and ignored');
  t.notOk(w.messages.some((m) => m.topic === 'zeroq/ha1/threshold/state' && m.text !== '0.25' && m.text !== '0.6'), 'no garbage state');
  // The frame in the engine when the command came may still use the old threshold; later ones not.
  const seen = Math.max(0, ...w.messages.filter((m) => m.topic === 'zeroq/ha1/detections').map((m) => m.json.frame as number));
  const after = await w.waitFor((m) => m.topic === 'zeroq/ha1/detections' && m.json.frame > seen + 1 && m.json.detections.length > 0, 'detections after', 20_000);
  t.ok(after.json.detections.every((x: { score: number }) => x.score > 0.6), 'every detection above the new threshold');
  // The snapshot button.
  n = w.messages.length;
  await c.publishAsync('zeroq/ha1/snapshot/set', 'PRESS', { qos: 1 });
  const snap = await w.waitFor((m) => m.topic === 'zeroq/ha1/snapshot' && m.payload[0] === 0xff, 'a snapshot on request', 10_000, n);
  t.ok(snap.payload.length > 1000);
  // Detection off: no more frames run, objects end; on again: they run again.
  n = w.messages.length;
  await c.publishAsync('zeroq/ha1/detect/set', 'OFF', { qos: 1 });
  await w.waitFor((m) => m.topic === 'zeroq/ha1/detect/state' && m.text === 'OFF', 'detect off', 10_000, n);
  await w.waitFor((m) => m.topic === 'zeroq/ha1/status' && m.json.cameras.main.detecting === false, 'status says off', 10_000, n);
  const processed = d.cameras.get('main')!.counts.processed;
  const captured = d.cameras.get('main')!.counts.captured;
  const st = await w.waitFor((m) => m.topic === 'zeroq/ha1/stats' && m.json.cameras.main.frames.captured >= captured + 6, 'six more frames captured', 15_000, n);
  t.ok(st.json.cameras.main.frames.processed <= processed + 1, 'frames keep coming, none is run');
  n = w.messages.length;
  await c.publishAsync('zeroq/ha1/detect/set', 'ON', { qos: 1 });
  await w.waitFor((m) => m.topic === 'zeroq/ha1/detections', 'detections again', 10_000, n);
  t.equal(await d.stop(0), 0);
});
