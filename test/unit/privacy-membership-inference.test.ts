import { describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { createRng } from '../../services/shared/ml/random.js';
import {
  chanceAdvantage,
  thresholdAttack,
  trueLabelConfidence,
} from '../../services/shared/privacy/membership-inference.js';
import { seededNoise } from '../../services/shared/privacy/noise.js';

describe('thresholdAttack on constructed cases', () => {
  it('finds perfect separation', () => {
    const result = thresholdAttack([0.9, 0.95, 0.99], [0.1, 0.5, 0.6, 0.7]);
    expect(result.advantage).toBe(1);
    expect(result.auc).toBe(1);
    expect(result.threshold).toBe(0.9);
    expect(result.tpr).toBe(1);
    expect(result.fpr).toBe(0);
  });

  it('computes TPR − FPR at the best threshold, ties moving together', () => {
    // Members 0.8, 0.6, 0.4; non-members 0.6, 0.2. At t = 0.8: 1/3 − 0; t = 0.6: 2/3 − 1/2;
    // t = 0.4: 1 − 1/2 = 1/2 (the best); t = 0.2: 1 − 1 = 0.
    const result = thresholdAttack([0.8, 0.6, 0.4], [0.6, 0.2]);
    expect(result.advantage).toBeCloseTo(0.5, 12);
    expect(result.threshold).toBe(0.4);
    // AUC: pairs (m > n): 0.8>0.6, 0.8>0.2, 0.6=0.6 (½), 0.6>0.2, 0.4>0.2 → 4.5 / 6.
    expect(result.auc).toBeCloseTo(0.75, 12);
  });

  it('recovers the known advantage of two Gaussians: 2Φ(d/2) − 1', () => {
    // Member scores ~ N(d, 1), non-members ~ N(0, 1): the best threshold d/2 gives
    // TPR − FPR = Φ(d/2) − Φ(−d/2) = 2Φ(d/2) − 1; for d = 1 that is 0.3829.
    const noise = seededNoise(3);
    const members = Array.from({ length: 20000 }, () => 1 + noise.gaussian());
    const others = Array.from({ length: 20000 }, () => noise.gaussian());
    const result = thresholdAttack(members, others);
    expect(result.advantage).toBeGreaterThan(0.3829 - 0.02);
    expect(result.advantage).toBeLessThan(0.3829 + 0.02);
    // AUC of the binormal model: Φ(d/√2) = 0.7602.
    expect(result.auc).toBeCloseTo(0.7602, 1);
  });

  it('finds no more than chance when members and non-members are alike', () => {
    const rng = createRng(5);
    const members = Array.from({ length: 500 }, () => rng.next());
    const others = Array.from({ length: 500 }, () => rng.next());
    const result = thresholdAttack(members, others);
    const chance = chanceAdvantage(members, others, 50, 1);
    expect(result.advantage).toBeLessThan(0.12);
    expect(chance.mean).toBeGreaterThan(0.01);
    expect(chance.p95).toBeGreaterThanOrEqual(chance.mean);
    expect(Math.abs(result.auc - 0.5)).toBeLessThan(0.06);
  });

  it('scores rows by the probability of their true label', () => {
    const p = Float32Array.from([0.2, 0.8, 0.7, 0.3]);
    expect(Array.from(trueLabelConfidence(p, 2, Uint8Array.from([1, 1])))).toEqual([
      expect.closeTo(0.8, 6),
      expect.closeTo(0.3, 6),
    ]);
    let caught: unknown;
    try {
      thresholdAttack([], [0.1]);
    } catch (err) {
      caught = err;
    }
    expect(hasCode(caught, 'DATA_TOO_FEW_ROWS')).toBe(true);
  });
});
