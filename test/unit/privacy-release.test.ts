import { describe, expect, it } from 'vitest';
import {
  effectiveTemperature,
  labelOnly,
  probabilitiesToLogits,
  projectRowsToSimplex,
  rowsAllowed,
  softmaxRows,
  topKProbabilities,
} from '../../services/shared/privacy/release.js';

describe('release transforms', () => {
  it('softens logits by the temperature, rows summing to one', () => {
    const logits = Float32Array.from([0, Math.log(3), 10, -10]);
    const p = softmaxRows(logits, 2, 1);
    expect(p[0]).toBeCloseTo(0.25, 6);
    expect(p[1]).toBeCloseTo(0.75, 6);
    const soft = softmaxRows(logits, 2, 4);
    expect(soft[2]).toBeLessThan(p[2]);
    expect(soft[2] + soft[3]).toBeCloseTo(1, 6);
    expect(() => softmaxRows(logits, 3)).toThrow(/classes/);
  });

  it('never releases probabilities sharper than the floor', () => {
    expect(effectiveTemperature(1, 4)).toBe(4);
    expect(effectiveTemperature(8, 4)).toBe(8);
    expect(effectiveTemperature(2, undefined)).toBe(2);
    expect(() => effectiveTemperature(0, 4)).toThrow(/temperature/);
  });

  it('keeps the k largest probabilities and spreads the rest evenly', () => {
    const p = Float32Array.from([0.1, 0.6, 0.3, 0.25, 0.25, 0.5]);
    const top1 = topKProbabilities(p, 3, 1);
    expect(Array.from(top1)).toEqual([
      expect.closeTo(0.2, 6),
      expect.closeTo(0.6, 6),
      expect.closeTo(0.2, 6),
      expect.closeTo(0.25, 6),
      expect.closeTo(0.25, 6),
      expect.closeTo(0.5, 6),
    ]);
    const top2 = topKProbabilities(p, 3, 2);
    expect(top2[0]).toBeCloseTo(0.1, 6);
    expect(top2[1]).toBeCloseTo(0.6, 6);
    expect(top2[2]).toBeCloseTo(0.3, 6);
    // Ties: the lower class index is kept, the same way every time.
    expect(top2[3]).toBeCloseTo(0.25, 6);
    expect(top2[5]).toBeCloseTo(0.5, 6);
    expect(() => topKProbabilities(p, 3, 4)).toThrow(/k must be/);
  });

  it('releases only the argmax as a one-hot row', () => {
    const out = labelOnly(Float32Array.from([0.2, 0.8, 3, -1, 0.5, 0.5]), 2);
    expect(Array.from(out)).toEqual([0, 1, 1, 0, 1, 0]);
  });

  it('caps rows per period', () => {
    expect(rowsAllowed(100, undefined)).toBe(100);
    expect(rowsAllowed(100, { cap: 250, used: 200 })).toBe(50);
    expect(rowsAllowed(100, { cap: 250, used: 300 })).toBe(0);
  });

  it('projects noisy rows onto the simplex and back to logits the student can soften', () => {
    const noisy = Float32Array.from([1.4, -0.2, 0.3, 0.5, -3, -2]);
    const p = projectRowsToSimplex(noisy, 2);
    expect(p[0]).toBeCloseTo(1, 6);
    expect(p[1]).toBeCloseTo(0, 6);
    expect(p[2]).toBeCloseTo(0.4, 6);
    expect(p[3]).toBeCloseTo(0.6, 6);
    expect(p[4]).toBeCloseTo(0, 6);
    expect(p[5]).toBeCloseTo(1, 6);
    const three = projectRowsToSimplex(Float32Array.from([0.5, 0.5, 0.5]), 3);
    for (const v of three) expect(v).toBeCloseTo(1 / 3, 6);
    const logits = probabilitiesToLogits(Float32Array.from([0.4, 0.6]), 2, 4);
    const back = softmaxRows(logits, 2, 4);
    expect(back[0]).toBeCloseTo(0.4, 5);
    expect(back[1]).toBeCloseTo(0.6, 5);
  });
});
