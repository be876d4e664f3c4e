import { describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { prAuc, rocAuc } from '../../services/shared/ml/metrics.js';
import { createRng } from '../../services/shared/ml/random.js';

// O(n²) definition: the share of (positive, negative) pairs ranked right, ties half.
function pairwiseAuc(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  scores.forEach((sp, i) => {
    if (labels[i] !== 1) return;
    scores.forEach((sn, j) => {
      if (labels[j] !== 0) return;
      pairs++;
      wins += sp > sn ? 1 : sp === sn ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

describe('rocAuc on hand-worked cases', () => {
  it('is 1 for a perfect ranking, 0 for a reversed one and 0.5 when all scores tie', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).toBe(0);
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1])).toBe(0.5);
  });

  it('gives 0.75 for scores [0.1, 0.4, 0.35, 0.8] and labels [0, 0, 1, 1]', () => {
    // Pairs (pos, neg): (0.35, 0.1) ✓, (0.35, 0.4) ✗, (0.8, 0.1) ✓, (0.8, 0.4) ✓ → 3/4.
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75);
  });

  it('counts a tie between a positive and a negative as one half: 3.5 / 4', () => {
    expect(rocAuc([0.5, 0.5, 0.2, 0.8], [1, 0, 0, 1])).toBe(0.875);
  });

  it('agrees with the pairwise definition on random scores with many ties', () => {
    const rng = createRng(5);
    const scores = Array.from({ length: 300 }, () => rng.int(20) / 20);
    const labels = Array.from({ length: 300 }, () => (rng.next() < 0.3 ? 1 : 0));
    expect(rocAuc(scores, labels)).toBeCloseTo(pairwiseAuc(scores, labels), 12);
  });
});

describe('rocAuc on bad input', () => {
  it('rejects labels of a single class with DATA_SINGLE_CLASS', () => {
    expect.assertions(1);
    try {
      rocAuc([0.1, 0.2], [1, 1]);
    } catch (err) {
      expect(hasCode(err, 'DATA_SINGLE_CLASS')).toBe(true);
    }
  });

  it('rejects NaN scores, non-binary labels and mismatched lengths', () => {
    expect(() => rocAuc([Number.NaN, 0.2], [0, 1])).toThrow(/NaN/);
    expect(() => rocAuc([0.1, 0.2], [0, 2])).toThrow(/not 0 or 1/);
    expect(() => rocAuc([0.1], [0, 1])).toThrow(/expected shape/);
  });
});

describe('prAuc on hand-worked cases', () => {
  it('gives 5/6 for scores [0.1, 0.4, 0.35, 0.8] and labels [0, 0, 1, 1]', () => {
    // Thresholds 0.8: P 1, R 0.5; 0.4: R unchanged; 0.35: P 2/3, R 1.
    // AP = 0.5 · 1 + 0.5 · 2/3.
    expect(prAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.5 + 0.5 * (2 / 3), 12);
  });

  it('treats tied scores as one threshold', () => {
    // Threshold 0.5 takes rows 0 and 1 together: P 1/2, R 1/2; then 0.2: P 2/3, R 1.
    expect(prAuc([0.5, 0.5, 0.2], [1, 0, 1])).toBeCloseTo(0.5 * 0.5 + 0.5 * (2 / 3), 12);
    expect(prAuc([0.5, 0.5, 0.2], [0, 1, 1])).toBeCloseTo(0.5 * 0.5 + 0.5 * (2 / 3), 12);
  });

  it('is 1 for a perfect ranking and needs at least one positive', () => {
    expect(prAuc([0.9, 0.8, 0.1], [1, 1, 0])).toBe(1);
    expect(() => prAuc([0.9, 0.8], [0, 0])).toThrow(/only one class/);
  });
});
