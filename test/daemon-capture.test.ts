import t from 'tap';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { sourceFactory, resolveSource } from '../src/daemon/capture/open.js';
import { ffmpegArgs, parseInputSize } from '../src/daemon/capture/ffmpeg.js';
import { SourceSupervisor, type CapturedFrame, type SupervisorStatus } from '../src/daemon/capture/supervisor.js';
import type { CaptureSource, SourceSink } from '../src/daemon/capture/source.js';
import { configSchema } from '../src/daemon/config.js';
import { FairQueue } from '../src/daemon/fair-queue.js';
import type { Network } from '../src/model/ir.js';
import { loadImage } from '../src/detect/preprocess.js';
import { dataPath } from '../src/util/paths.js';
import { makeVideo } from './helpers/ffmpeg.js';
import { freePort } from './helpers/mosquitto.js';
import { spawn } from 'node:child_process';

const log = pino({ level: 'silent' });
const net = { name: 'n', input: { c: 3, h: 320, w: 320 }, letterbox: false, layers: [], heads: [] } as Network;
const images = ['000000000139.jpg', '000000000785.jpg', '000000000872.jpg', '000000000885.jpg'].map((f) => dataPath('coco-val', 'images', f));

function supervise(create: () => CaptureSource, o: { stallMs?: number; maxBad?: number } = {}) {
  const s = new SourceSupervisor({
    create,
    stallTimeoutMs: o.stallMs ?? 10_000,
    maxBadFrames: o.maxBad ?? 3,
    restart: { initialMs: 50, maxMs: 400, factor: 2 },
    stableAfterMs: 60_000,
    log,
  });
  const states: SupervisorStatus[] = [];
  s.on('state', (st: SupervisorStatus) => states.push(st));
  const waitState = (pred: (st: SupervisorStatus) => boolean) =>
    new Promise<SupervisorStatus>((resolve) => {
      const hit = states.find(pred);
      if (hit) return resolve(hit);
      const on = (st: SupervisorStatus) => {
        if (pred(st)) {
          s.off('state', on);
          resolve(st);
        }
      };
      s.on('state', on);
    });
  return { s, states, waitState };
}

function sourceCfg(over: Record<string, unknown>) {
  return configSchema.parse({ source: over }).source;
}

t.test("a camera's slot keeps only the newest item and counts what it replaced", async (t) => {
  const q = new FairQueue<number>();
  const m = q.add('cam');
  m.put(1);
  m.put(2);
  m.put(3);
  t.equal(m.skipped, 2);
  t.equal(await q.take(), 3);
  const later = q.take();
  m.put(4);
  t.equal(await later, 4, 'a waiting taker gets the next item directly');
  let taken = false;
  const w = m.putWait(5).then(() => (taken = true));
  await Promise.resolve();
  t.notOk(taken, 'putWait holds until taken');
  t.equal(await q.take(), 5);
  await w;
  t.ok(taken);
  m.close();
  t.equal(await q.take(), undefined);
});

t.test('source kinds and ffmpeg command lines', async (t) => {
  t.equal(resolveSource(sourceCfg({ url: '/dev/video0' })).kind, 'v4l2');
  t.equal(resolveSource(sourceCfg({ url: 'rtsp://cam/stream' })).kind, 'stream');
  t.equal(resolveSource(sourceCfg({ url: 'lavfi:testsrc' })).input, 'testsrc');
  t.equal(resolveSource(sourceCfg({ url: dataPath('coco-val', 'images') })).kind, 'folder');
  t.equal(resolveSource(sourceCfg({ url: 'demo' })).input, dataPath('coco-val', 'images'));
  t.throws(() => resolveSource(sourceCfg({ url: '/nonexistent/file.mp4' })), /no such file/);
  const rtsp = ffmpegArgs({ kind: 'stream', input: 'rtsp://c/s', outSize: { width: 320, height: 320 }, realtime: true, loop: false, inputArgs: [] });
  t.match(rtsp.join(' '), /-rtsp_transport tcp .*-i rtsp:\/\/c\/s .*scale=320:320.* -pix_fmt rgb24 -f rawvideo pipe:1$/);
  const file = ffmpegArgs({ kind: 'file', input: 'a.mp4', realtime: true, loop: true, fps: 5, inputArgs: [] });
  t.match(file.join(' '), /-re -stream_loop -1 -i a\.mp4 .*-vf fps=5 /);
  t.same(
    parseInputSize([
      "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'a.mp4':",
      '  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 1280x720 [SAR 1:1 DAR 16:9], 25 fps',
      "Output #0, rawvideo, to 'pipe:1':",
      '  Stream #0:0: Video: rawvideo (RGB[24] / 0x18424752), rgb24, 320x320, q=2-31',
    ]),
    { width: 1280, height: 720 },
  );
});

t.test('lavfi camera: frames scaled by ffmpeg, picture size kept, killed ffmpeg restarted and reported', async (t) => {
  const f = sourceFactory(sourceCfg({ url: 'lavfi:testsrc2=size=640x360:rate=30' }), net, log);
  const { s, waitState } = supervise(f.create);
  const frames: CapturedFrame[] = [];
  let killedAt = 0;
  const got = new Promise<void>((resolve) => {
    s.deliver = (fr) => {
      frames.push(fr);
      if (frames.length === 5) {
        killedAt = fr.seq;
        process.kill((s.instance as unknown as { pid: number }).pid, 'SIGKILL');
      }
      if (killedAt && frames.length === 10) resolve();
    };
  });
  s.start();
  const restarting = await waitState((st) => st.state === 'restarting');
  t.match(restarting.lastError, /ffmpeg killed by SIGKILL/);
  t.equal(restarting.restarts, 1);
  await got;
  await s.stop();
  t.same([frames[0].width, frames[0].height, frames[0].srcWidth, frames[0].srcHeight], [320, 320, 640, 360]);
  t.equal(frames[0].rgb.length, 320 * 320 * 3);
  t.same(frames.map((x) => x.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'frame ids continue across the restart');
  t.equal(s.current.state, 'stopped');
});

t.test('a stalled source is restarted with growing back-off', async (t) => {
  // One frame every 20 s: after the first frame, nothing comes within the stall timeout.
  const f = sourceFactory(sourceCfg({ url: 'lavfi:testsrc=size=64x48:rate=0.05' }), net, log);
  const { s, waitState } = supervise(f.create, { stallMs: 700 });
  s.deliver = () => undefined;
  s.start();
  const first = await waitState((st) => st.state === 'restarting' && st.restarts === 1);
  const second = await waitState((st) => st.state === 'restarting' && st.restarts === 2);
  await s.stop();
  t.match(first.lastError, /no frame for 0\.7 s/);
  t.equal(first.retryInMs, 50);
  t.equal(second.retryInMs, 100, 'back-off doubles');
});

t.test('malformed frames restart the source after max_bad_frames in a row', async (t) => {
  let instances = 0;
  const bad = (): CaptureSource => ({
    description: 'broken',
    live: true,
    start(sink: SourceSink) {
      instances++;
      for (let i = 0; i < 3; i++) sink.frame({ rgb: new Uint8Array(10), width: 4, height: 4, srcWidth: 4, srcHeight: 4, time: Date.now() });
    },
    stop: async () => undefined,
  });
  const { s, waitState } = supervise(bad, { maxBad: 3 });
  let delivered = 0;
  s.deliver = () => void delivered++;
  s.start();
  const st = await waitState((x) => x.state === 'restarting');
  await waitState((x) => x.state === 'starting' && x.restarts === 1);
  await s.stop();
  t.match(st.lastError, /3 bad frames in a row \(10 bytes for a 4x4 RGB frame\)/);
  t.equal(delivered, 0, 'no malformed frame reaches the detector');
  t.ok(instances >= 2, 'a fresh instance was started');
});

t.test('video file made from real images: every frame in order, then the end (no loop)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-cap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const video = path.join(dir, 'clip.mp4');
  await makeVideo(images, video, { width: 480, height: 360, fps: 10 });
  const f = sourceFactory(sourceCfg({ url: video, realtime: false }), net, log);
  t.equal(f.resolved.kind, 'file');
  const queue = new FairQueue<CapturedFrame>();
  const mailbox = queue.add('cam');
  const { s, waitState } = supervise(f.create);
  s.deliver = (fr, live) => (live ? mailbox.put(fr) : mailbox.putWait(fr));
  s.start();
  const got: CapturedFrame[] = [];
  const ended = waitState((st) => st.state === 'ended').then(() => mailbox.close());
  for (;;) {
    const fr = await queue.take();
    if (!fr) break;
    got.push(fr);
    await new Promise((r) => setImmediate(r)); // a consumer slower than the file
  }
  await ended;
  await s.stop();
  t.equal(got.length, images.length, 'not live: nothing skipped');
  t.equal(mailbox.skipped, 0);
  t.same([got[0].srcWidth, got[0].srcHeight], [480, 360]);
});

t.test('image folder: sorted, each image once, undecodable files counted as bad', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-folder-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'sub'));
  images.forEach((f, i) => symlinkSync(f, path.join(dir, `img${i}.jpg`)));
  writeFileSync(path.join(dir, 'img1b.jpg'), 'not a jpeg');
  writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
  const f = sourceFactory(sourceCfg({ url: dir }), net, log);
  const { s, waitState } = supervise(f.create);
  const queue = new FairQueue<CapturedFrame>();
  const mailbox = queue.add('cam');
  let bad = 0;
  s.on('bad', () => bad++);
  s.deliver = (fr, live) => (live ? mailbox.put(fr) : mailbox.putWait(fr));
  s.start();
  void waitState((st) => st.state === 'ended').then(() => mailbox.close());
  const got: CapturedFrame[] = [];
  for (let fr = await queue.take(); fr; fr = await queue.take()) got.push(fr);
  await s.stop();
  t.equal(got.length, 4);
  t.equal(bad, 1);
  const second = await loadImage(images[1]);
  t.same([got[1].width, got[1].height], [second.width, second.height], 'file-name order');
  t.ok(Buffer.from(got[1].rgb).equals(Buffer.from(second.data)), 'the image as decoded');
});

t.test('network stream: MPEG-TS over HTTP from an ffmpeg server; a server that is not up yet is retried', async (t) => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/cam.ts`;
  // Short probing: ffmpeg otherwise analyses 5 s of a live stream before the first frame.
  const f = sourceFactory(sourceCfg({ url, input_args: ['-analyzeduration', '300000', '-probesize', '65536'] }), net, log);
  t.equal(f.resolved.kind, 'stream');
  const { s, waitState } = supervise(f.create);
  let first: CapturedFrame | undefined;
  const got = new Promise<void>((resolve) => {
    s.deliver = (fr) => {
      first ??= fr;
      resolve();
    };
  });
  s.start();
  // Nothing listens yet: the source fails and waits for its back-off.
  const failed = await waitState((st) => st.state === 'restarting');
  t.match(failed.lastError, /ffmpeg exited with code/);
  const server = spawn('ffmpeg', ['-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=352x288:rate=10', '-c:v', 'mpeg2video', '-f', 'mpegts', '-listen', '1', url], { stdio: 'ignore' });
  t.teardown(() => void server.kill('SIGKILL'));
  await got;
  await s.stop();
  t.same([first!.width, first!.height, first!.srcWidth, first!.srcHeight], [320, 320, 352, 288]);
  t.ok(s.current.restarts >= 1);
});
