/**
 * npm run fuzz:cli -- [--per-kind N] [--seed S] [--json FILE]
 *
 * The mutation check from outside (test/fuzz/cli-mutants.ts): N damaged .zqw, .cfg, .weights and
 * config files each (default 500), written to a temporary folder and given to bin/zeroq inspect,
 * detect, eval and run, two at a time. Prints a table per kind (accepted: exit 0; refused: exit 2
 * with one line; failed: anything else, listed with the file kept for replay) and exits 1 on a failure.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KINDS, makeCases, runCases } from '../test/fuzz/cli-mutants.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const perKind = Number(opt('per-kind', '500'));
const seed = Number(opt('seed', String(Date.now() % 1e9)));
const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-fuzz-cli-'));
const cases = makeCases(dir, perKind, seed);
process.stderr.write(`${cases.length} mutated files in ${dir} (seed ${seed})\n`);
const t0 = Date.now();
const outcomes = await runCases(cases, {
  onDone: (o, n) => {
    if (o.result === 'failed') process.stderr.write(`FAILED ${o.command}: ${o.detail}\n`);
    if (n % 100 === 0) process.stderr.write(`${n}/${cases.length}\n`);
  },
});
const rows = KINDS.map((k) => {
  const of = outcomes.filter((o) => o.kind === k);
  const count = (r: string) => of.filter((o) => o.result === r).length;
  const cmds = [...new Set(of.map((o) => o.command.split(' ')[1]))].join(', ');
  return `| ${k} | ${cmds} | ${of.length} | ${count('accepted')} | ${count('refused')} | ${count('failed')} |`;
});
process.stdout.write(['| files | commands | runs | exit 0 | exit 2, one line | other (signal, stack trace, hang, exit 1) |', '|---|---|---:|---:|---:|---:|', ...rows].join('\n') + '\n');
process.stdout.write(`${outcomes.length} runs in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
const failed = outcomes.filter((o) => o.result === 'failed');
const json = opt('json', '');
if (json) writeFileSync(json, JSON.stringify({ seed, perKind, outcomes }, null, 1) + '\n');
if (failed.length === 0) rmSync(dir, { recursive: true, force: true });
else process.stdout.write(`failed runs (files kept in ${dir}):\n${failed.map((o) => `  ${o.command}: ${o.detail}`).join('\n')}\n`);
process.exitCode = failed.length ? 1 : 0;
