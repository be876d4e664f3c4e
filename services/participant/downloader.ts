import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../shared/digest.js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { parseManifest, type KnowledgeManifest } from '../shared/knowledge/manifest.js';
import type { HubClient } from './hub-client.js';
import { writeAtomically, type LocalStore } from './local-store.js';

/** A version held locally, every chunk verified against its manifest. */
export interface DownloadedVersion {
  manifest: KnowledgeManifest;
  blob: Uint8Array;
  /** Chunks that were already held and verified before this download. */
  resumedFromChunk: number;
  /** Bytes received over the wire by this call. */
  bytesReceived: number;
  durationMs: number;
}

/**
 * Downloads a version into the local store, resuming after the last verified chunk of an
 * earlier, interrupted attempt. Each chunk is checked against the SHA-256 the manifest
 * gives for its index (never against anything the chunk says of itself) before it is
 * written, and the manifest itself is checked against the version id.
 */
export async function downloadVersion(
  client: HubClient,
  store: LocalStore,
  versionId: string,
  logger: Logger,
): Promise<DownloadedVersion> {
  const started = performance.now();
  const dir = store.versionDir(versionId);
  await mkdir(dir, { recursive: true });
  const complete = join(dir, 'blob.bin');
  const partial = join(dir, 'blob.part');

  const manifestPath = join(dir, 'manifest.json');
  const manifestBytes = existsSync(manifestPath)
    ? await readFile(manifestPath)
    : await client.getManifest(versionId);
  const manifest = parseManifest(versionId, manifestBytes);
  if (!existsSync(manifestPath)) await writeAtomically(manifestPath, manifestBytes);

  if (existsSync(complete)) {
    const blob = new Uint8Array(await readFile(complete));
    if (verifiedPrefix(manifest, blob) === manifest.chunks.length) {
      return {
        manifest,
        blob,
        resumedFromChunk: manifest.chunks.length,
        bytesReceived: 0,
        durationMs: 0,
      };
    }
    logger.warn({ version: versionId }, 'stored version failed verification; downloading again');
    await rename(complete, partial);
  }

  // Keep only the chunks of an earlier attempt that still verify.
  let fromIndex = 0;
  if (existsSync(partial)) {
    const held = new Uint8Array(await readFile(partial));
    fromIndex = verifiedPrefix(manifest, held);
    await truncate(partial, Math.min(fromIndex * manifest.chunkBytes, manifest.totalBytes));
    if (fromIndex > 0) logger.info({ version: versionId, fromIndex }, 'resuming download');
  }

  let bytesReceived = 0;
  if (fromIndex < manifest.chunks.length) {
    const file = await open(partial, 'a');
    const stream = client.fetchChunks(versionId, fromIndex);
    try {
      let expected = fromIndex;
      for await (const chunk of stream as AsyncIterable<{ index: number; data: Buffer }>) {
        if (chunk.index !== expected) {
          throw fail('MANIFEST_INVALID', {
            id: versionId,
            detail: `chunk ${chunk.index} arrived where ${expected} was due`,
          });
        }
        const actual = sha256Hex(chunk.data);
        if (actual !== manifest.chunks[expected]) {
          throw fail('CHUNK_HASH_MISMATCH', {
            index: expected,
            id: versionId,
            expected: manifest.chunks[expected],
            actual,
          });
        }
        await file.write(chunk.data);
        bytesReceived += chunk.data.byteLength;
        expected++;
      }
      if (expected !== manifest.chunks.length) {
        throw fail('MANIFEST_INVALID', {
          id: versionId,
          detail: `stream ended after ${expected} of ${manifest.chunks.length} chunks`,
        });
      }
    } catch (err) {
      stream.cancel();
      throw err;
    } finally {
      await file.close();
    }
  }

  const size = (await stat(partial).catch(() => ({ size: 0 }))).size;
  if (size !== manifest.totalBytes) {
    throw fail('MANIFEST_INVALID', {
      id: versionId,
      detail: `assembled ${size} of ${manifest.totalBytes} bytes`,
    });
  }
  await rename(partial, complete);
  const blob = new Uint8Array(await readFile(complete));
  return {
    manifest,
    blob,
    resumedFromChunk: fromIndex,
    bytesReceived,
    durationMs: Math.round(performance.now() - started),
  };
}

/** How many leading chunks of `blob` match the manifest's hashes. */
function verifiedPrefix(manifest: KnowledgeManifest, blob: Uint8Array): number {
  let index = 0;
  for (; index < manifest.chunks.length; index++) {
    const start = index * manifest.chunkBytes;
    const end = Math.min(start + manifest.chunkBytes, manifest.totalBytes);
    if (end > blob.byteLength) break;
    if (sha256Hex(blob.subarray(start, end)) !== manifest.chunks[index]) break;
  }
  return index;
}
