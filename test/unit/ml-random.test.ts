import { describe, expect, it } from 'vitest';
import { createRng, deriveSeed, permutation } from '../../services/shared/ml/random.js';

describe('createRng', () => {
  it('gives the same sequence for the same seed and another for a neighbouring seed', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const first = Array.from({ length: 5 }, () => a.uint32());
    expect(Array.from({ length: 5 }, () => b.uint32())).toEqual(first);
    expect(Array.from({ length: 5 }, () => c.uint32())).not.toEqual(first);
  });

  it('draws floats in [0, 1) with a mean near 1/2', () => {
    const rng = createRng(1);
    const values = Array.from({ length: 20_000 }, () => rng.next());
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
  });

  it('draws every integer of int(n) about equally often', () => {
    const rng = createRng(2);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70_000; i++) counts[rng.int(7)]++;
    for (const count of counts) expect(Math.abs(count - 10_000)).toBeLessThan(400);
  });

  it('shuffles in place into a permutation, typed arrays included', () => {
    const rng = createRng(3);
    const values = Uint32Array.from({ length: 50 }, (_, i) => i);
    const same = rng.shuffle(values);
    expect(same).toBe(values);
    expect(Array.from(values).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
    expect(Array.from(values)).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('accepts negative and large safe-integer seeds and rejects fractional ones', () => {
    expect(createRng(-1).uint32()).not.toBe(createRng(2 ** 40).uint32());
    expect(() => createRng(0.5)).toThrow(/safe integer/);
  });
});

describe('deriveSeed', () => {
  it('is stable, differs by purpose, and stays a non-negative 31-bit integer', () => {
    expect(deriveSeed(7, 'init')).toBe(deriveSeed(7, 'init'));
    expect(deriveSeed(7, 'init')).not.toBe(deriveSeed(7, 'shuffle'));
    expect(deriveSeed(7, 1)).not.toBe(deriveSeed(8, 1));
    for (let i = 0; i < 100; i++) {
      const seed = deriveSeed(i, 'x');
      expect(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 31).toBe(true);
    }
  });
});

describe('permutation', () => {
  it('holds each index once', () => {
    const order = permutation(createRng(9), 100);
    expect(new Set(order).size).toBe(100);
  });
});
