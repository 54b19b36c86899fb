import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { dataPath, repoRoot } from '../src/util/paths.js';

const run = promisify(execFile);
const CFG = dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg');
const sample = (name: string) => dataPath('reference', 'samples', `${name}.jpg`);

async function zeroq(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), 'detect', ...args], {
      maxBuffer: 1 << 24,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface JsonImage {
  image: string;
  width: number;
  height: number;
  detections: { class_id: number; class: string; score: number; box: { x: number; y: number; w: number; h: number } }[];
}

t.test('zeroq detect --json: darknet detector test results for each image', async (t) => {
  const r = await zeroq(CFG, sample('dog'), sample('horses'), '--json', '--threads', '2');
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as JsonImage[];
  t.same(out.map((o) => [path.basename(o.image), o.width, o.height]), [['dog.jpg', 768, 576], ['horses.jpg', 773, 512]]);
  for (const o of out) {
    const name = path.basename(o.image, '.jpg');
    const ref = readFileSync(dataPath('reference', 'darknet-detections', 'yolo-fastest-1.1', `${name}.txt`), 'utf8')
      .split('\n')
      .filter((l) => /^\d/.test(l))
      .map((l) => l.split(' ')[0]);
    t.same(o.detections.map((d) => String(d.class_id)).sort(), ref.sort(), `${name}: the classes darknet reports`);
    t.ok(o.detections.every((d, i) => i === 0 || d.score <= o.detections[i - 1].score), `${name}: sorted by score`);
  }
  t.equal(out[0].detections[0].class, 'car');
  t.same(Object.keys(out[0].detections[0]), ['class', 'class_id', 'score', 'box'], 'the field names of the MQTT detections payload');
});

t.test('zeroq detect: text output, threshold, names file', async (t) => {
  const dir = t.testdir({ 'names.txt': Array.from({ length: 80 }, (_, i) => `thing${i}`).join('\n') + '\n' });
  const r = await zeroq(CFG, sample('dog'), '--threshold', '0.6', '--names', path.join(dir, 'names.txt'));
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /dog\.jpg: 768x576, 2 objects/);
  t.match(lines[1], /^\s+thing2\s+88\.\d%\s+x=453\.\d y=78\.\d w=230\.\d h=102\.\d$/);
  t.match(lines[2], /^\s+thing16\s+64\.\d%/);
});

t.test('zeroq detect: bad options and files are reported with their code', async (t) => {
  const bad = await zeroq(CFG, sample('dog'), '--nms', '1.5');
  t.equal(bad.code, 2);
  t.match(bad.stderr, /option '--nms <iou>' argument '1.5' is invalid\. expected a number in \[0, 1\].*\[usage\]/);
  const kind = await zeroq(CFG, sample('dog'), '--nms-kind', 'soft');
  t.equal(kind.code, 2);
  t.match(kind.stderr, /--nms-kind <kind>' argument 'soft' is invalid\. Allowed choices are default, greedynms, diounms/);
  const dir = t.testdir({ 'broken.jpg': 'not an image' });
  const img = await zeroq(CFG, path.join(dir, 'broken.jpg'));
  t.equal(img.code, 2);
  t.match(img.stderr, /broken\.jpg: cannot decode image.*\[image-read\]/);
  writeFileSync(path.join(dir, 'empty.cfg'), '');
  const cfg = await zeroq(path.join(dir, 'empty.cfg'), sample('dog'), '--weights', path.join(dir, 'broken.jpg'));
  t.equal(cfg.code, 2);
});
