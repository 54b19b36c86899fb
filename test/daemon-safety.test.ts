/**
 * Safe by default: credentials never shown (logs, /healthz, retained status, --print), passwords
 * from files, the embedded broker's login, ACL and limits, rate-limited discovery re-sends, nothing
 * listening beyond localhost, and the systemd unit's sandbox.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { connectAsync, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { Daemon } from '../src/daemon/daemon.js';
import { guardPacketSize } from '../src/daemon/mqtt/broker.js';
import { redact, withPassword } from '../src/util/redact.js';
import { dataPath } from '../src/util/paths.js';
import { Watcher, repo } from './helpers/daemon.js';
import { freePort, mosquittoBinary, startMosquitto } from './helpers/mosquitto.js';

const haveModel = existsSync(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'zeroq-safe-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A pino logger into memory, with a wait for a line. */
function memoryLog(level = 'debug') {
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const sink = new PassThrough();
  let tail = '';
  sink.on('data', (b: Buffer) => {
    const parts = (tail + b.toString()).split('\n');
    tail = parts.pop() ?? '';
    for (const l of parts) {
      lines.push(l);
      for (const w of [...waiters]) if (w.re.test(l)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(l));
    }
  });
  const wait = (re: RegExp, timeoutMs = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const have = lines.find((l) => re.test(l));
      if (have) return resolve(have);
      const timer = setTimeout(() => reject(new Error(`no log line ${re}:\n${lines.slice(-20).join('\n')}`)), timeoutMs);
      waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  return { log: pino({ level }, sink), lines, wait };
}

t.test('redact: user and password of every URL in a text; withPassword', async (t) => {
  t.equal(redact('ffmpeg exited: rtsp://alice:s3cr3t@10.0.0.2:554/cam: 401 Unauthorized'), 'ffmpeg exited: rtsp://***@10.0.0.2:554/cam: 401 Unauthorized');
  t.equal(redact("Input #0, from 'rtsp://u@h/x'"), "Input #0, from 'rtsp://***@h/x'");
  t.equal(redact('mqtt://bob:p%40ss@broker:1883 and http://x/y@z'), 'mqtt://***@broker:1883 and http://x/y@z');
  t.equal(redact('/dev/video0'), '/dev/video0');
  t.equal(withPassword('rtsp://alice@cam/stream', 'p@ss:w/d'), 'rtsp://alice:p%40ss%3Aw%2Fd@cam/stream');
  t.equal(withPassword('rtsp://alice:old@cam/stream', 'new'), 'rtsp://alice:new@cam/stream');
});

/**
 * A camera that asks for a password: answers every RTSP request with 401 and records the
 * Authorization headers it gets.
 */
async function fakeRtspCamera(): Promise<{ port: number; auth: string[]; close(): Promise<void> }> {
  const auth: string[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const req = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const cseq = /^CSeq:\s*(\d+)/im.exec(req)?.[1] ?? '1';
        const a = /^Authorization:\s*(.+)$/im.exec(req)?.[1];
        if (a) auth.push(a.trim());
        s.write(`RTSP/1.0 401 Unauthorized\r\nCSeq: ${cseq}\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n`);
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    auth,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

t.test('credentials of the camera and the broker never show: logs, /healthz, retained status, --print; the camera password comes from a file', { timeout: 90_000, skip: (!mosquittoBinary() && 'no mosquitto') || (!haveModel && 'no model') }, async (t) => {
  const dir = tmpdir(t);
  const cam = await fakeRtspCamera();
  t.teardown(() => cam.close());
  const broker = await startMosquitto({ user: { name: 'bob', password: 'pw0rd-mqtt' } });
  t.teardown(() => broker.dispose());
  const pw = path.join(dir, 'camera-password');
  writeFileSync(pw, 's3cr3t-cam\n');
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(
    config,
    [
      'device_id: safe',
      'source:',
      `  url: rtsp://alice@127.0.0.1:${cam.port}/cam`,
      `  password_file: ${pw}`,
      '  restart: { initial_ms: 200, max_ms: 400 }',
      'mqtt:',
      `  url: mqtt://bob:pw0rd-mqtt@127.0.0.1:${broker.port}`,
      '  flush_timeout_s: 1',
      `http: { port: ${await freePort()} }`,
      'print: true',
    ].join('\n') + '\n',
  );
  const w = await Watcher.connect(broker.url, ['zeroq/safe/#'], { client: { username: 'bob', password: 'pw0rd-mqtt' } });
  t.teardown(() => w.close());
  const mem = memoryLog();
  const out = new PassThrough();
  let printed = '';
  out.on('data', (b: Buffer) => (printed += b.toString()));
  const d = await Daemon.start({ load: { file: config, env: {} }, out, log: mem.log, version: 'test' });
  t.teardown(() => d.stop(1));
  await mem.wait(/"msg":"mqtt connected"/);
  // Three failed starts: each logs ffmpeg's error, which names the URL with the password in it.
  const status = await w.waitFor((m) => m.topic === 'zeroq/safe/status' && m.json?.source.restarts >= 3, 'three restarts');
  t.match(status.json.source.last_error, /401 Unauthorized/, 'the camera refused, as ffmpeg reported');
  t.equal(status.json.source.url, `rtsp://***@127.0.0.1:${cam.port}/cam`);
  t.ok(cam.auth.includes(`Basic ${Buffer.from('alice:s3cr3t-cam').toString('base64')}`), 'ffmpeg logged in with the password from the file');
  const health = await (await fetch(`http://127.0.0.1:${d.httpPort}/healthz`)).text();
  t.match(health, /rtsp:\/\/\*\*\*@127\.0\.0\.1/);
  const logs = mem.lines.join('\n');
  t.match(logs, /"msg":"source failed; restarting"/);
  t.match(logs, /"url":"mqtt:\/\/\*\*\*@127\.0\.0\.1/);
  const shown = { logs, health, printed, status: w.messages.map((m) => m.text).join('\n') };
  for (const [where, text] of Object.entries(shown)) {
    for (const secret of ['s3cr3t', 'alice', 'pw0rd', 'bob:']) t.notOk(text.includes(secret), `${secret} not in ${where}`);
  }
  t.ok(printed.includes('zeroq/safe/status'), '--print printed the status');
});

async function mqttClient(url: string, opts: Record<string, unknown> = {}): Promise<MqttClient> {
  return connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
}

/** Resolves with 'closed' when the broker drops the client, or 'acked' when the publish was taken. */
function publishOutcome(c: MqttClient, topic: string, payload: string | Buffer, retain: boolean): Promise<'closed' | 'acked'> {
  return new Promise((resolve) => {
    c.once('close', () => resolve('closed'));
    c.publish(topic, payload, { qos: 1, retain }, (err) => {
      if (!err) resolve('acked');
    });
  });
}

/** Listening TCP sockets of this process: local addresses. */
function listeningAddresses(): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  const out: string[] = [];
  for (const f of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').trim().split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c[3] !== '0A' || !inodes.has(c[9])) continue;
      const hex = c[1].split(':')[0];
      if (hex.length === 8) out.push(hex.match(/../g)!.reverse().map((h) => parseInt(h, 16)).join('.'));
      else out.push(hex === '00000000000000000000000001000000' ? '::1' : hex === '0000000000000000FFFF00000100007F' ? '::ffff:127.0.0.1' : `ipv6:${hex}`);
    }
  }
  return out;
}

t.test('embedded broker: only the daemon writes its topics; size and retained limits; discovery re-sends rate-limited; all on loopback', { timeout: 90_000, skip: !haveModel && 'no model' }, async (t) => {
  const dir = tmpdir(t);
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(
    config,
    [
      'device_id: safe2',
      `source: { url: ${dataPath('coco-val', 'images')}, fps: 4, loop: true }`,
      'mqtt:',
      '  embedded: { port: 0, max_message_bytes: 1048576, max_retained_bytes: 2097152 }',
      'homeassistant: { resend_min_interval_s: 1.5 }',
      'publish: { stats_interval_s: 1 }',
      `http: { port: ${await freePort()} }`,
    ].join('\n') + '\n',
  );
  const d = await Daemon.start({ load: { file: config, env: {} }, out: new PassThrough(), log: pino({ level: 'silent' }), version: 'test' });
  t.teardown(() => d.stop(1));
  const url = d.mqttUrl!;

  const listening = listeningAddresses();
  t.ok(listening.length >= 2, `broker and HTTP port listen: ${listening.join(', ')}`);
  t.same(listening.filter((a) => a !== '127.0.0.1' && a !== '::1' && a !== '::ffff:127.0.0.1'), [], 'nothing listens beyond loopback');

  const w = await Watcher.connect(url, ['#']);
  t.teardown(() => w.close());
  await w.waitFor((m) => m.topic === 'zeroq/safe2/availability' && m.text === 'online', 'online');
  await w.waitFor((m) => m.topic === 'zeroq/safe2/status', 'status');

  // Writing the daemon's own topics: refused, the client is disconnected, nothing is kept.
  for (const [topic, payload] of [
    ['zeroq/safe2/availability', 'offline'],
    ['zeroq/safe2/status', '{"v":1,"state":"running","fake":true}'],
    ['homeassistant/sensor/zeroq_safe2/person_count/config', '{}'],
  ]) {
    const c = await mqttClient(url);
    t.equal(await publishOutcome(c, topic, payload, true), 'closed', `a publish on ${topic} is refused`);
    c.end(true);
  }
  // Commands and Home Assistant's status are allowed.
  const ok = await mqttClient(url);
  t.equal(await publishOutcome(ok, 'zeroq/safe2/detect/set', 'ON', false), 'acked', 'a command topic is open');
  t.equal(await publishOutcome(ok, 'other/topic', 'x', false), 'acked', 'other topics are open');
  const late = await Watcher.connect(url, ['zeroq/safe2/availability', 'zeroq/safe2/status']);
  t.teardown(() => late.close());
  const avail = await late.waitFor((m) => m.topic === 'zeroq/safe2/availability' && m.retain, 'retained availability');
  t.equal(avail.text, 'online', 'the retained availability is still the daemon\'s');
  const st = await late.waitFor((m) => m.topic === 'zeroq/safe2/status' && m.retain, 'retained status');
  t.notOk(st.json.fake, 'the retained status is still the daemon\'s');

  // A message above max_message_bytes: the connection closes before the body is kept.
  const big = await mqttClient(url);
  t.equal(await publishOutcome(big, 'other/big', Buffer.alloc(5 * 1024 * 1024, 1), true), 'closed', '5 MB message refused');
  // Retained storage of other clients: 2 MiB in all.
  const r = await mqttClient(url);
  t.equal(await publishOutcome(r, 'other/r1', Buffer.alloc(900_000, 1), true), 'acked');
  t.equal(await publishOutcome(r, 'other/r2', Buffer.alloc(900_000, 2), true), 'acked');
  t.equal(await publishOutcome(r, 'other/r3', Buffer.alloc(900_000, 3), true), 'closed', 'the third retained message does not fit');
  const r2 = await mqttClient(url);
  t.equal(await publishOutcome(r2, 'other/r1', '', true), 'acked', 'clearing a retained message frees its room');
  t.equal(await publishOutcome(r2, 'other/r3', Buffer.alloc(900_000, 3), true), 'acked', 'then it fits');
  const kept = await Watcher.connect(url, ['other/#']);
  t.teardown(() => kept.close());
  await kept.waitFor((m) => m.topic === 'other/r3', 'r3 retained');
  t.same(kept.messages.filter((m) => m.retain).map((m) => m.topic).sort(), ['other/r2', 'other/r3']);
  t.notOk(kept.messages.some((m) => m.topic === 'other/big'), 'the big message was not kept');
  for (const c of [ok, big, r, r2]) c.end(true);

  // 50 `online` messages from Home Assistant: one re-send at once, one at the end of the interval.
  const n = w.messages.length;
  const isResend = (m: { topic: string; retain: boolean }) => m.topic === 'homeassistant/sensor/zeroq_safe2/person_count/config' && !m.retain;
  const ha = await mqttClient(url);
  for (let i = 0; i < 50; i++) ha.publish('homeassistant/status', 'online');
  await w.waitFor(isResend, 'first re-send', 10_000, n);
  const first = w.messages.slice(n).findIndex(isResend) + n;
  await w.waitFor(isResend, 'second re-send', 10_000, first + 1);
  // Everything published before this marker has been delivered by the time it arrives.
  ha.publish('other/marker', 'x');
  await w.waitFor((m) => m.topic === 'other/marker', 'marker', 10_000, n);
  t.equal(w.messages.slice(n).filter(isResend).length, 2, '50 online messages: 2 discovery re-sends');
  ha.end(true);
});

t.test('embedded broker with a password: required of everyone but the daemon; required beyond loopback', { timeout: 60_000, skip: !haveModel && 'no model' }, async (t) => {
  const dir = tmpdir(t);
  const pw = path.join(dir, 'broker-password');
  writeFileSync(pw, 'ha-s3cret\n');
  const config = path.join(dir, 'zeroq.yaml');
  const write = (host: string, auth: boolean) =>
    writeFileSync(
      config,
      [
        'device_id: safe3',
        `source: { url: ${dataPath('coco-val', 'images')}, fps: 2, loop: true }`,
        'mqtt:',
        `  embedded: { host: "${host}", port: 0${auth ? `, username: ha, password_file: ${pw}` : ''} }`,
        'http: { port: 0 }',
      ].join('\n') + '\n',
    );
  write('0.0.0.0', false);
  await t.rejects(
    Daemon.start({ load: { file: config, env: {} }, out: new PassThrough(), log: pino({ level: 'silent' }), version: 'test' }),
    { code: 'config', message: /mqtt\.embedded: the embedded broker listens on 0\.0\.0\.0, beyond localhost: set username and password/ },
  );
  write('127.0.0.1', true);
  const d = await Daemon.start({ load: { file: config, env: {} }, out: new PassThrough(), log: pino({ level: 'silent' }), version: 'test' });
  t.teardown(() => d.stop(1));
  const url = d.mqttUrl!;
  await t.rejects(mqttClient(url), /Not authorized|Bad username or password/i, 'anonymous refused');
  await t.rejects(mqttClient(url, { username: 'ha', password: 'wrong' }), /Not authorized|Bad username or password/i, 'wrong password refused');
  const w = await Watcher.connect(url, ['zeroq/safe3/availability'], { client: { username: 'ha', password: 'ha-s3cret', reconnectPeriod: 0 } });
  t.teardown(() => w.close());
  const m = await w.waitFor((x) => x.retain, 'retained availability');
  t.equal(m.text, 'online', 'the daemon itself logged in with its own secret');
});

t.test('the packet size guard closes a connection on the header of a large packet', async (t) => {
  const server = net.createServer((s) => guardPacketSize(s, 1000, () => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const send = (bytes: Buffer) =>
    new Promise<'closed' | 'open'>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => c.write(bytes));
      c.on('close', () => resolve('closed'));
      c.on('error', () => undefined);
      setTimeout(() => (c.destroy(), resolve('open')), 500).unref();
    });
  // PUBLISH with remaining length 999 (0xe7 0x07), split over two packets' worth of bytes: kept open.
  t.equal(await send(Buffer.concat([Buffer.from([0x30, 0xe7, 0x07]), Buffer.alloc(999), Buffer.from([0xc0, 0x00])])), 'open');
  // Remaining length 1001: closed on its header alone.
  t.equal(await send(Buffer.from([0x30, 0xe9, 0x07])), 'closed');
  t.equal(await send(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), 'closed', 'a malformed length closes too');
});

t.test('the systemd unit keeps its sandbox', async (t) => {
  const unit = readFileSync(path.join(repo, 'systemd', 'zeroq.service'), 'utf8');
  for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'DevicePolicy=closed', 'CapabilityBoundingSet=', 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK', 'SystemCallFilter=@system-service', 'User=zeroq']) {
    t.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line);
  }
});

