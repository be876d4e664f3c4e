import type { StateDtype } from '../shared/knowledge/encoding.js';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { fail, isDistilleryError, type DistilleryError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { parseManifest } from '../shared/knowledge/manifest.js';
import { TEMPERATURE_RANGE } from '../shared/knowledge/temperature.js';
import { parseBearer, type Role, type TokenVerifier } from '../shared/tokens/index.js';
import type { Registry } from '../registry/database.js';
import {
  APPEND_TX_OPTIONS,
  appendAccess,
  appendAccessInTx,
  queryAccessLog,
  verifyAccessChain,
} from '../registry/access-log.js';
import { enrolParticipant, listParticipants } from '../registry/participants.js';
import { getVersion, listVersions } from '../registry/knowledge.js';
import type { KnowledgePublisher } from './publisher.js';
import { registerStreamRoutes } from './stream-routes.js';
import { registerTrustRoutes, type TrustApiContext } from './trust-routes.js';
import { checkCheckpoints } from '../registry/chain-signing.js';
import { registerPrivacyRoutes } from './privacy-routes.js';

/** Options of {@link buildHttpApi}. */
export interface HttpApiOptions {
  registry: Registry;
  publisher: KnowledgePublisher;
  verifier: TokenVerifier;
  logger: Logger;
  /** Engine that trains the teacher, for /health. */
  engine: string;
  /** Enrolment, certificate, grant and signed-chain routes; left out when absent. */
  trust?: TrustApiContext;
  /** TLS key pair; without it the API is plain HTTP (tests with `inject` only). */
  https?: { key: string | Buffer; cert: string | Buffer };
}

interface Caller {
  subject: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

const errorBody = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
} as const;

// Text a query or body may carry: no control characters (PostgreSQL refuses NUL in text).
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';

const STREAM_PARAM = {
  type: 'object',
  properties: { stream: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' } },
  required: ['stream'],
} as const;

const ENTRY = {
  type: 'object',
  properties: {
    sequence: { type: 'string' },
    at: { type: 'string' },
    actor: { type: 'string' },
    action: { type: 'string' },
    resource: { type: 'string' },
    outcome: { type: 'string' },
    reason: { type: ['string', 'null'] },
    detail: {},
    peerAddress: { type: ['string', 'null'] },
    prevHash: { type: 'string' },
    hash: { type: 'string' },
  },
} as const;

/**
 * The hub's operator and auditor API. Every route states the roles it admits; the token
 * is verified before the handler runs, and both the grant and the refusal of access are
 * written to the access log.
 */
export async function buildHttpApi(options: HttpApiOptions) {
  const { registry, publisher, verifier, logger } = options;
  const prisma = registry.prisma;
  const app = Fastify({
    loggerInstance: logger.child({ component: 'http' }),
    ...(options.https ? { https: { key: options.https.key, cert: options.https.cert } } : {}),
    bodyLimit: 64 * 1024,
    // No type coercion: a JSON body keeps the types its caller sent, so `{"id":123}` or
    // `{"id":["bank-r"]}` is refused rather than read as "123" or "bank-r". Query strings
    // and path parameters, text by nature, are converted by coerceUrlValues below.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  app.addHook('preValidation', async (request) => coerceUrlValues(request));

  app.setErrorHandler(
    (
      err: Error & { validation?: unknown; statusCode?: number; validationContext?: string },
      request,
      reply,
    ) => {
      if (isDistilleryError(err)) return sendError(reply, err);
      if (err.validation) {
        return sendError(reply, fail('REQUEST_INVALID', { detail: describeValidation(err) }));
      }
      if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
        return sendError(reply, fail('REQUEST_INVALID', { detail: err.message }), err.statusCode);
      }
      request.log.error({ err }, 'request failed');
      return sendError(reply, fail('INTERNAL'));
    },
  );
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` } }),
  );

  /**
   * An onRequest hook that admits only tokens with one of `roles`, logging refusals. It runs
   * before the body is parsed or validated, so that a caller without a valid token learns
   * nothing of the route's schema and every such attempt is logged.
   */
  const allow = (roles: Role[], action: string) => async (request: FastifyRequest) => {
    const resource = `http:${request.routeOptions.url ?? request.url}`;
    try {
      const token = parseBearer(request.headers.authorization);
      const verified = await verifier.verify(token);
      if (!roles.includes(verified.role)) {
        await appendAccess(prisma, {
          actor: verified.subject,
          action,
          resource,
          outcome: 'denied',
          reason: `role ${verified.role}`,
          peerAddress: request.ip,
        });
        throw fail('TOKEN_ROLE', { role: verified.role, action, needed: roles.join(', ') });
      }
      request.caller = { subject: verified.subject, role: verified.role };
    } catch (err) {
      if (isDistilleryError(err) && err.code !== 'TOKEN_ROLE') {
        await appendAccess(prisma, {
          actor: 'anonymous',
          action,
          resource,
          outcome: 'denied',
          reason: err.message,
          peerAddress: request.ip,
        });
      }
      throw err;
    }
  };

  const logAllowed = (
    request: FastifyRequest,
    action: string,
    resource: string,
    detail?: Record<string, unknown>,
  ) =>
    appendAccess(prisma, {
      actor: request.caller?.subject ?? 'anonymous',
      action,
      resource,
      outcome: 'allowed',
      peerAddress: request.ip,
      ...(detail ? { detail } : {}),
    });

  app.get(
    '/health',
    { schema: { response: { 200: { type: 'object', additionalProperties: true } } } },
    async () => ({
      status: 'ok',
      engine: options.engine,
      registry: registry.kind,
    }),
  );

  app.get(
    '/v1/participants',
    { onRequest: allow(['operator'], 'participants.list') },
    async () => ({ participants: await listParticipants(prisma) }),
  );

  app.post<{ Body: { id: string; displayName?: string } }>(
    '/v1/participants',
    {
      onRequest: allow(['operator'], 'participants.enrol'),
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: {
            id: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,63}$' },
            displayName: { type: 'string', maxLength: 200, pattern: PRINTABLE },
          },
        },
      },
    },
    async (request, reply) => {
      // The enrolment and its log entry commit together, or neither does.
      const participant = await prisma.$transaction(async (tx) => {
        const enrolled = await enrolParticipant(tx, request.body);
        await appendAccessInTx(tx, {
          actor: request.caller?.subject ?? 'anonymous',
          action: 'participants.enrol',
          resource: `participant:${request.body.id}`,
          outcome: 'allowed',
          peerAddress: request.ip,
        });
        return enrolled;
      }, APPEND_TX_OPTIONS);
      return reply.code(201).send({ participant });
    },
  );

  app.get<{ Params: { stream: string } }>(
    '/v1/streams/:stream/versions',
    {
      onRequest: allow(['operator', 'auditor'], 'versions.list'),
      schema: { params: STREAM_PARAM },
    },
    async (request) => {
      const versions = await listVersions(prisma, request.params.stream, {});
      return { versions: versions.map(versionSummary) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/versions/:id',
    {
      onRequest: allow(['operator', 'auditor'], 'versions.read'),
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
          required: ['id'],
        },
      },
    },
    async (request) => {
      const version = await getVersion(prisma, request.params.id);
      const manifest = parseManifest(version.id, version.manifestJson);
      return { version: versionSummary(version), manifest };
    },
  );

  app.post<{
    Params: { stream: string };
    Body: {
      epochs?: number;
      temperature?: number;
      hiddenLayers?: string[];
      fresh?: boolean;
      encoding?: StateDtype;
    };
  }>(
    '/v1/streams/:stream/versions',
    {
      onRequest: allow(['operator'], 'publish'),
      schema: {
        params: STREAM_PARAM,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            epochs: { type: 'integer', minimum: 1, maximum: 1000 },
            temperature: {
              type: 'number',
              minimum: TEMPERATURE_RANGE.min,
              maximum: TEMPERATURE_RANGE.max,
            },
            hiddenLayers: {
              type: 'array',
              maxItems: 8,
              uniqueItems: true,
              items: { type: 'string', pattern: '^[a-z0-9_]{1,64}$' },
            },
            fresh: { type: 'boolean' },
            encoding: { type: 'string', enum: ['float32', 'float16', 'int8'] },
          },
        },
      },
    },
    async (request, reply) => {
      const body = request.body ?? {};
      const result = await publisher.publish({
        stream: request.params.stream,
        epochs: body.epochs ?? 30,
        temperature: body.temperature ?? 4,
        hiddenLayers: body.hiddenLayers ?? ['hidden_2'],
        fresh: body.fresh ?? false,
        ...(body.encoding ? { encoding: body.encoding } : {}),
        actor: request.caller?.subject ?? 'operator',
      });
      return reply.code(201).send(result);
    },
  );

  app.get<{
    Querystring: {
      actor?: string;
      action?: string;
      outcome?: string;
      resource?: string;
      from?: string;
      to?: string;
      limit?: number;
      cursor?: string;
    };
  }>(
    '/v1/audit/log',
    {
      onRequest: allow(['auditor'], 'audit.query'),
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            actor: { type: 'string', maxLength: 200, pattern: PRINTABLE },
            action: { type: 'string', maxLength: 64, pattern: PRINTABLE },
            outcome: { type: 'string', enum: ['allowed', 'denied', 'error'] },
            resource: { type: 'string', maxLength: 200, pattern: PRINTABLE },
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: { type: 'string', maxLength: 200, pattern: PRINTABLE },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              entries: { type: 'array', items: ENTRY },
              nextCursor: { type: ['string', 'null'] },
            },
          },
          400: errorBody,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await queryAccessLog(prisma, {
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.outcome ? { outcome: q.outcome } : {}),
        ...(q.resource ? { resource: q.resource } : {}),
        ...(q.from ? { from: new Date(q.from) } : {}),
        ...(q.to ? { to: new Date(q.to) } : {}),
        ...(q.limit ? { limit: q.limit } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      // Logged after the read, so the page an auditor sees never contains its own query.
      await logAllowed(request, 'audit.query', 'audit:log', {
        filter: q,
        returned: page.entries.length,
      });
      return page;
    },
  );

  app.get(
    '/v1/audit/verify',
    { onRequest: allow(['auditor'], 'audit.verify') },
    async (request) => {
      const chain = await verifyAccessChain(prisma);
      // With the audit key at hand, the signed heads are checked too: a log rewritten with
      // every hash recomputed is consistent, but no longer the log the hub signed.
      const checkpoints = options.trust
        ? await checkCheckpoints(prisma, options.trust.auditKey.publicKey)
        : undefined;
      const report = {
        ...chain,
        ok: chain.ok && !checkpoints?.firstBad,
        ...(checkpoints ? { checkpoints } : {}),
      };
      // A broken chain may also break appending (a deleted head row, say); the auditor
      // gets the report all the same, since it says where the log broke.
      await logAllowed(request, 'audit.verify', 'audit:log', { ok: report.ok }).catch(
        (err: unknown) => request.log.error({ err }, 'audit verification could not be logged'),
      );
      return report;
    },
  );

  registerPrivacyRoutes(app as unknown as FastifyInstance, prisma, { allow, logAllowed });
  registerStreamRoutes(app as unknown as FastifyInstance, prisma, { allow, logAllowed });

  // The instance is typed with the hub's pino logger; the routes need only the base API.
  if (options.trust) {
    registerTrustRoutes(app as unknown as FastifyInstance, prisma, options.trust, {
      allow,
      logAllowed,
    });
  }

  return app;
}

type UrlSchema = { properties?: Record<string, { type?: unknown }> } | undefined;

/**
 * Converts query-string and path values to the numbers and booleans their route's schema
 * asks for, before validation; a value that does not convert stays text and is refused by
 * the schema, naming the field. Bodies are left alone (see buildHttpApi).
 */
function coerceUrlValues(request: FastifyRequest): void {
  const schema = request.routeOptions.schema as
    { querystring?: UrlSchema; params?: UrlSchema } | undefined;
  coerceValues(request.query, schema?.querystring);
  coerceValues(request.params, schema?.params);
}

function coerceValues(values: unknown, schema: UrlSchema): void {
  if (!values || typeof values !== 'object' || !schema?.properties) return;
  const record = values as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    const type = Object.hasOwn(schema.properties, key) ? schema.properties[key]?.type : undefined;
    if (typeof value !== 'string') continue;
    if ((type === 'integer' || type === 'number') && value.trim() !== '') {
      const n = Number(value);
      if (Number.isFinite(n)) record[key] = n;
    } else if (type === 'boolean' && (value === 'true' || value === 'false')) {
      record[key] = value === 'true';
    }
  }
}

interface AjvIssue {
  instancePath?: string;
  message?: string;
  params?: { additionalProperty?: string; missingProperty?: string };
}

/** Names the field a schema rejected: "body.epochs must be integer". */
function describeValidation(err: { validation?: unknown; validationContext?: string }): string {
  const issue = (Array.isArray(err.validation) ? err.validation[0] : undefined) as
    AjvIssue | undefined;
  const context = err.validationContext ?? 'request';
  const path = (issue?.instancePath ?? '').split('/').filter(Boolean).join('.');
  const where = path ? `${context}.${path}` : context;
  if (issue?.params?.additionalProperty) {
    return `${where} has an unknown field "${issue.params.additionalProperty}"`;
  }
  if (issue?.params?.missingProperty) {
    return `${where} lacks the field "${issue.params.missingProperty}"`;
  }
  return `${where} ${issue?.message ?? 'is invalid'}`;
}

/** The hub's HTTP API as built by {@link buildHttpApi}. */
export type HttpApi = Awaited<ReturnType<typeof buildHttpApi>>;

function sendError(reply: FastifyReply, err: DistilleryError, status = err.httpStatus) {
  return reply.code(status).send({ error: { code: err.code, message: err.message } });
}

function versionSummary(version: Awaited<ReturnType<typeof getVersion>>) {
  return {
    id: version.id,
    stream: version.streamName,
    sequence: version.sequence,
    parentId: version.parentId,
    rootHash: version.rootHash,
    chunkCount: version.chunkCount,
    totalBytes: Number(version.totalBytes),
    status: version.status,
    publishedAt: version.publishedAt.toISOString(),
  };
}
