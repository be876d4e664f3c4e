import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { crossEntropy } from '../../services/shared/ml/kd-loss.js';
import {
  applyLayers,
  buildMlp,
  countParams,
  gatherRows,
  trainableVariables,
} from '../../services/shared/ml/mlp.js';
import { createRng } from '../../services/shared/ml/random.js';

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: rows * cols }, () => rng.next() * 2 - 1);
}

describe('buildMlp', () => {
  it('names hidden layers hidden_1… and the linear output logits', () => {
    const model = buildMlp(engine.tf, { inputDim: 5, hidden: [8, 4], seed: 1 });
    expect(model.layers.map((l) => l.name)).toEqual(['hidden_1', 'hidden_2', 'logits']);
    const logits = model.getLayer('logits').getConfig() as { activation: string; units: number };
    expect(logits).toMatchObject({ activation: 'linear', units: 2 });
    model.dispose();
  });

  it('counts (in+1)·h weights per layer: 119-16-2 has 1,954', () => {
    const model = buildMlp(engine.tf, { inputDim: 119, hidden: [16], seed: 1 });
    expect(countParams(model)).toBe(120 * 16 + 17 * 2);
    model.dispose();
  });

  it('adds dropout layers only when a rate is given', () => {
    const model = buildMlp(engine.tf, { inputDim: 3, hidden: [4, 4], dropout: 0.3, seed: 1 });
    expect(model.layers.map((l) => l.name)).toEqual([
      'hidden_1',
      'dropout_1',
      'hidden_2',
      'dropout_2',
      'logits',
    ]);
    model.dispose();
  });

  it('initialises identical weights from the same seed and different ones from another', () => {
    const { tf } = engine;
    const weights = (seed: number) => {
      const model = buildMlp(tf, { inputDim: 4, hidden: [3], seed });
      const values = model.getWeights().map((w) => Array.from(w.dataSync()));
      model.dispose();
      return values;
    };
    expect(weights(5)).toEqual(weights(5));
    expect(weights(5)[0]).not.toEqual(weights(6)[0]);
  });

  it('builds a logistic model when there are no hidden layers', () => {
    const model = buildMlp(engine.tf, { inputDim: 3, hidden: [], seed: 0 });
    expect(countParams(model)).toBe(4 * 2);
    model.dispose();
  });

  it('rejects a non-integer width and a dropout rate of 1', () => {
    expect(() => buildMlp(engine.tf, { inputDim: 3, hidden: [2.5], seed: 0 })).toThrow(
      /hidden\[0\]/,
    );
    expect(() => buildMlp(engine.tf, { inputDim: 3, hidden: [2], dropout: 1, seed: 0 })).toThrow(
      /dropout/,
    );
  });
});

describe('applyLayers', () => {
  it('in inference mode gives what model.predict gives', () => {
    const { tf } = engine;
    const model = buildMlp(tf, { inputDim: 6, hidden: [5, 3], dropout: 0.5, seed: 2 });
    const x = tf.tensor2d(randomMatrix(4, 6, 1), [4, 6]);
    const ours = applyLayers(tf, model, x, { training: false }).dataSync();
    const theirs = (model.predict(x) as ReturnType<typeof tf.tensor2d>).dataSync();
    Array.from(ours).forEach((v, i) => expect(v).toBeCloseTo(theirs[i], 5));
    model.dispose();
  });

  it('gives the same gradients as TensorFlow.js through layer.apply', () => {
    const { tf } = engine;
    const model = buildMlp(tf, { inputDim: 6, hidden: [5], seed: 3 });
    const x = tf.tensor2d(randomMatrix(8, 6, 2), [8, 6]);
    const y = tf.tensor1d([0, 1, 1, 0, 1, 0, 0, 1], 'int32');
    const variables = trainableVariables(model);
    const ours = tf.variableGrads(
      () => crossEntropy(tf, applyLayers(tf, model, x, { training: true }), y),
      variables,
    );
    const reference = tf.variableGrads(
      () => crossEntropy(tf, model.apply(x) as ReturnType<typeof tf.tensor2d>, y),
      variables,
    );
    for (const name of Object.keys(reference.grads)) {
      const a = ours.grads[name].dataSync();
      const b = reference.grads[name].dataSync();
      Array.from(a).forEach((v, i) => expect(v).toBeCloseTo(b[i], 5));
    }
    model.dispose();
  });

  it('draws a fresh dropout mask per seed, the same mask for the same seed', () => {
    const { tf } = engine;
    const model = buildMlp(tf, { inputDim: 6, hidden: [64], dropout: 0.5, seed: 4 });
    const x = tf.tensor2d(randomMatrix(16, 6, 3), [16, 6]);
    const run = (dropoutSeed: number) =>
      Array.from(applyLayers(tf, model, x, { training: true, dropoutSeed }).dataSync());
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
    model.dispose();
  });
});

describe('gatherRows', () => {
  it('copies the chosen rows into the front of the buffer', () => {
    const x = Float32Array.from([0, 1, 10, 11, 20, 21]);
    const out = new Float32Array(6);
    expect(Array.from(gatherRows(x, 2, [2, 0, 1], 0, 2, out))).toEqual([20, 21, 0, 1]);
  });
});
