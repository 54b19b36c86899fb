/**
 * JPEG for the daemon's pictures: the baseline encoder of src/daemon/native/jpeg.cc
 * (build/Release/zeroq_jpeg.node, on libuv's thread pool), so that a daemon whose sources are
 * cameras never loads libvips (docs/decisions/daemon-memory.md). Where the addon is not built,
 * sharp encodes instead.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type { RgbImage } from '../detect/preprocess.js';
import { repoRoot } from '../util/paths.js';
import { loadSharp } from '../util/sharp.js';

interface JpegAddon {
  encode(rgb: Uint8Array, width: number, height: number, outWidth: number, outHeight: number, quality: number, cb: (err: Error | null, jpeg?: Buffer) => void): void;
}

let loaded: JpegAddon | null | undefined;
function addon(): JpegAddon | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(path.join(repoRoot, 'build', 'Release', 'zeroq_jpeg.node')) as JpegAddon;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** Which encoder makes the pictures: 'native' (the addon) or 'sharp'. */
export function jpegEncoder(): 'native' | 'sharp' {
  return addon() ? 'native' : 'sharp';
}

/**
 * The picture as a baseline JPEG (4:2:0) at quality 1..100, resampled to out (default: its own size)
 * by the network input's resize (darknet's bilinear).
 */
export async function encodeJpeg(img: RgbImage, quality: number, out: { width: number; height: number } = img): Promise<Buffer> {
  const a = addon();
  if (a) {
    return new Promise((resolve, reject) =>
      a.encode(img.data, img.width, img.height, out.width, out.height, Math.round(quality), (err, jpeg) => (err ? reject(err) : resolve(jpeg!))),
    );
  }
  const sharp = await loadSharp();
  let p = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (out.width !== img.width || out.height !== img.height) p = p.resize(out.width, out.height, { fit: 'fill' });
  return p.jpeg({ quality }).toBuffer();
}
