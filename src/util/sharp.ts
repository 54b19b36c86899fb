/**
 * sharp (libvips), loaded on first use: the daemon needs it only to decode image files (a folder
 * source; its pictures are encoded by src/daemon/jpeg.ts, which falls back to sharp only when the
 * addon is not built), and loading it maps libvips and
 * its dependencies (about 20 MB resident). Every user takes it from here so that the settings below
 * hold wherever it runs.
 */
import type { default as Sharp } from 'sharp';

export type SharpFn = typeof Sharp;

let loading: Promise<SharpFn> | undefined;

/** The sharp function, configured for one image at a time. */
export function loadSharp(): Promise<SharpFn> {
  loading ??= import('sharp').then(({ default: sharp }) => {
    // One image at a time, decoded once: libvips' operation cache (up to 50 MB) and its per-core
    // worker threads buy nothing here and cost a small board's memory.
    sharp.cache(false);
    sharp.concurrency(1);
    return sharp;
  });
  return loading;
}
