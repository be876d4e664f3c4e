import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../shared/digest.js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import {
  chunkSpans,
  parseManifest,
  spansOfTensors,
  type ChunkSpan,
  type KnowledgeManifest,
} from '../shared/knowledge/manifest.js';
import type { Chunk__Output } from '../shared/transport/proto.js';
import type { ChunkRequest, HubClient } from './hub-client.js';
import { writeAtomically, type LocalStore } from './local-store.js';

/** A version held locally, every chunk verified against its manifest. */
export interface DownloadedVersion {
  manifest: KnowledgeManifest;
  /** The version's blob (its tensors end to end); empty when `load` was false. */
  blob: Uint8Array;
  /** Chunks the store held already (an earlier version's, or an interrupted attempt's). */
  chunksHeld: number;
  /** Chunks fetched from the hub by this call. */
  chunksFetched: number;
  /** Bytes received over the wire by this call. */
  bytesReceived: number;
  durationMs: number;
}

/** Options of {@link downloadVersion}. */
export interface DownloadOptions {
  /** Read the blob into memory once complete; default true. */
  load?: boolean;
  /** Called after each chunk is verified and stored (progress, tests). */
  onChunk?: (index: number, bytes: number) => void;
  /**
   * The tensors to fetch, chosen from the verified manifest; default every tensor. Only
   * their chunks are asked for, verified and placed in the blob, and the result's manifest
   * lists only them, so that no reader can take the zeros of a tensor left out for data.
   */
  tensors?: (manifest: KnowledgeManifest) => readonly string[];
  /**
   * Cancels the download once aborted (a node stopping), also when the hub has stopped
   * answering: the call rejects with the signal's reason; verified chunks stay stored.
   */
  signal?: AbortSignal;
}

/**
 * Downloads a version into the local store. Chunks are kept by SHA-256, so the chunks of a
 * tensor unchanged since a version already held, and those an interrupted attempt stored,
 * are not fetched again: the hub is asked for exactly the chunks missing. Each chunk is
 * checked against the SHA-256 the manifest gives for its index (never against anything the
 * chunk says of itself) before it is stored, the manifest is checked against the version
 * id and its root hash against the chunk hashes, and held chunks are checked again when
 * the blob is assembled.
 */
export async function downloadVersion(
  client: HubClient,
  store: LocalStore,
  versionId: string,
  logger: Logger,
  options: DownloadOptions = {},
): Promise<DownloadedVersion> {
  const started = performance.now();
  options.signal?.throwIfAborted();
  const manifestPath = join(store.versionDir(versionId), 'manifest.json');
  const manifestBytes = existsSync(manifestPath)
    ? await readFile(manifestPath)
    : await client.getManifest(versionId, options.signal);
  const manifest = parseManifest(versionId, manifestBytes);
  if (!existsSync(manifestPath)) await writeAtomically(manifestPath, manifestBytes);

  const wanted = options.tensors?.(manifest);
  const spans = selectSpans(versionId, manifest, wanted);
  let chunksFetched = 0;
  let bytesReceived = 0;
  let chunksHeld = -1;
  // A second pass only when a held chunk failed verification while assembling.
  for (let attempt = 0; attempt < 2; attempt++) {
    const missing = missingChunks(store, spans);
    if (chunksHeld < 0) chunksHeld = spans.length - missing.length;
    if (missing.length > 0) {
      if (chunksHeld > 0 && attempt === 0) {
        logger.info(
          { version: versionId, held: chunksHeld, missing: missing.length },
          'fetching only the chunks not held',
        );
      }
      const received = await fetchMissing(client, store, manifest, versionId, missing, {
        ...options,
        ...(wanted ? { tensorNames: wanted } : {}),
      });
      chunksFetched += received.chunks;
      bytesReceived += received.bytes;
    }
    const held = wanted
      ? { ...manifest, tensors: manifest.tensors.filter((t) => wanted.includes(t.name)) }
      : manifest;
    if (options.load === false) {
      return done(held, new Uint8Array(0));
    }
    const blob = await assemble(store, manifest, spans, logger, versionId);
    if (blob) return done(held, blob);
  }
  throw fail('MANIFEST_INVALID', {
    id: versionId,
    detail: 'stored chunks failed verification twice',
  });

  function done(m: KnowledgeManifest, blob: Uint8Array): DownloadedVersion {
    return {
      manifest: m,
      blob,
      chunksHeld,
      chunksFetched,
      bytesReceived,
      durationMs: Math.round(performance.now() - started),
    };
  }
}

/** The chunks holding `tensors`, every chunk when none are named. */
function selectSpans(
  versionId: string,
  manifest: KnowledgeManifest,
  tensors: readonly string[] | undefined,
): ChunkSpan[] {
  if (!tensors) return chunkSpans(manifest);
  const known = new Set(manifest.tensors.map((t) => t.name));
  const unknown = tensors.find((name) => !known.has(name));
  if (unknown !== undefined) {
    throw fail('MANIFEST_INVALID', {
      id: versionId,
      detail: `the version has no tensor "${unknown}"`,
    });
  }
  return spansOfTensors(manifest, tensors);
}

/** The chunks the store lacks, one per distinct hash, in index order. */
function missingChunks(store: LocalStore, spans: readonly ChunkSpan[]): ChunkSpan[] {
  const seen = new Set<string>();
  const missing: ChunkSpan[] = [];
  for (const span of spans) {
    if (seen.has(span.sha256)) continue;
    seen.add(span.sha256);
    if (!store.hasChunk(span.sha256)) missing.push(span);
  }
  return missing;
}

async function fetchMissing(
  client: HubClient,
  store: LocalStore,
  manifest: KnowledgeManifest,
  versionId: string,
  missing: readonly ChunkSpan[],
  options: DownloadOptions & { tensorNames?: readonly string[] },
): Promise<{ chunks: number; bytes: number }> {
  const first = missing[0]!.index;
  const last = missing.at(-1)!.index;
  // A run of every chunk from one index to the end is asked for by its start (a short
  // request), anything else by its indices.
  const request: ChunkRequest = {
    ...(last - first + 1 === missing.length && last === manifest.chunks.length - 1
      ? { fromIndex: first }
      : { indices: missing.map((s) => s.index) }),
    ...(options.tensorNames ? { tensors: [...options.tensorNames] } : {}),
  };
  const { signal } = options;
  signal?.throwIfAborted();
  const stream = client.fetchChunks(versionId, request);
  const onAbort = () => stream.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let received = 0;
  let bytes = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Chunk__Output>) {
      const due = missing[received];
      if (!due || chunk.index !== due.index) {
        throw fail('MANIFEST_INVALID', {
          id: versionId,
          detail: `chunk ${chunk.index} arrived where ${due?.index ?? 'the end'} was due`,
        });
      }
      const actual = sha256Hex(chunk.data);
      if (actual !== due.sha256 || chunk.data.byteLength !== due.length) {
        throw fail('CHUNK_HASH_MISMATCH', {
          index: due.index,
          id: versionId,
          expected: due.sha256,
          actual,
        });
      }
      await store.writeChunk(due.sha256, chunk.data);
      received++;
      bytes += chunk.data.byteLength;
      options.onChunk?.(due.index, chunk.data.byteLength);
    }
  } catch (err) {
    stream.cancel();
    // The CANCELLED that a stop causes is the stop: say so, not "the hub cancelled".
    throw signal?.aborted ? signal.reason : err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (received !== missing.length) {
    throw fail('MANIFEST_INVALID', {
      id: versionId,
      detail: `stream ended after ${received} of ${missing.length} chunks`,
    });
  }
  return { chunks: received, bytes };
}

/** Reads every chunk from the store into one blob; null (chunk dropped) on a bad one. */
async function assemble(
  store: LocalStore,
  manifest: KnowledgeManifest,
  spans: readonly ChunkSpan[],
  logger: Logger,
  versionId: string,
): Promise<Uint8Array | null> {
  const blob = new Uint8Array(manifest.totalBytes);
  let intact = true;
  for (const span of spans) {
    const data = await store.readChunk(span.sha256).catch(() => null);
    if (!data || data.byteLength !== span.length || sha256Hex(data) !== span.sha256) {
      logger.warn({ version: versionId, index: span.index }, 'stored chunk failed verification');
      await store.dropChunk(span.sha256);
      intact = false;
      continue;
    }
    blob.set(data, span.offset);
  }
  return intact ? blob : null;
}
