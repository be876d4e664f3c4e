import { sha256Hex } from '../digest.js';
import { fail } from '../errors.js';
import type { KnowledgeManifest, TensorEntry, TensorKind } from './manifest.js';
import { rootHashOf } from './manifest.js';

/** A tensor to be packed into a version. */
export interface TensorInput {
  name: string;
  kind: TensorKind;
  layer?: string;
  shape: number[];
  values: Float32Array;
}

/** The byte layout of a version: its tensors' entries and its chunks. */
export interface PackedTensors {
  tensors: TensorEntry[];
  chunkBytes: number;
  chunks: { index: number; sha256: string; data: Uint8Array }[];
  totalBytes: number;
  rootHash: string;
}

/**
 * Lays tensors end to end (little-endian float32, the layout of a Float32Array on every
 * platform Node supports) and cuts the blob into chunks of `chunkBytes`, hashing each.
 */
export function packTensors(inputs: readonly TensorInput[], chunkBytes: number): PackedTensors {
  const totalBytes = inputs.reduce((sum, t) => sum + t.values.byteLength, 0);
  const blob = new Uint8Array(totalBytes);
  const tensors: TensorEntry[] = [];

  let offset = 0;
  for (const input of inputs) {
    const elements = input.shape.reduce((a, b) => a * b, 1);
    if (elements !== input.values.length) {
      throw fail('MODEL_SHAPE_MISMATCH', {
        what: `tensor ${input.name}`,
        expected: JSON.stringify(input.shape),
        actual: `${input.values.length} values`,
      });
    }
    const bytes = new Uint8Array(
      input.values.buffer,
      input.values.byteOffset,
      input.values.byteLength,
    );
    blob.set(bytes, offset);
    tensors.push({
      name: input.name,
      kind: input.kind,
      ...(input.layer === undefined ? {} : { layer: input.layer }),
      shape: input.shape,
      dtype: 'float32',
      offset,
      byteLength: bytes.byteLength,
    });
    offset += bytes.byteLength;
  }

  const chunks: PackedTensors['chunks'] = [];
  for (let start = 0, index = 0; start < totalBytes; start += chunkBytes, index++) {
    const data = blob.subarray(start, Math.min(start + chunkBytes, totalBytes));
    chunks.push({ index, sha256: sha256Hex(data), data });
  }
  return {
    tensors,
    chunkBytes,
    chunks,
    totalBytes,
    rootHash: rootHashOf(chunks.map((c) => c.sha256)),
  };
}

/** Reads a named tensor out of a version's reassembled blob. */
export function unpackTensor(
  manifest: KnowledgeManifest,
  blob: Uint8Array,
  name: string,
): Float32Array {
  const entry = manifest.tensors.find((t) => t.name === name);
  if (!entry) {
    throw fail('MANIFEST_INVALID', {
      id: manifest.rootHash,
      detail: `no tensor named ${name}; it has ${manifest.tensors.map((t) => t.name).join(', ')}`,
    });
  }
  // Copy into a fresh, aligned buffer: the entry's offset need not be a multiple of 4.
  const copy = blob.slice(entry.offset, entry.offset + entry.byteLength);
  return new Float32Array(copy.buffer, copy.byteOffset, entry.byteLength / 4);
}
