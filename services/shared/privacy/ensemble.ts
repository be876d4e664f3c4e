import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { splitStratified } from '../data/split.js';
import type { Engine } from '../ml/engine.js';
import { predictLogits } from '../ml/predict.js';
import { createRng, deriveSeed, permutation } from '../ml/random.js';
import { trainTeacher } from '../ml/teacher.js';
import { softmaxRows } from './release.js';

/**
 * A teacher ensemble on disjoint shards of the hub's private rows, the input of the DP
 * mechanisms in `aggregate.ts`. What makes their sensitivity bound hold is enforced here:
 * shards are cut by row position through a seeded permutation, never by content, and each
 * teacher is a function of its own shard alone (its early-stopping rows come from the
 * shard too).
 */

/** One member of the ensemble. */
export interface EnsembleMember {
  /** The trained teacher; absent when its shard held a single class. */
  model?: tfjs.LayersModel;
  /**
   * For a shard with a single class, the shard's class frequencies, which the member
   * outputs on every row: still a function of its shard alone.
   */
  prior?: [number, number];
  /** Rows of the shard. */
  rows: number;
  /** Whether the shard's own training rows served for early stopping (too few positives). */
  validatedOnTrain: boolean;
}

/** Options of {@link trainTeacherEnsemble}. */
export interface TrainEnsembleOptions {
  x: Float32Array;
  y: Uint8Array;
  inputDim: number;
  /** Number of teachers m, each on n/m rows. */
  teachers: number;
  seed: number;
  /** Hidden widths of each teacher; default [64, 64] (each sees only n/m rows). */
  hidden?: readonly number[];
  dropout?: number;
  epochs?: number;
  patience?: number;
  /**
   * `'holdout'` (default): each teacher stops early on 15% of its own shard. `'training'`:
   * it trains on the whole shard and keeps the epoch that fits it best, which lets it
   * memorise its rows (used to measure what DP does against a leaking ensemble).
   */
  stopOn?: 'holdout' | 'training';
  logger?: Logger;
}

/**
 * Cuts positions 0 … n−1 into m disjoint shards of ⌊n/m⌋ or ⌈n/m⌉ rows through a seeded
 * permutation: which shard a row lands in depends on its position and the seed only.
 */
export function partitionShards(n: number, teachers: number, seed: number): Uint32Array[] {
  if (!(Number.isInteger(teachers) && teachers >= 1 && teachers <= n)) {
    throw fail('REQUEST_INVALID', {
      detail: `teachers must be an integer in [1, ${n}] (one row per teacher at least), got ${teachers}`,
    });
  }
  const order = permutation(createRng(deriveSeed(seed, 'ensemble-shards')), n);
  const shards: number[][] = Array.from({ length: teachers }, () => []);
  order.forEach((row, i) => shards[i % teachers].push(row));
  return shards.map((rows) => Uint32Array.from(rows).sort());
}

function pick(x: Float32Array, y: Uint8Array, dim: number, rows: ArrayLike<number>) {
  const outX = new Float32Array(rows.length * dim);
  const outY = new Uint8Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    outX.set(x.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
    outY[i] = y[rows[i]];
  }
  return { x: outX, y: outY };
}

function hasBothClasses(y: Uint8Array): boolean {
  let positives = 0;
  for (const label of y) positives += label;
  return positives > 0 && positives < y.length;
}

/**
 * Trains m teachers with `trainTeacher`, teacher j on shard j only: the shard is split
 * 85/15 (stratified within the shard) into training and early-stopping rows. When the
 * early-stopping part lacks a class the teacher stops early on its training rows instead;
 * when the shard has a single class the member outputs the shard's class frequencies.
 */
export async function trainTeacherEnsemble(
  engine: Engine,
  options: TrainEnsembleOptions,
): Promise<{ members: EnsembleMember[]; shards: Uint32Array[] }> {
  const { x, y, inputDim, teachers, seed } = options;
  const logger = options.logger ?? silentLogger();
  const shards = partitionShards(y.length, teachers, seed);
  const members: EnsembleMember[] = [];
  try {
    for (let j = 0; j < shards.length; j++) {
      const shard = pick(x, y, inputDim, shards[j]);
      if (!hasBothClasses(shard.y)) {
        const positive = shard.y.length === 0 ? 0 : shard.y[0];
        members.push({
          prior: positive ? [0, 1] : [1, 0],
          rows: shard.y.length,
          validatedOnTrain: false,
        });
        continue;
      }
      const parts = splitStratified(
        shard.y,
        { train: 0.85, validation: 0.15 },
        deriveSeed(seed, j),
      );
      let train = pick(shard.x, shard.y, inputDim, parts.train);
      let validation = pick(shard.x, shard.y, inputDim, parts.validation);
      let validatedOnTrain = false;
      if (
        options.stopOn === 'training' ||
        !hasBothClasses(train.y) ||
        !hasBothClasses(validation.y)
      ) {
        train = shard;
        validation = shard;
        validatedOnTrain = true;
      }
      const trained = await trainTeacher(engine, {
        x: train.x,
        y: train.y,
        inputDim,
        valX: validation.x,
        valY: validation.y,
        hidden: options.hidden ?? [64, 64],
        dropout: options.dropout ?? 0.3,
        epochs: options.epochs,
        patience: options.patience,
        seed: deriveSeed(seed, `ensemble-teacher-${j}`),
      });
      members.push({ model: trained.model, rows: shard.y.length, validatedOnTrain });
      logger.debug(
        { teacher: j, rows: shard.y.length, bestValAuc: trained.bestValAuc },
        'ensemble teacher',
      );
    }
  } catch (err) {
    disposeEnsemble(members);
    throw err;
  }
  logger.info(
    {
      teachers,
      priorOnly: members.filter((m) => !m.model).length,
      validatedOnTrain: members.filter((m) => m.validatedOnTrain).length,
    },
    'teacher ensemble trained',
  );
  return { members, shards };
}

/** Each member's probability rows (`n × 2`) on `x` at `temperature`. */
export function ensembleProbabilities(
  engine: Engine,
  members: readonly EnsembleMember[],
  x: Float32Array,
  n: number,
  temperature = 1,
): Float32Array[] {
  return members.map((member) => {
    if (member.model) return softmaxRows(predictLogits(engine, member.model, x, n), 2, temperature);
    const out = new Float32Array(n * 2);
    for (let r = 0; r < n; r++) out.set(member.prior ?? [0.5, 0.5], 2 * r);
    return out;
  });
}

/** Frees the members' models. */
export function disposeEnsemble(members: readonly EnsembleMember[]): void {
  for (const member of members) member.model?.dispose();
}
