import t from 'tap';
import { pino } from 'pino';
import { Publisher, type PublisherOptions } from '../src/daemon/mqtt/publisher.js';
import { startEmbeddedBroker } from '../src/daemon/mqtt/broker.js';
import { discoveryConfigs } from '../src/daemon/mqtt/ha-discovery.js';
import { topicsFor } from '../src/daemon/mqtt/topics.js';
import { startMosquitto, mosquittoBinary } from './helpers/mosquitto.js';
import { Watcher } from './helpers/daemon.js';

const log = pino({ level: 'silent' });

function publisher(url: string, o: Partial<PublisherOptions> = {}): Publisher {
  return new Publisher({
    url,
    clientId: `pub-${Math.random().toString(16).slice(2)}`,
    keepaliveS: 30,
    reconnect: { minMs: 100, maxMs: 400 },
    buffer: { maxMessages: 1000, maxBytes: 1 << 20 },
    maxInflight: 100,
    will: { topic: 'zq/dev/availability', payload: 'offline' },
    log,
    ...o,
  });
}

const once = <T extends unknown[]>(p: Publisher, ev: 'connect' | 'offline' | 'dropped') => new Promise<T>((r) => p.once(ev, (...a: unknown[]) => r(a as T)));

t.test('mosquitto restarted mid-stream: QoS 1 messages buffered meanwhile all arrive, online announced again', { skip: !mosquittoBinary() && 'no mosquitto' }, async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.dispose());
  // A subscriber with a persistent session, as a back end would use.
  const w = await Watcher.connect(broker.url, ['zq/dev/#'], { clientId: 'backend-1', clean: false });
  t.teardown(() => w.close());
  const p = publisher(broker.url);
  t.teardown(() => p.close('zq/dev/availability', 'stopped', 500));
  p.setState('zq/dev/availability', 'online');
  p.connect();
  await once(p, 'connect');
  await w.waitFor((m) => m.topic === 'zq/dev/availability' && m.text === 'online', 'online');
  for (let i = 1; i <= 5; i++) p.stream('zq/dev/detections', JSON.stringify({ frame: i }), 1);
  await w.waitFor((m) => m.json?.frame === 5, 'frame 5');
  t.ok(await p.flush(5000), 'acknowledged (else QoS 1 may legitimately deliver them twice)');

  const offline = once(p, 'offline');
  await broker.stop('SIGTERM');
  await offline;
  t.notOk(p.connected);
  for (let i = 6; i <= 25; i++) p.stream('zq/dev/detections', JSON.stringify({ frame: i }), 1);
  p.setState('zq/dev/status', 'state-1');
  p.setState('zq/dev/status', 'state-2');
  t.equal(p.buffered, 20, 'frames buffered while the broker is away');

  const seenBefore = w.messages.length;
  const reconnected = once<[{ reconnect: boolean }]>(p, 'connect');
  await broker.start();
  const [info] = await reconnected;
  t.ok(info.reconnect);
  await w.waitFor((m) => m.json?.frame === 25, 'frame 25 after the restart', 30_000, seenBefore);
  await p.flush(5000);
  const frames = w.messages.filter((m) => m.topic === 'zq/dev/detections').map((m) => m.json.frame as number);
  t.same([...new Set(frames)].sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i + 1), 'every frame arrived');
  // Frames delivered just before the stop may come again (QoS 1 is at least once: the broker saved
  // them as unacknowledged for the subscriber); the buffered ones come once, in order.
  t.same(frames.filter((f) => f > 5), Array.from({ length: 20 }, (_, i) => i + 6), 'buffered frames in order, once');
  const after = w.messages.slice(seenBefore);
  t.ok(after.some((m) => m.topic === 'zq/dev/availability' && m.text === 'online'), 'online published again on reconnect');
  t.same(after.filter((m) => m.topic === 'zq/dev/status').map((m) => m.text), ['state-2'], 'only the latest state is sent');
  t.ok(
    after.findIndex((m) => m.topic === 'zq/dev/availability') < after.findIndex((m) => m.json?.frame === 6),
    'online comes before the buffered frames',
  );
  await p.close('zq/dev/availability', 'stopped', 2000);
  await w.waitFor((m) => m.topic === 'zq/dev/availability' && m.text === 'stopped', 'stopped');
});

t.test('the offline buffer is bounded: the oldest messages are dropped and counted', { skip: !mosquittoBinary() && 'no mosquitto' }, async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.dispose());
  // Subscribed with a persistent session before the broker goes away: the broker keeps the
  // subscription across its restart, so nothing the publisher drains can arrive before it.
  const w = await Watcher.connect(broker.url, ['zq/dev/detections'], { clientId: 'backend-2', clean: false });
  t.teardown(() => w.close());
  await broker.stop('SIGTERM');
  const p = publisher(broker.url, { buffer: { maxMessages: 5, maxBytes: 1 << 20 } });
  t.teardown(() => p.close('zq/dev/availability', 'stopped', 500));
  let dropped = 0;
  p.on('dropped', (n) => (dropped += n));
  p.connect();
  for (let i = 1; i <= 12; i++) p.stream('zq/dev/detections', JSON.stringify({ frame: i }), 1);
  t.equal(p.buffered, 5);
  t.equal(dropped, 7);
  t.equal(p.dropped, 7);
  // Byte bound: three 400-byte messages do not fit in 1000 bytes.
  const q = publisher(broker.url, { buffer: { maxMessages: 100, maxBytes: 1000 } });
  t.teardown(() => q.close('zq/dev/availability', 'stopped', 500));
  q.connect();
  for (let i = 0; i < 3; i++) q.stream('zq/dev/detections', 'x'.repeat(400), 1);
  t.equal(q.buffered, 2);
  t.equal(q.dropped, 1);

  const connected = once(p, 'connect');
  await broker.start();
  await connected;
  await w.waitFor((m) => m.json?.frame === 12, 'frame 12');
  await p.flush(5000);
  t.same(
    w.messages.filter((m) => m.json).map((m) => m.json.frame),
    [8, 9, 10, 11, 12],
    'the newest five arrive',
  );
  await p.close('zq/dev/availability', 'stopped', 2000);
  await q.close('zq/dev/availability', 'stopped', 2000);
});

t.test('last will: a connection that dies publishes offline; the reconnect publishes online', { skip: !mosquittoBinary() && 'no mosquitto' }, async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.dispose());
  const w = await Watcher.connect(broker.url, ['zq/dev/availability']);
  t.teardown(() => w.close());
  const p = publisher(broker.url);
  t.teardown(() => p.close('zq/dev/availability', 'stopped', 500));
  p.setState('zq/dev/availability', 'online');
  p.connect();
  await once(p, 'connect');
  await w.waitFor((m) => m.text === 'online', 'online');
  const n = w.messages.length;
  // Drop the TCP connection without an MQTT DISCONNECT, as a crash or network loss would.
  (p as unknown as { client: { stream: { destroy(): void } } }).client.stream.destroy();
  await w.waitFor((m) => m.text === 'offline', 'will', 30_000, n);
  await w.waitFor((m) => m.text === 'online', 'online again', 30_000, n + 1);
  const seq = w.messages.slice(n).map((m) => m.text);
  t.same(seq.slice(0, 2), ['offline', 'online']);
  t.equal(w.messages[n].retain, false, 'delivered live');
  await p.close('zq/dev/availability', 'stopped', 2000);
  // A newcomer sees the retained final state.
  const late = await Watcher.connect(broker.url, ['zq/dev/availability']);
  t.teardown(() => late.close());
  const m = await late.waitFor((x) => x.retain, 'retained availability');
  t.equal(m.text, 'stopped');
  await late.close();
});

t.test('embedded aedes broker carries the same interface; Home Assistant discovery resent on homeassistant/status online', async (t) => {
  const broker = await startEmbeddedBroker('127.0.0.1', 0, log);
  t.teardown(() => broker.close());
  const topics = topicsFor('zq', 'dev');
  const configs = discoveryConfigs({ discoveryPrefix: 'homeassistant', deviceId: 'dev', topics, classes: ['person', 'traffic light'], model: 'm', version: '0' });
  const p = publisher(broker.url);
  t.teardown(() => p.close(topics.availability, 'stopped', 500));
  p.setState(topics.availability, 'online');
  for (const [topic, payload] of configs) p.setState(topic, payload);
  p.subscribe('homeassistant/status');
  p.on('message', (topic, payload) => {
    if (topic === 'homeassistant/status' && payload.toString() === 'online') p.republish((x) => x.startsWith('homeassistant/'));
  });
  p.connect();
  await once(p, 'connect');
  const w = await Watcher.connect(broker.url, ['homeassistant/#']);
  t.teardown(() => w.close());
  const light = await w.waitFor((m) => m.topic === 'homeassistant/sensor/zeroq_dev/traffic_light_count/config', 'discovery');
  t.ok(light.retain);
  t.equal(light.json.state_topic, 'zq/dev/counts');
  t.equal(light.json.value_template, "{{ value_json.counts['traffic light'] | default(0) }}");
  t.equal(light.json.availability[0].topic, 'zq/dev/availability');
  // Retained messages arrive in no promised order: wait for this one too.
  t.ok(await w.waitFor((m) => m.topic === 'homeassistant/binary_sensor/zeroq_dev/online/config', 'online discovery', 10_000, 0));
  const n = w.messages.length;
  w.client.publish('homeassistant/status', 'online');
  const again = await w.waitFor((m) => m.topic.endsWith('/person_count/config') && !m.retain, 'discovery resent', 10_000, n);
  t.equal(again.json.unique_id, 'zeroq_dev_person_count');
  await p.close(topics.availability, 'stopped', 2000);
});
