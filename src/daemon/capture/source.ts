/**
 * What every capture source delivers and how it is driven. A source produces RGB frames until it
 * ends (a file or folder that does not loop) or fails (the ffmpeg child died, an error); the
 * supervisor (capture/supervisor.ts) restarts sources that fail or stall.
 */

/** One captured picture, interleaved RGB (HWC). */
export interface RawFrame {
  rgb: Uint8Array;
  /** Size of `rgb`. */
  width: number;
  height: number;
  /**
   * Size of the picture as the camera or file has it; detections are given in these pixels. Equal to
   * width/height unless ffmpeg scaled the frame down to the network input.
   */
  srcWidth: number;
  srcHeight: number;
  /** Capture time, ms since the epoch (when the last byte of the frame arrived). */
  time: number;
  /** The same moment on the monotonic clock (performance.now()), for sub-millisecond timings. */
  readAt?: number;
}

export interface SourceSink {
  /**
   * A new frame. A promise returned means "wait until I take it": sources that are not live (a
   * folder, a file read faster than real time) then hold back until it resolves.
   */
  frame(f: RawFrame): void | Promise<void>;
  /** Something the source produced could not be used (bad frame size, undecodable image). */
  bad(reason: string): void;
  /** The input is finished (a file or folder that does not loop). */
  end(): void;
  /** The source died; the supervisor decides whether to restart it. */
  fail(err: Error): void;
}

export interface CaptureSource {
  /** For logs: "v4l2 /dev/video0", "folder /data/images", ... */
  readonly description: string;
  /** A camera-like source: frames keep coming whether or not they are taken (the newest wins). */
  readonly live: boolean;
  /** Calls the sink until stop(), end or failure. Called once per instance. */
  start(sink: SourceSink): void;
  /** Stops producing; resolves when the source released everything (child process exited). */
  stop(): Promise<void>;
}
