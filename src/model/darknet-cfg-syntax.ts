/**
 * darknet .cfg text → sections of checked, typed options. Knows the syntax and the option table
 * (darknet-options.ts); knows nothing of shapes or layers.
 *
 * Syntax: `[section]` headers; `key=value` lines (whitespace around key, value and list items is
 * ignored); blank lines; comments from `#` or `;` to the end of the line.
 */
import { ZeroqError } from '../util/errors.js';
import { SECTION_NAMES, SECTION_OPTIONS, UNSUPPORTED_SECTIONS, type OptionSpec, type SectionKind } from './darknet-options.js';

export type OptionValue = number | string | number[];

interface RawOption {
  value: string;
  line: number;
}

const INT = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** One cfg section with its options parsed and checked against the option table. */
export class CfgSection {
  private readonly values = new Map<string, OptionValue>();
  private readonly lines = new Map<string, number>();

  constructor(
    readonly kind: SectionKind,
    /** The name as written between the brackets. */
    readonly name: string,
    readonly file: string,
    readonly line: number,
    raw: Map<string, RawOption>,
  ) {
    const table = SECTION_OPTIONS[kind];
    for (const [key, opt] of raw) {
      const spec = Object.hasOwn(table, key) ? table[key] : undefined;
      const where = `${file}:${opt.line}`;
      if (!spec) throw new ZeroqError('cfg-unknown-option', `unknown option '${key}' in [${name}]`, where);
      const value = parseValue(spec, key, opt.value, name, where);
      if (spec.role === 'refuse') {
        throw new ZeroqError('cfg-unsupported', `option '${key}' in [${name}] is not supported`, where);
      }
      if (spec.role === 'fixed' && value !== spec.fixed) {
        throw new ZeroqError(
          'cfg-unsupported',
          `${key}=${opt.value} in [${name}] is not supported (only ${key}=${String(spec.fixed)})`,
          where,
        );
      }
      this.values.set(key, value);
      this.lines.set(key, opt.line);
    }
  }

  /** "file:line" of an option when given, else of the section header. */
  where(key?: string): string {
    const line = key !== undefined ? this.lines.get(key) : undefined;
    return `${this.file}:${line ?? this.line}`;
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  int(key: string, fallback: number): number {
    return (this.values.get(key) as number | undefined) ?? fallback;
  }

  float(key: string, fallback: number): number {
    return (this.values.get(key) as number | undefined) ?? fallback;
  }

  flag(key: string, fallback: boolean): boolean {
    const v = this.values.get(key) as number | undefined;
    return v === undefined ? fallback : v === 1;
  }

  word(key: string, fallback: string): string {
    return (this.values.get(key) as string | undefined) ?? fallback;
  }

  list(key: string): number[] | undefined {
    return this.values.get(key) as number[] | undefined;
  }

  /** A required option; error naming the section when it is missing. */
  required<T extends OptionValue>(key: string): T {
    const v = this.values.get(key);
    if (v === undefined) throw new ZeroqError('cfg-missing-option', `[${this.name}] needs option '${key}'`, this.where());
    return v as T;
  }
}

function badValue(key: string, value: string, section: string, why: string, where: string): ZeroqError {
  return new ZeroqError('cfg-bad-value', `bad value '${value}' for ${key} in [${section}]: ${why}`, where);
}

function parseNumber(spec: OptionSpec, key: string, text: string, section: string, where: string, whole: string): number {
  const integer = spec.type === 'int' || spec.type === 'ints' || spec.type === 'flag';
  if (!(integer ? INT : FLOAT).test(text)) {
    throw badValue(key, whole, section, integer ? 'expected an integer' : 'expected a number', where);
  }
  const n = Number(text);
  // Integers are 32-bit in darknet; a float that overflows to infinity is no number either.
  if (integer ? Math.abs(n) > 2 ** 31 - 1 : !Number.isFinite(n)) throw badValue(key, whole, section, 'out of range', where);
  if (spec.type === 'flag' && n !== 0 && n !== 1) throw badValue(key, whole, section, 'expected 0 or 1', where);
  if (spec.min !== undefined && n < spec.min) throw badValue(key, whole, section, `must be >= ${spec.min}`, where);
  if (spec.max !== undefined && n > spec.max) throw badValue(key, whole, section, `must be <= ${spec.max}`, where);
  return n;
}

function parseValue(spec: OptionSpec, key: string, text: string, section: string, where: string): OptionValue {
  if (text === '') throw badValue(key, text, section, 'empty value', where);
  switch (spec.type) {
    case 'int':
    case 'float':
    case 'flag':
      return parseNumber(spec, key, text, section, where, text);
    case 'ints':
    case 'floats':
      return text.split(',').map((item) => parseNumber(spec, key, item.trim(), section, where, text));
    case 'word':
      if (!spec.choices!.includes(text)) {
        throw badValue(key, text, section, `expected one of ${spec.choices!.join(', ')}`, where);
      }
      return text;
    case 'text':
      return text;
  }
}

/** Splits cfg text into checked sections. `file` names the file in error messages. */
export function readCfgSections(text: string, file: string): CfgSection[] {
  const sections: CfgSection[] = [];
  let current: { kind: SectionKind; name: string; line: number; raw: Map<string, RawOption> } | undefined;
  const flush = (): void => {
    if (current) sections.push(new CfgSection(current.kind, current.name, file, current.line, current.raw));
  };
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const where = `${file}:${lineNo}`;
    const line = lines[i].replace(/[#;].*$/, '').trim();
    if (line === '') continue;
    if (line.startsWith('[')) {
      const m = /^\[\s*([^\]\s]+)\s*\]$/.exec(line);
      if (!m) throw new ZeroqError('cfg-syntax', `malformed section header '${line}'`, where);
      flush();
      current = undefined;
      const name = m[1];
      const kind = Object.hasOwn(SECTION_NAMES, name) ? SECTION_NAMES[name] : undefined;
      if (!kind) {
        if (UNSUPPORTED_SECTIONS.includes(name)) {
          throw new ZeroqError('cfg-unsupported', `layer type [${name}] is not supported`, where);
        }
        throw new ZeroqError('cfg-unknown-section', `unknown section [${name}]`, where);
      }
      current = { kind, name, line: lineNo, raw: new Map() };
      continue;
    }
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (key === '' || /\s/.test(key)) {
      throw new ZeroqError('cfg-syntax', `malformed line '${line}' (expected key=value or [section])`, where);
    }
    if (!current) throw new ZeroqError('cfg-syntax', `option '${key}' before the first [section]`, where);
    const earlier = current.raw.get(key);
    if (earlier) {
      throw new ZeroqError('cfg-syntax', `option '${key}' given twice in [${current.name}] (first at line ${earlier.line})`, where);
    }
    current.raw.set(key, { value: line.slice(eq + 1).trim(), line: lineNo });
  }
  flush();
  return sections;
}
