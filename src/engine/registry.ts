/**
 * The engine registry: every engine kind is one module (src/engine/kinds/) that declares its name,
 * the model files it opens, its own options (a zod fragment the daemon config merges into its
 * `model` section, and the CLI flags that set them), its capabilities, and how to open it. CLI
 * commands, the daemon, bench and the soak script look engines up here; nothing else lists them.
 * Adding an engine kind is one module and one line in BUILTIN.
 */
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { ZeroqError } from '../util/errors.js';
import type { Engine, EngineOptions } from './engine.js';
import { floatEngine } from './kinds/float.js';
import { fpgaEngine } from './kinds/fpga.js';
import { intEngine } from './kinds/int.js';

/** A command-line flag of an engine, mapped to one of its options. */
export interface EngineFlag {
  /** commander syntax, e.g. '--device <path>'. */
  flags: string;
  description: string;
  /** The option key (also the daemon config key under `model`). */
  key: string;
  /** Turns the flag's text into the option's value; throws a ZeroqError('bad-option') when it is not one. */
  parse?: (value: string, flag: string) => unknown;
  /** How `zeroq run` hands the flag to the config (validated there by the option's zod type); default string. */
  type?: 'string' | 'int' | 'bool';
}

export interface EngineCapabilities {
  /** Runs the fixed-point integer contract (raw head integers are returned and comparable). */
  integer: boolean;
  /** Uses `threads`. */
  threads: boolean;
}

/** What `open` receives: the common options and the engine's own (keys of `options`). */
export type EngineOpenOptions = EngineOptions & { modelId?: string } & Record<string, unknown>;

export interface EngineModule {
  kind: string;
  /** One line for --help. */
  summary: string;
  /** What `model` is for this engine, for help and errors. */
  modelFiles: string;
  /** True when a model path is of this engine's kind by its name (the default engine of a path). */
  opens(model: string): boolean;
  /** The engine's own options: config keys under `model` (all optional). */
  options: z.ZodRawShape;
  flags: EngineFlag[];
  capabilities: EngineCapabilities;
  open(model: string, opts: EngineOpenOptions): Promise<Engine>;
}

// The order is the preference for a model path several engines open.
const BUILTIN: EngineModule[] = [intEngine, floatEngine, fpgaEngine];

const modules = new Map<string, EngineModule>();
for (const m of BUILTIN) modules.set(m.kind, m);

/** commander's attribute name of a flag: '--float-model <cfg>' → 'floatModel'. */
export function flagAttribute(flags: string): string {
  const long = flags.split(/[ ,|]+/).find((f) => f.startsWith('--')) ?? flags;
  return long.replace(/^-+/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Adds an engine kind (tests, plug-ins). A kind registered twice is an error. */
export function registerEngine(m: EngineModule): void {
  if (modules.has(m.kind)) throw new ZeroqError('engine-registry', `engine kind "${m.kind}" is already registered`);
  modules.set(m.kind, m);
}

/** Loads engine modules named in ZEROQ_ENGINE_MODULES (comma-separated paths of ES modules exporting `engine`). */
export async function loadEngineModules(list = process.env.ZEROQ_ENGINE_MODULES): Promise<void> {
  for (const file of (list ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    let mod: { engine?: EngineModule };
    try {
      mod = (await import(pathToFileURL(file).href)) as { engine?: EngineModule };
    } catch (e) {
      throw new ZeroqError('engine-registry', `cannot load the engine module: ${(e as Error).message}`, file, { cause: e });
    }
    if (!mod.engine || typeof mod.engine.kind !== 'string' || typeof mod.engine.open !== 'function') {
      throw new ZeroqError('engine-registry', 'the module does not export `engine` (an EngineModule)', file);
    }
    if (!modules.has(mod.engine.kind)) registerEngine(mod.engine);
  }
}

export function engineKinds(): string[] {
  return [...modules.keys()];
}

export function engineModules(): EngineModule[] {
  return [...modules.values()];
}

/** The module of a kind; an unknown kind is an error listing the available ones. */
export function engineModule(kind: string, where = '--engine'): EngineModule {
  const m = modules.get(kind);
  if (!m) throw new ZeroqError('engine-unknown', `unknown engine "${kind}" (available: ${engineKinds().join(', ')})`, where);
  return m;
}

/** The engine to use: the one asked for, else the first that opens the model path by its name. */
export function engineFor(model: string, kind?: string): EngineModule {
  if (kind !== undefined) return engineModule(kind);
  const m = engineModules().find((e) => e.opens(model));
  if (!m) {
    throw new ZeroqError(
      'engine-model',
      `cannot tell the engine from the file name; give --engine (${engineModules().map((e) => `${e.kind}: ${e.modelFiles}`).join('; ')})`,
      model,
    );
  }
  return m;
}

export async function openEngine(kind: string, model: string, opts: EngineOpenOptions = {}): Promise<Engine> {
  return engineModule(kind).open(model, opts);
}
