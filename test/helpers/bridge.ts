/**
 * The bridge firmware's host build as the tests use it: built with make, bridge-host started on a
 * pty link in a temporary folder, and the fault relay between a client and a bridge.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot } from '../../src/util/paths.js';

export const firmwareDir = path.join(repoRoot, 'firmware-bridge');
export const bridgeHost = path.join(firmwareDir, 'build', 'bridge-host');
export const faultRelay = path.join(firmwareDir, 'build', 'fault-relay');

/**
 * Runs make in firmware-bridge under a lock: test files run in parallel, and two makes writing the
 * same binary at once could leave a broken one.
 */
export function makeFirmware(targets: string[]): string {
  mkdirSync(path.join(firmwareDir, 'build'), { recursive: true });
  return execFileSync('flock', [path.join(firmwareDir, 'build', '.make-lock'), 'make', '-C', firmwareDir, ...targets], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Builds bridge-host and fault-relay (make does nothing when they are up to date). */
export function buildFirmware(): void {
  makeFirmware(['-s', 'host']);
}

export function tempDir(prefix = 'zeroq-fpga-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A child that printed its first stdout line (the pty name); lines after it are handed out in order. */
export interface LineProcess {
  proc: ChildProcess;
  first: string;
  /** The next stdout line. */
  line(timeoutMs?: number): Promise<string>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL (no clean-up: the link stays as a dangling symlink) and wait for the exit. */
  kill(): Promise<void>;
}

async function startLineProcess(bin: string, args: string[], withStdin: boolean): Promise<LineProcess> {
  const proc = spawn(bin, args, { stdio: [withStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const line = (timeoutMs = 10000): Promise<string> => {
    const l = lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${path.basename(bin)}: no output line in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      const onExit = (): void => reject(new Error(`${path.basename(bin)} exited: ${stderr}`));
      proc.once('exit', onExit);
      waiting.push((x) => {
        clearTimeout(t);
        proc.off('exit', onExit);
        resolve(x);
      });
    });
  };
  const first = await line();
  const end = async (sig: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    await exited;
  };
  return { proc, first, line, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
}

/** bridge-host --link `link` [extra args]; resolves once it serves (it printed its pty). */
export function startBridge(link: string, extra: string[] = []): Promise<LineProcess> {
  return startLineProcess(bridgeHost, ['--link', link, ...extra], false);
}

export interface Relay extends LineProcess {
  /** Sends a command line; resolves with its answer. */
  command(cmd: string): Promise<string>;
}

/** fault-relay between `upstream` (a bridge's link) and a new link at `link`. */
export async function startRelay(upstream: string, link: string, seed = 1): Promise<Relay> {
  const lp = await startLineProcess(faultRelay, ['--upstream', upstream, '--link', link, '--seed', String(seed)], true);
  return {
    ...lp,
    command: async (cmd) => {
      lp.proc.stdin!.write(`${cmd}\n`);
      return lp.line();
    },
  };
}
