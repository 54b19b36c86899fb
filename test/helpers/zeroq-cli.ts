/** Runs the zeroq CLI from the sources as a child process and returns its exit code and output. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../src/util/paths.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function zeroq(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), ...args],
      { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env }, maxBuffer: 64 * 2 ** 20, timeout: opts.timeoutMs ?? 300_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** A W8 Yolo-Fastest-1.1 weight set made by `zeroq quantize` (2 calibration images, min/max), in dir. */
export async function quantizeW8(dir: string, name = 'yf8.zqw'): Promise<string> {
  const { writeFileSync } = await import('node:fs');
  const { dataPath } = await import('../../src/util/paths.js');
  const calib = path.join(dir, `${name}.calib.txt`);
  writeFileSync(calib, ['000000000139.jpg', '000000000785.jpg'].map((n) => dataPath('coco-val', 'images', n)).join('\n') + '\n');
  const out = path.join(dir, name);
  const r = await zeroq(['quantize', dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'), '--wbits', '8', '--calib', calib, '--calib-images', '2', '--act-calib', 'minmax', '-o', out]);
  if (r.code !== 0) throw new Error(`zeroq quantize failed: ${r.stderr}`);
  return out;
}
