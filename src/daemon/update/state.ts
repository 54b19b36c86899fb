/**
 * What the device keeps about updates, in update.dir:
 *   state.json            the running set, the sets kept for rollback, a set on trial, refusals
 *   sets/<sha256>.zqw     installed sets (complete and verified; written by rename)
 *   download/<sha256>.zqw a download in progress, or downloaded and being checked (resumed after a restart)
 * state.json is written atomically; the order of writes (docs/updates.md) makes every kill -9 leave a
 * set that runs at the next start: the set named `current`, else the configured model.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import type { Config } from '../config.js';

export interface InstalledSet {
  sha256: string;
  /** The weight-set id (manifest.id). */
  id: string;
  /** The server's version number, when it came from the server. */
  version: number | null;
  installed: string;
}

export interface UpdateState {
  v: 1;
  /** The configured model file the installed sets replace: a different one in the config wins over them. */
  base: string | null;
  /** The set that runs (null: the configured model). Set only once a set passed its health window. */
  current: InstalledSet | null;
  /** Earlier sets, newest first, kept for rollback. */
  previous: InstalledSet[];
  /** A set swapped in and being watched; present at a start only when the process died meanwhile. */
  trial: (InstalledSet & { started: string }) | null;
  /** Sets that failed (sha256 → reason): not tried again. */
  refused: Record<string, string>;
  /** Starts that found a set on trial (a set that kills the daemon is refused after three). */
  attempts: Record<string, number>;
}

export const MAX_ATTEMPTS = 3;

export function emptyState(): UpdateState {
  return { v: 1, base: null, current: null, previous: [], trial: null, refused: {}, attempts: {} };
}

/** update.dir, or its default. */
export function updateDir(cfg: Config, env: NodeJS.ProcessEnv = process.env): string {
  if (cfg.update.dir) return path.resolve(cfg.update.dir);
  // systemd's StateDirectory= sets STATE_DIRECTORY (possibly a colon-separated list).
  const sd = env.STATE_DIRECTORY?.split(':')[0];
  if (sd) return path.join(sd, 'updates');
  const xdg = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(xdg, 'zeroq', 'updates');
}

export class StateFiles {
  readonly sets: string;
  readonly download: string;
  readonly file: string;

  constructor(readonly dir: string) {
    this.sets = path.join(dir, 'sets');
    this.download = path.join(dir, 'download');
    this.file = path.join(dir, 'state.json');
  }

  ensure(): void {
    mkdirSync(this.sets, { recursive: true });
    mkdirSync(this.download, { recursive: true });
  }

  setPath(sha256: string): string {
    return path.join(this.sets, `${sha256}.zqw`);
  }

  partPath(sha256: string): string {
    // .zqw: the engine opens it for the self-test before it is installed.
    return path.join(this.download, `${sha256}.zqw`);
  }

  /** The state (an unreadable one counts as empty: the configured model then runs). */
  load(): UpdateState {
    try {
      const s = JSON.parse(readFileSync(this.file, 'utf8')) as UpdateState;
      if (s.v === 1) return { ...emptyState(), ...s };
    } catch {
      /* none yet, or damaged */
    }
    return emptyState();
  }

  async save(s: UpdateState): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(s, null, 1) + '\n');
  }
}

/**
 * The installed set the daemon runs instead of the configured model (used when the engine is
 * opened): updates are configured, a set was installed over this same configured model, and its file
 * is there. The signature is checked when the engine opens it, with model.trust and update.trust.
 */
export function installedModel(cfg: Config, configuredPath: string): { path: string; trust: string[] } | undefined {
  if (!cfg.update.server) return undefined;
  const files = new StateFiles(updateDir(cfg));
  if (!existsSync(files.file)) return undefined;
  const s = files.load();
  if (!s.current || s.base !== path.resolve(configuredPath)) return undefined;
  const p = files.setPath(s.current.sha256);
  if (!existsSync(p)) return undefined;
  return { path: p, trust: [...(cfg.model.trust ?? []), ...cfg.update.trust] };
}
