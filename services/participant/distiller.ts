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
import { unpackArtefact, unpackTensor } from '../shared/knowledge/tensor-pack.js';
import type { Engine } from '../shared/ml/engine.js';
import { countParams } from '../shared/ml/mlp.js';
import { prAuc, rocAuc } from '../shared/ml/metrics.js';
import { predictPositive } from '../shared/ml/predict.js';
import { trainStudent, type StudentTeacherInput } from '../shared/ml/distil.js';
import { deserializeModel, saveModel } from '../shared/ml/model-io.js';
import { createTrainingProgress } from '../shared/ml/progress.js';
import type { RegisterStudentInput } from '../registry/students.js';
import { writeAtomically } from './local-store.js';
import { join } from 'node:path';

/** Names of the artefacts a hub-distilled student travels as inside a version. */
export const HUB_STUDENT_ARTEFACTS = Object.freeze({
  modelJson: 'student/model.json',
  weights: 'student/weights.bin',
});

/** Where students are recorded: the participant's own registry, opened on first use. */
export interface StudentRecorder {
  register(input: RegisterStudentInput): Promise<{ id: string }>;
}

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
  /**
   * Also match the teacher's hidden activations (FitNets hint) when the version carries
   * them; default false (soft targets only).
   */
  hint?: boolean;
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
  /** Id of the student in the participant's registry, when one is kept. */
  studentId?: string;
  /** True when the student also matched the teacher's hidden activations. */
  hint: boolean;
  /** The student the hub distilled itself and shipped in the version, when it did. */
  hubStudent?: { studentId?: string; params: number; auc: number; prAuc: number; modelDir: string };
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
    private readonly students?: StudentRecorder,
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

  /**
   * The tensors of `manifest` that {@link distil} reads: the teacher's logits, and the first
   * hidden layer when the hint loss is on (`required`), plus a hub-distilled student's
   * artefacts when the version carries one (`optional`: a grant may leave them out).
   * A participant downloads these and nothing else, so a grant that leaves out the kinds it
   * does not use is enough.
   */
  tensorsNeeded(manifest: KnowledgeManifest): { required: string[]; optional: string[] } {
    const required = manifest.tensors.filter((t) => t.name === 'logits').map((t) => t.name);
    const hidden = this.settings.hint
      ? manifest.tensors.find((t) => t.kind === 'hidden')
      : undefined;
    if (hidden) required.push(hidden.name);
    const names = new Set(manifest.tensors.map((t) => t.name));
    const optional = Object.values(HUB_STUDENT_ARTEFACTS).filter((name) => names.has(name));
    return { required, optional: optional.length === 2 ? optional : [] };
  }

  async distil(
    manifest: KnowledgeManifest,
    blob: Uint8Array,
    version: { id: string; sequence: number },
    outputDir: string,
    signal?: AbortSignal,
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
    const hiddenEntry = this.settings.hint
      ? manifest.tensors.find((t) => t.kind === 'hidden')
      : undefined;
    const hint = hiddenEntry
      ? {
          values: unpackTensor(manifest, blob, hiddenEntry.name),
          width: hiddenEntry.shape[1],
        }
      : undefined;
    const model = await this.#train(
      data,
      {
        x: data.transfer.x,
        logits: teacherLogits,
        temperature: manifest.temperature,
        alpha: this.settings.alpha,
        ...(hint ? { hint } : {}),
      },
      `student v${version.sequence}`,
      signal,
    );
    const scores = predictPositive(engine, model, data.test.x, data.test.rows);
    const distilMs = performance.now() - started;

    const baseline = await this.#baseline(manifest, data, signal);
    const params = countParams(model);
    await saveModel(model, outputDir);
    model.dispose();
    // The student's own copy of how to encode rows for it: fine-tuning and scoring later
    // need nothing but its directory.
    await writeAtomically(
      join(outputDir, 'preprocessing.json'),
      JSON.stringify(manifest.preprocessing, null, 2),
    );

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
      hint: hint !== undefined,
      timingsMs: { distil: Math.round(distilMs), baseline: Math.round(baseline.ms) },
    };
    const hubStudent = await this.#hubStudent(manifest, blob, data, version, outputDir);
    if (hubStudent) result.hubStudent = hubStudent;
    if (this.students) {
      const registered = await this.students.register({
        knowledgeVersionId: version.id,
        owner: this.participant,
        kind: 'distilled',
        architecture: {
          inputDim: data.inputDim,
          hidden: [...this.settings.hidden],
          outputs: 2,
          format: 'tfjs-layers',
        },
        params,
        metrics: {
          auc: result.auc,
          prAuc: result.prAuc,
          aucWithoutTeacher: result.aucWithoutTeacher,
          testRows: data.test.rows,
          ownRows: data.own.rows,
          temperature: manifest.temperature,
          alpha: this.settings.alpha,
          hint: result.hint,
          distilMs: result.timingsMs.distil,
        },
        engine: engine.name,
        path: outputDir,
      });
      result.studentId = registered.id;
    }
    await writeAtomically(join(outputDir, 'metrics.json'), JSON.stringify(result, null, 2));
    return result;
  }

  /**
   * Keeps the student the hub distilled itself, when the version ships one: saves its
   * files beside the bank's own student, scores it on the bank's test rows and registers
   * it (kind `hub`), so that the bank can use it as it is or fine-tune it.
   */
  async #hubStudent(
    manifest: KnowledgeManifest,
    blob: Uint8Array,
    data: EncodedLocalData,
    version: { id: string; sequence: number },
    outputDir: string,
  ): Promise<StudentResult['hubStudent']> {
    const names = manifest.tensors.map((t) => t.name);
    if (
      !names.includes(HUB_STUDENT_ARTEFACTS.modelJson) ||
      !names.includes(HUB_STUDENT_ARTEFACTS.weights)
    ) {
      return undefined;
    }
    const modelJson = Buffer.from(
      unpackArtefact(manifest, blob, HUB_STUDENT_ARTEFACTS.modelJson),
    ).toString('utf8');
    const weights = unpackArtefact(manifest, blob, HUB_STUDENT_ARTEFACTS.weights);
    const dir = join(outputDir, 'hub');
    const model = await deserializeModel(
      this.engine,
      { modelJson, weights },
      `version ${version.id} hub student`,
    );
    try {
      if (model.inputs[0].shape[1] !== data.inputDim) {
        throw fail('MODEL_SHAPE_MISMATCH', {
          what: 'hub student input',
          expected: `${data.inputDim} features`,
          actual: String(model.inputs[0].shape[1]),
        });
      }
      const scores = predictPositive(this.engine, model, data.test.x, data.test.rows);
      const params = countParams(model);
      await saveModel(model, dir);
      await writeAtomically(
        join(dir, 'preprocessing.json'),
        JSON.stringify(manifest.preprocessing, null, 2),
      );
      const found = {
        params,
        auc: rocAuc(scores, data.test.y),
        prAuc: prAuc(scores, data.test.y),
        modelDir: dir,
      };
      this.logger.info({ version: version.id, ...found }, 'hub student received');
      if (!this.students) return found;
      const hidden = model.layers
        .filter((layer) => layer.name !== 'logits')
        .map((layer) => (layer.getConfig() as { units: number }).units);
      const registered = await this.students.register({
        knowledgeVersionId: version.id,
        owner: this.participant,
        kind: 'hub',
        architecture: { inputDim: data.inputDim, hidden, outputs: 2, format: 'tfjs-layers' },
        params,
        metrics: { auc: found.auc, prAuc: found.prAuc, testRows: data.test.rows, trainedBy: 'hub' },
        engine: manifest.teacher.engine,
        path: dir,
      });
      return { ...found, studentId: registered.id };
    } finally {
      model.dispose();
    }
  }

  /** Trains the configured student on the bank's rows, with the teacher's states if given. */
  #train(
    data: EncodedLocalData,
    teacher?: StudentTeacherInput,
    label = 'student (own rows only)',
    signal?: AbortSignal,
  ) {
    const { settings } = this;
    const progress = createTrainingProgress({ label, logger: this.logger });
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
      onProgress: progress.update,
      ...(signal ? { signal } : {}),
    })
      .then((trained) => trained.model)
      .finally(() => progress.stop());
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

  async #baseline(manifest: KnowledgeManifest, data: EncodedLocalData, signal?: AbortSignal) {
    const key = sha256Hex(JSON.stringify(manifest.preprocessing));
    const cached = this.#baselines.get(key);
    if (cached) return cached;

    const started = performance.now();
    const model = await this.#train(data, undefined, undefined, signal);
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
