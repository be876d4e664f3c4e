import { randomUUID } from 'node:crypto';
import type { Prisma, PrismaClient } from '../generated/prisma/client.js';
import { fail, type DistilleryError } from '../shared/errors.js';
import { periodStart, type ReleasePolicy } from '../shared/privacy/policy.js';
import {
  composeRdp,
  DEFAULT_ORDERS,
  emptyRdp,
  rdpToEpsilon,
  type RdpCurve,
} from '../shared/privacy/rdp-accountant.js';
import { APPEND_TX_OPTIONS, appendAccessInTx } from './access-log.js';
import type { RegistryDb } from './database.js';

/**
 * The privacy ledger: every release to a participant with the RDP curve it spends. A
 * participant's spending is the composition (sum at each RDP order) of all its entries,
 * whatever grant they came under; the hub's data as a whole has spent the composition of
 * every entry of every participant (what colluding participants together learn).
 */

type LedgerRow = Prisma.PrivacyLedgerEntryGetPayload<object>;

/** What a release asks to be charged. */
export interface ReleaseCharge {
  participant: string;
  grantId: string;
  stream: string;
  /** The grant's validated policy: its budget and row cap decide. */
  policy: ReleasePolicy;
  mechanism: 'gaussian' | 'pate' | 'none';
  parameters: Record<string, unknown>;
  rows: number;
  /** The release's own RDP curve; null for a release without noise. */
  rdp: RdpCurve | null;
  /** Access-log fields of the decision. */
  action: string;
  resource: string;
  peerAddress?: string | null;
}

/** A release the ledger allowed. */
export interface ChargedRelease {
  releaseId: string;
  /** ε of this release alone at the budget's δ (0 without DP). */
  epsilon: number;
  delta: number;
  /** The participant's composed spending after this release, at the budget's δ. */
  spent: number;
  /** Budget ε left (0 without a budget). */
  remaining: number;
}

function curveOf(row: Pick<LedgerRow, 'id' | 'orders' | 'rdp'>): RdpCurve {
  const orders = row.orders;
  if (orders.length !== DEFAULT_ORDERS.length || orders.some((a, i) => a !== DEFAULT_ORDERS[i])) {
    // Entries are written by this module on DEFAULT_ORDERS; others cannot be added safely.
    throw fail('CONFIG_INVALID', {
      detail: `privacy ledger entry ${row.id} was recorded on other RDP orders than this hub uses`,
    });
  }
  return { orders: DEFAULT_ORDERS, rdp: Float64Array.from(row.rdp) };
}

/** The composed RDP curve of `entries`. */
function compose(entries: Pick<LedgerRow, 'id' | 'orders' | 'rdp'>[]): RdpCurve {
  return composeRdp(emptyRdp(), ...entries.map(curveOf));
}

/**
 * Decides a release against the grant's row cap and the participant's budget, and records
 * the decision: the ledger entry and an `allowed` access-log entry when it goes ahead, a
 * `denied` access-log entry when it does not, in one transaction. The participant's row is
 * locked for the transaction, so concurrent releases to one participant are charged one
 * after the other and cannot overspend together.
 *
 * @throws PRIVACY_ROW_CAP_EXCEEDED or PRIVACY_BUDGET_EXHAUSTED (after logging the refusal)
 */
export async function chargeRelease(
  prisma: PrismaClient,
  charge: ReleaseCharge,
  now = new Date(),
): Promise<ChargedRelease> {
  const releaseId = randomUUID();
  const outcome = await prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT 1 FROM "participant" WHERE "id" = ${charge.participant} FOR UPDATE`;
    const { policy } = charge;
    const refuse = async (err: DistilleryError) => {
      await appendAccessInTx(tx, {
        actor: charge.participant,
        action: charge.action,
        resource: charge.resource,
        outcome: 'denied',
        reason: err.message,
        peerAddress: charge.peerAddress ?? null,
        detail: { rows: charge.rows, mechanism: charge.mechanism, grant: charge.grantId },
      });
      return { refused: err } as const;
    };

    if (policy.rowCap !== undefined) {
      const since = periodStart(policy.period, now);
      const used = await tx.privacyLedgerEntry.aggregate({
        where: { grantId: charge.grantId, at: { gte: since } },
        _sum: { rows: true },
      });
      const usedRows = used._sum.rows ?? 0;
      if (usedRows + charge.rows > policy.rowCap) {
        return refuse(
          fail('PRIVACY_ROW_CAP_EXCEEDED', {
            participant: charge.participant,
            cap: policy.rowCap,
            period: policy.period,
            used: usedRows,
            asked: charge.rows,
          }),
        );
      }
    }

    const delta = policy.budget?.delta ?? policy.dp?.delta ?? 0;
    let epsilon = 0;
    let spent = 0;
    let remaining = 0;
    if (charge.rdp && policy.budget) {
      const previous = await tx.privacyLedgerEntry.findMany({
        where: { participantId: charge.participant, mechanism: { not: 'none' } },
        select: { id: true, orders: true, rdp: true },
      });
      const before = compose(previous);
      const after = composeRdp(before, charge.rdp);
      epsilon = rdpToEpsilon(charge.rdp, delta).epsilon;
      spent = rdpToEpsilon(after, delta).epsilon;
      const budget = policy.budget.epsilon;
      if (spent > budget) {
        const already = previous.length === 0 ? 0 : rdpToEpsilon(before, delta).epsilon;
        return refuse(
          fail('PRIVACY_BUDGET_EXHAUSTED', {
            participant: charge.participant,
            needed: epsilon.toPrecision(4),
            delta,
            remaining: Math.max(0, budget - already).toPrecision(4),
            budget,
          }),
        );
      }
      remaining = budget - spent;
    }

    await tx.privacyLedgerEntry.create({
      data: {
        id: releaseId,
        participantId: charge.participant,
        grantId: charge.grantId,
        releaseId,
        streamName: charge.stream,
        mechanism: charge.mechanism,
        parameters: charge.parameters as Prisma.InputJsonValue,
        rows: charge.rows,
        epsilon: charge.rdp ? epsilon : null,
        delta: charge.rdp ? delta : null,
        orders: [...(charge.rdp?.orders ?? DEFAULT_ORDERS)],
        rdp: charge.rdp ? Array.from(charge.rdp.rdp) : new Array(DEFAULT_ORDERS.length).fill(0),
        at: now,
      },
    });
    await appendAccessInTx(tx, {
      actor: charge.participant,
      action: charge.action,
      resource: charge.resource,
      outcome: 'allowed',
      peerAddress: charge.peerAddress ?? null,
      detail: {
        release: releaseId,
        rows: charge.rows,
        mechanism: charge.mechanism,
        grant: charge.grantId,
        ...(charge.rdp ? { epsilon, delta, spent, remaining } : {}),
      },
    });
    return { releaseId, epsilon, delta, spent, remaining } as const;
  }, APPEND_TX_OPTIONS);
  if ('refused' in outcome) throw outcome.refused;
  return outcome;
}

/** A ledger entry in its JSON-safe shape. */
export function ledgerEntrySummary(row: LedgerRow) {
  return {
    id: row.id,
    participant: row.participantId,
    grant: row.grantId,
    releaseId: row.releaseId,
    stream: row.streamName,
    mechanism: row.mechanism,
    parameters: row.parameters,
    rows: row.rows,
    epsilon: row.epsilon,
    delta: row.delta,
    at: row.at.toISOString(),
  };
}

/** Ledger entries, newest first, optionally of one participant; `before` pages by id. */
export async function listLedger(
  db: RegistryDb,
  filter: { participant?: string; limit?: number; before?: Date } = {},
) {
  const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
  const rows = await db.privacyLedgerEntry.findMany({
    where: {
      ...(filter.participant ? { participantId: filter.participant } : {}),
      ...(filter.before ? { at: { lt: filter.before } } : {}),
    },
    orderBy: [{ at: 'desc' }, { id: 'asc' }],
    take: limit,
  });
  return rows.map(ledgerEntrySummary);
}

/** What one participant has spent against its budget. */
export interface ParticipantBudget {
  participant: string;
  /** The budgets of its active grants with DP (the tightest is the one that binds). */
  budgets: { grant: string; stream: string; epsilon: number; delta: number }[];
  releases: number;
  rows: number;
  /** Composed spending at the tightest budget's δ (or `delta` when it has none). */
  spent: { epsilon: number; delta: number };
  /** Tightest budget ε minus spending; null without a budget. */
  remaining: number | null;
}

/**
 * Budgets and spending of every participant with a DP grant or a ledger entry, and the
 * composed spending of the hub's data as a whole at `delta`.
 */
export async function privacyBudgets(
  db: RegistryDb,
  parse: (policy: unknown) => ReleasePolicy | undefined,
  delta = 1e-5,
  now = new Date(),
) {
  const grants = await db.grant.findMany({
    where: { revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
    orderBy: [{ participantId: 'asc' }, { createdAt: 'asc' }],
  });
  const entries = await db.privacyLedgerEntry.findMany({
    select: { id: true, participantId: true, orders: true, rdp: true, rows: true, mechanism: true },
  });
  const participants = new Set([
    ...entries.map((e) => e.participantId),
    ...grants.filter((g) => parse(g.policy)?.budget).map((g) => g.participantId),
  ]);
  const result: ParticipantBudget[] = [];
  for (const participant of [...participants].sort()) {
    const budgets = grants
      .filter((g) => g.participantId === participant)
      .flatMap((g) => {
        const budget = parse(g.policy)?.budget;
        return budget ? [{ grant: g.id, stream: g.streamName, ...budget }] : [];
      });
    const own = entries.filter((e) => e.participantId === participant);
    const tightest = budgets.reduce<(typeof budgets)[number] | undefined>(
      (best, b) => (best === undefined || b.epsilon < best.epsilon ? b : best),
      undefined,
    );
    const at = tightest?.delta ?? delta;
    const spent = rdpToEpsilon(compose(own.filter((e) => e.mechanism !== 'none')), at).epsilon;
    result.push({
      participant,
      budgets,
      releases: own.length,
      rows: own.reduce((sum, e) => sum + e.rows, 0),
      spent: { epsilon: spent, delta: at },
      remaining: tightest ? Math.max(0, tightest.epsilon - spent) : null,
    });
  }
  const all = entries.filter((e) => e.mechanism !== 'none');
  return {
    participants: result,
    hub: {
      epsilon: rdpToEpsilon(compose(all), delta).epsilon,
      delta,
      releases: entries.length,
      rows: entries.reduce((sum, e) => sum + e.rows, 0),
      // Releases without noise have no finite ε: the hub-wide figure covers DP releases only.
      releasesWithoutNoise: entries.length - all.length,
    },
  };
}
