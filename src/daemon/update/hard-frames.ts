/**
 * Hard frames: frames where a detection's score sits just above the threshold (the detector was
 * unsure) are sent to the server's pool, at most `per_hour` (a token bucket with a burst of 1), as
 * JPEG scaled down to `max_size`. Encoding and upload run in the background; a frame that arrives
 * while one is on its way is not considered.
 */
import type { Logger } from 'pino';
import type { ProcessedFrame } from '../frame-loop.js';
import { encodeJpeg } from '../jpeg.js';
import { snapshotSize } from '../snapshot.js';

export interface HardFrameSettings {
  margin: number;
  per_hour: number;
  max_size: number;
  quality: number;
}

export class HardFrames {
  private tokens = 1;
  private at = Date.now();
  private busy = false;
  sent = 0;

  constructor(
    private readonly o: HardFrameSettings,
    private readonly upload: (jpeg: Uint8Array, meta: Record<string, unknown>) => Promise<boolean>,
    private readonly log: Logger,
  ) {}

  consider(r: ProcessedFrame, threshold: number, meta: Record<string, unknown>): void {
    if (this.busy) return;
    const near = r.detections.filter((d) => d.score < threshold + this.o.margin).map((d) => Math.round(d.score * 1000) / 1000);
    if (near.length === 0) return;
    const now = Date.now();
    this.tokens = Math.min(1, this.tokens + ((now - this.at) * this.o.per_hour) / 3_600_000);
    this.at = now;
    if (this.tokens < 1) return;
    this.tokens -= 1;
    this.busy = true;
    const f = r.frame;
    // The picture is copied now: the frame's buffer may be reused once this frame is done.
    const rgb = Buffer.from(f.rgb);
    const size = snapshotSize(f.width, f.height, this.o.max_size);
    void Promise.resolve()
      .then(() => encodeJpeg({ data: rgb, width: f.width, height: f.height }, this.o.quality, size))
      .then((jpeg) => this.upload(jpeg, { ...meta, frame: f.seq, time: new Date(f.time).toISOString(), scores: near }))
      .then((ok) => {
        if (!ok) return;
        this.sent++;
        this.log.info({ frame: f.seq, scores: near, sent: this.sent }, 'hard frame sent');
      })
      .catch((e: Error) => this.log.warn({ err: e.message }, 'hard frame not uploaded'))
      .finally(() => (this.busy = false));
  }
}
