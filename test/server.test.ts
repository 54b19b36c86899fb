/**
 * The retraining server as a real process (zeroq serve) with a real mosquitto: publishing (signed
 * sets only), channels, history, rollback, retained announcements, conditional and ranged
 * downloads, device tokens and reports, the page, the hard-frame pool with its limits, kill -9
 * during a publish and during a download, and retraining jobs.
 */
import t from 'tap';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseZqw, signZqw, writeZqw } from '../src/qnet/zqw.js';
import { dataPath } from '../src/util/paths.js';
import { NetBuilder, randomQNet, rng } from './helpers/random-qnet.js';
import { Watcher } from './helpers/daemon.js';
import { mosquittoBinary, startMosquitto } from './helpers/mosquitto.js';
import { ServerProcess } from './helpers/server.js';
import { quantizeW8, zeroq } from './helpers/zeroq-cli.js';

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'zeroq-server-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A small weight set ("small"), distinct per seed. */
function smallSet(seed: number, key?: KeyObject): Buffer {
  const b = new NetBuilder({ c: 3, h: 8, w: 8 }, 'small');
  b.conv({ filters: 8, size: 3, stride: 2, from: -1 });
  b.conv({ filters: 18, size: 1, pad: 0, activation: 'linear' });
  b.yolo();
  const buf = writeZqw(randomQNet(b.build(), rng(seed)), { source: { model: 'small' }, created: '2026-01-01T00:00:00.000Z' });
  return key ? signZqw(buf, key) : buf;
}

function keyFiles(dir: string, name: string): { priv: KeyObject; pub: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = path.join(dir, `${name}.pub`);
  const key = path.join(dir, `${name}.key`);
  writeFileSync(pub, publicKey.export({ format: 'pem', type: 'spki' }) as string);
  writeFileSync(key, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600 });
  return { priv: privateKey, pub, key };
}

async function api(url: string, init: RequestInit & { token?: string } = {}): Promise<{ status: number; headers: Headers; json: any; bytes: Buffer }> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  const r = await fetch(url, { ...init, headers });
  const bytes = Buffer.from(await r.arrayBuffer());
  let json;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, json, bytes };
}

const publish = (url: string, token: string, data: Uint8Array, channel: string) =>
  api(`${url}/v1/sets?channel=${channel}`, { method: 'POST', token, body: data as unknown as NonNullable<RequestInit['body']>, headers: { 'content-type': 'application/octet-stream' } });

const haveMosquitto = !!mosquittoBinary();

t.test('publish, channels, history, rollback, announcements, conditional and ranged downloads, devices, the page', { timeout: 120_000, skip: !haveMosquitto && 'no mosquitto' }, async (t) => {
  const dir = tmpdir(t);
  const pub = keyFiles(dir, 'publisher');
  const other = keyFiles(dir, 'other');
  const broker = await startMosquitto();
  t.teardown(() => broker.dispose());
  const s = ServerProcess.start(path.join(dir, 'data'), ['--listen', '127.0.0.1:0', '--trust', pub.pub, '--mqtt-url', broker.url]);
  t.teardown(() => void s.kill('SIGKILL'));
  const url = await s.ready;
  const token = s.adminToken;
  const w = await Watcher.connect(broker.url, ['zeroq/updates/#']);
  t.teardown(() => w.close());

  // Refused: unsigned, signed by a key the server does not trust, no or a wrong admin token.
  writeFileSync(path.join(dir, 'unsigned.zqw'), smallSet(1));
  let r = await zeroq(['publish', path.join(dir, 'unsigned.zqw'), '--server', url, '--channel', 'stable', '--token', token]);
  t.equal(r.code, 2);
  t.match(r.stderr, /not signed/);
  let h = await publish(url, token, smallSet(1), 'stable');
  t.equal(h.status, 422, 'the server refuses an unsigned set too');
  t.equal(h.json.error, 'zqw-signature');
  h = await publish(url, token, smallSet(1, other.priv), 'stable');
  t.equal(h.status, 422);
  t.match(h.json.message, /not trusted/);
  t.equal((await publish(url, '', smallSet(1, pub.priv), 'stable')).status, 401);
  t.equal((await publish(url, 'wrong', smallSet(1, pub.priv), 'stable')).status, 403);
  t.equal((await api(`${url}/v1/models/small/channels/stable/latest`)).status, 404, 'nothing published yet');

  // Version 1 to stable, through the command line (detached signature: it travels inside the file).
  const v1 = smallSet(1);
  writeFileSync(path.join(dir, 'v1.zqw'), v1);
  t.equal((await zeroq(['sign', path.join(dir, 'v1.zqw'), '--key', pub.key, '--detached'])).code, 0);
  r = await zeroq(['publish', path.join(dir, 'v1.zqw'), '--server', url, '--channel', 'stable', '--token', token, '--publisher', 'alice', '--json']);
  t.equal(r.code, 0, r.stderr);
  const d1 = JSON.parse(r.stdout);
  t.match(d1, { created: true, model: 'small', channel: 'stable', version: 1, parent: null, publisher: 'alice', bits: Number });
  const a1 = await w.waitFor((m) => m.topic === 'zeroq/updates/small/stable' && m.json?.version === 1, 'announcement of version 1');
  t.equal(a1.json.sha256, d1.sha256);
  t.equal(a1.json.url, `${url}/v1/blobs/${d1.sha256}`, 'the announcement carries the full download URL');

  // A device: token, conditional check, report.
  const dev = (await api(`${url}/v1/devices`, { method: 'POST', token, body: JSON.stringify({ id: 'cam1' }), headers: { 'content-type': 'application/json' } })).json.token as string;
  t.match(dev, /^zqd_/);
  h = await api(`${url}/v1/models/small/channels/stable/latest`, { token: dev, headers: { 'x-zeroq-running': '0'.repeat(64), 'x-zeroq-state': 'idle' } });
  t.equal(h.status, 200);
  t.equal(h.headers.get('etag'), `"${d1.sha256}"`);
  h = await api(`${url}/v1/models/small/channels/stable/latest`, { token: dev, headers: { 'if-none-match': `"${d1.sha256}"`, 'x-zeroq-running': d1.sha256, 'x-zeroq-state': 'idle' } });
  t.equal(h.status, 304, 'unchanged: 304');
  t.equal((await api(`${url}/v1/models/small/channels/stable/latest`, { token: 'zqd_forged' })).status, 403, 'an unknown device token is refused');
  const devices = (await api(`${url}/v1/devices`, { token })).json.devices;
  t.match(devices, [{ id: 'cam1', report: { model: 'small', channel: 'stable', running: d1.sha256, version: 1, state: 'idle' } }]);

  // The whole file, and the same in two ranged parts.
  const whole = await api(`${url}${d1.url}`);
  t.equal(whole.status, 200);
  t.equal(sha(whole.bytes), d1.sha256);
  t.equal(whole.bytes.length, d1.size);
  t.ok(parseZqw(whole.bytes).signature, 'what is served carries the signature');
  const p1 = await api(`${url}${d1.url}`, { headers: { range: 'bytes=0-99' } });
  const p2 = await api(`${url}${d1.url}`, { headers: { range: 'bytes=100-' } });
  t.equal(p1.status, 206);
  t.equal(p2.headers.get('content-range'), `bytes 100-${d1.size - 1}/${d1.size}`);
  t.equal(sha(Buffer.concat([p1.bytes, p2.bytes])), d1.sha256, 'the two ranges make the file');
  t.equal((await api(`${url}${d1.url}`, { headers: { range: `bytes=${d1.size}-` } })).status, 416);
  t.equal((await api(`${url}/v1/blobs/${'1'.repeat(64)}`)).status, 404);

  // Version 2: parent 1; to canary first, then promoted to stable (same version, no copy).
  h = await publish(url, token, smallSet(2, pub.priv), 'canary');
  t.equal(h.status, 201);
  t.match(h.json, { version: 2, parent: null, channel: 'canary' }, 'a new channel: no parent unless given');
  h = await api(`${url}/v1/sets?channel=stable&parent=1`, { method: 'POST', token, body: smallSet(2, pub.priv) as unknown as NonNullable<RequestInit['body']>, headers: { 'content-type': 'application/octet-stream' } });
  t.equal(h.status, 200, 'already stored: promoted, not created');
  t.match(h.json, { created: false, version: 2, channel: 'stable' });
  h = await publish(url, token, smallSet(3, pub.priv), 'stable');
  t.match(h.json, { version: 3, parent: 2 }, 'parent: the version the channel ran');
  await w.waitFor((m) => m.topic === 'zeroq/updates/small/stable' && m.json?.version === 3, 'announcement of version 3');

  // Rollback: to the previous, then to a given version.
  r = await zeroq(['rollback', '--server', url, '--model', 'small', '--channel', 'stable', '--token', token]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /now at version 2/);
  await w.waitFor((m) => m.topic === 'zeroq/updates/small/stable' && m.json?.version === 2 && m.json.sha256 === sha(smallSet(2, pub.priv)), 'the rollback announced');
  h = await api(`${url}/v1/models/small/channels/stable/rollback`, { method: 'POST', token, body: JSON.stringify({ to: 1 }), headers: { 'content-type': 'application/json' } });
  t.equal(h.json.version, 1);
  h = await api(`${url}/v1/models/small/channels/stable/history`);
  t.same(h.json.history.map((e: any) => [e.action, e.version, e.from]), [['publish', 1, null], ['publish', 2, 1], ['publish', 3, 2], ['rollback', 2, 3], ['rollback', 1, 2]]);
  t.equal((await api(`${url}/v1/models/small/channels/stable/rollback`, { method: 'POST', token, body: JSON.stringify({ to: 9 }), headers: { 'content-type': 'application/json' } })).status, 404);

  // A subscriber that comes later gets the current version, retained.
  const late = await Watcher.connect(broker.url, ['zeroq/updates/small/stable']);
  t.teardown(() => late.close());
  const ret = await late.waitFor((m) => m.retain, 'retained announcement');
  t.equal(ret.json.version, 1);

  // The page: models, channels, versions with AP50, devices.
  h = await api(`${url}/`);
  t.equal(h.status, 200);
  const page = h.bytes.toString();
  t.match(page, /<h2>small<\/h2>/);
  t.match(page, /<td>stable<\/td><td class="n">1<\/td>/);
  t.match(page, /<td>canary<\/td><td class="n">2<\/td>/);
  t.match(page, /<td>cam1<\/td><td>small<\/td><td>stable<\/td><td class="n">1<\/td><td>idle<\/td>/);
  t.match(page, /<td>alice<\/td>/);

  // State survives a restart.
  t.equal((await s.kill('SIGTERM')).code, 0);
  const s2 = ServerProcess.start(path.join(dir, 'data'), ['--listen', '127.0.0.1:0', '--trust', pub.pub]);
  t.teardown(() => void s2.kill('SIGKILL'));
  const url2 = await s2.ready;
  t.equal((await api(`${url2}/v1/models/small/channels/stable/latest`)).json.version, 1);
  t.match((await api(`${url2}/v1/devices`, { token })).json.devices, [{ id: 'cam1', report: { version: 1 } }], 'device reports are kept');
});

t.test('hard frames: a device token, a size limit, a rate limit per device, images only', { timeout: 60_000 }, async (t) => {
  const dir = tmpdir(t);
  const s = ServerProcess.start(path.join(dir, 'data'), ['--listen', '127.0.0.1:0', '--max-frame-kb', '200', '--frames-per-hour', '3600', '--frame-burst', '3', '--pool-max', '4']);
  t.teardown(() => void s.kill('SIGKILL'));
  const url = await s.ready;
  const token = s.adminToken;
  const dev = (await api(`${url}/v1/devices`, { method: 'POST', token, body: JSON.stringify({ id: 'cam1' }), headers: { 'content-type': 'application/json' } })).json.token as string;
  const dev2 = (await api(`${url}/v1/devices`, { method: 'POST', token, body: JSON.stringify({ id: 'cam2' }), headers: { 'content-type': 'application/json' } })).json.token as string;
  const jpeg = readFileSync(dataPath('coco-val', 'images', '000000000139.jpg'));
  const up = (tok: string, body: Buffer, type = 'image/jpeg') => api(`${url}/v1/frames`, { method: 'POST', token: tok, body: body as unknown as NonNullable<RequestInit['body']>, headers: { 'content-type': type, 'x-zeroq-meta': JSON.stringify({ scores: [0.26, 0.3] }) } });
  t.equal((await up('', jpeg)).status, 401, 'no token');
  t.equal((await up('zqd_nope', jpeg)).status, 403, 'unknown token');
  t.equal((await up(dev, Buffer.concat([jpeg, Buffer.alloc(200 * 1024)]))).status, 413, 'too large');
  t.equal((await up(dev, Buffer.from('not an image at all'), 'image/jpeg')).status, 400, 'not an image');
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await up(dev, jpeg)).status);
  t.same(codes.slice(0, 3), [201, 201, 201], 'the burst');
  const limited = await up(dev, jpeg);
  t.equal(limited.status, 429, 'then rate-limited');
  t.ok(Number(limited.headers.get('retry-after')) >= 1, 'with Retry-After');
  t.equal((await up(dev2, jpeg)).status, 201, 'per device: another device still uploads');
  t.equal((await up(dev2, jpeg)).status, 201);
  const pool = readdirSync(path.join(dir, 'data', 'pool')).filter((f) => f.endsWith('.jpg'));
  t.equal(pool.length, 4, 'the pool keeps its newest 4');
  const meta = JSON.parse(readFileSync(path.join(dir, 'data', 'pool', `${pool[0]}.json`), 'utf8'));
  t.match(meta, { width: 640, height: 426, meta: { scores: [0.26, 0.3] } });
  t.match((await api(`${url}/`)).bytes.toString(), /Hard frames in the pool: 4/);
});

/** Sends the headers and the first `part` bytes of a publish, and leaves the request open. */
function startPublish(url: string, token: string, data: Buffer, part: number): Promise<http.ClientRequest> {
  return new Promise((resolve) => {
    const u = new URL(`${url}/v1/sets?channel=stable`);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': data.length } });
    req.on('error', () => undefined);
    req.write(data.subarray(0, part), () => resolve(req));
  });
}

t.test('kill -9 during a publish and during a download: no version lost, no half-written file, the download resumes', { timeout: 120_000 }, async (t) => {
  const dir = tmpdir(t);
  const k = keyFiles(dir, 'k');
  const data = path.join(dir, 'data');
  const args = ['--listen', '127.0.0.1:0', '--trust', k.pub];
  let s = ServerProcess.start(data, args);
  t.teardown(() => void s.kill('SIGKILL'));
  let url = await s.ready;
  const token = s.adminToken;
  const sets = Array.from({ length: 12 }, (_, i) => smallSet(10 + i, k.priv));

  // Publishes one after another; kill -9 at a moment that falls somewhere inside the stream of requests.
  const acked: string[] = [];
  const publishing = (async () => {
    for (const set of sets) {
      const h = await publish(url, token, set, 'stable').catch(() => undefined);
      if (!h) return;
      if (h.status === 201) acked.push(sha(set));
    }
  })();
  while (acked.length < 4) await new Promise((r) => setImmediate(r));
  await s.kill('SIGKILL');
  await publishing;

  // One more, cut in the middle of its body.
  s = ServerProcess.start(data, args);
  url = await s.ready;
  const extra = smallSet(99, k.priv);
  const req = await startPublish(url, token, extra, Math.floor(extra.length / 2));
  await s.kill('SIGKILL');
  req.destroy();

  s = ServerProcess.start(data, args);
  url = await s.ready;
  const model = (await api(`${url}/v1/models/small`)).json;
  const stored = new Set(model.versions.map((v: any) => v.sha256));
  for (const a of acked) t.ok(stored.has(a), `acknowledged version ${a.slice(0, 8)} is there`);
  t.notOk(stored.has(sha(extra)), 'the interrupted publish left no version');
  t.same(model.versions.map((v: any) => v.version), model.versions.map((_: unknown, i: number) => i + 1), 'versions numbered without gaps');
  const latest = (await api(`${url}/v1/models/small/channels/stable/latest`)).json;
  t.equal(latest.version, model.versions.at(-1).version, 'the channel points at the last stored version');
  for (const f of readdirSync(path.join(data, 'blobs'))) {
    t.notOk(f.endsWith('.tmp'), `no temporary file left (${f})`);
    if (f.endsWith('.zqw')) t.equal(sha(readFileSync(path.join(data, 'blobs', f))), f.slice(0, -4), `${f.slice(0, 8)}: complete`);
  }
  for (const v of model.versions) {
    const b = await api(`${url}/v1/blobs/${v.sha256}`);
    t.equal(sha(b.bytes), v.sha256, `version ${v.version} downloads whole`);
  }

  // A download cut by kill -9 resumes with Range after the restart.
  const big = (() => {
    // A set large enough not to fit one socket buffer.
    const b = new NetBuilder({ c: 3, h: 64, w: 64 }, 'small');
    b.conv({ filters: 256, size: 3, stride: 2, from: -1 });
    b.conv({ filters: 256, size: 3 });
    b.conv({ filters: 18, size: 1, pad: 0, activation: 'linear' });
    b.yolo();
    return signZqw(writeZqw(randomQNet(b.build(), rng(5)), { source: { model: 'small' }, deflate: false }), k.priv);
  })();
  const pb = await publish(url, token, big, 'stable');
  t.equal(pb.status, 201, JSON.stringify(pb.json));
  const got: Buffer[] = [];
  await new Promise<void>((resolve) => {
    const u = new URL(`${url}/v1/blobs/${sha(big)}`);
    const req2 = http.get({ host: u.hostname, port: u.port, path: u.pathname }, (res) => {
      res.once('data', (c: Buffer) => {
        got.push(c);
        res.pause(); // a slow device: the server is killed while the rest is still to come
        void s.kill('SIGKILL').then(() => {
          res.destroy();
          resolve();
        });
      });
    });
    req2.on('error', () => undefined);
  });
  const have = Buffer.concat(got);
  t.ok(have.length > 0 && have.length < big.length, `the first download stopped part way (${have.length} of ${big.length} bytes)`);
  s = ServerProcess.start(data, args);
  url = await s.ready;
  const rest = await api(`${url}/v1/blobs/${sha(big)}`, { headers: { range: `bytes=${have.length}-`, 'if-range': `"${sha(big)}"` } });
  t.equal(rest.status, 206);
  t.equal(sha(Buffer.concat([have, rest.bytes])), sha(big), 'resumed: the whole file');
  await s.kill('SIGTERM');
});

const cfg = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');

t.test('retraining jobs: scored, published to canary only when AP50 >= current - tolerance, with a log', { timeout: 400_000, skip: !existsSync(cfg) && 'no model' }, async (t) => {
  const dir = tmpdir(t);
  const k = keyFiles(dir, 'server');
  const set = await quantizeW8(dir);
  const golden = dataPath('coco-val', 'images', '000000000139.jpg');
  t.equal((await zeroq(['sign', set, '--key', k.key, '--golden', golden])).code, 0);
  const calib = path.join(dir, 'calib.txt');
  writeFileSync(calib, readFileSync(dataPath('coco-val', 'calib.txt'), 'utf8').split('\n').slice(0, 4).map((l) => dataPath('coco-val', l)).join('\n') + '\n');
  const common = ['--listen', '127.0.0.1:0', '--key', k.key, '--validation', dataPath('coco-val', 'dev.txt'), '--validation-limit', '20', '--calib', calib];
  const tiny = '--iterations 1 --epochs 1 --max-steps 2 --calib-images 2 --batch 2 --act-calib minmax';
  // A learning rate that wrecks the network: the retrained set must not reach canary.
  let s = ServerProcess.start(path.join(dir, 'data'), [...common, '--tolerance', '0', '--retrain-args', `${tiny} --lr 0.9`]);
  t.teardown(() => void s.kill('SIGKILL'));
  let url = await s.ready;
  const token = s.adminToken;
  let r = await zeroq(['publish', set, '--server', url, '--channel', 'stable', '--token', token]);
  t.equal(r.code, 0, r.stderr);
  // A hard frame in the pool: part of the training images.
  const dev = (await api(`${url}/v1/devices`, { method: 'POST', token, body: JSON.stringify({ id: 'cam1' }), headers: { 'content-type': 'application/json' } })).json.token as string;
  t.equal((await api(`${url}/v1/frames`, { method: 'POST', token: dev, body: readFileSync(dataPath('coco-val', 'images', '000000000785.jpg')) as unknown as NonNullable<RequestInit['body']>, headers: { 'content-type': 'image/jpeg' } })).status, 201);

  r = await zeroq(['job', 'retrain', '--server', url, '--token', token, '--model', 'yolo-fastest-1.1', '--wait']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /training images: 4 of calib\.txt \+ 1 from the pool/);
  t.match(r.stdout, /current version 1: \d+\.\d\d/, 'the current version was scored (when it was published)');
  t.match(r.stdout, /not published: AP50 \d+\.\d\d is below \d+\.\d\d/, 'the log says why it was not published');
  let m = (await api(`${url}/v1/models/yolo-fastest-1.1`)).json;
  t.equal(m.versions.length, 1);
  t.notOk(m.channels.canary, 'nothing on canary');
  const baseAp = m.versions[0].ap50 as number;
  t.ok(baseAp > 0.05, `version 1 AP50 ${baseAp}`);
  await s.kill('SIGTERM');

  // A gentle run with a wide tolerance: published to canary, version 2, parent 1, signed by the server, with self-test frames.
  s = ServerProcess.start(path.join(dir, 'data'), [...common, '--tolerance', '100', '--retrain-args', tiny, '--golden', golden]);
  url = await s.ready;
  r = await zeroq(['job', 'retrain', '--server', url, '--token', token, '--model', 'yolo-fastest-1.1', '--wait']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /published version 2 to canary/);
  m = (await api(`${url}/v1/models/yolo-fastest-1.1`)).json;
  t.match(m.versions[1], { version: 2, parent: 1, golden: 1, publisher: /^job / });
  t.ok(typeof m.versions[1].ap50 === 'number', 'scored');
  t.equal(m.channels.canary.version, 2);
  t.equal(m.channels.stable.version, 1, 'stable untouched');
  const blob = await api(`${url}/v1/blobs/${m.versions[1].sha256}`);
  writeFileSync(path.join(dir, 'v2.zqw'), blob.bytes);
  t.equal((await zeroq(['verify', path.join(dir, 'v2.zqw'), '--trust', k.pub])).code, 0, 'signed by the server key');
  const jobs = (await api(`${url}/v1/jobs`)).json.jobs;
  t.match(jobs.map((j: any) => [j.kind, j.state]), [['score', 'done'], ['retrain', 'done'], ['retrain', 'done']]);
  const scored = await api(`${url}/v1/jobs/${jobs[0].id}`);
  t.match(scored.json.log, /version 1 \(yolo-fastest-1\.1-w8\S+\): AP50 \d+\.\d\d on 20 images of dev\.txt/, 'the publish was scored by a job');
  t.match((await api(`${url}/`)).bytes.toString(), /published version 2 to canary/);
  await s.kill('SIGTERM');
});
