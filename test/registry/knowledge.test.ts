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
import {
  currentVersionId,
  deprecateVersion,
  listStreamEvents,
  rollbackStream,
} from '../../services/registry/stream-events.js';
import { queryAccessLog } from '../../services/registry/access-log.js';
import { applyMigrations, MIGRATIONS_DIR } from '../../services/registry/migrate.js';
import { PrismaClient } from '../../services/generated/prisma/client.js';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('logs each publication in the transaction that stores it: an unloggable one is not stored', async () => {
    await ensureStream(db.prisma, 'logged');
    const first = makeVersion('logged', null);
    await publishVersion(db.prisma, first);
    const entries = (await queryAccessLog(db.prisma, { resource: `version:${first.id}` })).entries;
    expect(entries.map((e) => [e.action, e.outcome])).toEqual([['publish', 'allowed']]);
    expect(entries[0]?.detail).toMatchObject({ stream: 'logged', sequence: 1 });

    // A row squatting on the log's next sequence makes the append fail, as a full disk or
    // a broken chain would: the version must go with it.
    const head = await db.prisma.accessChainHead.findUniqueOrThrow({ where: { id: 1 } });
    const squatter = await db.prisma.accessLogEntry.create({
      data: {
        sequence: head.sequence + 1n,
        at: new Date(),
        actor: 'test',
        action: 'squat',
        resource: 'test',
        outcome: 'allowed',
        prevHash: head.hash,
        hash: randomBytes(32).toString('hex'),
      },
    });
    const second = makeVersion('logged', first.id);
    await expect(publishVersion(db.prisma, second)).rejects.toThrow();
    expect(await findVersion(db.prisma, second.id)).toBeNull();
    await db.prisma.accessLogEntry.delete({ where: { sequence: squatter.sequence } });
    expect((await publishVersion(db.prisma, second)).sequence).toBe(2);
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
    const orphans = await db.prisma.versionChunk.count({ where: { versionId: good.id } });
    expect(orphans).toBe(0);
  });

  it('gives concurrent publications to one stream distinct consecutive numbers', async () => {
    await ensureStream(db.prisma, 'race');
    const versions = Array.from({ length: 6 }, () => makeVersion('race', null, 2, 100));
    const stored = await Promise.all(versions.map((v) => publishVersion(db.prisma, v)));
    expect(stored.map((s) => s.sequence).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('stores chunk bytes once: a later version sharing chunks only references them', async () => {
    await ensureStream(db.prisma, 'shared');
    const v1 = makeVersion('shared', null, 3, 2000);
    const fresh = new Uint8Array(randomBytes(2000));
    const chunks = [
      v1.chunks[0]!,
      { index: 1, sha256: sha256Hex(fresh), data: fresh },
      { ...v1.chunks[2]!, index: 2 },
    ];
    const manifestJson = JSON.stringify({ parent: v1.id, chunks: chunks.map((c) => c.sha256) });
    const v2: PublishVersionInput = {
      stream: 'shared',
      id: sha256Hex(manifestJson),
      manifestJson,
      rootHash: sha256Hex(chunks.map((c) => c.sha256).join('')),
      parentId: v1.id,
      chunks,
    };
    expect((await publishVersion(db.prisma, v1)).newChunks).toBe(3);
    expect((await publishVersion(db.prisma, v2)).newChunks).toBe(1);
    const blobs = await db.prisma.chunkBlob.count({
      where: { sha256: { in: [...v1.chunks, ...chunks].map((c) => c.sha256) } },
    });
    expect(blobs).toBe(4);
    for (const chunk of chunks) {
      const read = await readChunk(db.prisma, v2.id, chunk.index);
      expect(Buffer.from(read.data).equals(Buffer.from(chunk.data))).toBe(true);
    }
  });

  it('records published, deprecated and rolled-back events in order, each naming the current version', async () => {
    await ensureStream(db.prisma, 'events');
    const v1 = makeVersion('events', null);
    const v2 = makeVersion('events', v1.id);
    const v3 = makeVersion('events', v2.id);
    for (const v of [v1, v2, v3]) await publishVersion(db.prisma, v);
    expect(await currentVersionId(db.prisma, 'events')).toBe(v3.id);

    // Deprecating the current version falls back to the latest earlier one.
    await deprecateVersion(db.prisma, { versionId: v3.id, actor: 'ops', reason: 'bad labels' });
    expect(await currentVersionId(db.prisma, 'events')).toBe(v2.id);
    await rollbackStream(db.prisma, { stream: 'events', versionId: v1.id, actor: 'ops' });
    expect(await currentVersionId(db.prisma, 'events')).toBe(v1.id);

    const events = await listStreamEvents(db.prisma, 'events', 0);
    expect(events.map((e) => [e.sequence, e.kind, e.versionId, e.currentVersionId])).toEqual([
      [1, 'published', v1.id, v1.id],
      [2, 'published', v2.id, v2.id],
      [3, 'published', v3.id, v3.id],
      [4, 'deprecated', v3.id, v2.id],
      [5, 'rolled_back', v1.id, v1.id],
    ]);
    expect(events[3]!.reason).toBe('bad labels');
    expect((await listStreamEvents(db.prisma, 'events', 3)).map((e) => e.sequence)).toEqual([4, 5]);
    expect((await getVersion(db.prisma, v3.id)).status).toBe('deprecated');

    const logged = await queryAccessLog(db.prisma, { actor: 'ops' });
    expect(logged.entries.map((e) => e.action)).toEqual(['version.deprecate', 'stream.rollback']);
  });

  it('refuses to make a deprecated version current, or to roll "back" to a later one', async () => {
    await ensureStream(db.prisma, 'refuse');
    const v1 = makeVersion('refuse', null);
    const v2 = makeVersion('refuse', v1.id);
    await publishVersion(db.prisma, v1);
    await publishVersion(db.prisma, v2);
    await deprecateVersion(db.prisma, { versionId: v1.id, actor: 'ops' });
    const deprecated = await errorOf(
      rollbackStream(db.prisma, { stream: 'refuse', versionId: v1.id, actor: 'ops' }),
    );
    expect(hasCode(deprecated, 'VERSION_DEPRECATED')).toBe(true);
    const twice = await errorOf(deprecateVersion(db.prisma, { versionId: v1.id, actor: 'ops' }));
    expect(hasCode(twice, 'VERSION_DEPRECATED')).toBe(true);
    const forward = await errorOf(
      rollbackStream(db.prisma, { stream: 'refuse', versionId: v2.id, actor: 'ops' }),
    );
    expect(hasCode(forward, 'ROLLBACK_INVALID')).toBe(true);
    const elsewhere = makeVersion('alpha', null);
    await publishVersion(db.prisma, { ...elsewhere, stream: 'alpha' });
    const otherStream = await errorOf(
      rollbackStream(db.prisma, { stream: 'refuse', versionId: elsewhere.id, actor: 'ops' }),
    );
    expect(hasCode(otherStream, 'ROLLBACK_INVALID')).toBe(true);
    expect(await listStreamEvents(db.prisma, 'refuse', 0)).toHaveLength(3);
  });
});

describe('the transport migration', () => {
  it('moves chunks of versions published before it into content-addressed storage, and makes their events', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'distillery-migration-'));
    const pglite = new PGlite();
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
    try {
      const all = (await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name)).sort();
      const before = all.filter((name) => name < '20261203200100_transport');
      for (const name of before)
        await cp(join(MIGRATIONS_DIR, name), join(dir, name), { recursive: true });
      await applyMigrations(prisma, { migrationsDir: dir });

      const same = Buffer.from('the same bytes');
      const other = Buffer.from('other bytes');
      await prisma.$executeRawUnsafe(`INSERT INTO "knowledge_stream" ("name") VALUES ('old')`);
      for (const [sequence, id] of [
        [1, 'a'.repeat(64)],
        [2, 'b'.repeat(64)],
      ] as const) {
        await prisma.$executeRawUnsafe(
          `INSERT INTO "knowledge_version" ("id", "stream_name", "sequence", "manifest_json", "root_hash", "chunk_count", "total_bytes")
           VALUES ($1, 'old', $2, '{}', 'r', 2, 25)`,
          id,
          sequence,
        );
        await prisma.$executeRawUnsafe(
          `INSERT INTO "chunk" ("version_id", "index", "sha256", "size", "data") VALUES ($1, 0, $2, $3, $4), ($1, 1, $5, $6, $7)`,
          id,
          sha256Hex(same),
          same.byteLength,
          same,
          sha256Hex(other),
          other.byteLength,
          other,
        );
      }

      await applyMigrations(prisma);
      expect(await prisma.chunkBlob.count()).toBe(2);
      expect(await prisma.versionChunk.count()).toBe(4);
      const read = await readChunk(prisma, 'b'.repeat(64), 1);
      expect(read.data.equals(other)).toBe(true);
      const events = await listStreamEvents(prisma, 'old', 0);
      expect(events.map((e) => [e.sequence, e.kind, e.versionId])).toEqual([
        [1, 'published', 'a'.repeat(64)],
        [2, 'published', 'b'.repeat(64)],
      ]);
    } finally {
      await prisma.$disconnect();
      await pglite.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
