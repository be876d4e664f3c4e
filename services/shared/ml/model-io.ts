import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { io, type LayersModel } from '@tensorflow/tfjs';
import { sha256Hex } from '../digest.js';
import { fail } from '../errors.js';
import type { Engine } from './engine.js';

/** Names of the two files of a saved model, the layout tfjs-node's `file://` writes. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/** A model as bytes: its `model.json` text and its concatenated weights. */
export interface SerializedModel {
  modelJson: string;
  weights: Uint8Array;
}

/** What {@link saveModel} wrote. */
export interface SavedModelInfo {
  dir: string;
  /** SHA-256 of `model.json`, lowercase hex. */
  modelJsonSha256: string;
  /** SHA-256 of `weights.bin`, lowercase hex. */
  weightsSha256: string;
  weightBytes: number;
}

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/**
 * Serialises a layers model to TensorFlow.js layers format in memory: the JSON text of
 * `model.json` (topology plus a weights manifest naming `./weights.bin`) and the weight
 * bytes. Works on every backend, the pure ones included, which cannot save to `file://`.
 */
export async function serializeModel(model: LayersModel): Promise<SerializedModel> {
  let captured: io.ModelArtifacts | undefined;
  await model.save(
    io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  if (captured === undefined || captured.weightData === undefined) {
    throw fail('INTERNAL', {}, { cause: new Error('model.save produced no weights') });
  }

  const json: io.ModelJSON = {
    modelTopology: captured.modelTopology as object,
    format: captured.format,
    generatedBy: captured.generatedBy,
    convertedBy: captured.convertedBy ?? null,
    weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: captured.weightSpecs ?? [] }],
  };
  if (captured.trainingConfig) json.trainingConfig = captured.trainingConfig;
  if (captured.userDefinedMetadata) json.userDefinedMetadata = captured.userDefinedMetadata;

  // In tfjs 4.x the weights may come as several buffers; join them into one file.
  const weights = new Uint8Array(io.CompositeArrayBuffer.join(captured.weightData));
  return { modelJson: JSON.stringify(json), weights };
}

function writeAtomically(path: string, data: string | Uint8Array): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, data);
  renameSync(temporary, path);
}

/**
 * Saves a model to `dir` as `model.json` and `weights.bin` (created if needed, files
 * replaced whole), readable by {@link loadModel} and by `tf.loadLayersModel('file://…')`
 * on tfjs-node.
 */
export async function saveModel(model: LayersModel, dir: string): Promise<SavedModelInfo> {
  const { modelJson, weights } = await serializeModel(model);
  mkdirSync(dir, { recursive: true });
  // Weights first: a reader that finds the new model.json then finds its weights too.
  writeAtomically(join(dir, WEIGHTS_BIN), weights);
  writeAtomically(join(dir, MODEL_JSON), modelJson);
  return {
    dir,
    modelJsonSha256: sha256Hex(modelJson),
    weightsSha256: sha256Hex(weights),
    weightBytes: weights.byteLength,
  };
}

function expectedWeightBytes(specs: io.WeightsManifestEntry[]): number | undefined {
  let total = 0;
  for (const spec of specs) {
    const size = BYTES_PER_ELEMENT[spec.dtype];
    if (size === undefined || spec.quantization) return undefined;
    total += spec.shape.reduce((a, b) => a * b, 1) * size;
  }
  return total;
}

function parseModelJson(text: string, where: string): io.ModelJSON {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fail('MODEL_INVALID', { path: where, detail: 'model.json is not JSON' }, { cause: err });
  }
  const candidate = json as Partial<io.ModelJSON> | null;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.modelTopology !== 'object' ||
    !Array.isArray(candidate.weightsManifest)
  ) {
    throw fail('MODEL_INVALID', {
      path: where,
      detail: 'model.json lacks modelTopology or weightsManifest',
    });
  }
  return candidate as io.ModelJSON;
}

/**
 * Rebuilds a model from {@link serializeModel}'s output (or the two files of a saved
 * model) on the given engine.
 *
 * @param where names the source in errors, e.g. the directory.
 * @throws MODEL_INVALID when the JSON or the weight length is wrong.
 */
export async function deserializeModel(
  engine: Engine,
  serialized: SerializedModel,
  where = '(memory)',
): Promise<LayersModel> {
  const json = parseModelJson(serialized.modelJson, where);
  const specs = json.weightsManifest.flatMap((group) => group.weights);
  const expected = expectedWeightBytes(specs);
  if (expected !== undefined && expected !== serialized.weights.byteLength) {
    const detail = `weights hold ${serialized.weights.byteLength} bytes; the manifest needs ${expected}`;
    throw fail('MODEL_INVALID', { path: where, detail });
  }

  const { weights } = serialized;
  // A standalone copy: the bytes may be a view into a larger Node buffer pool.
  const buffer = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
  const artifacts = await io.getModelArtifactsForJSON(json, async () => [
    specs,
    buffer as ArrayBuffer,
  ]);
  try {
    return await engine.tf.loadLayersModel({ load: async () => artifacts });
  } catch (err) {
    throw fail('MODEL_INVALID', { path: where, detail: (err as Error).message }, { cause: err });
  }
}

/**
 * Loads a model saved by {@link saveModel} (or by tfjs-node) from `dir`. Every weight file
 * the manifest lists must be a plain name inside `dir`.
 *
 * @throws MODEL_NOT_FOUND when `dir` or its `model.json` is missing; MODEL_INVALID when
 *   a file is malformed or a weights path points outside `dir`.
 */
export async function loadModel(engine: Engine, dir: string): Promise<LayersModel> {
  let modelJson: string;
  try {
    modelJson = readFileSync(join(dir, MODEL_JSON), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw fail('MODEL_NOT_FOUND', { path: dir }, { cause: err });
    }
    throw err;
  }

  const json = parseModelJson(modelJson, dir);
  const parts: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    for (const path of group.paths) {
      const name = path.startsWith('./') ? path.slice(2) : path;
      // The manifest may come from another party; never let it read outside the folder.
      if (name === '' || name.includes('/') || name.includes('\\') || name === '..') {
        throw fail('MODEL_INVALID', {
          path: dir,
          detail: `weights path "${path}" is not a file name`,
        });
      }
      try {
        parts.push(readFileSync(join(dir, name)));
      } catch (err) {
        throw fail('MODEL_INVALID', { path: dir, detail: `cannot read ${name}` }, { cause: err });
      }
    }
  }
  const weights = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    weights.set(part, offset);
    offset += part.byteLength;
  }
  return deserializeModel(engine, { modelJson, weights }, dir);
}

/**
 * SHA-256 over a model's weights in layer order (the raw float32 bytes of each weight tensor,
 * end to end), hex: identifies the exact weights, as a manifest's teacher hash records them.
 */
export function hashModelWeights(model: LayersModel): string {
  const hash = createHash('sha256');
  for (const weight of model.getWeights()) {
    const values = weight.dataSync() as Float32Array;
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return hash.digest('hex');
}
