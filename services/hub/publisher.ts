import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Engine } from '../shared/ml/engine.js';
import { countParams } from '../shared/ml/mlp.js';
import { rocAuc } from '../shared/ml/metrics.js';
import {
  deserializeModel,
  hashModelWeights,
  loadModel,
  saveModel,
  serializeModel,
} from '../shared/ml/model-io.js';
import { predictPositive } from '../shared/ml/predict.js';
import { computeTeacherStates } from '../shared/ml/states.js';
import { trainTeacher } from '../shared/ml/teacher.js';
import {
  MANIFEST_FORMAT,
  serialiseManifest,
  versionIdOf,
  type KnowledgeManifest,
} from '../shared/knowledge/manifest.js';
import {
  packedManifestFields,
  packTensors,
  type ArtefactInput,
  type TensorInput,
} from '../shared/knowledge/tensor-pack.js';
import type { StateDtype } from '../shared/knowledge/encoding.js';
import { isPublishableTemperature, TEMPERATURE_RANGE } from '../shared/knowledge/temperature.js';
import { DEFAULT_CHUNK_BYTES } from '../shared/transport/limits.js';
import type { Registry } from '../registry/database.js';
import { latestVersion, publishVersion } from '../registry/knowledge.js';
import { currentVersionId } from '../registry/stream-events.js';
import type { Announcer } from './announcer.js';
import type { HubData } from './hub-data.js';

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
  /** Encoding of the states in this version; default the publisher's `encoding`. */
  encoding?: StateDtype;
}

/** What an {@link ArtefactHook} is given: the teacher just trained and the hub's data. */
export interface ArtefactContext {
  request: PublishRequest;
  teacher: LayersModel;
  data: HubData;
  engine: Engine;
  logger: Logger;
  /** The hub's registry, e.g. to record a hub-distilled student. */
  registry: Registry;
}

/**
 * Adds raw-byte artefacts (kind `artefact`) to each version, e.g. a student the hub
 * distilled itself, as `student/model.json` and `student/weights.bin`. Called once per
 * publication after the teacher is trained and before the version is stored; a failure
 * fails the publication.
 */
export type ArtefactHook = (context: ArtefactContext) => Promise<ArtefactInput[]>;

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
    encoding: StateDtype;
    /** Chunks the registry did not hold yet; the others are shared with earlier versions. */
    newChunks: number;
    tensors: { name: string; shape: number[]; dtype: string }[];
  };
  teacher: {
    params: number;
    hidden: number[];
    epochsTrained: number;
    epochsRun: number;
    /**
     * False when further training beat no earlier validation score, so the teacher kept the
     * weights it had: the version then carries the same teacher as its parent.
     */
    improved: boolean;
    validationAuc: number;
    testAuc: number | null;
  };
  timingsMs: { train: number; states: number; publish: number };
}

/** Options of {@link KnowledgePublisher}. */
export interface KnowledgePublisherOptions {
  registry: Registry;
  announcer: Announcer;
  engine: Engine;
  /** The hub's rows, read and encoded by {@link loadHubData}. */
  data: HubData;
  /** Where the hub keeps its teacher between restarts. */
  stateDir: string;
  teacher: TeacherSettings;
  logger: Logger;
  chunkBytes?: number;
  /** Encoding of teacher states: float32 (default), float16, or int8 with per-tensor scale. */
  encoding?: StateDtype;
  /** Artefacts to ship inside every version. */
  artefacts?: ArtefactHook;
}

/**
 * Trains the hub's teacher on its private rows, computes its states on the transfer set
 * and publishes them as a knowledge version. Only the states and the fitted preprocessing
 * leave this class; the private rows and their labels stay in its memory.
 */
export class KnowledgePublisher {
  readonly #options: KnowledgePublisherOptions;
  #teacher: { model: LayersModel; epochsTrained: number; validationAuc: number } | undefined;
  #busy: Promise<unknown> = Promise.resolve();
  // Aborted by stop(): cancels the publish in progress and refuses every later one.
  readonly #stopping = new AbortController();

  constructor(options: KnowledgePublisherOptions) {
    this.#options = options;
  }

  /** Restores the teacher saved by an earlier run of the hub, if there is one. */
  async restoreTeacher(): Promise<void> {
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
    const data = this.#options.data;

    // Checked before training: a request that cannot be published must not cost a training
    // run, nor leave the teacher changed.
    const signal = this.#stopping.signal;
    signal.throwIfAborted();
    if (!isPublishableTemperature(request.temperature)) {
      // A tiny temperature overflows logits / T and every participant's distillation diverges.
      throw fail('REQUEST_INVALID', {
        detail: `temperature must be between ${TEMPERATURE_RANGE.min} and ${TEMPERATURE_RANGE.max}, got ${request.temperature}`,
      });
    }
    const layerNames = settings.hidden.map((_, i) => `hidden_${i + 1}`);
    const seen = new Set<string>();
    for (const layer of request.hiddenLayers) {
      if (!layerNames.includes(layer)) {
        throw fail('REQUEST_INVALID', {
          detail: `hiddenLayers: teacher has no layer "${layer}"; it has ${layerNames.join(', ')}`,
        });
      }
      if (seen.has(layer)) {
        throw fail('REQUEST_INVALID', { detail: `hiddenLayers names "${layer}" twice` });
      }
      seen.add(layer);
    }
    // Streams are opened by the operator at hub start (`--stream`); a typo in a stream name
    // must not open a new stream that no participant follows.
    const stream = await registry.prisma.knowledgeStream.findUnique({
      where: { name: request.stream },
    });
    if (!stream) throw fail('STREAM_NOT_FOUND', { name: request.stream });

    const started = performance.now();
    const current = request.fresh ? undefined : this.#teacher;
    // Training works on a copy; the current teacher is replaced only once the version is
    // stored, so a publish that fails half-way leaves the hub's teacher as it was.
    const start = current
      ? await deserializeModel(engine, await serializeModel(current.model))
      : undefined;
    let candidate: { model: LayersModel; epochsTrained: number; validationAuc: number } | undefined;
    try {
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
        signal,
        ...(start ? { model: start } : {}),
      });
      const epochsTrained = (current?.epochsTrained ?? 0) + trained.epochsRun;
      const improved = current === undefined || trained.bestEpoch > 0;
      if (!improved) {
        logger.warn(
          { epochsRun: trained.epochsRun, validationAuc: trained.bestValAuc },
          'further training did not improve the teacher; publishing it unchanged',
        );
      }
      candidate = { model: trained.model, epochsTrained, validationAuc: trained.bestValAuc };
      const trainedAt = performance.now();

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
        {
          name: 'probabilities',
          kind: 'probabilities',
          shape: [n, 2],
          values: states.probabilities,
        },
        ...Object.entries(states.hidden).map(([layer, h]) => ({
          name: `hidden.${layer}`,
          kind: 'hidden' as const,
          layer,
          shape: [n, h.width],
          values: h.values,
        })),
      ];
      if (this.#options.artefacts) {
        tensors.push(
          ...(await this.#options.artefacts({
            request,
            teacher: trained.model,
            data,
            engine,
            logger,
            registry,
          })),
        );
      }
      const encoding = request.encoding ?? this.#options.encoding ?? 'float32';
      const packed = packTensors(tensors, this.#options.chunkBytes ?? DEFAULT_CHUNK_BYTES, {
        dtype: encoding,
      });
      const statesAt = performance.now();

      // The last point at which a shutdown cancels the publication: past it, the version is
      // stored and announced in full.
      signal.throwIfAborted();
      // The parent is the version participants hold now: after a rollback, its target.
      const currentId = await currentVersionId(registry.prisma, request.stream);
      const parent = currentId
        ? { id: currentId }
        : await latestVersion(registry.prisma, request.stream);
      const params = countParams(trained.model);
      const manifest: KnowledgeManifest = {
        format: MANIFEST_FORMAT,
        stream: request.stream,
        parentId: parent?.id ?? null,
        createdAt: new Date().toISOString(),
        teacher: {
          inputDim: data.inputDim,
          hidden: settings.hidden,
          outputs: 2,
          params,
          weightsSha256: hashModelWeights(trained.model),
          epochsTrained,
          validationAuc: trained.bestValAuc,
          engine: engine.name,
        },
        transferSet: { rows: n, encodedSha256: data.transfer.encodedSha256 },
        preprocessing: data.spec,
        temperature: request.temperature,
        ...packedManifestFields(packed),
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
        actor: request.actor,
        accessDetail: { temperature: request.temperature, encoding },
      });
      this.#teacher?.model.dispose();
      this.#teacher = candidate;
      candidate = undefined;
      await this.#saveTeacher(id);
      announcer.announce({ stream: request.stream, sequence: stored.eventSequence });
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
          encoding,
          newChunks: stored.newChunks,
          tensors: packed.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype })),
        },
        teacher: {
          params,
          hidden: settings.hidden,
          epochsTrained,
          epochsRun: trained.epochsRun,
          improved,
          validationAuc: trained.bestValAuc,
          testAuc,
        },
        timingsMs: {
          train: Math.round(trainedAt - started),
          states: Math.round(statesAt - trainedAt),
          publish: Math.round(publishedAt - statesAt),
        },
      };
    } catch (err) {
      // Before the commit the candidate (or the copy it grew from) is this call's to free;
      // after it, the model is the hub's teacher and stays.
      if (candidate) candidate.model.dispose();
      else if (start && start !== this.#teacher?.model) start.dispose();
      throw err;
    }
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

  /** The current teacher, for query mode (services/hub/query-service.ts); none before training. */
  currentTeacher(): LayersModel | undefined {
    return this.#teacher?.model;
  }

  /**
   * Cancels the publication in progress (its teacher training stops at the next mini-batch
   * and nothing is stored), refuses later ones with HUB_SHUTTING_DOWN, and resolves once no
   * publication touches the registry any more. Called by the hub before it closes the
   * registry.
   */
  async stop(): Promise<void> {
    if (!this.#stopping.signal.aborted) {
      this.#stopping.abort(fail('HUB_SHUTTING_DOWN', { what: 'the publication' }));
    }
    await this.#busy;
  }

  /** Frees the teacher's tensors. */
  dispose(): void {
    this.#teacher?.model.dispose();
    this.#teacher = undefined;
  }
}
