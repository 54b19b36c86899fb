/**
 * The daemon's allocator settings (src/daemon/native/malloc.cc, built by node-gyp into
 * build/Release/zeroq_malloc.node): glibc's malloc arenas capped at two, blocks of 128 KiB and more
 * (frames) mapped on their own, and free memory given back on request. Without the cap, the threads
 * of the picture path (libvips, pango) each keep an arena of freed memory: about 55 MB of the
 * daemon's resident set in the soak. See docs/decisions/daemon-memory.md.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { repoRoot } from '../util/paths.js';

/** glibc's arenas the daemon allows: the main one and one for every other thread. */
export const MALLOC_ARENAS = 2;

/**
 * Caps malloc's arenas; call it before threads start. Returns what happened, for the log: applied,
 * not glibc, or the addon missing (the daemon runs either way, only with more memory).
 */
export function limitMallocArenas(n = MALLOC_ARENAS): 'applied' | 'not glibc' | string {
  const a = addon();
  if (typeof a === 'string') return a;
  return a.limitArenas(n) ? 'applied' : 'not glibc';
}

/** Gives the arenas' free memory back to the system (after a picture: its threads' buffers). */
export function trimMalloc(): void {
  const a = addon();
  if (typeof a !== 'string') a.trim();
}

interface MallocAddon {
  limitArenas(n: number): boolean;
  trim(): boolean;
}

let loaded: MallocAddon | string | undefined;
function addon(): MallocAddon | string {
  if (loaded === undefined) {
    const file = path.join(repoRoot, 'build', 'Release', 'zeroq_malloc.node');
    try {
      loaded = createRequire(import.meta.url)(file) as MallocAddon;
    } catch (err) {
      loaded = `${file}: ${(err as Error).message.split('\n')[0]} (build it with: npx node-gyp rebuild)`;
    }
  }
  return loaded;
}
