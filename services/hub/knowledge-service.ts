import type {
  sendUnaryData,
  ServiceError,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { once } from 'node:events';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { identityFromPeerCertificate } from '../shared/pki/identity.js';
import { isVersionId } from '../shared/knowledge/manifest.js';
import { toServiceError } from '../shared/transport/status.js';
import type {
  Announcement,
  Chunk,
  FetchChunksRequest__Output,
  GetManifestRequest__Output,
  KnowledgeHandlers,
  ManifestResponse,
  SubscribeRequest__Output,
} from '../shared/transport/proto.js';
import { appendAccess } from '../registry/access-log.js';
import { getParticipant } from '../registry/participants.js';
import { getStream, getVersion, listVersions, readChunk } from '../registry/knowledge.js';
import type { Registry } from '../registry/database.js';
import type { Announcer } from './announcer.js';

/** Options of {@link createKnowledgeService}. */
export interface KnowledgeServiceOptions {
  registry: Registry;
  announcer: Announcer;
  logger: Logger;
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

const STREAM_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Calls one participant may hold open at once. A bank's node needs one subscription and one
 * download; the limits leave room for a restart overlapping the old connection, and keep one
 * participant from taking every registry connection from the others.
 */
export const MAX_OPEN_CALLS = { subscriptions: 4, downloads: 4 } as const;

function checkVersionId(id: string): void {
  if (!isVersionId(id)) {
    throw fail('REQUEST_INVALID', { detail: `version id "${shown(id)}" is not 64 hex digits` });
  }
}

/** What a caller sent, cut short for log lines and error messages. */
function shown(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}

/**
 * The `distillery.v1.Knowledge` handlers. Each call is attributed to the participant named
 * in its verified client certificate, checked against enrolment, and written to the access
 * log before any knowledge is sent: a decision that cannot be logged is not carried out.
 */
export function createKnowledgeService(options: KnowledgeServiceOptions): KnowledgeHandlers {
  const { registry, announcer, logger } = options;
  const prisma = registry.prisma;

  async function record(
    call: AnyCall,
    actor: string,
    action: string,
    resource: string,
    outcome: 'allowed' | 'denied' | 'error',
    extra: { reason?: string; detail?: Record<string, unknown> } = {},
  ) {
    await appendAccess(prisma, {
      actor,
      action,
      resource,
      outcome,
      peerAddress: call.getPeer(),
      ...extra,
    });
  }

  const open = { subscriptions: new Map<string, number>(), downloads: new Map<string, number>() };

  /** Counts an open call of `participant`; returns its release, which is safe to call twice. */
  function holdCall(participant: string, what: keyof typeof MAX_OPEN_CALLS): () => void {
    const counts = open[what];
    const held = counts.get(participant) ?? 0;
    if (held >= MAX_OPEN_CALLS[what]) {
      throw fail('PEER_TOO_MANY_CALLS', {
        participant,
        open: held,
        what,
        limit: MAX_OPEN_CALLS[what],
      });
    }
    counts.set(participant, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (counts.get(participant) ?? 1) - 1;
      if (now > 0) counts.set(participant, now);
      else counts.delete(participant);
    };
  }

  /** Resolves the caller's identity from its certificate and checks it is enrolled. */
  async function authorise(call: AnyCall, action: string, resource: string): Promise<string> {
    const certificate = call.getAuthContext()?.sslPeerCertificate;
    const identity = certificate ? identityFromPeerCertificate(certificate) : null;
    if (!identity) {
      await record(call, 'anonymous', action, resource, 'denied', {
        reason: 'no verified client certificate identity',
      });
      throw fail('PEER_UNAUTHENTICATED');
    }
    const participant = await getParticipant(prisma, identity);
    if (!participant || participant.status !== 'active') {
      await record(call, identity, action, resource, 'denied', { reason: 'not enrolled' });
      throw fail('PEER_NOT_ENROLLED', { participant: identity });
    }
    return identity;
  }

  /** Logs a request that failed after authorisation (unknown version, bad index). */
  async function recordFailure(
    call: AnyCall,
    actor: string,
    action: string,
    resource: string,
    err: unknown,
  ) {
    const reason = err instanceof Error ? err.message : String(err);
    await record(call, actor, action, resource, 'error', { reason }).catch((logErr: unknown) =>
      logger.error({ err: logErr }, 'access log write failed'),
    );
  }

  function toAnnouncement(version: Awaited<ReturnType<typeof listVersions>>[number]): Announcement {
    return {
      stream: version.streamName,
      sequence: String(version.sequence),
      versionId: version.id,
      parentId: version.parentId ?? '',
      rootHash: version.rootHash,
      chunkCount: version.chunkCount,
      totalBytes: String(version.totalBytes),
      publishedAt: version.publishedAt.toISOString(),
    };
  }

  async function subscribe(call: ServerWritableStream<SubscribeRequest__Output, Announcement>) {
    const stream = call.request.stream;
    const resource = `stream:${shown(stream)}`;
    let actor = 'anonymous';
    let unlisten: (() => void) | undefined;
    try {
      actor = await authorise(call, 'subscribe', resource);
      if (!STREAM_NAME.test(stream))
        throw fail('REQUEST_INVALID', { detail: `stream name "${shown(stream)}"` });
      const afterSequence = Number(call.request.afterSequence);
      if (!Number.isSafeInteger(afterSequence) || afterSequence < 0) {
        throw fail('REQUEST_INVALID', { detail: 'after_sequence must be a non-negative integer' });
      }
      // Only the hub's operator creates streams; a subscriber names one that exists.
      await getStream(prisma, stream);
      const release = holdCall(actor, 'subscriptions');
      call.once('close', release);
      call.once('cancelled', release);
      await record(call, actor, 'subscribe', resource, 'allowed', { detail: { afterSequence } });
      logger.info({ participant: actor, stream, afterSequence }, 'subscription opened');

      // Every wake-up re-reads the registry from the last sequence sent, one pass at a
      // time, so announcements go out in order and exactly once per subscription.
      let lastSent = afterSequence;
      let pending = Promise.resolve();
      const drain = () => {
        pending = pending
          .then(async () => {
            if (call.cancelled) return;
            const versions = await listVersions(prisma, stream, { afterSequence: lastSent });
            for (const version of versions) {
              if (call.cancelled) return;
              if (!call.write(toAnnouncement(version))) await once(call, 'drain');
              lastSent = version.sequence;
            }
          })
          .catch((err: unknown) => {
            logger.error({ err, participant: actor, stream }, 'announcement failed');
            failStream(call, toServiceError(err, logger));
          });
      };
      unlisten = announcer.listen(stream, drain);
      call.on('cancelled', () => {
        unlisten?.();
        logger.info({ participant: actor, stream }, 'subscription closed');
      });
      drain();
    } catch (err) {
      unlisten?.();
      if (actor !== 'anonymous' && !isPeerError(err)) {
        await recordFailure(call, actor, 'subscribe', resource, err);
      }
      failStream(call, toServiceError(err, logger, { rpc: 'Subscribe' }));
    }
  }

  async function getManifest(
    call: ServerUnaryCall<GetManifestRequest__Output, ManifestResponse>,
    callback: sendUnaryData<ManifestResponse>,
  ) {
    const id = call.request.versionId;
    const resource = `version:${shown(id)}`;
    let actor = 'anonymous';
    try {
      actor = await authorise(call, 'manifest', resource);
      checkVersionId(id);
      const version = await getVersion(prisma, id);
      await record(call, actor, 'manifest', resource, 'allowed');
      callback(null, {
        versionId: version.id,
        manifestJson: Buffer.from(version.manifestJson, 'utf8'),
      });
    } catch (err) {
      if (actor !== 'anonymous' && !isPeerError(err))
        await recordFailure(call, actor, 'manifest', resource, err);
      callback(toServiceError(err, logger, { rpc: 'GetManifest' }));
    }
  }

  async function fetchChunks(call: ServerWritableStream<FetchChunksRequest__Output, Chunk>) {
    const id = call.request.versionId;
    const fromIndex = call.request.fromIndex;
    const resource = `version:${shown(id)}`;
    let actor = 'anonymous';
    try {
      actor = await authorise(call, 'download', resource);
      checkVersionId(id);
      const version = await getVersion(prisma, id);
      if (fromIndex > version.chunkCount) {
        throw fail('CHUNK_OUT_OF_RANGE', { id, count: version.chunkCount, index: fromIndex });
      }
      const release = holdCall(actor, 'downloads');
      call.once('close', release);
      call.once('cancelled', release);
      await record(call, actor, 'download', resource, 'allowed', {
        detail: { fromIndex, chunks: version.chunkCount - fromIndex },
      });

      // One chunk read from the registry at a time, and none while the peer's window is
      // full: memory stays at a chunk or two whatever the size of the version.
      for (let index = fromIndex; index < version.chunkCount; index++) {
        if (call.cancelled) return;
        const chunk = await readChunk(prisma, id, index);
        if (!call.write({ index, data: chunk.data })) await once(call, 'drain');
      }
      call.end();
      logger.info({ participant: actor, version: id, fromIndex }, 'version sent');
    } catch (err) {
      if (actor !== 'anonymous' && !isPeerError(err))
        await recordFailure(call, actor, 'download', resource, err);
      failStream(call, toServiceError(err, logger, { rpc: 'FetchChunks' }));
    }
  }

  return {
    Subscribe: (call) => void subscribe(call),
    GetManifest: (call, callback) => void getManifest(call, callback),
    FetchChunks: (call) => void fetchChunks(call),
  } satisfies KnowledgeHandlers as KnowledgeHandlers & UntypedServiceImplementation;
}

/**
 * Ends a server stream with an error status. `destroy(err)` would not do: grpc-js sends the
 * status from the stream's final step, which a destroyed stream never reaches, and the
 * client would wait for ever; the stream's own 'error' handler sets the status and ends it.
 */
function failStream(call: ServerWritableStream<unknown, unknown>, err: ServiceError): void {
  call.emit('error', err);
}

/** Refusals of the peer itself are logged by `authorise`; do not log them twice. */
function isPeerError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'PEER_UNAUTHENTICATED' || code === 'PEER_NOT_ENROLLED';
}
