import { beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { buildMlp } from '../../services/shared/ml/mlp.js';
import {
  PREDICT_BATCH_SIZE,
  predictLogits,
  predictPositive,
} from '../../services/shared/ml/predict.js';
import { createRng } from '../../services/shared/ml/random.js';

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

describe('predictPositive', () => {
  it('is the softmax probability of class 1, across batch boundaries, leaving no tensors', () => {
    const { tf } = engine;
    const model = buildMlp(tf, { inputDim: 3, hidden: [4], seed: 1 });
    const n = PREDICT_BATCH_SIZE + 7;
    const rng = createRng(1);
    const x = Float32Array.from({ length: n * 3 }, () => rng.next() * 4 - 2);
    const before = tf.memory().numTensors;
    const logits = predictLogits(engine, model, x, n);
    const p = predictPositive(engine, model, x, n);
    expect(tf.memory().numTensors).toBe(before);

    for (const i of [0, PREDICT_BATCH_SIZE - 1, PREDICT_BATCH_SIZE, n - 1]) {
      const [a, b] = [logits[2 * i], logits[2 * i + 1]];
      expect(p[i]).toBeCloseTo(Math.exp(b) / (Math.exp(a) + Math.exp(b)), 6);
    }
    // The last rows, predicted alone, give the same values as inside the big call.
    const tail = predictLogits(engine, model, x.subarray((n - 7) * 3), 7);
    Array.from(tail).forEach((v, i) => expect(v).toBeCloseTo(logits[(n - 7) * 2 + i], 6));
    model.dispose();
  });

  it('rejects an input whose length is not n rows of the model width', () => {
    const model = buildMlp(engine.tf, { inputDim: 3, hidden: [], seed: 1 });
    expect.assertions(1);
    try {
      predictPositive(engine, model, new Float32Array(7), 2);
    } catch (err) {
      expect(hasCode(err, 'MODEL_SHAPE_MISMATCH')).toBe(true);
    }
    model.dispose();
  });
});
