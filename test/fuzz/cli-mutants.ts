/**
 * The mutation check from outside: damaged .zqw, .cfg, .weights and config files written to disk and
 * given to the real CLI (bin/zeroq inspect, detect, eval, run) as a user would. Each run must end
 * with exit 0 (the damage left a usable file) or exit 2 with one line on stderr — never another exit
 * code, a signal, a stack trace or a hang. Used by scripts/fuzz-cli.ts (thousands) and by a test (a
 * sample).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { dataPath } from '../../src/util/paths.js';
import { refusalProblem, zeroq, type CliResult } from '../helpers/cli.js';
import { SMALL_CFG, runnableConfigSeeds, weightsSeeds, zqwSeeds } from './corpus.js';
import { mutatedBytes, mutatedText, mutatedZqw } from './mutate.js';

export const KINDS = ['zqw', 'cfg', 'weights', 'config'] as const;
export type Kind = (typeof KINDS)[number];

export interface Case {
  kind: Kind;
  index: number;
  file: string;
  args: string[];
}

export interface Outcome {
  kind: Kind;
  command: string;
  result: 'accepted' | 'refused' | 'failed';
  /** What was wrong (failed), or the refusal's code. */
  detail?: string;
  file: string;
}

/** Writes `perKind` mutants of each kind into dir and returns the command line each is run with. */
export function makeCases(dir: string, perKind: number, seed: number): Case[] {
  const image = dataPath('reference', 'samples', 'dog.jpg');
  const list = path.join(dir, 'one-image.txt');
  writeFileSync(list, `${image}\n`);
  const smallCfg = path.join(dir, 'small.cfg');
  writeFileSync(smallCfg, SMALL_CFG);
  const cases: Case[] = [];
  const sample = <T>(arb: fc.Arbitrary<T>, k: number): T[] => fc.sample(arb, { numRuns: perKind, seed: seed + k });
  // Commands cycle per kind: each mutant goes to one of them.
  sample(mutatedZqw(zqwSeeds()), 1).forEach((b, i) => {
    const file = path.join(dir, `m${i}.zqw`);
    writeFileSync(file, b);
    const cmds = [
      ['detect', file, image],
      ['eval', file, '--data', list, '--annotations', dataPath('coco-val', 'instances.json')],
    ];
    cases.push({ kind: 'zqw', index: i, file, args: cmds[i % cmds.length] });
  });
  sample(mutatedText([SMALL_CFG], 'cfg'), 2).forEach((text, i) => {
    const file = path.join(dir, `m${i}.cfg`);
    writeFileSync(file, text);
    writeFileSync(path.join(dir, `m${i}.weights`), weightsSeeds()[0]);
    const cmds = [['inspect', file], ['detect', file, image]];
    cases.push({ kind: 'cfg', index: i, file, args: cmds[i % cmds.length] });
  });
  sample(mutatedBytes(weightsSeeds()), 3).forEach((b, i) => {
    const file = path.join(dir, `w${i}.weights`);
    writeFileSync(file, b);
    const cmds = [['inspect', smallCfg, '--weights', file], ['detect', smallCfg, image, '--weights', file]];
    cases.push({ kind: 'weights', index: i, file, args: cmds[i % cmds.length] });
  });
  sample(mutatedText(runnableConfigSeeds(), 'yaml'), 4).forEach((text, i) => {
    const file = path.join(dir, `c${i}.yaml`);
    writeFileSync(file, text);
    // One frame of the demo source on an embedded broker unless the damage says otherwise.
    cases.push({ kind: 'config', index: i, file, args: ['run', '--config', file, '--max-frames', '1'] });
  });
  return cases;
}

export function judge(c: Case, r: CliResult): Outcome {
  const base = { kind: c.kind, command: `zeroq ${c.args.join(' ')}`, file: c.file };
  if (r.code === 0 && !r.timedOut) return { ...base, result: 'accepted' };
  // `run` writes its JSON log records to stderr while it starts (e.g. "engine ready" before the
  // broker fails to listen); the refusal is the one line that is not a log record.
  const stderr = c.kind === 'config' ? r.stderr.split('\n').filter((l) => !/^\{"level":\d+,/.test(l)).join('\n') : r.stderr;
  const problem = refusalProblem({ ...r, stderr });
  if (problem) return { ...base, result: 'failed', detail: `${problem}: ${r.stderr.slice(0, 2000)}` };
  return { ...base, result: 'refused', detail: /\[([\w-]+)\]\s*$/.exec(r.stderr.trim())?.[1] ?? 'no code' };
}

/** Runs the cases, `parallel` at a time, each killed after timeoutMs. */
export async function runCases(cases: Case[], opts: { parallel?: number; timeoutMs?: number; onDone?: (o: Outcome, n: number) => void } = {}): Promise<Outcome[]> {
  const queue = [...cases];
  const out: Outcome[] = [];
  await Promise.all(
    Array.from({ length: opts.parallel ?? 2 }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const r = await zeroq(c.args, { timeoutMs: opts.timeoutMs ?? 60_000 });
        const o = judge(c, r);
        out.push(o);
        opts.onDone?.(o, out.length);
      }
    }),
  );
  return out;
}
