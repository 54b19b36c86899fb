import t from 'tap';
import { createRequire } from 'node:module';
import path from 'node:path';
import { repoRoot } from '../src/util/paths.js';
import { limitMallocArenas } from '../src/daemon/malloc.js';

const addon = createRequire(import.meta.url)(path.join(repoRoot, 'build', 'Release', 'zeroq_malloc.node')) as {
  limitArenas(n: number): boolean;
};
const glibc = Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);

t.test('the arena cap applies on glibc and refuses a count below 1', async (t) => {
  t.equal(limitMallocArenas(), glibc ? 'applied' : 'not glibc');
  t.throws(() => addon.limitArenas(0), /n must be an integer >= 1/);
  t.throws(() => addon.limitArenas(Number.NaN), /n must be an integer >= 1/);
});

