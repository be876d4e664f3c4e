import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import type { Engine } from './engine.js';
import { crossEntropy } from './kd-loss.js';
import { rocAuc } from './metrics.js';
import {
  applyLayers,
  buildMlp,
  createYielder,
  gatherRows,
  inputWidth,
  trainableVariables,
} from './mlp.js';
import { predictPositive } from './predict.js';
import { createRng, deriveSeed, permutation } from './random.js';

/** Defaults of {@link trainTeacher}, as in REFERENCE-RESULTS where it sets them. */
export const TEACHER_DEFAULTS = Object.freeze({
  hidden: Object.freeze([256, 256]) as readonly number[],
  dropout: 0.3,
  epochs: 40,
  batchSize: 128,
  learningRate: 1e-3,
  // Validation AUC on a few hundred rows with a few dozen positives is noisy from epoch
  // to epoch; a short patience stops on noise, a long one wastes epochs past the peak.
  patience: 8,
});

/** Options of {@link trainTeacher}. */
export interface TrainTeacherOptions {
  /** Training rows, row-major `n × inputDim`. */
  x: Float32Array;
  /** Their labels, 1 = positive. */
  y: Uint8Array;
  inputDim: number;
  /** Validation rows for early stopping, row-major. */
  valX: Float32Array;
  valY: Uint8Array;
  /** Hidden widths of a new teacher; default `[256, 256]`. Ignored with `model`. */
  hidden?: readonly number[];
  /** Dropout after each hidden layer of a new teacher; default 0.3. Ignored with `model`. */
  dropout?: number;
  /** Most epochs to run; default 40. */
  epochs?: number;
  /** Default 128. */
  batchSize?: number;
  /** Adam step size; default 1e-3. */
  learningRate?: number;
  /** Stop after this many epochs without a better validation AUC; default 8. */
  patience?: number;
  seed: number;
  logger?: Logger;
  /** Continue training this teacher (with a fresh optimiser state) instead of a new one. */
  model?: tfjs.LayersModel;
  /**
   * Stops training at the next mini-batch once aborted: the call then rejects with the
   * signal's reason and a teacher built here is freed (a given `model` keeps the weights
   * reached so far).
   */
  signal?: AbortSignal;
}

/** One epoch of a training history. */
export interface TeacherEpoch {
  epoch: number;
  /** Mean training cross-entropy over the epoch. */
  loss: number;
  valAuc: number;
}

/** Result of {@link trainTeacher}. */
export interface TrainedTeacher {
  /** The teacher, with the weights of its best validation epoch. */
  model: tfjs.LayersModel;
  epochsRun: number;
  bestEpoch: number;
  bestValAuc: number;
  history: TeacherEpoch[];
  durationMs: number;
}

function checkPositive(value: number, path: string, integer: boolean): void {
  if (!(Number.isFinite(value) && value > 0 && (!integer || Number.isInteger(value)))) {
    const kind = integer ? 'a positive integer' : 'a positive number';
    throw fail('REQUEST_INVALID', { detail: `${path} must be ${kind}, got ${value}` });
  }
}

/**
 * Checks that `x` holds `y.length` rows of `width` features and that `y` has both classes.
 *
 * @throws MODEL_SHAPE_MISMATCH, DATA_SINGLE_CLASS.
 */
export function checkLabelledMatrix(x: Float32Array, y: Uint8Array, width: number, what: string) {
  if (x.length !== y.length * width) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what,
      expected: `${y.length} × ${width} = ${y.length * width} values`,
      actual: `${x.length} values`,
    });
  }
  let positives = 0;
  for (let i = 0; i < y.length; i++) positives += y[i] === 1 ? 1 : 0;
  if (positives === 0 || positives === y.length) throw fail('DATA_SINGLE_CLASS', { what });
}

function disposeAll(tensors: readonly tfjs.Tensor[] | undefined): void {
  for (const tensor of tensors ?? []) tensor.dispose();
}

/**
 * Trains the hub's teacher: cross-entropy with Adam on shuffled mini-batches, dropout with
 * a fresh seeded mask every step, and early stopping on validation ROC AUC; the weights of
 * the best epoch are restored at the end. Yields to the event loop during and between
 * epochs. The same inputs and seed give the same teacher on the same engine.
 *
 * @throws MODEL_SHAPE_MISMATCH, DATA_SINGLE_CLASS, REQUEST_INVALID for bad inputs;
 *   TRAINING_DIVERGED when an epoch's loss is not finite.
 */
export async function trainTeacher(
  engine: Engine,
  options: TrainTeacherOptions,
): Promise<TrainedTeacher> {
  const { tf } = engine;
  const { inputDim, x, y, valX, valY, seed } = options;
  const epochs = options.epochs ?? TEACHER_DEFAULTS.epochs;
  const batchSize = options.batchSize ?? TEACHER_DEFAULTS.batchSize;
  const learningRate = options.learningRate ?? TEACHER_DEFAULTS.learningRate;
  const patience = options.patience ?? TEACHER_DEFAULTS.patience;
  const logger = options.logger ?? silentLogger();
  checkPositive(epochs, 'epochs', true);
  checkPositive(batchSize, 'batchSize', true);
  checkPositive(learningRate, 'learningRate', false);
  checkPositive(patience, 'patience', true);
  checkLabelledMatrix(x, y, inputDim, 'teacher training rows');
  checkLabelledMatrix(valX, valY, inputDim, 'teacher validation rows');
  options.signal?.throwIfAborted();

  const started = performance.now();
  const model =
    options.model ??
    buildMlp(tf, {
      inputDim,
      hidden: options.hidden ?? TEACHER_DEFAULTS.hidden,
      dropout: options.dropout ?? TEACHER_DEFAULTS.dropout,
      seed: deriveSeed(seed, 'teacher-init'),
    });
  if (inputWidth(model) !== inputDim) {
    const actual = `${inputWidth(model)} inputs`;
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'teacher model',
      expected: `${inputDim} inputs`,
      actual,
    });
  }

  const n = y.length;
  const rng = createRng(deriveSeed(seed, 'teacher-shuffle'));
  const order = permutation(rng, n);
  const xBuffer = new Float32Array(batchSize * inputDim);
  const yBuffer = new Int32Array(batchSize);
  const optimizer = tf.train.adam(learningRate);
  const variables = trainableVariables(model);
  const maybeYield = createYielder();

  const history: TeacherEpoch[] = [];
  // A teacher trained further starts from its own score: when no new epoch beats it on the
  // validation rows, it keeps the weights it came with instead of the best of a worse run.
  let best: { epoch: number; auc: number; weights?: tfjs.Tensor[] } = options.model
    ? {
        epoch: 0,
        auc: rocAuc(predictPositive(engine, model, valX, valY.length), valY),
        weights: model.getWeights().map((w) => w.clone()),
      }
    : { epoch: 0, auc: -1 };
  let step = 0;
  // Running sum of the epoch's losses, read once per epoch to avoid a sync every step.
  let total: tfjs.Tensor | undefined;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      rng.shuffle(order);
      total = tf.scalar(0);
      for (let start = 0; start < n; start += batchSize) {
        const rows = Math.min(batchSize, n - start);
        const xs = gatherRows(x, inputDim, order, start, rows, xBuffer);
        for (let k = 0; k < rows; k++) yBuffer[k] = y[order[start + k]];
        const dropoutSeed = deriveSeed(seed, step++);

        const next = tf.tidy(() => {
          const xb = tf.tensor2d(xs, [rows, inputDim]);
          const yb = tf.tensor1d(yBuffer.subarray(0, rows), 'int32');
          const cost = optimizer.minimize(
            () => crossEntropy(tf, applyLayers(tf, model, xb, { training: true, dropoutSeed }), yb),
            true,
            variables,
          ) as tfjs.Scalar;
          return tf.add(total as tfjs.Tensor, tf.mul(cost, rows));
        });
        total?.dispose();
        total = next;
        await maybeYield();
        options.signal?.throwIfAborted();
      }
      const loss = total.dataSync()[0] / n;
      total.dispose();
      if (!Number.isFinite(loss)) throw fail('TRAINING_DIVERGED', { epoch, loss });

      const valAuc = rocAuc(predictPositive(engine, model, valX, valY.length), valY);
      history.push({ epoch, loss, valAuc });
      logger.debug({ epoch, loss, valAuc }, 'teacher epoch');

      if (valAuc > best.auc) {
        disposeAll(best.weights);
        best = { epoch, auc: valAuc, weights: model.getWeights().map((w) => w.clone()) };
      } else if (epoch - best.epoch >= patience) {
        break;
      }
      await new Promise(setImmediate);
    }
    if (best.weights) model.setWeights(best.weights);
  } catch (err) {
    // A teacher built here is the caller's only if training succeeds.
    if (options.model === undefined) model.dispose();
    throw err;
  } finally {
    total?.dispose();
    disposeAll(best.weights);
    optimizer.dispose();
  }

  const durationMs = Math.round(performance.now() - started);
  logger.info(
    { epochsRun: history.length, bestEpoch: best.epoch, bestValAuc: best.auc, durationMs },
    'teacher trained',
  );
  return {
    model,
    epochsRun: history.length,
    bestEpoch: best.epoch,
    bestValAuc: best.auc,
    history,
    durationMs,
  };
}
