import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import {
  disposeEnsemble,
  ensembleProbabilities,
  partitionShards,
  trainTeacherEnsemble,
} from '../../services/shared/privacy/ensemble.js';
import { syntheticTask } from '../helpers/synthetic.js';

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});

describe('partitionShards', () => {
  it('cuts positions into disjoint shards of near-equal size, by seed only', () => {
    const shards = partitionShards(103, 10, 7);
    const seen = new Set<number>();
    for (const shard of shards) {
      expect(shard.length === 10 || shard.length === 11).toBe(true);
      for (const row of shard) {
        expect(seen.has(row)).toBe(false);
        seen.add(row);
      }
    }
    expect(seen.size).toBe(103);
    expect(partitionShards(103, 10, 7)).toEqual(shards);
    expect(partitionShards(103, 10, 8)).not.toEqual(shards);
    expect(() => partitionShards(5, 6, 1)).toThrow(/teachers/);
  });
});

describe('trainTeacherEnsemble', () => {
  it('changes exactly one teacher when one private row changes', async () => {
    const task = syntheticTask(480, 4, 3);
    const probe = syntheticTask(60, 4, 4);
    const options = {
      inputDim: 4,
      teachers: 4,
      seed: 21,
      hidden: [8],
      epochs: 3,
      patience: 3,
    };
    const before = await trainTeacherEnsemble(engine, { ...options, x: task.x, y: task.y });
    // Replace row 17 (features and label): the neighbouring dataset.
    const x2 = task.x.slice();
    const y2 = task.y.slice();
    x2.set([3, -3, 3, -3], 17 * 4);
    y2[17] = 1 - y2[17];
    const after = await trainTeacherEnsemble(engine, { ...options, x: x2, y: y2 });
    const owner = before.shards.findIndex((shard) => shard.includes(17));
    expect(owner).toBeGreaterThanOrEqual(0);

    const p1 = ensembleProbabilities(engine, before.members, probe.x, 60, 2);
    const p2 = ensembleProbabilities(engine, after.members, probe.x, 60, 2);
    for (let j = 0; j < 4; j++) {
      const same = p1[j].every((v, i) => v === p2[j][i]);
      expect(same).toBe(j !== owner);
      for (let r = 0; r < 60; r++) expect(p1[j][2 * r] + p1[j][2 * r + 1]).toBeCloseTo(1, 5);
    }
    disposeEnsemble(before.members);
    disposeEnsemble(after.members);
  });

  it('falls back to a shard-only constant teacher when a shard has one class', async () => {
    const task = syntheticTask(40, 3, 5);
    const y = new Uint8Array(40);
    // Positives only in shard 0's rows, so the other shards each hold one class.
    const shards = partitionShards(40, 4, 9);
    for (const row of shards[0]) y[row] = row % 2;
    const { members } = await trainTeacherEnsemble(engine, {
      x: task.x,
      y,
      inputDim: 3,
      teachers: 4,
      seed: 9,
      hidden: [4],
      epochs: 2,
    });
    expect(members.filter((m) => m.model === undefined)).toHaveLength(3);
    expect(members.every((m) => m.model || m.prior?.[0] === 1)).toBe(true);
    const probs = ensembleProbabilities(engine, members, task.x.subarray(0, 6), 2);
    expect(Array.from(probs[1])).toEqual([1, 0, 1, 0]);
    disposeEnsemble(members);
  });
});
