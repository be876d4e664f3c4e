import type { AccessLogEntry, PrismaClient } from '../generated/prisma/client.js';
import { Prisma } from '../generated/prisma/client.js';
import { canonicalJson, sha256Hex } from '../shared/digest.js';
import { fail } from '../shared/errors.js';
import type { RegistryDb } from './database.js';

/** The `prevHash` of the first entry: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

/** How a request that was logged ended. */
export type AccessOutcome = 'allowed' | 'denied' | 'error';

const OUTCOMES: ReadonlySet<string> = new Set<AccessOutcome>(['allowed', 'denied', 'error']);

/** One access to record with {@link appendAccess}. */
export interface AccessEntryInput {
  /**
   * Who: a participant id from a verified certificate, `unverified:<CN>` or `anonymous` for
   * a refused handshake, or a token's subject for HTTP callers.
   */
  actor: string;
  /** What: `subscribe`, `manifest`, `download`, `handshake`, `publish`, `audit.query`… */
  action: string;
  /** On what: `version:<id>`, `stream:<name>`, `grpc`, `http:/v1/…` */
  resource: string;
  outcome: AccessOutcome;
  /** Why it was denied or failed. */
  reason?: string | null;
  /** Any JSON value; stored and hashed as it reads after a JSON round trip. */
  detail?: unknown;
  peerAddress?: string | null;
  /** When; default now. Kept to the millisecond. */
  at?: Date;
}

/** One entry of the access log, in a JSON-safe shape. */
export interface AccessLogRecord {
  /** 1, 2, 3… without gaps, as a decimal string. */
  sequence: string;
  /** ISO 8601 with milliseconds, UTC. */
  at: string;
  actor: string;
  action: string;
  resource: string;
  outcome: AccessOutcome;
  reason: string | null;
  detail: Prisma.JsonValue | null;
  peerAddress: string | null;
  /** The previous entry's hash, or {@link GENESIS_HASH} for the first. */
  prevHash: string;
  /** {@link hashAccessEntry} of this entry's fields. */
  hash: string;
}

/** Filters of {@link queryAccessLog}; all optional, combined with AND. */
export interface AccessLogQuery {
  actor?: string;
  action?: string;
  /** One of {@link AccessOutcome}; another value is refused with REQUEST_INVALID. */
  outcome?: string;
  resource?: string;
  /** Entries at or after this instant. */
  from?: Date;
  /** Entries strictly before this instant. */
  to?: Date;
  /** Most entries per page; default 100, at most 1000 (larger values are clamped). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** One page of {@link queryAccessLog}. */
export interface AccessLogPage {
  entries: AccessLogRecord[];
  /** Pass as `cursor` for the next page; null when this page is the last. */
  nextCursor: string | null;
}

/** What {@link verifyAccessChain} found. */
export interface ChainVerification {
  ok: boolean;
  /** Entries checked; when `ok` is false, those up to and including the first bad one. */
  entries: number;
  /** The sequence number the chain head records ("0" for an empty log). */
  headSequence: string;
  headHash: string;
  /** The first entry that breaks the chain, and how. */
  firstBad?: { sequence: string; problem: string };
}

/** The fields an entry's hash covers, in the form they are hashed. */
export interface HashedAccessFields {
  sequence: string;
  at: string;
  actor: string;
  action: string;
  resource: string;
  outcome: string;
  reason: string | null;
  detail: unknown;
  peerAddress: string | null;
  prevHash: string;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1_000;
const VERIFY_PAGE = 2_000;

/** Transaction limits for appends and for decisions logged with them. */
// Appends queue on the head row; under a burst on PostgreSQL a transaction may wait for a
// pooled connection and then for the lock longer than Prisma's 2 s and 5 s defaults.
export const APPEND_TX_OPTIONS = { maxWait: 15_000, timeout: 15_000 };

/**
 * The hash of one entry: SHA-256 of the canonical JSON of its fields. Auditors recompute it
 * from an export with nothing but this definition.
 */
export function hashAccessEntry(fields: HashedAccessFields): string {
  return sha256Hex(
    canonicalJson({
      sequence: fields.sequence,
      at: fields.at,
      actor: fields.actor,
      action: fields.action,
      resource: fields.resource,
      outcome: fields.outcome,
      reason: fields.reason ?? null,
      detail: fields.detail ?? null,
      peerAddress: fields.peerAddress ?? null,
      prevHash: fields.prevHash,
    }),
  );
}

/**
 * Appends an entry to the access log in its own transaction, or, given a transaction
 * client, inside that transaction (see {@link appendAccessInTx}).
 */
export async function appendAccess(
  db: RegistryDb,
  entry: AccessEntryInput,
): Promise<AccessLogRecord> {
  if (isFullClient(db)) {
    return db.$transaction((tx) => appendAccessInTx(tx, entry), APPEND_TX_OPTIONS);
  }
  return appendAccessInTx(db, entry);
}

/**
 * Appends an entry inside the caller's transaction, so that a decision and its log entry
 * commit or roll back together. The chain head stays locked until that transaction ends,
 * which holds up every other append: call it last, just before committing. On PGlite, use
 * only `tx` inside the transaction; a query on the outer client would wait for it forever.
 */
export async function appendAccessInTx(
  tx: Prisma.TransactionClient,
  entry: AccessEntryInput,
): Promise<AccessLogRecord> {
  const fields = normaliseEntry(entry);
  const head = await lockHead(tx);
  const sequence = head.sequence + 1n;
  const hashed: HashedAccessFields = {
    ...fields,
    sequence: sequence.toString(),
    prevHash: head.hash,
  };
  const hash = hashAccessEntry(hashed);

  const row = await tx.accessLogEntry.create({
    data: {
      sequence,
      at: new Date(fields.at),
      actor: fields.actor,
      action: fields.action,
      resource: fields.resource,
      outcome: fields.outcome,
      reason: fields.reason,
      detail: fields.detail === null ? Prisma.DbNull : (fields.detail as Prisma.InputJsonValue),
      peerAddress: fields.peerAddress,
      prevHash: head.hash,
      hash,
    },
  });
  await tx.accessChainHead.update({ where: { id: 1 }, data: { sequence, hash } });
  return toRecord(row);
}

/**
 * One page of the access log in sequence order, filtered.
 *
 * @throws AUDIT_CURSOR_INVALID for a cursor this function did not issue; REQUEST_INVALID
 *   for a limit below 1 or an invalid date
 */
export async function queryAccessLog(
  db: RegistryDb,
  query: AccessLogQuery = {},
): Promise<AccessLogPage> {
  const limit = pageLimit(query.limit);
  if (query.outcome !== undefined) validOutcome(query.outcome);
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const at: Prisma.DateTimeFilter = {};
  if (query.from !== undefined) at.gte = validDate(query.from, 'from');
  if (query.to !== undefined) at.lt = validDate(query.to, 'to');

  const rows = await db.accessLogEntry.findMany({
    where: {
      ...(query.actor !== undefined ? { actor: query.actor } : {}),
      ...(query.action !== undefined ? { action: query.action } : {}),
      ...(query.outcome !== undefined ? { outcome: query.outcome } : {}),
      ...(query.resource !== undefined ? { resource: query.resource } : {}),
      ...(Object.keys(at).length > 0 ? { at } : {}),
      ...(after !== undefined ? { sequence: { gt: after } } : {}),
    },
    orderBy: { sequence: 'asc' },
    // One row more than asked tells whether another page exists without a count.
    take: limit + 1,
  });

  const page = rows.slice(0, limit);
  const more = rows.length > limit;
  return {
    entries: page.map(toRecord),
    nextCursor: more ? encodeCursor(page[page.length - 1].sequence) : null,
  };
}

/**
 * Recomputes every hash of the access log in sequence order and checks each entry links to
 * the one before and the head to the last. Finds an altered entry (its hash), a deleted one
 * (a gap in the numbers), entries moved or inserted (broken links), and a head that is not
 * the last entry. Reads in pages, so memory does not grow with the log; entries appended
 * while it runs are checked too.
 *
 * A party able to rewrite the database may also recompute every hash after its change; that
 * is caught only by comparing the head with a copy kept elsewhere (a signed checkpoint).
 */
export async function verifyAccessChain(db: RegistryDb): Promise<ChainVerification> {
  let expected = 1n;
  let prevHash = GENESIS_HASH;
  let entries = 0;

  for (;;) {
    // The first page has no lower bound, so that a row numbered 0 or below is seen too.
    const rows = await db.accessLogEntry.findMany({
      ...(entries > 0 ? { where: { sequence: { gte: expected } } } : {}),
      orderBy: { sequence: 'asc' },
      take: VERIFY_PAGE,
    });

    for (const row of rows) {
      entries += 1;
      const problem = checkEntry(row, expected, prevHash);
      if (problem) return { ok: false, entries, ...(await readHead(db)), firstBad: problem };
      expected = row.sequence + 1n;
      prevHash = row.hash;
    }
    if (rows.length === VERIFY_PAGE) continue;

    // Head and newest entry read in one statement, hence from one snapshot: an append
    // commits both together, so they disagree only if someone wrote around the log.
    const snapshot = await readSnapshot(db);
    if (snapshot.maxSequence !== null && snapshot.maxSequence >= expected) continue;

    const head = { headSequence: snapshot.headSequence.toString(), headHash: snapshot.headHash };
    const last = expected - 1n;
    const firstBad = checkHead(snapshot, last, prevHash, entries);
    return firstBad ? { ok: false, entries, ...head, firstBad } : { ok: true, entries, ...head };
  }
}

function checkEntry(
  row: AccessLogEntry,
  expected: bigint,
  prevHash: string,
): { sequence: string; problem: string } | null {
  if (row.sequence < expected) {
    return {
      sequence: row.sequence.toString(),
      problem: `entry ${row.sequence} lies outside the numbering, which starts at 1`,
    };
  }
  if (row.sequence !== expected) {
    return {
      sequence: expected.toString(),
      problem: `entry ${expected} is missing: the log goes on at ${row.sequence}`,
    };
  }
  const sequence = row.sequence.toString();
  if (row.prevHash !== prevHash) {
    const before = expected === 1n ? 'the genesis hash' : `the hash of entry ${expected - 1n}`;
    return {
      sequence,
      problem: `prevHash is not ${before}: an entry was altered, moved or inserted here`,
    };
  }
  const record = toRecord(row);
  if (hashAccessEntry(record) !== row.hash) {
    return { sequence, problem: 'hash does not match the content: the entry was altered' };
  }
  return null;
}

function checkHead(
  snapshot: Snapshot,
  last: bigint,
  lastHash: string,
  entries: number,
): { sequence: string; problem: string } | null {
  if (!snapshot.headPresent) {
    if (entries === 0) return null;
    return { sequence: last.toString(), problem: 'the chain head is missing' };
  }
  if (snapshot.headSequence > last) {
    return {
      sequence: (last + 1n).toString(),
      problem: `entry ${last + 1n} is missing: the chain head records ${snapshot.headSequence} entries`,
    };
  }
  if (snapshot.headSequence < last) {
    return {
      sequence: (snapshot.headSequence + 1n).toString(),
      problem: `entry ${snapshot.headSequence + 1n} lies beyond the chain head: it was not appended through the log`,
    };
  }
  if (snapshot.headHash !== lastHash) {
    return {
      sequence: last.toString(),
      problem: 'the chain head hash is not the hash of the last entry',
    };
  }
  return null;
}

interface Snapshot {
  headPresent: boolean;
  headSequence: bigint;
  headHash: string;
  maxSequence: bigint | null;
}

async function readSnapshot(db: RegistryDb): Promise<Snapshot> {
  const rows = await db.$queryRaw<
    { head_sequence: bigint | null; head_hash: string | null; max_sequence: bigint | null }[]
  >`
    SELECT h."sequence" AS head_sequence, h."hash" AS head_hash,
           (SELECT max(e."sequence") FROM "access_log_entry" e) AS max_sequence
      FROM (SELECT 1) AS one LEFT JOIN "access_chain_head" h ON h."id" = 1`;
  const row = rows[0];
  return {
    headPresent: row.head_sequence !== null,
    headSequence: toBigInt(row.head_sequence ?? 0n),
    headHash: row.head_hash ?? GENESIS_HASH,
    maxSequence: row.max_sequence === null ? null : toBigInt(row.max_sequence),
  };
}

async function readHead(db: RegistryDb): Promise<{ headSequence: string; headHash: string }> {
  const head = await db.accessChainHead.findUnique({ where: { id: 1 } });
  return {
    headSequence: (head?.sequence ?? 0n).toString(),
    headHash: head?.hash ?? GENESIS_HASH,
  };
}

// Raw queries return int8 as bigint on both adapters; an aggregate may come back as a
// numeric string, so both are accepted.
function toBigInt(value: bigint | string | number): bigint {
  return typeof value === 'bigint' ? value : BigInt(value);
}

// The head row is created on first use rather than by the migration, so that the migration
// holds exactly the DDL Prisma would generate for the schema.
async function lockHead(tx: Prisma.TransactionClient): Promise<{ sequence: bigint; hash: string }> {
  const select = () =>
    tx.$queryRaw<{ sequence: bigint; hash: string }[]>`
      SELECT "sequence", "hash" FROM "access_chain_head" WHERE "id" = 1 FOR UPDATE`;

  let rows = await select();
  if (rows.length === 0) {
    await tx.$executeRaw`
      INSERT INTO "access_chain_head" ("id", "sequence", "hash") VALUES (1, 0, ${GENESIS_HASH})
      ON CONFLICT ("id") DO NOTHING`;
    rows = await select();
  }
  return { sequence: toBigInt(rows[0].sequence), hash: rows[0].hash };
}

type EntryFields = Omit<HashedAccessFields, 'sequence' | 'prevHash' | 'detail'> & {
  detail: Prisma.JsonValue | null;
};

function normaliseEntry(entry: AccessEntryInput): EntryFields {
  for (const key of ['actor', 'action', 'resource'] as const) {
    if (typeof entry[key] !== 'string' || entry[key].length === 0) {
      throw fail('REQUEST_INVALID', { detail: `access log entry needs a non-empty ${key}` });
    }
  }
  validOutcome(entry.outcome);
  const at = validDate(entry.at ?? new Date(), 'at');

  // Hash what the database will give back: JSONB keeps only what survives JSON, so Dates
  // become strings and undefined members vanish before hashing, not after re-reading.
  const json = entry.detail === undefined ? undefined : JSON.stringify(entry.detail);
  const detail =
    json === undefined ? null : (JSON.parse(clipText(json, MAX_DETAIL, true)) as Prisma.JsonValue);

  return {
    at: at.toISOString(),
    actor: clipText(entry.actor, MAX_NAME),
    action: clipText(entry.action, MAX_NAME),
    resource: clipText(entry.resource, MAX_NAME),
    outcome: entry.outcome,
    reason: entry.reason == null ? null : clipText(entry.reason, MAX_REASON),
    detail,
    peerAddress: entry.peerAddress == null ? null : clipText(entry.peerAddress, MAX_NAME),
  };
}

// Entry fields often carry what a caller sent (a claimed certificate name, a version id).
// They are cut to a bounded length, so that no caller can write megabytes into the log, and
// stripped of control characters: PostgreSQL refuses NUL in text, and an entry that cannot
// be written would be an access that leaves no trace.
const MAX_NAME = 256;
const MAX_REASON = 1_024;
const MAX_DETAIL = 4_096;

function clipText(value: string, max: number, json = false): string {
  const clean = json
    ? value.replace(/\\u0000/g, '\\ufffd')
    : value.replace(/[\u0000-\u001f\u007f]/g, '\ufffd');
  if (clean.length <= max) return clean;
  // An over-long detail is replaced by a note of its size: cut JSON would not parse.
  if (json) return JSON.stringify({ truncated: true, bytes: clean.length });
  return `${clean.slice(0, max)}…(${clean.length - max} more)`;
}

/** An entry row in its JSON-safe shape, as exports and queries show it. */
export function toRecord(row: AccessLogEntry): AccessLogRecord {
  return {
    sequence: row.sequence.toString(),
    at: row.at.toISOString(),
    actor: row.actor,
    action: row.action,
    resource: row.resource,
    outcome: row.outcome as AccessOutcome,
    reason: row.reason,
    detail: row.detail,
    peerAddress: row.peerAddress,
    prevHash: row.prevHash,
    hash: row.hash,
  };
}

function validOutcome(outcome: string): void {
  if (!OUTCOMES.has(outcome)) {
    throw fail('REQUEST_INVALID', {
      detail: `access outcome "${outcome}" is not allowed, denied or error`,
    });
  }
}

function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw fail('REQUEST_INVALID', { detail: `limit ${limit} is not a positive integer` });
  }
  return Math.min(limit, MAX_LIMIT);
}

function validDate(value: Date, name: string): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw fail('REQUEST_INVALID', { detail: `${name} is not a valid date` });
  }
  return value;
}

function encodeCursor(sequence: bigint): string {
  return Buffer.from(sequence.toString(), 'utf8').toString('base64url');
}

// Only strings this module issued are accepted: base64url of a decimal sequence, nothing
// else, so that a tampered cursor is refused rather than silently meaning something else.
function decodeCursor(cursor: string): bigint {
  const decoded = /^[A-Za-z0-9_-]{1,32}$/.test(cursor)
    ? Buffer.from(cursor, 'base64url').toString('utf8')
    : '';
  if (!/^[1-9][0-9]{0,18}$/.test(decoded) || encodeCursor(BigInt(decoded)) !== cursor) {
    throw fail('AUDIT_CURSOR_INVALID', { cursor: cursor.slice(0, 64) });
  }
  return BigInt(decoded);
}

// A transaction client has $transaction too (nested, by savepoints, which the PGlite adapter
// lacks), but never $connect: Prisma withholds it inside transactions.
function isFullClient(db: RegistryDb): db is PrismaClient {
  return typeof (db as Partial<PrismaClient>).$connect === 'function';
}
