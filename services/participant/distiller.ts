import { sha256Hex } from '../shared/digest.js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { readLabelledRows, readUnlabelledRows } from '../shared/data/csv.js';
import { getDatasetSchema } from '../shared/data/dataset-schema.js';
import {
  encodeRows,
  featureDim,
  findNonFinite,
  parsePreprocessorSpec,
} from '../shared/data/preprocessing.js';
import type { KnowledgeManifest } from '../shared/knowledge/manifest.js';
import { unpackTensor } from '../shared/knowledge/tensor-pack.js';
import type { Engine } from '../shared/ml/engine.js';
import { countParams } from '../shared/ml/mlp.js';
import { prAuc, rocAuc } from '../shared/ml/metrics.js';
import { predictPositive } from '../shared/ml/predict.js';
import { trainStudent, type StudentTeacherInput } from '../shared/ml/distil.js';
import { saveModel } from '../shared/ml/model-io.js';
import { writeAtomically } from './local-store.js';
import { join } from 'node:path';

/** The participant's own files; no other process opens them. */
export interface ParticipantDataFiles {
  dataset: string;
  /** The bank's labelled rows. Never sent anywhere. */
  ownRows: string;
  /** The bank's copy of the consortium's transfer set. */
  transferRows: string;
  /** Labelled rows to evaluate students on. */
  testRows: string;
}

/** How students are shaped and trained. */
export interface StudentSettings {
  /** Hidden layer widths; default [16]. */
  hidden: number[];
  /** Epochs; default a step budget that suits the data (see STUDENT_DEFAULTS). */
  epochs?: number;
  /** Weight of the teacher's soft targets against the bank's own labels. */
  alpha: number;
  batchSize: number;
  learningRate?: number;
  seed: number;
}

/** What distilling one version gave, as reported and saved. */
export interface StudentResult {
  participant: string;
  versionId: string;
  sequence: number;
  teacherParams: number;
  params: number;
  compression: number;
  auc: number;
  prAuc: number;
  aucWithoutTeacher: number;
  prAucWithoutTeacher: number;
  ownRows: number;
  transferRows: number;
  temperature: number;
  engine: string;
  modelDir: string;
  timingsMs: { distil: number; baseline: number; download?: number };
}

interface EncodedLocalData {
  inputDim: number;
  own: { x: Float32Array; y: Uint8Array; rows: number };
  transfer: { x: Float32Array; rows: number; encodedSha256: string };
  test: { x: Float32Array; y: Uint8Array; rows: number };
}

/**
 * Distils students from downloaded versions on the bank's own machine. The bank's rows are
 * encoded with the preprocessing each version ships, so they match the teacher's inputs.
 * The baseline (the same student trained on the bank's rows alone) depends only on that
 * preprocessing, so it is trained once per preprocessing and reused.
 */
export class Distiller {
  readonly #baselines = new Map<string, { auc: number; prAuc: number; ms: number }>();

  constructor(
    private readonly engine: Engine,
    private readonly participant: string,
    private readonly files: ParticipantDataFiles,
    private readonly settings: StudentSettings,
    private readonly logger: Logger,
  ) {}

  /**
   * Reads and checks the local files, so that bad data stops the node at start. Each version
   * reads them again (see #encode): a bank may refresh its rows while its node runs.
   */
  checkFiles(): void {
    const schema = getDatasetSchema(this.files.dataset);
    readLabelledRows(this.files.ownRows, schema);
    readUnlabelledRows(this.files.transferRows, schema);
    readLabelledRows(this.files.testRows, schema);
  }

  async distil(
    manifest: KnowledgeManifest,
    blob: Uint8Array,
    version: { id: string; sequence: number },
    outputDir: string,
  ): Promise<StudentResult> {
    const data = this.#encode(manifest);
    const { engine } = this;

    const started = performance.now();
    const teacherLogits = unpackTensor(manifest, blob, 'logits');
    if (teacherLogits.length !== data.transfer.rows * 2) {
      throw fail('MODEL_SHAPE_MISMATCH', {
        what: 'teacher logits',
        expected: `[${data.transfer.rows}, 2]`,
        actual: `${teacherLogits.length} values`,
      });
    }
    const model = await this.#train(data, {
      x: data.transfer.x,
      logits: teacherLogits,
      temperature: manifest.temperature,
      alpha: this.settings.alpha,
    });
    const scores = predictPositive(engine, model, data.test.x, data.test.rows);
    const distilMs = performance.now() - started;

    const baseline = await this.#baseline(manifest, data);
    const params = countParams(model);
    await saveModel(model, outputDir);
    model.dispose();

    const result: StudentResult = {
      participant: this.participant,
      versionId: version.id,
      sequence: version.sequence,
      teacherParams: manifest.teacher.params,
      params,
      compression: manifest.teacher.params / params,
      auc: rocAuc(scores, data.test.y),
      prAuc: prAuc(scores, data.test.y),
      aucWithoutTeacher: baseline.auc,
      prAucWithoutTeacher: baseline.prAuc,
      ownRows: data.own.rows,
      transferRows: data.transfer.rows,
      temperature: manifest.temperature,
      engine: engine.name,
      modelDir: outputDir,
      timingsMs: { distil: Math.round(distilMs), baseline: Math.round(baseline.ms) },
    };
    await writeAtomically(join(outputDir, 'metrics.json'), JSON.stringify(result, null, 2));
    return result;
  }

  /** Trains the configured student on the bank's rows, with the teacher's states if given. */
  #train(data: EncodedLocalData, teacher?: StudentTeacherInput) {
    const { settings } = this;
    return trainStudent(this.engine, {
      inputDim: data.inputDim,
      hidden: settings.hidden,
      own: { x: data.own.x, y: data.own.y },
      ...(teacher ? { teacher } : {}),
      ...(settings.epochs === undefined ? {} : { epochs: settings.epochs }),
      batchSize: settings.batchSize,
      ...(settings.learningRate === undefined ? {} : { learningRate: settings.learningRate }),
      seed: settings.seed,
      logger: this.logger,
    }).then((trained) => trained.model);
  }

  #encode(manifest: KnowledgeManifest): EncodedLocalData {
    const schema = getDatasetSchema(this.files.dataset);
    const spec = parsePreprocessorSpec(manifest.preprocessing);
    const own = readLabelledRows(this.files.ownRows, schema);
    const transferRows = readUnlabelledRows(this.files.transferRows, schema);
    const test = readLabelledRows(this.files.testRows, schema);

    const transferX = encodeRows(spec, transferRows);
    const encodedSha256 = sha256Hex(
      new Uint8Array(transferX.buffer, transferX.byteOffset, transferX.byteLength),
    );
    if (encodedSha256 !== manifest.transferSet.encodedSha256) {
      throw fail('DATA_TRANSFER_MISMATCH', {
        path: this.files.transferRows,
        actual: encodedSha256,
        expected: manifest.transferSet.encodedSha256,
      });
    }
    const ownX = encodeRows(spec, own.rows);
    const testX = encodeRows(spec, test.rows);
    for (const [x, path] of [
      [ownX, this.files.ownRows],
      [testX, this.files.testRows],
    ] as const) {
      const bad = findNonFinite(spec, x);
      if (bad) {
        throw fail('DATA_MALFORMED', {
          path,
          detail: `row ${bad.row}, column "${bad.feature}" does not scale to a finite number with the hub's preprocessing`,
        });
      }
    }
    return {
      inputDim: featureDim(spec),
      own: { x: ownX, y: own.labels, rows: own.rows.length },
      transfer: { x: transferX, rows: transferRows.length, encodedSha256 },
      test: { x: testX, y: test.labels, rows: test.rows.length },
    };
  }

  async #baseline(manifest: KnowledgeManifest, data: EncodedLocalData) {
    const key = sha256Hex(JSON.stringify(manifest.preprocessing));
    const cached = this.#baselines.get(key);
    if (cached) return cached;

    const started = performance.now();
    const model = await this.#train(data);
    const scores = predictPositive(this.engine, model, data.test.x, data.test.rows);
    model.dispose();
    const baseline = {
      auc: rocAuc(scores, data.test.y),
      prAuc: prAuc(scores, data.test.y),
      ms: performance.now() - started,
    };
    this.#baselines.set(key, baseline);
    return baseline;
  }
}
