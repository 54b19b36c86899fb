/**
 * A folder of images as a source, in file-name order. Without a frame rate it is not live: each
 * image waits until the detector took the previous one, so every image is processed. With a frame
 * rate it behaves like a camera at that rate.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { loadImage } from '../../detect/preprocess.js';
import type { CaptureSource, SourceSink } from './source.js';

export const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|bmp|tiff?|gif|avif)$/i;

export interface FolderSourceOptions {
  dir: string;
  loop: boolean;
  fps?: number;
  /** Frames per image (default 1). */
  hold?: number;
  log: Logger;
}

export async function listImages(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names
    .filter((n) => IMAGE_EXTENSIONS.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

export class FolderSource implements CaptureSource {
  readonly description: string;
  readonly live: boolean;
  private stopped = false;
  private running?: Promise<void>;
  private wake?: () => void;

  constructor(private readonly o: FolderSourceOptions) {
    this.description = `folder ${o.dir}`;
    this.live = o.fps !== undefined;
  }

  start(sink: SourceSink): void {
    this.running = this.run(sink).catch((err: unknown) => {
      if (!this.stopped) sink.fail(err instanceof Error ? err : new Error(String(err)));
    });
  }

  private async run(sink: SourceSink): Promise<void> {
    const files = await listImages(this.o.dir);
    if (files.length === 0) throw new Error(`no images (${IMAGE_EXTENSIONS.source}) in ${this.o.dir}`);
    this.o.log.info({ images: files.length, loop: this.o.loop }, 'capture started');
    const period = this.o.fps ? 1000 / this.o.fps : 0;
    let next = performance.now();
    do {
      for (const file of files) {
        if (this.stopped) return;
        let img;
        try {
          img = await loadImage(file);
        } catch (err) {
          sink.bad((err as Error).message);
          continue;
        }
        for (let k = 0; k < (this.o.hold ?? 1); k++) {
          if (this.stopped) return;
          if (period > 0) {
            next += period;
            const wait = next - performance.now();
            if (wait > 0) await this.sleep(wait);
            else next = performance.now(); // fell behind: do not burst to catch up
            if (this.stopped) return;
          }
          const wait = sink.frame({
            rgb: img.data,
            width: img.width,
            height: img.height,
            srcWidth: img.width,
            srcHeight: img.height,
            time: Date.now(),
            readAt: performance.now(),
          });
          if (wait && !this.live) await wait;
        }
      }
    } while (this.o.loop && !this.stopped);
    if (!this.stopped) sink.end();
  }

  /** Pacing delay that stop() can cut short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }
}
