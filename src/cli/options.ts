/**
 * The CLI's options, parsed once: commander argParsers for numbers, widths, sizes and lists (a bad
 * value is a usage error naming the flag and what it expects), required options marked in --help
 * and all reported together when missing, and the usage error every command throws.
 * Exit codes (docs/config.md): 0 success, 2 usage error or bad input, 1 unexpected failure.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { MAX_THREADS } from '../util/limits.js';

export { MAX_THREADS };

/** A command line that cannot work: printed on one line with a pointer to the command's --help, exit 2. */
export class UsageError extends Error {
  readonly code = 'usage';
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

type Parser<T> = (value: string) => T;

/** A finite number from the whole text ("", "1x", "NaN" are not numbers). */
function number(value: string, what: string): number {
  const v = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(v)) throw new InvalidArgumentError(`expected ${what}`);
  return v;
}

/** An integer from lo to hi. */
export function intIn(lo: number, hi: number): Parser<number> {
  const what = hi === Number.MAX_SAFE_INTEGER ? `an integer >= ${lo}` : `an integer from ${lo} to ${hi}`;
  return (value) => {
    const v = number(value, what);
    if (!Number.isInteger(v) || v < lo || v > hi) throw new InvalidArgumentError(`expected ${what}`);
    return v;
  };
}

/** A number in [lo, hi]; `open` excludes the ends named. */
export function numberIn(lo: number, hi: number, open: { lo?: boolean; hi?: boolean } = {}): Parser<number> {
  const what = `a number in ${open.lo ? '(' : '['}${lo}, ${hi}${open.hi ? ')' : ']'}`;
  return (value) => {
    const v = number(value, what);
    if (v < lo || v > hi || (open.lo && v === lo) || (open.hi && v === hi)) throw new InvalidArgumentError(`expected ${what}`);
    return v;
  };
}

export const parse = {
  /** 1, 2, 3, ... */
  positiveInt: intIn(1, Number.MAX_SAFE_INTEGER),
  /** 0, 1, 2, ... */
  count: intIn(0, Number.MAX_SAFE_INTEGER),
  /** A probability or IoU threshold. */
  fraction: numberIn(0, 1),
  /** A weight width Nw. */
  weightBits: intIn(2, 8),
  threads: intIn(1, MAX_THREADS),
  /** An activation (tensor) width: 8 or 16. */
  tensorBits(value: string): 8 | 16 {
    const v = value.trim();
    if (v !== '8' && v !== '16') throw new InvalidArgumentError('expected 8 or 16');
    return Number(v) as 8 | 16;
  },
  port: intIn(0, 65535),
  /** W or WxH, e.g. 416 or 416x320 (each 1..16384). */
  size(value: string): { width: number; height: number } {
    const m = /^(\d+)(?:x(\d+))?$/.exec(value.trim());
    const w = m ? Number(m[1]) : NaN;
    const h = m?.[2] !== undefined ? Number(m[2]) : w;
    if (!(w >= 1 && h >= 1 && w <= 16384 && h <= 16384)) throw new InvalidArgumentError('expected W or WxH, e.g. 416 or 416x320');
    return { width: w, height: h };
  },
  /** Comma-separated weight widths, e.g. 8,6,5,4. */
  weightBitsList(value: string): number[] {
    return value.split(',').map((s) => {
      try {
        return intIn(2, 8)(s);
      } catch {
        throw new InvalidArgumentError('expected weight widths from 2 to 8, comma-separated, e.g. 8,6,5,4');
      }
    });
  },
};

/** An option with an argParser and, when given, a typed default. */
export function opt<T>(flags: string, description: string, parser: Parser<T>, def?: T): Option {
  const o = new Option(flags, description).argParser((v: string) => parser(v));
  return def === undefined ? o : o.default(def);
}

/** A required option: "(required)" in --help, and reported with every other missing one at once. */
export function required<T>(flags: string, description: string, parser?: Parser<T>): Option {
  const o = new Option(flags, `${description} (required)`).makeOptionMandatory();
  return parser ? o.argParser((v: string) => parser(v)) : o;
}

/** Choices for an option (commander checks them; the error lists them). */
export function choice(flags: string, description: string, choices: readonly string[], def?: string): Option {
  const o = new Option(flags, description).choices(choices);
  return def === undefined ? o : o.default(def);
}

const MISSING = Symbol('missing');
const ONE_OF = Symbol('one of');
type Collecting = Command & { [MISSING]?: string[]; [ONE_OF]?: string[][] };

/**
 * Options of which exactly one must be given (e.g. --wbits or --avg-bits): "(required: one of ...)"
 * belongs in their help text; none given is reported with the other missing ones, both a usage error.
 */
export function requireOneOf(cmd: Command, ...flags: string[]): Command {
  ((cmd as Collecting)[ONE_OF] ??= []).push(flags);
  return cmd;
}

/**
 * Makes a command collect its missing required arguments and options instead of stopping at the
 * first; `checkMissing` (a preAction hook) then reports them all in one usage error.
 */
export function collectMissing(cmd: Command): void {
  const c = cmd as Collecting & { missingArgument(name: string): void; missingMandatoryOptionValue(o: Option): void };
  // Every mandatory option (commander's requiredOption too) says so in --help.
  for (const o of cmd.options) if (o.mandatory && !o.description.includes('(required)')) o.description += ' (required)';
  c.missingArgument = (name: string) => (c[MISSING] ??= []).push(`<${name}>`);
  // "-o/--output": one option, not two in the comma-separated list.
  c.missingMandatoryOptionValue = (o: Option) => (c[MISSING] ??= []).push(o.flags.replace(/ <.*$/, '').replace(', ', '/'));
  for (const sub of cmd.commands) collectMissing(sub);
}

export function checkMissing(action: Command): void {
  const c = action as Collecting;
  const given = (flag: string): boolean => action.getOptionValueSource(flag.replace(/^-+/, '').replace(/-([a-z])/g, (_, x: string) => x.toUpperCase())) === 'cli';
  for (const group of c[ONE_OF] ?? []) {
    const n = group.filter(given).length;
    if (n === 0) (c[MISSING] ??= []).push(group.join(' or '));
    if (n > 1) throw new UsageError(`give one of ${group.join(', ')}, not several`, action.name());
  }
  const missing = c[MISSING];
  // Arguments first, as they come first on the command line.
  if (missing?.length) throw new UsageError(`missing ${[...missing].sort((a, b) => Number(b.startsWith('<')) - Number(a.startsWith('<'))).join(', ')}`, action.name());
}
