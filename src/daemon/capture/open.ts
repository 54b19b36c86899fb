/**
 * From the `source` section of the config to a source factory: what kind of input the URL names
 * and the options of its implementation.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Network } from '../../model/ir.js';
import { dataPath } from '../../util/paths.js';
import { ZeroqError } from '../../util/errors.js';
import { redact, withPassword } from '../../util/redact.js';
import type { SourceConfig } from '../config.js';
import { FfmpegSource } from './ffmpeg.js';
import { FolderSource } from './folder.js';
import type { CaptureSource } from './source.js';

export type ResolvedKind = 'v4l2' | 'stream' | 'file' | 'folder' | 'lavfi';

export interface ResolvedSource {
  kind: ResolvedKind;
  /** Device, URL, path or lavfi graph. */
  input: string;
  loop: boolean;
  fps?: number;
  /** Folders: frames per image. */
  hold?: number;
}

/**
 * The demo source: the COCO validation images of the data folder, looping, 5 frames/s unless set,
 * each image held for 10 frames (so that objects stay long enough to be followed).
 */
export function demoSource(cfg: SourceConfig): ResolvedSource {
  return { kind: 'folder', input: dataPath('coco-val', 'images'), loop: true, fps: cfg.fps ?? 5, hold: cfg.hold ?? 10 };
}

/** Works out the kind of input (unless the config names it) and checks that local inputs exist. */
export function resolveSource(cfg: SourceConfig): ResolvedSource {
  const url = cfg.url;
  if (url === 'demo' && cfg.kind === 'auto') return demoSource(cfg);
  let kind: ResolvedKind;
  let input = url;
  if (cfg.kind !== 'auto') kind = cfg.kind;
  else if (url.startsWith('lavfi:')) kind = 'lavfi';
  else if (/^\/dev\/video\d+$/.test(url) || url.startsWith('/dev/v4l/')) kind = 'v4l2';
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) kind = 'stream';
  else {
    let st;
    try {
      st = statSync(url);
    } catch {
      throw new ZeroqError('source', 'no such file, folder or device', `source.url "${redact(url)}"`);
    }
    kind = st.isDirectory() ? 'folder' : 'file';
  }
  if (kind === 'lavfi' && input.startsWith('lavfi:')) input = input.slice('lavfi:'.length);
  if (cfg.password_file) {
    if (kind !== 'stream') throw new ZeroqError('config', 'a password file goes with a stream URL (rtsp://user@camera/...)', 'source.password_file');
    input = withPassword(input, readSecret(cfg.password_file, 'source.password_file'));
  }
  if (kind === 'folder') {
    let isDir = false;
    try {
      isDir = statSync(input).isDirectory();
    } catch {
      /* reported below */
    }
    if (!isDir) throw new ZeroqError('source', 'not a folder', `source.url "${redact(url)}"`);
  }
  return { kind, input, loop: cfg.loop, fps: cfg.fps, hold: cfg.hold };
}

/** A factory of fresh source instances for the supervisor. */
export function sourceFactory(cfg: SourceConfig, net: Network, log: Logger): { resolved: ResolvedSource; create: () => CaptureSource } {
  const r = resolveSource(cfg);
  const slog = log.child({ source: redact(`${r.kind} ${r.input}`) });
  if (r.kind === 'folder') {
    return { resolved: r, create: () => new FolderSource({ dir: r.input, loop: r.loop, fps: r.fps, hold: r.hold, log: slog }) };
  }
  // ffmpeg scales to the network input unless the host should (letterbox networks: the host pads).
  const ffmpegScales = cfg.scale === 'ffmpeg' && !net.letterbox;
  return {
    resolved: r,
    create: () =>
      new FfmpegSource({
        ffmpeg: cfg.ffmpeg,
        kind: r.kind as 'v4l2' | 'stream' | 'file' | 'lavfi',
        input: r.input,
        outSize: ffmpegScales ? { width: net.input.w, height: net.input.h } : undefined,
        fps: r.fps,
        realtime: cfg.realtime,
        loop: r.loop,
        videoSize: cfg.video_size,
        inputFormat: cfg.input_format,
        inputArgs: cfg.input_args,
        log: slog,
      }),
  };
}

/** The first line of a file holding a password or token (e.g. a systemd credential). */
export function readSecret(file: string, key: string): string {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/)[0];
  } catch (err) {
    throw new ZeroqError('config', `cannot read ${file}: ${(err as Error).message}`, key);
  }
}
