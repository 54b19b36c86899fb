// The arm64 kernels (neon-dotprod and plain neon: Raspberry Pi, Jetson) cannot run on an x86-64
// machine, so scripts/check-arm64.sh cross-compiles them with their self-test (every arm64
// instruction set against the portable kernels on random networks) and runs it under qemu, then
// checks that the arm64 build of the input resize gives this machine's bits.
import t from 'tap';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../src/util/paths.js';

t.test('the arm64 kernels agree with the portable ones under qemu', { skip: os.arch() !== 'x64' && 'only cross-checked from x86-64', timeout: 600_000 }, async (t) => {
  const { stdout } = await promisify(execFile)('sh', [path.join(repoRoot, 'scripts', 'check-arm64.sh')], { cwd: repoRoot, maxBuffer: 16 << 20 });
  const m = /(\d+) passed, (\d+) failed/.exec(stdout);
  t.ok(m, 'the self-test reports its checks');
  t.ok(Number(m?.[1]) > 100, `${m?.[1]} checks passed`);
  t.equal(Number(m?.[2]), 0, 'none failed');
  t.match(stdout, /resize: arm64 and this machine agree/);
});
