import type * as tfjs from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { softTargetsOf } from '../../services/shared/ml/distil.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { FlatMlpTrainer, type FlatBatch } from '../../services/shared/ml/flat-trainer.js';
import { crossEntropy, hintLoss, kdLoss, reverseKdLoss } from '../../services/shared/ml/kd-loss.js';
import { buildMlp } from '../../services/shared/ml/mlp.js';
import { createRng } from '../../services/shared/ml/random.js';

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

// A 3-4-3-2 student, 3 transfer rows and 2 own rows, a teacher layer of width 5.
const inputDim = 3;
const hidden = [4, 3];
const nT = 3;
const nO = 2;
const teacherWidth = 5;
const rng = createRng(7);
const x = Float32Array.from({ length: (nT + nO) * inputDim }, () => rng.next() * 4 - 2);
const teacherLogits = Float32Array.from({ length: nT * 2 }, () => rng.next() * 10 - 5);
const hintValues = Float32Array.from({ length: nT * teacherWidth }, () => rng.next() * 2);
const labels = [1, 0];
const classWeights = [1, 3];

function batchFor(T: number): FlatBatch {
  const { soft, logSoft } = softTargetsOf(teacherLogits, T);
  const sum = labels.reduce((s, y) => s + classWeights[y], 0);
  const ownWeights = Float32Array.from(labels, (y) => classWeights[y] / sum);
  const ownTargets = new Float32Array(nO * 2);
  labels.forEach((y, k) => (ownTargets[2 * k + y] = ownWeights[k]));
  return {
    x,
    transferRows: nT,
    ownRows: nO,
    soft,
    logSoft,
    ownTargets,
    ownWeights,
    hint: hintValues,
  };
}

/** The same loss by autodiff of kd-loss.ts, as a function of the flat parameters. */
function autodiffLossAndGradient(
  theta: Float32Array,
  settings: { alpha: number; T: number; beta: number; reverse: boolean },
): { loss: number; gradient: Float32Array } {
  const { tf } = engine;
  const dims = [inputDim, ...hidden, 2];
  const shapes: number[][] = [];
  for (let l = 0; l + 1 < dims.length; l++) shapes.push([dims[l], dims[l + 1]], [dims[l + 1]]);
  shapes.push([hidden[hidden.length - 1], teacherWidth], [teacherWidth]);
  let offset = 0;
  const params = shapes.map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const tensor = tf.tensor(theta.subarray(offset, offset + size), shape);
    offset += size;
    return tensor;
  });
  const f = (...p: tfjs.Tensor[]) => {
    let h: tfjs.Tensor = tf.tensor2d(x, [nT + nO, inputDim]);
    let hs: tfjs.Tensor = h;
    const layers = dims.length - 1;
    for (let l = 0; l < layers; l++) {
      h = tf.add(tf.matMul(h as tfjs.Tensor2D, p[2 * l] as tfjs.Tensor2D), p[2 * l + 1]);
      if (l + 1 < layers) h = tf.relu(h);
      if (l + 1 === hidden.length) hs = h;
    }
    const logits = h;
    const soft = settings.reverse ? reverseKdLoss : kdLoss;
    const kd = soft(
      tf,
      tf.slice(logits, [0, 0], [nT, 2]),
      tf.tensor2d(teacherLogits, [nT, 2]),
      settings.T,
    );
    const ce = crossEntropy(
      tf,
      tf.slice(logits, [nT, 0], [nO, 2]),
      tf.tensor1d(labels, 'int32'),
      classWeights,
    );
    const hint = hintLoss(
      tf,
      tf.slice(hs, [0, 0], [nT, -1]),
      tf.tensor2d(hintValues, [nT, teacherWidth]),
      { kernel: p[p.length - 2], bias: p[p.length - 1] },
    );
    return tf.addN([
      tf.mul(kd, settings.alpha),
      tf.mul(ce, 1 - settings.alpha),
      tf.mul(hint, settings.beta),
    ]) as tfjs.Scalar;
  };
  const { value, grads } = tf.valueAndGrads(f)(params);
  const gradient = new Float32Array(theta.length);
  let at = 0;
  for (const g of grads) {
    gradient.set(g.dataSync(), at);
    at += g.size;
  }
  return { loss: value.dataSync()[0], gradient };
}

describe('FlatMlpTrainer', () => {
  for (const reverse of [false, true]) {
    it(`gives the loss and gradient autodiff of kd-loss.ts gives (${reverse ? 'reverse' : 'forward'} KL, hint)`, () => {
      const { tf } = engine;
      const settings = { alpha: 0.7, T: 4, beta: 0.5, reverse };
      const model = buildMlp(tf, { inputDim, hidden, seed: 3 });
      const trainer = new FlatMlpTrainer(tf, model, {
        learningRate: 1e-3,
        loss: {
          alpha: settings.alpha,
          temperature: settings.T,
          divergence: reverse ? 'reverse' : 'forward',
          hintWeight: settings.beta,
        },
        hint: { studentLayer: hidden.length, teacherWidth, seed: 9 },
      });
      const theta = trainer.getState().theta;
      expect(theta.length).toBe(trainer.size);
      const { loss, gradient } = trainer.lossAndGradient(batchFor(settings.T));
      const reference = autodiffLossAndGradient(theta, settings);
      expect(loss.dataSync()[0]).toBeCloseTo(reference.loss, 5);
      const g = gradient.dataSync();
      let largest = 0;
      for (let i = 0; i < g.length; i++) {
        largest = Math.max(largest, Math.abs(reference.gradient[i]));
        expect(Math.abs(g[i] - reference.gradient[i])).toBeLessThan(1e-5);
      }
      expect(largest).toBeGreaterThan(1e-3);
      loss.dispose();
      gradient.dispose();
      trainer.dispose();
      model.dispose();
    });
  }

  it('takes an Adam step as PyTorch does: the first moves each parameter by lr · g / (|g| + eps)', () => {
    const { tf } = engine;
    const model = buildMlp(tf, { inputDim, hidden, seed: 4 });
    const lr = 0.01;
    const trainer = new FlatMlpTrainer(tf, model, {
      learningRate: lr,
      loss: { alpha: 0.9, temperature: 2 },
    });
    const before = trainer.getState().theta;
    const batch = batchFor(2);
    const { loss, gradient } = trainer.lossAndGradient(batch);
    const g = gradient.dataSync();
    trainer.step(batch).dispose();
    const after = trainer.getState();
    expect(after.t).toBe(1);
    for (let i = 0; i < g.length; i++) {
      const expected = before[i] - (lr * g[i]) / (Math.abs(g[i]) + 1e-8);
      expect(after.theta[i]).toBeCloseTo(expected, 6);
      expect(after.m[i]).toBeCloseTo(0.1 * g[i], 7);
    }
    loss.dispose();
    gradient.dispose();
    trainer.dispose();
    model.dispose();
  });

  it('writes its parameters into the model and frees every tensor it made', () => {
    const { tf } = engine;
    const model = buildMlp(tf, { inputDim, hidden, seed: 5 });
    const before = tf.memory().numTensors;
    const trainer = new FlatMlpTrainer(tf, model, {
      learningRate: 0.05,
      loss: { alpha: 0.5, temperature: 1 },
    });
    for (let i = 0; i < 3; i++) trainer.step(batchFor(1)).dispose();
    trainer.writeTo(model);
    const theta = trainer.getState().theta;
    const first = model.getWeights()[0].dataSync();
    expect(Array.from(first)).toEqual(Array.from(theta.subarray(0, first.length)));
    trainer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
