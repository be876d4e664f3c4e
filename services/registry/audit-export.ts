import type { CryptoKey, KeyObject } from 'jose';
import { GENESIS_HASH, hashAccessEntry, toRecord, type AccessLogRecord } from './access-log.js';
import { listCheckpoints, verifyChainHeadJws, type CheckpointRecord } from './chain-signing.js';
import type { RegistryDb } from './database.js';

/** `format` of the header line of an export. */
export const AUDIT_EXPORT_FORMAT = 'distillery.audit-export/1';

/** One line of an NDJSON export. */
export type ExportLine =
  | {
      type: 'header';
      format: string;
      exportedAt: string;
      headSequence: string;
      keyId: string | null;
    }
  | ({ type: 'checkpoint' } & CheckpointRecord)
  | ({ type: 'entry' } & AccessLogRecord);

const PAGE = 2_000;

/**
 * The whole access log as NDJSON lines, up to the head read at the start: a header, every
 * signed head (checkpoint) up to there, then every entry in sequence order. Checkpoints come
 * first so that an offline verifier checks them while it streams the entries.
 */
export async function* exportAccessLog(
  db: RegistryDb,
  keyId: string | null,
): AsyncGenerator<string> {
  const head = await db.accessChainHead.findUnique({ where: { id: 1 } });
  const upTo = head?.sequence ?? 0n;
  const header: ExportLine = {
    type: 'header',
    format: AUDIT_EXPORT_FORMAT,
    exportedAt: new Date().toISOString(),
    headSequence: upTo.toString(),
    keyId,
  };
  yield `${JSON.stringify(header)}\n`;
  for (const cp of await listCheckpoints(db, upTo)) {
    yield `${JSON.stringify({ type: 'checkpoint', ...cp })}\n`;
  }
  let after = 0n;
  for (;;) {
    const rows = await db.accessLogEntry.findMany({
      where: { sequence: { gt: after, lte: upTo } },
      orderBy: { sequence: 'asc' },
      take: PAGE,
    });
    for (const row of rows) yield `${JSON.stringify({ type: 'entry', ...toRecord(row) })}\n`;
    if (rows.length < PAGE) return;
    after = rows[rows.length - 1]!.sequence;
  }
}

/** What {@link ExportVerifier} found. */
export interface ExportVerification {
  ok: boolean;
  entries: number;
  lastSequence: string;
  /** Signed heads whose signature verified and that match the entries. */
  checkpointsVerified: number;
  /** The highest sequence a verified signature vouches for ("0" when none). */
  provenThrough: string;
  /** Entries after the last signed head: consistent, but nothing proves they were not altered. */
  unprovenEntries: number;
  firstBad?: { sequence: string | null; line: number; problem: string };
  notes: string[];
}

/**
 * Verifies an NDJSON export offline, line by line, with the hub's public audit key: every
 * entry's hash and link, no gaps, and every signed head's signature and hash. Names the first
 * bad entry. Detects truncation (a signed head beyond the last entry) and says how much of the
 * tail no signature covers.
 */
export class ExportVerifier {
  private line = 0;
  private expected = 1n;
  private prevHash = GENESIS_HASH;
  private entries = 0;
  private readonly checkpoints = new Map<string, { hash: string; line: number }>();
  private verifiedCheckpoints = 0;
  private provenThrough = 0n;
  private highestSigned = 0n;
  private firstBad: ExportVerification['firstBad'];
  private readonly notes: string[] = [];
  private seenEntries = false;

  constructor(private readonly publicKey: KeyObject | CryptoKey) {}

  /** Feeds one line of the export (empty lines are skipped). */
  async add(text: string): Promise<void> {
    this.line += 1;
    if (this.firstBad || text.trim() === '') return;
    let parsed: ExportLine;
    try {
      parsed = JSON.parse(text) as ExportLine;
    } catch {
      return this.bad(null, 'the line is not JSON');
    }
    if (parsed.type === 'header') return;
    if (parsed.type === 'checkpoint') {
      if (this.seenEntries) return this.bad(parsed.sequence, 'a signed head follows the entries');
      const verdict = await verifyChainHeadJws(parsed.jws, this.publicKey);
      if (!verdict.ok)
        return this.bad(parsed.sequence, `signed head ${parsed.sequence}: ${verdict.problem}`);
      // The signed payload is what counts, not the copy of its fields beside it.
      const { sequence, hash } = verdict.claims;
      this.checkpoints.set(sequence, { hash, line: this.line });
      const seq = BigInt(sequence);
      if (seq > this.highestSigned) this.highestSigned = seq;
      if (seq === 0n) this.countCheckpoint(0n);
      return;
    }
    if (parsed.type !== 'entry')
      return this.bad(null, `unknown line type "${String((parsed as { type?: unknown }).type)}"`);
    this.seenEntries = true;
    return this.addEntry(parsed);
  }

  private addEntry(entry: AccessLogRecord): void {
    this.entries += 1;
    let sequence: bigint;
    try {
      sequence = BigInt(entry.sequence);
    } catch {
      return this.bad(String(entry.sequence), 'sequence is not an integer');
    }
    if (sequence < this.expected) {
      return this.bad(
        entry.sequence,
        `entry ${sequence} comes after entry ${this.expected - 1n}: entries were reordered or duplicated`,
      );
    }
    if (sequence > this.expected) {
      return this.bad(
        this.expected.toString(),
        `entry ${this.expected} is missing: the export goes on at ${sequence}`,
      );
    }
    if (entry.prevHash !== this.prevHash) {
      const before = sequence === 1n ? 'the genesis hash' : `the hash of entry ${sequence - 1n}`;
      return this.bad(
        entry.sequence,
        `prevHash is not ${before}: an entry was altered, moved or inserted here`,
      );
    }
    if (hashAccessEntry(entry) !== entry.hash) {
      return this.bad(entry.sequence, 'hash does not match the content: the entry was altered');
    }
    const signed = this.checkpoints.get(entry.sequence);
    if (signed && signed.hash !== entry.hash) {
      return this.bad(
        entry.sequence,
        `entry ${sequence} is not the entry the hub signed at this sequence: the log was rewritten`,
      );
    }
    if (signed) this.countCheckpoint(sequence);
    this.expected = sequence + 1n;
    this.prevHash = entry.hash;
  }

  private countCheckpoint(sequence: bigint): void {
    this.verifiedCheckpoints += 1;
    if (sequence > this.provenThrough) this.provenThrough = sequence;
  }

  private bad(sequence: string | null, problem: string): void {
    this.firstBad ??= { sequence, line: this.line, problem };
  }

  /** The verdict once every line is fed. */
  finish(): ExportVerification {
    const last = this.expected - 1n;
    if (!this.firstBad && this.highestSigned > last) {
      this.bad(
        (last + 1n).toString(),
        `the export is truncated: the hub signed a head at entry ${this.highestSigned} but the export ends at ${last}`,
      );
    }
    const unproven = this.firstBad ? 0 : Number(last - this.provenThrough);
    if (!this.firstBad) {
      if (this.checkpoints.size === 0) {
        this.notes.push(
          "no signed head in the export: the chain is consistent but nothing proves it is the hub's",
        );
      } else if (unproven > 0) {
        this.notes.push(
          `entries ${this.provenThrough + 1n}-${last} come after the last signed head: consistent, but no signature proves them; ask the hub for a fresh signed head`,
        );
      }
      this.notes.push(
        'entries removed from the end together with their signed heads cannot be seen in an export alone: compare with a signed head kept elsewhere',
      );
    }
    return {
      ok: !this.firstBad,
      entries: this.entries,
      lastSequence: last.toString(),
      checkpointsVerified: this.verifiedCheckpoints,
      provenThrough: this.provenThrough.toString(),
      unprovenEntries: unproven,
      ...(this.firstBad ? { firstBad: this.firstBad } : {}),
      notes: this.notes,
    };
  }
}
