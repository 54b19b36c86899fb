/**
 * Runs the real CLI (bin/zeroq, which runs the build in dist/; `npm test` builds first) as a user
 * would, and checks what a user sees when something is wrong: exit 2 and one line on stderr.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../src/util/paths.js';

export const BIN = path.join(repoRoot, 'bin', 'zeroq');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The process did not end within the timeout and was killed. */
  timedOut: boolean;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  /** Kill after this long (default 60 s): a hang shows as timedOut. */
  timeoutMs?: number;
  cwd?: string;
}

/** The test's environment without the test runner's loader options (the CLI runs its build). */
function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('TAP')) delete env[k];
  return env;
}

export function zeroq(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // Through sh, which drops the NODE_OPTIONS a test runner adds to every child it spawns.
    const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, BIN, ...args], {
      cwd: opts.cwd ?? repoRoot,
      env: cliEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** What is wrong with a result that should be a refusal (exit 2, one line, no stack trace), or undefined. */
export function refusalProblem(r: CliResult): string | undefined {
  if (r.timedOut) return 'did not end (killed after the timeout)';
  if (r.signal) return `ended by signal ${r.signal}`;
  if (r.code !== 2) return `exit code ${r.code}`;
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  if (lines.length !== 1) return `${lines.length} lines on stderr`;
  if (/\n\s+at /.test(r.stderr) || /^\s+at /m.test(r.stderr)) return 'a stack trace on stderr';
  if (!lines[0].startsWith('zeroq: ')) return 'stderr does not start with "zeroq: "';
  return undefined;
}
