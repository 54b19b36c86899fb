/**
 * The engine flags of every command that runs a model (detect, eval, bench, run): `--engine` with
 * the registered kinds as choices, `--threads`, and each engine module's own flags. The values go
 * to the engine's `open` under the module's option keys.
 */
import { Option, type Command } from 'commander';
import { flagAttribute as attributeName, engineFor, engineKinds, engineModules, type EngineModule, type EngineOpenOptions } from '../engine/registry.js';
import { MAX_THREADS, opt, parse } from './options.js';

/**
 * Adds --engine (choices: the registered kinds), --threads and every engine's own flags. `skip`
 * leaves out flags a command defines itself.
 */
export function addEngineOptions(cmd: Command, opts: { threads?: number; engineHelp?: string; skip?: string[] } = {}): Command {
  cmd.addOption(
    new Option('--engine <kind>', opts.engineHelp ?? `engine (default: from the model file name): ${engineModules().map((m) => `${m.kind}: ${m.summary}`).join('; ')}`).choices(engineKinds()),
  );
  cmd.addOption(opt('--threads <n>', `engine threads (1..${MAX_THREADS})`, parse.threads, opts.threads));
  const seen = new Set(opts.skip ?? []);
  for (const m of engineModules()) {
    for (const f of m.flags) {
      const name = attributeName(f.flags);
      if (seen.has(name)) continue;
      seen.add(name);
      // The module's parser runs when the flag is read (a bad value: a ZeroqError naming the flag).
      const flag = f.flags.split(' ')[0];
      cmd.addOption(f.parse ? new Option(f.flags, f.description).argParser((v: string) => f.parse!(v, flag)) : new Option(f.flags, f.description));
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
  if (flags.threads !== undefined) options.threads = flags.threads as number;
  for (const f of module.flags) {
    const v = flags[attributeName(f.flags)];
    if (v !== undefined) options[f.key] = v;
  }
  return { module, options };
}
