import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { engineFor, engineKinds, engineModule, registerEngine, type EngineModule } from '../src/engine/registry.js';
import { loadConfig } from '../src/daemon/config-load.js';
import { repo } from './helpers/daemon.js';

const run = promisify(execFile);
const cli = path.join(repo, 'src', 'cli.ts');
const zeroq = (args: string[], env?: NodeJS.ProcessEnv) => run(process.execPath, ['--import', 'tsx', cli, ...args], { env: env ?? process.env });

t.test('built-in kinds; the engine of a path; unknown kinds list the available ones', async (t) => {
  t.ok(engineKinds().includes('int') && engineKinds().includes('float') && engineKinds().includes('fpga'));
  t.equal(engineFor('a/b.zqw').kind, 'int', 'a .zqw runs on int unless fpga is asked for');
  t.equal(engineFor('a/b.cfg').kind, 'float');
  t.equal(engineFor('a/b.ZQW').kind, 'int');
  t.equal(engineFor('a/b.cfg', 'int').kind, 'int', 'an explicit kind wins');
  t.throws(() => engineFor('model.onnx'), { code: 'engine-model', message: /int: .*zqw.*float: .*cfg/ });
  t.throws(() => engineModule('gpu'), { code: 'engine-unknown', message: /unknown engine "gpu" \(available: .*int.*float/ });
  const dup: EngineModule = { ...engineModule('int') };
  t.throws(() => registerEngine(dup), { code: 'engine-registry' });
});

t.test('the daemon config takes any registered kind and its options; others are refused with the list', async (t) => {
  t.equal(loadConfig({ env: {} }).model.engine, 'int', 'the fixed-point path is the default');
  const bad = (() => {
    try {
      loadConfig({ env: {}, flags: { engine: 'gpu' } });
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  })();
  t.match(bad, /--engine: model.engine: unknown engine "gpu" \(available: int, float/);
  const cfg = loadConfig({ env: {}, flags: { engine: 'int', isa: 'scalar' } });
  t.equal((cfg.model as Record<string, unknown>).isa, 'scalar', "an engine's own flag lands in the model section");
});

// A new engine kind is one module: registered from outside (ZEROQ_ENGINE_MODULES), it appears in every
// command's --engine choices with its own flags, and --engine <kind> reaches its open().
t.test('an engine module registered from outside shows up in the CLI without edits elsewhere', async (t) => {
  const dir = t.testdir({});
  const stub = path.join(dir, 'npu-stub.mjs');
  writeFileSync(
    stub,
    `export const engine = {
  kind: 'npu',
  summary: 'an accelerator (stub)',
  modelFiles: 'a .zqw weight set',
  opens: () => false,
  options: {},
  flags: [{ flags: '--npu-port <path>', description: 'npu: its port', key: 'port' }],
  capabilities: { integer: true, threads: false },
  async open(model, opts) {
    const e = new Error('stub engine opened ' + model + ' on ' + opts.port);
    e.code = 'stub-open';
    e.where = 'npu';
    throw e;
  },
};
`,
  );
  const env = { ...process.env, ZEROQ_ENGINE_MODULES: stub };
  for (const cmd of ['bench', 'detect', 'eval', 'run']) {
    const { stdout } = await zeroq([cmd, '--help'], env);
    t.match(stdout, /choices:\s+"int",\s+"float",\s+"fpga",\s+"npu"/, `${cmd} --help lists the stub kind`);
    t.match(stdout, /--npu-port <path>/, `${cmd} --help has the stub's flag`);
  }
  const { stdout: plain } = await zeroq(['bench', '--help']);
  t.notMatch(plain, /npu/, 'without the module there is no npu kind');
  const err = await zeroq(['detect', 'set.zqw', 'x.jpg', '--engine', 'npu', '--npu-port', '/dev/ttyX'], env).then(
    () => undefined,
    (e: { stderr: string }) => e,
  );
  t.match(err?.stderr ?? '', /stub engine opened set\.zqw on \/dev\/ttyX/, '--engine npu opens the stub with its option');
});
