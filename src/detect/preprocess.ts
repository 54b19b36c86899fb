/**
 * Image → network frame, as darknet prepares it: decode without EXIF rotation or colour management
 * (darknet uses stb_image), then darknet's own two-pass bilinear resize (image.c resize_image),
 * or its letterbox when the cfg asks for it.
 */
import type { OutputInfo } from 'sharp';
import type { Frame } from '../engine/engine.js';
import type { Network } from '../model/ir.js';
import { loadNativeKernels } from '../engine/int/native.js';
import { ZeroqError } from '../util/errors.js';
import { loadSharp } from '../util/sharp.js';

/** An 8-bit RGB image, interleaved (HWC). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Images of more pixels than this are refused before they are decoded (8192x8192; 192 MiB as RGB). */
export const MAX_IMAGE_PIXELS = 8192 * 8192;

/** Decodes an image file to RGB (grey is expanded, alpha dropped, no rotation, ICC profile ignored). */
export async function loadImage(path: string): Promise<RgbImage> {
  return decodeImage(path, path);
}

/**
 * Decodes an image (a file path or its bytes) to RGB. Whatever sharp refuses — not an image,
 * truncated or corrupt data, more than MAX_IMAGE_PIXELS — is a ZeroqError('image-read') naming `name`.
 */
export async function decodeImage(input: string | Uint8Array, name: string): Promise<RgbImage> {
  const sharp = await loadSharp();
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(input, { ignoreIcc: true, autoOrient: false, failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    // libvips repeats its complaint once per line: keep each distinct one, on one line.
    const why = [...new Set(String((err as Error).message).split(/\r?\n/).map((l) => l.trim()).filter(Boolean))].join('; ');
    throw new ZeroqError('image-read', `cannot decode image: ${why}`, name, { cause: err });
  }
  const { width, height, channels } = out.info;
  if (channels !== 3 || out.data.length !== width * height * 3) {
    throw new ZeroqError('image-read', `decoded to ${channels} channels in ${out.data.length} bytes for ${width}x${height}, expected 8-bit RGB`, name);
  }
  return { data: new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength), width, height };
}

const f32 = Math.fround;

/** darknet's pixel value: (float)p/255. */
const UNIT = Float32Array.from({ length: 256 }, (_, p) => p / 255);

/** A resized image: 8-bit RGB (HWC) and the float result it was rounded from (CHW, [0, 1]). */
export interface ResizedImage extends RgbImage {
  planar: Float32Array;
}

/** Rounds planar [0, 1] values to interleaved 8-bit RGB. */
function toRgb(planar: Float32Array, w: number, h: number): Uint8Array {
  const plane = w * h;
  const out = new Uint8ClampedArray(plane * 3); // stores round to nearest and clamp
  for (let i = 0, o = 0; i < plane; i++, o += 3) {
    out[o] = planar[i] * 255;
    out[o + 1] = planar[plane + i] * 255;
    out[o + 2] = planar[2 * plane + i] * 255;
  }
  return new Uint8Array(out.buffer);
}

function checkSizes(img: RgbImage, w: number, h: number): void {
  const { width: iw, height: ih, data: src } = img;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w >= 1 && h >= 1 && Number.isInteger(iw) && Number.isInteger(ih) && iw >= 1 && ih >= 1)) {
    throw new ZeroqError('image-size', `cannot resize ${iw}x${ih} to ${w}x${h}`);
  }
  if (src.length !== iw * ih * 3) throw new ZeroqError('image-size', `RGB buffer of ${src.length} bytes for ${iw}x${ih}`);
}

/**
 * darknet's resize_image, in float32 on P/255 as darknet computes it: a horizontal pass (scale
 * (im.w-1)/(w-1), last column copied from the source's last column), then a vertical one (scale
 * (im.h-1)/(h-1); the last row takes only the (1-dy) share of its source row, which darknet does
 * even when float rounding puts that row one short of the bottom, leaving it nearly black).
 * The readable reference of the native resize (src/kernels/resize.cc), and its fallback.
 */
export function resizeImageJs(img: RgbImage, w: number, h: number): ResizedImage {
  checkSizes(img, w, h);
  const { width: iw, height: ih, data: src } = img;
  const plane = w * h;
  const planar = new Float32Array(3 * plane);
  if (iw === w && ih === h) {
    for (let i = 0, s = 0; i < plane; i++, s += 3) {
      planar[i] = UNIT[src[s]];
      planar[plane + i] = UNIT[src[s + 1]];
      planar[2 * plane + i] = UNIT[src[s + 2]];
    }
    return { data: src.slice(), width: w, height: h, planar };
  }

  const wScale = f32((iw - 1) / (w - 1));
  const hScale = h > 1 ? f32((ih - 1) / (h - 1)) : 0;
  const rowLen = w * 3;

  // Vertical pass geometry first, so that the horizontal pass only computes rows that are read.
  const iy = new Int32Array(h);
  const dy = new Float32Array(h);
  const needed = new Uint8Array(ih);
  for (let r = 0; r < h; r++) {
    const sy = f32(r * hScale);
    iy[r] = Math.trunc(sy);
    dy[r] = f32(sy - iy[r]);
    needed[iy[r]] = 1;
    if (r !== h - 1 && ih !== 1) needed[iy[r] + 1] = 1;
  }

  const ix = new Int32Array(w);
  const dx = new Float32Array(w);
  for (let c = 0; c < w; c++) {
    if (c === w - 1 || iw === 1) {
      ix[c] = -1; // copy the last source column
    } else {
      const sx = f32(c * wScale);
      ix[c] = Math.trunc(sx);
      dx[c] = f32(sx - ix[c]);
    }
  }

  // Horizontal pass, interleaved rows of w pixels.
  const part = new Float32Array(ih * rowLen);
  for (let r = 0; r < ih; r++) {
    if (!needed[r]) continue;
    const s = r * iw * 3;
    const d = r * rowLen;
    for (let c = 0; c < w; c++) {
      const o = d + c * 3;
      if (ix[c] < 0) {
        const last = s + (iw - 1) * 3;
        part[o] = UNIT[src[last]];
        part[o + 1] = UNIT[src[last + 1]];
        part[o + 2] = UNIT[src[last + 2]];
      } else {
        const a = s + ix[c] * 3;
        const t = dx[c];
        const u = f32(1 - t);
        part[o] = f32(u * UNIT[src[a]]) + f32(t * UNIT[src[a + 3]]);
        part[o + 1] = f32(u * UNIT[src[a + 1]]) + f32(t * UNIT[src[a + 4]]);
        part[o + 2] = f32(u * UNIT[src[a + 2]]) + f32(t * UNIT[src[a + 5]]);
      }
    }
  }

  // Vertical pass into planar output.
  for (let r = 0; r < h; r++) {
    const a = iy[r] * rowLen;
    const b = a + rowLen;
    const t = dy[r];
    const u = f32(1 - t);
    const lastRow = r === h - 1 || ih === 1;
    for (let k = 0; k < 3; k++) {
      const o = k * plane + r * w;
      if (lastRow) {
        for (let c = 0, i = k; c < w; c++, i += 3) planar[o + c] = u * part[a + i];
      } else {
        for (let c = 0, i = k; c < w; c++, i += 3) planar[o + c] = f32(u * part[a + i]) + f32(t * part[b + i]);
      }
    }
  }
  return { data: toRgb(planar, w, h), width: w, height: h, planar };
}

/** darknet's letterbox geometry: the size the image is resized to inside the network input. */
export function letterboxSize(imgW: number, imgH: number, netW: number, netH: number): { w: number; h: number } {
  if (f32(netW / imgW) < f32(netH / imgH)) return { w: netW, h: Math.trunc((imgH * netW) / imgW) };
  return { w: Math.trunc((imgW * netH) / imgH), h: netH };
}

/** Where darknet's letterbox puts the resized image inside the network input. */
function letterboxBox(img: RgbImage, netW: number, netH: number): { w: number; h: number; ox: number; oy: number } {
  const size = letterboxSize(img.width, img.height, netW, netH);
  return { ...size, ox: Math.trunc((netW - size.w) / 2), oy: Math.trunc((netH - size.h) / 2) };
}

/** darknet's letterbox_image (reference): resize keeping the aspect ratio, centred on grey 0.5 (8 bits: 128). */
export function letterboxImageJs(img: RgbImage, netW: number, netH: number): ResizedImage {
  const box = letterboxBox(img, netW, netH);
  const resized = resizeImageJs(img, box.w, box.h);
  const planar = new Float32Array(3 * netW * netH).fill(0.5);
  for (let k = 0; k < 3; k++) {
    for (let y = 0; y < box.h; y++) {
      const from = (k * box.h + y) * box.w;
      planar.set(resized.planar.subarray(from, from + box.w), (k * netH + box.oy + y) * netW + box.ox);
    }
  }
  return { data: toRgb(planar, netW, netH), width: netW, height: netH, planar };
}

type NativeResize = (
  src: Uint8Array, iw: number, ih: number, w: number, h: number,
  rgb: Uint8Array, dstW: number, dstH: number, ox: number, oy: number, planar: Float32Array | null,
) => void;

let nativeResize: NativeResize | null | undefined;

/** The addon's resize (src/kernels/resize.cc); null when the addon is missing or ZEROQ_RESIZE=js. */
function native(): NativeResize | null {
  if (process.env.ZEROQ_RESIZE === 'js') return null;
  if (nativeResize === undefined) {
    const k = loadNativeKernels().kernels;
    nativeResize = k?.resize ? k.resize.bind(k) : null;
  }
  return nativeResize;
}

/** Which resize runs: the native one, or the JS reference (no addon, or ZEROQ_RESIZE=js). */
export function resizeImplementation(): 'native' | 'js' {
  return native() ? 'native' : 'js';
}

/**
 * darknet's resize (or letterbox) of img to dstW x dstH, written into rgb (and planar when given):
 * the native resize when available, bit-identical with the JS reference otherwise used.
 */
function darknetInto(img: RgbImage, letterbox: boolean, dstW: number, dstH: number, rgb: Uint8Array, planar?: Float32Array): void {
  checkSizes(img, dstW, dstH);
  const box = letterbox ? letterboxBox(img, dstW, dstH) : { w: dstW, h: dstH, ox: 0, oy: 0 };
  if (!(box.w >= 1 && box.h >= 1)) throw new ZeroqError('image-size', `cannot letterbox ${img.width}x${img.height} into ${dstW}x${dstH}`);
  const n = dstW * dstH * 3;
  if (rgb.length !== n || (planar && planar.length !== n)) {
    throw new ZeroqError('frame-buffer', `frame buffers of ${rgb.length}/${planar?.length ?? '-'} values for ${dstW}x${dstH}x3`);
  }
  const fast = native();
  if (fast) {
    fast(img.data, img.width, img.height, box.w, box.h, rgb, dstW, dstH, box.ox, box.oy, planar ?? null);
    return;
  }
  const r = letterbox ? letterboxImageJs(img, dstW, dstH) : resizeImageJs(img, dstW, dstH);
  rgb.set(r.data);
  planar?.set(r.planar);
}

/** darknet's resize_image to w x h (native when available; see resizeImageJs). */
export function resizeImage(img: RgbImage, w: number, h: number): ResizedImage {
  checkSizes(img, w, h);
  const rgb = new Uint8Array(w * h * 3);
  const planar = new Float32Array(w * h * 3);
  darknetInto(img, false, w, h, rgb, planar);
  return { data: rgb, width: w, height: h, planar };
}

/** darknet's letterbox_image (native when available; see letterboxImageJs). */
export function letterboxImage(img: RgbImage, netW: number, netH: number): ResizedImage {
  checkSizes(img, netW, netH);
  const rgb = new Uint8Array(netW * netH * 3);
  const planar = new Float32Array(netW * netH * 3);
  darknetInto(img, true, netW, netH, rgb, planar);
  return { data: rgb, width: netW, height: netH, planar };
}

/** Buffers of a network-size frame that a caller reuses from frame to frame. */
export interface FrameBuffers {
  rgb: Uint8Array;
  /** Needed when the float image is kept. */
  planar?: Float32Array;
}

export interface FrameOptions {
  /**
   * Keep the float image (Frame.planar, 4 bytes per value) beside the 8-bit one (default true): the
   * float engine then sees exactly darknet's input. Integer engines read only the 8-bit pixels:
   * without it the native resize does not compute it at all.
   */
  keepFloat?: boolean;
  /**
   * Write the frame into these buffers instead of new ones (nothing is allocated per frame). The
   * returned frame then shares them: it is valid until the buffers are written again.
   */
  into?: FrameBuffers;
}

/** The network input for an image: darknet's resize (or letterbox when the cfg says letter_box=1). */
export function resizeForNet(img: RgbImage, net: Network, opts: FrameOptions = {}): Frame {
  const { w, h } = net.input;
  const keepFloat = opts.keepFloat ?? true;
  const n = w * h * 3;
  const rgb = opts.into?.rgb ?? new Uint8Array(n);
  const planar = keepFloat ? (opts.into?.planar ?? new Float32Array(n)) : undefined;
  darknetInto(img, net.letterbox, w, h, rgb, planar);
  const frame: Frame = { rgb, width: w, height: h };
  if (planar) frame.planar = planar;
  return frame;
}

/** Loads an image file and prepares its frame; width/height are the original image's. */
export async function prepareFrame(
  imagePath: string,
  net: Network,
  opts: FrameOptions = {},
): Promise<{ frame: Frame; width: number; height: number }> {
  const img = await loadImage(imagePath);
  return { frame: resizeForNet(img, net, opts), width: img.width, height: img.height };
}
