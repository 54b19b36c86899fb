// The fpga engine from the command line: zeroq fpga info, eval and detect with --engine fpga
// --device (the int engine's figures exactly), and the errors a user can make.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { defaultWeightSet } from '../src/daemon/config.js';
import { dataPath } from '../src/util/paths.js';
import { buildFirmware, startBridge, startRelay, tempDir } from './helpers/bridge.js';
import { repo } from './helpers/daemon.js';

const run = promisify(execFile);
const zeroq = (args: string[]) => run(process.execPath, ['--import', 'tsx', path.join(repo, 'src', 'cli.ts'), ...args], { maxBuffer: 64 << 20 });
const fails = (args: string[]) => zeroq(args).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);

buildFirmware();

t.test('zeroq fpga info, eval and detect through bridge-host', async (t) => {
  const { dir, remove } = tempDir();
  const link = path.join(dir, 'bridge');
  const bridge = await startBridge(link);
  t.teardown(async () => {
    await bridge.stop();
    remove();
  });
  const w8 = defaultWeightSet();
  // What is checked here is the integers: a link deadline a loaded test machine cannot miss (the
  // deadlines have their own tests in fpga-faults.test.ts).
  const slack = ['--fpga-link-timeout', '3000'];
  const info = JSON.parse((await zeroq(['fpga', 'info', '--device', link, ...slack, '--model', w8, '--json'])).stdout);
  t.equal(info.version, 1, 'protocol version');
  t.equal(info.imageState, 0, 'a new bridge holds no weight set');
  t.equal(info.model.refusal, null, 'the shipped weight set can run on it');
  t.equal(info.model.held, false, 'and is not held yet');

  const list = path.join(dir, 'three.txt');
  writeFileSync(list, ['000000000139.jpg', '000000000872.jpg', '000000000885.jpg'].map((f) => dataPath('coco-val', 'images', f)).join('\n'));
  const onFpga = JSON.parse((await zeroq(['eval', w8, '--engine', 'fpga', '--device', link, ...slack, '--data', list, '--json'])).stdout);
  const onInt = JSON.parse((await zeroq(['eval', w8, '--data', list, '--json'])).stdout);
  t.equal(onFpga.engine, 'fpga');
  t.equal(onFpga.link.deviceFrames, 3, 'every image on the device');
  t.equal(onFpga.link.fallbackFrames, 0);
  t.equal(onFpga.AP, onInt.AP, `AP identical (${onInt.AP})`);
  t.equal(onFpga.AP50, onInt.AP50, 'AP50 identical');
  t.equal(onFpga.detections, onInt.detections, 'as many detections');

  const img = dataPath('coco-val', 'images', '000000000139.jpg');
  // The same detections (the time per image aside).
  const noTime = (out: string) => (JSON.parse(out) as Record<string, unknown>[]).map(({ ms, ...rest }) => rest);
  const dFpga = noTime((await zeroq(['detect', w8, img, '--engine', 'fpga', '--device', link, ...slack, '--json'])).stdout);
  const dInt = noTime((await zeroq(['detect', w8, img, '--json'])).stdout);
  t.ok(Array.isArray(dInt[0].detections) && (dInt[0].detections as unknown[]).length > 0, 'the int engine finds objects');
  t.same(dFpga, dInt, 'detect: the same detections');

  const again = JSON.parse((await zeroq(['fpga', 'info', '--device', link, ...slack, '--model', w8, '--json'])).stdout);
  t.equal(again.model.held, true, 'now the device holds the weight set');
  t.ok(again.stats.inferred >= 4, `the device counted its frames (${again.stats.inferred})`);
});

t.test('--fpga-link-timeout: the deadline a silent link is given', async (t) => {
  const { dir, remove } = tempDir();
  const bridge = await startBridge(path.join(dir, 'bridge'));
  const relay = await startRelay(path.join(dir, 'bridge'), path.join(dir, 'relay'));
  t.teardown(async () => {
    await relay.stop();
    await bridge.stop();
    remove();
  });
  t.equal(await relay.command('drop 1'), 'ok drop 1', 'the relay drops every frame');
  for (const ms of ['120', '400']) {
    const silent = await fails(['fpga', 'info', '--device', path.join(dir, 'relay'), '--fpga-link-timeout', ms]);
    t.equal(silent.code, 2, `${ms} ms: exit 2`);
    t.match(silent.stderr, new RegExp(`no answer to request 0x[0-9a-f]+ after 3 tries \\(each waited ${ms} ms`), `${ms} ms: the deadline it was given`);
  }
  const bad = await fails(['eval', defaultWeightSet(), '--engine', 'fpga', '--device', '/tmp/x', '--fpga-link-timeout', '5', '--data', '/tmp/none.txt']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--fpga-link-timeout: "5" is not a time in ms in 50\.\.60000/);
});

t.test('mistakes: one line, exit 2', async (t) => {
  const w8 = defaultWeightSet();
  const img = dataPath('coco-val', 'images', '000000000139.jpg');
  const noDevice = await fails(['detect', w8, img, '--engine', 'fpga']);
  t.equal(noDevice.code, 2);
  t.match(noDevice.stderr, /needs the bridge's port: --device PATH/);
  const badBaud = await fails(['detect', w8, img, '--engine', 'fpga', '--device', '/tmp/x', '--baud', 'fast']);
  t.equal(badBaud.code, 2);
  t.match(badBaud.stderr, /--baud: "fast" is not a baud rate/);
  const badTimeout = await fails(['detect', w8, img, '--engine', 'fpga', '--device', '/tmp/x', '--fpga-timeout', '10']);
  t.equal(badTimeout.code, 2);
  t.match(badTimeout.stderr, /--fpga-timeout: "10" is not a time in ms/);
  const missing = await fails(['fpga', 'info', '--device', '/nonexistent/port']);
  t.equal(missing.code, 2);
  t.equal(missing.stderr.trim().split('\n').length, 1, 'one line');
});
