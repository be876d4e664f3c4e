import { randomUUID } from 'node:crypto';
import type { Grant, Prisma, PrismaClient } from '../generated/prisma/client.js';
import { fail } from '../shared/errors.js';
import { parseReleasePolicy } from '../shared/privacy/policy.js';
import { APPEND_TX_OPTIONS, appendAccessInTx } from './access-log.js';
import type { DecisionContext } from './certificates.js';
import type { RegistryDb } from './database.js';

export type { Grant } from '../generated/prisma/client.js';

/**
 * Kinds of teacher state a grant can name. `artefact` covers raw files a version ships (a
 * hub-distilled student's model), which carry no per-row teacher state.
 */
export const GRANT_KINDS = ['logits', 'probabilities', 'hidden', 'artefact'] as const;
export type GrantKind = (typeof GRANT_KINDS)[number];

/** In `layers`, every teacher layer. */
export const ALL_LAYERS = '*';

/** What an operator asks for in a new grant. */
export interface GrantInput {
  participantId: string;
  stream: string;
  kinds: string[];
  /** Teacher layers whose hidden activations may be sent; `['*']` for all. */
  layers?: string[];
  /** First sequence granted; default 1. */
  fromSequence?: number;
  /** Last sequence granted; none for open-ended. */
  toSequence?: number | null;
  expiresAt?: Date | null;
  /** Release policy (services/shared/privacy/policy.ts), checked before it is stored. */
  policy?: Prisma.InputJsonValue;
}

const LAYER = /^(\*|[a-z0-9_.-]{1,64})$/;
const STREAM = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** The largest fromSequence/toSequence a grant stores (its columns are 32-bit integers). */
export const MAX_GRANT_SEQUENCE = 2_147_483_647;

/** Checks a grant request; throws GRANT_INVALID naming the first problem. */
export function validateGrantInput(input: GrantInput): void {
  const bad = (detail: string) => fail('GRANT_INVALID', { detail });
  if (!STREAM.test(input.stream ?? '')) throw bad(`stream "${input.stream}" is not a stream name`);
  if (!Array.isArray(input.kinds) || input.kinds.length === 0) throw bad('kinds is empty');
  for (const kind of input.kinds) {
    if (!(GRANT_KINDS as readonly string[]).includes(kind)) {
      throw bad(`kind "${kind}" is not one of ${GRANT_KINDS.join(', ')}`);
    }
  }
  const layers = input.layers ?? [];
  for (const layer of layers) {
    if (!LAYER.test(layer)) throw bad(`layer "${layer}" is not a layer name or "*"`);
  }
  if (input.kinds.includes('hidden') && layers.length === 0) {
    throw bad('kind "hidden" needs the layers it covers (or "*")');
  }
  if (!input.kinds.includes('hidden') && layers.length > 0) {
    throw bad('layers are given but kind "hidden" is not');
  }
  const from = input.fromSequence ?? 1;
  if (!Number.isSafeInteger(from) || from < 1 || from > MAX_GRANT_SEQUENCE) {
    throw bad(`fromSequence must be an integer from 1 to ${MAX_GRANT_SEQUENCE}`);
  }
  const to = input.toSequence;
  if (to != null && (!Number.isSafeInteger(to) || to < from || to > MAX_GRANT_SEQUENCE)) {
    throw bad(`toSequence must be an integer from fromSequence to ${MAX_GRANT_SEQUENCE}`);
  }
  if (input.expiresAt != null && Number.isNaN(input.expiresAt.getTime())) {
    throw bad('expiresAt is not a valid time');
  }
  if (input.policy !== undefined && (typeof input.policy !== 'object' || input.policy === null)) {
    throw bad('policy must be a JSON object');
  }
  // Names the first bad field of the policy (PRIVACY_POLICY_INVALID) before anything is stored.
  if (input.policy !== undefined) parseReleasePolicy(input.policy);
}

/** Creates a grant and logs it in the same transaction. */
export async function createGrant(
  prisma: PrismaClient,
  input: GrantInput,
  context: DecisionContext,
): Promise<Grant> {
  validateGrantInput(input);
  return prisma.$transaction(async (tx) => {
    const participant = await tx.participant.findUnique({ where: { id: input.participantId } });
    if (!participant) throw fail('PARTICIPANT_NOT_FOUND', { id: input.participantId });
    return createGrantInTx(tx, input, context);
  }, APPEND_TX_OPTIONS);
}

async function createGrantInTx(
  tx: Prisma.TransactionClient,
  input: GrantInput,
  context: DecisionContext,
): Promise<Grant> {
  const grant = await tx.grant.create({
    data: {
      id: randomUUID(),
      participantId: input.participantId,
      streamName: input.stream,
      kinds: [...new Set(input.kinds)],
      layers: [...new Set(input.layers ?? [])],
      fromSequence: input.fromSequence ?? 1,
      toSequence: input.toSequence ?? null,
      expiresAt: input.expiresAt ?? null,
      createdBy: context.actor,
      policy: input.policy ?? {},
    },
  });
  await appendAccessInTx(tx, {
    actor: context.actor,
    action: 'grant.create',
    resource: `grant:${grant.id}`,
    outcome: 'allowed',
    peerAddress: context.peerAddress ?? null,
    detail: grantSummary(grant),
  });
  return grant;
}

/** Revokes a grant (idempotently) and logs it in the same transaction. */
export async function revokeGrant(
  prisma: PrismaClient,
  id: string,
  context: DecisionContext,
): Promise<Grant> {
  return prisma.$transaction(async (tx) => {
    const current = await tx.grant.findUnique({ where: { id } });
    if (!current) throw fail('GRANT_NOT_FOUND', { id: id.slice(0, 80) });
    if (current.revokedAt) return current;
    const grant = await tx.grant.update({ where: { id }, data: { revokedAt: new Date() } });
    await appendAccessInTx(tx, {
      actor: context.actor,
      action: 'grant.revoke',
      resource: `grant:${id}`,
      outcome: 'allowed',
      peerAddress: context.peerAddress ?? null,
      detail: { participant: grant.participantId, stream: grant.streamName },
    });
    return grant;
  }, APPEND_TX_OPTIONS);
}

/**
 * Gives a participant the full grant on a stream (every kind, every layer, every version,
 * no expiry) unless it has ever held a grant there: what a hub does for the participants
 * named at start-up, so that a demonstration federation works without an operator. A grant
 * an operator revoked is never brought back this way.
 */
export async function ensureDefaultGrant(
  prisma: PrismaClient,
  participantId: string,
  stream: string,
  context: DecisionContext,
): Promise<Grant | null> {
  return prisma.$transaction(async (tx) => {
    const any = await tx.grant.findFirst({ where: { participantId, streamName: stream } });
    if (any) return null;
    return createGrantInTx(
      tx,
      { participantId, stream, kinds: [...GRANT_KINDS], layers: [ALL_LAYERS] },
      context,
    );
  }, APPEND_TX_OPTIONS);
}

/** Grants of a participant on a stream that are neither revoked nor expired at `now`. */
export async function findGrants(
  db: RegistryDb,
  participantId: string,
  streamName: string,
  now = new Date(),
): Promise<Grant[]> {
  return db.grant.findMany({
    where: {
      participantId,
      streamName,
      revokedAt: null,
      OR: [{ expiresAt: null }, { expiresAt: { gt: now } }],
    },
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
  });
}

/** Grants, newest first, filtered by participant and stream when given. */
export async function listGrants(
  db: RegistryDb,
  filter: { participantId?: string; stream?: string; includeRevoked?: boolean } = {},
): Promise<Grant[]> {
  return db.grant.findMany({
    where: {
      ...(filter.participantId ? { participantId: filter.participantId } : {}),
      ...(filter.stream ? { streamName: filter.stream } : {}),
      ...(filter.includeRevoked ? {} : { revokedAt: null }),
    },
    orderBy: [{ createdAt: 'desc' }, { id: 'asc' }],
  });
}

/** A grant in a JSON-safe shape. */
export function grantSummary(grant: Grant) {
  return {
    id: grant.id,
    participantId: grant.participantId,
    stream: grant.streamName,
    kinds: grant.kinds,
    layers: grant.layers,
    fromSequence: grant.fromSequence,
    toSequence: grant.toSequence,
    expiresAt: grant.expiresAt?.toISOString() ?? null,
    createdAt: grant.createdAt.toISOString(),
    createdBy: grant.createdBy,
    revokedAt: grant.revokedAt?.toISOString() ?? null,
    policy: grant.policy,
  };
}
