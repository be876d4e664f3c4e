import type { Prisma, PrismaClient, StreamEvent } from '../generated/prisma/client.js';
import { fail } from '../shared/errors.js';
import type { RegistryDb } from './database.js';
import { appendAccessInTx } from './access-log.js';

export type { StreamEvent } from '../generated/prisma/client.js';

/** What happened to a stream. */
export type StreamEventKind = 'published' | 'deprecated' | 'rolled_back';

/** The PostgreSQL NOTIFY channel that tells hub replicas a stream has a new event. */
export const STREAM_EVENT_CHANNEL = 'distillery_stream_event';

/** An event together with the facts of the version it concerns, as subscribers see it. */
export interface StreamEventWithVersion extends StreamEvent {
  version: {
    id: string;
    sequence: number;
    parentId: string | null;
    rootHash: string;
    chunkCount: number;
    totalBytes: bigint;
    publishedAt: Date;
  };
}

/** What {@link appendStreamEvent} records. */
export interface StreamEventInput {
  stream: string;
  kind: StreamEventKind;
  versionId: string;
  currentVersionId: string | null;
  actor: string;
  reason?: string;
}

/**
 * Appends an event to a stream inside the caller's transaction, numbered after the stream's
 * last one, and NOTIFYs {@link STREAM_EVENT_CHANNEL}; PostgreSQL delivers the notification
 * only when the transaction commits, so a listener never reads an event that is not there.
 * The caller must hold the stream's row lock (`SELECT … FOR UPDATE`), which serialises
 * numbering across hub replicas.
 */
export async function appendStreamEvent(
  tx: Prisma.TransactionClient,
  input: StreamEventInput,
): Promise<StreamEvent> {
  const last = await tx.streamEvent.aggregate({
    where: { streamName: input.stream },
    _max: { sequence: true },
  });
  const event = await tx.streamEvent.create({
    data: {
      streamName: input.stream,
      sequence: (last._max.sequence ?? 0) + 1,
      kind: input.kind,
      versionId: input.versionId,
      currentVersionId: input.currentVersionId,
      actor: input.actor,
      reason: input.reason ?? null,
      at: new Date(),
    },
  });
  await tx.$executeRaw`SELECT pg_notify(${STREAM_EVENT_CHANNEL}, ${input.stream})`;
  return event;
}

/** A stream's events after `afterSequence`, oldest first, at most `limit`. */
export async function listStreamEvents(
  db: RegistryDb,
  stream: string,
  afterSequence: number,
  limit = 500,
): Promise<StreamEventWithVersion[]> {
  const events = await db.streamEvent.findMany({
    where: { streamName: stream, sequence: { gt: afterSequence } },
    orderBy: { sequence: 'asc' },
    take: limit,
    include: {
      version: {
        select: {
          id: true,
          sequence: true,
          parentId: true,
          rootHash: true,
          chunkCount: true,
          totalBytes: true,
          publishedAt: true,
        },
      },
    },
  });
  return events;
}

/** The sequence of a stream's last event; 0 when it has none. */
export async function lastEventSequence(db: RegistryDb, stream: string): Promise<number> {
  const last = await db.streamEvent.aggregate({
    where: { streamName: stream },
    _max: { sequence: true },
  });
  return last._max.sequence ?? 0;
}

/** The version a stream's participants should use now, or null when it has none. */
export async function currentVersionId(db: RegistryDb, stream: string): Promise<string | null> {
  const last = await db.streamEvent.findFirst({
    where: { streamName: stream },
    orderBy: { sequence: 'desc' },
  });
  return last?.currentVersionId ?? null;
}

async function lockStream(tx: Prisma.TransactionClient, stream: string): Promise<void> {
  const rows = await tx.$queryRaw<{ name: string }[]>`
    SELECT "name" FROM "knowledge_stream" WHERE "name" = ${stream} FOR UPDATE`;
  if (rows.length === 0) throw fail('STREAM_NOT_FOUND', { name: stream });
}

/**
 * Deprecates a version: participants are told, and it can no longer be made current. When
 * it is the stream's current version, the stream falls back to the latest earlier version
 * that is not deprecated (or to none). Recorded in the access log in the same transaction.
 *
 * @throws VERSION_NOT_FOUND; VERSION_DEPRECATED when it is deprecated already
 */
export async function deprecateVersion(
  prisma: PrismaClient,
  input: { versionId: string; actor: string; reason?: string; peerAddress?: string },
): Promise<StreamEvent> {
  return prisma.$transaction(async (tx) => {
    const found = await tx.knowledgeVersion.findUnique({ where: { id: input.versionId } });
    if (!found) throw fail('VERSION_NOT_FOUND', { id: input.versionId });
    await lockStream(tx, found.streamName);
    const version = await tx.knowledgeVersion.findUniqueOrThrow({ where: { id: found.id } });
    if (version.status === 'deprecated') throw fail('VERSION_DEPRECATED', { id: version.id });
    await tx.knowledgeVersion.update({ where: { id: version.id }, data: { status: 'deprecated' } });

    let current = await currentVersionId(tx, version.streamName);
    if (current === version.id) {
      const fallback = await tx.knowledgeVersion.findFirst({
        where: {
          streamName: version.streamName,
          sequence: { lt: version.sequence },
          status: { not: 'deprecated' },
        },
        orderBy: { sequence: 'desc' },
      });
      current = fallback?.id ?? null;
    }
    const event = await appendStreamEvent(tx, {
      stream: version.streamName,
      kind: 'deprecated',
      versionId: version.id,
      currentVersionId: current,
      actor: input.actor,
      ...(input.reason ? { reason: input.reason } : {}),
    });
    await appendAccessInTx(tx, {
      actor: input.actor,
      action: 'version.deprecate',
      resource: `version:${version.id}`,
      outcome: 'allowed',
      ...(input.peerAddress ? { peerAddress: input.peerAddress } : {}),
      detail: { stream: version.streamName, event: event.sequence, current, reason: input.reason },
    });
    return event;
  });
}

/**
 * Rolls a stream back to an earlier version, which becomes current; newer versions stay
 * published (and may be rolled forward to the same way) unless deprecated.
 *
 * @throws VERSION_NOT_FOUND; ROLLBACK_INVALID when the version is of another stream or not
 *   earlier than the current one; VERSION_DEPRECATED when it is deprecated
 */
export async function rollbackStream(
  prisma: PrismaClient,
  input: {
    stream: string;
    versionId: string;
    actor: string;
    reason?: string;
    peerAddress?: string;
  },
): Promise<StreamEvent> {
  return prisma.$transaction(async (tx) => {
    await lockStream(tx, input.stream);
    const target = await tx.knowledgeVersion.findUnique({ where: { id: input.versionId } });
    if (!target) throw fail('VERSION_NOT_FOUND', { id: input.versionId });
    const invalid = (detail: string) =>
      fail('ROLLBACK_INVALID', { stream: input.stream, id: input.versionId, detail });
    if (target.streamName !== input.stream) {
      throw invalid(`it belongs to stream "${target.streamName}"`);
    }
    if (target.status === 'deprecated') throw fail('VERSION_DEPRECATED', { id: target.id });
    const currentId = await currentVersionId(tx, input.stream);
    const current = currentId
      ? await tx.knowledgeVersion.findUnique({ where: { id: currentId } })
      : null;
    if (current && target.sequence >= current.sequence) {
      throw invalid(`it is not earlier than the current version (sequence ${current.sequence})`);
    }
    const event = await appendStreamEvent(tx, {
      stream: input.stream,
      kind: 'rolled_back',
      versionId: target.id,
      currentVersionId: target.id,
      actor: input.actor,
      ...(input.reason ? { reason: input.reason } : {}),
    });
    await appendAccessInTx(tx, {
      actor: input.actor,
      action: 'stream.rollback',
      resource: `stream:${input.stream}`,
      outcome: 'allowed',
      ...(input.peerAddress ? { peerAddress: input.peerAddress } : {}),
      detail: { version: target.id, from: currentId, event: event.sequence, reason: input.reason },
    });
    return event;
  });
}
