/**
 * Test harness for `zeroq run`: the daemon as a real child process (signals, exit codes, logs) and
 * an MQTT subscriber that records what arrives. Everything waits on events — a message, a log
 * line, an exit; the timeouts only turn a hang into a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Msg {
  topic: string;
  payload: Buffer;
  retain: boolean;
  text: string;
  /** Parsed JSON payload, when it is JSON. */
  json?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

type Waiter = { pred: (m: Msg) => boolean; resolve: (m: Msg) => void };

export class Watcher {
  readonly messages: Msg[] = [];
  private waiters: Waiter[] = [];

  private constructor(readonly client: MqttClient) {}

  /** Subscribes (QoS 1) to the filters; with a clientId and clean=false the session survives broker restarts. */
  static async connect(url: string, filters: string[], opts: { clientId?: string; clean?: boolean; client?: IClientOptions } = {}): Promise<Watcher> {
    const client = connect(url, {
      clientId: opts.clientId ?? `watch-${process.pid}-${Math.random().toString(16).slice(2)}`,
      clean: opts.clean ?? true,
      reconnectPeriod: 200,
      ...opts.client,
    });
    const w = new Watcher(client);
    client.on('message', (topic, payload, packet) => {
      const text = payload.toString();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const m: Msg = { topic, payload, retain: packet.retain, text, json };
      w.messages.push(m);
      for (const x of [...w.waiters]) {
        if (x.pred(m)) {
          w.waiters.splice(w.waiters.indexOf(x), 1);
          x.resolve(m);
        }
      }
    });
    client.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => client.subscribe(filters, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
    });
    return w;
  }

  /** The first message (from index `from` on) matching pred, waiting for it if needed. */
  waitFor(pred: (m: Msg) => boolean, what: string, timeoutMs = 30_000, from = 0): Promise<Msg> {
    const have = this.messages.slice(from).find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const waiter: Waiter = {
        pred,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      };
      this.waiters.push(waiter);
    });
  }

  on(topic: string): Msg[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

export interface LogLine {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

type LogWaiter = { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void };

export class DaemonProcess {
  readonly logs: LogLine[] = [];
  stdout = '';
  stderrText = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: LogWaiter[] = [];

  constructor(readonly child: ChildProcess) {
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let tail = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      this.stderrText += s;
      const lines = (tail + s).split('\n');
      tail = lines.pop() ?? '';
      for (const l of lines) {
        let j: LogLine;
        try {
          j = JSON.parse(l) as LogLine;
        } catch {
          j = { msg: l };
        }
        this.logs.push(j);
        for (const w of [...this.waiters]) {
          if (w.pred(j)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(j);
          }
        }
      }
    });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => (this.stdout += s));
  }

  /** Runs `zeroq run <args>` from the sources (tsx), with extra environment variables. */
  static start(args: string[], env: Record<string, string> = {}): DaemonProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'src', 'cli.ts'), 'run', ...args], {
      cwd: repo,
      env: { ...process.env, ZEROQ_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new DaemonProcess(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first log line (from index `from` on) matching pred. */
  waitLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 30_000, from = 0): Promise<LogLine> {
    const have = this.logs.slice(from).find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for log: ${what}\n${this.stderrText.slice(-3000)}`));
      }, timeoutMs);
      const w: LogWaiter = {
        pred,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      };
      this.waiters.push(w);
      void this.exit.then(() => {
        if (this.waiters.includes(w)) {
          clearTimeout(t);
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`daemon exited while waiting for log: ${what}\n${this.stderrText.slice(-3000)}`));
        }
      });
    });
  }

  /** Child processes of the daemon (e.g. its ffmpeg), from /proc. */
  children(): { pid: number; comm: string }[] {
    const out: { pid: number; comm: string }[] = [];
    for (const tid of readdirSync(`/proc/${this.pid}/task`)) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${this.pid}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const p of kids.trim().split(/\s+/).filter(Boolean)) {
        let comm = '';
        try {
          comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
        } catch {
          /* gone */
        }
        out.push({ pid: Number(p), comm });
      }
    }
    return out;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exit;
  }
}
