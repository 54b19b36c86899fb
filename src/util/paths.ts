import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Repository root (the folder holding package.json), whether running from src/ or dist/. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The shared data folder (models, COCO images, reference figures). One setting: ZEROQ_DATA,
 * default `../shared/data` beside the repository.
 */
export function dataDir(): string {
  const env = process.env.ZEROQ_DATA;
  if (env && env.length > 0) return path.resolve(env);
  return path.resolve(repoRoot, '..', 'shared', 'data');
}

/** A path inside the data folder. */
export function dataPath(...parts: string[]): string {
  return path.join(dataDir(), ...parts);
}
