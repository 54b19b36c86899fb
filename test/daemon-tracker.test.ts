/** The object tracker and the engine's fair queue, on synthetic detections and frames. */
import t from 'tap';
import type { Detection } from '../src/detect/types.js';
import { FairQueue } from '../src/daemon/fair-queue.js';
import { Tracker, countObjects, type TrackerSettings, type TrackEvent } from '../src/daemon/track/tracker.js';
import { inPolygon, iou } from '../src/daemon/track/geometry.js';

const settings = (o: Partial<TrackerSettings> = {}): TrackerSettings => ({
  min_score: 0,
  threshold: 0.4,
  min_area: 0,
  min_hits: 2,
  max_misses: 3,
  iou: 0.3,
  classes: {},
  zones: {},
  masks: [],
  updateIntervalMs: 0,
  ...o,
});

const det = (label: string, x: number, y: number, w = 40, h = 80, score = 0.8, classId = label === 'person' ? 0 : 2): Detection => ({ classId, className: label, score, box: { x, y, w, h } });
const types = (ev: TrackEvent[]) => ev.map((e) => `${e.type}:${e.object.label}`);

t.test('geometry', async (t) => {
  t.equal(iou({ x: 0, y: 0, w: 10, h: 10 }, { x: 5, y: 0, w: 10, h: 10 }), 50 / 150);
  t.equal(iou({ x: 0, y: 0, w: 10, h: 10 }, { x: 20, y: 0, w: 10, h: 10 }), 0);
  const sq: [number, number][] = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]];
  t.ok(inPolygon([0.3, 0.3], sq));
  t.notOk(inPolygon([0.6, 0.3], sq));
});

t.test('an object moving across frames keeps its id through missed frames; events new, update, end', async (t) => {
  const tr = new Tracker(settings(), 'cam-');
  let time = 1_000_000;
  const events: TrackEvent[] = [];
  const step = (dets: Detection[]) => {
    time += 100;
    const r = tr.update(dets, time, 640, 480);
    events.push(...r.events);
    return r;
  };
  // 25 px per frame to the right: boxes of consecutive frames overlap by IoU 0.23 < 0.3; the
  // second frame matches by centre distance, the later ones by the box the motion model predicts.
  let r = step([det('person', 100, 100)]);
  t.same(r.objects, [], 'seen once: not reported yet');
  r = step([det('person', 125, 100)]);
  t.same(types(events), ['new:person'], 'reported on the second hit');
  const id = r.objects[0].id;
  t.match(id, /^cam-/);
  r = step([det('person', 150, 100)]);
  r = step([]); // missed: predicted at 175
  t.equal(r.objects.length, 1, 'still counted while missed');
  t.equal(countObjects(r.objects, ['person', 'car']).counts.person, 1, 'the count does not drop on a missed frame');
  t.same(countObjects(r.objects, ['person', 'car']).counts, { person: 1, car: 0 });
  r = step([det('person', 200, 100, 40, 80, 0.95)]);
  t.equal(r.objects[0].id, id, 'matched again after the miss, at the predicted place');
  t.equal(r.objects[0].topScore, 0.95);
  t.same(types(events), ['new:person', 'update:person', 'update:person'], 'a box that moved (frame 3) and a better score (frame 5) are updates; a missed frame is not');
  t.same(r.objects[0].firstBox, { x: 100, y: 100, w: 40, h: 80 });
  for (let i = 0; i < 3; i++) step([]);
  t.same(types(events).length, 3, 'up to max_misses frames unseen: no end');
  r = step([]);
  t.same(types(events).slice(3), ['end:person']);
  t.same(r.objects, []);
  const end = events[3].object;
  t.equal(end.id, id);
  t.equal(end.lastSeen, 1_000_000 + 500, 'end time: last frame it was seen');
});

t.test('two objects of different classes never swap; overlapping objects of one class keep their ids', async (t) => {
  const tr = new Tracker(settings({ min_hits: 1 }), '');
  let time = 0;
  const ids: string[][] = [];
  for (let i = 0; i < 6; i++) {
    time += 100;
    const r = tr.update([det('person', 100 + 10 * i, 100), det('person', 300 - 10 * i, 100), det('car', 200, 100, 40, 80, 0.9)], time, 640, 480);
    ids.push(r.objects.map((o) => `${o.label}@${Math.round(o.box.x)}:${o.id}`).sort());
  }
  const first = new Map(ids[0].map((s) => [s.split(':')[1], s.split('@')[0]]));
  t.equal(first.size, 3);
  for (const row of ids) t.same(row.map((s) => s.split(':')[1]).sort(), [...first.keys()].sort(), 'the same three ids every frame');
});

t.test('filters: min_score, min_area, per-class threshold, masks; zones tag and count', async (t) => {
  const tr = new Tracker(
    settings({
      min_hits: 1,
      min_score: 0.3,
      min_area: 1000,
      classes: { car: { threshold: 0.9 } },
      masks: [[[0, 0], [0.25, 0], [0.25, 1], [0, 1]]],
      zones: { door: { points: [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], objects: ['person'] } },
    }),
    '',
  );
  const r = tr.update(
    [
      det('person', 400, 100), // in the door zone (bottom centre x = 420 > 320)
      det('person', 200, 100, 40, 80, 0.2), // below min_score
      det('person', 250, 100, 20, 20), // area 400 < min_area
      det('person', 40, 100), // bottom centre in the mask
      det('car', 200, 300, 60, 60, 0.8), // below the car threshold: tracked, not reported
    ],
    100,
    640,
    480,
  );
  t.same(r.objects.map((o) => [o.label, o.zones]), [['person', ['door']]]);
  const c = countObjects(r.objects, []);
  t.same(c.counts, { person: 1 });
  t.same(c.zones, { door: { person: 1 } });
  const r2 = tr.update([det('person', 400, 100), det('car', 200, 300, 60, 60, 0.95)], 200, 640, 480);
  t.same(r2.events.map((e) => e.type + ':' + e.object.label), ['new:car'], 'the car is reported once its best score reaches 0.9');
});

t.test('updates are rate-limited; clear ends everything', async (t) => {
  const tr = new Tracker(settings({ min_hits: 1, updateIntervalMs: 1000 }), '');
  let n = 0;
  let time = 0;
  for (let i = 0; i < 20; i++) {
    time += 100;
    const r = tr.update([det('person', 100, 100, 40, 80, 0.5 + i * 0.02)], time, 640, 480);
    n += r.events.filter((e) => e.type === 'update').length;
  }
  t.equal(n, 1, 'a better score every frame for 2 s: one update per second after the new (the second falls after the window)');
  t.same(tr.clear().map((e) => e.type), ['end']);
  t.same(tr.current, []);
});

t.test('fair queue: cameras served in turn, each with its newest frame', async (t) => {
  const q = new FairQueue<string>();
  let skipped = 0;
  const a = q.add('a', () => skipped++);
  const b = q.add('b');
  a.put('a1');
  a.put('a2'); // replaces a1
  b.put('b1');
  t.equal(skipped, 1);
  t.equal(a.skipped, 1);
  t.equal(await q.take(), 'a2');
  a.put('a3');
  t.equal(await q.take(), 'b1', 'b is next, though a has a newer frame');
  t.equal(await q.take(), 'a3');
  // A fast camera and a slow one: the slow one is served whenever it has a frame.
  const got: string[] = [];
  for (let i = 0; i < 6; i++) {
    a.put(`a${i}`);
    if (i % 2 === 0) b.put(`b${i}`);
    got.push((await q.take())!);
  }
  t.same(got.filter((x) => x.startsWith('b')).length, 3, 'every frame of the slow camera is taken');
  const waiting = q.take();
  b.put('late');
  t.equal(await waiting, 'late', 'a waiting taker gets the next frame of any camera');
  a.close();
  b.put('last');
  b.close();
  t.equal(await q.take(), 'last', 'a pending frame is still taken after close');
  t.equal(await q.take(), undefined, 'all cameras closed and empty: the end');
});

t.test('fair queue: putWait holds a non-live camera until its frame is taken', async (t) => {
  const q = new FairQueue<number>();
  const a = q.add('a');
  let taken = false;
  const p = a.putWait(1).then(() => (taken = true));
  await Promise.resolve();
  t.notOk(taken);
  t.equal(await q.take(), 1);
  await p;
  t.ok(taken);
  const b = q.add('b');
  const p2 = b.putWait(2);
  q.remove(b);
  await p2;
  t.pass('removing a camera releases its producer');
});
