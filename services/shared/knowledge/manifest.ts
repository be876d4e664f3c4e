import { z } from 'zod';
import { canonicalJson, sha256Hex } from '../digest.js';
import { fail } from '../errors.js';

/** The kinds of teacher state a knowledge version can carry. */
export type TensorKind = 'logits' | 'probabilities' | 'hidden';

/** One tensor of a version, laid out in the version's byte blob. */
export interface TensorEntry {
  name: string;
  kind: TensorKind;
  /** For `hidden`, the teacher layer whose activations these are. */
  layer?: string;
  shape: number[];
  dtype: 'float32';
  /** Byte offset in the concatenated blob, and length. */
  offset: number;
  byteLength: number;
}

/**
 * What a knowledge version is: everything a participant needs to check and use the
 * teacher's states, and nothing of the hub's private rows. Its id is the SHA-256 of its
 * canonical JSON, so the id vouches for every field, and through `chunks` for every byte.
 */
export interface KnowledgeManifest {
  format: 'distillery.knowledge/1';
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
  format: z.literal('distillery.knowledge/1'),
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
      kind: z.enum(['logits', 'probabilities', 'hidden']),
      layer: z.string().optional(),
      shape: z.array(z.number().int().nonnegative()),
      dtype: z.literal('float32'),
      offset: z.number().int().nonnegative(),
      byteLength: z.number().int().nonnegative(),
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

  const expectedChunks = Math.ceil(manifest.totalBytes / manifest.chunkBytes);
  if (manifest.chunks.length !== expectedChunks) {
    const detail = `${manifest.chunks.length} chunk hashes for ${manifest.totalBytes} bytes`;
    throw fail('MANIFEST_INVALID', { id: expectedId, detail });
  }
  if (rootHashOf(manifest.chunks) !== manifest.rootHash) {
    throw fail('MANIFEST_INVALID', { id: expectedId, detail: 'root hash does not match chunks' });
  }
  for (const tensor of manifest.tensors) {
    const elements = tensor.shape.reduce((a, b) => a * b, 1);
    const fits = tensor.offset + tensor.byteLength <= manifest.totalBytes;
    if (elements * 4 !== tensor.byteLength || !fits) {
      const detail = `tensor ${tensor.name} does not fit its shape or the blob`;
      throw fail('MANIFEST_INVALID', { id: expectedId, detail });
    }
  }
  return manifest;
}
