// The command line as a user meets it, through the real CLI (bin/zeroq): exit codes (0, 2 for usage
// errors and bad input, 1 for a failure that is a bug), one-line errors, all missing required
// options at once, required options marked in --help, a closed stdout (`| head`), --save, progress
// lines without a terminal, readable logs on one.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { dataPath } from '../src/util/paths.js';
import { progress } from '../src/cli/progress.js';
import { BIN, refusalProblem, zeroq } from './helpers/cli.js';

const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const sample = (name: string) => dataPath('reference', 'samples', `${name}.jpg`);
const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a shell pipeline of bin/zeroq into `head`; resolves with zeroq's exit status and stderr. */
function pipeline(args: string[], head: string): Promise<{ status: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    // bash for PIPESTATUS: zeroq's own exit status, not head's.
    const script = `unset NODE_OPTIONS; "${process.execPath}" "${BIN}" ${quoted} 2>"${dir}/stderr" | ${head}; s=\${PIPESTATUS[0]}; cat "${dir}/stderr" >&2; exit $s`;
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status: status ?? -1, out, err }));
  });
}

t.test('a reader that stops early (| head) ends zeroq quietly with 0', async (t) => {
  const images = ['dog', 'horses', 'person', 'eagle', 'giraffe'].map(sample);
  const d = await pipeline(['detect', CFG, ...images, ...images, ...images, ...images], 'head -1');
  t.equal(d.status, 0, 'detect | head -1: exit 0');
  t.equal(d.err, '', 'no stack trace, nothing on stderr');
  t.match(d.out, /^.*dog\.jpg: 768x576, \d+ objects/);
  const h = await pipeline(['eval', '--help'], 'head -3');
  t.equal(h.status, 0, 'eval --help | head -3: exit 0');
  t.equal(h.err, '');
  t.equal(h.out.split('\n').length - 1, 3, 'three lines');
});

t.test('every missing required argument and option in one line, exit 2', async (t) => {
  const q = await zeroq(['quantize']);
  t.notOk(refusalProblem(q), refusalProblem(q) ?? 'exit 2, one line');
  for (const name of ['<cfg>', '--wbits or --avg-bits', '--calib', '-o/--output']) t.match(q.stderr, name, `names ${name}`);
  t.match(q.stderr, 'zeroq quantize --help');
  const r = await zeroq(['retrain', CFG]);
  t.notOk(refusalProblem(r));
  t.match(r.stderr, /missing --data, -o\/--output/);
  const both = await zeroq(['quantize', CFG, '--wbits', '8', '--avg-bits', '6', '--calib', 'x.txt', '-o', 'x.zqw']);
  t.notOk(refusalProblem(both));
  t.match(both.stderr, 'give one of --wbits, --avg-bits, not several');
  const d = await zeroq(['detect', CFG]);
  t.notOk(refusalProblem(d));
  t.match(d.stderr, 'missing <images>');
});

t.test('required options are marked in --help', async (t) => {
  const q = await zeroq(['quantize', '--help']);
  t.equal(q.code, 0);
  for (const flag of ['--wbits <n>', '--calib <list>', '-o, --output <file>']) {
    const line = q.stdout.split('\n').find((l) => l.trimStart().startsWith(flag)) ?? '';
    const text = q.stdout.slice(q.stdout.indexOf(line)).split(/\n\s{2}-/)[0];
    t.match(text, /\(required/, `${flag} is marked required`);
  }
  t.notMatch(q.stdout.split('\n').find((l) => l.includes('--weights <file>')) ?? '', '(required)', '--weights is not');
});

t.test('usage errors and bad input exit 2 with one line; a failure that is a bug exits 1 with one line', async (t) => {
  const image = sample('dog');
  const cases: [string[], RegExp][] = [
    [['detect', CFG, image, '--bogus'], /unknown option '--bogus'.*\[usage\]/],
    [['detect', CFG, image, '--threads', '256'], /'--threads <n>' argument '256' is invalid\. expected an integer from 1 to 64/],
    [['detect', CFG, image, '--threshold', 'high'], /'--threshold <p>' argument 'high'/],
    [['detect', CFG, image, '--engine', 'gpu'], /'--engine <kind>' argument 'gpu' is invalid\. Allowed choices are .*int.*float/],
    [['bench', CFG, '--frames', '0'], /'--frames <n>' argument '0'/],
    [['inspect', CFG, '--size', '0x3'], /'--size <WxH>' argument '0x3'/],
    [['eval'], /nothing to evaluate.*zeroq eval --help/],
    [['run', '--http-port', '70000'], /'--http-port <port>' argument '70000'/],
    [['no-such-command'], /unknown command 'no-such-command'/],
    [['detect', CFG, path.join(dir, 'missing.jpg')], /missing\.jpg: cannot decode image.*\[image-read\]/],
    [['inspect', path.join(dir, 'missing.cfg')], /cannot read the cfg file.*\[cfg-read\]/],
  ];
  const runs = await Promise.all(cases.map(([args]) => zeroq(args)));
  cases.forEach(([args, msg], i) => {
    t.notOk(refusalProblem(runs[i]), `zeroq ${args.join(' ')}: ${refusalProblem(runs[i]) ?? 'exit 2, one line'}`);
    t.match(runs[i].stderr, msg);
  });
  const none = await zeroq([]);
  t.equal(none.code, 2, 'zeroq alone (the help on stderr): 2');

  // An engine module whose open throws a TypeError stands for a bug.
  const mod = path.join(dir, 'broken-engine.mjs');
  writeFileSync(
    mod,
    `export const engine = { kind: 'broken', summary: 'fails', modelFiles: 'anything', opens: () => false, options: {}, flags: [],
       capabilities: { integer: false, threads: false }, open: async () => { throw new TypeError('not a function, as bugs go'); } };\n`,
  );
  const bug = await zeroq(['detect', '--engine', 'broken', CFG, image], { env: { ZEROQ_ENGINE_MODULES: mod } });
  t.equal(bug.code, 1, 'exit 1');
  t.equal(bug.stderr.trim().split('\n').length, 1, 'one line');
  t.match(bug.stderr, /zeroq: unexpected failure: not a function, as bugs go \(ZEROQ_DEBUG=1 shows where\)/);
  const debug = await zeroq(['detect', '--engine', 'broken', CFG, image], { env: { ZEROQ_ENGINE_MODULES: mod, ZEROQ_DEBUG: '1' } });
  t.match(debug.stderr, /\n\s+at /, 'ZEROQ_DEBUG=1 adds the stack');
});

t.test('detect --save writes each image with its boxes drawn', async (t) => {
  const out = path.join(dir, 'annotated');
  const r = await zeroq(['detect', CFG, sample('dog'), sample('horses'), '--save', out, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.same(readdirSync(out).sort(), ['dog.jpg', 'horses.jpg']);
  const dets = (JSON.parse(r.stdout) as { detections: { box: { x: number; y: number; w: number; h: number } }[] }[])[0].detections;
  t.ok(dets.length > 0);
  const drawn = await sharp(path.join(out, 'dog.jpg')).raw().toBuffer({ resolveWithObject: true });
  const plain = await sharp(sample('dog')).raw().toBuffer({ resolveWithObject: true });
  t.same([drawn.info.width, drawn.info.height], [plain.info.width, plain.info.height], 'the image keeps its size');
  // Along the top edge of the first box the picture changed (the box line); far from any box it did not.
  const b = dets[0].box;
  const px = (img: typeof drawn, x: number, y: number) => Array.from(img.data.subarray((y * img.info.width + x) * 3, (y * img.info.width + x) * 3 + 3));
  let changed = 0;
  const y = Math.round(b.y);
  for (let x = Math.round(b.x) + 5; x < Math.round(b.x + b.w) - 5; x += 4) {
    const d = px(drawn, x, y).map((v, k) => Math.abs(v - px(plain, x, y)[k]));
    if (Math.max(...d) > 60) changed++;
  }
  t.ok(changed > 5, `the box's top edge is drawn (${changed} points changed)`);
});

t.test('progress without a terminal: a line about every 10%', async (t) => {
  const lines: string[] = [];
  const stream = { write: (s: string) => lines.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
  const p = progress('test', { stream });
  p.phase('counting', 37, 'items');
  for (let i = 1; i <= 37; i++) p.update(i);
  p.stop();
  t.equal(lines.length, 10, 'ten lines for ten tenths');
  t.match(lines[0], /^test: counting 4\/37 items \(10%\)/);
  t.match(lines[9], /^test: counting 37\/37 items \(100%\)/);

  // Through the CLI: eval over 10 images, stderr a pipe.
  const list = path.join(dir, 'ten.txt');
  const { readFileSync } = await import('node:fs');
  const dev = readFileSync(dataPath('coco-val', 'dev.txt'), 'utf8').split('\n').filter(Boolean).slice(0, 10);
  writeFileSync(list, dev.map((l) => path.resolve(dataPath('coco-val'), l)).join('\n') + '\n');
  const e = await zeroq(['eval', CFG, '--data', list, '--annotations', dataPath('coco-val', 'instances.json'), '--json']);
  t.equal(e.code, 0, e.stderr);
  const progressLines = e.stderr.split('\n').filter((l) => l.startsWith('eval: running the model'));
  t.ok(progressLines.length >= 5 && progressLines.length <= 10, `${progressLines.length} progress lines`);
  t.match(progressLines.at(-1), /10\/10 images \(100%\)/);
});

t.test('zeroq run: readable log lines on a terminal, JSON lines otherwise', async (t) => {
  const args = ['run', '--source', 'demo', '--max-frames', '2', '--http-port', '0'];
  const cfg = path.join(dir, 'run.yaml');
  writeFileSync(cfg, 'mqtt:\n  embedded:\n    port: 0\n');
  const piped = await zeroq([...args, '--config', cfg]);
  t.equal(piped.code, 0, piped.stderr);
  t.match(piped.stderr, /^\{"level":30,/m, 'JSON lines when stderr is a pipe');
  // util-linux `script` gives the command a pseudo-terminal.
  const tty = await new Promise<string>((resolve, reject) => {
    const cmd = ['unset NODE_OPTIONS;', process.execPath, BIN, ...args, '--config', cfg].join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
  t.notMatch(tty, /\{"level":/, 'no JSON lines on a terminal');
  t.match(tty.replace(/\x1b\[[0-9;]*m/g, ''), /\[\d\d:\d\d:\d\d\.\d{3}\] INFO: engine ready/, 'time, level and message, readable');
});
