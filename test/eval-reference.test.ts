/**
 * `zeroq eval --results` on darknet's top-100 detections of the dev list must give the figures
 * pycocotools gave (the second table of reference/README.md), to ±0.0005.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { dataPath, repoRoot } from '../src/util/paths.js';

const run = promisify(execFile);

/** The "cut to the 100 highest scores" table of the reference README, in fractions, by model. */
function referenceTable(): Map<string, Record<string, number>> {
  const text = readFileSync(dataPath('reference', 'README.md'), 'utf8');
  const start = text.indexOf('cut to the 100 highest scores');
  if (start < 0) throw new Error('reference README: top-100 table not found');
  const lines = text.slice(start).split('\n');
  const header = lines.findIndex((l) => l.startsWith('| model'));
  const cols = lines[header].split('|').map((c) => c.trim()).filter(Boolean);
  const table = new Map<string, Record<string, number>>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').map((c) => c.trim()).filter(Boolean);
    const row: Record<string, number> = {};
    cols.slice(1).forEach((c, i) => (row[c] = Number(cells[i + 1]) / 100));
    table.set(cells[0], row);
  }
  return table;
}

const table = referenceTable();
t.same([...table.keys()], ['yolo-fastest-1.1', 'yolo-fastest-1.1-xl'], 'both models in the reference table');

for (const [model, want] of table) {
  t.test(`${model}: darknet top-100 detections scored as pycocotools`, async (t) => {
    const { stdout } = await run(
      process.execPath,
      [
        '--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), 'eval',
        '--results', dataPath('reference', `dev-${model}-darknet-top100.json`),
        '--annotations', dataPath('coco-val', 'instances.json'),
        '--data', dataPath('coco-val', 'dev.txt'),
        '--json',
      ],
      { cwd: repoRoot, maxBuffer: 16 << 20 },
    );
    const got = JSON.parse(stdout) as Record<string, number>;
    t.equal(got.images, 400);
    t.same(Object.keys(want).sort(), ['AP', 'AP50', 'AP75', 'APl', 'APm', 'APs', 'AR100']);
    for (const [k, v] of Object.entries(want)) {
      t.ok(Math.abs(got[k] - v) <= 0.0005, `${k}: ${got[k].toFixed(5)} vs ${v.toFixed(4)}`);
    }
  });
}
