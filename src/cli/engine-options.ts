/**
 * The engine flags of every command that runs a model (detect, eval, bench, run): `--engine` with
 * the registered kinds as choices, `--threads`, and each engine module's own flags. The values go
 * to the engine's `open` under the module's option keys.
 */
import { Option, type Command } from 'commander';
import { flagAttribute as attributeName, engineFor, engineKinds, engineModules, type EngineModule, type EngineOpenOptions } from '../engine/registry.js';
import { ZeroqError } from '../util/errors.js';


export function positiveIntFlag(value: string, flag: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new ZeroqError('bad-option', `"${value}" is not an integer in 1..${max}`, flag);
  }
  return v;
}

/** Threads of any engine: one bound for every entry point (the daemon config has the same). */
export const MAX_THREADS = 64;

/**
 * Adds --engine (choices: the registered kinds), --threads and every engine's own flags. `skip`
 * leaves out flags a command defines itself.
 */
export function addEngineOptions(cmd: Command, opts: { threads?: string; engineHelp?: string; skip?: string[] } = {}): Command {
  cmd.addOption(
    new Option('--engine <kind>', opts.engineHelp ?? `engine (default: from the model file name): ${engineModules().map((m) => `${m.kind}: ${m.summary}`).join('; ')}`).choices(engineKinds()),
  );
  const threads = new Option('--threads <n>', `engine threads (1..${MAX_THREADS})`);
  cmd.addOption(opts.threads !== undefined ? threads.default(opts.threads) : threads);
  const seen = new Set(opts.skip ?? []);
  for (const m of engineModules()) {
    for (const f of m.flags) {
      const name = attributeName(f.flags);
      if (seen.has(name)) continue;
      seen.add(name);
      cmd.option(f.flags, f.description);
    }
  }
  return cmd;
}

export interface EngineChoice {
  module: EngineModule;
  options: EngineOpenOptions;
}

/** The engine a command's flags ask for, with its options parsed (the chosen module's flags only). */
export function engineChoice(model: string, flags: Record<string, unknown>): EngineChoice {
  const module = engineFor(model, flags.engine as string | undefined);
  const options: EngineOpenOptions = {};
  if (flags.threads !== undefined) options.threads = positiveIntFlag(String(flags.threads), '--threads', MAX_THREADS);
  for (const f of module.flags) {
    const v = flags[attributeName(f.flags)];
    if (v === undefined) continue;
    options[f.key] = f.parse ? f.parse(String(v), f.flags.split(' ')[0]) : v;
  }
  return { module, options };
}
