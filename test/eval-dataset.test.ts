import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { imageIdOf, labelPathOf, loadEvalSet, readImageList, readInstances } from '../src/eval/dataset.js';
import { dataPath } from '../src/util/paths.js';

const dir = mkdtempSync(path.join(tmpdir(), 'zeroq-eval-data-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const DEV = dataPath('coco-val', 'dev.txt');
const devLines = readFileSync(DEV, 'utf8').split('\n').filter((l) => l.trim() !== '');
const zeroqError = (code: string, message: RegExp) => ({ name: 'ZeroqError', code, message });

t.test('image ids and label paths', async (t) => {
  t.equal(imageIdOf('images/000000000139.jpg'), 139);
  t.equal(imageIdOf('/x/COCO_val2014_000000000042.jpg'), 42);
  t.equal(imageIdOf('cat.jpg'), undefined);
  t.equal(labelPathOf('/d/coco-val/images/000000000139.jpg'), '/d/coco-val/labels/000000000139.txt');
  t.equal(labelPathOf('/d/pics/a1.png'), '/d/pics/a1.txt');
});

t.test('the dev list with the instances.json beside it', async (t) => {
  const set = await loadEvalSet(DEV);
  t.equal(set.images.length, devLines.length);
  t.equal(set.images[0].path, path.resolve(path.dirname(DEV), devLines[0]));
  t.equal(set.gtSource, dataPath('coco-val', 'instances.json'));
  const ids = new Set(set.images.map((im) => im.id));
  const devAnns = set.gt.annotations.filter((a) => ids.has(a.imageId));
  t.ok(devAnns.some((a) => a.iscrowd), 'crowd regions come with instances.json');
  const limited = await loadEvalSet(DEV, { limit: 5 });
  t.same(limited.images, set.images.slice(0, 5));
});

t.test('ground truth from darknet labels when no instances.json is beside the list', async (t) => {
  // absolute paths to 25 dev images, in a folder without instances.json
  const list = path.join(dir, 'labels-list.txt');
  const chosen = devLines.slice(0, 25).map((l) => path.resolve(path.dirname(DEV), l));
  writeFileSync(list, chosen.join('\n') + '\n');
  const set = await loadEvalSet(list);
  t.equal(set.gtSource, 'labels');
  t.equal(set.missingLabels, 0);
  const inst = await readInstances(dataPath('coco-val', 'instances.json'));
  const size = new Map(inst.images.map((im) => [im.id, im]));
  t.same(
    set.gt.images.map((im) => [im.id, im.width, im.height]),
    set.images.map((im) => [im.id, size.get(im.id)!.width, size.get(im.id)!.height]),
    'image sizes from the JPEG headers',
  );
  const ids = new Set(set.images.map((im) => im.id));
  const want = inst.annotations.filter((a) => ids.has(a.imageId) && !a.iscrowd);
  t.equal(set.gt.annotations.length, want.length, 'every non-crowd box, no crowd');
  // labels and instances.json list the same boxes in the same order (6-decimal labels: < 0.5 px apart)
  t.same(set.gt.annotations.map((a) => [a.imageId, a.categoryId]), want.map((a) => [a.imageId, a.categoryId]));
  let worst = 0;
  set.gt.annotations.forEach((a, n) => {
    for (let j = 0; j < 4; j++) worst = Math.max(worst, Math.abs(a.bbox[j] - want[n].bbox[j]));
  });
  t.ok(worst < 0.5, `largest coordinate difference ${worst.toFixed(3)} px`);
});

t.test('errors name the file and line', async (t) => {
  const missing = path.join(dir, 'missing.txt');
  writeFileSync(missing, `${path.resolve(path.dirname(DEV), devLines[0])}\nimages/000000999999.jpg\n`);
  t.throws(() => readImageList(missing), zeroqError('image-missing', /missing\.txt:2: image not found/));

  const noId = path.join(dir, 'noid.txt');
  writeFileSync(noId, 'images/cat.jpg\n');
  t.throws(() => readImageList(noId), zeroqError('list-image-id', /noid\.txt:1/));

  const dup = path.join(dir, 'dup.txt');
  const first = path.resolve(path.dirname(DEV), devLines[0]);
  writeFileSync(dup, `${first}\n${first}\n`);
  t.throws(() => readImageList(dup), zeroqError('list-duplicate', /dup\.txt:2/));

  // a set of our own: one real image (linked, not copied) and its label file
  const own = path.join(dir, 'own');
  mkdirSync(path.join(own, 'images'), { recursive: true });
  mkdirSync(path.join(own, 'labels'), { recursive: true });
  symlinkSync(first, path.join(own, 'images', '000000000001.jpg'));
  writeFileSync(path.join(own, 'list.txt'), 'images/000000000001.jpg\n');
  const label = path.join(own, 'labels', '000000000001.txt');

  writeFileSync(label, '0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2\n');
  await t.rejects(loadEvalSet(path.join(own, 'list.txt')), zeroqError('label-format', /000000000001\.txt:2: expected "class cx cy w h"/));
  writeFileSync(label, '0 0.5 0.5 0.2 0.2\n\n80 0.5 0.5 0.2 0.2\n');
  await t.rejects(loadEvalSet(path.join(own, 'list.txt')), zeroqError('unknown-category', /000000000001\.txt:3: class 80 is out of range/));
  writeFileSync(label, '1 0.5 0.5 0.2 0.2\n');
  const ok = await loadEvalSet(path.join(own, 'list.txt'));
  t.same(ok.gt.annotations.map((a) => a.categoryId), [2], 'class 1 is COCO category 2 (bicycle)');

  // an image the annotations do not know
  writeFileSync(path.join(own, 'instances.json'), JSON.stringify({ images: [{ id: 7, width: 10, height: 10 }], annotations: [], categories: [{ id: 1, name: 'person' }] }));
  await t.rejects(loadEvalSet(path.join(own, 'list.txt')), zeroqError('annotations-image', /image 1 .* is not in/));
  // an annotation of an unknown category
  writeFileSync(
    path.join(own, 'instances.json'),
    JSON.stringify({ images: [{ id: 1, width: 10, height: 10 }], annotations: [{ id: 1, image_id: 1, category_id: 5, bbox: [0, 0, 1, 1], area: 1, iscrowd: 0 }], categories: [{ id: 1, name: 'person' }] }),
  );
  await t.rejects(readInstances(path.join(own, 'instances.json')), zeroqError('unknown-category', /annotations\[0\]: category_id 5/));
});
