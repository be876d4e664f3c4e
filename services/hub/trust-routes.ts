import { X509Certificate } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { PrismaClient } from '../generated/prisma/client.js';
import { fail } from '../shared/errors.js';
import type { Role } from '../shared/tokens/index.js';
import type { HubSigningKey } from '../shared/tokens/key-store.js';
import { exportAccessLog } from '../registry/audit-export.js';
import { listCheckpoints, signChainHead } from '../registry/chain-signing.js';
import {
  certificateSummary,
  listCertificates,
  registerCertificate,
  revokeCertificate,
} from '../registry/certificates.js';
import {
  approveEnrolment,
  enrolmentSummary,
  listEnrolments,
  rejectEnrolment,
  submitEnrolment,
} from '../registry/enrolment.js';
import {
  createGrant,
  grantSummary,
  listGrants,
  revokeGrant,
  GRANT_KINDS,
  MAX_GRANT_SEQUENCE,
} from '../registry/grants.js';
import { getStream } from '../registry/knowledge.js';
import type { CertificateRevocations } from './revocations.js';

/** What the trust routes need from the hub. */
export interface TrustApiContext {
  /** The consortium CA certificate, to check uploaded certificates. */
  caCertPem: string;
  /** The CA private key; without it approvals need an uploaded certificate. */
  caKeyPem?: string;
  /** Key chain heads are signed with, published at GET /v1/audit/keys. */
  auditKey: HubSigningKey;
  /** `iss` of signed chain heads. */
  issuer: string;
  revocations: CertificateRevocations;
}

/** Route helpers of http-api.ts. */
export interface RouteHelpers {
  allow: (roles: Role[], action: string) => (request: FastifyRequest) => Promise<void>;
  logAllowed: (
    request: FastifyRequest,
    action: string,
    resource: string,
    detail?: Record<string, unknown>,
  ) => Promise<unknown>;
}

const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';
const PEM = { type: 'string', maxLength: 16_384 } as const;
const UUID = { type: 'string', pattern: '^[0-9a-f-]{36}$' } as const;
const ID_PARAM = { type: 'object', properties: { id: UUID }, required: ['id'] } as const;
const REASON_BODY = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: 500, pattern: PRINTABLE } },
} as const;

/**
 * Enrolment, certificates, grants and the signed audit chain. Operators manage the first
 * three; auditors read checkpoints and exports; the audit key is public. Every decision is
 * logged in the transaction that makes it (see the registry modules).
 */
export function registerTrustRoutes(
  app: FastifyInstance,
  prisma: PrismaClient,
  trust: TrustApiContext,
  { allow, logAllowed }: RouteHelpers,
): void {
  const context = (request: FastifyRequest) => ({
    actor: request.caller?.subject ?? 'operator',
    peerAddress: request.ip,
  });
  const caPublicKey = new X509Certificate(trust.caCertPem).publicKey;

  app.post<{ Body: { csrPem: string } }>(
    '/v1/enrolments',
    {
      onRequest: allow(['operator'], 'enrolment.submit'),
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['csrPem'],
          properties: { csrPem: PEM },
        },
      },
    },
    async (request, reply) => {
      const enrolment = await submitEnrolment(prisma, request.body.csrPem, context(request));
      return reply.code(201).send({ enrolment: enrolmentSummary(enrolment) });
    },
  );

  app.get<{ Querystring: { status?: string } }>(
    '/v1/enrolments',
    {
      onRequest: allow(['operator'], 'enrolment.list'),
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { status: { type: 'string', enum: ['pending', 'approved', 'rejected'] } },
        },
      },
    },
    async (request) => ({
      enrolments: (await listEnrolments(prisma, request.query.status)).map(enrolmentSummary),
    }),
  );

  app.post<{ Params: { id: string }; Body: { certPem?: string; validDays?: number } | null }>(
    '/v1/enrolments/:id/approve',
    {
      onRequest: allow(['operator'], 'enrolment.approve'),
      schema: {
        params: ID_PARAM,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { certPem: PEM, validDays: { type: 'integer', minimum: 1, maximum: 825 } },
        },
      },
    },
    async (request) => {
      const body = request.body ?? {};
      let signing;
      if (body.certPem) signing = { certPem: body.certPem, caPublicKey };
      else if (trust.caKeyPem) {
        signing = {
          ca: { certPem: trust.caCertPem, keyPem: trust.caKeyPem },
          ...(body.validDays ? { validDays: body.validDays } : {}),
        };
      } else throw fail('ENROLMENT_NO_CA_KEY');
      const { request: enrolment, certificate } = await approveEnrolment(
        prisma,
        request.params.id,
        signing,
        context(request),
      );
      return {
        enrolment: enrolmentSummary(enrolment),
        certificate: certificateSummary(certificate),
        certPem: certificate.certPem,
      };
    },
  );

  app.post<{ Params: { id: string }; Body: { reason?: string } | null }>(
    '/v1/enrolments/:id/reject',
    {
      onRequest: allow(['operator'], 'enrolment.reject'),
      schema: { params: ID_PARAM, body: REASON_BODY },
    },
    async (request) => {
      const enrolment = await rejectEnrolment(
        prisma,
        request.params.id,
        request.body?.reason ?? null,
        context(request),
      );
      return { enrolment: enrolmentSummary(enrolment) };
    },
  );

  app.get<{ Querystring: { participant?: string } }>(
    '/v1/certificates',
    {
      onRequest: allow(['operator'], 'certificates.list'),
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { participant: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,63}$' } },
        },
      },
    },
    async (request) => ({
      certificates: (await listCertificates(prisma, request.query.participant)).map(
        certificateSummary,
      ),
    }),
  );

  app.post<{ Body: { certPem: string } }>(
    '/v1/certificates',
    {
      onRequest: allow(['operator'], 'certificate.register'),
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['certPem'],
          properties: { certPem: PEM },
        },
      },
    },
    async (request, reply) => {
      const cert = await registerCertificate(
        prisma,
        request.body.certPem,
        caPublicKey,
        context(request),
      );
      return reply.code(201).send({ certificate: certificateSummary(cert) });
    },
  );

  app.post<{ Params: { ref: string }; Body: { reason?: string } | null }>(
    '/v1/certificates/:ref/revoke',
    {
      onRequest: allow(['operator'], 'certificate.revoke'),
      schema: {
        params: {
          type: 'object',
          properties: { ref: { type: 'string', pattern: '^[0-9a-fA-F:]{1,95}$' } },
          required: ['ref'],
        },
        body: REASON_BODY,
      },
    },
    async (request) => {
      const cert = await revokeCertificate(
        prisma,
        request.params.ref,
        request.body?.reason ?? null,
        context(request),
      );
      // Committed, so open streams of the certificate may now be closed.
      const closedStreams = trust.revocations.revoked(cert.fingerprint, cert.serialNumber);
      return { certificate: certificateSummary(cert), closedStreams };
    },
  );

  app.get<{ Querystring: { participant?: string; stream?: string; includeRevoked?: boolean } }>(
    '/v1/grants',
    {
      onRequest: allow(['operator'], 'grants.list'),
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            participant: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,63}$' },
            stream: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' },
            includeRevoked: { type: 'boolean' },
          },
        },
      },
    },
    async (request) => ({
      grants: (
        await listGrants(prisma, {
          ...(request.query.participant ? { participantId: request.query.participant } : {}),
          ...(request.query.stream ? { stream: request.query.stream } : {}),
          ...(request.query.includeRevoked ? { includeRevoked: true } : {}),
        })
      ).map(grantSummary),
    }),
  );

  app.post<{
    Body: {
      participant: string;
      stream: string;
      kinds: string[];
      layers?: string[];
      fromSequence?: number;
      toSequence?: number | null;
      expiresAt?: string | null;
      policy?: Record<string, unknown>;
    };
  }>(
    '/v1/grants',
    {
      onRequest: allow(['operator'], 'grant.create'),
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['participant', 'stream', 'kinds'],
          properties: {
            participant: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,63}$' },
            stream: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' },
            kinds: {
              type: 'array',
              minItems: 1,
              maxItems: 4,
              items: { type: 'string', enum: [...GRANT_KINDS] },
            },
            layers: {
              type: 'array',
              maxItems: 64,
              items: { type: 'string', pattern: '^(\\*|[a-z0-9_.-]{1,64})$' },
            },
            // The sequence columns are 32-bit: a larger value is a 400 here, not a database error.
            fromSequence: { type: 'integer', minimum: 1, maximum: MAX_GRANT_SEQUENCE },
            toSequence: { type: ['integer', 'null'], minimum: 1, maximum: MAX_GRANT_SEQUENCE },
            expiresAt: { type: ['string', 'null'], format: 'date-time' },
            policy: { type: 'object' },
          },
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      // A grant that could never be used is a mistake the operator should hear about at once.
      if (b.expiresAt && new Date(b.expiresAt).getTime() <= Date.now()) {
        throw fail('GRANT_INVALID', { detail: `expiresAt ${b.expiresAt} is already past` });
      }
      await getStream(prisma, b.stream);
      const grant = await createGrant(
        prisma,
        {
          participantId: b.participant,
          stream: b.stream,
          kinds: b.kinds,
          ...(b.layers ? { layers: b.layers } : {}),
          ...(b.fromSequence ? { fromSequence: b.fromSequence } : {}),
          ...(b.toSequence != null ? { toSequence: b.toSequence } : {}),
          ...(b.expiresAt ? { expiresAt: new Date(b.expiresAt) } : {}),
          ...(b.policy ? { policy: b.policy as never } : {}),
        },
        context(request),
      );
      return reply.code(201).send({ grant: grantSummary(grant) });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/grants/:id/revoke',
    { onRequest: allow(['operator'], 'grant.revoke'), schema: { params: ID_PARAM } },
    async (request) => ({
      grant: grantSummary(await revokeGrant(prisma, request.params.id, context(request))),
    }),
  );

  // The audit key is public: anyone may check a signed head, no one can forge one.
  app.get('/v1/audit/keys', async () => ({ keys: [trust.auditKey.publicJwk] }));

  app.post(
    '/v1/audit/checkpoints',
    { onRequest: allow(['auditor', 'operator'], 'audit.checkpoint') },
    async (request, reply) => {
      const checkpoint = await signChainHead(prisma, trust.auditKey, trust.issuer);
      await logAllowed(request, 'audit.checkpoint', 'audit:log', {
        sequence: checkpoint.sequence,
      });
      return reply.code(201).send({ checkpoint });
    },
  );

  app.get(
    '/v1/audit/checkpoints',
    { onRequest: allow(['auditor'], 'audit.checkpoints') },
    async () => ({ checkpoints: await listCheckpoints(prisma) }),
  );

  app.get(
    '/v1/audit/export',
    { onRequest: allow(['auditor'], 'audit.export') },
    async (request, reply) => {
      // Every export ends at a head signed just now, so that all of it is provable offline;
      // the export stops at that head, so its own log entry (written next), and any entry
      // appended meanwhile, falls outside it.
      const signed = await signChainHead(prisma, trust.auditKey, trust.issuer);
      const lines = exportAccessLog(prisma, trust.auditKey.kid, BigInt(signed.sequence));
      const first = await lines.next();
      await logAllowed(request, 'audit.export', 'audit:log');
      async function* all() {
        if (!first.done) yield first.value;
        yield* lines;
      }
      return reply.type('application/x-ndjson').send(Readable.from(all()));
    },
  );
}
