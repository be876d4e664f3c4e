import { beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { silentLogger } from '../../services/shared/logger.js';
import { trainStudent, type TrainStudentOptions } from '../../services/shared/ml/distil.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { rocAuc } from '../../services/shared/ml/metrics.js';
import { predictPositive } from '../../services/shared/ml/predict.js';
import { syntheticTask } from '../helpers/synthetic.js';

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

// A bank with 60 labelled rows, a transfer set of 2,000 rows whose teacher logits are the
// task's true logits, and a test set.
const own = syntheticTask(60, 6, 21);
const transfer = syntheticTask(2000, 6, 22);
const test = syntheticTask(2000, 6, 23);
const teacher = {
  x: transfer.x,
  logits: Float32Array.from({ length: 4000 }, (_, k) =>
    k % 2 === 1 ? transfer.trueLogit[k >> 1] : 0,
  ),
  temperature: 4,
  alpha: 0.9,
};
const base: TrainStudentOptions = {
  inputDim: 6,
  hidden: [16],
  own: { x: own.x, y: own.y },
  epochs: 15,
  learningRate: 3e-3,
  seed: 5,
};

function testAuc(model: Parameters<typeof predictPositive>[1]): number {
  return rocAuc(predictPositive(engine, model, test.x, test.n), test.y);
}

describe('trainStudent with a teacher', () => {
  it('beats the same student trained on the own rows alone', async () => {
    const alone = await trainStudent(engine, { ...base, epochs: 60 });
    const distilled = await trainStudent(engine, { ...base, teacher });
    expect(testAuc(distilled.model)).toBeGreaterThan(testAuc(alone.model) + 0.01);
    expect(testAuc(distilled.model)).toBeGreaterThan(0.84);
    alone.model.dispose();
    distilled.model.dispose();
  });

  it('takes one step per transfer batch, each with own rows', async () => {
    const result = await trainStudent(engine, { ...base, teacher, epochs: 2, batchSize: 256 });
    expect(result.steps).toBe(2 * Math.ceil(2000 / 256));
    expect(result.history.map((h) => h.epoch)).toEqual([1, 2]);
    result.model.dispose();
  });

  it('gives the same student for the same seed and another for a different seed', async () => {
    const run = async (seed: number) => {
      const result = await trainStudent(engine, { ...base, teacher, epochs: 2, seed });
      const p = Array.from(predictPositive(engine, result.model, test.x.subarray(0, 300), 50));
      result.model.dispose();
      return p;
    };
    const first = await run(5);
    expect(await run(5)).toEqual(first);
    expect(await run(6)).not.toEqual(first);
  });

  it('keeps tensor memory stable: only the model weights remain', async () => {
    const { tf } = engine;
    const before = tf.memory().numTensors;
    const result = await trainStudent(engine, { ...base, teacher, epochs: 2 });
    expect(tf.memory().numTensors - before).toBe(result.model.weights.length);
    result.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('distils with no own rows at alpha 1', async () => {
    const result = await trainStudent(engine, {
      ...base,
      own: { x: new Float32Array(0), y: new Uint8Array(0) },
      teacher: { ...teacher, alpha: 1 },
    });
    expect(testAuc(result.model)).toBeGreaterThan(0.8);
    result.model.dispose();
  });
});

describe('trainStudent streaming batches', () => {
  // Engine memory sampled during training, from the progress listener, for a transfer set
  // of `rows` rows: the rows stay in JavaScript and reach the engine one batch at a time.
  async function peakMemory(rows: number) {
    const { tf } = engine;
    const big = syntheticTask(rows, 6, 30);
    const logits = Float32Array.from({ length: rows * 2 }, (_, k) =>
      k % 2 === 1 ? big.trueLogit[k >> 1] : 0,
    );
    let peak = { numTensors: 0, numBytes: 0 };
    let samples = 0;
    const result = await trainStudent(engine, {
      ...base,
      teacher: { ...teacher, x: big.x, logits },
      epochs: 1,
      // Every batch is sampled, so both runs are measured at the same points of each step
      // whatever the machine's speed.
      progressIntervalMs: 0,
      onProgress: () => {
        const m = tf.memory();
        samples++;
        peak = {
          numTensors: Math.max(peak.numTensors, m.numTensors),
          numBytes: Math.max(peak.numBytes, m.numBytes),
        };
      },
    });
    result.model.dispose();
    return { ...peak, samples };
  }

  it('holds the same tensors and bytes in the engine for 1,000 and for 20,000 transfer rows', async () => {
    const small = await peakMemory(1_000);
    const large = await peakMemory(20_000);
    expect(small.samples).toBeGreaterThan(0);
    expect(large.samples).toBeGreaterThan(0);
    expect(large.numTensors).toBe(small.numTensors);
    expect(large.numBytes).toBe(small.numBytes);
  });
});

describe('trainStudent options', () => {
  it('distils with a hint from teacher activations, as good as without', async () => {
    // A teacher "layer" that knows the true logit and the inputs it depends on.
    const width = 3;
    const values = new Float32Array(2000 * width);
    for (let i = 0; i < 2000; i++) {
      values[i * width] = Math.max(0, transfer.trueLogit[i]);
      values[i * width + 1] = Math.max(0, -transfer.trueLogit[i]);
      values[i * width + 2] = Math.max(0, transfer.x[i * 6]);
    }
    const result = await trainStudent(engine, {
      ...base,
      teacher: { ...teacher, hint: { values, width, weight: 0.5 } },
    });
    expect(testAuc(result.model)).toBeGreaterThan(0.84);
    result.model.dispose();
  });

  it('fine-tunes from a given model: it starts from its weights and leaves it unchanged', async () => {
    const start = await trainStudent(engine, { ...base, teacher, epochs: 2 });
    const before = start.model.getWeights().map((w) => Array.from(w.dataSync()));
    const tuned = await trainStudent(engine, {
      ...base,
      hidden: [99],
      init: start.model,
      epochs: 1,
    });
    expect(tuned.model.countParams()).toBe(start.model.countParams());
    expect(start.model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
    // One epoch over 60 own rows is one Adam step of size ~lr: close to the start, not equal.
    const a = tuned.model.getWeights()[0].dataSync();
    const b = start.model.getWeights()[0].dataSync();
    let largest = 0;
    for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i] - b[i]));
    expect(largest).toBeGreaterThan(0);
    expect(largest).toBeLessThan(0.01);
    start.model.dispose();
    tuned.model.dispose();
  });

  it('reports progress per epoch with loss, validation AUC and samples per second', async () => {
    const validation = syntheticTask(300, 6, 25);
    const epochs: { epoch: number; loss: number; valAuc?: number; samplesPerSecond: number }[] = [];
    const result = await trainStudent(engine, {
      ...base,
      teacher,
      epochs: 3,
      validation: { x: validation.x, y: validation.y },
      onProgress: (p) => {
        if (p.phase === 'epoch') epochs.push(p);
      },
    });
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
    epochs.forEach((e, i) => {
      expect(e.loss).toBeCloseTo(result.history[i].loss, 6);
      expect(e.valAuc).toBe(result.history[i].valAuc);
      expect(e.samplesPerSecond).toBeGreaterThan(0);
    });
    expect(result.samplesPerSecond).toBeGreaterThan(0);
    result.model.dispose();
  });

  it('distils with the reverse KL divergence too', async () => {
    const result = await trainStudent(engine, {
      ...base,
      teacher: { ...teacher, divergence: 'reverse' },
    });
    expect(testAuc(result.model)).toBeGreaterThan(0.84);
    result.model.dispose();
  });
});

describe('trainStudent with validation rows', () => {
  it('records validation AUC per epoch and restores the best epoch with patience', async () => {
    const validation = syntheticTask(300, 6, 24);
    const result = await trainStudent(engine, {
      ...base,
      teacher,
      epochs: 8,
      patience: 2,
      validation: { x: validation.x, y: validation.y },
    });
    const aucs = result.history.map((h) => h.valAuc as number);
    const final = rocAuc(predictPositive(engine, result.model, validation.x, 300), validation.y);
    expect(final).toBeCloseTo(Math.max(...aucs), 6);
    result.model.dispose();
  });
});

describe('trainStudent on bad input', () => {
  it('rejects transfer inputs that do not match the teacher logits', async () => {
    const bad = { ...teacher, logits: teacher.logits.subarray(0, 10) };
    await expect(trainStudent(engine, { ...base, teacher: bad })).rejects.toSatisfy((err) =>
      hasCode(err, 'MODEL_SHAPE_MISMATCH'),
    );
  });

  it('rejects own rows of one class without a teacher with DATA_SINGLE_CLASS', async () => {
    const y = new Uint8Array(60);
    await expect(trainStudent(engine, { ...base, own: { x: own.x, y } })).rejects.toSatisfy((err) =>
      hasCode(err, 'DATA_SINGLE_CLASS'),
    );
  });

  it('rejects patience without validation rows', async () => {
    await expect(trainStudent(engine, { ...base, patience: 2 })).rejects.toThrow(/validation/);
  });
});
