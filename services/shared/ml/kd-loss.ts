import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import type { Tf } from './engine.js';

type Tensor = tfjs.Tensor;
type Scalar = tfjs.Scalar;

function checkTemperature(T: number): void {
  if (!(Number.isFinite(T) && T > 0)) {
    throw fail('REQUEST_INVALID', { detail: `temperature must be a positive number, got ${T}` });
  }
}

/**
 * Row-wise log-softmax of `logits / T` for a `[batch, classes]` tensor. Stable for any
 * finite logits: tf.logSoftmax subtracts the row maximum before exponentiating, so
 * `[60, -60]` at T = 1 gives `[0, -120]`, not NaN.
 */
export function logSoftmaxT(tf: Tf, logits: Tensor, T: number): Tensor {
  checkTemperature(T);
  return tf.tidy(() => tf.logSoftmax(T === 1 ? logits : tf.div(logits, T)));
}

/** Softened teacher probabilities, `softmax(teacherLogits / T)` row-wise. */
export function softTargets(tf: Tf, teacherLogits: Tensor, T: number): Tensor {
  return tf.tidy(() => tf.exp(logSoftmaxT(tf, teacherLogits, T)));
}

/**
 * Knowledge-distillation loss (Hinton et al., 2015): `T² · mean over the batch of
 * KL(softmax(teacher / T) ‖ softmax(student / T))`, a scalar. The T² factor keeps the
 * gradient's scale comparable to cross-entropy's as T changes. Teacher logits are
 * constants here; the result is differentiable with respect to the student's.
 */
export function kdLoss(tf: Tf, studentLogits: Tensor, teacherLogits: Tensor, T: number): Scalar {
  return tf.tidy((): Scalar => {
    const teacherLog = logSoftmaxT(tf, teacherLogits, T);
    const studentLog = logSoftmaxT(tf, studentLogits, T);
    // p·(log p − log q) from log-probabilities: a teacher probability that underflows to 0
    // still has a finite log, so the term is 0, never 0·(−Infinity).
    const perRow = tf.sum(tf.mul(tf.exp(teacherLog), tf.sub(teacherLog, studentLog)), 1);
    return tf.mul(tf.mean(perRow), T * T) as Scalar;
  });
}

/**
 * Reverse knowledge-distillation loss: `T² · mean over the batch of
 * KL(softmax(student / T) ‖ softmax(teacher / T))`. Mode-seeking where the forward loss is
 * mean-seeking: the student is pushed to put its mass where the teacher is confident rather
 * than to cover every class the teacher gives some probability. Computed from
 * log-probabilities, so it is finite for any finite logits.
 */
export function reverseKdLoss(
  tf: Tf,
  studentLogits: Tensor,
  teacherLogits: Tensor,
  T: number,
): Scalar {
  return tf.tidy((): Scalar => {
    const teacherLog = logSoftmaxT(tf, teacherLogits, T);
    const studentLog = logSoftmaxT(tf, studentLogits, T);
    const perRow = tf.sum(tf.mul(tf.exp(studentLog), tf.sub(studentLog, teacherLog)), 1);
    return tf.mul(tf.mean(perRow), T * T) as Scalar;
  });
}

/** Which way the soft-target divergence runs; `forward` is Hinton et al.'s. */
export type Divergence = 'forward' | 'reverse';

/** The learned linear map of a hint loss, from a student layer's width to a teacher's. */
export interface HintProjection {
  /** `[studentWidth, teacherWidth]`. */
  kernel: Tensor;
  /** `[teacherWidth]`. */
  bias: Tensor;
}

/**
 * Hint loss (FitNets, Romero et al., 2015): the mean squared difference, over the batch and
 * the teacher layer's width, between a teacher layer's activations and a student layer's
 * activations mapped to that width by a learned linear projection:
 * `mean((h_s · W + b − h_t)²)`. Differentiable with respect to the student's activations
 * and the projection; the teacher's activations are constants.
 *
 * @throws MODEL_SHAPE_MISMATCH when the widths do not fit the projection.
 */
export function hintLoss(
  tf: Tf,
  studentHidden: Tensor,
  teacherHidden: Tensor,
  projection: HintProjection,
): Scalar {
  const [studentWidth, teacherWidth] = projection.kernel.shape;
  if (studentHidden.shape[1] !== studentWidth || teacherHidden.shape[1] !== teacherWidth) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'hint loss activations',
      expected: `student [*, ${studentWidth}] and teacher [*, ${teacherWidth}]`,
      actual: `student [${studentHidden.shape}] and teacher [${teacherHidden.shape}]`,
    });
  }
  return tf.tidy((): Scalar => {
    const mapped = tf.add(
      tf.matMul(studentHidden as tfjs.Tensor2D, projection.kernel as tfjs.Tensor2D),
      projection.bias,
    );
    return tf.mean(tf.square(tf.sub(mapped, teacherHidden))) as Scalar;
  });
}

/**
 * Mean cross-entropy of logits against labels, given as class indices (`[batch]`, int32)
 * or as one-hot / soft rows (`[batch, classes]`). With `classWeights`, row i counts
 * `w[y_i]` times and the sum is divided by the sum of those weights (PyTorch's weighted
 * mean), so weights change the balance between classes but not the loss's scale.
 */
export function crossEntropy(
  tf: Tf,
  logits: Tensor,
  labels: Tensor,
  classWeights?: readonly number[],
): Scalar {
  return tf.tidy((): Scalar => {
    const classes = logits.shape[1] as number;
    const targets = labels.rank === 1 ? tf.oneHot(tf.cast(labels, 'int32'), classes) : labels;
    const perRow = tf.neg(tf.sum(tf.mul(tf.cast(targets, 'float32'), tf.logSoftmax(logits)), 1));
    if (classWeights === undefined) return tf.mean(perRow) as Scalar;
    if (classWeights.length !== classes) {
      throw fail('MODEL_SHAPE_MISMATCH', {
        what: 'classWeights',
        expected: `[${classes}]`,
        actual: `[${classWeights.length}]`,
      });
    }
    const rowWeights = tf.sum(
      tf.mul(tf.cast(targets, 'float32'), tf.tensor1d([...classWeights])),
      1,
    );
    return tf.div(tf.sum(tf.mul(perRow, rowWeights)), tf.sum(rowWeights)) as Scalar;
  });
}

/** Inputs of {@link distillationLoss}. */
export interface DistillationLossInputs {
  /** Student logits on a transfer-set batch. */
  studentTransferLogits: Tensor;
  /** Teacher logits on the same transfer rows. */
  teacherTransferLogits: Tensor;
  /** Student logits on a batch of the participant's own labelled rows. */
  studentOwnLogits: Tensor;
  /** Labels of those own rows (indices or one-hot). */
  ownLabels: Tensor;
  /** Distillation temperature, > 0. */
  T: number;
  /** Weight of the distillation term in [0, 1]; 1 − alpha goes to cross-entropy. */
  alpha: number;
  /** Class weights of the cross-entropy term; default none. */
  classWeights?: readonly number[];
  /** Direction of the soft-target KL divergence; default `forward`. */
  divergence?: Divergence;
}

/**
 * The student's training loss: `alpha · kdLoss(transfer) + (1 − alpha) · CE(own rows)`
 * (with {@link reverseKdLoss} in place of kdLoss when `divergence` is `reverse`).
 *
 * @throws REQUEST_INVALID for alpha outside [0, 1] or a non-positive temperature.
 */
export function distillationLoss(tf: Tf, inputs: DistillationLossInputs): Scalar {
  const { alpha, T } = inputs;
  if (!(alpha >= 0 && alpha <= 1)) {
    throw fail('REQUEST_INVALID', { detail: `alpha must be in [0, 1], got ${alpha}` });
  }
  return tf.tidy((): Scalar => {
    const soft = inputs.divergence === 'reverse' ? reverseKdLoss : kdLoss;
    const kd = soft(tf, inputs.studentTransferLogits, inputs.teacherTransferLogits, T);
    const ce = crossEntropy(tf, inputs.studentOwnLogits, inputs.ownLabels, inputs.classWeights);
    return tf.add(tf.mul(kd, alpha), tf.mul(ce, 1 - alpha)) as Scalar;
  });
}
