import type {
  KnowledgeStream,
  KnowledgeVersion,
  PrismaClient,
} from '../generated/prisma/client.js';
import { Prisma } from '../generated/prisma/client.js';
import { sha256Hex } from '../shared/digest.js';
import { fail, isDistilleryError } from '../shared/errors.js';
import { MAX_CHUNK_BYTES } from '../shared/transport/limits.js';
import type { RegistryDb } from './database.js';
import { appendAccessInTx } from './access-log.js';
import { appendStreamEvent } from './stream-events.js';

export type { KnowledgeStream, KnowledgeVersion } from '../generated/prisma/client.js';

/** One chunk handed to {@link publishVersion}. */
export interface ChunkInput {
  index: number;
  /** SHA-256 of `data` as lowercase hex, as the manifest lists it. */
  sha256: string;
  data: Uint8Array;
}

/** What {@link publishVersion} stores. */
export interface PublishVersionInput {
  /** The stream, which must exist already ({@link ensureStream}). */
  stream: string;
  /** SHA-256 of `manifestJson`, as lowercase hex. */
  id: string;
  /** The manifest exactly as its bytes were hashed. */
  manifestJson: string;
  rootHash: string;
  /** The version this one follows, which must be published; default none. */
  parentId?: string | null;
  /** Every chunk, indexes 0 to n-1 in any order. */
  chunks: readonly ChunkInput[];
  /** Who published, for the stream's `published` event; default `hub`. */
  actor?: string;
  /**
   * Facts for the `publish` entry of the access log, which is written in the same
   * transaction as the version: a publication that cannot be logged is not stored. The
   * entry's detail also gets the version's sequence and how many chunks were new.
   */
  accessDetail?: Record<string, unknown>;
}

/** Where {@link publishVersion} placed a version. */
export interface PublishedVersion {
  id: string;
  sequence: number;
  publishedAt: Date;
  /** Sequence of the stream's `published` event for it. */
  eventSequence: number;
  /** Chunks whose bytes the registry did not hold yet (the rest were shared). */
  newChunks: number;
}

/** One chunk as {@link readChunk} returns it. */
export interface ChunkRecord {
  index: number;
  sha256: string;
  data: Buffer;
}

/** Options of {@link listVersions}. */
export interface ListVersionsOptions {
  /** Only versions after this sequence number; default 0, every version. */
  afterSequence?: number;
}

// Rows of one INSERT: bounded so that a version of thousands of large chunks neither builds
// a statement of gigabytes nor runs past PostgreSQL's 65535 bind parameters.
const CHUNK_BATCH_BYTES = 32 * 1024 * 1024;
const CHUNK_BATCH_ROWS = 1_000;

// A version of many megabytes is written in one transaction; Prisma's 5 s default would
// abort it part way on a slow disk.
const PUBLISH_TIMEOUT_MS = 10 * 60_000;

/** Creates the stream if it does not exist and returns it. */
export async function ensureStream(db: RegistryDb, name: string): Promise<KnowledgeStream> {
  if (name.length === 0) throw fail('REQUEST_INVALID', { detail: 'a stream name is required' });
  return db.knowledgeStream.upsert({ where: { name }, create: { name }, update: {} });
}

/** Returns an existing stream; STREAM_NOT_FOUND when there is none of that name. */
export async function getStream(db: RegistryDb, name: string): Promise<KnowledgeStream> {
  const stream = await db.knowledgeStream.findUnique({ where: { name } });
  if (!stream) throw fail('STREAM_NOT_FOUND', { name });
  return stream;
}

/**
 * Stores a version and all its chunks in one transaction, numbering it after the last
 * version of its stream (1, 2, 3…), and appends the stream's `published` event. Chunk bytes
 * are stored once by SHA-256 (`chunk_blob`): a chunk some earlier version already has is
 * only referenced. Concurrent publications to one stream are serialised on the stream's
 * row, so two never receive the same number.
 *
 * @throws STREAM_NOT_FOUND for an unknown stream; VERSION_EXISTS when the id is published
 *   already; REQUEST_INVALID when the id is not the manifest's hash, a chunk's bytes do not
 *   match its hash, the indexes are not 0 to n-1, or the parent is unknown
 */
export async function publishVersion(
  prisma: PrismaClient,
  input: PublishVersionInput,
): Promise<PublishedVersion> {
  const chunks = validatePublication(input);
  const totalBytes = chunks.reduce((sum, chunk) => sum + chunk.data.byteLength, 0);

  try {
    return await prisma.$transaction(
      async (tx) => {
        const streams = await tx.$queryRaw<{ name: string }[]>`
          SELECT "name" FROM "knowledge_stream" WHERE "name" = ${input.stream} FOR UPDATE`;
        if (streams.length === 0) throw fail('STREAM_NOT_FOUND', { name: input.stream });

        const existing = await tx.knowledgeVersion.findUnique({ where: { id: input.id } });
        if (existing) throw versionExists(existing);

        const parentId = input.parentId ?? null;
        if (parentId !== null) {
          const parent = await tx.knowledgeVersion.findUnique({ where: { id: parentId } });
          if (!parent) {
            throw fail('REQUEST_INVALID', {
              detail: `parent version "${parentId}" is not published`,
            });
          }
        }

        const last = await tx.knowledgeVersion.aggregate({
          where: { streamName: input.stream },
          _max: { sequence: true },
        });
        const version = await tx.knowledgeVersion.create({
          data: {
            id: input.id,
            streamName: input.stream,
            sequence: (last._max.sequence ?? 0) + 1,
            parentId,
            manifestJson: input.manifestJson,
            rootHash: input.rootHash,
            chunkCount: chunks.length,
            totalBytes: BigInt(totalBytes),
            publishedAt: new Date(),
          },
        });

        const held = new Set<string>();
        const hashes = [...new Set(chunks.map((c) => c.sha256))];
        for (let i = 0; i < hashes.length; i += CHUNK_BATCH_ROWS) {
          const found = await tx.chunkBlob.findMany({
            where: { sha256: { in: hashes.slice(i, i + CHUNK_BATCH_ROWS) } },
            select: { sha256: true },
          });
          for (const blob of found) held.add(blob.sha256);
        }
        const fresh = chunks.filter((chunk) => {
          if (held.has(chunk.sha256)) return false;
          held.add(chunk.sha256);
          return true;
        });
        for (const batch of batchChunks(fresh)) {
          // skipDuplicates: another version published at the same moment may add the same bytes.
          await tx.chunkBlob.createMany({
            data: batch.map((chunk) => ({
              sha256: chunk.sha256,
              size: chunk.data.byteLength,
              data: asBytes(chunk.data),
            })),
            skipDuplicates: true,
          });
        }
        for (let i = 0; i < chunks.length; i += CHUNK_BATCH_ROWS) {
          await tx.versionChunk.createMany({
            data: chunks.slice(i, i + CHUNK_BATCH_ROWS).map((chunk) => ({
              versionId: input.id,
              index: chunk.index,
              sha256: chunk.sha256,
              size: chunk.data.byteLength,
            })),
          });
        }
        const event = await appendStreamEvent(tx, {
          stream: input.stream,
          kind: 'published',
          versionId: version.id,
          currentVersionId: version.id,
          actor: input.actor ?? 'hub',
        });
        await appendAccessInTx(tx, {
          actor: input.actor ?? 'hub',
          action: 'publish',
          resource: `version:${version.id}`,
          outcome: 'allowed',
          detail: {
            stream: input.stream,
            ...input.accessDetail,
            sequence: version.sequence,
            newChunks: fresh.length,
          },
        });
        return {
          id: version.id,
          sequence: version.sequence,
          publishedAt: version.publishedAt,
          eventSequence: event.sequence,
          newChunks: fresh.length,
        };
      },
      { maxWait: 10_000, timeout: PUBLISH_TIMEOUT_MS },
    );
  } catch (err) {
    // Two hubs publishing the same manifest at once: the loser meets the primary key.
    if (!isDistilleryError(err) && isUniqueViolation(err)) {
      const existing = await prisma.knowledgeVersion.findUnique({ where: { id: input.id } });
      if (existing) throw versionExists(existing);
    }
    throw err;
  }
}

/**
 * The version with this id.
 *
 * @throws VERSION_NOT_FOUND when there is none
 */
export async function getVersion(db: RegistryDb, id: string): Promise<KnowledgeVersion> {
  const version = await db.knowledgeVersion.findUnique({ where: { id } });
  if (!version) throw fail('VERSION_NOT_FOUND', { id });
  return version;
}

/** The version with this id, or null when there is none. */
export async function findVersion(db: RegistryDb, id: string): Promise<KnowledgeVersion | null> {
  return db.knowledgeVersion.findUnique({ where: { id } });
}

/**
 * A stream's versions in sequence order, optionally only those after a sequence number.
 *
 * @throws STREAM_NOT_FOUND when the stream does not exist
 */
export async function listVersions(
  db: RegistryDb,
  stream: string,
  options: ListVersionsOptions = {},
): Promise<KnowledgeVersion[]> {
  const versions = await db.knowledgeVersion.findMany({
    where: { streamName: stream, sequence: { gt: options.afterSequence ?? 0 } },
    orderBy: { sequence: 'asc' },
  });
  if (versions.length === 0) {
    const known = await db.knowledgeStream.findUnique({ where: { name: stream } });
    if (!known) throw fail('STREAM_NOT_FOUND', { name: stream });
  }
  return versions;
}

/** The stream's highest-numbered version, or null when it has none or does not exist. */
export async function latestVersion(
  db: RegistryDb,
  stream: string,
): Promise<KnowledgeVersion | null> {
  return db.knowledgeVersion.findFirst({
    where: { streamName: stream },
    orderBy: { sequence: 'desc' },
  });
}

/**
 * One chunk of a version, its bytes as a Buffer that shares the driver's memory.
 *
 * @throws VERSION_NOT_FOUND for an unknown version; CHUNK_OUT_OF_RANGE, with the version's
 *   chunk count, for an index it does not have
 */
export async function readChunk(
  db: RegistryDb,
  versionId: string,
  index: number,
): Promise<ChunkRecord> {
  const rows = Number.isSafeInteger(index)
    ? await db.$queryRaw<{ sha256: string; data: Uint8Array }[]>`
        SELECT b."sha256", b."data" FROM "version_chunk" v
        JOIN "chunk_blob" b ON b."sha256" = v."sha256"
        WHERE v."version_id" = ${versionId} AND v."index" = ${index}`
    : [];
  const chunk = rows[0];
  if (!chunk) {
    const version = await getVersion(db, versionId);
    throw fail('CHUNK_OUT_OF_RANGE', { id: versionId, count: version.chunkCount, index });
  }
  const data = Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength);
  return { index, sha256: chunk.sha256, data };
}

function validatePublication(input: PublishVersionInput): ChunkInput[] {
  const actualId = sha256Hex(input.manifestJson);
  if (input.id !== actualId) {
    throw fail('REQUEST_INVALID', {
      detail: `version id ${input.id} is not the SHA-256 of its manifest (${actualId})`,
    });
  }

  const chunks = [...input.chunks].sort((a, b) => a.index - b.index);
  chunks.forEach((chunk, position) => {
    if (chunk.index !== position) {
      throw fail('REQUEST_INVALID', {
        detail: `chunk indexes must run 0 to ${chunks.length - 1}; found ${chunk.index} at position ${position}`,
      });
    }
    if (chunk.data.byteLength > MAX_CHUNK_BYTES) {
      throw fail('CHUNK_SIZE_INVALID', {
        chunkBytes: chunk.data.byteLength,
        limit: MAX_CHUNK_BYTES,
      });
    }
    const actual = sha256Hex(chunk.data);
    if (chunk.sha256 !== actual) {
      throw fail('REQUEST_INVALID', {
        detail: `chunk ${chunk.index} has sha256 ${actual}, not the ${chunk.sha256} given`,
      });
    }
  });
  return chunks;
}

function* batchChunks(chunks: ChunkInput[]): Generator<ChunkInput[]> {
  let batch: ChunkInput[] = [];
  let bytes = 0;
  for (const chunk of chunks) {
    if (
      batch.length > 0 &&
      (bytes + chunk.data.byteLength > CHUNK_BATCH_BYTES || batch.length >= CHUNK_BATCH_ROWS)
    ) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(chunk);
    bytes += chunk.data.byteLength;
  }
  if (batch.length > 0) yield batch;
}

// Prisma's Bytes is a Uint8Array over a plain ArrayBuffer; a view over a SharedArrayBuffer
// is copied rather than cast.
function asBytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return data.buffer instanceof ArrayBuffer
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
}

function versionExists(version: KnowledgeVersion) {
  return fail('VERSION_EXISTS', {
    id: version.id,
    stream: version.streamName,
    sequence: version.sequence,
  });
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002';
}
