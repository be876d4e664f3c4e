import { beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { buildMlp } from '../../services/shared/ml/mlp.js';
import { predictLogits, PREDICT_BATCH_SIZE } from '../../services/shared/ml/predict.js';
import { computeTeacherStates } from '../../services/shared/ml/states.js';
import { syntheticTask } from '../helpers/synthetic.js';

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

describe('computeTeacherStates', () => {
  it('gives logits, softmax(logits / T) and hidden activations that match a hand computation', () => {
    const { tf } = engine;
    const model = buildMlp(tf, { inputDim: 4, hidden: [6, 3], dropout: 0.3, seed: 7 });
    const n = PREDICT_BATCH_SIZE + 5;
    const { x } = syntheticTask(n, 4, 1);
    const before = tf.memory().numTensors;
    const states = computeTeacherStates(engine, model, x, n, {
      temperature: 4,
      hiddenLayers: ['hidden_1', 'hidden_2'],
    });
    expect(tf.memory().numTensors).toBe(before);

    expect(Array.from(states.logits)).toEqual(Array.from(predictLogits(engine, model, x, n)));
    for (const i of [0, n - 1]) {
      const [a, b] = [states.logits[2 * i] / 4, states.logits[2 * i + 1] / 4];
      const p1 = Math.exp(b) / (Math.exp(a) + Math.exp(b));
      expect(states.probabilities[2 * i + 1]).toBeCloseTo(p1, 6);
      expect(states.probabilities[2 * i] + states.probabilities[2 * i + 1]).toBeCloseTo(1, 6);
    }

    // hidden_1 = relu(x · W + b), from the layer's own weights, in double precision.
    const [kernel, bias] = model
      .getLayer('hidden_1')
      .getWeights()
      .map((w) => w.dataSync());
    expect(states.hidden.hidden_1.width).toBe(6);
    expect(states.hidden.hidden_2.width).toBe(3);
    for (const i of [3, n - 2]) {
      for (let u = 0; u < 6; u++) {
        let sum = bias[u];
        for (let d = 0; d < 4; d++) sum += x[i * 4 + d] * kernel[d * 6 + u];
        expect(states.hidden.hidden_1.values[i * 6 + u]).toBeCloseTo(Math.max(0, sum), 5);
      }
    }
    model.dispose();
  });

  it('works with no hidden layers requested', () => {
    const model = buildMlp(engine.tf, { inputDim: 2, hidden: [3], seed: 1 });
    const states = computeTeacherStates(engine, model, new Float32Array(4), 2, {
      temperature: 1,
      hiddenLayers: [],
    });
    expect(states.hidden).toEqual({});
    expect(states.logits).toHaveLength(4);
    model.dispose();
  });

  it('rejects an unknown layer with MODEL_LAYER_UNKNOWN listing the layers', () => {
    const model = buildMlp(engine.tf, { inputDim: 2, hidden: [3], seed: 1 });
    expect.assertions(2);
    try {
      computeTeacherStates(engine, model, new Float32Array(4), 2, {
        temperature: 4,
        hiddenLayers: ['hidden_9'],
      });
    } catch (err) {
      expect(hasCode(err, 'MODEL_LAYER_UNKNOWN')).toBe(true);
      expect((err as Error).message).toContain('hidden_1, logits');
    }
    model.dispose();
  });
});
