// The bridge firmware's own build and unit tests (framing, CRC, SHA-256, the protocol state
// machine, the accelerator's C model on hand-worked layers), run through its Makefile.
import t from 'tap';
import { makeFirmware } from './helpers/bridge.js';

t.test('make -C firmware-bridge host test', (t) => {
  const out = makeFirmware(['host', 'test']);
  const m = /(\d+) checks, (\d+) failed/.exec(out);
  t.ok(m, 'the unit tests report their checks');
  t.ok(m && Number(m[1]) > 500, `${m?.[1]} checks ran`);
  t.equal(m?.[2], '0', 'no check failed');
  t.end();
});
