import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../services/shared/digest.js';
import { hasCode } from '../../services/shared/errors.js';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { buildMlp } from '../../services/shared/ml/mlp.js';
import {
  deserializeModel,
  loadModel,
  saveModel,
  serializeModel,
} from '../../services/shared/ml/model-io.js';
import { predictPositive } from '../../services/shared/ml/predict.js';
import { syntheticTask } from '../helpers/synthetic.js';

let engine: Engine;
let dir: string;
beforeAll(async () => {
  engine = await loadEngine({ logger: silentLogger() });
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'distillery-model-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const { x, n } = syntheticTask(300, 5, 1);

describe('saveModel and loadModel', () => {
  it('round-trips a model to identical predictions', async () => {
    const model = buildMlp(engine.tf, { inputDim: 5, hidden: [8, 4], dropout: 0.2, seed: 3 });
    const info = await saveModel(model, join(dir, 'teacher'));
    const loaded = await loadModel(engine, join(dir, 'teacher'));
    const before = predictPositive(engine, model, x, n);
    const after = predictPositive(engine, loaded, x, n);
    expect(Array.from(after)).toEqual(Array.from(before));
    expect(loaded.layers.map((l) => l.name)).toEqual(model.layers.map((l) => l.name));

    const weights = readFileSync(join(dir, 'teacher', 'weights.bin'));
    expect(info.weightBytes).toBe(weights.byteLength);
    expect(info.weightsSha256).toBe(sha256Hex(weights));
    expect(info.weightBytes).toBe(4 * model.countParams());
    model.dispose();
    loaded.dispose();
  });

  it('writes model.json in the layers format with a manifest naming ./weights.bin', async () => {
    const model = buildMlp(engine.tf, { inputDim: 5, hidden: [3], seed: 3 });
    await saveModel(model, dir);
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest[0].paths).toEqual(['./weights.bin']);
    expect(json.weightsManifest[0].weights.map((w: { name: string }) => w.name)).toEqual([
      'hidden_1/kernel',
      'hidden_1/bias',
      'logits/kernel',
      'logits/bias',
    ]);
    model.dispose();
  });

  it('reports a missing folder with MODEL_NOT_FOUND', async () => {
    await expect(loadModel(engine, join(dir, 'absent'))).rejects.toSatisfy((err) =>
      hasCode(err, 'MODEL_NOT_FOUND'),
    );
  });

  it('rejects truncated weights and a weights path outside the folder with MODEL_INVALID', async () => {
    const model = buildMlp(engine.tf, { inputDim: 5, hidden: [3], seed: 3 });
    await saveModel(model, dir);
    const weights = readFileSync(join(dir, 'weights.bin'));
    writeFileSync(join(dir, 'weights.bin'), weights.subarray(0, weights.byteLength - 4));
    await expect(loadModel(engine, dir)).rejects.toSatisfy((err) => hasCode(err, 'MODEL_INVALID'));

    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    json.weightsManifest[0].paths = ['../escape.bin'];
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    await expect(loadModel(engine, dir)).rejects.toThrow(/not a file name/);
    model.dispose();
  });
});

describe('serializeModel and deserializeModel', () => {
  it('round-trip in memory to identical predictions', async () => {
    const model = buildMlp(engine.tf, { inputDim: 5, hidden: [4], seed: 9 });
    const serialized = await serializeModel(model);
    const copy = await deserializeModel(engine, serialized);
    const a = predictPositive(engine, model, x, n);
    expect(Array.from(predictPositive(engine, copy, x, n))).toEqual(Array.from(a));
    model.dispose();
    copy.dispose();
  });

  it('rejects text that is not JSON with MODEL_INVALID', async () => {
    const bad = { modelJson: '{', weights: new Uint8Array(0) };
    await expect(deserializeModel(engine, bad)).rejects.toSatisfy((err) =>
      hasCode(err, 'MODEL_INVALID'),
    );
  });
});
