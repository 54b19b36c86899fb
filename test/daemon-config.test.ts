import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/daemon/config-load.js';
import { repo } from './helpers/daemon.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const fails = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

t.test('the example config of deploy/ is valid', async (t) => {
  const cfg = loadConfig({ file: path.join(repo, 'deploy', 'zeroq.example.yaml'), env: {} });
  t.equal(cfg.source.url, '/dev/video0');
  t.equal(cfg.mqtt.url, 'mqtt://127.0.0.1:1883');
  t.equal(cfg.http.port, 9464);
});

t.test('defaults, then file, then environment, then flags', async (t) => {
  const d = loadConfig({ env: {} });
  t.equal(d.source.url, 'demo');
  t.equal(d.mqtt.url, undefined, 'no broker: the embedded one');
  t.equal(d.mqtt.prefix, 'zeroq');
  t.match(d.device_id, /^[A-Za-z0-9_-]+$/);
  const f = file('layers.yaml', 'device_id: from-file\nmodel:\n  threads: 2\nsource:\n  url: /dev/video2\n');
  const a = loadConfig({ file: f, env: {} });
  t.same([a.device_id, a.model.threads, a.source.url], ['from-file', 2, '/dev/video2']);
  const b = loadConfig({ file: f, env: { ZEROQ_THREADS: '3', ZEROQ_DEVICE_ID: 'from-env' } });
  t.same([b.device_id, b.model.threads], ['from-env', 3]);
  const c = loadConfig({ file: f, env: { ZEROQ_THREADS: '3' }, flags: { threads: '4', print: true, maxFrames: '7' } });
  t.same([c.model.threads, c.print, c.max_frames], [4, true, 7]);
  const j = loadConfig({ file: file('c.json', '{"mqtt": {"qos": 0, "prefix": "site/a"}}'), env: {} });
  t.same([j.mqtt.qos, j.mqtt.prefix], [0, 'site/a'], 'JSON works too');
});

t.test('errors name the file and line, the variable or the flag, and the key', async (t) => {
  const f = file('bad.yaml', 'source:\n  url: demo\n  fps: -1\nhttp:\n  port: 70000\nbogus: 1\n');
  const m = fails(() => loadConfig({ file: f, env: {} }));
  t.match(m, 'invalid configuration (3 problems)');
  t.match(m, `${f}:3: source.fps: Too small`);
  t.match(m, `${f}:5: http.port: Too big`);
  t.match(m, `${f}:6: bogus: unknown key`);
  t.match(fails(() => loadConfig({ env: { ZEROQ_ENGINE: 'gpu' } })), /ZEROQ_ENGINE: model\.engine: unknown engine "gpu" \(available: int, float/);
  t.match(fails(() => loadConfig({ env: {}, flags: { deviceId: 'front door' } })), '--device-id: device_id: letters, digits, _ and - only');
  t.match(fails(() => loadConfig({ file: file('syntax.yaml', 'mqtt:\n  url: [oops\n'), env: {} })), /syntax\.yaml:\d+: not valid YAML/);
  t.match(fails(() => loadConfig({ file: file('list.yaml', '- a\n- b\n'), env: {} })), 'expected a mapping');
  t.match(fails(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} })), 'cannot read config file');
  t.match(fails(() => loadConfig({ file: file('tls.yaml', 'mqtt:\n  tls:\n    cert: /c.pem\n'), env: {} })), 'mqtt.tls: a client certificate needs both cert and key');
  t.match(fails(() => loadConfig({ file: file('prefix.yaml', 'mqtt:\n  prefix: a/#\n'), env: {} })), 'mqtt.prefix: no MQTT wildcards');
});

const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

t.test('systemd-analyze verify systemd/zeroq.service is clean', { skip: !analyze && 'no systemd-analyze' }, async (t) => {
  const unit = path.join(repo, 'systemd', 'zeroq.service');
  const run = (p: string) => {
    try {
      return { code: 0, out: execFileSync(analyze!, ['verify', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
    } catch (e) {
      const err = e as { status: number; stdout: string; stderr: string };
      return { code: err.status, out: `${err.stdout}${err.stderr}` };
    }
  };
  const text = readFileSync(unit, 'utf8');
  const exec = /^ExecStart=(\S+)/m.exec(text)![1];
  const r = run(unit);
  // verify also checks that ExecStart exists; where zeroq is not installed, that is the one
  // message allowed, and a copy pointing at this checkout's bin/zeroq must verify cleanly.
  const rest = r.out
    .split('\n')
    .filter((l) => l.trim() !== '' && !(l.includes(`Command ${exec} is not executable`) && !existsSync(exec)));
  t.same(rest, [], 'no other finding');
  const copy = file('zeroq.service', text.replace(exec, path.join(repo, 'bin', 'zeroq')));
  const c = run(copy);
  t.equal(c.out.trim(), '');
  t.equal(c.code, 0);
  t.match(text, /^Type=notify$/m);
  t.match(text, /^WatchdogSec=\d+/m);
  t.match(text, /^NotifyAccess=all$/m, 'systemd-notify sends from its own process');
});
