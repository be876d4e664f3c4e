import { decodeProtectedHeader, type CryptoKey, type KeyObject } from 'jose';
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
 * The whole access log as NDJSON lines, up to `upTo` (default: the head read at the start): a
 * header naming that head, every signed head (checkpoint) up to there, then every entry in
 * sequence order. Checkpoints come first so that an offline verifier checks them while it
 * streams the entries. Pass the sequence of a head signed just before, so that the export ends
 * at a signed head even when entries are appended meanwhile.
 */
export async function* exportAccessLog(
  db: RegistryDb,
  keyId: string | null,
  upTo?: bigint,
): AsyncGenerator<string> {
  if (upTo === undefined) {
    const head = await db.accessChainHead.findUnique({ where: { id: 1 } });
    upTo = head?.sequence ?? 0n;
  }
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
  /**
   * True only when every entry checks out and a signed head that verifies covers the last
   * one: an export no signature vouches for is not ok, however consistent its chain.
   */
  ok: boolean;
  entries: number;
  lastSequence: string;
  /** The head the header line names ("0" when there is no header). */
  headSequence: string;
  /** Signed heads whose signature verified and that match the entries. */
  checkpointsVerified: number;
  /** The highest sequence a verified signature vouches for ("0" when none). */
  provenThrough: string;
  /** Entries after the last signed head: consistent, but nothing proves they were not altered. */
  unprovenEntries: number;
  firstBad?: { sequence: string | null; line: number; problem: string };
  notes: string[];
}

/** Options of {@link ExportVerifier}. */
export interface ExportVerifierOptions {
  /** Key id of the key given, to tell a wrong key from a forged signature. */
  keyId?: string | null;
}

// The fields an exporter writes. An entry with any other field is refused: the hash does not
// cover it, so a reader could be shown something no hash vouches for.
const HEADER_FIELDS = new Set(['type', 'format', 'exportedAt', 'headSequence', 'keyId']);
const CHECKPOINT_FIELDS = new Set(['type', 'sequence', 'hash', 'signedAt', 'keyId', 'jws']);
const ENTRY_FIELDS = new Set([
  'type',
  'sequence',
  'at',
  'actor',
  'action',
  'resource',
  'outcome',
  'reason',
  'detail',
  'peerAddress',
  'prevHash',
  'hash',
]);
const ENTRY_TEXT_FIELDS = ['at', 'actor', 'action', 'resource', 'outcome', 'prevHash', 'hash'];
const SEQUENCE = /^(0|[1-9][0-9]{0,18})$/;

function unknownFields(line: object, allowed: Set<string>): string[] {
  return Object.keys(line).filter((k) => !allowed.has(k));
}

/**
 * Verifies an NDJSON export offline, line by line, with the hub's public audit key. The
 * export must start with its header; every entry's hash and link must hold, without gaps and
 * without fields the hash does not cover; every signed head's signature must verify and its
 * visible fields match what was signed; the last entry must be the head the header names, and
 * a signed head must cover it. Names the first bad entry, and says how many entries no
 * signature covers when that is the problem.
 */
export class ExportVerifier {
  private line = 0;
  private expected = 1n;
  private prevHash = GENESIS_HASH;
  private entries = 0;
  private header: { headSequence: bigint; keyId: string | null } | null = null;
  private readonly checkpoints = new Map<string, { hash: string; line: number }>();
  private verifiedCheckpoints = 0;
  private provenThrough = 0n;
  private highestSigned = 0n;
  private firstBad: ExportVerification['firstBad'];
  private unprovenFailure = false;
  private readonly notes: string[] = [];
  private seenEntries = false;

  constructor(
    private readonly publicKey: KeyObject | CryptoKey,
    private readonly options: ExportVerifierOptions = {},
  ) {}

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
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return this.bad(null, 'the line is not a JSON object');
    }
    if (!this.header) {
      if (parsed.type !== 'header') {
        return this.bad(
          null,
          'the export does not start with its header line (the head it ends at and the key that signed it)',
        );
      }
      return this.addHeader(parsed);
    }
    if (parsed.type === 'header') return this.bad(null, 'a second header line');
    if (parsed.type === 'checkpoint') return this.addCheckpoint(parsed);
    if (parsed.type !== 'entry')
      return this.bad(null, `unknown line type "${String((parsed as { type?: unknown }).type)}"`);
    this.seenEntries = true;
    return this.addEntry(parsed);
  }

  private addHeader(header: Extract<ExportLine, { type: 'header' }>): void {
    const extra = unknownFields(header, HEADER_FIELDS);
    if (extra.length > 0)
      return this.bad(null, `the header has unknown fields: ${extra.join(', ')}`);
    if (header.format !== AUDIT_EXPORT_FORMAT) {
      return this.bad(
        null,
        `the header's format is "${String(header.format)}", not "${AUDIT_EXPORT_FORMAT}"`,
      );
    }
    if (typeof header.headSequence !== 'string' || !SEQUENCE.test(header.headSequence)) {
      return this.bad(null, "the header's headSequence is not a decimal sequence number");
    }
    if (header.keyId !== null && typeof header.keyId !== 'string') {
      return this.bad(null, "the header's keyId is neither a key id nor null");
    }
    this.header = { headSequence: BigInt(header.headSequence), keyId: header.keyId };
    const given = this.options.keyId;
    if (header.keyId && given && header.keyId !== given) {
      this.notes.push(
        `the export says it was signed by key ${header.keyId}, but the key given is ${given}`,
      );
    }
  }

  private async addCheckpoint(cp: Extract<ExportLine, { type: 'checkpoint' }>): Promise<void> {
    const label = typeof cp.sequence === 'string' ? cp.sequence : null;
    if (this.seenEntries) return this.bad(label, 'a signed head follows the entries');
    const extra = unknownFields(cp, CHECKPOINT_FIELDS);
    if (extra.length > 0) {
      return this.bad(label, `signed head line has unknown fields: ${extra.join(', ')}`);
    }
    if (typeof cp.jws !== 'string') return this.bad(label, 'signed head line has no jws');
    const verdict = await verifyChainHeadJws(cp.jws, this.publicKey);
    if (!verdict.ok) {
      return this.bad(
        label,
        `signed head ${String(cp.sequence)}: ${this.explain(cp.jws, verdict)}`,
      );
    }
    const { sequence, hash } = verdict.claims;
    // The signed payload is what counts; a copy beside it that says otherwise is a forgery.
    if (cp.sequence !== sequence || cp.hash !== hash) {
      return this.bad(
        label,
        `signed head line says sequence ${String(cp.sequence)}, hash ${String(cp.hash)}, but its signature covers sequence ${sequence}, hash ${hash}`,
      );
    }
    if (!SEQUENCE.test(sequence)) return this.bad(label, 'signed head sequence is not a number');
    const seq = BigInt(sequence);
    if (seq === 0n && hash !== GENESIS_HASH) {
      return this.bad(label, 'signed head 0 does not carry the genesis hash');
    }
    this.checkpoints.set(sequence, { hash, line: this.line });
    if (seq > this.highestSigned) this.highestSigned = seq;
    if (seq === 0n) this.countCheckpoint(0n);
  }

  /** Why a signature failed, telling a wrong key from a forged signature where it can. */
  private explain(jws: string, verdict: { problem: string }): string {
    if (!/signature does not verify/.test(verdict.problem)) return verdict.problem;
    let signedBy: string | undefined;
    try {
      signedBy = decodeProtectedHeader(jws).kid;
    } catch {
      signedBy = undefined;
    }
    const expected = signedBy ?? this.header?.keyId ?? undefined;
    const given = this.options.keyId ?? undefined;
    if (expected && given && expected !== given) {
      return `${verdict.problem}: it names key ${expected} but the key given is ${given}; fetch this hub's key (distillery audit key), or the export was not signed by this hub`;
    }
    if (expected && !given) {
      return `${verdict.problem}: it names key ${expected}; check that the key given is that key`;
    }
    return verdict.problem;
  }

  private addEntry(entry: AccessLogRecord): void {
    this.entries += 1;
    const label = typeof entry.sequence === 'string' ? entry.sequence : String(entry.sequence);
    if (typeof entry.sequence !== 'string' || !SEQUENCE.test(entry.sequence)) {
      return this.bad(label, 'sequence is not a decimal integer');
    }
    const extra = unknownFields(entry, ENTRY_FIELDS);
    if (extra.length > 0) {
      return this.bad(
        entry.sequence,
        `the entry has fields its hash does not cover: ${extra.join(', ')}`,
      );
    }
    for (const field of ENTRY_TEXT_FIELDS) {
      if (typeof (entry as unknown as Record<string, unknown>)[field] !== 'string') {
        return this.bad(entry.sequence, `the entry's ${field} is missing or not text`);
      }
    }
    const sequence = BigInt(entry.sequence);
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
    if (!this.firstBad && !this.header) {
      this.bad(null, 'the export is empty: it has no header line and no entries');
    }
    if (!this.firstBad && this.highestSigned > last) {
      this.bad(
        (last + 1n).toString(),
        `the export is truncated: the hub signed a head at entry ${this.highestSigned} but the export ends at ${last}`,
      );
    }
    const head = this.header?.headSequence ?? 0n;
    if (!this.firstBad && head > last) {
      this.bad(
        (last + 1n).toString(),
        `the export is truncated: its header names head ${head} but the entries end at ${last}`,
      );
    }
    if (!this.firstBad && head < last) {
      this.bad(
        (head + 1n).toString(),
        `entries ${head + 1n}-${last} come after the head the header names (${head}): they were added to the export`,
      );
    }
    if (!this.firstBad && this.provenThrough < last) {
      this.unprovenFailure = true;
      this.bad(
        (this.provenThrough + 1n).toString(),
        this.verifiedCheckpoints === 0
          ? `no signed head in the export verifies: nothing proves entries 1-${last} are the hub's (a log rewritten with every hash recomputed would look the same); export again, the hub signs its head for every export`
          : `entries ${this.provenThrough + 1n}-${last} come after the last signed head: nothing proves they were not rewritten; export again, the hub signs its head for every export`,
      );
    }
    if (!this.firstBad && this.verifiedCheckpoints === 0) {
      this.unprovenFailure = true;
      this.bad(null, 'no signed head in the export verifies: nothing proves it is the hub’s log');
    }
    const unproven = !this.firstBad || this.unprovenFailure ? Number(last - this.provenThrough) : 0;
    if (!this.firstBad) {
      this.notes.push(
        'entries removed from the end together with their signed heads and the header edited to match cannot be seen in an export alone: compare with a signed head kept elsewhere',
      );
    }
    return {
      ok: !this.firstBad,
      entries: this.entries,
      lastSequence: last.toString(),
      headSequence: head.toString(),
      checkpointsVerified: this.verifiedCheckpoints,
      provenThrough: this.provenThrough.toString(),
      unprovenEntries: unproven,
      ...(this.firstBad ? { firstBad: this.firstBad } : {}),
      notes: this.notes,
    };
  }
}
