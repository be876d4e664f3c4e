import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import type { Engine } from './engine.js';
import { checkMatrix, PREDICT_BATCH_SIZE } from './predict.js';

/** Options of {@link computeTeacherStates}. */
export interface TeacherStatesOptions {
  /** Temperature of the published probabilities, > 0. */
  temperature: number;
  /** Layers whose activations to publish, e.g. `['hidden_2']`; may be empty. */
  hiddenLayers: readonly string[];
}

/** Activations of one layer on every row, row-major `n × width`. */
export interface LayerActivations {
  width: number;
  values: Float32Array;
}

/** What a teacher publishes about a transfer set, row-aligned with its inputs. */
export interface TeacherStates {
  /** Row-major `n × 2`. */
  logits: Float32Array;
  /** Row-major `n × 2`, `softmax(logits / temperature)`. */
  probabilities: Float32Array;
  /** Per requested layer, its output (after its activation). */
  hidden: Record<string, LayerActivations>;
}

/**
 * Runs the teacher on `n` rows of row-major `x` in inference mode and returns its logits,
 * its probabilities at `temperature`, and the activations of the named layers. Works in
 * batches and disposes every intermediate tensor.
 *
 * @throws MODEL_LAYER_UNKNOWN for a layer name the model lacks; MODEL_SHAPE_MISMATCH
 *   when `x` is not `n` rows of the model's input width; REQUEST_INVALID for a bad
 *   temperature.
 */
export function computeTeacherStates(
  engine: Engine,
  model: tfjs.LayersModel,
  x: Float32Array,
  n: number,
  options: TeacherStatesOptions,
): TeacherStates {
  const { tf } = engine;
  const { temperature, hiddenLayers } = options;
  if (!(Number.isFinite(temperature) && temperature > 0)) {
    throw fail('REQUEST_INVALID', { detail: `temperature must be positive, got ${temperature}` });
  }
  const width = checkMatrix(model, x, n, 'teacher states input');
  const known = model.layers.map((layer) => layer.name);
  for (const layer of hiddenLayers) {
    if (!known.includes(layer))
      throw fail('MODEL_LAYER_UNKNOWN', { layer, known: known.join(', ') });
  }

  // One graph with every wanted output shares the forward pass. It reuses the teacher's
  // layers and owns no weights, so it is not disposed (that would free the teacher's).
  const layerOutputs = hiddenLayers.map(
    (name) => model.getLayer(name).output as tfjs.SymbolicTensor,
  );
  const probe = tf.model({ inputs: model.inputs, outputs: [model.outputs[0], ...layerOutputs] });
  const widths = layerOutputs.map((output) => output.shape[output.shape.length - 1] as number);

  const logits = new Float32Array(n * 2);
  const probabilities = new Float32Array(n * 2);
  const hidden: Record<string, LayerActivations> = {};
  hiddenLayers.forEach((name, i) => {
    hidden[name] = { width: widths[i], values: new Float32Array(n * widths[i]) };
  });

  for (let start = 0; start < n; start += PREDICT_BATCH_SIZE) {
    const rows = Math.min(PREDICT_BATCH_SIZE, n - start);
    tf.tidy(() => {
      const batch = tf.tensor2d(x.subarray(start * width, (start + rows) * width), [rows, width]);
      const result = probe.predict(batch);
      // A model with a single output returns a tensor, not a list of one.
      const [out, ...activations] = Array.isArray(result) ? result : [result];
      logits.set(out.dataSync(), start * 2);
      probabilities.set(tf.softmax(tf.div(out, temperature)).dataSync(), start * 2);
      hiddenLayers.forEach((name, i) => {
        hidden[name].values.set(activations[i].dataSync(), start * widths[i]);
      });
    });
  }
  return { logits, probabilities, hidden };
}
