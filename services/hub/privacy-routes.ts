import type { FastifyInstance } from 'fastify';
import type { PrismaClient } from '../generated/prisma/client.js';
import { parseReleasePolicy, type ReleasePolicy } from '../shared/privacy/policy.js';
import { listLedger, privacyBudgets } from '../registry/privacy-ledger.js';
import type { RouteHelpers } from './trust-routes.js';

const PARTICIPANT = { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,63}$' } as const;

/** A grant's policy, or nothing when it does not validate (such a grant serves no query). */
function policyOrNothing(json: unknown): ReleasePolicy | undefined {
  try {
    return parseReleasePolicy(json);
  } catch {
    return undefined;
  }
}

/**
 * The privacy ledger over HTTP, for operators and auditors:
 * - `GET /v1/privacy/budgets?delta=`: per participant its budgets, composed spending and
 *   what remains; and the hub's data as a whole (every DP release composed) at `delta`.
 * - `GET /v1/privacy/ledger?participant=&limit=&before=`: ledger entries, newest first.
 * Both reads are written to the access log.
 */
export function registerPrivacyRoutes(
  app: FastifyInstance,
  prisma: PrismaClient,
  { allow, logAllowed }: RouteHelpers,
): void {
  app.get<{ Querystring: { delta?: number } }>(
    '/v1/privacy/budgets',
    {
      onRequest: allow(['operator', 'auditor'], 'privacy.budgets'),
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { delta: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } },
        },
      },
    },
    async (request) => {
      const report = await privacyBudgets(prisma, policyOrNothing, request.query.delta ?? 1e-5);
      await logAllowed(request, 'privacy.budgets', 'privacy:budgets', {
        participants: report.participants.length,
      });
      return report;
    },
  );

  app.get<{ Querystring: { participant?: string; limit?: number; before?: string } }>(
    '/v1/privacy/ledger',
    {
      onRequest: allow(['operator', 'auditor'], 'privacy.ledger'),
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            participant: PARTICIPANT,
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            before: { type: 'string', format: 'date-time' },
          },
        },
      },
    },
    async (request) => {
      const { participant, limit, before } = request.query;
      const entries = await listLedger(prisma, {
        ...(participant ? { participant } : {}),
        ...(limit ? { limit } : {}),
        ...(before ? { before: new Date(before) } : {}),
      });
      await logAllowed(request, 'privacy.ledger', 'privacy:ledger', {
        ...(participant ? { participant } : {}),
        returned: entries.length,
      });
      return { entries };
    },
  );
}
