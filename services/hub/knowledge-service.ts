import type {
  sendUnaryData,
  ServiceError,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { isVersionId, parseManifest } from '../shared/knowledge/manifest.js';
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
import { findGrants } from '../registry/grants.js';
import {
  createCallAuthority,
  isLoggedRefusal,
  type Caller,
  type TrustSettings,
} from './call-authority.js';
import { grantCoversSequence } from './grant-check.js';
import { getStream, getVersion } from '../registry/knowledge.js';
import { lastEventSequence, type StreamEventWithVersion } from '../registry/stream-events.js';
import type { Registry } from '../registry/database.js';
import type { Announcer } from './announcer.js';
import { planChunks, sendChunks, writable } from './chunk-sender.js';
import type { ChunkCache } from './chunk-cache.js';
import { answerQuery, type QueryBackend } from './query-service.js';
import type { QueryRequest__Output } from '../generated/proto/distillery/v1/QueryRequest.js';
import type { QueryResponse } from '../generated/proto/distillery/v1/QueryResponse.js';

/** Options of {@link createKnowledgeService}. */
export interface KnowledgeServiceOptions {
  registry: Registry;
  announcer: Announcer;
  logger: Logger;
  /** Called each time a chunk is read for a download (metrics, tests). */
  onChunkRead?: (versionId: string, index: number) => void;
  /** Local copies of chunk bytes, so that a chunk is read from the registry once. */
  chunkCache?: ChunkCache;
  /** Certificate admission, participant tokens and revocations. */
  trust: TrustSettings;
  /** Query mode (rpc Query, services/hub/query-service.ts); refused when absent. */
  query?: QueryBackend;
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

const STREAM_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** The largest event sequence the registry can store (a PostgreSQL int4). */
const INT4_MAX = 2_147_483_647;

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
  const authority = createCallAuthority({ prisma, trust: options.trust, logger });

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

  /**
   * Authenticates the caller: verified certificate, its registry status, and the token bound
   * to it (see call-authority.ts). Every refusal is logged before it is raised.
   */
  async function authorise(call: AnyCall, action: string, resource: string): Promise<Caller> {
    return authority.authenticate(call, action, resource);
  }

  /**
   * Ends a stream of `caller` when its certificate is revoked: at once when the revocation is
   * made through this hub process, and otherwise at the stream's next `recheck` (a
   * subscription rechecks at every wake-up, so a revocation made by another process sharing
   * the database closes it within a poll interval).
   */
  function closeOnRevocation(
    call: ServerWritableStream<unknown, unknown>,
    caller: Caller,
    action: string,
    resource: string,
    onClosed: () => void = () => undefined,
  ): { recheck: () => Promise<boolean> } {
    let closed = false;
    const close = (serial: string) => {
      if (closed) return;
      closed = true;
      onClosed();
      const err = fail('CERT_REVOKED', { serial });
      void record(call, caller.participant, action, resource, 'denied', {
        reason: `${err.message}; open stream closed`,
      }).catch((logErr: unknown) => logger.error({ err: logErr }, 'access log write failed'));
      logger.info(
        { participant: caller.participant, serial },
        'stream closed: certificate revoked',
      );
      failStream(call, toServiceError(err, logger));
    };
    const unwatch = authority.watchRevocation(caller, close);
    call.once('close', unwatch);
    call.once('cancelled', unwatch);
    return {
      async recheck() {
        if (closed) return true;
        const serial = await authority.revokedSerial(caller);
        if (serial) close(serial);
        return closed;
      },
    };
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

  function toAnnouncement(event: StreamEventWithVersion): Announcement {
    const version = event.version;
    return {
      stream: event.streamName,
      sequence: String(event.sequence),
      versionId: version.id,
      parentId: version.parentId ?? '',
      rootHash: version.rootHash,
      chunkCount: version.chunkCount,
      totalBytes: String(version.totalBytes),
      publishedAt: version.publishedAt.toISOString(),
      event: event.kind,
      versionSequence: String(version.sequence),
      currentVersionId: event.currentVersionId ?? '',
      reason: event.reason ?? '',
      eventAt: event.at.toISOString(),
    };
  }

  async function subscribe(call: ServerWritableStream<SubscribeRequest__Output, Announcement>) {
    const stream = call.request.stream;
    const resource = `stream:${shown(stream)}`;
    let actor = 'anonymous';
    let unlisten: (() => void) | undefined;
    try {
      const caller = await authorise(call, 'subscribe', resource);
      actor = caller.participant;
      if (!STREAM_NAME.test(stream))
        throw fail('REQUEST_INVALID', { detail: `stream name "${shown(stream)}"` });
      const afterSequence = Number(call.request.afterSequence);
      // Event sequences are int4 in the registry: a larger place would reach the database
      // as a query it cannot run (INTERNAL), instead of being refused here.
      if (!Number.isSafeInteger(afterSequence) || afterSequence < 0 || afterSequence > INT4_MAX) {
        throw fail('REQUEST_INVALID', {
          detail: `after_sequence must be an integer from 0 to ${INT4_MAX} (got ${shown(String(call.request.afterSequence))})`,
        });
      }
      // Only the hub's operator creates streams; a subscriber names one that exists.
      await getStream(prisma, stream);
      await authority.authoriseGrant(call, caller, 'subscribe', resource, { stream, tensors: [] });
      // A place past the stream's end would wait silently for events that already have other
      // numbers here: the node's state belongs to another hub or to a registry since reset.
      const last = await lastEventSequence(prisma, stream);
      if (afterSequence > last) {
        throw fail('SUBSCRIPTION_AHEAD_OF_STREAM', { stream, last, after: afterSequence });
      }
      let revoked = false;
      const revocation = closeOnRevocation(call, caller, 'subscribe', resource, () => {
        revoked = true;
        unlisten?.();
      });
      const release = holdCall(actor, 'subscriptions');
      call.once('close', release);
      call.once('cancelled', release);
      await record(call, actor, 'subscribe', resource, 'allowed', { detail: { afterSequence } });
      logger.info({ participant: actor, stream, afterSequence }, 'subscription opened');

      // Every wake-up reads the stream's durable events after the last one sent, one pass
      // at a time, so announcements go out in order and exactly once per subscription.
      let lastSent = afterSequence;
      let pending = Promise.resolve();
      const drain = () => {
        pending = pending
          .then(async () => {
            for (;;) {
              if (call.cancelled || (await revocation.recheck())) return;
              const events = await announcer.eventsAfter(prisma, stream, lastSent);
              if (events.length === 0) return;
              // Grants are read at every wake-up, so a revoked or narrowed grant applies to
              // the next announcement; events of versions outside every grant are passed over.
              const grants = await findGrants(prisma, actor, stream);
              for (const event of events) {
                if (call.cancelled || revoked) return;
                if (!grants.some((g) => grantCoversSequence(g, event.version.sequence))) {
                  lastSent = event.sequence;
                  continue;
                }
                if (!call.write(toAnnouncement(event))) await writable(call);
                lastSent = event.sequence;
              }
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
      const caller = await authorise(call, 'manifest', resource);
      actor = caller.participant;
      checkVersionId(id);
      const version = await getVersion(prisma, id);
      await authority.authoriseGrant(call, caller, 'manifest', resource, {
        stream: version.streamName,
        sequence: version.sequence,
        tensors: [],
      });
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
    const tensors = call.request.tensors;
    const indices = call.request.indices;
    const resource = `version:${shown(id)}`;
    let actor = 'anonymous';
    try {
      const caller = await authorise(call, 'download', resource);
      actor = caller.participant;
      checkVersionId(id);
      const version = await getVersion(prisma, id);
      const manifest = parseManifest(version.id, version.manifestJson);
      // Named tensors must each be granted; none named means those the grant allows.
      const granted = await authority.authoriseTensors(call, caller, 'download', resource, {
        stream: version.streamName,
        sequence: version.sequence,
        manifest,
        tensors,
      });
      const plan = planChunks(id, manifest, { fromIndex, tensors: granted, indices });
      let revoked = false;
      closeOnRevocation(call, caller, 'download', resource, () => {
        revoked = true;
      });
      const release = holdCall(actor, 'downloads');
      call.once('close', release);
      call.once('cancelled', release);
      await record(call, actor, 'download', resource, 'allowed', {
        detail: {
          fromIndex,
          chunks: plan.length,
          ...(granted.length > 0 ? { tensors: granted.slice(0, 32) } : {}),
          ...(indices.length > 0 ? { indices: indices.length } : {}),
        },
      });

      // A few chunks read ahead, none while the peer's window is full, none after it has
      // gone: memory stays at a few chunks whatever the size of the version.
      const complete = await sendChunks(call, {
        db: prisma,
        versionId: id,
        plan,
        hashes: manifest.chunks,
        ...(options.chunkCache ? { cache: options.chunkCache } : {}),
        ...(options.onChunkRead ? { onChunkRead: (i) => options.onChunkRead?.(id, i) } : {}),
      });
      if (!complete || revoked) {
        logger.info({ participant: actor, version: id }, 'download ended by the participant');
        return;
      }
      call.end();
      logger.info({ participant: actor, version: id, chunks: plan.length }, 'version sent');
    } catch (err) {
      if (actor !== 'anonymous' && !isPeerError(err))
        await recordFailure(call, actor, 'download', resource, err);
      failStream(call, toServiceError(err, logger, { rpc: 'FetchChunks' }));
    }
  }

  /** Query mode: the participant's own rows in, teacher states out under its grant's policy. */
  async function query(
    call: ServerUnaryCall<QueryRequest__Output, QueryResponse>,
    callback: sendUnaryData<QueryResponse>,
  ) {
    const resource = `stream:${shown(call.request.stream)}`;
    let actor = 'anonymous';
    try {
      const caller = await authorise(call, 'query', resource);
      actor = caller.participant;
      if (!STREAM_NAME.test(call.request.stream)) {
        throw fail('REQUEST_INVALID', { detail: `stream name "${shown(call.request.stream)}"` });
      }
      if (!options.query) {
        const err = fail('PRIVACY_QUERY_NOT_ALLOWED', {
          participant: actor,
          stream: call.request.stream,
        });
        await record(call, actor, 'query', resource, 'denied', { reason: err.message });
        throw err;
      }
      // answerQuery logs its own decisions (allowed or refused), with the ledger entry.
      const response = await answerQuery({
        prisma,
        backend: options.query,
        participant: actor,
        peerAddress: call.getPeer(),
        request: call.request,
        logger,
      });
      callback(null, response);
    } catch (err) {
      if (actor !== 'anonymous' && !isPeerError(err) && !isQueryDecision(err)) {
        await recordFailure(call, actor, 'query', resource, err);
      }
      callback(toServiceError(err, logger, { rpc: 'Query' }));
    }
  }

  return {
    Query: (call, callback) => void query(call, callback),
    Subscribe: (call) => void subscribe(call),
    GetManifest: (call, callback) => void getManifest(call, callback),
    FetchChunks: (call) => void fetchChunks(call),
    IssueToken: (call, callback) =>
      void authority.issueToken(call).then(
        (issued) => callback(null, issued),
        (err: unknown) => callback(toServiceError(err, logger, { rpc: 'IssueToken' })),
      ),
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

/** Query refusals that answerQuery or the ledger already wrote to the access log. */
function isQueryDecision(err: unknown): boolean {
  return (
    err instanceof Error &&
    'code' in err &&
    [
      'PRIVACY_QUERY_NOT_ALLOWED',
      'PRIVACY_ROW_CAP_EXCEEDED',
      'PRIVACY_BUDGET_EXHAUSTED',
      'GRANT_DENIED',
    ].includes(String((err as { code: unknown }).code))
  );
}

/** Refusals of the peer and of its grants are logged where they are made; not twice. */
function isPeerError(err: unknown): boolean {
  return isLoggedRefusal(err);
}
