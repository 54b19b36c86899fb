import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { dataPath, repoRoot } from '../src/util/paths.js';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'zeroq-eval-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const DEV = dataPath('coco-val', 'dev.txt');
const INSTANCES = dataPath('coco-val', 'instances.json');

async function zeroq(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), 'eval', ...args], {
      cwd: repoRoot,
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

t.test('a model run saves results that score the same when read back', async (t) => {
  const saved = path.join(dir, 'dets.json');
  const a = await zeroq(CFG, '--data', DEV, '--limit', '12', '--save-results', saved, '--json', '--per-class');
  t.equal(a.code, 0, a.stderr);
  const ran = JSON.parse(a.stdout);
  t.match(ran, { engine: 'float', model: 'yolo-fastest-1.1', threads: 1, images: 12, decode: { threshold: 0.001, nms: 0.6, maxDetections: 100 } });
  t.ok(ran.ms_per_image > 0 && ran.wall_s > 0);
  t.equal(ran.per_class.length, 80);
  const dets = JSON.parse(readFileSync(saved, 'utf8')) as { image_id: number }[];
  t.equal(dets.length, ran.detections);
  t.ok(dets.length <= 12 * 100, 'at most 100 per image');

  const b = await zeroq('--results', saved, '--annotations', INSTANCES, '--data', DEV, '--limit', '12', '--json');
  t.equal(b.code, 0, b.stderr);
  const scored = JSON.parse(b.stdout);
  for (const k of ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100']) t.equal(scored[k], ran[k], k);

  // the printed summary: header then pycocotools' 12 lines
  const c = await zeroq('--results', saved, '--annotations', INSTANCES, '--data', DEV, '--limit', '12');
  const lines = c.stdout.trimEnd().split('\n');
  t.equal(lines.length, 13);
  t.match(lines[1], /^ Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all \| maxDets=100 \] = \d\.\d{3}$/);
});

t.test('bad input: non-zero exit and a message that names what is wrong', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /nothing to evaluate/],
    [[CFG], /needs --data/],
    [[CFG, '--data', DEV, '--threshold', '2'], /'--threshold <p>' argument '2' is invalid\. expected a number in \[0, 1\]/],
    [[CFG, '--data', DEV, '--nms-kind', 'soft'], /'--nms-kind <kind>' argument 'soft' is invalid/],
    [['--results', path.join(dir, 'none.json'), '--annotations', INSTANCES], /none\.json: cannot read results/],
  ];
  const wrong = path.join(dir, 'wrong.json');
  writeFileSync(wrong, JSON.stringify([{ image_id: 123456789, category_id: 1, bbox: [0, 0, 1, 1], score: 0.5 }]));
  cases.push([['--results', wrong, '--annotations', INSTANCES], /wrong\.json\[0\]: image_id 123456789 is not in the ground truth/]);
  const outs = await Promise.all(cases.map(([args]) => zeroq(...args)));
  cases.forEach(([args, msg], i) => {
    const r = outs[i];
    t.equal(r.code, 2, `exit code for ${args.join(' ') || '(no arguments)'}`);
    t.match(r.stderr, msg);
  });
});
