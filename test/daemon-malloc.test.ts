import t from 'tap';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../src/util/paths.js';
import { limitMallocArenas, MALLOC_ARENAS } from '../src/daemon/malloc.js';

const ADDON = path.join(repoRoot, 'build', 'Release', 'zeroq_malloc.node');
const addon = createRequire(import.meta.url)(ADDON) as {
  limitArenas(n: number): boolean;
  arenas(): number;
};
const glibc = Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);

t.test('the arena cap applies on glibc and refuses a count below 1', async (t) => {
  t.equal(limitMallocArenas(), glibc ? 'applied' : 'not glibc');
  t.throws(() => addon.limitArenas(0), /n must be an integer >= 1/);
  t.throws(() => addon.limitArenas(Number.NaN), /n must be an integer >= 1/);
});

// A fresh process starts six worker threads that allocate side by side, with and without the cap
// set first (as the daemon does), and reports glibc's arena count from malloc_info before and after.
// Node's own threads may have made arenas before the first line runs (more on a busy machine); the
// cap keeps those and adds none.
const child = `
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
const a = createRequire(import.meta.url)(${JSON.stringify(ADDON)});
const start = a.arenas();
if (process.argv[1] === 'cap') a.limitArenas(${MALLOC_ARENAS});
const code = "const { parentPort } = require('node:worker_threads'); const keep = []; for (let i = 0; i < 200; i++) keep.push(Buffer.alloc(4096 + i)); parentPort.postMessage(keep.length);";
await Promise.all(Array.from({ length: 6 }, () => new Promise((res, rej) => {
  const w = new Worker(code, { eval: true, execArgv: [] });
  w.once('message', () => res(w.terminate()));
  w.once('error', rej);
})));
console.log(start, a.arenas());
`;

t.test('with the cap, threads that allocate share the arenas; without it each gets its own', { skip: !glibc && 'not glibc' }, async (t) => {
  const run = async (mode: string) => {
    const out = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', child, mode], { cwd: repoRoot, env: { PATH: process.env.PATH ?? '' } });
    const [start, end] = out.stdout.trim().split(' ').map(Number);
    return { start, end, limit: Math.max(start, MALLOC_ARENAS) };
  };
  const capped = await run('cap');
  const free = await run('none');
  t.ok(capped.end >= 1 && capped.end <= capped.limit, `capped: ${capped.start} arenas at the start, ${capped.end} after the threads`);
  t.ok(free.end > free.limit, `without the cap: ${free.start} at the start, ${free.end} after, so the check can tell`);
});
