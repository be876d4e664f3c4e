import { z } from 'zod';
import { canonicalJson, sha256Hex } from '../digest.js';
import { fail } from '../errors.js';
import { DTYPE_BYTES, type TensorDtype } from './encoding.js';

/**
 * The kinds of tensor a knowledge version can carry: teacher states, and `artefact`, raw
 * bytes (dtype `uint8`, shape `[byteLength]`) such as a hub-distilled student's files.
 */
export type TensorKind = 'logits' | 'probabilities' | 'hidden' | 'artefact';

/** The current manifest format: chunks are cut per tensor. */
export const MANIFEST_FORMAT = 'distillery.knowledge/2';

/** One tensor of a version, laid out in the version's byte blob. */
export interface TensorEntry {
  name: string;
  kind: TensorKind;
  /** For `hidden`, the teacher layer whose activations these are. */
  layer?: string;
  shape: number[];
  dtype: TensorDtype;
  /** For `int8`: value = code × scale. */
  scale?: number;
  /** Byte offset in the concatenated blob, and length. */
  offset: number;
  byteLength: number;
  /**
   * Format 2: the tensor's chunks are `chunks[firstChunk .. firstChunk + chunkCount - 1]`,
   * cut from the tensor alone, so a tensor that did not change between versions has the
   * same chunk hashes in both and is not sent again.
   */
  firstChunk?: number;
  chunkCount?: number;
}

/**
 * What a knowledge version is: everything a participant needs to check and use the
 * teacher's states, and nothing of the hub's private rows. Its id is the SHA-256 of its
 * canonical JSON, so the id vouches for every field, and through `chunks` for every byte.
 */
export interface KnowledgeManifest {
  /**
   * `distillery.knowledge/2` cuts chunks per tensor; `/1` (versions published before
   * deltas) cut the whole blob into equal chunks and is still read.
   */
  format: 'distillery.knowledge/1' | 'distillery.knowledge/2';
  stream: string;
  parentId: string | null;
  createdAt: string;
  teacher: {
    inputDim: number;
    hidden: number[];
    outputs: number;
    params: number;
    /** SHA-256 of the teacher's serialised weights. */
    weightsSha256: string;
    epochsTrained: number;
    validationAuc: number;
    engine: string;
  };
  /** The consortium's agreed transfer set: participants encode their copy and compare. */
  transferSet: { rows: number; encodedSha256: string };
  /** Fitted preprocessing (a PreprocessorSpec), shipped so both sides encode alike. */
  preprocessing: unknown;
  temperature: number;
  tensors: TensorEntry[];
  chunkBytes: number;
  /** SHA-256 of each chunk, in order. */
  chunks: string[];
  totalBytes: number;
  /** SHA-256 over the concatenated hex chunk hashes. */
  rootHash: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

const manifestSchema = z.object({
  format: z.enum(['distillery.knowledge/1', 'distillery.knowledge/2']),
  stream: z.string().min(1),
  parentId: z.string().regex(HEX64).nullable(),
  createdAt: z.string(),
  teacher: z.object({
    inputDim: z.number().int().positive(),
    hidden: z.array(z.number().int().positive()),
    outputs: z.number().int().min(2),
    params: z.number().int().positive(),
    weightsSha256: z.string().regex(HEX64),
    epochsTrained: z.number().int().nonnegative(),
    validationAuc: z.number(),
    engine: z.string(),
  }),
  transferSet: z.object({
    rows: z.number().int().positive(),
    encodedSha256: z.string().regex(HEX64),
  }),
  preprocessing: z.unknown(),
  temperature: z.number().positive(),
  tensors: z.array(
    z.object({
      name: z.string().min(1),
      kind: z.enum(['logits', 'probabilities', 'hidden', 'artefact']),
      layer: z.string().optional(),
      shape: z.array(z.number().int().nonnegative()),
      dtype: z.enum(['float32', 'float16', 'int8', 'uint8']),
      scale: z.number().positive().finite().optional(),
      offset: z.number().int().nonnegative(),
      byteLength: z.number().int().nonnegative(),
      firstChunk: z.number().int().nonnegative().optional(),
      chunkCount: z.number().int().nonnegative().optional(),
    }),
  ),
  chunkBytes: z.number().int().positive(),
  chunks: z.array(z.string().regex(HEX64)),
  totalBytes: z.number().int().nonnegative(),
  rootHash: z.string().regex(HEX64),
});

/** True when `id` has the form of a version id (64 lowercase hex digits). */
export function isVersionId(id: string): boolean {
  return HEX64.test(id);
}

/** Serialises a manifest to the exact bytes that are hashed, stored and sent. */
export function serialiseManifest(manifest: KnowledgeManifest): string {
  return canonicalJson(manifest);
}

/** The id of a version: SHA-256 of its serialised manifest. */
export function versionIdOf(manifestJson: string | Uint8Array): string {
  return sha256Hex(manifestJson);
}

/** Root hash over a list of chunk hashes. */
export function rootHashOf(chunkHashes: readonly string[]): string {
  return sha256Hex(chunkHashes.join(''));
}

/**
 * Parses and checks manifest bytes received for `expectedId`: the bytes must hash to the
 * id, have the manifest's form, and be internally consistent (tensors inside the blob,
 * chunk count and root hash matching).
 */
export function parseManifest(expectedId: string, bytes: Uint8Array | string): KnowledgeManifest {
  const actual = versionIdOf(bytes);
  if (actual !== expectedId) throw fail('MANIFEST_HASH_MISMATCH', { id: expectedId, actual });

  let json: unknown;
  try {
    json = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw fail('MANIFEST_INVALID', { id: expectedId, detail: 'not JSON' }, { cause: err });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const detail = `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`;
    throw fail('MANIFEST_INVALID', { id: expectedId, detail });
  }
  const manifest = parsed.data as KnowledgeManifest;

  const invalid = (detail: string) => fail('MANIFEST_INVALID', { id: expectedId, detail });
  let offset = 0;
  let chunk = 0;
  for (const tensor of manifest.tensors) {
    const elements = tensor.shape.reduce((a, b) => a * b, 1);
    if (elements * DTYPE_BYTES[tensor.dtype] !== tensor.byteLength) {
      throw invalid(`tensor ${tensor.name} does not fit its shape and dtype`);
    }
    if ((tensor.kind === 'artefact') !== (tensor.dtype === 'uint8')) {
      throw invalid(`tensor ${tensor.name}: artefacts, and only they, are uint8`);
    }
    if ((tensor.dtype === 'int8') !== (tensor.scale !== undefined)) {
      throw invalid(`tensor ${tensor.name}: int8 tensors, and only they, carry a scale`);
    }
    if (manifest.format === MANIFEST_FORMAT) {
      // Tensors lie end to end and each owns a run of whole chunks.
      const count = Math.ceil(tensor.byteLength / manifest.chunkBytes);
      if (tensor.offset !== offset || tensor.firstChunk !== chunk || tensor.chunkCount !== count) {
        throw invalid(`tensor ${tensor.name} is not where its predecessors end`);
      }
      chunk += count;
    } else if (tensor.offset + tensor.byteLength > manifest.totalBytes) {
      throw invalid(`tensor ${tensor.name} does not fit the blob`);
    }
    offset = Math.max(offset, tensor.offset + tensor.byteLength);
  }
  const expectedChunks =
    manifest.format === MANIFEST_FORMAT
      ? chunk
      : Math.ceil(manifest.totalBytes / manifest.chunkBytes);
  if (manifest.format === MANIFEST_FORMAT && offset !== manifest.totalBytes) {
    throw invalid(`tensors hold ${offset} bytes, not the ${manifest.totalBytes} stated`);
  }
  if (manifest.chunks.length !== expectedChunks) {
    throw invalid(`${manifest.chunks.length} chunk hashes for ${expectedChunks} chunks`);
  }
  if (rootHashOf(manifest.chunks) !== manifest.rootHash) {
    throw invalid('root hash does not match chunks');
  }
  return manifest;
}

/** Where one chunk lies in a version's blob. */
export interface ChunkSpan {
  index: number;
  offset: number;
  length: number;
  sha256: string;
  /** The tensor it belongs to (format 2), or null (format 1, chunks span tensors). */
  tensor: string | null;
}

/** Every chunk of a version with its place in the blob, in index order. */
export function chunkSpans(manifest: KnowledgeManifest): ChunkSpan[] {
  const spans: ChunkSpan[] = [];
  if (manifest.format === MANIFEST_FORMAT) {
    for (const tensor of manifest.tensors) {
      const first = tensor.firstChunk ?? 0;
      for (let k = 0; k < (tensor.chunkCount ?? 0); k++) {
        const start = k * manifest.chunkBytes;
        spans.push({
          index: first + k,
          offset: tensor.offset + start,
          length: Math.min(manifest.chunkBytes, tensor.byteLength - start),
          sha256: manifest.chunks[first + k]!,
          tensor: tensor.name,
        });
      }
    }
    return spans;
  }
  manifest.chunks.forEach((sha256, index) => {
    const offset = index * manifest.chunkBytes;
    const length = Math.min(manifest.chunkBytes, manifest.totalBytes - offset);
    spans.push({ index, offset, length, sha256, tensor: null });
  });
  return spans;
}

/**
 * The chunks holding the tensors named, in index order. A format 2 chunk belongs to one
 * tensor; a format 1 chunk can straddle two, so every chunk overlapping a named tensor is
 * kept. Names the manifest lacks select nothing: callers check them and say so.
 */
export function spansOfTensors(manifest: KnowledgeManifest, names: readonly string[]): ChunkSpan[] {
  const chosen = manifest.tensors.filter((t) => names.includes(t.name));
  return chunkSpans(manifest).filter((span) =>
    chosen.some(
      (t) => span.offset < t.offset + t.byteLength && t.offset < span.offset + span.length,
    ),
  );
}
