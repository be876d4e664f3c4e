import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  appendAccess,
  appendAccessInTx,
  GENESIS_HASH,
  hashAccessEntry,
  queryAccessLog,
  verifyAccessChain,
  type AccessEntryInput,
  type AccessLogRecord,
} from '../../services/registry/access-log.js';
import { openRegistry } from '../../services/registry/database.js';
import { hasCode } from '../../services/shared/errors.js';
import { registryTargets, resetAccessLog, type TestRegistry } from '../helpers/database.js';

function entry(i: number, extra: Partial<AccessEntryInput> = {}): AccessEntryInput {
  return {
    actor: i % 3 === 0 ? 'bank-b' : 'bank-a',
    action: i % 2 === 0 ? 'download' : 'manifest',
    resource: `version:${String(i).padStart(64, '0')}`,
    outcome: i % 5 === 0 ? 'denied' : 'allowed',
    ...(i % 5 === 0 ? { reason: 'not enrolled' } : {}),
    peerAddress: `ipv4:127.0.0.1:${40000 + i}`,
    detail: { i, fromIndex: 0 },
    ...extra,
  };
}

async function appendMany(db: TestRegistry, count: number): Promise<AccessLogRecord[]> {
  const records: AccessLogRecord[] = [];
  for (let i = 1; i <= count; i++) records.push(await appendAccess(db.prisma, entry(i)));
  return records;
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => null,
    (err: unknown) => err,
  );
}

describe.each(registryTargets())('access log ($name)', (target) => {
  let db: TestRegistry;

  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db?.cleanup();
  });
  afterEach(async () => {
    await resetAccessLog(db.prisma);
  });

  describe('appending', () => {
    it('records an entry whose fields hold NUL bytes and megabytes, cut and cleaned, in a valid chain', async () => {
      const huge = 'x'.repeat(3_000_000);
      const record = await appendAccess(db.prisma, {
        actor: 'unverified:bank-a\u0000evil',
        action: 'manifest',
        resource: `version:${huge}`,
        outcome: 'denied',
        reason: `bad id ${huge}`,
        detail: { id: 'a\u0000b', blob: huge },
      });
      expect(record.actor).toBe('unverified:bank-a\ufffdevil');
      expect(record.resource.length).toBeLessThan(400);
      expect(record.reason!.length).toBeLessThan(1200);
      expect(record.detail).toMatchObject({ truncated: true });
      const small = await appendAccess(db.prisma, { ...entry(1), detail: { id: 'a\u0000b' } });
      expect(small.detail).toEqual({ id: 'a\ufffdb' });
      expect((await verifyAccessChain(db.prisma)).ok).toBe(true);
    });

    it('numbers entries 1, 2, 3 and links each to the hash of the one before', async () => {
      const records = await appendMany(db, 5);
      expect(records.map((r) => r.sequence)).toEqual(['1', '2', '3', '4', '5']);
      expect(records[0].prevHash).toBe(GENESIS_HASH);
      for (let i = 1; i < records.length; i++)
        expect(records[i].prevHash).toBe(records[i - 1].hash);
      for (const record of records) expect(hashAccessEntry(record)).toBe(record.hash);
    });

    it('stores the time to the millisecond, so that re-reading gives the hashed value', async () => {
      const at = new Date('2026-01-02T03:04:05.678Z');
      const record = await appendAccess(db.prisma, entry(1, { at }));
      expect(record.at).toBe('2026-01-02T03:04:05.678Z');
      const [read] = (await queryAccessLog(db.prisma)).entries;
      expect(read).toEqual(record);
      expect((await verifyAccessChain(db.prisma)).ok).toBe(true);
    });

    it('hashes detail as the database returns it: Dates as strings, undefined members gone', async () => {
      const record = await appendAccess(
        db.prisma,
        entry(1, {
          detail: { when: new Date(0), gone: undefined, nested: { b: 2, a: [1, 'x', null] } },
        }),
      );
      expect(record.detail).toEqual({
        when: '1970-01-01T00:00:00.000Z',
        nested: { b: 2, a: [1, 'x', null] },
      });
      const [read] = (await queryAccessLog(db.prisma)).entries;
      expect(read).toEqual(record);
      expect((await verifyAccessChain(db.prisma)).ok).toBe(true);
    });

    it('keeps absent reason, detail and peer address as null', async () => {
      const record = await appendAccess(db.prisma, {
        actor: 'anonymous',
        action: 'handshake',
        resource: 'grpc',
        outcome: 'denied',
      });
      expect(record).toMatchObject({ reason: null, detail: null, peerAddress: null });
      expect((await verifyAccessChain(db.prisma)).ok).toBe(true);
    });

    it('refuses an entry without an actor or with an unknown outcome', async () => {
      const noActor = await errorOf(appendAccess(db.prisma, entry(1, { actor: '' })));
      const badOutcome = await errorOf(
        appendAccess(db.prisma, entry(1, { outcome: 'maybe' as 'allowed' })),
      );
      expect(hasCode(noActor, 'REQUEST_INVALID')).toBe(true);
      expect(hasCode(badOutcome, 'REQUEST_INVALID')).toBe(true);
      expect((await verifyAccessChain(db.prisma)).entries).toBe(0);
    });

    it('commits an entry written inside a transaction with it, and leaves no gap on rollback', async () => {
      await appendAccess(db.prisma, entry(1));
      const err = await errorOf(
        db.prisma.$transaction(async (tx) => {
          await appendAccessInTx(tx, entry(2));
          throw new Error('decision failed after logging');
        }),
      );
      expect((err as Error).message).toBe('decision failed after logging');

      const inTx = await db.prisma.$transaction(async (tx) => {
        await tx.participant.upsert({
          where: { id: 'bank-tx' },
          create: { id: 'bank-tx' },
          update: {},
        });
        return appendAccess(tx, entry(3));
      });
      expect(inTx.sequence).toBe('2');
      const verified = await verifyAccessChain(db.prisma);
      expect(verified).toMatchObject({
        ok: true,
        entries: 2,
        headSequence: '2',
        headHash: inTx.hash,
      });
    });

    it('gives 50 concurrent appends a gap-free chain that verifies', async () => {
      const records = await Promise.all(
        Array.from({ length: 50 }, (_, i) => appendAccess(db.prisma, entry(i + 1))),
      );
      const sequences = records.map((r) => Number(r.sequence)).sort((a, b) => a - b);
      expect(sequences).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(await verifyAccessChain(db.prisma)).toMatchObject({
        ok: true,
        entries: 50,
        headSequence: '50',
      });
    });
  });

  describe('verification', () => {
    const sql = (text: string, ...values: unknown[]) =>
      db.prisma.$executeRawUnsafe(text, ...values);

    it('accepts an empty log', async () => {
      expect(await verifyAccessChain(db.prisma)).toEqual({
        ok: true,
        entries: 0,
        headSequence: '0',
        headHash: GENESIS_HASH,
      });
    });

    it('accepts an untouched chain and reports its head', async () => {
      const records = await appendMany(db, 12);
      expect(await verifyAccessChain(db.prisma)).toEqual({
        ok: true,
        entries: 12,
        headSequence: '12',
        headHash: records[11].hash,
      });
    });

    it('names an entry whose actor was edited', async () => {
      await appendMany(db, 10);
      await sql(`UPDATE "access_log_entry" SET "actor" = 'bank-z' WHERE "sequence" = 6`);
      const result = await verifyAccessChain(db.prisma);
      expect(result.ok).toBe(false);
      expect(result.firstBad).toEqual({ sequence: '6', problem: expect.stringMatching(/altered/) });
    });

    it('names an entry whose detail was edited', async () => {
      await appendMany(db, 4);
      await sql(
        `UPDATE "access_log_entry" SET "detail" = '{"i": 3, "fromIndex": 1}' WHERE "sequence" = 3`,
      );
      expect((await verifyAccessChain(db.prisma)).firstBad?.sequence).toBe('3');
    });

    it('names an entry altered with its hash recomputed at the next link', async () => {
      const records = await appendMany(db, 6);
      // Entry 5 was a denial; turned into a grant, its own hash made to fit.
      const forged = { ...records[4], outcome: 'allowed' as const, reason: null };
      expect(records[4].outcome).toBe('denied');
      await sql(
        `UPDATE "access_log_entry" SET "outcome" = $1, "reason" = NULL, "hash" = $2 WHERE "sequence" = 5`,
        forged.outcome,
        hashAccessEntry(forged),
      );
      const result = await verifyAccessChain(db.prisma);
      expect(result.firstBad).toEqual({ sequence: '6', problem: expect.stringMatching(/entry 5/) });
    });

    it('names a deleted entry', async () => {
      await appendMany(db, 10);
      await sql(`DELETE FROM "access_log_entry" WHERE "sequence" = 4`);
      const result = await verifyAccessChain(db.prisma);
      expect(result.ok).toBe(false);
      expect(result.firstBad).toEqual({ sequence: '4', problem: expect.stringMatching(/missing/) });
    });

    it('names the first entry when it was deleted, and the last when the head outlives it', async () => {
      await appendMany(db, 5);
      await sql(`DELETE FROM "access_log_entry" WHERE "sequence" = 5`);
      expect((await verifyAccessChain(db.prisma)).firstBad).toEqual({
        sequence: '5',
        problem: expect.stringMatching(/missing.*head/),
      });
      await sql(`DELETE FROM "access_log_entry" WHERE "sequence" = 1`);
      expect((await verifyAccessChain(db.prisma)).firstBad?.sequence).toBe('1');
    });

    it('names two entries that were swapped', async () => {
      await appendMany(db, 8);
      // Through a free number, since sequence is the primary key.
      await sql(`UPDATE "access_log_entry" SET "sequence" = 1000 WHERE "sequence" = 3`);
      await sql(`UPDATE "access_log_entry" SET "sequence" = 3 WHERE "sequence" = 4`);
      await sql(`UPDATE "access_log_entry" SET "sequence" = 4 WHERE "sequence" = 1000`);
      const result = await verifyAccessChain(db.prisma);
      expect(result.ok).toBe(false);
      expect(result.firstBad?.sequence).toBe('3');
    });

    it('names a forged entry inserted with a made-up hash', async () => {
      const records = await appendMany(db, 5);
      await sql(
        `INSERT INTO "access_log_entry" ("sequence", "at", "actor", "action", "resource", "outcome",
           "prev_hash", "hash") VALUES (6, now(), 'bank-z', 'download', 'version:x', 'allowed', $1, $2)`,
        records[4].hash,
        'f'.repeat(64),
      );
      const result = await verifyAccessChain(db.prisma);
      expect(result.firstBad?.sequence).toBe('6');
    });

    it('names a well-formed entry appended around the log, the head not knowing it', async () => {
      const records = await appendMany(db, 5);
      const forged: AccessLogRecord = {
        ...records[4],
        sequence: '6',
        actor: 'bank-z',
        prevHash: records[4].hash,
        hash: '',
      };
      forged.hash = hashAccessEntry(forged);
      await sql(
        `INSERT INTO "access_log_entry" ("sequence", "at", "actor", "action", "resource", "outcome",
           "reason", "detail", "peer_address", "prev_hash", "hash")
         VALUES (6, $1::timestamp, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)`,
        forged.at.replace('T', ' ').replace('Z', ''),
        forged.actor,
        forged.action,
        forged.resource,
        forged.outcome,
        forged.reason,
        JSON.stringify(forged.detail),
        forged.peerAddress,
        forged.prevHash,
        forged.hash,
      );
      const result = await verifyAccessChain(db.prisma);
      expect(result).toMatchObject({ ok: false, headSequence: '5' });
      expect(result.firstBad).toEqual({ sequence: '6', problem: expect.stringMatching(/beyond/) });
    });

    it('names a forged entry numbered before the first', async () => {
      await appendMany(db, 3);
      await sql(
        `INSERT INTO "access_log_entry" ("sequence", "at", "actor", "action", "resource", "outcome",
           "prev_hash", "hash") VALUES (0, now(), 'bank-z', 'download', 'version:x', 'allowed', $1, $2)`,
        GENESIS_HASH,
        'd'.repeat(64),
      );
      expect((await verifyAccessChain(db.prisma)).firstBad?.sequence).toBe('0');
    });

    it('names an entry inserted in the middle, the later ones renumbered', async () => {
      const records = await appendMany(db, 8);
      await sql(
        `UPDATE "access_log_entry" SET "sequence" = "sequence" + 1000 WHERE "sequence" > 5`,
      );
      await sql(
        `UPDATE "access_log_entry" SET "sequence" = "sequence" - 999 WHERE "sequence" > 1000`,
      );
      await sql(
        `INSERT INTO "access_log_entry" ("sequence", "at", "actor", "action", "resource", "outcome",
           "prev_hash", "hash") VALUES (6, now(), 'bank-z', 'download', 'version:x', 'allowed', $1, $2)`,
        records[4].hash,
        'e'.repeat(64),
      );
      expect((await verifyAccessChain(db.prisma)).firstBad?.sequence).toBe('6');
    });

    it('names a head that does not match the last entry', async () => {
      await appendMany(db, 3);
      await sql(`UPDATE "access_chain_head" SET "hash" = $1`, 'a'.repeat(64));
      const result = await verifyAccessChain(db.prisma);
      expect(result).toMatchObject({ ok: false, headHash: 'a'.repeat(64) });
      expect(result.firstBad).toEqual({ sequence: '3', problem: expect.stringMatching(/head/) });
    });

    it('checks a chain longer than one page, finding an edit past the first page', async () => {
      // Built in memory and written in bulk: appending 4500 entries one by one is slow.
      let prevHash = GENESIS_HASH;
      const rows = Array.from({ length: 4500 }, (_, i) => {
        const fields = {
          sequence: String(i + 1),
          at: new Date(1_700_000_000_000 + i).toISOString(),
          actor: 'bank-a',
          action: 'download',
          resource: `version:${i}`,
          outcome: 'allowed',
          reason: null,
          detail: null,
          peerAddress: null,
          prevHash,
        };
        const hash = hashAccessEntry(fields);
        prevHash = hash;
        return { ...fields, hash };
      });
      for (let i = 0; i < rows.length; i += 1000) {
        await db.prisma.accessLogEntry.createMany({
          data: rows.slice(i, i + 1000).map((r) => ({
            ...r,
            sequence: BigInt(r.sequence),
            at: new Date(r.at),
            detail: undefined,
          })),
        });
      }
      await db.prisma.accessChainHead.create({ data: { id: 1, sequence: 4500n, hash: prevHash } });
      expect(await verifyAccessChain(db.prisma)).toMatchObject({ ok: true, entries: 4500 });

      // The next append continues the bulk-written chain.
      const next = await appendAccess(db.prisma, entry(1));
      expect(next).toMatchObject({ sequence: '4501', prevHash });

      await sql(`UPDATE "access_log_entry" SET "resource" = 'version:x' WHERE "sequence" = 3001`);
      expect((await verifyAccessChain(db.prisma)).firstBad?.sequence).toBe('3001');
    });
  });

  describe('querying', () => {
    it('returns every entry exactly once, in order, when paged with the cursor', async () => {
      await appendMany(db, 57);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await queryAccessLog(db.prisma, { limit: 10, ...(cursor ? { cursor } : {}) });
        seen.push(...page.entries.map((e) => e.sequence));
        cursor = page.nextCursor ?? undefined;
        pages += 1;
      } while (cursor);
      expect(pages).toBe(6);
      expect(seen).toEqual(Array.from({ length: 57 }, (_, i) => String(i + 1)));
    });

    it('ends on a full last page with a null cursor', async () => {
      await appendMany(db, 20);
      const first = await queryAccessLog(db.prisma, { limit: 10 });
      const second = await queryAccessLog(db.prisma, { limit: 10, cursor: first.nextCursor! });
      expect(second.entries).toHaveLength(10);
      expect(second.nextCursor).toBeNull();
    });

    it('filters by actor, action, outcome and resource, paging through the matches', async () => {
      await appendMany(db, 30);
      const all = (await queryAccessLog(db.prisma, { limit: 1000 })).entries;

      const byActor: AccessLogRecord[] = [];
      let cursor: string | null = null;
      do {
        const page: Awaited<ReturnType<typeof queryAccessLog>> = await queryAccessLog(db.prisma, {
          actor: 'bank-b',
          limit: 3,
          ...(cursor ? { cursor } : {}),
        });
        byActor.push(...page.entries);
        cursor = page.nextCursor;
      } while (cursor);
      expect(byActor).toEqual(all.filter((e) => e.actor === 'bank-b'));

      const denied = await queryAccessLog(db.prisma, { outcome: 'denied', action: 'manifest' });
      expect(denied.entries).toEqual(
        all.filter((e) => e.outcome === 'denied' && e.action === 'manifest'),
      );
      const one = await queryAccessLog(db.prisma, { resource: all[6].resource });
      expect(one.entries).toEqual([all[6]]);
    });

    it('filters by time, from inclusive and to exclusive', async () => {
      const base = Date.parse('2026-03-01T00:00:00.000Z');
      for (let i = 0; i < 6; i++) {
        await appendAccess(db.prisma, entry(i + 1, { at: new Date(base + i * 1000) }));
      }
      const page = await queryAccessLog(db.prisma, {
        from: new Date(base + 1000),
        to: new Date(base + 4000),
      });
      expect(page.entries.map((e) => e.sequence)).toEqual(['2', '3', '4']);
    });

    it('uses 100 entries a page by default and never more than 1000', async () => {
      await appendMany(db, 120);
      const page = await queryAccessLog(db.prisma);
      expect(page.entries).toHaveLength(100);
      expect(page.nextCursor).not.toBeNull();
      expect((await queryAccessLog(db.prisma, { limit: 5000 })).entries).toHaveLength(120);
      expect(
        hasCode(await errorOf(queryAccessLog(db.prisma, { limit: 0 })), 'REQUEST_INVALID'),
      ).toBe(true);
    });

    it('refuses a cursor it did not issue', async () => {
      await appendMany(db, 3);
      const forged = [
        'not a cursor!',
        Buffer.from('abc').toString('base64url'),
        Buffer.from('0').toString('base64url'),
        Buffer.from('01').toString('base64url'),
        Buffer.from('99999999999999999999').toString('base64url'),
        '',
      ];
      for (const cursor of forged) {
        const err = await errorOf(queryAccessLog(db.prisma, { cursor }));
        expect(hasCode(err, 'AUDIT_CURSOR_INVALID'), cursor).toBe(true);
      }
    });

    it('refuses an unknown outcome or an invalid date', async () => {
      const badOutcome = await errorOf(queryAccessLog(db.prisma, { outcome: 'maybe' }));
      const badDate = await errorOf(queryAccessLog(db.prisma, { from: new Date('nonsense') }));
      expect(hasCode(badOutcome, 'REQUEST_INVALID')).toBe(true);
      expect(hasCode(badDate, 'REQUEST_INVALID')).toBe(true);
    });
  });
});

describe.runIf(process.env.DATABASE_URL)('access log shared by two hubs on PostgreSQL', () => {
  it('keeps one gap-free chain when two registries append to one database at once', async () => {
    const [target] = registryTargets().filter((t) => t.kind === 'postgres');
    const db = await target.open();
    const other = await openRegistry({ databaseUrl: db.databaseUrl });
    try {
      await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          appendAccess(i % 2 === 0 ? db.prisma : other.prisma, entry(i + 1)),
        ),
      );
      expect(await verifyAccessChain(other.prisma)).toMatchObject({
        ok: true,
        entries: 60,
        headSequence: '60',
      });
    } finally {
      await other.close();
      await db.cleanup();
    }
  });
});
