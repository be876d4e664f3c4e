import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fineTuneStudent } from '../../services/participant/fine-tune.js';
import { openRegistry, type Registry } from '../../services/registry/database.js';
import { getStudent, listStudents, registerStudent } from '../../services/registry/students.js';
import { readAllRows, readLabelledRows, writeRows } from '../../services/shared/data/csv.js';
import { CREDIT_DATA } from '../../services/shared/data/dataset-schema.js';
import {
  encodeRows,
  featureDim,
  fitPreprocessor,
} from '../../services/shared/data/preprocessing.js';
import { splitStratified } from '../../services/shared/data/split.js';
import { silentLogger } from '../../services/shared/logger.js';
import { trainStudent } from '../../services/shared/ml/distil.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { rocAuc } from '../../services/shared/ml/metrics.js';
import {
  loadModel,
  MODEL_JSON,
  saveModel,
  WEIGHTS_BIN,
} from '../../services/shared/ml/model-io.js';
import { predictPositive } from '../../services/shared/ml/predict.js';

const logger = silentLogger();

// Real rows of data/credit_data.csv (which has missing cells): a student is trained on a
// bank's rows, saved and registered as a participant does, then fine-tuned.
describe('fine-tuning a kept student', () => {
  let dir: string;
  let engine: Engine;
  let registry: Registry;
  let parentId: string;
  let parentDir: string;
  let testPath: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'distillery-fine-tune-'));
    engine = await loadEngine({ logger });
    registry = await openRegistry({ databaseUrl: 'memory://', logger });
    const { columns, rows } = readAllRows('data/credit_data.csv');
    const { labels } = readLabelledRows('data/credit_data.csv', CREDIT_DATA);
    const parts = splitStratified(labels, { fit: 0.5, own: 0.1, test: 0.3 }, 8);
    const pick = (indices: Uint32Array) => Array.from(indices, (i) => rows[i]);
    writeRows(join(dir, 'own.csv'), columns, pick(parts.own));
    testPath = join(dir, 'test.csv');
    writeRows(testPath, columns, pick(parts.test));

    const fitRows = readLabelledRows('data/credit_data.csv', CREDIT_DATA).rows;
    const spec = fitPreprocessor(
      Array.from(parts.fit, (i) => fitRows[i]),
      CREDIT_DATA,
    );
    const own = readLabelledRows(join(dir, 'own.csv'), CREDIT_DATA);
    // A weak parent: few steps on the own rows, so that further training has room to help.
    const parent = await trainStudent(engine, {
      inputDim: featureDim(spec),
      hidden: [16],
      own: { x: encodeRows(spec, own.rows), y: own.labels },
      epochs: 3,
      batchSize: 128,
      seed: 8,
    });
    parentDir = join(dir, 'students', 'v1');
    await saveModel(parent.model, parentDir);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(parentDir, 'preprocessing.json'), JSON.stringify(spec));
    const record = await registerStudent(registry.prisma, {
      knowledgeVersionId: 'b'.repeat(64),
      owner: 'bank-a',
      kind: 'distilled',
      architecture: { inputDim: featureDim(spec), hidden: [16], outputs: 2, format: 'tfjs-layers' },
      params: parent.model.countParams(),
      metrics: {},
      engine: engine.name,
      path: parentDir,
    });
    parentId = record.id;
    parent.model.dispose();
  }, 120_000);

  afterAll(async () => {
    await registry?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scores both students on the held-out rows, saves and registers the fine-tuned child', async () => {
    const parentWeights = readFileSync(join(parentDir, WEIGHTS_BIN));
    const result = await fineTuneStudent({
      engine,
      db: registry.prisma,
      studentId: parentId,
      owner: 'bank-a',
      dataset: 'credit_data',
      ownRows: join(dir, 'own.csv'),
      testRows: testPath,
      outputDir: join(dir, 'students', 'tuned'),
      epochs: 30,
      learningRate: 1e-3,
      seed: 8,
      logger,
    });
    // The reported AUCs are those of the files on disk, scored again here.
    const test = readLabelledRows(testPath, CREDIT_DATA);
    const spec = JSON.parse(readFileSync(join(parentDir, 'preprocessing.json'), 'utf8'));
    const x = encodeRows(spec, test.rows);
    for (const [modelDir, auc] of [
      [parentDir, result.parent.auc],
      [result.fineTuned.modelDir, result.fineTuned.auc],
    ] as const) {
      const model = await loadModel(engine, modelDir);
      expect(rocAuc(predictPositive(engine, model, x, test.rows.length), test.labels)).toBeCloseTo(
        auc,
        6,
      );
      model.dispose();
    }
    expect(result.parent.auc).not.toBe(result.fineTuned.auc);
    expect(result.fineTuned.auc).toBeGreaterThan(0.7);
    expect(existsSync(join(result.fineTuned.modelDir, 'preprocessing.json'))).toBe(true);
    // The parent's files are untouched; the child is registered under it.
    expect(readFileSync(join(parentDir, WEIGHTS_BIN)).equals(parentWeights)).toBe(true);
    const child = await getStudent(registry.prisma, result.fineTuned.id);
    expect(child).toMatchObject({ kind: 'fine-tuned', parentStudentId: parentId, owner: 'bank-a' });
    expect((child?.metrics as { parentAuc: number }).parentAuc).toBe(result.parent.auc);
    expect(await listStudents(registry.prisma, { kind: 'fine-tuned' })).toHaveLength(1);
  }, 120_000);

  it('saves students that tf.loadLayersModel reads on the plain JavaScript (cpu) backend', async () => {
    const modelJson = JSON.parse(readFileSync(join(parentDir, MODEL_JSON), 'utf8'));
    const weights = readFileSync(join(parentDir, WEIGHTS_BIN));
    const test = readLabelledRows(testPath, CREDIT_DATA);
    const spec = JSON.parse(readFileSync(join(parentDir, 'preprocessing.json'), 'utf8'));
    const x = encodeRows(spec, test.rows);
    const onEngine = await loadModel(engine, parentDir);
    const expected = predictPositive(engine, onEngine, x, test.rows.length);
    onEngine.dispose();

    const previous = tf.getBackend();
    await tf.setBackend('cpu');
    try {
      // The stock loader with the files as tfjs-node's file:// handler would hand them over.
      const model = await tf.loadLayersModel(
        tf.io.fromMemory({
          modelTopology: modelJson.modelTopology,
          weightSpecs: modelJson.weightsManifest[0].weights,
          weightData: weights.buffer.slice(
            weights.byteOffset,
            weights.byteOffset + weights.byteLength,
          ),
        }),
      );
      expect(tf.getBackend()).toBe('cpu');
      const logits = (
        model.predict(tf.tensor2d(x, [test.rows.length, x.length / test.rows.length])) as tf.Tensor
      ).dataSync();
      for (let i = 0; i < test.rows.length; i++) {
        const p = 1 / (1 + Math.exp(logits[2 * i] - logits[2 * i + 1]));
        expect(Math.abs(p - expected[i])).toBeLessThan(1e-5);
      }
      model.dispose();
    } finally {
      await tf.setBackend(previous);
    }
  });
});
