import { fail } from '../errors.js';
import { createRng } from '../ml/random.js';

// Fractions that add up to 1 in decimal (0.5 + 0.2 + 0.1 + 0.2) may exceed it in binary.
const SUM_TOLERANCE = 1e-9;

function checkFractions(fractions: Record<string, number>): [string, number][] {
  const entries = Object.entries(fractions);
  let sum = 0;
  for (const [name, fraction] of entries) {
    if (!Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
      throw fail('REQUEST_INVALID', {
        detail: `fractions.${name} must be a number in [0, 1], got ${fraction}`,
      });
    }
    sum += fraction;
  }
  if (sum > 1 + SUM_TOLERANCE) {
    throw fail('REQUEST_INVALID', { detail: `fractions add up to ${sum}, more than 1` });
  }
  return entries;
}

/**
 * Splits row indices into named parts, stratified by label: within each class the indices
 * are shuffled with `seed`, then cut at the cumulative fractions (rounded), so every part
 * keeps the class balance of the whole to within one row per class. Parts are cut in the
 * key order of `fractions`; what the fractions leave over stays unassigned. Each part's
 * indices are sorted ascending. The same labels, fractions and seed give the same parts.
 *
 * @param labels class of each row, 0 or 1 (any small integers work).
 * @param fractions share of the rows per part, each in [0, 1], adding up to at most 1.
 * @throws REQUEST_INVALID for a bad fraction or seed.
 */
export function splitStratified(
  labels: Uint8Array,
  fractions: Record<string, number>,
  seed: number,
): Record<string, Uint32Array> {
  const entries = checkFractions(fractions);
  const rng = createRng(seed);

  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const members = byClass.get(labels[i]);
    if (members === undefined) byClass.set(labels[i], [i]);
    else members.push(i);
  }

  const parts: Record<string, number[]> = {};
  for (const [name] of entries) parts[name] = [];

  // Classes in ascending order, so that the draws do not depend on which class comes first.
  for (const label of [...byClass.keys()].sort((x, y) => x - y)) {
    const members = rng.shuffle(byClass.get(label)!);
    let cumulative = 0;
    let start = 0;
    for (const [name, fraction] of entries) {
      cumulative += fraction;
      const end = Math.min(members.length, Math.round(cumulative * members.length));
      for (let k = start; k < end; k++) parts[name].push(members[k]);
      start = Math.max(start, end);
    }
  }

  const result: Record<string, Uint32Array> = {};
  for (const [name] of entries) result[name] = Uint32Array.from(parts[name]).sort();
  return result;
}
