import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import type { Engine } from './engine.js';
import { crossEntropy, distillationLoss, kdLoss } from './kd-loss.js';
import { rocAuc } from './metrics.js';
import { applyLayers, buildMlp, createYielder, gatherRows, trainableVariables } from './mlp.js';
import { predictPositive } from './predict.js';
import { createRng, deriveSeed, permutation, type Rng } from './random.js';
import { checkLabelledMatrix } from './teacher.js';

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
}

/** One epoch of a student's history. */
export interface StudentEpoch {
  epoch: number;
  /** Mean training loss over the epoch's steps. */
  loss: number;
  valAuc?: number;
}

/** Result of {@link trainStudent}. */
export interface TrainedStudent {
  model: tfjs.LayersModel;
  history: StudentEpoch[];
  /** Optimiser steps taken. */
  steps: number;
  durationMs: number;
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
  const order = permutation(rng, n);
  let cursor = 0;
  return function take(count: number, out: Uint32Array): Uint32Array {
    for (let k = 0; k < count; k++) {
      if (cursor === n) {
        rng.shuffle(order);
        cursor = 0;
      }
      out[k] = order[cursor++];
    }
    return out.subarray(0, count);
  };
}

/**
 * Trains a student MLP with Adam in a custom loop. With `teacher`, each step takes a batch
 * of transfer rows and a batch of own rows and minimises
 * `alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(own rows)`, both halves in
 * one forward pass; an epoch is one pass over the transfer set. Without `teacher`, it
 * minimises cross-entropy on the own rows alone. Tensors are freed every step; the same
 * options and seed give the same student on the same engine.
 *
 * @throws MODEL_SHAPE_MISMATCH, DATA_SINGLE_CLASS, DATA_TOO_FEW_ROWS, REQUEST_INVALID for bad
 *   inputs; TRAINING_DIVERGED when an epoch's loss is not finite.
 */
export async function trainStudent(
  engine: Engine,
  options: TrainStudentOptions,
): Promise<TrainedStudent> {
  checkOptions(options);
  const { tf } = engine;
  const { inputDim, own, teacher, seed, validation } = options;
  const batchSize = options.batchSize ?? STUDENT_DEFAULTS.batchSize;
  const learningRate = options.learningRate ?? STUDENT_DEFAULTS.learningRate;
  const logger = options.logger ?? silentLogger();
  const classWeights = resolveClassWeights(options.classWeights, own.y);
  const temperature = teacher?.temperature ?? STUDENT_DEFAULTS.temperature;
  const alpha = teacher?.alpha ?? STUDENT_DEFAULTS.alpha;

  const started = performance.now();
  const model = buildMlp(tf, {
    inputDim,
    hidden: options.hidden,
    seed: deriveSeed(seed, 'student-init'),
  });
  const rng = createRng(deriveSeed(seed, 'student-shuffle'));
  const optimizer = tf.train.adam(learningRate);
  const variables = trainableVariables(model);
  const maybeYield = createYielder();

  // Distilling, the epoch walks the transfer set and own rows come cyclically; without a
  // teacher the epoch walks the own rows and there is no second half to the batch.
  const nMain = teacher ? teacher.logits.length / 2 : own.y.length;
  const mainX = teacher ? teacher.x : own.x;
  const mainOrder = permutation(rng, nMain);
  const budget = teacher ? STUDENT_DEFAULTS.distilSteps : STUDENT_DEFAULTS.ownSteps;
  const epochs = options.epochs ?? Math.ceil(budget / Math.ceil(nMain / batchSize));
  const ownBatch = teacher ? Math.min(options.ownBatchSize ?? batchSize, own.y.length) : 0;
  const takeOwn = createCyclicSampler(rng, own.y.length);
  const ownIndices = new Uint32Array(ownBatch);
  const xBuffer = new Float32Array((batchSize + ownBatch) * inputDim);
  const yBuffer = new Int32Array(Math.max(batchSize, ownBatch));
  const teacherBuffer = new Float32Array(batchSize * 2);

  const history: StudentEpoch[] = [];
  let best: { epoch: number; auc: number; weights?: tfjs.Tensor[] } = { epoch: 0, auc: -1 };
  let steps = 0;
  // Running sum of the epoch's losses, read once per epoch to avoid a sync every step.
  let total: tfjs.Tensor | undefined;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      rng.shuffle(mainOrder);
      total = tf.scalar(0);
      let stepsThisEpoch = 0;
      for (let start = 0; start < nMain; start += batchSize) {
        const rows = Math.min(batchSize, nMain - start);
        gatherRows(mainX, inputDim, mainOrder, start, rows, xBuffer);
        let xs: Float32Array;
        if (teacher) {
          const picked = takeOwn(ownBatch, ownIndices);
          const ownPart = xBuffer.subarray(rows * inputDim);
          gatherRows(own.x, inputDim, picked, 0, ownBatch, ownPart);
          for (let k = 0; k < ownBatch; k++) yBuffer[k] = own.y[picked[k]];
          for (let k = 0; k < rows; k++) {
            const row = mainOrder[start + k];
            teacherBuffer[2 * k] = teacher.logits[2 * row];
            teacherBuffer[2 * k + 1] = teacher.logits[2 * row + 1];
          }
          xs = xBuffer.subarray(0, (rows + ownBatch) * inputDim);
        } else {
          for (let k = 0; k < rows; k++) yBuffer[k] = own.y[mainOrder[start + k]];
          xs = xBuffer.subarray(0, rows * inputDim);
        }

        const next = tf.tidy(() => {
          const xb = tf.tensor2d(xs, [xs.length / inputDim, inputDim]);
          const labelCount = teacher ? ownBatch : rows;
          const yb = tf.tensor1d(yBuffer.subarray(0, labelCount), 'int32');
          const tb = teacher ? tf.tensor2d(teacherBuffer.subarray(0, rows * 2), [rows, 2]) : null;
          const cost = optimizer.minimize(
            () => {
              const logits = applyLayers(tf, model, xb, { training: true });
              if (!teacher || !tb) return crossEntropy(tf, logits, yb, classWeights);
              // alpha = 1 with no own rows: pure distillation, and CE of nothing is NaN.
              if (ownBatch === 0) return kdLoss(tf, logits, tb, temperature);
              return distillationLoss(tf, {
                studentTransferLogits: tf.slice(logits, [0, 0], [rows, 2]),
                teacherTransferLogits: tb,
                studentOwnLogits: tf.slice(logits, [rows, 0], [ownBatch, 2]),
                ownLabels: yb,
                T: temperature,
                alpha,
                classWeights,
              });
            },
            true,
            variables,
          ) as tfjs.Scalar;
          return tf.add(total as tfjs.Tensor, cost);
        });
        total?.dispose();
        total = next;
        steps++;
        stepsThisEpoch++;
        await maybeYield();
      }
      const loss = total.dataSync()[0] / stepsThisEpoch;
      total.dispose();
      if (!Number.isFinite(loss)) throw fail('TRAINING_DIVERGED', { epoch, loss });

      const record: StudentEpoch = { epoch, loss };
      if (validation) {
        const scores = predictPositive(engine, model, validation.x, validation.y.length);
        record.valAuc = rocAuc(scores, validation.y);
        if (options.patience !== undefined && record.valAuc > best.auc) {
          best.weights?.forEach((w) => w.dispose());
          best = { epoch, auc: record.valAuc, weights: model.getWeights().map((w) => w.clone()) };
        }
      }
      history.push(record);
      logger.debug({ ...record }, 'student epoch');
      if (options.patience !== undefined && epoch - best.epoch >= options.patience) break;
      await new Promise(setImmediate);
    }
    if (best.weights) model.setWeights(best.weights);
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    total?.dispose();
    best.weights?.forEach((w) => w.dispose());
    optimizer.dispose();
  }

  const durationMs = Math.round(performance.now() - started);
  logger.info(
    { distilled: teacher !== undefined, epochsRun: history.length, steps, durationMs },
    'student trained',
  );
  return { model, history, steps, durationMs };
}
