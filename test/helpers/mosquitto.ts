/**
 * A real mosquitto broker for tests, on a free port of 127.0.0.1, with persistence in a temp
 * folder (so that a broker stopped with SIGTERM and started again keeps sessions and retained
 * messages, like a broker restarted by its service manager).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connectAsync } from 'mqtt';

export function mosquittoBinary(): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) if (existsSync(p)) return p;
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Mosquitto {
  port: number;
  url: string;
  readonly pid: number | undefined;
  /** Stops the broker (SIGTERM saves its persistence; SIGKILL does not) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  dispose(): Promise<void>;
}

export interface MosquittoOptions {
  /**
   * Serve TLS with these PEM files and require a client certificate signed by ca; the helper's
   * own readiness check connects with clientCert/clientKey.
   */
  tls?: { ca: string; cert: string; key: string; clientCert: string; clientKey: string };
  /** Require this user name and password. */
  user?: { name: string; password: string };
}

export async function startMosquitto(o: MosquittoOptions = {}): Promise<Mosquitto> {
  const bin = mosquittoBinary();
  if (!bin) throw new Error('mosquitto is not installed (test/ensure-deps.sh installs it)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-mosquitto-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  const lines = [`listener ${port} 127.0.0.1`];
  if (o.tls) lines.push(`cafile ${o.tls.ca}`, `certfile ${o.tls.cert}`, `keyfile ${o.tls.key}`, 'require_certificate true');
  if (o.user) {
    const pw = path.join(dir, 'passwd');
    writeFileSync(pw, '');
    execFileSync('mosquitto_passwd', ['-b', pw, o.user.name, o.user.password]);
    lines.push(`password_file ${pw}`, 'allow_anonymous false');
  } else lines.push('allow_anonymous true');
  lines.push(
    'persistence true',
    `persistence_location ${dir}/`,
    'autosave_interval 0',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
  );
  if (process.getuid?.() === 0) lines.push('user root');
  writeFileSync(conf, lines.join('\n') + '\n');

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = () =>
    new Promise<void>((resolve, reject) => {
      const c = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      let log = '';
      exited = new Promise<void>((r) => c.once('exit', () => r()));
      const onData = (d: Buffer) => {
        log += d.toString();
        if (/ running\b/.test(log)) {
          c.stderr!.off('data', onData);
          c.stderr!.resume();
          resolve();
        }
      };
      c.stderr!.on('data', onData);
      c.once('exit', (code) => reject(new Error(`mosquitto exited (${code}) before running:\n${log}`)));
    });

  const readyOptions: Record<string, unknown> = {};
  if (o.tls) Object.assign(readyOptions, { ca: readFileSync(o.tls.ca), cert: readFileSync(o.tls.clientCert), key: readFileSync(o.tls.clientKey) });
  if (o.user) Object.assign(readyOptions, { username: o.user.name, password: o.user.password });
  // "running" is logged just before the main loop starts; a signal in between is lost. A CONNACK
  // proves the loop runs.
  const started = async () => {
    await start();
    const c = await connectAsync(`${o.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`, {
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...readyOptions,
    });
    await c.endAsync();
  };
  try {
    await started();
  } catch (err) {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const c = child;
    c.kill(signal);
    if (signal !== 'SIGKILL') {
      // mosquitto blocks signals outside its event wait and can sleep with one pending; a
      // connection attempt wakes it, and the signal is repeated until it exits.
      let gone = false;
      void exited.then(() => (gone = true));
      while (!gone) {
        await new Promise<void>((resolve) => {
          const sock = net.connect(port, '127.0.0.1');
          sock.once('connect', () => sock.destroy());
          sock.once('close', () => resolve());
          sock.once('error', () => resolve());
        });
        await Promise.race([exited, new Promise((r) => setTimeout(r, 200))]);
        if (!gone) c.kill(signal);
      }
    }
    await exited;
  };
  return {
    port,
    url: `${o.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    stop,
    start: started,
    async dispose() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl (EC P-256). */
export function makeCertificates(dir: string): { ca: string; caKey: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const key = (out: string) => ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', out);
  key(f('ca.key'));
  ssl('req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=zeroq test CA', '-days', '2', '-out', f('ca.crt'));
  const sign = (name: string, cn: string, ext: string) => {
    key(f(`${name}.key`));
    ssl('req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
  };
  sign('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  sign('client', 'zeroq-device', 'extendedKeyUsage=clientAuth\n');
  return { ca: f('ca.crt'), caKey: f('ca.key'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}
