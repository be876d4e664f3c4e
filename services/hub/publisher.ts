import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { LayersModel } from '@tensorflow/tfjs';
import { sha256Hex } from '../shared/digest.js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { readLabelledRows, readUnlabelledRows } from '../shared/data/csv.js';
import { getDatasetSchema } from '../shared/data/dataset-schema.js';
import {
  encodeRows,
  featureDim,
  fitPreprocessor,
  type PreprocessorSpec,
} from '../shared/data/preprocessing.js';
import { splitStratified } from '../shared/data/split.js';
import type { Engine } from '../shared/ml/engine.js';
import { countParams } from '../shared/ml/mlp.js';
import { rocAuc } from '../shared/ml/metrics.js';
import { loadModel, saveModel } from '../shared/ml/model-io.js';
import { predictPositive } from '../shared/ml/predict.js';
import { computeTeacherStates } from '../shared/ml/states.js';
import { trainTeacher } from '../shared/ml/teacher.js';
import {
  serialiseManifest,
  versionIdOf,
  type KnowledgeManifest,
} from '../shared/knowledge/manifest.js';
import { packTensors, type TensorInput } from '../shared/knowledge/tensor-pack.js';
import { DEFAULT_CHUNK_BYTES } from '../shared/transport/limits.js';
import type { Registry } from '../registry/database.js';
import { appendAccess } from '../registry/access-log.js';
import { ensureStream, latestVersion, publishVersion } from '../registry/knowledge.js';
import type { Announcer } from './announcer.js';

/** How the hub's teacher is built. */
export interface TeacherSettings {
  /** Hidden layer widths; default [256, 256]. */
  hidden: number[];
  /** Dropout after each hidden layer; default 0.3. */
  dropout: number;
  batchSize: number;
  learningRate: number;
  /** Epochs without a better validation AUC before training stops. */
  patience: number;
  seed: number;
}

/** The hub's own files: only the hub process ever opens them. */
export interface HubDataFiles {
  dataset: string;
  /** Labelled private rows: the teacher's training data. Never leaves the hub. */
  privateRows: string;
  /** The consortium's unlabelled transfer set. */
  transferRows: string;
  /** Optional labelled test rows, to report the teacher's test AUC. */
  testRows?: string;
}

/** What an operator asks for when publishing a version. */
export interface PublishRequest {
  stream: string;
  /** Epochs to train the teacher for, on top of what it has had unless `fresh`. */
  epochs: number;
  temperature: number;
  /** Teacher layers whose activations the version carries. */
  hiddenLayers: string[];
  /** Start a new teacher instead of training the current one further. */
  fresh?: boolean;
  /** Operator identity, for the access log. */
  actor: string;
}

/** What publishing produced. */
export interface PublishResult {
  version: {
    id: string;
    stream: string;
    sequence: number;
    parentId: string | null;
    publishedAt: string;
    chunkCount: number;
    totalBytes: number;
    temperature: number;
    tensors: { name: string; shape: number[] }[];
  };
  teacher: {
    params: number;
    hidden: number[];
    epochsTrained: number;
    epochsRun: number;
    validationAuc: number;
    testAuc: number | null;
  };
  timingsMs: { train: number; states: number; publish: number };
}

interface LoadedHubData {
  spec: PreprocessorSpec;
  inputDim: number;
  train: { x: Float32Array; y: Uint8Array };
  validation: { x: Float32Array; y: Uint8Array };
  transfer: { x: Float32Array; rows: number; encodedSha256: string };
  test?: { x: Float32Array; y: Uint8Array; rows: number };
}

/** Options of {@link KnowledgePublisher}. */
export interface KnowledgePublisherOptions {
  registry: Registry;
  announcer: Announcer;
  engine: Engine;
  files: HubDataFiles;
  /** Where the hub keeps its teacher between restarts. */
  stateDir: string;
  teacher: TeacherSettings;
  logger: Logger;
  chunkBytes?: number;
}

/**
 * Trains the hub's teacher on its private rows, computes its states on the transfer set
 * and publishes them as a knowledge version. Only the states and the fitted preprocessing
 * leave this class; the private rows and their labels stay in its memory.
 */
export class KnowledgePublisher {
  readonly #options: KnowledgePublisherOptions;
  #data: LoadedHubData | undefined;
  #teacher: { model: LayersModel; epochsTrained: number; validationAuc: number } | undefined;
  #busy: Promise<unknown> = Promise.resolve();

  constructor(options: KnowledgePublisherOptions) {
    this.#options = options;
  }

  /**
   * Reads and checks the hub's files and restores a saved teacher. Called at start-up, so
   * that a bad data file stops the hub with a clear error before it serves anything.
   */
  async load(): Promise<void> {
    const { files, teacher, logger } = this.#options;
    const schema = getDatasetSchema(files.dataset);
    const labelled = readLabelledRows(files.privateRows, schema);
    const spec = fitPreprocessor(labelled.rows, schema);
    const inputDim = featureDim(spec);
    const x = encodeRows(spec, labelled.rows);

    const parts = splitStratified(labelled.labels, { train: 0.85, validation: 0.15 }, teacher.seed);
    const transferRows = readUnlabelledRows(files.transferRows, schema);
    const transferX = encodeRows(spec, transferRows);
    const transferBytes = new Uint8Array(
      transferX.buffer,
      transferX.byteOffset,
      transferX.byteLength,
    );

    let test: LoadedHubData['test'];
    if (files.testRows && existsSync(files.testRows)) {
      const t = readLabelledRows(files.testRows, schema);
      test = { x: encodeRows(spec, t.rows), y: t.labels, rows: t.rows.length };
    }

    this.#data = {
      spec,
      inputDim,
      train: selectRows(x, labelled.labels, inputDim, parts.train),
      validation: selectRows(x, labelled.labels, inputDim, parts.validation),
      transfer: {
        x: transferX,
        rows: transferRows.length,
        encodedSha256: sha256Hex(transferBytes),
      },
      test,
    };
    logger.info(
      { privateRows: labelled.rows.length, transferRows: transferRows.length, inputDim },
      'hub data loaded',
    );
    await this.#restoreTeacher();
  }

  /** Publishes one version; concurrent requests are served one after another. */
  publish(request: PublishRequest): Promise<PublishResult> {
    const run = this.#busy.then(() => this.#publish(request));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #publish(request: PublishRequest): Promise<PublishResult> {
    const { engine, registry, announcer, logger, teacher: settings } = this.#options;
    const data = this.#data;
    if (!data) throw fail('CONFIG_INVALID', { detail: 'publisher used before load()' });

    const started = performance.now();
    const current = request.fresh ? undefined : this.#teacher;
    const trained = await trainTeacher(engine, {
      x: data.train.x,
      y: data.train.y,
      inputDim: data.inputDim,
      valX: data.validation.x,
      valY: data.validation.y,
      hidden: settings.hidden,
      dropout: settings.dropout,
      epochs: request.epochs,
      batchSize: settings.batchSize,
      learningRate: settings.learningRate,
      patience: settings.patience,
      seed: settings.seed,
      logger,
      ...(current ? { model: current.model } : {}),
    });
    if (current && current.model !== trained.model) current.model.dispose();
    const epochsTrained = (current?.epochsTrained ?? 0) + trained.epochsRun;
    this.#teacher = { model: trained.model, epochsTrained, validationAuc: trained.bestValAuc };
    const trainedAt = performance.now();

    const layerNames = new Set(trained.model.layers.map((l) => l.name));
    for (const layer of request.hiddenLayers) {
      if (!layerNames.has(layer)) {
        throw fail('REQUEST_INVALID', {
          detail: `teacher has no layer "${layer}"; it has ${[...layerNames].join(', ')}`,
        });
      }
    }
    const states = computeTeacherStates(
      engine,
      trained.model,
      data.transfer.x,
      data.transfer.rows,
      {
        temperature: request.temperature,
        hiddenLayers: request.hiddenLayers,
      },
    );
    const n = data.transfer.rows;
    const tensors: TensorInput[] = [
      { name: 'logits', kind: 'logits', shape: [n, 2], values: states.logits },
      { name: 'probabilities', kind: 'probabilities', shape: [n, 2], values: states.probabilities },
      ...Object.entries(states.hidden).map(([layer, h]) => ({
        name: `hidden.${layer}`,
        kind: 'hidden' as const,
        layer,
        shape: [n, h.width],
        values: h.values,
      })),
    ];
    const packed = packTensors(tensors, this.#options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
    const statesAt = performance.now();

    await ensureStream(registry.prisma, request.stream);
    const parent = await latestVersion(registry.prisma, request.stream);
    const params = countParams(trained.model);
    const manifest: KnowledgeManifest = {
      format: 'distillery.knowledge/1',
      stream: request.stream,
      parentId: parent?.id ?? null,
      createdAt: new Date().toISOString(),
      teacher: {
        inputDim: data.inputDim,
        hidden: settings.hidden,
        outputs: 2,
        params,
        weightsSha256: hashWeights(trained.model),
        epochsTrained,
        validationAuc: trained.bestValAuc,
        engine: engine.name,
      },
      transferSet: { rows: n, encodedSha256: data.transfer.encodedSha256 },
      preprocessing: data.spec,
      temperature: request.temperature,
      tensors: packed.tensors,
      chunkBytes: packed.chunkBytes,
      chunks: packed.chunks.map((c) => c.sha256),
      totalBytes: packed.totalBytes,
      rootHash: packed.rootHash,
    };
    const manifestJson = serialiseManifest(manifest);
    const id = versionIdOf(manifestJson);
    const stored = await publishVersion(registry.prisma, {
      stream: request.stream,
      id,
      manifestJson,
      rootHash: packed.rootHash,
      parentId: manifest.parentId,
      chunks: packed.chunks,
    });
    await appendAccess(registry.prisma, {
      actor: request.actor,
      action: 'publish',
      resource: `version:${id}`,
      outcome: 'allowed',
      detail: {
        stream: request.stream,
        sequence: stored.sequence,
        temperature: request.temperature,
      },
    });
    await this.#saveTeacher(id);
    announcer.announce({ stream: request.stream, sequence: stored.sequence });
    const publishedAt = performance.now();

    const testAuc = data.test
      ? rocAuc(predictPositive(engine, trained.model, data.test.x, data.test.rows), data.test.y)
      : null;
    logger.info(
      { version: id, stream: request.stream, sequence: stored.sequence, params, testAuc },
      'knowledge version published',
    );
    return {
      version: {
        id,
        stream: request.stream,
        sequence: stored.sequence,
        parentId: manifest.parentId,
        publishedAt: stored.publishedAt.toISOString(),
        chunkCount: packed.chunks.length,
        totalBytes: packed.totalBytes,
        temperature: request.temperature,
        tensors: packed.tensors.map((t) => ({ name: t.name, shape: t.shape })),
      },
      teacher: {
        params,
        hidden: settings.hidden,
        epochsTrained,
        epochsRun: trained.epochsRun,
        validationAuc: trained.bestValAuc,
        testAuc,
      },
      timingsMs: {
        train: Math.round(trainedAt - started),
        states: Math.round(statesAt - trainedAt),
        publish: Math.round(publishedAt - statesAt),
      },
    };
  }

  async #saveTeacher(versionId: string): Promise<void> {
    const teacher = this.#teacher;
    if (!teacher) return;
    const dir = join(this.#options.stateDir, 'teacher');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await saveModel(teacher.model, dir);
    const meta = {
      versionId,
      epochsTrained: teacher.epochsTrained,
      validationAuc: teacher.validationAuc,
    };
    await writeFile(join(dir, 'teacher.json'), JSON.stringify(meta, null, 2), { mode: 0o600 });
  }

  async #restoreTeacher(): Promise<void> {
    const dir = join(this.#options.stateDir, 'teacher');
    if (!existsSync(join(dir, 'teacher.json'))) return;
    const meta = JSON.parse(await readFile(join(dir, 'teacher.json'), 'utf8')) as {
      epochsTrained: number;
      validationAuc: number;
    };
    const model = await loadModel(this.#options.engine, dir);
    this.#teacher = { model, epochsTrained: meta.epochsTrained, validationAuc: meta.validationAuc };
    this.#options.logger.info({ epochsTrained: meta.epochsTrained }, 'teacher restored');
  }

  /** Frees the teacher's tensors. */
  dispose(): void {
    this.#teacher?.model.dispose();
    this.#teacher = undefined;
  }
}

function selectRows(x: Float32Array, y: Uint8Array, dim: number, indices: Uint32Array) {
  const outX = new Float32Array(indices.length * dim);
  const outY = new Uint8Array(indices.length);
  indices.forEach((row, i) => {
    outX.set(x.subarray(row * dim, (row + 1) * dim), i * dim);
    outY[i] = y[row];
  });
  return { x: outX, y: outY };
}

/** SHA-256 over the teacher's weights in layer order: identifies the exact teacher. */
function hashWeights(model: LayersModel): string {
  const hash = createHash('sha256');
  for (const weight of model.getWeights()) {
    const values = weight.dataSync() as Float32Array;
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return hash.digest('hex');
}
