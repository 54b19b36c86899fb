/**
 * The lifecycle every part of the daemon has (the engine, the source, MQTT, Home Assistant, the
 * publishing of results, the HTTP port, ...). daemon.ts keeps a list of parts (parts/index.ts) and
 * starts them in order, reloads the ones whose configuration section changed, and stops them in
 * reverse order; a part reaches the others only through the DaemonContext it is built with.
 */
import type { Config } from './config.js';

export interface ReloadContext {
  /** The configuration this part was last started or reloaded with. */
  prev: Config;
  /** Names of the parts that changed earlier in this reload, in order. */
  changed: readonly string[];
}

export interface PartHealth {
  /** Why the daemon is not healthy because of this part (empty or absent: no problem). */
  problems?: string[];
  /** Fields shown in the /healthz body. */
  details?: Record<string, unknown>;
}

export interface DaemonPart {
  /** The part's name in logs and in the `changed` list of a reload. */
  readonly name: string;
  /** The configuration the part is built from: a reload reaches the part when this differs. */
  section(cfg: Config): unknown;
  /** Parts whose change also brings a reload to this one (it decides whether it must act). */
  readonly follows?: readonly string[];
  /**
   * Checks what can be checked quickly before anything starts or changes (a missing file, a
   * contradiction); throws a ZeroqError. A reload whose new configuration fails a check is ignored.
   */
  check?(cfg: Config): void;
  start(cfg: Config): Promise<void>;
  /** Applies a new configuration; resolves with false when there was nothing to do. */
  reload(cfg: Config, r: ReloadContext): Promise<boolean>;
  /**
   * Stop taking input: called on every part, in reverse order, before the frame in progress is
   * finished and the parts are stopped.
   */
  drain?(): Promise<void>;
  stop(): Promise<void>;
  health?(): PartHealth;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Whether a reload from prev to next reaches this part. */
export function reloadReaches(p: DaemonPart, prev: Config, next: Config, changed: readonly string[]): boolean {
  return !same(p.section(prev), p.section(next)) || (p.follows ?? []).some((n) => changed.includes(n));
}
