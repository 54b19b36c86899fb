// The accelerator's RTL (firmware-bridge/rtl) under Verilator: random conv layers - shapes, groups,
// strides, kernel sizes, uint8 input, activations, 8/16-bit outputs, saturating and extreme shifts,
// several weight chunks and column tiles, memory latencies - bit for bit against the reference of
// docs/formats/accelerator.md over the whole memory image, and the interface's error codes.
import t from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const rtl = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'firmware-bridge', 'rtl');

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: rtl, env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

t.test('make test: every random layer bit-exact, every error case refused with its code', async (t) => {
  const r = await run('make', ['-s', 'test', 'SEED=7', 'LAYERS=240']);
  t.equal(r.code, 0, r.out.slice(-3000));
  const m = /(\d+) layers, (\d+) error cases, (\d+) failures/.exec(r.out);
  t.ok(m, 'summary line');
  t.equal(Number(m?.[1]), 240, 'all layers ran');
  t.ok(Number(m?.[2]) >= 20, 'error cases checked');
  t.equal(Number(m?.[3]), 0, 'no failure');
  t.match(r.out, /all layers bit-exact/);
});

t.test('a wrong expected byte is reported as a failure', async (t) => {
  const r = await run(path.join('build', 'layer_test'), ['one', '16', '5', '9', '8', '3', '1', '1', '1', '2', '3'], { PERTURB: '1' });
  t.equal(r.code, 1);
  t.match(r.out, /FAIL .*1 bytes differ/);
  const ok = await run(path.join('build', 'layer_test'), ['one', '16', '5', '9', '8', '3', '1', '1', '1', '2', '3']);
  t.equal(ok.code, 0, ok.out);
});
