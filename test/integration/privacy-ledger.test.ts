import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { calibrateEnsembleRelease } from '../../services/shared/privacy/aggregate.js';
import { parseReleasePolicy } from '../../services/shared/privacy/policy.js';
import { composeRdp, rdpToEpsilon } from '../../services/shared/privacy/rdp-accountant.js';
import { enrolParticipant } from '../../services/registry/participants.js';
import { createGrant } from '../../services/registry/grants.js';
import { verifyAccessChain } from '../../services/registry/access-log.js';
import {
  chargeRelease,
  listLedger,
  privacyBudgets,
  type ReleaseCharge,
} from '../../services/registry/privacy-ledger.js';
import { registryTargets, type TestRegistry } from '../helpers/database.js';

const policy = parseReleasePolicy({
  release: 'label',
  queryMode: true,
  rowCap: 5000,
  period: 'day',
  dp: { mechanism: 'pate', epsilon: 0.5, delta: 1e-6, teachers: 10 },
  budget: { epsilon: 2, delta: 1e-5 },
});
const release = calibrateEnsembleRelease({
  mechanism: 'pate',
  epsilon: 0.5,
  delta: 1e-6,
  rows: 50,
  teachers: 10,
});

describe.each(registryTargets())('privacy ledger ($name)', (target) => {
  let db: TestRegistry;
  let grantId: string;
  const charge = (over: Partial<ReleaseCharge> = {}): ReleaseCharge => ({
    participant: 'bank-a',
    grantId,
    stream: 'default',
    policy,
    mechanism: 'pate',
    parameters: { sigma: release.sigma },
    rows: 50,
    rdp: release.rdp,
    action: 'query',
    resource: 'stream:default',
    ...over,
  });

  beforeAll(async () => {
    db = await target.open();
    await enrolParticipant(db.prisma, { id: 'bank-a' });
    await enrolParticipant(db.prisma, { id: 'bank-b' });
    grantId = (
      await createGrant(
        db.prisma,
        { participantId: 'bank-a', stream: 'default', kinds: ['probabilities'], policy },
        { actor: 'test' },
      )
    ).id;
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('charges releases one after another even when they arrive together', async () => {
    // How many releases of this kind fit the budget, by the accountant itself.
    let fit = 0;
    let curve = release.rdp;
    while (rdpToEpsilon(curve, 1e-5).epsilon <= 2) {
      fit++;
      curve = composeRdp(curve, release.rdp);
    }
    expect(fit).toBeGreaterThan(2);
    expect(fit * 50).toBeLessThan(5000); // the budget binds before the row cap
    const results = await Promise.allSettled(
      Array.from({ length: fit + 3 }, () => chargeRelease(db.prisma, charge())),
    );
    const allowed = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(allowed).toHaveLength(fit);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(hasCode((r as PromiseRejectedResult).reason, 'PRIVACY_BUDGET_EXHAUSTED')).toBe(true);
    }
    const spent = Math.max(
      ...allowed.map((r) => (r as PromiseFulfilledResult<{ spent: number }>).value.spent),
    );
    expect(spent).toBeLessThanOrEqual(2);
    expect(spent).toBeCloseTo(
      rdpToEpsilon(composeRdp(...Array(fit).fill(release.rdp)), 1e-5).epsilon,
      9,
    );
    const log = await db.prisma.accessLogEntry.findMany({ where: { action: 'query' } });
    expect(log.filter((e) => e.outcome === 'allowed')).toHaveLength(fit);
    expect(log.filter((e) => e.outcome === 'denied')).toHaveLength(3);
    expect((await verifyAccessChain(db.prisma)).ok).toBe(true);
  });

  it('counts rows against the cap per period, releases without noise included', async () => {
    const plain = parseReleasePolicy({
      release: 'label',
      queryMode: true,
      rowCap: 120,
      period: 'hour',
    });
    const grant = await createGrant(
      db.prisma,
      { participantId: 'bank-b', stream: 'default', kinds: ['probabilities'], policy: plain },
      { actor: 'test' },
    );
    const at = new Date('2026-12-03T10:15:00Z');
    const base = charge({
      participant: 'bank-b',
      grantId: grant.id,
      policy: plain,
      mechanism: 'none',
      rdp: null,
      rows: 100,
    });
    await chargeRelease(db.prisma, base, at);
    let caught: unknown;
    try {
      await chargeRelease(db.prisma, { ...base, rows: 21 }, new Date('2026-12-03T10:59:00Z'));
    } catch (err) {
      caught = err;
    }
    expect(hasCode(caught, 'PRIVACY_ROW_CAP_EXCEEDED')).toBe(true);
    expect((caught as Error).message).toBe(
      'bank-b may receive 120 rows per hour; 100 were released already and this call asks for 21',
    );
    // The next hour starts afresh.
    await chargeRelease(db.prisma, base, new Date('2026-12-03T11:00:00Z'));
    const entries = await listLedger(db.prisma, { participant: 'bank-b' });
    expect(entries.map((e) => e.rows)).toEqual([100, 100]);
    expect(entries[0].epsilon).toBeNull();
  });

  it('reports each participant budget and the hub-wide composition', async () => {
    const report = await privacyBudgets(db.prisma, (json) => parseReleasePolicy(json), 1e-5);
    const a = report.participants.find((p) => p.participant === 'bank-a')!;
    expect(a.budgets).toEqual([{ grant: grantId, stream: 'default', epsilon: 2, delta: 1e-5 }]);
    expect(a.spent.epsilon).toBeLessThanOrEqual(2);
    expect(a.remaining).toBeCloseTo(2 - a.spent.epsilon, 9);
    const b = report.participants.find((p) => p.participant === 'bank-b')!;
    expect(b.spent.epsilon).toBe(0);
    expect(b.remaining).toBeNull();
    expect(report.hub.epsilon).toBeCloseTo(a.spent.epsilon, 9);
    expect(report.hub.releasesWithoutNoise).toBe(2);
  });
});
