import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ensureStream,
  findVersion,
  getVersion,
  latestVersion,
  listVersions,
  publishVersion,
  readChunk,
  type PublishVersionInput,
} from '../../services/registry/knowledge.js';
import { sha256Hex } from '../../services/shared/digest.js';
import { hasCode } from '../../services/shared/errors.js';
import { registryTargets, type TestRegistry } from '../helpers/database.js';

/** A version of `count` random chunks of `size` bytes, its manifest naming them. */
function makeVersion(
  stream: string,
  parentId: string | null,
  count = 3,
  size = 1000,
): PublishVersionInput {
  const chunks = Array.from({ length: count }, (_, index) => {
    const data = new Uint8Array(randomBytes(size));
    return { index, sha256: sha256Hex(data), data };
  });
  const rootHash = sha256Hex(chunks.map((c) => c.sha256).join(''));
  const manifestJson = JSON.stringify({
    stream,
    parentId,
    nonce: randomBytes(8).toString('hex'),
    chunks: chunks.map((c) => c.sha256),
    rootHash,
  });
  return { stream, id: sha256Hex(manifestJson), manifestJson, rootHash, parentId, chunks };
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => null,
    (err: unknown) => err,
  );
}

describe.each(registryTargets())('knowledge versions ($name)', (target) => {
  let db: TestRegistry;

  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('creates a stream once, however often it is ensured', async () => {
    const first = await ensureStream(db.prisma, 'ensure');
    const again = await ensureStream(db.prisma, 'ensure');
    expect(again).toEqual(first);
  });

  it('numbers versions 1, 2, 3 within each stream and lists them in order', async () => {
    await ensureStream(db.prisma, 'alpha');
    await ensureStream(db.prisma, 'beta');
    const v1 = makeVersion('alpha', null);
    const v2 = makeVersion('alpha', v1.id);
    const v3 = makeVersion('alpha', v2.id);
    const b1 = makeVersion('beta', null);

    expect((await publishVersion(db.prisma, v1)).sequence).toBe(1);
    expect((await publishVersion(db.prisma, b1)).sequence).toBe(1);
    expect((await publishVersion(db.prisma, v2)).sequence).toBe(2);
    const third = await publishVersion(db.prisma, v3);
    expect(third).toMatchObject({ id: v3.id, sequence: 3 });
    expect(third.publishedAt).toBeInstanceOf(Date);

    const all = await listVersions(db.prisma, 'alpha');
    expect(all.map((v) => [v.id, v.sequence])).toEqual([
      [v1.id, 1],
      [v2.id, 2],
      [v3.id, 3],
    ]);
    const after1 = await listVersions(db.prisma, 'alpha', { afterSequence: 1 });
    expect(after1.map((v) => v.sequence)).toEqual([2, 3]);
    expect((await latestVersion(db.prisma, 'alpha'))?.id).toBe(v3.id);
    expect((await listVersions(db.prisma, 'beta')).map((v) => v.id)).toEqual([b1.id]);
  });

  it('stores the manifest byte for byte, with its parent, counts and status', async () => {
    await ensureStream(db.prisma, 'gamma');
    const parent = makeVersion('gamma', null);
    const child = makeVersion('gamma', parent.id, 4, 777);
    await publishVersion(db.prisma, parent);
    await publishVersion(db.prisma, child);

    const stored = await getVersion(db.prisma, child.id);
    expect(stored.manifestJson).toBe(child.manifestJson);
    expect(sha256Hex(stored.manifestJson)).toBe(stored.id);
    expect(stored).toMatchObject({
      streamName: 'gamma',
      parentId: parent.id,
      rootHash: child.rootHash,
      chunkCount: 4,
      totalBytes: 4n * 777n,
      status: 'published',
      sequence: 2,
    });
    expect(await findVersion(db.prisma, child.id)).toEqual(stored);
  });

  it('returns each chunk’s exact bytes and hash', async () => {
    await ensureStream(db.prisma, 'chunks');
    const version = makeVersion('chunks', null, 3, 1024 * 1024 + 3);
    // Out of order on purpose: indexes, not positions, place the chunks.
    await publishVersion(db.prisma, { ...version, chunks: [...version.chunks].reverse() });

    for (const chunk of version.chunks) {
      const read = await readChunk(db.prisma, version.id, chunk.index);
      expect(read.index).toBe(chunk.index);
      expect(read.sha256).toBe(chunk.sha256);
      expect(Buffer.isBuffer(read.data)).toBe(true);
      expect(read.data.equals(Buffer.from(chunk.data))).toBe(true);
    }
  });

  it('refuses a chunk index the version does not have, naming its chunk count', async () => {
    await ensureStream(db.prisma, 'range');
    const version = makeVersion('range', null, 2);
    await publishVersion(db.prisma, version);
    const err = await errorOf(readChunk(db.prisma, version.id, 2));
    expect(hasCode(err, 'CHUNK_OUT_OF_RANGE')).toBe(true);
    expect((err as Error).message).toContain('has 2 chunks');
    expect(hasCode(await errorOf(readChunk(db.prisma, version.id, -1)), 'CHUNK_OUT_OF_RANGE')).toBe(
      true,
    );
  });

  it('answers VERSION_NOT_FOUND for an unknown version, and findVersion null', async () => {
    const unknown = 'f'.repeat(64);
    const err = await errorOf(getVersion(db.prisma, unknown));
    expect(hasCode(err, 'VERSION_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain(unknown);
    expect(await findVersion(db.prisma, unknown)).toBeNull();
    expect(hasCode(await errorOf(readChunk(db.prisma, unknown, 0)), 'VERSION_NOT_FOUND')).toBe(
      true,
    );
  });

  it('answers STREAM_NOT_FOUND when listing an unknown stream, an empty list for an empty one', async () => {
    expect(hasCode(await errorOf(listVersions(db.prisma, 'nowhere')), 'STREAM_NOT_FOUND')).toBe(
      true,
    );
    await ensureStream(db.prisma, 'empty');
    expect(await listVersions(db.prisma, 'empty')).toEqual([]);
    expect(await latestVersion(db.prisma, 'empty')).toBeNull();
    expect(await latestVersion(db.prisma, 'nowhere')).toBeNull();
  });

  it('refuses to publish the same version twice, saying where it already is', async () => {
    await ensureStream(db.prisma, 'twice');
    const version = makeVersion('twice', null);
    await publishVersion(db.prisma, version);
    const err = await errorOf(publishVersion(db.prisma, version));
    expect(hasCode(err, 'VERSION_EXISTS')).toBe(true);
    expect((err as Error).message).toContain('sequence 1');
    expect(await listVersions(db.prisma, 'twice')).toHaveLength(1);
  });

  it('refuses an inconsistent publication and stores nothing of it', async () => {
    await ensureStream(db.prisma, 'strict');
    const good = makeVersion('strict', null);
    const cases: [string, PublishVersionInput, string][] = [
      ['unknown stream', { ...good, stream: 'no-such-stream' }, 'STREAM_NOT_FOUND'],
      ['id not the manifest hash', { ...good, id: 'a'.repeat(64) }, 'REQUEST_INVALID'],
      [
        'chunk bytes not matching their hash',
        {
          ...good,
          chunks: good.chunks.map((c, i) => (i === 1 ? { ...c, sha256: '0'.repeat(64) } : c)),
        },
        'REQUEST_INVALID',
      ],
      ['a missing chunk index', { ...good, chunks: good.chunks.slice(1) }, 'REQUEST_INVALID'],
      ['an unknown parent', makeVersion('strict', 'e'.repeat(64)), 'REQUEST_INVALID'],
    ];
    for (const [what, input, code] of cases) {
      const err = await errorOf(publishVersion(db.prisma, input));
      expect(hasCode(err, code as 'REQUEST_INVALID'), what).toBe(true);
    }
    expect(await listVersions(db.prisma, 'strict')).toEqual([]);
    const orphans = await db.prisma.chunk.count({ where: { versionId: good.id } });
    expect(orphans).toBe(0);
  });

  it('gives concurrent publications to one stream distinct consecutive numbers', async () => {
    await ensureStream(db.prisma, 'race');
    const versions = Array.from({ length: 6 }, () => makeVersion('race', null, 2, 100));
    const stored = await Promise.all(versions.map((v) => publishVersion(db.prisma, v)));
    expect(stored.map((s) => s.sequence).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
