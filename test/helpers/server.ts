/**
 * `zeroq serve` as a real child process for tests: started from the sources, ready when it prints
 * its URL; stopped by a signal (SIGKILL included).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../src/util/paths.js';

export class ServerProcess {
  stdout = '';
  stderr = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly ready: Promise<string>;

  private constructor(readonly child: ChildProcess, readonly dataDir: string) {
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.ready = new Promise((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        this.stdout += s;
        const m = /listening on (\S+)/.exec(this.stdout);
        if (m) resolve(m[1]);
      });
      void this.exit.then((e) => reject(new Error(`zeroq serve exited (${e.code ?? e.signal}) before it listened:\n${this.stderr.slice(-3000)}`)));
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
  }

  static start(dataDir: string, args: string[], env: Record<string, string> = {}): ServerProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), 'serve', '--data-dir', dataDir, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ServerProcess(child, dataDir);
  }

  get adminToken(): string {
    return readFileSync(path.join(this.dataDir, 'admin-token'), 'utf8').trim();
  }

  /** Log lines (JSON) of the server. */
  logs(): { msg?: string; [k: string]: unknown }[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string });
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exit;
  }
}
