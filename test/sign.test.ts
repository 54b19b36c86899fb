/**
 * Keys and signatures: zeroq keygen/sign/verify as real processes; the default trust list
 * (--trust, ZEROQ_TRUST) that every command reading a weight set applies; the daemon's model.trust
 * at start and on SIGHUP (a real daemon process on a real W8 weight set, mosquitto).
 */
import t from 'tap';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readZqw, writeZqw } from '../src/qnet/zqw.js';
import { loadTrust, setDefaultTrust } from '../src/qnet/keys.js';
import { dataPath } from '../src/util/paths.js';
import { NetBuilder, randomQNet, rng } from './helpers/random-qnet.js';
import { DaemonProcess, Watcher } from './helpers/daemon.js';
import { mosquittoBinary, startMosquitto } from './helpers/mosquitto.js';
import { quantizeW8, zeroq } from './helpers/zeroq-cli.js';

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'zeroq-sign-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function smallSet(file: string, seed = 1): void {
  const b = new NetBuilder({ c: 3, h: 8, w: 8 }, 'small');
  b.conv({ filters: 8, size: 3, stride: 2, from: -1 });
  b.conv({ filters: 18, size: 1, pad: 0, activation: 'linear' });
  b.yolo();
  writeFileSync(file, writeZqw(randomQNet(b.build(), rng(seed)), { source: { model: 'small' } }));
}

t.test('keygen, sign (embedded and detached), verify: exit 0, or 2 with the reason', async (t) => {
  const dir = tmpdir(t);
  const k = (n: string) => path.join(dir, n);
  let r = await zeroq(['keygen', '-o', k('a')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(statSync(k('a.key')).mode & 0o777, 0o600, 'private key readable by its owner only');
  t.match(readFileSync(k('a.pub'), 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
  t.match(r.stdout, /key id: +[0-9a-f]{64}/);
  r = await zeroq(['keygen', '-o', k('a')]);
  t.equal(r.code, 2, 'an existing key is not overwritten');
  t.match(r.stderr, /already exists/);
  t.equal((await zeroq(['keygen', '-o', k('b')])).code, 0);

  smallSet(k('s.zqw'));
  const unsigned = readFileSync(k('s.zqw'));
  r = await zeroq(['verify', k('s.zqw'), '--trust', k('a.pub')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /not signed \[zqw-signature\]/, 'unsigned: refused');
  r = await zeroq(['verify', k('s.zqw')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /no trusted keys/, 'verify without keys says so');

  r = await zeroq(['sign', k('s.zqw'), '--key', k('a.key')]);
  t.equal(r.code, 0, r.stderr);
  r = await zeroq(['verify', k('s.zqw'), '--trust', k('a.pub')]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^ok: /);
  r = await zeroq(['verify', k('s.zqw'), '--trust', k('b.pub'), k('a.pub'), '--json']);
  t.equal(r.code, 0, 'one trusted key among several is enough');
  t.equal(JSON.parse(r.stdout).ok, true);
  r = await zeroq(['verify', k('s.zqw'), '--trust', k('b.pub')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /which is not trusted/, 'another key: refused');
  r = await zeroq(['verify', k('s.zqw')], { env: { ZEROQ_TRUST: `${k('b.pub')},${k('a.pub')}` } });
  t.equal(r.code, 0, 'ZEROQ_TRUST, comma-separated');

  const signed = readFileSync(k('s.zqw'));
  // The signature's last byte flipped: the digest still matches, the signature does not.
  const badSig = Buffer.from(signed);
  badSig[badSig.length - 1] ^= 1;
  writeFileSync(k('badsig.zqw'), badSig);
  r = await zeroq(['verify', k('badsig.zqw'), '--trust', k('a.pub')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /signature does not verify/);
  // A byte of the body changed and the digest recomputed (what someone editing the file does).
  const { createHash } = await import('node:crypto');
  const edited = Buffer.from(signed);
  const bodyEnd = signed.length - 4 - 97 - 32;
  edited[bodyEnd - 5] ^= 0x40;
  createHash('sha256').update(edited.subarray(0, bodyEnd)).digest().copy(edited, bodyEnd);
  writeFileSync(k('edited.zqw'), edited);
  r = await zeroq(['verify', k('edited.zqw'), '--trust', k('a.pub')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /\[(zqw-signature|zqw-payload|zqw-manifest)\]/, 'an edited body with a recomputed digest is refused');
  t.match(r.stderr, /signature does not verify|payload|manifest/);
  // Any flipped byte: refused.
  const tampered = Buffer.from(signed);
  tampered[100] ^= 1;
  writeFileSync(k('tampered.zqw'), tampered);
  r = await zeroq(['verify', k('tampered.zqw'), '--trust', k('a.pub')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /digest mismatch/);

  // Detached: the set is unchanged, the signature is beside it.
  writeFileSync(k('d.zqw'), unsigned);
  r = await zeroq(['sign', k('d.zqw'), '--key', k('b.key'), '--detached']);
  t.equal(r.code, 0, r.stderr);
  t.ok(readFileSync(k('d.zqw')).equals(unsigned), 'the set itself is untouched');
  t.equal(readFileSync(k('d.zqw.sig')).length, 101);
  t.equal((await zeroq(['verify', k('d.zqw'), '--trust', k('b.pub')])).code, 0);
  t.equal((await zeroq(['verify', k('d.zqw'), '--trust', k('a.pub')])).code, 2);
  unlinkSync(k('d.zqw.sig'));
  t.equal((await zeroq(['verify', k('d.zqw'), '--trust', k('b.pub')])).code, 2, 'without its .sig: unsigned');
  r = await zeroq(['sign', k('s.zqw'), '--key', k('b.key'), '--detached']);
  t.equal(r.code, 2, 'no detached signature for a set signed inside');

  // A public key is not a signing key, and a private key is not a trust entry.
  t.equal((await zeroq(['sign', k('d.zqw'), '--key', k('a.pub')])).code, 2);
  r = await zeroq(['verify', k('s.zqw'), '--trust', k('a.key')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /private key/);
});

t.test('readZqw checks the default trust list when its caller gives none', async (t) => {
  const dir = tmpdir(t);
  const k = (n: string) => path.join(dir, n);
  t.equal((await zeroq(['keygen', '-o', k('a')])).code, 0);
  smallSet(k('u.zqw'));
  await readZqw(k('u.zqw')); // no list: no check
  setDefaultTrust(loadTrust([k('a.pub')]));
  t.teardown(() => setDefaultTrust(undefined));
  await t.rejects(readZqw(k('u.zqw')), { code: 'zqw-signature' });
  await t.resolves(readZqw(k('u.zqw'), { trust: null }), 'null: explicitly unchecked');
  const prev = process.env.ZEROQ_TRUST;
  setDefaultTrust(undefined);
  process.env.ZEROQ_TRUST = k('a.pub');
  t.teardown(() => (prev === undefined ? delete process.env.ZEROQ_TRUST : (process.env.ZEROQ_TRUST = prev)));
  await t.rejects(readZqw(k('u.zqw')), { code: 'zqw-signature' }, 'ZEROQ_TRUST');
});

const cfgPath = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');

t.test('commands that read a weight set refuse unsigned sets under --trust', { skip: !existsSync(cfgPath) && 'no model' }, async (t) => {
  const dir = tmpdir(t);
  const k = (n: string) => path.join(dir, n);
  t.equal((await zeroq(['keygen', '-o', k('a')])).code, 0);
  const set = await quantizeW8(dir);
  const image = dataPath('coco-val', 'images', '000000000139.jpg');
  let r = await zeroq(['detect', set, image, '--trust', k('a.pub')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /not signed/);
  r = await zeroq(['eval', set, '--data', dataPath('coco-val', 'dev.txt'), '--limit', '1'], { env: { ZEROQ_TRUST: k('a.pub') } });
  t.equal(r.code, 2);
  t.match(r.stderr, /not signed/);
  t.equal((await zeroq(['sign', set, '--key', k('a.key')])).code, 0);
  r = await zeroq(['detect', set, image, '--trust', k('a.pub')]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /tv +\d/, "the signed set runs");
});

t.test('the daemon with model.trust: refuses an unsigned set at start, and an untrusted or tampered one on SIGHUP', { timeout: 120_000, skip: (!mosquittoBinary() && 'no mosquitto') || (!existsSync(cfgPath) && 'no model') }, async (t) => {
  const dir = tmpdir(t);
  const k = (n: string) => path.join(dir, n);
  t.equal((await zeroq(['keygen', '-o', k('dev')])).code, 0);
  t.equal((await zeroq(['keygen', '-o', k('other')])).code, 0);
  const set = await quantizeW8(dir);
  const broker = await startMosquitto();
  t.teardown(() => broker.dispose());
  const folder = k('images');
  mkdirSync(folder);
  for (const n of ['000000000139.jpg', '000000000785.jpg']) symlinkSync(dataPath('coco-val', 'images', n), path.join(folder, n));
  const config = k('zeroq.yaml');
  const writeConfig = (model: string) =>
    writeFileSync(
      config,
      ['device_id: cam', 'source:', `  url: ${folder}`, '  loop: true', '  fps: 5', 'model:', '  engine: int', `  path: ${model}`, `  trust: [${k('dev.pub')}]`, 'mqtt:', `  url: ${broker.url}`, 'http:', '  port: 0'].join('\n') + '\n',
    );

  writeConfig(set);
  let d = DaemonProcess.start(['--config', config]);
  t.teardown(() => void d.kill('SIGKILL'));
  const exit = await d.exit;
  t.equal(exit.code, 2, 'unsigned set: the daemon does not start');
  t.match(d.stderrText, /not signed \[zqw-signature\]/);
  // The same with the key given as a flag instead of model.trust.
  writeFileSync(k('plain.yaml'), ['device_id: cam', 'source:', `  url: ${folder}`, 'model:', '  engine: int', `  path: ${set}`, 'mqtt:', `  url: ${broker.url}`, 'http:', '  port: 0'].join('\n') + '\n');
  d = DaemonProcess.start(['--config', k('plain.yaml'), '--trust', k('dev.pub')]);
  t.equal((await d.exit).code, 2, '--trust: the unsigned set is refused');
  t.match(d.stderrText, /not signed \[zqw-signature\]/);

  copyFileSync(set, k('good.zqw'));
  t.equal((await zeroq(['sign', k('good.zqw'), '--key', k('dev.key')])).code, 0);
  copyFileSync(set, k('foreign.zqw'));
  t.equal((await zeroq(['sign', k('foreign.zqw'), '--key', k('other.key')])).code, 0);
  const tampered = readFileSync(k('good.zqw'));
  tampered[4000] ^= 0x10;
  writeFileSync(k('tampered.zqw'), tampered);

  const w = await Watcher.connect(broker.url, ['zeroq/cam/#']);
  t.teardown(() => w.close());
  writeConfig(k('good.zqw'));
  d = DaemonProcess.start(['--config', config]);
  const first = await w.waitFor((m) => m.topic === 'zeroq/cam/detections', 'detections from the signed set');
  t.equal(first.json.engine, 'int');
  const weights = first.json.weights as string;

  for (const [name, reason] of [
    ['foreign.zqw', /not trusted/],
    ['tampered.zqw', /digest mismatch/],
  ] as const) {
    writeConfig(k(name));
    const mark = d.logs.length;
    d.child.kill('SIGHUP');
    const failed = await d.waitLog((l) => l.msg === 'reload: a part failed' && l.part === 'model', `reload of ${name} refused`, 30_000, mark);
    t.match(String(failed.err), reason, `${name}: ${String(failed.err)}`);
    const n = w.messages.length;
    const next = await w.waitFor((m) => m.topic === 'zeroq/cam/detections', 'still detecting', 10_000, n);
    t.equal(next.json.weights, weights, `${name}: the trusted set keeps running`);
  }
  t.equal((await d.kill('SIGTERM')).code, 0);
});
