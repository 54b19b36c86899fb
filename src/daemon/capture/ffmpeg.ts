/**
 * Cameras, streams, video files and lavfi test graphs through an ffmpeg child process that writes
 * raw rgb24 frames on stdout. By default ffmpeg also scales to the network input size (see
 * docs/decisions/daemon-capture.md): the pipe then carries 300 KB per frame instead of 6 MB for
 * 1080p, and the scaling runs in ffmpeg's thread, beside inference. The picture's own size is read
 * from ffmpeg's input description so that detections are reported in camera pixels.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { redact } from '../../util/redact.js';
import type { CaptureSource, RawFrame, SourceSink } from './source.js';

export type FfmpegInputKind = 'v4l2' | 'stream' | 'file' | 'lavfi';

export interface FfmpegSourceOptions {
  ffmpeg: string;
  kind: FfmpegInputKind;
  /** Device, URL, file or lavfi graph. */
  input: string;
  /** Scale to this size in ffmpeg; undefined: frames keep the input's size. */
  outSize?: { width: number; height: number };
  fps?: number;
  /** Files, lavfi: read at the native rate. */
  realtime: boolean;
  /** Files: start again at the end. */
  loop: boolean;
  videoSize?: string;
  inputFormat?: string;
  inputArgs: string[];
  log: Logger;
}

/** The ffmpeg command line for a source (without the program name). */
export function ffmpegArgs(o: Omit<FfmpegSourceOptions, 'log' | 'ffmpeg'>): string[] {
  const a = ['-nostdin', '-hide_banner', '-nostats', '-loglevel', 'info'];
  switch (o.kind) {
    case 'v4l2':
      a.push('-f', 'v4l2');
      if (o.inputFormat) a.push('-input_format', o.inputFormat);
      if (o.videoSize) a.push('-video_size', o.videoSize);
      if (o.fps) a.push('-framerate', String(o.fps));
      break;
    case 'stream':
      if (/^rtsps?:/i.test(o.input) && !o.inputArgs.includes('-rtsp_transport')) a.push('-rtsp_transport', 'tcp');
      break;
    case 'file':
      if (o.realtime) a.push('-re');
      if (o.loop) a.push('-stream_loop', '-1');
      break;
    case 'lavfi':
      if (o.realtime) a.push('-re');
      a.push('-f', 'lavfi');
      break;
  }
  a.push(...o.inputArgs, '-i', o.input, '-an', '-sn', '-dn');
  const filters: string[] = [];
  if (o.fps) filters.push(`fps=${o.fps}`);
  // area + exact rounding + full chroma: of ffmpeg's scalers, the closest to darknet's resize
  // (docs/decisions/daemon-capture.md).
  if (o.outSize) filters.push(`scale=${o.outSize.width}:${o.outSize.height}:flags=area+accurate_rnd+full_chroma_int`);
  if (filters.length > 0) a.push('-vf', filters.join(','));
  a.push('-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1');
  return a;
}

/** The picture size of the first video stream of input #0 in ffmpeg's banner, if present. */
export function parseInputSize(lines: readonly string[]): { width: number; height: number } | undefined {
  let inInput = false;
  for (const l of lines) {
    if (/^Input #0\b/.test(l)) inInput = true;
    else if (/^(Output|Input) #\d/.test(l)) inInput = false;
    else if (inInput && /Stream #0:\d+.*: Video: /.test(l)) {
      const m = /, (\d{1,5})x(\d{1,5})(?=[\s,[]|$)/.exec(l);
      if (m) return { width: Number(m[1]), height: Number(m[2]) };
    }
  }
  return undefined;
}

const KEEP_STDERR_LINES = 20;

export class FfmpegSource implements CaptureSource {
  readonly description: string;
  readonly live: boolean;
  private child?: ChildProcessByStdio<null, Readable, Readable>;
  private exited?: Promise<void>;
  private stopping = false;

  constructor(private readonly o: FfmpegSourceOptions) {
    this.description = redact(`${o.kind} ${o.input}`);
    this.live = !(o.kind === 'file' && !o.realtime);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(sink: SourceSink): void {
    const o = this.o;
    const args = ffmpegArgs(o);
    o.log.debug({ cmd: redact([o.ffmpeg, ...args].join(' ')) }, 'starting ffmpeg');
    const child = spawn(o.ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;

    const banner: string[] = [];
    const recent: string[] = [];
    let headerDone = false;
    let size: { width: number; height: number } | undefined;
    let srcSize: { width: number; height: number } | undefined;
    let finished = false;
    const finish = (fn: () => void) => {
      if (finished) return;
      finished = true;
      fn();
    };

    // Frames are cut from stdout once the banner told the picture size.
    let frameBytes = 0;
    let cur: Buffer | undefined;
    let filled = 0;
    const pendingChunks: Buffer[] = [];

    const headerComplete = () => {
      if (headerDone) return;
      headerDone = true;
      srcSize = parseInputSize(banner);
      if (o.outSize) size = o.outSize;
      else size = srcSize;
      if (!size) {
        finish(() => sink.fail(new Error('ffmpeg did not report the picture size of its input')));
        void this.stop();
        return;
      }
      if (!srcSize) {
        o.log.warn('ffmpeg did not report the input picture size; detections are in network pixels');
        srcSize = size;
      }
      frameBytes = size.width * size.height * 3;
      o.log.info({ input: `${srcSize.width}x${srcSize.height}`, frames: `${size.width}x${size.height}` }, 'capture started');
      for (const c of pendingChunks.splice(0)) onData(c);
    };

    // Chunks are cut into frames in order; for a source that is not live, the cutting pauses (and
    // stdout with it: pipe back-pressure holds ffmpeg) until the consumer took the frame.
    const chunks: Buffer[] = [];
    let pumping: Promise<void> = Promise.resolve();
    let pumpActive = false;
    const pump = async () => {
      pumpActive = true;
      while (chunks.length > 0 && !finished) {
        const chunk = chunks.shift()!;
        let off = 0;
        while (off < chunk.length && !finished) {
          if (!cur) {
            cur = Buffer.allocUnsafe(frameBytes);
            filled = 0;
          }
          const n = Math.min(frameBytes - filled, chunk.length - off);
          chunk.copy(cur, filled, off, off + n);
          filled += n;
          off += n;
          if (filled < frameBytes) continue;
          const f: RawFrame = {
            rgb: new Uint8Array(cur.buffer, cur.byteOffset, frameBytes),
            width: size!.width,
            height: size!.height,
            srcWidth: srcSize!.width,
            srcHeight: srcSize!.height,
            time: Date.now(),
            readAt: performance.now(),
          };
          cur = undefined;
          filled = 0;
          const wait = sink.frame(f);
          if (wait && !this.live) {
            child.stdout.pause();
            await wait;
            if (!this.stopping) child.stdout.resume();
          }
        }
      }
      pumpActive = false;
    };
    const onData = (chunk: Buffer) => {
      if (!headerDone) {
        pendingChunks.push(chunk);
        return;
      }
      chunks.push(chunk);
      if (!pumpActive) pumping = pump();
    };

    let stderrTail = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      const lines = (stderrTail + s).split(/\r?\n|\r/);
      stderrTail = lines.pop() ?? '';
      for (const l of lines) {
        if (l.length === 0) continue;
        if (!headerDone) {
          banner.push(l);
          if (/^Stream mapping:/.test(l) || /^Press \[q\]/.test(l)) headerComplete();
          else if (banner.length > 500) banner.shift();
        } else {
          recent.push(l);
          if (recent.length > KEEP_STDERR_LINES) recent.shift();
          o.log.debug({ ffmpeg: redact(l) }, 'ffmpeg');
        }
      }
    });

    child.stdout.on('data', onData);
    this.exited = new Promise<void>((resolve) => {
      child.on('close', async (code, signal) => {
        resolve();
        await pumping; // deliver every complete frame before reporting the end
        if (this.stopping) {
          finish(() => sink.end());
          return;
        }
        const lastLines = [...banner.slice(-5), ...recent].filter((l) => /error|fail|invalid|no such|cannot|denied|refused|timed out/i.test(l));
        if (cur && filled > 0) sink.bad(`ffmpeg ended in the middle of a frame (${filled} of ${frameBytes} bytes)`);
        if (code === 0 && o.kind === 'file' && !o.loop) {
          finish(() => sink.end());
        } else {
          const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
          const detail = lastLines.length > 0 ? `: ${lastLines.slice(-2).join(' | ')}` : '';
          finish(() => sink.fail(new Error(redact(`ffmpeg ${why}${detail}`))));
        }
      });
    });
    child.on('error', (err) => {
      // spawn failure (ffmpeg missing): 'close' follows with code -2 on Node 20; report the cause.
      finish(() => sink.fail(new Error(`cannot run ${o.ffmpeg}: ${err.message}`)));
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.exited) return;
    this.stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await this.exited;
      clearTimeout(t);
    } else {
      await this.exited;
    }
  }
}
