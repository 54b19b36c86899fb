/**
 * Builds the configuration from its three layers — the file (YAML or JSON), ZEROQ_* environment
 * variables, command-line flags; later layers win — and validates it. Every error names where the
 * bad value came from: the file and line with the key path, the variable or the flag.
 */
import { readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import type { Document } from 'yaml';
import type { z } from 'zod';
import { ZeroqError } from '../util/errors.js';
import { configSchema, type Config } from './config.js';
import { engineModules, flagAttribute } from '../engine/registry.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** Environment variables read by `zeroq run`, and the key each one sets. */
type ValueType = 'string' | 'int' | 'bool' | 'list';

export const ENV_KEYS: Record<string, { path: string[]; type: ValueType }> = {
  ZEROQ_DEVICE_ID: { path: ['device_id'], type: 'string' },
  ZEROQ_SOURCE: { path: ['source', 'url'], type: 'string' },
  ZEROQ_MODEL: { path: ['model', 'path'], type: 'string' },
  ZEROQ_ENGINE: { path: ['model', 'engine'], type: 'string' },
  ZEROQ_THREADS: { path: ['model', 'threads'], type: 'int' },
  ZEROQ_MQTT_URL: { path: ['mqtt', 'url'], type: 'string' },
  ZEROQ_MQTT_PREFIX: { path: ['mqtt', 'prefix'], type: 'string' },
  ZEROQ_MQTT_USERNAME: { path: ['mqtt', 'username'], type: 'string' },
  ZEROQ_MQTT_PASSWORD: { path: ['mqtt', 'password'], type: 'string' },
  ZEROQ_HTTP_PORT: { path: ['http', 'port'], type: 'int' },
  ZEROQ_TRUST: { path: ['model', 'trust'], type: 'list' },
  ZEROQ_UPDATE_SERVER: { path: ['update', 'server'], type: 'string' },
  ZEROQ_UPDATE_TOKEN: { path: ['update', 'token'], type: 'string' },
};

/** Command-line flags of `zeroq run` that map onto config keys. */
export interface RunFlags {
  source?: string;
  model?: string;
  engine?: string;
  threads?: number | string;
  mqttUrl?: string;
  deviceId?: string;
  maxFrames?: number | string;
  print?: boolean;
  httpPort?: number | string;
  /** Trusted public keys (each entry may hold several, comma-separated). */
  trust?: string[];
  /** Engine modules' own flags (--device, --baud, --isa, ...), by commander attribute name. */
  [engineFlag: string]: unknown;
}

type FlagKey = { flag: string; name: string; path: string[]; type: ValueType };

/** The registered engines' flags: each sets its key in the model section. */
function engineFlagKeys(): FlagKey[] {
  return engineModules().flatMap((m) =>
    m.flags.map((f) => ({ flag: flagAttribute(f.flags), name: f.flags.split(' ')[0], path: ['model', f.key], type: f.type ?? 'string' })),
  );
}

const FLAG_KEYS: FlagKey[] = [
  { flag: 'source', name: '--source', path: ['source', 'url'], type: 'string' },
  { flag: 'model', name: '--model', path: ['model', 'path'], type: 'string' },
  { flag: 'engine', name: '--engine', path: ['model', 'engine'], type: 'string' },
  { flag: 'threads', name: '--threads', path: ['model', 'threads'], type: 'int' },
  { flag: 'mqttUrl', name: '--mqtt-url', path: ['mqtt', 'url'], type: 'string' },
  { flag: 'deviceId', name: '--device-id', path: ['device_id'], type: 'string' },
  { flag: 'maxFrames', name: '--max-frames', path: ['max_frames'], type: 'int' },
  { flag: 'print', name: '--print', path: ['print'], type: 'bool' },
  { flag: 'httpPort', name: '--http-port', path: ['http', 'port'], type: 'int' },
  { flag: 'trust', name: '--trust', path: ['model', 'trust'], type: 'list' },
  { flag: 'updateServer', name: '--update-server', path: ['update', 'server'], type: 'string' },
  { flag: 'updateChannel', name: '--update-channel', path: ['update', 'channel'], type: 'string' },
  { flag: 'updateToken', name: '--update-token', path: ['update', 'token'], type: 'string' },
  { flag: 'updateInterval', name: '--update-interval', path: ['update', 'check_interval_s'], type: 'int' },
  { flag: 'updateInstall', name: '--no-update-install', path: ['update', 'auto_install'], type: 'bool' },
  { flag: 'updateDir', name: '--update-dir', path: ['update', 'dir'], type: 'string' },
];

export interface LoadOptions {
  /** Config file (YAML or JSON); none: defaults plus environment and flags. */
  file?: string;
  /** The file's text, when already read (`file` then only names it in messages). */
  text?: string;
  env?: NodeJS.ProcessEnv;
  flags?: RunFlags;
}

/** A value as given (strings from env/flags are converted when they parse, else left for zod to reject). */
function convert(raw: string | number | boolean | string[], type: ValueType): Json {
  if (type === 'list') {
    const items = Array.isArray(raw) ? raw : [String(raw)];
    return items.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
  }
  if (Array.isArray(raw)) return raw;
  if (typeof raw !== 'string') return raw;
  if (type === 'int' && /^-?\d+$/.test(raw.trim())) return Number(raw.trim());
  if (type === 'bool') {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
  }
  return raw;
}

function setPath(obj: Obj, path: string[], value: Json): void {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    const next = o[k];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) o[k] = {};
    o = o[k] as Obj;
  }
  o[path[path.length - 1]] = value;
}

export interface FileLayer {
  data: Obj;
  /** 1-based line of a key path in the file, when known. */
  lineOf(path: PropertyKey[]): number | undefined;
}

/** A config file larger than this is refused unread (a configuration is a few kilobytes). */
export const MAX_CONFIG_BYTES = 1 << 20;

let yaml: typeof import('yaml') | undefined;
/** The YAML library, loaded with the first config file (a daemon run from flags alone goes without). */
function yamlLib(): typeof import('yaml') {
  yaml ??= createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml;
}

function readFile(file: string): FileLayer {
  let text: string;
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ZeroqError('config', `cannot read config file: ${(err as Error).message}`, file, { cause: err });
  }
  return parseConfigText(text, file);
}

/**
 * Parses the text of a config file (YAML or JSON). Anything the YAML library refuses — syntax,
 * an alias to no anchor, more than 100 aliases (a "billion laughs" document), nesting too deep for
 * the stack — is a ZeroqError('config') naming the file (and line when known).
 */
export function parseConfigText(text: string, file: string): FileLayer {
  const { LineCounter, parseDocument, isNode } = yamlLib();
  const lc = new LineCounter();
  let doc: Document;
  let data: Json;
  try {
    // logLevel error: no process warnings (e.g. for a collection used as a key, which then fails as an unknown key).
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = lc.linePos(e.pos[0]).line;
      throw new ZeroqError('config', `not valid YAML/JSON: ${e.message.split('\n')[0]}`, `${file}:${line}`);
    }
    data = (doc.toJS({ maxAliasCount: 100 }) ?? {}) as Json;
  } catch (e) {
    if (e instanceof ZeroqError) throw e;
    const why = e instanceof RangeError ? 'nested too deeply' : (e as Error).message;
    throw new ZeroqError('config', `not a usable YAML/JSON document: ${why}`, file, { cause: e });
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ZeroqError('config', 'expected a mapping of keys at the top level', file);
  }
  return {
    data,
    lineOf(path) {
      // The deepest node of the path that exists: an unknown key is reported at its parent's line
      // unless the key itself is found.
      for (let n = path.length; n >= 0; n--) {
        const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
        if (isNode(node) && node.range) {
          // getIn returns the value node; a key's line is the line of its value for scalars.
          return lc.linePos(node.range[0]).line;
        }
      }
      return undefined;
    },
  };
}

function describeIssue(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ path: [...issue.path, k], message: 'unknown key' }));
  }
  if (issue.code === 'invalid_key' && issue.issues.length > 0) {
    return [{ path: issue.path, message: `bad name: ${issue.issues.map((i) => i.message).join('; ')}` }];
  }
  return [{ path: issue.path, message: issue.message }];
}

function pathText(path: PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
}

/**
 * Merges file, environment and flags and validates the result. Throws ZeroqError('config') listing
 * every problem, each with where it came from.
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.text !== undefined ? parseConfigText(opts.text, opts.file ?? 'config') : opts.file ? readFile(opts.file) : undefined;
  const merged: Obj = file ? structuredClone(file.data) : {};
  /** dotted key path → the env variable or flag that set it. */
  const origin = new Map<string, string>();

  for (const [name, spec] of Object.entries(ENV_KEYS)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    setPath(merged, spec.path, convert(v, spec.type));
    origin.set(spec.path.join('.'), name);
  }
  for (const f of [...FLAG_KEYS, ...engineFlagKeys()]) {
    const v = opts.flags?.[f.flag];
    const list = Array.isArray(v) && v.every((x) => typeof x === 'string');
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean' && !list) continue;
    setPath(merged, f.path, convert(v as string | number | boolean | string[], f.type));
    origin.set(f.path.join('.'), f.name);
  }

  if (merged.cameras !== undefined && merged.source !== undefined) {
    const from = origin.get('source.url');
    throw new ZeroqError('config', `source${from ? ` (from ${from})` : ''} and cameras: use one of them (a camera of the cameras map is a source section)`, opts.file ?? 'cameras');
  }
  const res = configSchema.safeParse(merged);
  if (!res.success) {
    const lines: string[] = [];
    for (const issue of res.error.issues) {
      for (const { path, message } of describeIssue(issue)) {
        const key = pathText(path) || '(top level)';
        const from = origin.get(path.map(String).join('.'));
        let where: string;
        if (from) where = from;
        else if (file && opts.file) {
          const line = file.lineOf(path);
          where = line ? `${opts.file}:${line}` : opts.file;
        } else where = 'defaults';
        // A key can be any YAML text (a flow mapping used as a key): keep it on one line.
        lines.push(`${where}: ${key}: ${message}`.replace(/\s*[\r\n]+\s*/g, ' '));
      }
    }
    // One line, as every error the CLI prints: the problems one after another.
    const head = lines.length === 1 ? 'invalid configuration' : `invalid configuration (${lines.length} problems)`;
    const err = new ZeroqError('config', `${head}: ${lines.join('; ')}`);
    throw err;
  }
  const cfg = res.data;
  if (!cfg.device_id) cfg.device_id = defaultDeviceId();
  const rc = cfg.mqtt.reconnect;
  if (rc.max_ms < rc.min_ms) throw new ZeroqError('config', `max_ms (${rc.max_ms}) is below min_ms (${rc.min_ms})`, 'mqtt.reconnect');
  if (cfg.cameras && Object.keys(cfg.cameras).length === 0) throw new ZeroqError('config', 'no camera: name at least one, or use source', 'cameras');
  for (const [key, c] of cfg.cameras ? Object.entries(cfg.cameras).map(([n, c]) => [`cameras.${n}`, c] as const) : [['source', cfg.source] as const]) {
    const rs = c.restart;
    if (rs.max_ms < rs.initial_ms) throw new ZeroqError('config', `max_ms (${rs.max_ms}) is below initial_ms (${rs.initial_ms})`, `${key}.restart`);
  }
  const e = cfg.mqtt.embedded;
  if ((e.password !== undefined || e.password_file !== undefined) && e.username === undefined) {
    throw new ZeroqError('config', 'a password needs a username', 'mqtt.embedded');
  }
  if (e.username !== undefined && e.password === undefined && e.password_file === undefined) {
    throw new ZeroqError('config', 'a username needs a password or password_file', 'mqtt.embedded');
  }
  const t = cfg.mqtt.tls;
  if (t && (t.cert === undefined) !== (t.key === undefined)) {
    throw new ZeroqError('config', 'a client certificate needs both cert and key', 'mqtt.tls');
  }
  return cfg;
}

/** The host name reduced to the characters allowed in a device id. */
export function defaultDeviceId(): string {
  const h = os.hostname().split('.')[0].replace(/[^A-Za-z0-9_-]/g, '-');
  return h.length > 0 ? h : 'zeroq';
}
