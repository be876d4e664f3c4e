import { CompactSign, compactVerify, type CryptoKey, type KeyObject } from 'jose';
import type { AccessChainCheckpoint } from '../generated/prisma/client.js';
import { canonicalJson } from '../shared/digest.js';
import type { Logger } from '../shared/logger.js';
import type { HubSigningKey } from '../shared/tokens/key-store.js';
import { TOKEN_ALGORITHM } from '../shared/tokens/signing-key.js';
import { GENESIS_HASH } from './access-log.js';
import type { RegistryDb } from './database.js';

/** `typ` of a signed chain head. */
export const CHAIN_HEAD_TYPE = 'distillery-chain-head+jws';

/** What a signed chain head says: the log held `sequence` entries, the last hashing `hash`. */
export interface ChainHeadClaims {
  iss: string;
  sequence: string;
  hash: string;
  signedAt: string;
}

/** A signed head in a JSON-safe shape (the `checkpoint` lines of an export). */
export interface CheckpointRecord {
  sequence: string;
  hash: string;
  signedAt: string;
  keyId: string;
  jws: string;
}

/** A checkpoint row in its JSON-safe shape. */
export function checkpointRecord(row: AccessChainCheckpoint): CheckpointRecord {
  return {
    sequence: row.sequence.toString(),
    hash: row.hash,
    signedAt: row.signedAt.toISOString(),
    keyId: row.keyId,
    jws: row.jws,
  };
}

/**
 * Signs the current chain head with the hub's audit key and stores the signature; returns
 * the stored one when this head is signed already. The JWS payload is the canonical JSON of
 * {@link ChainHeadClaims}, so an auditor checks it with any JOSE library.
 */
export async function signChainHead(
  db: RegistryDb,
  key: HubSigningKey,
  issuer: string,
): Promise<CheckpointRecord> {
  const head = await db.accessChainHead.findUnique({ where: { id: 1 } });
  const sequence = head?.sequence ?? 0n;
  const hash = head?.hash ?? GENESIS_HASH;
  const existing = await db.accessChainCheckpoint.findUnique({ where: { sequence } });
  if (existing) return checkpointRecord(existing);

  const signedAt = new Date();
  const claims: ChainHeadClaims = {
    iss: issuer,
    sequence: sequence.toString(),
    hash,
    signedAt: signedAt.toISOString(),
  };
  const jws = await new CompactSign(new TextEncoder().encode(canonicalJson(claims)))
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: key.kid, typ: CHAIN_HEAD_TYPE })
    .sign(key.privateKey);
  // Two hubs on one database may sign the same head at once; either signature is good.
  const row = await db.accessChainCheckpoint.upsert({
    where: { sequence },
    create: { sequence, hash, signedAt, keyId: key.kid, jws },
    update: {},
  });
  return checkpointRecord(row);
}

/** Signed heads, oldest first, up to `upTo` when given. */
export async function listCheckpoints(db: RegistryDb, upTo?: bigint): Promise<CheckpointRecord[]> {
  const rows = await db.accessChainCheckpoint.findMany({
    where: upTo === undefined ? {} : { sequence: { lte: upTo } },
    orderBy: { sequence: 'asc' },
  });
  return rows.map(checkpointRecord);
}

/**
 * Verifies a signed head with the hub's public audit key and returns what it says, or the
 * reason it is not acceptable.
 */
export async function verifyChainHeadJws(
  jws: string,
  publicKey: KeyObject | CryptoKey,
): Promise<{ ok: true; claims: ChainHeadClaims } | { ok: false; problem: string }> {
  try {
    const { payload, protectedHeader } = await compactVerify(jws, publicKey, {
      algorithms: [TOKEN_ALGORITHM],
    });
    if (protectedHeader.typ !== CHAIN_HEAD_TYPE) {
      return { ok: false, problem: `typ is not ${CHAIN_HEAD_TYPE}` };
    }
    const claims = JSON.parse(new TextDecoder().decode(payload)) as ChainHeadClaims;
    if (typeof claims.sequence !== 'string' || typeof claims.hash !== 'string') {
      return { ok: false, problem: 'payload lacks sequence or hash' };
    }
    return { ok: true, claims };
  } catch (err) {
    const code = (err as { code?: string }).code;
    return {
      ok: false,
      problem:
        code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
          ? 'signature does not verify with the audit key'
          : `not a valid ${TOKEN_ALGORITHM} JWS (${code ?? 'unreadable'})`,
    };
  }
}

/**
 * Signs the head every `intervalMs` when it moved since the last signature. Returns the stop
 * function; a failed signature is logged and tried again at the next tick.
 */
export function startChainSigning(
  db: RegistryDb,
  key: HubSigningKey,
  issuer: string,
  intervalMs: number,
  logger: Logger,
): () => Promise<void> {
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    running = signChainHead(db, key, issuer)
      .then((cp) => logger.debug({ sequence: cp.sequence }, 'chain head signed'))
      .catch((err: unknown) => logger.error({ err }, 'chain head could not be signed'));
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/** What {@link checkCheckpoints} found. */
export interface CheckpointCheck {
  /** Signed heads checked. */
  checked: number;
  /** The highest sequence a valid signed head vouches for ("0" when none). */
  provenThrough: string;
  /** The first signed head whose signature fails or whose entry differs, and how. */
  firstBad?: { sequence: string; problem: string };
}

/**
 * Checks every signed head against the live log: the signature with the audit key, and the
 * entry at its sequence having the hash it signed. Finds a log rewritten with every hash
 * recomputed, which the chain alone cannot show.
 */
export async function checkCheckpoints(
  db: RegistryDb,
  publicKey: KeyObject | CryptoKey,
): Promise<CheckpointCheck> {
  const checkpoints = await listCheckpoints(db);
  let proven = 0n;
  const PAGE = 500;
  for (let at = 0; at < checkpoints.length; at += PAGE) {
    const page = checkpoints.slice(at, at + PAGE);
    const rows = await db.accessLogEntry.findMany({
      where: { sequence: { in: page.map((c) => BigInt(c.sequence)).filter((s) => s > 0n) } },
      select: { sequence: true, hash: true },
    });
    const hashes = new Map(rows.map((r) => [r.sequence.toString(), r.hash]));
    for (const cp of page) {
      const verdict = await verifyChainHeadJws(cp.jws, publicKey);
      if (!verdict.ok) {
        return {
          checked: at,
          provenThrough: proven.toString(),
          firstBad: { sequence: cp.sequence, problem: verdict.problem },
        };
      }
      const { sequence, hash } = verdict.claims;
      const actual = sequence === '0' ? GENESIS_HASH : hashes.get(sequence);
      if (actual !== hash) {
        return {
          checked: at,
          provenThrough: proven.toString(),
          firstBad: {
            sequence,
            problem:
              actual === undefined
                ? `entry ${sequence}, signed by the hub, is gone from the log`
                : `entry ${sequence} is not the entry the hub signed: the log was rewritten`,
          },
        };
      }
      if (BigInt(sequence) > proven) proven = BigInt(sequence);
    }
  }
  return { checked: checkpoints.length, provenThrough: proven.toString() };
}
