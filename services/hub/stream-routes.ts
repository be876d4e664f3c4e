import type { FastifyInstance } from 'fastify';
import type { PrismaClient } from '../generated/prisma/client.js';
import {
  deprecateVersion,
  listStreamEvents,
  rollbackStream,
  type StreamEvent,
} from '../registry/stream-events.js';
import { getStream } from '../registry/knowledge.js';
import type { RouteHelpers } from './trust-routes.js';

const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';
const VERSION_ID = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const STREAM = { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' } as const;
const REASON = { type: 'string', maxLength: 500, pattern: PRINTABLE } as const;

function eventSummary(event: StreamEvent) {
  return {
    stream: event.streamName,
    sequence: event.sequence,
    event: event.kind,
    versionId: event.versionId,
    currentVersionId: event.currentVersionId,
    actor: event.actor,
    reason: event.reason,
    at: event.at.toISOString(),
  };
}

/**
 * Operators' control of what a stream's participants use, as durable stream events that
 * subscribers receive (after a reconnection too):
 * - `POST /v1/versions/:id/deprecate` `{ reason? }`: the version is deprecated; if it was
 *   current, the stream falls back to the latest earlier version not deprecated.
 * - `POST /v1/streams/:stream/rollback` `{ versionId, reason? }`: an earlier version
 *   becomes current.
 * - `GET /v1/streams/:stream/events?after=&limit=`: the stream's events (operators, auditors).
 * Each change is written to the access log in the transaction that makes it.
 */
export function registerStreamRoutes(
  app: FastifyInstance,
  prisma: PrismaClient,
  { allow, logAllowed }: RouteHelpers,
): void {
  app.post<{ Params: { id: string }; Body: { reason?: string } | null }>(
    '/v1/versions/:id/deprecate',
    {
      onRequest: allow(['operator'], 'version.deprecate'),
      schema: {
        params: { type: 'object', properties: { id: VERSION_ID }, required: ['id'] },
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { reason: REASON },
        },
      },
    },
    async (request) => {
      const reason = request.body?.reason;
      const event = await deprecateVersion(prisma, {
        versionId: request.params.id,
        actor: request.caller?.subject ?? 'anonymous',
        peerAddress: request.ip,
        ...(reason ? { reason } : {}),
      });
      return { event: eventSummary(event) };
    },
  );

  app.post<{ Params: { stream: string }; Body: { versionId: string; reason?: string } }>(
    '/v1/streams/:stream/rollback',
    {
      onRequest: allow(['operator'], 'stream.rollback'),
      schema: {
        params: { type: 'object', properties: { stream: STREAM }, required: ['stream'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['versionId'],
          properties: { versionId: VERSION_ID, reason: REASON },
        },
      },
    },
    async (request) => {
      const event = await rollbackStream(prisma, {
        stream: request.params.stream,
        versionId: request.body.versionId,
        actor: request.caller?.subject ?? 'anonymous',
        peerAddress: request.ip,
        ...(request.body.reason ? { reason: request.body.reason } : {}),
      });
      return { event: eventSummary(event) };
    },
  );

  app.get<{ Params: { stream: string }; Querystring: { after?: number; limit?: number } }>(
    '/v1/streams/:stream/events',
    {
      onRequest: allow(['operator', 'auditor'], 'stream.events'),
      schema: {
        params: { type: 'object', properties: { stream: STREAM }, required: ['stream'] },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            // Event sequences are int4 in the registry: a larger one is refused here (400)
            // rather than failing in the database (500).
            after: { type: 'integer', minimum: 0, maximum: 2_147_483_647 },
            limit: { type: 'integer', minimum: 1, maximum: 500 },
          },
        },
      },
    },
    async (request) => {
      await getStream(prisma, request.params.stream);
      const events = await listStreamEvents(
        prisma,
        request.params.stream,
        request.query.after ?? 0,
        request.query.limit ?? 500,
      );
      await logAllowed(request, 'stream.events', `stream:${request.params.stream}`, {
        after: request.query.after ?? 0,
        returned: events.length,
      });
      return { events: events.map(eventSummary) };
    },
  );
}
