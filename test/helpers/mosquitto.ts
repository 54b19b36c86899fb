/**
 * A real mosquitto broker for tests, on a free port of 127.0.0.1, with persistence in a temp
 * folder (so that a broker stopped with SIGTERM and started again keeps sessions and retained
 * messages, like a broker restarted by its service manager).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

export async function startMosquitto(): Promise<Mosquitto> {
  const bin = mosquittoBinary();
  if (!bin) throw new Error('mosquitto is not installed (test/ensure-deps.sh installs it)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-mosquitto-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence true',
    `persistence_location ${dir}/`,
    'autosave_interval 0',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
  ];
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

  // "running" is logged just before the main loop starts; a signal in between is lost. A CONNACK
  // proves the loop runs.
  const started = async () => {
    await start();
    const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000 });
    await c.endAsync();
  };
  await started();
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
    url: `mqtt://127.0.0.1:${port}`,
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
