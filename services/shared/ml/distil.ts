import type * as tfjs from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { fail } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import {
  clearCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type StudentCheckpoint,
  type StudentEpoch,
} from './checkpoint.js';
import type { Engine } from './engine.js';
import { FlatMlpTrainer, type FlatBatch } from './flat-trainer.js';
import type { Divergence } from './kd-loss.js';
import { rocAuc } from './metrics.js';
import { buildMlp, createYielder, gatherRows } from './mlp.js';
import { predictPositive } from './predict.js';
import { createRng, deriveSeed, permutation, type Rng } from './random.js';
import { checkLabelledMatrix } from './teacher.js';

export type { StudentEpoch } from './checkpoint.js';

/** Defaults of {@link trainStudent}. */
export const STUDENT_DEFAULTS = Object.freeze({
  batchSize: 256,
  learningRate: 1e-3,
  temperature: 4,
  alpha: 0.9,
  classWeights: 'balanced' as const,
  // Step budgets, measured on the reference splits of both sample datasets (tuning seeds
  // 10-12, bank 5%): distillation plateaus at the teacher's AUC from about 300 steps on,
  // while a student on a few hundred own rows alone peaks at 100-200 steps and then
  // overfits (lending_club AUC 0.68 at 100 steps, 0.64 at 300, 0.60 at 2,000).
  distilSteps: 500,
  ownSteps: 150,
  // Weight of the hint term. Teacher activations are standardised per unit before the
  // loss (see trainStudent), so the term starts near 1 whatever the teacher's scale.
  hintWeight: 0.1,
  // How often a progress listener hears about batches, at most.
  progressIntervalMs: 200,
});

/** What the teacher contributes: its logits on transfer-set inputs. */
export interface StudentTeacherInput {
  /** Transfer-set inputs, row-major, encoded as the participant's own rows. */
  x: Float32Array;
  /** Teacher logits on those rows, row-major `n × 2`. */
  logits: Float32Array;
  /** Softening temperature, > 0; default 4, as in the reference protocol. */
  temperature?: number;
  /** Weight of the distillation term in [0, 1]; default 0.9, as in the reference protocol. */
  alpha?: number;
  /** Direction of the soft-target KL divergence; default `forward` (Hinton et al.). */
  divergence?: Divergence;
  /**
   * A hint (FitNets): the teacher layer's activations on the transfer rows, row-major
   * `n × width`, matched by student layer `hidden_<studentLayer>` (default its last hidden
   * layer) through a learned linear projection, with weight `weight` (default 0.1).
   */
  hint?: { values: Float32Array; width: number; studentLayer?: number; weight?: number };
}

/** What a progress listener hears: after batches (throttled) and after each epoch. */
export interface TrainingProgress {
  phase: 'batch' | 'epoch';
  epoch: number;
  epochs: number;
  /** Batches done in this epoch, of `batches`. */
  batch: number;
  batches: number;
  /** Mean loss of this epoch's steps so far. */
  loss: number;
  /** Validation ROC AUC of the last finished epoch, when there are validation rows. */
  valAuc?: number;
  /** Rows (transfer and own) processed per second of training so far. */
  samplesPerSecond: number;
  steps: number;
}

/** Options of {@link trainStudent}. */
export interface TrainStudentOptions {
  inputDim: number;
  /** Hidden widths of the student, e.g. `[16]`. */
  hidden: readonly number[];
  /** The participant's own labelled rows. */
  own: { x: Float32Array; y: Uint8Array };
  /** Absent: train on own rows alone (the "without teacher" baseline). */
  teacher?: StudentTeacherInput;
  /**
   * Passes over the transfer set when distilling, over the own rows otherwise. Default:
   * enough whole epochs for 500 optimiser steps distilling, 150 without a teacher (see
   * STUDENT_DEFAULTS); `steps` in the result says how many were taken.
   */
  epochs?: number;
  /** Rows of each batch (transfer rows when distilling); default 256. */
  batchSize?: number;
  /** Own rows in each distilling step; default min(batchSize, own rows). */
  ownBatchSize?: number;
  /** Adam step size; default 1e-3. */
  learningRate?: number;
  /**
   * Class weights of the cross-entropy term: `'balanced'` (default) weighs each class by
   * n / (2 · its count), so a bank's few dozen positives are not drowned by its negatives;
   * `'none'`, or explicit `[negative, positive]` weights.
   */
  classWeights?: 'balanced' | 'none' | readonly [number, number];
  seed: number;
  logger?: Logger;
  /** Rows scored after each epoch (ROC AUC in the history); needed for `patience`. */
  validation?: { x: Float32Array; y: Uint8Array };
  /** Stop after this many epochs without a better validation AUC, restoring the best. */
  patience?: number;
  /**
   * Start from this model's weights and shape instead of a fresh student (fine-tuning).
   * `hidden` is then ignored; the model itself is not changed.
   */
  init?: tfjs.LayersModel;
  /**
   * Directory for a checkpoint after every epoch. When it already holds one from a run
   * with the same options, data and seed, training resumes after that checkpoint's epoch
   * and ends as the uninterrupted run would have. Removed when training completes, unless
   * `keepCheckpoint`.
   */
  checkpointDir?: string;
  keepCheckpoint?: boolean;
  /** Called after batches (at most every `progressIntervalMs`) and after each epoch. */
  onProgress?: (progress: TrainingProgress) => void;
  /** Least time between two batch reports to `onProgress`; default 200 ms, 0 for every batch. */
  progressIntervalMs?: number;
  /**
   * Stops training at the next mini-batch once aborted: the call then rejects with the
   * signal's reason and the student built here is freed (a node shutting down, or a
   * version withdrawn while its student trains).
   */
  signal?: AbortSignal;
}

/** Result of {@link trainStudent}. */
export interface TrainedStudent {
  model: tfjs.LayersModel;
  history: StudentEpoch[];
  /** Optimiser steps taken. */
  steps: number;
  durationMs: number;
  /** Rows processed per second of training (validation excluded). */
  samplesPerSecond: number;
  /** The epoch training resumed after, when it continued from a checkpoint. */
  resumedFromEpoch?: number;
}

function resolveClassWeights(
  option: TrainStudentOptions['classWeights'],
  y: Uint8Array,
): [number, number] | undefined {
  const choice = option ?? STUDENT_DEFAULTS.classWeights;
  if (choice === 'none') return undefined;
  if (choice !== 'balanced') {
    if (!choice.every((w) => Number.isFinite(w) && w > 0)) {
      throw fail('REQUEST_INVALID', { detail: `classWeights must be positive, got ${choice}` });
    }
    return [choice[0], choice[1]];
  }
  let positives = 0;
  for (let i = 0; i < y.length; i++) positives += y[i];
  const negatives = y.length - positives;
  // A class absent from the own rows gets weight 1: it appears in no row, so the weight
  // has no effect, and n / 0 would poison the loss with Infinity.
  const weight = (count: number) => (count === 0 ? 1 : y.length / (2 * count));
  return [weight(negatives), weight(positives)];
}

function checkOptions(options: TrainStudentOptions): void {
  const { inputDim, own, teacher } = options;
  const positiveInteger = (value: number | undefined, path: string) => {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw fail('REQUEST_INVALID', { detail: `${path} must be a positive integer, got ${value}` });
    }
  };
  positiveInteger(options.epochs, 'epochs');
  positiveInteger(options.batchSize, 'batchSize');
  positiveInteger(options.ownBatchSize, 'ownBatchSize');
  positiveInteger(options.patience, 'patience');
  const rate = options.learningRate;
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
    throw fail('REQUEST_INVALID', { detail: `learningRate must be positive, got ${rate}` });
  }

  if (teacher === undefined) {
    checkLabelledMatrix(own.x, own.y, inputDim, 'student own rows');
  } else {
    const n = teacher.logits.length / 2;
    if (!Number.isInteger(n) || n === 0 || teacher.x.length !== n * inputDim) {
      throw fail('MODEL_SHAPE_MISMATCH', {
        what: 'transfer inputs and teacher logits',
        expected: `${n} × ${inputDim} inputs for ${teacher.logits.length} logits`,
        actual: `${teacher.x.length} inputs`,
      });
    }
    if (own.x.length !== own.y.length * inputDim) {
      throw fail('MODEL_SHAPE_MISMATCH', {
        what: 'student own rows',
        expected: `${own.y.length} × ${inputDim} values`,
        actual: `${own.x.length} values`,
      });
    }
    const alpha = teacher.alpha ?? STUDENT_DEFAULTS.alpha;
    const T = teacher.temperature ?? STUDENT_DEFAULTS.temperature;
    if (!(alpha >= 0 && alpha <= 1)) {
      throw fail('REQUEST_INVALID', { detail: `teacher.alpha must be in [0, 1], got ${alpha}` });
    }
    if (!(Number.isFinite(T) && T > 0)) {
      throw fail('REQUEST_INVALID', { detail: `teacher.temperature must be positive, got ${T}` });
    }
    if (own.y.length === 0 && alpha !== 1) {
      throw fail('DATA_TOO_FEW_ROWS', { what: 'student own rows', count: 0, min: 1 });
    }
    if (teacher.hint) {
      const { values, width } = teacher.hint;
      if (!(Number.isInteger(width) && width > 0) || values.length !== n * width) {
        throw fail('MODEL_SHAPE_MISMATCH', {
          what: 'teacher hint activations',
          expected: `${n} rows × ${width}`,
          actual: `${values.length} values`,
        });
      }
    }
  }
  if (options.patience !== undefined && options.validation === undefined) {
    throw fail('REQUEST_INVALID', { detail: 'patience needs validation rows' });
  }
  if (options.validation) {
    const { x, y } = options.validation;
    checkLabelledMatrix(x, y, inputDim, 'student validation rows');
  }
}

/** Draws own rows cyclically from a reshuffled order, so every row is used equally often. */
function createCyclicSampler(rng: Rng, n: number) {
  let order = permutation(rng, n);
  let cursor = 0;
  return {
    take(count: number, out: Uint32Array): Uint32Array {
      for (let k = 0; k < count; k++) {
        if (cursor === n) {
          rng.shuffle(order);
          cursor = 0;
        }
        out[k] = order[cursor++];
      }
      return out.subarray(0, count);
    },
    state: () => ({ order: Uint32Array.from(order), cursor }),
    restore(saved: { order: Uint32Array; cursor: number }) {
      order = Uint32Array.from(saved.order);
      cursor = saved.cursor;
    },
  };
}

/**
 * Teacher probabilities at T and their logarithms, in double precision from the logits:
 * log-softmax by the log-sum-exp with the row maximum subtracted, so logits of any size
 * give finite logarithms (a probability that underflows to 0 keeps its finite log).
 */
export function softTargetsOf(logits: Float32Array, T: number) {
  const n = logits.length / 2;
  const soft = new Float32Array(n * 2);
  const logSoft = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const a = logits[2 * i] / T;
    const b = logits[2 * i + 1] / T;
    const max = Math.max(a, b);
    const lse = max + Math.log(Math.exp(a - max) + Math.exp(b - max));
    logSoft[2 * i] = a - lse;
    logSoft[2 * i + 1] = b - lse;
    soft[2 * i] = Math.exp(a - lse);
    soft[2 * i + 1] = Math.exp(b - lse);
  }
  return { soft, logSoft };
}

/** Per-unit mean and standard deviation of row-major activations, for the hint target. */
function standardise(values: Float32Array, width: number): Float32Array {
  const n = values.length / width;
  const mean = new Float64Array(width);
  const square = new Float64Array(width);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < width; j++) {
      const value = values[i * width + j];
      mean[j] += value;
      square[j] += value * value;
    }
  }
  const out = new Float32Array(values.length);
  for (let j = 0; j < width; j++) {
    mean[j] /= n;
    const sd = Math.sqrt(Math.max(square[j] / n - mean[j] * mean[j], 0));
    square[j] = sd > 1e-6 ? sd : 1;
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < width; j++) {
      out[i * width + j] = (values[i * width + j] - mean[j]) / square[j];
    }
  }
  return out;
}

/** Hidden widths of an MLP built by buildMlp: its Dense layers but the output. */
function hiddenWidthsOf(model: tfjs.LayersModel): number[] {
  return model.layers
    .filter((layer) => layer.getClassName() === 'Dense' && layer.name !== 'logits')
    .map((layer) => (layer.getConfig() as { units: number }).units);
}

function hashArrays(settings: unknown, arrays: ArrayBufferView[]): string {
  const hash = createHash('sha256').update(JSON.stringify(settings));
  for (const array of arrays) {
    hash.update(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  }
  return hash.digest('hex');
}

/**
 * Trains a student MLP with Adam. With `teacher`, each step takes a batch of transfer rows
 * and a batch of own rows and minimises
 * `alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(own rows) [+ beta · hint]`,
 * both halves in one forward pass; an epoch is one pass over the transfer set. Without
 * `teacher`, it minimises cross-entropy on the own rows alone. Rows stay in JavaScript
 * arrays and go to the engine one batch at a time, so the engine's memory does not grow
 * with the number of rows. The same options and seed give the same student on the same
 * engine, also across a crash and a resume from `checkpointDir`.
 *
 * @throws MODEL_SHAPE_MISMATCH, DATA_SINGLE_CLASS, DATA_TOO_FEW_ROWS, REQUEST_INVALID for bad
 *   inputs; TRAINING_DIVERGED when an epoch's loss is not finite.
 */
export async function trainStudent(
  engine: Engine,
  options: TrainStudentOptions,
): Promise<TrainedStudent> {
  checkOptions(options);
  options.signal?.throwIfAborted();
  const { tf } = engine;
  const { inputDim, own, teacher, seed, validation } = options;
  const batchSize = options.batchSize ?? STUDENT_DEFAULTS.batchSize;
  const learningRate = options.learningRate ?? STUDENT_DEFAULTS.learningRate;
  const logger = options.logger ?? silentLogger();
  const classWeights = resolveClassWeights(options.classWeights, own.y);
  const temperature = teacher?.temperature ?? STUDENT_DEFAULTS.temperature;
  const alpha = teacher?.alpha ?? STUDENT_DEFAULTS.alpha;
  const hint = teacher?.hint;
  const hidden = options.init ? hiddenWidthsOf(options.init) : options.hidden;
  const hintLayer = hint ? (hint.studentLayer ?? hidden.length) : 0;
  const hintWeight = hint ? (hint.weight ?? STUDENT_DEFAULTS.hintWeight) : 0;
  if (options.init && options.init.inputs[0].shape[1] !== inputDim) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'fine-tuned model',
      expected: `${inputDim} inputs`,
      actual: `${options.init.inputs[0].shape[1]} inputs`,
    });
  }

  const started = performance.now();
  const model = buildMlp(tf, { inputDim, hidden, seed: deriveSeed(seed, 'student-init') });
  if (options.init) model.setWeights(options.init.getWeights());
  const rng = createRng(deriveSeed(seed, 'student-shuffle'));
  let trainer: FlatMlpTrainer;
  try {
    trainer = new FlatMlpTrainer(tf, model, {
      learningRate,
      loss: {
        alpha: teacher ? alpha : 0,
        temperature,
        divergence: teacher?.divergence,
        hintWeight,
      },
      ...(hint ? { hint: { studentLayer: hintLayer, teacherWidth: hint.width, seed } } : {}),
    });
  } catch (err) {
    model.dispose();
    throw err;
  }
  const maybeYield = createYielder();

  // Distilling, the epoch walks the transfer set and own rows come cyclically; without a
  // teacher the epoch walks the own rows and there is no second half to the batch.
  const nMain = teacher ? teacher.logits.length / 2 : own.y.length;
  const mainX = teacher ? teacher.x : own.x;
  const mainOrder = permutation(rng, nMain);
  const budget = teacher ? STUDENT_DEFAULTS.distilSteps : STUDENT_DEFAULTS.ownSteps;
  const batches = Math.ceil(nMain / batchSize);
  const epochs = options.epochs ?? Math.ceil(budget / batches);
  const ownBatch = teacher
    ? alpha === 1
      ? 0
      : Math.min(options.ownBatchSize ?? batchSize, own.y.length)
    : 0;
  const sampler = createCyclicSampler(rng, own.y.length);
  const ownIndices = new Uint32Array(ownBatch);
  const soft = teacher ? softTargetsOf(teacher.logits, temperature) : undefined;
  const hintTargets = hint ? standardise(hint.values, hint.width) : undefined;
  const ownRowsPerStep = teacher ? ownBatch : batchSize;
  const batch: FlatBatch = {
    x: new Float32Array((batchSize + ownBatch) * inputDim),
    transferRows: 0,
    ownRows: 0,
    ownTargets: new Float32Array(ownRowsPerStep * 2),
    ownWeights: new Float32Array(ownRowsPerStep),
    ...(soft
      ? { soft: new Float32Array(batchSize * 2), logSoft: new Float32Array(batchSize * 2) }
      : {}),
    ...(hint ? { hint: new Float32Array(batchSize * hint.width) } : {}),
  };
  // Labels of a batch's own rows as weighted one-hot targets (class weight / batch sum).
  const fillOwnTargets = (rows: ArrayLike<number>, count: number) => {
    let sum = 0;
    for (let k = 0; k < count; k++) sum += classWeights ? classWeights[own.y[rows[k]]] : 1;
    for (let k = 0; k < count; k++) {
      const label = own.y[rows[k]];
      const w = (classWeights ? classWeights[label] : 1) / sum;
      batch.ownWeights![k] = w;
      batch.ownTargets![2 * k] = label === 0 ? w : 0;
      batch.ownTargets![2 * k + 1] = label === 1 ? w : 0;
    }
  };

  const fingerprint = options.checkpointDir
    ? hashArrays(
        {
          inputDim,
          hidden,
          batchSize,
          ownBatch,
          learningRate,
          classWeights,
          temperature,
          alpha,
          divergence: teacher?.divergence ?? 'forward',
          hintLayer,
          hintWeight,
          epochs,
          patience: options.patience ?? null,
          seed,
          distilled: teacher !== undefined,
        },
        [
          own.x,
          own.y,
          ...(teacher ? [teacher.x, teacher.logits] : []),
          ...(hint ? [hint.values] : []),
          ...(validation ? [validation.x, validation.y] : []),
          ...(options.init ? options.init.getWeights().map((w) => w.dataSync()) : []),
        ],
      )
    : '';

  let history: StudentEpoch[] = [];
  let best: { epoch: number; auc: number; theta?: Float32Array } = { epoch: 0, auc: -1 };
  let steps = 0;
  let firstEpoch = 1;
  let elapsedBefore = 0;
  let resumedFromEpoch: number | undefined;
  const saved = options.checkpointDir ? readCheckpoint(options.checkpointDir) : undefined;
  if (saved && saved.fingerprint !== fingerprint) {
    logger.warn(
      { checkpointDir: options.checkpointDir, epoch: saved.epoch },
      'checkpoint is from a run with other options or data; starting afresh',
    );
  } else if (saved) {
    trainer.setState(saved.trainer);
    rng.setState(saved.rng);
    mainOrder.set(saved.mainOrder);
    sampler.restore({ order: saved.ownOrder, cursor: saved.ownCursor });
    history = saved.history;
    best = { ...saved.best, ...(saved.bestTheta ? { theta: saved.bestTheta } : {}) };
    steps = saved.steps;
    firstEpoch = saved.epoch + 1;
    elapsedBefore = saved.elapsedMs;
    resumedFromEpoch = saved.epoch;
    logger.info(
      { checkpointDir: options.checkpointDir, epoch: saved.epoch },
      'student training resumed',
    );
  }

  let rowsSeen = 0;
  let trainingMs = elapsedBefore;
  let lastProgress = performance.now();
  // Running sum of the epoch's losses, read once per epoch (and for progress) to avoid a
  // sync every step.
  let total: tfjs.Tensor | undefined;
  const stopped = () =>
    options.patience !== undefined &&
    history.length > 0 &&
    history[history.length - 1].epoch - best.epoch >= options.patience;
  try {
    for (let epoch = firstEpoch; epoch <= epochs && !stopped(); epoch++) {
      const epochStarted = performance.now();
      rng.shuffle(mainOrder);
      total = tf.scalar(0);
      let stepsThisEpoch = 0;
      for (let start = 0; start < nMain; start += batchSize) {
        const rows = Math.min(batchSize, nMain - start);
        gatherRows(mainX, inputDim, mainOrder, start, rows, batch.x);
        if (teacher && soft) {
          const picked = sampler.take(ownBatch, ownIndices);
          gatherRows(own.x, inputDim, picked, 0, ownBatch, batch.x.subarray(rows * inputDim));
          fillOwnTargets(picked, ownBatch);
          gatherRows(soft.soft, 2, mainOrder, start, rows, batch.soft!);
          gatherRows(soft.logSoft, 2, mainOrder, start, rows, batch.logSoft!);
          if (hint && hintTargets)
            gatherRows(hintTargets, hint.width, mainOrder, start, rows, batch.hint!);
          batch.transferRows = rows;
          batch.ownRows = ownBatch;
        } else {
          fillOwnTargets(mainOrder.subarray(start, start + rows), rows);
          batch.transferRows = 0;
          batch.ownRows = rows;
        }

        const cost = trainer.step(batch);
        const next: tfjs.Tensor = tf.add(total as tfjs.Tensor, cost);
        cost.dispose();
        (total as tfjs.Tensor).dispose();
        total = next;
        steps++;
        stepsThisEpoch++;
        rowsSeen += batch.transferRows + batch.ownRows;
        if (
          options.onProgress &&
          performance.now() - lastProgress >=
            (options.progressIntervalMs ?? STUDENT_DEFAULTS.progressIntervalMs)
        ) {
          lastProgress = performance.now();
          const ms = trainingMs + (lastProgress - epochStarted);
          options.onProgress({
            phase: 'batch',
            epoch,
            epochs,
            batch: stepsThisEpoch,
            batches,
            loss: next.dataSync()[0] / stepsThisEpoch,
            ...(history.at(-1)?.valAuc !== undefined ? { valAuc: history.at(-1)!.valAuc } : {}),
            samplesPerSecond: ms > 0 ? (rowsSeen * 1000) / ms : 0,
            steps,
          });
        }
        await maybeYield();
        options.signal?.throwIfAborted();
      }
      const loss = (total as tfjs.Tensor).dataSync()[0] / stepsThisEpoch;
      (total as tfjs.Tensor).dispose();
      total = undefined;
      trainingMs += performance.now() - epochStarted;
      if (!Number.isFinite(loss)) throw fail('TRAINING_DIVERGED', { epoch, loss });

      const record: StudentEpoch = { epoch, loss };
      if (validation) {
        trainer.writeTo(model);
        const scores = predictPositive(engine, model, validation.x, validation.y.length);
        record.valAuc = rocAuc(scores, validation.y);
        if (options.patience !== undefined && record.valAuc > best.auc) {
          best = { epoch, auc: record.valAuc, theta: trainer.getState().theta };
        }
      }
      history.push(record);
      logger.debug({ ...record }, 'student epoch');
      options.onProgress?.({
        phase: 'epoch',
        epoch,
        epochs,
        batch: stepsThisEpoch,
        batches,
        loss,
        ...(record.valAuc !== undefined ? { valAuc: record.valAuc } : {}),
        samplesPerSecond:
          trainingMs > 0 ? (rowsSeen * 1000) / (trainingMs - elapsedBefore || 1) : 0,
        steps,
      });
      if (options.checkpointDir) {
        const ownState = sampler.state();
        const checkpoint: StudentCheckpoint = {
          fingerprint,
          epoch,
          steps,
          history,
          rng: rng.getState(),
          ownCursor: ownState.cursor,
          best: { epoch: best.epoch, auc: best.auc },
          trainer: trainer.getState(),
          ...(best.theta ? { bestTheta: best.theta } : {}),
          mainOrder,
          ownOrder: ownState.order,
          elapsedMs: Math.round(trainingMs),
        };
        writeCheckpoint(options.checkpointDir, checkpoint);
      }
      await new Promise(setImmediate);
    }
    if (best.theta) trainer.setParameters(best.theta);
    trainer.writeTo(model);
    if (options.checkpointDir && !options.keepCheckpoint) clearCheckpoint(options.checkpointDir);
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    total?.dispose();
    trainer.dispose();
  }

  const durationMs = Math.round(performance.now() - started);
  const samplesPerSecond =
    trainingMs > elapsedBefore ? (rowsSeen * 1000) / (trainingMs - elapsedBefore) : 0;
  logger.info(
    {
      distilled: teacher !== undefined,
      hint: hint !== undefined,
      epochsRun: history.length,
      steps,
      durationMs,
      samplesPerSecond: Math.round(samplesPerSecond),
      ...(resumedFromEpoch !== undefined ? { resumedFromEpoch } : {}),
    },
    'student trained',
  );
  return {
    model,
    history,
    steps,
    durationMs,
    samplesPerSecond,
    ...(resumedFromEpoch !== undefined ? { resumedFromEpoch } : {}),
  };
}
