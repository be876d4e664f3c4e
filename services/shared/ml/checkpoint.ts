import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../digest.js';
import { fail } from '../errors.js';
import type { FlatTrainerState } from './flat-trainer.js';
import type { RngState } from './random.js';

/** One epoch of a student's history. */
export interface StudentEpoch {
  epoch: number;
  /** Mean training loss over the epoch's steps. */
  loss: number;
  valAuc?: number;
}

/**
 * Everything a student's training needs to continue after a crash exactly as if it had not
 * stopped: parameters, Adam's moments and step count, the shuffling generator's state and
 * the row orders it produced, the early-stopping record and the history so far.
 */
export interface StudentCheckpoint {
  /** Hash of the options and data the run was started with; a resume must match it. */
  fingerprint: string;
  /** Epochs completed. */
  epoch: number;
  steps: number;
  history: StudentEpoch[];
  rng: RngState;
  ownCursor: number;
  best: { epoch: number; auc: number };
  trainer: FlatTrainerState;
  /** Parameters of the best validation epoch so far, when early stopping keeps them. */
  bestTheta?: Float32Array;
  /** The transfer (or own) row order of the last epoch, and the own-row sampler's order. */
  mainOrder: Uint32Array;
  ownOrder: Uint32Array;
  /** Training time spent before this checkpoint, for samples/s across a resume. */
  elapsedMs: number;
}

const FORMAT = 'distillery.student-checkpoint/1';
const META = 'checkpoint.json';

interface Part {
  name: 'theta' | 'm' | 'v' | 'bestTheta' | 'mainOrder' | 'ownOrder';
  dtype: 'float32' | 'uint32';
  length: number;
}

interface Meta extends Omit<StudentCheckpoint, 'trainer' | 'bestTheta' | 'mainOrder' | 'ownOrder'> {
  format: typeof FORMAT;
  t: number;
  state: { file: string; sha256: string; parts: Part[] };
}

/**
 * Writes a checkpoint into `dir`: the arrays to `state-<epoch>.bin`, then `checkpoint.json`
 * naming it, through a temporary file and a rename. A crash at any point leaves the
 * previous checkpoint readable: its state file is removed only after the new JSON is in
 * place.
 */
export function writeCheckpoint(dir: string, checkpoint: StudentCheckpoint): void {
  mkdirSync(dir, { recursive: true });
  const arrays: [Part['name'], Float32Array | Uint32Array][] = [
    ['theta', checkpoint.trainer.theta],
    ['m', checkpoint.trainer.m],
    ['v', checkpoint.trainer.v],
    ['mainOrder', checkpoint.mainOrder],
    ['ownOrder', checkpoint.ownOrder],
  ];
  if (checkpoint.bestTheta) arrays.push(['bestTheta', checkpoint.bestTheta]);
  const total = arrays.reduce((sum, [, a]) => sum + a.byteLength, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  const parts: Part[] = arrays.map(([name, array]) => {
    bytes.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), offset);
    offset += array.byteLength;
    return {
      name,
      dtype: array instanceof Float32Array ? 'float32' : 'uint32',
      length: array.length,
    };
  });
  const file = `state-${checkpoint.epoch}.bin`;
  const temporary = join(dir, `${file}.${process.pid}.tmp`);
  writeFileSync(temporary, bytes);
  renameSync(temporary, join(dir, file));

  const meta: Meta = {
    format: FORMAT,
    fingerprint: checkpoint.fingerprint,
    epoch: checkpoint.epoch,
    steps: checkpoint.steps,
    history: checkpoint.history,
    rng: checkpoint.rng,
    ownCursor: checkpoint.ownCursor,
    best: checkpoint.best,
    elapsedMs: checkpoint.elapsedMs,
    t: checkpoint.trainer.t,
    state: { file, sha256: sha256Hex(bytes), parts },
  };
  const metaTemporary = join(dir, `${META}.${process.pid}.tmp`);
  writeFileSync(metaTemporary, JSON.stringify(meta));
  renameSync(metaTemporary, join(dir, META));
  for (const name of readdirSync(dir)) {
    if (/^state-\d+\.bin$/.test(name) && name !== file) rmSync(join(dir, name), { force: true });
  }
}

/**
 * Reads the checkpoint in `dir`; undefined when there is none.
 *
 * @throws MODEL_INVALID when the files are there but damaged (a state file that does not
 *   match its recorded hash, say).
 */
export function readCheckpoint(dir: string): StudentCheckpoint | undefined {
  const metaPath = join(dir, META);
  if (!existsSync(metaPath)) return undefined;
  let meta: Meta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8')) as Meta;
  } catch (err) {
    throw fail(
      'MODEL_INVALID',
      { path: metaPath, detail: 'checkpoint.json is not JSON' },
      { cause: err },
    );
  }
  if (meta.format !== FORMAT || !meta.state || !Array.isArray(meta.state.parts)) {
    throw fail('MODEL_INVALID', { path: metaPath, detail: `not a ${FORMAT} checkpoint` });
  }
  const statePath = join(dir, meta.state.file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(statePath);
  } catch (err) {
    throw fail(
      'MODEL_INVALID',
      { path: statePath, detail: 'checkpoint state is missing' },
      { cause: err },
    );
  }
  if (sha256Hex(bytes) !== meta.state.sha256) {
    throw fail('MODEL_INVALID', {
      path: statePath,
      detail: 'checkpoint state does not match its hash',
    });
  }
  const copy = new Uint8Array(bytes).buffer;
  const arrays: Partial<Record<Part['name'], Float32Array | Uint32Array>> = {};
  let offset = 0;
  for (const part of meta.state.parts) {
    const array =
      part.dtype === 'float32'
        ? new Float32Array(copy, offset, part.length)
        : new Uint32Array(copy, offset, part.length);
    arrays[part.name] = array;
    offset += part.length * 4;
  }
  return {
    fingerprint: meta.fingerprint,
    epoch: meta.epoch,
    steps: meta.steps,
    history: meta.history,
    rng: meta.rng,
    ownCursor: meta.ownCursor,
    best: meta.best,
    elapsedMs: meta.elapsedMs,
    trainer: {
      theta: arrays.theta as Float32Array,
      m: arrays.m as Float32Array,
      v: arrays.v as Float32Array,
      t: meta.t,
    },
    ...(arrays.bestTheta ? { bestTheta: arrays.bestTheta as Float32Array } : {}),
    mainOrder: arrays.mainOrder as Uint32Array,
    ownOrder: arrays.ownOrder as Uint32Array,
  };
}

/** Removes the checkpoint files in `dir` (after a run completes); other files stay. */
export function clearCheckpoint(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    if (name === META || /^state-\d+\.bin$/.test(name)) rmSync(join(dir, name), { force: true });
  }
}
