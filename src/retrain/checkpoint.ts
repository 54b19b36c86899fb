/**
 * Checkpoints: the whole training state (shadow weights, optimiser moments, position, random
 * state, current formats, history) and the run's settings, in one JSON file written atomically.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { ZeroqError } from '../util/errors.js';
import type { TensorFormat } from '../qnet/types.js';
import type { Formats } from './formats.js';
import type { TrainState } from './trainer.js';

export const CHECKPOINT_VERSION = 1;

type Typed = Float32Array | Int32Array | Float64Array;
const KINDS = { f32: Float32Array, i32: Int32Array, f64: Float64Array } as const;

function enc(a: Typed): { t: keyof typeof KINDS; b64: string } {
  const t = a instanceof Float32Array ? 'f32' : a instanceof Int32Array ? 'i32' : 'f64';
  return { t, b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64') };
}

function dec(o: { t: keyof typeof KINDS; b64: string }): Typed {
  const buf = Buffer.from(o.b64, 'base64');
  const C = KINDS[o.t];
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  return new C(copy.buffer);
}

/** JSON with every typed array encoded. */
function replacer(_k: string, v: unknown): unknown {
  if (v instanceof Float32Array || v instanceof Int32Array || v instanceof Float64Array) return { __typed: enc(v) };
  return v;
}
function reviver(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && '__typed' in v) return dec((v as { __typed: { t: keyof typeof KINDS; b64: string } }).__typed);
  return v;
}

export interface Checkpoint {
  version: number;
  /** The settings that must match on resume (network, data, widths, seed...). */
  settings: Record<string, unknown>;
  state: TrainState;
}

export async function saveCheckpoint(file: string, settings: Record<string, unknown>, state: TrainState): Promise<void> {
  const body: Checkpoint = { version: CHECKPOINT_VERSION, settings, state };
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(body, replacer));
  await rename(tmp, file);
}

/** The settings a checkpoint was made with (to take over choices made at the start of its run). */
export async function readCheckpointSettings(file: string): Promise<Record<string, unknown>> {
  try {
    return (JSON.parse(await readFile(file, 'utf8')) as Checkpoint).settings;
  } catch (e) {
    throw new ZeroqError('retrain-checkpoint', `cannot read the checkpoint: ${(e as Error).message}`, file, { cause: e });
  }
}

export async function loadCheckpoint(file: string, settings: Record<string, unknown>): Promise<TrainState> {
  let body: Checkpoint;
  try {
    body = JSON.parse(await readFile(file, 'utf8'), reviver) as Checkpoint;
  } catch (e) {
    throw new ZeroqError('retrain-checkpoint', `cannot read the checkpoint: ${(e as Error).message}`, file, { cause: e });
  }
  if (body.version !== CHECKPOINT_VERSION) {
    throw new ZeroqError('retrain-checkpoint', `checkpoint version ${body.version}, expected ${CHECKPOINT_VERSION}`, file);
  }
  // Both ways: a setting the checkpoint has and this run lacks (an option left off on resume) differs too.
  for (const k of new Set([...Object.keys(settings), ...Object.keys(body.settings)])) {
    if (JSON.stringify(body.settings[k]) !== JSON.stringify(settings[k])) {
      throw new ZeroqError('retrain-checkpoint', `the checkpoint was made with ${k}=${JSON.stringify(body.settings[k]) ?? '(none)'}, this run has ${JSON.stringify(settings[k]) ?? '(none)'}`, file);
    }
  }
  const s = body.state;
  // Formats were serialised as plain objects around their typed arrays.
  if (s.formats) s.formats = { tensors: s.formats.tensors as TensorFormat[], weights: s.formats.weights } as Formats;
  return s;
}
