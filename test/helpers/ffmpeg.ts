/** Test inputs made with the real ffmpeg: a short video from real images. */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether an ffmpeg binary runs here (tests that need one skip without it). */
export const haveFfmpeg = (() => {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * Encodes the images, in order, into an MPEG-4 video (ffmpeg's own encoder) of width×height at
 * fps, one frame per image (images of other sizes are scaled to it).
 */
export async function makeVideo(images: string[], out: string, o: { width: number; height: number; fps: number }): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zeroq-frames-'));
  try {
    images.forEach((f, i) => symlinkSync(path.resolve(f), path.join(dir, `${String(i).padStart(5, '0')}${path.extname(f)}`)));
    const ext = path.extname(images[0]);
    await run('ffmpeg', [
      '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
      '-framerate', String(o.fps), '-i', path.join(dir, `%05d${ext}`),
      '-vf', `scale=${o.width}:${o.height},format=yuv420p`,
      '-c:v', 'mpeg4', '-q:v', '3', '-r', String(o.fps), out,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
