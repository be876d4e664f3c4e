import { sha256Hex } from '../digest.js';
import { fail } from '../errors.js';
import { MAX_CHUNK_BYTES } from '../transport/limits.js';
import { decodeTensor, encodeTensor, type StateDtype } from './encoding.js';
import type { KnowledgeManifest, TensorEntry, TensorKind } from './manifest.js';
import { rootHashOf } from './manifest.js';

/** A tensor of teacher states to be packed into a version. */
export interface StateTensorInput {
  name: string;
  kind: Exclude<TensorKind, 'artefact'>;
  layer?: string;
  shape: number[];
  values: Float32Array;
  /** Overrides the version's encoding for this tensor. */
  dtype?: StateDtype;
}

/** Raw bytes shipped inside a version, e.g. a hub-distilled student's `weights.bin`. */
export interface ArtefactInput {
  name: string;
  kind: 'artefact';
  bytes: Uint8Array;
}

/** A tensor to be packed into a version. */
export type TensorInput = StateTensorInput | ArtefactInput;

/** Options of {@link packTensors}. */
export interface PackOptions {
  /** Encoding of state tensors; default float32. */
  dtype?: StateDtype;
}

/** The byte layout of a version: its tensors' entries and its chunks. */
export interface PackedTensors {
  tensors: TensorEntry[];
  chunkBytes: number;
  chunks: { index: number; sha256: string; data: Uint8Array }[];
  totalBytes: number;
  rootHash: string;
}

/** The fields of a manifest that describe its packed tensors. */
export type PackedManifestFields = Pick<
  KnowledgeManifest,
  'tensors' | 'chunkBytes' | 'chunks' | 'totalBytes' | 'rootHash'
>;

/**
 * What a manifest records of `packed`: its tensor entries, chunk size, chunk hashes in
 * order, total size and root hash.
 */
export function packedManifestFields(packed: PackedTensors): PackedManifestFields {
  return {
    tensors: packed.tensors,
    chunkBytes: packed.chunkBytes,
    chunks: packed.chunks.map((c) => c.sha256),
    totalBytes: packed.totalBytes,
    rootHash: packed.rootHash,
  };
}

/**
 * Encodes each tensor (little-endian, the layout of typed arrays on every platform Node
 * supports), lays them end to end, and cuts EACH TENSOR into chunks of `chunkBytes` (its
 * last chunk may be short), hashing each. Chunk boundaries follow tensors so that a tensor
 * that is unchanged in the next version yields the same chunk hashes, which participants
 * already hold and do not fetch again.
 *
 * @throws CHUNK_SIZE_INVALID when a chunk could not travel in one gRPC message
 */
export function packTensors(
  inputs: readonly TensorInput[],
  chunkBytes: number,
  options: PackOptions = {},
): PackedTensors {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw fail('CHUNK_SIZE_INVALID', { chunkBytes, limit: MAX_CHUNK_BYTES });
  }
  const tensors: TensorEntry[] = [];
  const chunks: PackedTensors['chunks'] = [];

  let offset = 0;
  for (const input of inputs) {
    let bytes: Uint8Array;
    let entry: Omit<TensorEntry, 'offset' | 'byteLength' | 'firstChunk' | 'chunkCount'>;
    if (input.kind === 'artefact') {
      bytes = input.bytes;
      entry = { name: input.name, kind: 'artefact', shape: [bytes.byteLength], dtype: 'uint8' };
    } else {
      const elements = input.shape.reduce((a, b) => a * b, 1);
      if (elements !== input.values.length) {
        throw fail('MODEL_SHAPE_MISMATCH', {
          what: `tensor ${input.name}`,
          expected: JSON.stringify(input.shape),
          actual: `${input.values.length} values`,
        });
      }
      const dtype = input.dtype ?? options.dtype ?? 'float32';
      const encoded = encodeTensor(input.name, input.values, dtype);
      bytes = encoded.bytes;
      entry = {
        name: input.name,
        kind: input.kind,
        ...(input.layer === undefined ? {} : { layer: input.layer }),
        shape: input.shape,
        dtype,
        ...(encoded.scale === undefined ? {} : { scale: encoded.scale }),
      };
    }
    const firstChunk = chunks.length;
    for (let start = 0; start < bytes.byteLength; start += chunkBytes) {
      const data = bytes.subarray(start, Math.min(start + chunkBytes, bytes.byteLength));
      chunks.push({ index: chunks.length, sha256: sha256Hex(data), data });
    }
    tensors.push({
      ...entry,
      offset,
      byteLength: bytes.byteLength,
      firstChunk,
      chunkCount: chunks.length - firstChunk,
    });
    offset += bytes.byteLength;
  }

  return {
    tensors,
    chunkBytes,
    chunks,
    totalBytes: offset,
    rootHash: rootHashOf(chunks.map((c) => c.sha256)),
  };
}

function findEntry(manifest: KnowledgeManifest, name: string): TensorEntry {
  const entry = manifest.tensors.find((t) => t.name === name);
  if (!entry) {
    throw fail('MANIFEST_INVALID', {
      id: manifest.rootHash,
      detail: `no tensor named ${name}; it has ${manifest.tensors.map((t) => t.name).join(', ')}`,
    });
  }
  return entry;
}

/** Reads a named state tensor out of a version's reassembled blob, decoded to float32. */
export function unpackTensor(
  manifest: KnowledgeManifest,
  blob: Uint8Array,
  name: string,
): Float32Array {
  const entry = findEntry(manifest, name);
  if (entry.dtype === 'uint8') {
    throw fail('MANIFEST_INVALID', {
      id: manifest.rootHash,
      detail: `tensor ${name} is an artefact of raw bytes, not numbers`,
    });
  }
  const bytes = blob.subarray(entry.offset, entry.offset + entry.byteLength);
  return decodeTensor(bytes, entry.dtype, entry.scale);
}

/** Reads a named artefact (raw bytes) out of a version's reassembled blob, as a copy. */
export function unpackArtefact(
  manifest: KnowledgeManifest,
  blob: Uint8Array,
  name: string,
): Uint8Array {
  const entry = findEntry(manifest, name);
  if (entry.kind !== 'artefact') {
    throw fail('MANIFEST_INVALID', {
      id: manifest.rootHash,
      detail: `tensor ${name} is ${entry.kind}, not an artefact`,
    });
  }
  return blob.slice(entry.offset, entry.offset + entry.byteLength);
}
