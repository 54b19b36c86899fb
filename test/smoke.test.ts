import t from 'tap';
import { dataDir } from '../src/util/paths.js';
t.test('data dir', async (t) => { t.match(dataDir(), /shared\/data$/); });
