import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import type { Tf } from './engine.js';
import { deriveSeed } from './random.js';

/** Options of {@link buildMlp}. */
export interface MlpOptions {
  /** Number of input features. */
  inputDim: number;
  /** Width of each ReLU hidden layer, input side first; `[]` gives a logistic model. */
  hidden: readonly number[];
  /** Number of classes; only binary models are built. Default 2. */
  outputs?: 2;
  /** Dropout rate after each hidden layer, in [0, 1); default 0 (no dropout layers). */
  dropout?: number;
  /** Seeds the weight initialisation. */
  seed: number;
}

function checkPositiveInteger(value: number, path: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw fail('REQUEST_INVALID', { detail: `${path} must be a positive integer, got ${value}` });
  }
}

/**
 * Builds a multilayer perceptron: dense ReLU layers named `hidden_1`, `hidden_2`, …, each
 * followed by a `dropout_<i>` layer when `dropout` is set, and a linear output layer named
 * `logits`. The model outputs logits (no softmax), so that distillation can soften them.
 * Kernels are Glorot-uniform from seeds derived from `seed`; biases start at zero.
 *
 * @throws REQUEST_INVALID for a non-positive width or a dropout rate outside [0, 1).
 */
export function buildMlp(tf: Tf, options: MlpOptions): tfjs.Sequential {
  const { inputDim, hidden, seed } = options;
  const outputs = options.outputs ?? 2;
  const dropout = options.dropout ?? 0;
  checkPositiveInteger(inputDim, 'inputDim');
  hidden.forEach((units, i) => checkPositiveInteger(units, `hidden[${i}]`));
  if (!(dropout >= 0 && dropout < 1)) {
    throw fail('REQUEST_INVALID', { detail: `dropout must be in [0, 1), got ${dropout}` });
  }

  const model = tf.sequential();
  const kernel = (name: string) => tf.initializers.glorotUniform({ seed: deriveSeed(seed, name) });
  hidden.forEach((units, i) => {
    const name = `hidden_${i + 1}`;
    model.add(
      tf.layers.dense({
        units,
        activation: 'relu',
        name,
        kernelInitializer: kernel(name),
        ...(i === 0 ? { inputShape: [inputDim] } : {}),
      }),
    );
    if (dropout > 0) model.add(tf.layers.dropout({ rate: dropout, name: `dropout_${i + 1}` }));
  });
  model.add(
    tf.layers.dense({
      units: outputs,
      name: 'logits',
      kernelInitializer: kernel('logits'),
      ...(hidden.length === 0 ? { inputShape: [inputDim] } : {}),
    }),
  );
  return model;
}

/** Number of weights of a model (kernels and biases). */
export function countParams(model: tfjs.LayersModel): number {
  return model.countParams();
}

/** Width of a model's input, from its input layer. */
export function inputWidth(model: tfjs.LayersModel): number {
  const width = model.inputs[0].shape[1];
  if (typeof width !== 'number') {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'model input',
      expected: '[null, d]',
      actual: String(model.inputs[0].shape),
    });
  }
  return width;
}

type MatMul = (a: tfjs.Tensor, b: tfjs.Tensor) => tfjs.Tensor2D;
const matMulByTf = new WeakMap<Tf, MatMul>();

/**
 * `a · b` whose gradient uses explicit transposes. TensorFlow.js's own gradient calls
 * matMul with transpose flags, which the WebAssembly backend runs 6-12x slower than a
 * transpose followed by a plain matMul (128×256 operands: 15-24 ms against 2-2.6 ms). With
 * the stock gradient a 119-256-256-2 teacher spent 90% of each step in those kernels and
 * trained 3.5x slower. Native engines pay one extra transpose here, a small cost.
 */
function fastMatMul(tf: Tf): MatMul {
  let matMul = matMulByTf.get(tf);
  if (matMul === undefined) {
    matMul = tf.customGrad((a, b, save) => {
      const [lhs, rhs] = [a, b] as tfjs.Tensor2D[];
      (save as tfjs.GradSaveFunc)([lhs, rhs]);
      return {
        value: tf.matMul(lhs, rhs),
        gradFunc: (dy, [savedA, savedB]) => [
          tf.matMul(dy as tfjs.Tensor2D, tf.transpose(savedB as tfjs.Tensor2D)),
          tf.matMul(tf.transpose(savedA as tfjs.Tensor2D), dy as tfjs.Tensor2D),
        ],
      };
    }) as MatMul;
    matMulByTf.set(tf, matMul);
  }
  return matMul;
}

// A dense layer computed from its variables, for the activations training needs; other
// activations return undefined and go through layer.apply.
function applyDense(tf: Tf, layer: tfjs.layers.Layer, h: tfjs.Tensor): tfjs.Tensor | undefined {
  const config = layer.getConfig() as { activation?: string; useBias?: boolean };
  const activation = config.activation ?? 'linear';
  if (activation !== 'relu' && activation !== 'linear') return undefined;
  const [kernel, bias] = layer.weights.map((weight) => weight.read());
  let out: tfjs.Tensor = fastMatMul(tf)(h, kernel);
  if (config.useBias !== false && bias !== undefined) out = tf.add(out, bias);
  return activation === 'relu' ? tf.relu(out) : out;
}

/**
 * Runs a sequential model's layers on a batch for training, with the same result as
 * `model.apply` but faster gradients for dense layers (see fastMatMul). TensorFlow.js
 * dropout layers draw the same mask on every call when given a seed, and an unseeded one
 * is not reproducible; so dropout is applied here with `tf.dropout` and a seed the caller
 * changes every step. With `training` false, dropout is skipped as at inference.
 */
export function applyLayers(
  tf: Tf,
  model: tfjs.LayersModel,
  x: tfjs.Tensor,
  options: { training: boolean; dropoutSeed?: number },
): tfjs.Tensor {
  let h = x;
  model.layers.forEach((layer, index) => {
    const kind = layer.getClassName();
    if (kind === 'Dropout') {
      const rate = (layer.getConfig() as { rate: number }).rate;
      if (options.training && rate > 0) {
        h = tf.dropout(h, rate, undefined, deriveSeed(options.dropoutSeed ?? 0, index));
      }
    } else {
      h =
        (kind === 'Dense' ? applyDense(tf, layer, h) : undefined) ??
        (layer.apply(h) as tfjs.Tensor);
    }
  });
  return h;
}

/** The trainable variables of a model, for an optimiser's explicit variable list. */
export function trainableVariables(model: tfjs.LayersModel): tfjs.Variable[] {
  return model.trainableWeights.map((weight) => weight.read() as tfjs.Variable);
}

/**
 * Copies the rows `indices[start … start+count)` of a row-major matrix of `width` columns
 * into the front of `out`, and returns that filled prefix. Training loops reuse one
 * buffer per batch shape, so a step allocates nothing on the JavaScript side.
 */
export function gatherRows(
  x: Float32Array,
  width: number,
  indices: ArrayLike<number>,
  start: number,
  count: number,
  out: Float32Array,
): Float32Array {
  for (let k = 0; k < count; k++) {
    const row = indices[start + k];
    out.set(x.subarray(row * width, (row + 1) * width), k * width);
  }
  return out.subarray(0, count * width);
}

/**
 * Returns a function that yields to the event loop when `intervalMs` have passed since it
 * last did. Training runs in the hub's process next to its gRPC server: without yields a
 * long epoch would stall every call and keep-alive for its whole duration.
 */
export function createYielder(intervalMs = 50): () => Promise<void> {
  let last = performance.now();
  return async function maybeYield() {
    if (performance.now() - last < intervalMs) return;
    await new Promise(setImmediate);
    last = performance.now();
  };
}
