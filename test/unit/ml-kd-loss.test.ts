import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import {
  crossEntropy,
  distillationLoss,
  hintLoss,
  kdLoss,
  logSoftmaxT,
  reverseKdLoss,
  softTargets,
} from '../../services/shared/ml/kd-loss.js';

// Independent reference arithmetic in double precision, one row at a time.
function softmax(logits: number[], T = 1): number[] {
  const scaled = logits.map((z) => z / T);
  const max = Math.max(...scaled);
  const exps = scaled.map((z) => Math.exp(z - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
function kl(p: number[], q: number[]): number {
  return p.reduce((sum, pi, i) => sum + (pi === 0 ? 0 : pi * Math.log(pi / q[i])), 0);
}

// float32 arithmetic: agree to about 6 significant digits.
const DIGITS = 5;

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

describe('logSoftmaxT', () => {
  it('matches log(softmax(z / T)) computed by hand', () => {
    const { tf } = engine;
    const values = logSoftmaxT(tf, tf.tensor2d([[2, 0]]), 4).arraySync() as number[][];
    const expected = softmax([2, 0], 4).map(Math.log);
    values[0].forEach((v, i) => expect(v).toBeCloseTo(expected[i], DIGITS));
  });

  it('stays finite for logits [60, -60] at T = 1: [0, -120]', () => {
    const { tf } = engine;
    const values = logSoftmaxT(tf, tf.tensor2d([[60, -60]]), 1).arraySync() as number[][];
    expect(values[0][0]).toBeCloseTo(0, 6);
    expect(values[0][1]).toBeCloseTo(-120, 4);
    expect(values[0].every(Number.isFinite)).toBe(true);
  });

  it('rejects a temperature that is not positive', () => {
    const { tf } = engine;
    expect(() => logSoftmaxT(tf, tf.tensor2d([[1, 2]]), 0)).toThrow(/temperature/);
  });
});

describe('softTargets', () => {
  it('gives softmax(teacher / T), rows summing to 1', () => {
    const { tf } = engine;
    const p = softTargets(
      tf,
      tf.tensor2d([
        [3, -1],
        [0, 0],
      ]),
      2,
    ).arraySync() as number[][];
    const expected = [softmax([3, -1], 2), softmax([0, 0], 2)];
    p.flat().forEach((v, i) => expect(v).toBeCloseTo(expected.flat()[i], DIGITS));
  });
});

describe('kdLoss', () => {
  it('at T = 1 equals the batch mean of KL(teacher ‖ student)', () => {
    const { tf } = engine;
    const teacher = [
      [2, 0],
      [-1, 1.5],
    ];
    const student = [
      [0, 1],
      [0.5, 0.5],
    ];
    const value = kdLoss(tf, tf.tensor2d(student), tf.tensor2d(teacher), 1).dataSync()[0];
    const expected =
      (kl(softmax(teacher[0]), softmax(student[0])) +
        kl(softmax(teacher[1]), softmax(student[1]))) /
      2;
    expect(value).toBeCloseTo(expected, DIGITS);
  });

  it('at T = 4 equals 16 × KL of the probabilities softened by 4', () => {
    const { tf } = engine;
    const teacher = [3, -2];
    const student = [-1, 2];
    const value = kdLoss(tf, tf.tensor2d([student]), tf.tensor2d([teacher]), 4).dataSync()[0];
    const plain = kl(softmax(teacher, 4), softmax(student, 4));
    expect(plain).toBeGreaterThan(0.1);
    expect(value).toBeCloseTo(16 * plain, DIGITS);
  });

  it('is 0 when the student copies the teacher', () => {
    const { tf } = engine;
    const logits = tf.tensor2d([[1.25, -0.5]]);
    expect(kdLoss(tf, logits, logits, 4).dataSync()[0]).toBeCloseTo(0, 6);
  });

  it('stays finite for opposed confident logits [60, -60] against [-60, 60]: about 120', () => {
    const { tf } = engine;
    const value = kdLoss(tf, tf.tensor2d([[-60, 60]]), tf.tensor2d([[60, -60]]), 1).dataSync()[0];
    // p = [1, e^-120]; log p − log q = [120, −120]; KL = 120 − 120·e^-120 ≈ 120.
    expect(Number.isFinite(value)).toBe(true);
    expect(value).toBeCloseTo(120, 3);
  });

  it('has gradient T · (q − p) / batch with respect to the student logits', () => {
    const { tf } = engine;
    const T = 4;
    const teacher = [
      [2, -1],
      [0, 3],
    ];
    const student = [
      [0.5, 0],
      [1, -1],
    ];
    const grad = tf.grad((s) => kdLoss(tf, s, tf.tensor2d(teacher), T));
    const g = grad(tf.tensor2d(student)).arraySync() as number[][];
    // d/ds of T²·KL(p ‖ softmax(s/T)) = T²·(q − p)/T, averaged over the 2 rows.
    for (let r = 0; r < 2; r++) {
      const p = softmax(teacher[r], T);
      const q = softmax(student[r], T);
      for (let c = 0; c < 2; c++) expect(g[r][c]).toBeCloseTo((T * (q[c] - p[c])) / 2, DIGITS);
    }
  });
});

describe('crossEntropy', () => {
  const logits = [
    [1, 2],
    [0.5, -0.5],
  ];
  const labels = [1, 0];
  const perRow = logits.map((row, i) => -Math.log(softmax(row)[labels[i]]));

  it('is the mean negative log-likelihood for int32 labels and for one-hot rows', () => {
    const { tf } = engine;
    const expected = (perRow[0] + perRow[1]) / 2;
    const fromIndices = crossEntropy(tf, tf.tensor2d(logits), tf.tensor1d(labels, 'int32'));
    const fromOneHot = crossEntropy(
      tf,
      tf.tensor2d(logits),
      tf.tensor2d([
        [0, 1],
        [1, 0],
      ]),
    );
    expect(fromIndices.dataSync()[0]).toBeCloseTo(expected, DIGITS);
    expect(fromOneHot.dataSync()[0]).toBeCloseTo(expected, DIGITS);
  });

  it('with class weights is the weighted mean, divided by the sum of row weights', () => {
    const { tf } = engine;
    // Row 0 is class 1 (weight 3), row 1 is class 0 (weight 1).
    const expected = (3 * perRow[0] + 1 * perRow[1]) / 4;
    const value = crossEntropy(tf, tf.tensor2d(logits), tf.tensor1d(labels, 'int32'), [1, 3]);
    expect(value.dataSync()[0]).toBeCloseTo(expected, DIGITS);
  });

  it('rejects class weights of the wrong length', () => {
    const { tf } = engine;
    expect(() => crossEntropy(tf, tf.tensor2d(logits), tf.tensor1d(labels, 'int32'), [1])).toThrow(
      /classWeights/,
    );
  });
});

describe('distillationLoss', () => {
  const teacher = [
    [2, -2],
    [-1, 1],
  ];
  const studentTransfer = [
    [0, 0],
    [1, 0],
  ];
  const studentOwn = [
    [0.3, -0.3],
    [-2, 1],
  ];
  const ownLabels = [0, 1];

  function expected(alpha: number, T: number): number {
    const kd =
      (T *
        T *
        (kl(softmax(teacher[0], T), softmax(studentTransfer[0], T)) +
          kl(softmax(teacher[1], T), softmax(studentTransfer[1], T)))) /
      2;
    const ce = studentOwn.reduce((s, row, i) => s - Math.log(softmax(row)[ownLabels[i]]), 0) / 2;
    return alpha * kd + (1 - alpha) * ce;
  }

  function compute(alpha: number, T: number): number {
    const { tf } = engine;
    return distillationLoss(tf, {
      studentTransferLogits: tf.tensor2d(studentTransfer),
      teacherTransferLogits: tf.tensor2d(teacher),
      studentOwnLogits: tf.tensor2d(studentOwn),
      ownLabels: tf.tensor1d(ownLabels, 'int32'),
      T,
      alpha,
    }).dataSync()[0];
  }

  it('mixes alpha · T²·KL and (1 − alpha) · CE', () => {
    expect(compute(0.9, 4)).toBeCloseTo(expected(0.9, 4), DIGITS);
    expect(compute(0.5, 2)).toBeCloseTo(expected(0.5, 2), DIGITS);
  });

  it('reduces to cross-entropy at alpha 0 and to the KD term at alpha 1', () => {
    expect(compute(0, 4)).toBeCloseTo(expected(0, 4), DIGITS);
    expect(compute(1, 4)).toBeCloseTo(expected(1, 4), DIGITS);
  });

  it('rejects alpha outside [0, 1]', () => {
    expect(() => compute(1.5, 4)).toThrow(/alpha/);
  });
});

describe('reverseKdLoss', () => {
  it('at T = 3 equals 9 × the batch mean of KL(student_T ‖ teacher_T)', () => {
    const { tf } = engine;
    const teacher = [
      [2, -1],
      [0.5, 1.5],
    ];
    const student = [
      [-1, 1],
      [0, 0.2],
    ];
    const value = reverseKdLoss(tf, tf.tensor2d(student), tf.tensor2d(teacher), 3).dataSync()[0];
    const expected =
      (9 *
        (kl(softmax(student[0], 3), softmax(teacher[0], 3)) +
          kl(softmax(student[1], 3), softmax(teacher[1], 3)))) /
      2;
    expect(expected).toBeGreaterThan(0.05);
    expect(value).toBeCloseTo(expected, DIGITS);
    // Not the forward divergence: KL is asymmetric.
    const forward = kdLoss(tf, tf.tensor2d(student), tf.tensor2d(teacher), 3).dataSync()[0];
    expect(Math.abs(forward - value)).toBeGreaterThan(1e-3);
  });

  it('stays finite for opposed confident logits [-80, 80] against [80, -80]: about 160', () => {
    const { tf } = engine;
    const value = reverseKdLoss(tf, tf.tensor2d([[-80, 80]]), tf.tensor2d([[80, -80]]), 1);
    expect(value.dataSync()[0]).toBeCloseTo(160, 3);
  });

  it('is what distillationLoss uses with divergence "reverse"', () => {
    const { tf } = engine;
    const s = tf.tensor2d([[0.4, -0.2]]);
    const t = tf.tensor2d([[1.5, -1]]);
    const mixed = distillationLoss(tf, {
      studentTransferLogits: s,
      teacherTransferLogits: t,
      studentOwnLogits: tf.tensor2d([[0, 1]]),
      ownLabels: tf.tensor1d([1], 'int32'),
      T: 2,
      alpha: 1,
      divergence: 'reverse',
    });
    expect(mixed.dataSync()[0]).toBeCloseTo(
      4 * kl(softmax([0.4, -0.2], 2), softmax([1.5, -1], 2)),
      DIGITS,
    );
  });
});

describe('hintLoss', () => {
  // Student layer of width 2, teacher layer of width 3, batch of 2.
  const hs = [
    [0.5, -1],
    [2, 0.25],
  ];
  const ht = [
    [1, 0, -1],
    [0.5, 2, 0],
  ];
  const W = [
    [0.1, -0.4, 0.3],
    [0.7, 0.2, -0.5],
  ];
  const b = [0.05, -0.1, 0.2];
  function reference(): number {
    let sum = 0;
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const mapped = hs[i][0] * W[0][j] + hs[i][1] * W[1][j] + b[j];
        sum += (mapped - ht[i][j]) ** 2;
      }
    }
    return sum / 6;
  }

  it('is the mean squared error between the projected student layer and the teacher layer', () => {
    const { tf } = engine;
    const value = hintLoss(tf, tf.tensor2d(hs), tf.tensor2d(ht), {
      kernel: tf.tensor2d(W),
      bias: tf.tensor1d(b),
    });
    expect(value.dataSync()[0]).toBeCloseTo(reference(), DIGITS);
  });

  it('has gradient 2·(h_s·W + b − h_t)·Wᵀ / (batch · width) with respect to the student layer', () => {
    const { tf } = engine;
    const grad = tf.grad((s) =>
      hintLoss(tf, s, tf.tensor2d(ht), { kernel: tf.tensor2d(W), bias: tf.tensor1d(b) }),
    );
    const g = grad(tf.tensor2d(hs)).arraySync() as number[][];
    for (let i = 0; i < 2; i++) {
      for (let k = 0; k < 2; k++) {
        let expected = 0;
        for (let j = 0; j < 3; j++) {
          const residual = hs[i][0] * W[0][j] + hs[i][1] * W[1][j] + b[j] - ht[i][j];
          expected += (2 * residual * W[k][j]) / 6;
        }
        expect(g[i][k]).toBeCloseTo(expected, DIGITS);
      }
    }
  });

  it('rejects activations whose widths do not fit the projection', () => {
    const { tf } = engine;
    expect(() =>
      hintLoss(tf, tf.tensor2d(hs), tf.tensor2d([[1, 2]]), {
        kernel: tf.tensor2d(W),
        bias: tf.tensor1d(b),
      }),
    ).toThrow(/hint loss activations/);
  });
});
