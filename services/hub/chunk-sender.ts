import type { ServerWritableStream } from '@grpc/grpc-js';
import { fail } from '../shared/errors.js';
import { spansOfTensors, type KnowledgeManifest } from '../shared/knowledge/manifest.js';
import type { Chunk } from '../shared/transport/proto.js';
import type { RegistryDb } from '../registry/database.js';
import { readChunk } from '../registry/knowledge.js';
import type { ChunkCache } from './chunk-cache.js';

/** What a FetchChunks request asks for. */
export interface ChunkSelection {
  fromIndex: number;
  /** Tensor names; empty: all. */
  tensors: readonly string[];
  /** Explicit chunk indices, ascending; empty: every chunk from `fromIndex`. */
  indices: readonly number[];
}

/**
 * The chunk indices a request selects, ascending.
 *
 * @throws REQUEST_INVALID for an unknown tensor or indices out of order; CHUNK_OUT_OF_RANGE
 *   for an index the version does not have
 */
export function planChunks(
  versionId: string,
  manifest: KnowledgeManifest,
  selection: ChunkSelection,
): number[] {
  const count = manifest.chunks.length;
  const outOfRange = (index: number) => fail('CHUNK_OUT_OF_RANGE', { id: versionId, count, index });
  let wanted: number[];
  if (selection.indices.length > 0) {
    wanted = [...selection.indices];
    for (let i = 0; i < wanted.length; i++) {
      if (wanted[i]! >= count) throw outOfRange(wanted[i]!);
      if (i > 0 && wanted[i]! <= wanted[i - 1]!) {
        throw fail('REQUEST_INVALID', { detail: 'chunk indices must be strictly ascending' });
      }
    }
  } else {
    if (selection.fromIndex > count) throw outOfRange(selection.fromIndex);
    wanted = Array.from({ length: count - selection.fromIndex }, (_, i) => selection.fromIndex + i);
  }
  if (selection.tensors.length === 0) return wanted;

  const names = new Set(manifest.tensors.map((t) => t.name));
  for (const name of selection.tensors) {
    if (!names.has(name)) {
      throw fail('REQUEST_INVALID', {
        detail: `version has no tensor "${name.slice(0, 80)}"`,
      });
    }
  }
  const keep = new Set(spansOfTensors(manifest, selection.tensors).map((span) => span.index));
  return wanted.filter((index) => keep.has(index));
}

/**
 * Chunks read from the registry ahead of the one being sent: enough to hide a read's
 * latency behind a write, few enough that memory stays a few chunks whatever the version.
 */
export const READ_AHEAD = 3;

/** Options of {@link sendChunks}. */
export interface SendChunksOptions {
  db: RegistryDb;
  versionId: string;
  plan: readonly number[];
  /** Chunk hashes by index (the manifest's), for the cache. */
  hashes?: readonly string[];
  /** The hub's local chunk copies; without one every chunk is read from the registry. */
  cache?: ChunkCache;
  /** Called when a chunk has been read (from the registry or the cache), for metrics and tests. */
  onChunkRead?: (index: number) => void;
}

/**
 * Streams the planned chunks, reading at most {@link READ_AHEAD} ahead and none while the
 * peer's flow-control window is full. Once the call is cancelled or its peer goes, no
 * further read is started: the reads already in flight are the last.
 *
 * @returns false when the call ended before every chunk was sent
 */
export async function sendChunks(
  call: ServerWritableStream<unknown, Chunk>,
  options: SendChunksOptions,
): Promise<boolean> {
  const { db, versionId, plan } = options;
  let gone = call.cancelled;
  const onGone = () => {
    gone = true;
  };
  call.once('cancelled', onGone);
  call.once('close', onGone);
  const inFlight: Promise<{ index: number; data: Buffer }>[] = [];
  let next = 0;
  try {
    for (let sent = 0; sent < plan.length; sent++) {
      while (!gone && inFlight.length < READ_AHEAD && next < plan.length) {
        const index = plan[next++]!;
        const sha256 = options.hashes?.[index];
        const fromRegistry = () => readChunk(db, versionId, index).then((c) => c.data);
        const read = (
          options.cache && sha256 ? options.cache.get(sha256, fromRegistry) : fromRegistry()
        ).then((data) => {
          options.onChunkRead?.(index);
          return { index, data };
        });
        // A read abandoned by a cancelled call must not become an unhandled rejection.
        read.catch(() => undefined);
        inFlight.push(read);
      }
      if (gone) return false;
      const chunk = await inFlight.shift()!;
      if (gone) return false;
      if (!call.write({ index: chunk.index, data: chunk.data })) await writable(call);
    }
    return !gone;
  } finally {
    call.off('cancelled', onGone);
    call.off('close', onGone);
  }
}

/** Resolves when the call can take more data, or has ended (cancelled, closed, failed). */
export function writable(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  if (call.cancelled || call.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      call.off('error', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', done);
  });
}
