/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The live view in a real browser: headless Chromium (Debian's) driven by puppeteer-core loads `/`
 * from a daemon with two cameras; no console errors, the stream's picture changes, boxes are drawn,
 * counts, events with their snapshots, engine and weight-set id are shown. latest.jpg and the
 * stream are checked over plain HTTP too.
 */
import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import sharp from 'sharp';
import { Daemon } from '../src/daemon/daemon.js';
import { dataPath } from '../src/util/paths.js';
import { haveFfmpeg } from './helpers/ffmpeg.js';
import { freePort } from './helpers/mosquitto.js';

const CHROMIUM = '/usr/bin/chromium';
const haveModel = existsSync(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));

/** Pixels of the person box colour (#e6194b) in a picture. */
async function boxPixels(img: Buffer): Promise<number> {
  const { data, info } = await sharp(img).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < info.width * info.height * 3; i += 3) {
    if (Math.abs(data[i] - 230) < 40 && Math.abs(data[i + 1] - 25) < 40 && Math.abs(data[i + 2] - 75) < 40) n++;
  }
  return n;
}

/** The first `count` JPEG parts of an MJPEG stream. */
function readParts(url: string, count: number): Promise<{ type: string; parts: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      const type = String(res.headers['content-type']);
      const boundary = /boundary=(\S+)/.exec(type)?.[1];
      if (!boundary) return reject(new Error(`not multipart: ${type}`));
      let buf = Buffer.alloc(0);
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const h = buf.indexOf('\r\n\r\n');
          if (h < 0) break;
          const len = Number(/Content-Length: (\d+)/i.exec(buf.subarray(0, h).toString())?.[1]);
          if (buf.length < h + 4 + len + 2) break;
          parts.push(buf.subarray(h + 4, h + 4 + len));
          buf = buf.subarray(h + 4 + len + 2);
          if (parts.length === count) {
            req.destroy();
            resolve({ type, parts });
            return;
          }
        }
      });
    });
    req.on('error', (e) => (e.message.includes('aborted') ? undefined : reject(e)));
  });
}

t.test('live view: headless Chromium shows both cameras, a changing stream, boxes, counts, events, engine; no console errors', { timeout: 180_000, skip: (!existsSync(CHROMIUM) && 'no chromium') || (!haveModel && 'no model') || (!haveFfmpeg && 'no ffmpeg') }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-live-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const folder = path.join(dir, 'images');
  mkdirSync(folder);
  // A skier, then an empty grey picture: events open and end.
  symlinkSync(dataPath('coco-val', 'images', '000000000785.jpg'), path.join(folder, 'a.jpg'));
  await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 128, g: 128, b: 128 } } }).jpeg().toFile(path.join(folder, 'b.jpg'));
  const port = await freePort();
  const config = path.join(dir, 'zeroq.yaml');
  writeFileSync(
    config,
    [
      'device_id: live',
      'cameras:',
      '  yard: { url: "lavfi:testsrc2=size=480x270:rate=8" }',
      `  door: { url: ${folder}, fps: 6, hold: 18, loop: true }`,
      'mqtt: { embedded: { port: 0 } }',
      'objects: { threshold: 0.3 }',
      `http: { port: ${port}, stream_fps: 8 }`,
    ].join('\n') + '\n',
  );
  const d = await Daemon.start({ load: { file: config, env: {} }, out: new PassThrough(), log: pino({ level: 'silent' }), version: 'test' });
  t.teardown(() => d.stop(1));
  const base = `http://127.0.0.1:${port}`;

  // Plain HTTP first: latest.jpg with boxes, and the MJPEG stream.
  const door = d.cameras.get('door')!;
  await new Promise<void>((resolve) => {
    const check = () => (door.latest && door.latest.detections.some((x) => x.className === 'person') ? (d.events.off('frame', check), resolve()) : undefined);
    d.events.on('frame', check);
    check();
  });
  const latest = await fetch(`${base}/cameras/door/latest.jpg`);
  t.equal(latest.status, 200);
  t.equal(latest.headers.get('content-type'), 'image/jpeg');
  const jpeg = Buffer.from(await latest.arrayBuffer());
  t.equal((await sharp(jpeg).metadata()).format, 'jpeg');
  t.ok((await boxPixels(jpeg)) > 200, 'latest.jpg has the person box drawn');
  const { type, parts } = await readParts(`${base}/cameras/yard/stream`, 3);
  t.match(type, /^multipart\/x-mixed-replace; boundary=/);
  t.equal(parts.length, 3);
  for (const p of parts) t.same([p[0], p[1]], [0xff, 0xd8], 'a JPEG part');
  t.notSame(parts[1], parts[2], 'the stream moves on');
  t.equal((await fetch(`${base}/cameras/nope/latest.jpg`)).status, 404);

  const { launch } = await import('puppeteer-core');
  const profile = path.join(dir, 'chromium-profile');
  const browser = await launch({
    executablePath: CHROMIUM,
    headless: false,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${(e as Error).message}`));
  page.on('requestfailed', (r) => {
    // The page leaving (browser closed) aborts the streams; anything else is a failure.
    if (!/ERR_ABORTED/.test(r.failure()?.errorText ?? '')) errors.push(`request: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`response: ${r.url()} ${r.status()}`);
  });
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });

  // Both cameras, with their pictures loaded.
  for (const name of ['yard', 'door']) {
    await page.waitForFunction((n: string) => {
      const img = document.querySelector<HTMLImageElement>(`#camera-${n} img.live`);
      return img !== null && img.naturalWidth > 0;
    }, { timeout: 30_000 }, name);
  }
  // The yard stream's picture changes: two different pixel hashes of the <img> (the hash is
  // defined once in the page).
  await page.evaluate(() => {
    (globalThis as unknown as { yardHash: () => number }).yardHash = () => {
      const img = document.querySelector<HTMLImageElement>('#camera-yard img.live')!;
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext('2d')!;
      g.drawImage(img, 0, 0);
      const px = g.getImageData(0, 0, c.width, c.height).data;
      let h = 0;
      for (let i = 0; i < px.length; i += 16) h = (h * 31 + px[i]) >>> 0;
      return h;
    };
  });
  const hash = () => page.evaluate(() => (globalThis as unknown as { yardHash: () => number }).yardHash());
  const h0 = await hash();
  await page.waitForFunction((h: number) => (globalThis as unknown as { yardHash: () => number }).yardHash() !== h, { timeout: 20_000, polling: 100 }, h0);
  t.notSame(await hash(), h0, "the yard stream's picture changed in the page");

  // Engine and weight-set id, counts and an event with its snapshot.
  const info = d.engineInfo();
  await page.waitForFunction((w: string) => document.getElementById('weights')!.textContent === w, { timeout: 10_000 }, info.weights);
  t.match(await page.$eval('#engine', (e) => e.textContent), new RegExp(`^${info.kind} · ${info.model.replace(/[.]/g, '\\.')}`));
  await page.waitForFunction(() => [...document.querySelectorAll('#camera-door .counts span')].some((s) => /^person [1-9]/.test(s.textContent ?? '')), { timeout: 30_000 });
  t.pass('the door camera counts a person');
  await page.waitForFunction(() => {
    const img = document.querySelector<HTMLImageElement>('#camera-door ol.events li img');
    return img !== null && img.complete && img.naturalWidth > 0;
  }, { timeout: 30_000 });
  t.pass("an event with its snapshot is listed");
  await page.waitForFunction(() => document.querySelector('#camera-door ol.events li.ended') !== null, { timeout: 30_000 });
  t.pass('an ended event is listed');

  // A screenshot of the door picture shows the box, once the person is on it.
  await page.waitForFunction(() => [...document.querySelectorAll('#camera-door .counts span')].some((s) => /^person [1-9]/.test(s.textContent ?? '')), { timeout: 30_000 });
  // The stream's pictures arrive on their own schedule, after the counts (an MJPEG part fires no
  // event in the page): look at the picture a few times until it shows the box, for at most 15 s.
  let boxed = 0;
  for (const until = Date.now() + 15_000; boxed <= 200 && Date.now() < until; ) {
    const shot = Buffer.from(await (await page.$('#camera-door img.live'))!.screenshot({ type: 'png' }));
    writeFileSync(path.join(dir, 'door.png'), shot);
    boxed = await boxPixels(shot);
    if (boxed <= 200) await new Promise((r) => setTimeout(r, 250));
  }
  t.ok(boxed > 200, `the screenshot shows the box (${boxed} box pixels)`);
  t.same(errors, [], 'no console errors, failed requests or error responses');
  await browser.close();
  t.equal(await d.stop(0), 0);
});
