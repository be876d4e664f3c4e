import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { silentLogger } from '../../services/shared/logger.js';
import { readCheckpoint } from '../../services/shared/ml/checkpoint.js';
import { trainStudent, type TrainStudentOptions } from '../../services/shared/ml/distil.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { syntheticTask } from '../helpers/synthetic.js';

let engine: Engine;
const dirs: string[] = [];
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'distillery-ckpt-'));
  dirs.push(dir);
  return dir;
}

const own = syntheticTask(80, 5, 41);
const transfer = syntheticTask(700, 5, 42);
const validation = syntheticTask(200, 5, 43);
const hintWidth = 2;
const options: TrainStudentOptions = {
  inputDim: 5,
  hidden: [8, 4],
  own: { x: own.x, y: own.y },
  teacher: {
    x: transfer.x,
    logits: Float32Array.from({ length: 1400 }, (_, k) => (k % 2 ? transfer.trueLogit[k >> 1] : 0)),
    temperature: 3,
    alpha: 0.8,
    hint: {
      values: Float32Array.from({ length: 700 * hintWidth }, (_, k) =>
        Math.max(0, (k % 2 ? -1 : 1) * transfer.trueLogit[k >> 1]),
      ),
      width: hintWidth,
    },
  },
  epochs: 5,
  batchSize: 128,
  ownBatchSize: 32,
  learningRate: 5e-3,
  validation: { x: validation.x, y: validation.y },
  patience: 10,
  seed: 11,
};

function weightsOf(model: Awaited<ReturnType<typeof trainStudent>>['model']): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

class Crash extends Error {}

/** Trains one epoch of `options` keeping its checkpoint; the directory that holds it. */
async function keptCheckpointOfOneEpoch(): Promise<string> {
  const dir = tempDir();
  (
    await trainStudent(engine, {
      ...options,
      epochs: 1,
      checkpointDir: dir,
      keepCheckpoint: true,
    })
  ).model.dispose();
  return dir;
}

describe('student checkpoints', () => {
  it('resumes after a crash in epoch 4 and ends with the weights of an uninterrupted run', async () => {
    const uninterrupted = await trainStudent(engine, options);
    const expected = weightsOf(uninterrupted.model);
    const expectedHistory = uninterrupted.history;
    uninterrupted.model.dispose();

    const dir = tempDir();
    // The listener throws part-way through epoch 4, as a crash would end the process there.
    await expect(
      trainStudent(engine, {
        ...options,
        checkpointDir: dir,
        onProgress: (p) => {
          if (p.epoch === 4) throw new Crash('simulated crash');
        },
      }),
    ).rejects.toBeInstanceOf(Crash);
    // Batch events are throttled, so the crash lands in one of epoch 4's batches or in its
    // end-of-epoch event, which comes before epoch 4's checkpoint: epoch 3's is the last.
    const saved = readCheckpoint(dir);
    expect(saved?.epoch).toBe(3);

    const resumed = await trainStudent(engine, { ...options, checkpointDir: dir });
    expect(resumed.resumedFromEpoch).toBe(saved?.epoch);
    expect(resumed.history).toEqual(expectedHistory);
    expect(resumed.steps).toBe(5 * Math.ceil(700 / 128));
    const actual = weightsOf(resumed.model);
    actual.forEach((w, i) => {
      for (let k = 0; k < w.length; k++)
        expect(Math.abs(w[k] - expected[i][k])).toBeLessThanOrEqual(1e-6);
    });
    resumed.model.dispose();
    // A completed run removes its checkpoint.
    expect(readdirSync(dir)).toEqual([]);
  });

  it('keeps a checkpoint on request, and resumes from it to the same end', async () => {
    const dir = tempDir();
    const first = await trainStudent(engine, {
      ...options,
      epochs: 2,
      checkpointDir: dir,
      keepCheckpoint: true,
    });
    const saved = readCheckpoint(dir);
    expect(saved?.epoch).toBe(2);
    expect(saved?.trainer.t).toBe(first.steps);
    expect(saved?.history).toEqual(first.history);
    first.model.dispose();
  });

  it('starts afresh from a checkpoint of other options instead of mixing two runs', async () => {
    const dir = await keptCheckpointOfOneEpoch();
    const other = await trainStudent(engine, {
      ...options,
      epochs: 2,
      seed: 12,
      checkpointDir: dir,
    });
    expect(other.resumedFromEpoch).toBeUndefined();
    expect(other.history.map((h) => h.epoch)).toEqual([1, 2]);
    other.model.dispose();
  });

  it('refuses a damaged checkpoint with MODEL_INVALID', async () => {
    const dir = await keptCheckpointOfOneEpoch();
    const state = readdirSync(dir).find((name) => name.endsWith('.bin'));
    expect(state && existsSync(join(dir, state))).toBe(true);
    writeFileSync(join(dir, state as string), new Uint8Array(16));
    await expect(trainStudent(engine, { ...options, checkpointDir: dir })).rejects.toSatisfy(
      (err) => hasCode(err, 'MODEL_INVALID'),
    );
  });
});
