// IntEngine.infer runs the network on a libuv worker: the event loop stays free, the heads are the
// ones of the synchronous path, the frame buffer is free at once, and close() during a frame is safe.
import t from 'tap';
import { parseCfgFile } from '../src/model/darknet.js';
import { IntEngine, availableIsas } from '../src/engine/int.js';
import { loadNativeKernels } from '../src/engine/int/native.js';
import type { Frame, HeadTensor } from '../src/engine/engine.js';
import { dataPath } from '../src/util/paths.js';
import { randomFrame, randomQNet, rng } from './helpers/random-qnet.js';

const native = loadNativeKernels();
const net = parseCfgFile(dataPath('models', 'yolo-fastest', 'yolo-fastest-1.1.cfg'));
const qnet = randomQNet(net, rng(77), { p16: 1 });
const frames: Frame[] = [randomFrame(net, rng(1)), randomFrame(net, rng(2))];

/** The heads' integers and floats as one byte string (cheap to compare bit for bit). */
const copy = (heads: HeadTensor[]) =>
  Buffer.concat(heads.flatMap((h) => [Buffer.from(h.raw!.buffer, h.raw!.byteOffset, h.raw!.byteLength), Buffer.from(h.data.buffer, h.data.byteOffset, h.data.byteLength)])).toString('base64');

function engine(opts: { isa?: string; threads?: number } = {}): IntEngine {
  if (!native.kernels) throw new Error(native.error);
  return new IntEngine(qnet, native.kernels, opts);
}

t.test('async heads == synchronous heads, every instruction set, 1 and 2 threads', async (t) => {
  const sync = engine({ isa: 'scalar' });
  const want = frames.map((f) => copy(sync.inferSync(f)));
  await sync.close();
  for (const isa of availableIsas()) {
    for (const threads of [1, 2]) {
      const eng = engine({ isa, threads });
      for (let i = 0; i < 4; i++) {
        const got = copy(await eng.infer(frames[i % 2]));
        t.same(got, want[i % 2], `${isa}, ${threads} thread(s), frame ${i}`);
      }
      await eng.close();
    }
  }
});

t.test('the event loop runs while a frame computes', async (t) => {
  const eng = engine({ threads: 1 });
  let ticks = 0;
  let running = true;
  const spin = () => {
    ticks++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  let during = 0;
  try {
    // A synchronous engine would resolve each frame before any immediate runs (ticks would stay 0).
    for (let i = 0; i < 5; i++) await eng.infer(frames[0]);
    during = ticks;
  } finally {
    running = false;
  }
  t.ok(during > 0, `${during} event-loop turns during 5 frames`);
  await eng.close();
});

t.test('the frame is copied when infer returns; one frame at a time', async (t) => {
  const eng = engine();
  const want = copy(eng.inferSync(frames[0]));
  const reused: Frame = { ...frames[0], rgb: Uint8Array.from(frames[0].rgb) };
  const p = eng.infer(reused);
  reused.rgb.set(frames[1].rgb); // the caller refills its buffer at once
  await t.rejects(eng.infer(frames[1]), { code: 'INT_BUSY' }, 'a second frame before the first settles is refused');
  t.throws(() => eng.inferSync(frames[1]), { code: 'INT_BUSY' });
  t.same(copy(await p), want, 'heads of the frame as it was when infer was called');
  t.same(copy(await eng.infer(frames[1])), copy(engine().inferSync(frames[1])), 'the next frame runs once the first settled');
  await t.rejects(eng.infer({ ...frames[0], width: 10 }), { code: 'FRAME_SIZE' });
  await eng.close();
});

t.test('close() while a frame runs: the frame completes, then the engine is freed and refuses frames', async (t) => {
  const want = copy(engine().inferSync(frames[1]));
  for (const threads of [1, 2]) {
    const eng = engine({ threads });
    const p = eng.infer(frames[1]);
    const closed = eng.close();
    await t.rejects(eng.infer(frames[1]), { code: 'INT_CLOSED' }, 'refused as soon as close() is called');
    let frameDone = false;
    void p.then(() => (frameDone = true));
    await closed;
    t.ok(frameDone, `${threads} thread(s): close() resolved after the frame`);
    t.same(copy(await p), want, `${threads} thread(s): the frame in flight has its heads`);
    t.throws(() => eng.layerOutput(0), 'a closed engine has no layers to read');
    await eng.close();
  }
});

t.test('many engines closed mid-frame and dropped: no crash, no leak of running frames', async (t) => {
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < 6; i++) {
    const eng = engine({ threads: 1 + (i % 2) });
    pending.push(eng.infer(frames[i % 2]));
    if (i % 2 === 0) pending.push(eng.close());
  }
  const results = await Promise.allSettled(pending);
  t.equal(results.filter((r) => r.status === 'rejected').length, 0, 'every frame and close settled normally');
});
