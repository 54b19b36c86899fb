// A sample of the mutation check from outside (scripts/fuzz-cli.ts runs thousands): damaged .zqw,
// .cfg, .weights and config files given to bin/zeroq inspect, detect, eval and run end with exit 0
// or with exit 2 and one line — never a signal, a stack trace, another exit code or a hang.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KINDS, makeCases, runCases } from './fuzz/cli-mutants.js';

t.test('damaged files through the CLI: exit 0, or exit 2 with one line', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-cli-mutants-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const outcomes = await runCases(makeCases(dir, 4, 20240602), { timeoutMs: 120_000 });
  for (const o of outcomes) t.not(o.result, 'failed', `${o.command}: ${o.result}${o.detail ? ` (${o.detail})` : ''}`);
  for (const k of KINDS) t.ok(outcomes.some((o) => o.kind === k && o.result === 'refused'), `some damaged ${k} files are refused`);
});
