import { beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { rocAuc } from '../../services/shared/ml/metrics.js';
import { predictPositive } from '../../services/shared/ml/predict.js';
import { trainTeacher, type TrainTeacherOptions } from '../../services/shared/ml/teacher.js';
import { syntheticTask } from '../helpers/synthetic.js';

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

const train = syntheticTask(1200, 6, 1);
const val = syntheticTask(400, 6, 2);
const base: TrainTeacherOptions = {
  x: train.x,
  y: train.y,
  inputDim: 6,
  valX: val.x,
  valY: val.y,
  hidden: [32, 32],
  epochs: 6,
  batchSize: 64,
  learningRate: 3e-3,
  patience: 3,
  seed: 11,
};

describe('trainTeacher on a synthetic task', () => {
  it('learns the task and returns the weights of its best validation epoch', async () => {
    const result = await trainTeacher(engine, base);
    // The Bayes-optimal AUC of this task is about 0.87.
    expect(result.bestValAuc).toBeGreaterThan(0.8);
    const valAuc = rocAuc(predictPositive(engine, result.model, val.x, 400), val.y);
    expect(valAuc).toBeCloseTo(result.bestValAuc, 6);
    expect(result.history[result.bestEpoch - 1].valAuc).toBe(result.bestValAuc);
    expect(result.epochsRun).toBe(result.history.length);
    result.model.dispose();
  });

  it('gives the same model for the same seed', async () => {
    const a = await trainTeacher(engine, { ...base, epochs: 2 });
    const b = await trainTeacher(engine, { ...base, epochs: 2 });
    expect(b.history).toEqual(a.history);
    const pa = predictPositive(engine, a.model, val.x, 400);
    const pb = predictPositive(engine, b.model, val.x, 400);
    expect(Array.from(pb)).toEqual(Array.from(pa));
    a.model.dispose();
    b.model.dispose();
  });

  it('leaves only the model weights behind in tensor memory', async () => {
    const { tf } = engine;
    const before = tf.memory().numTensors;
    const result = await trainTeacher(engine, { ...base, epochs: 2 });
    expect(tf.memory().numTensors - before).toBe(result.model.weights.length);
    result.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('continues training a given model', async () => {
    const first = await trainTeacher(engine, { ...base, epochs: 1 });
    const more = await trainTeacher(engine, { ...base, epochs: 2, model: first.model });
    expect(more.model).toBe(first.model);
    expect(more.bestValAuc).toBeGreaterThan(0.5);
    more.model.dispose();
  });

  it('keeps the weights it came with when training further only makes validation worse', async () => {
    const first = await trainTeacher(engine, { ...base, epochs: 3 });
    const before = Array.from(predictPositive(engine, first.model, val.x, 400));
    // A step size this large wrecks the model within an epoch.
    const more = await trainTeacher(engine, {
      ...base,
      epochs: 2,
      patience: 2,
      learningRate: 5,
      model: first.model,
    });
    expect(more.bestEpoch).toBe(0);
    expect(more.bestValAuc).toBeCloseTo(first.bestValAuc, 10);
    expect(Array.from(predictPositive(engine, more.model, val.x, 400))).toEqual(before);
    more.model.dispose();
  });

  it('stops early when validation AUC stops improving', async () => {
    // With patience 1 the first epoch that fails to improve ends training.
    const result = await trainTeacher(engine, { ...base, epochs: 30, patience: 1 });
    expect(result.epochsRun).toBeLessThan(30);
    expect(result.epochsRun - result.bestEpoch).toBe(1);
    result.model.dispose();
  });
});

describe('trainTeacher on bad input', () => {
  it('rejects rows that do not match inputDim with MODEL_SHAPE_MISMATCH', async () => {
    await expect(trainTeacher(engine, { ...base, inputDim: 5 })).rejects.toSatisfy((err) =>
      hasCode(err, 'MODEL_SHAPE_MISMATCH'),
    );
  });

  it('rejects validation labels of one class with DATA_SINGLE_CLASS', async () => {
    const valY = new Uint8Array(400);
    await expect(trainTeacher(engine, { ...base, valY })).rejects.toSatisfy((err) =>
      hasCode(err, 'DATA_SINGLE_CLASS'),
    );
  });

  it('reports a non-finite loss as TRAINING_DIVERGED and frees the model it built', async () => {
    const x = train.x.slice();
    x[0] = Number.NaN;
    const before = engine.tf.memory().numTensors;
    await expect(trainTeacher(engine, { ...base, x, epochs: 1 })).rejects.toSatisfy((err) =>
      hasCode(err, 'TRAINING_DIVERGED'),
    );
    expect(engine.tf.memory().numTensors).toBe(before);
  });
});
