import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RegistryDb } from '../registry/database.js';
import { getStudent, registerStudent, type Student } from '../registry/students.js';
import { readLabelledRows } from '../shared/data/csv.js';
import { getDatasetSchema } from '../shared/data/dataset-schema.js';
import { encodeRows, parsePreprocessorSpec } from '../shared/data/preprocessing.js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { trainStudent } from '../shared/ml/distil.js';
import type { Engine } from '../shared/ml/engine.js';
import { prAuc, rocAuc } from '../shared/ml/metrics.js';
import { loadModel, saveModel } from '../shared/ml/model-io.js';
import { predictPositive } from '../shared/ml/predict.js';
import { createTrainingProgress } from '../shared/ml/progress.js';

/** Defaults of {@link fineTuneStudent}. */
export const FINE_TUNE_DEFAULTS = Object.freeze({
  // A tenth of the students' usual step size: the student already sits near a good
  // solution, and a few hundred own rows at full speed would pull it towards them alone.
  learningRate: 1e-4,
  epochs: 20,
  batchSize: 64,
});

/** Options of {@link fineTuneStudent}. */
export interface FineTuneOptions {
  engine: Engine;
  db: RegistryDb;
  /** The registered student to start from (any kind with files on disk). */
  studentId: string;
  /** Who fine-tunes: recorded as the new student's owner. */
  owner: string;
  dataset: string;
  /** The bank's labelled rows to train on. */
  ownRows: string;
  /** Held-out labelled rows both students are scored on. */
  testRows: string;
  /** Where the fine-tuned student is saved (model.json, weights.bin, preprocessing.json). */
  outputDir: string;
  epochs?: number;
  learningRate?: number;
  batchSize?: number;
  seed: number;
  logger: Logger;
}

/** Both students scored on the same held-out rows. */
export interface FineTuneResult {
  parent: { id: string; kind: string; auc: number; prAuc: number };
  fineTuned: { id: string; auc: number; prAuc: number; modelDir: string };
  params: number;
  ownRows: number;
  testRows: number;
  steps: number;
  durationMs: number;
}

function studentDir(student: Student): string {
  if (!student.path) {
    throw fail('REQUEST_INVALID', {
      detail: `student ${student.id} has no files on disk to fine-tune from`,
    });
  }
  return student.path;
}

/**
 * Trains a copy of a registered student further on the bank's own rows (cross-entropy,
 * balanced class weights, a small step size), scores the unchanged student and the copy on
 * the same held-out rows, saves the copy and registers it as `fine-tuned`, child of the
 * original. The original's files and record stay as they were.
 *
 * @throws REQUEST_INVALID for an unknown student or one without files; the data and
 *   model errors of reading rows and models.
 */
export async function fineTuneStudent(options: FineTuneOptions): Promise<FineTuneResult> {
  const { engine, db, logger } = options;
  const parent = await getStudent(db, options.studentId);
  if (!parent) {
    throw fail('REQUEST_INVALID', { detail: `no student ${options.studentId} is registered` });
  }
  const dir = studentDir(parent);
  let specJson: unknown;
  try {
    specJson = JSON.parse(readFileSync(join(dir, 'preprocessing.json'), 'utf8'));
  } catch (err) {
    throw fail(
      'MODEL_INVALID',
      { path: dir, detail: 'preprocessing.json is missing or not JSON' },
      { cause: err },
    );
  }
  const spec = parsePreprocessorSpec(specJson);
  const schema = getDatasetSchema(options.dataset);
  const own = readLabelledRows(options.ownRows, schema);
  const test = readLabelledRows(options.testRows, schema);
  const ownX = encodeRows(spec, own.rows);
  const testX = encodeRows(spec, test.rows);

  const started = performance.now();
  const model = await loadModel(engine, dir);
  const progress = createTrainingProgress({ label: `fine-tune ${parent.id.slice(0, 8)}`, logger });
  let tuned;
  try {
    const inputDim = model.inputs[0].shape[1] as number;
    tuned = await trainStudent(engine, {
      inputDim,
      hidden: [],
      init: model,
      own: { x: ownX, y: own.labels },
      epochs: options.epochs ?? FINE_TUNE_DEFAULTS.epochs,
      batchSize: options.batchSize ?? FINE_TUNE_DEFAULTS.batchSize,
      learningRate: options.learningRate ?? FINE_TUNE_DEFAULTS.learningRate,
      seed: options.seed,
      logger,
      onProgress: progress.update,
    }).finally(() => progress.stop());
    const score = (m: typeof model) => {
      const p = predictPositive(engine, m, testX, test.labels.length);
      return { auc: rocAuc(p, test.labels), prAuc: prAuc(p, test.labels) };
    };
    const before = score(model);
    const after = score(tuned.model);
    const params = tuned.model.countParams();
    await saveModel(tuned.model, options.outputDir);
    // The copy encodes rows as its parent did.
    const { writeAtomically } = await import('./local-store.js');
    await writeAtomically(
      join(options.outputDir, 'preprocessing.json'),
      JSON.stringify(spec, null, 2),
    );
    const record = await registerStudent(db, {
      knowledgeVersionId: parent.knowledgeVersionId,
      owner: options.owner,
      kind: 'fine-tuned',
      parentStudentId: parent.id,
      architecture: parent.architecture as never,
      params,
      metrics: {
        auc: after.auc,
        prAuc: after.prAuc,
        parentAuc: before.auc,
        parentPrAuc: before.prAuc,
        ownRows: own.labels.length,
        testRows: test.labels.length,
        learningRate: options.learningRate ?? FINE_TUNE_DEFAULTS.learningRate,
        steps: tuned.steps,
      },
      engine: engine.name,
      path: options.outputDir,
    });
    const result: FineTuneResult = {
      parent: { id: parent.id, kind: parent.kind, ...before },
      fineTuned: { id: record.id, ...after, modelDir: options.outputDir },
      params,
      ownRows: own.labels.length,
      testRows: test.labels.length,
      steps: tuned.steps,
      durationMs: Math.round(performance.now() - started),
    };
    logger.info(
      { parent: parent.id, fineTuned: record.id, parentAuc: before.auc, auc: after.auc },
      'student fine-tuned',
    );
    return result;
  } finally {
    model.dispose();
    tuned?.model.dispose();
  }
}
