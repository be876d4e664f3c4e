import { describe, expect, it } from 'vitest';
import { splitStratified } from '../../services/shared/data/split.js';
import { hasCode } from '../../services/shared/errors.js';

function labelsWith(n: number, positives: number): Uint8Array {
  const labels = new Uint8Array(n);
  // Spread the positives so that index order says nothing about the class.
  for (let k = 0; k < positives; k++) labels[Math.floor((k * n) / positives)] = 1;
  return labels;
}

describe('splitStratified with the reference protocol fractions', () => {
  const labels = labelsWith(1000, 50);
  const parts = splitStratified(labels, { hub: 0.5, transfer: 0.2, bank: 0.1, test: 0.2 }, 7);

  it('cuts each class at the fractions', () => {
    const count = (part: Uint32Array) => Array.from(part).filter((i) => labels[i] === 1).length;
    expect(parts.hub.length).toBe(500);
    expect(count(parts.hub)).toBe(25);
    expect(parts.transfer.length).toBe(200);
    expect(count(parts.transfer)).toBe(10);
    expect(count(parts.bank)).toBe(5);
    expect(count(parts.test)).toBe(10);
  });

  it('assigns every row once when fractions add up to 1, each part sorted', () => {
    const all = [...parts.hub, ...parts.transfer, ...parts.bank, ...parts.test];
    expect(new Set(all).size).toBe(1000);
    for (const part of Object.values(parts)) {
      expect(Array.from(part)).toEqual(Array.from(part).sort((a, b) => a - b));
    }
  });

  it('gives the same parts for the same seed and different ones for another', () => {
    const again = splitStratified(labels, { hub: 0.5, transfer: 0.2, bank: 0.1, test: 0.2 }, 7);
    expect(again).toEqual(parts);
    const other = splitStratified(labels, { hub: 0.5, transfer: 0.2, bank: 0.1, test: 0.2 }, 8);
    expect(Array.from(other.hub)).not.toEqual(Array.from(parts.hub));
  });
});

describe('splitStratified with fractions below 1', () => {
  it('leaves the remainder unassigned', () => {
    const parts = splitStratified(labelsWith(100, 10), { a: 0.3, b: 0.2 }, 1);
    expect(parts.a.length + parts.b.length).toBe(50);
    expect(new Set([...parts.a, ...parts.b]).size).toBe(50);
  });

  it('keeps each part class-balanced to within one row per class', () => {
    const labels = labelsWith(333, 17);
    const { part } = splitStratified(labels, { part: 0.37 }, 3);
    const positives = Array.from(part).filter((i) => labels[i] === 1).length;
    expect(Math.abs(positives - 0.37 * 17)).toBeLessThanOrEqual(1);
    expect(Math.abs(part.length - 0.37 * 333)).toBeLessThanOrEqual(2);
  });
});

describe('splitStratified with invalid fractions', () => {
  it('rejects fractions adding up to more than 1, or outside [0, 1], with REQUEST_INVALID', () => {
    const labels = labelsWith(10, 2);
    const cases: Record<string, number>[] = [{ a: 0.6, b: 0.5 }, { a: -0.1 }, { a: Number.NaN }];
    for (const fractions of cases) {
      try {
        splitStratified(labels, fractions, 0);
        expect.unreachable();
      } catch (err) {
        expect(hasCode(err, 'REQUEST_INVALID')).toBe(true);
      }
    }
  });

  it('accepts decimal fractions that add up to 1 in decimal but not in binary', () => {
    const parts = splitStratified(labelsWith(10, 2), { a: 0.1, b: 0.2, c: 0.7 }, 0);
    expect(parts.a.length + parts.b.length + parts.c.length).toBe(10);
  });
});
