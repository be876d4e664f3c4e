import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import type { Engine } from './engine.js';
import { inputWidth } from './mlp.js';

/** Rows per inference batch: large enough to amortise per-call overhead, small in memory. */
export const PREDICT_BATCH_SIZE = 4096;

/**
 * Checks that a row-major matrix holds `n` rows of the model's input width and returns
 * that width.
 *
 * @throws MODEL_SHAPE_MISMATCH otherwise.
 */
export function checkMatrix(
  model: tfjs.LayersModel,
  x: Float32Array,
  n: number,
  what: string,
): number {
  const width = inputWidth(model);
  if (!Number.isInteger(n) || n < 0 || x.length !== n * width) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what,
      expected: `${n} × ${width} = ${n * width} values`,
      actual: `${x.length} values`,
    });
  }
  return width;
}

/**
 * Logits of a model on `n` rows of row-major `x`, as a row-major `n × 2` array. Runs in
 * batches in inference mode (no dropout) and leaves no tensors behind.
 */
export function predictLogits(
  engine: Engine,
  model: tfjs.LayersModel,
  x: Float32Array,
  n: number,
): Float32Array {
  const { tf } = engine;
  const width = checkMatrix(model, x, n, 'predict input');
  const classes = model.outputs[0].shape[1] as number;
  const out = new Float32Array(n * classes);
  for (let start = 0; start < n; start += PREDICT_BATCH_SIZE) {
    const rows = Math.min(PREDICT_BATCH_SIZE, n - start);
    const values = tf.tidy(() => {
      const batch = tf.tensor2d(x.subarray(start * width, (start + rows) * width), [rows, width]);
      return (model.predict(batch) as tfjs.Tensor).dataSync();
    });
    out.set(values, start * classes);
  }
  return out;
}

/**
 * Probability of the positive class (index 1) for `n` rows of row-major `x`: the softmax of
 * the model's logits, batched, computed in double precision from the logits.
 */
export function predictPositive(
  engine: Engine,
  model: tfjs.LayersModel,
  x: Float32Array,
  n: number,
): Float32Array {
  const classes = model.outputs[0].shape[1];
  if (classes !== 2) {
    const actual = String(model.outputs[0].shape);
    throw fail('MODEL_SHAPE_MISMATCH', { what: 'model output', expected: '[null, 2]', actual });
  }
  const logits = predictLogits(engine, model, x, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // softmax([a, b])[1] = 1 / (1 + e^(a − b)), which cannot overflow to NaN.
    out[i] = 1 / (1 + Math.exp(logits[2 * i] - logits[2 * i + 1]));
  }
  return out;
}
