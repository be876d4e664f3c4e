import { describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { parseReleasePolicy, periodStart } from '../../services/shared/privacy/policy.js';

function message(json: unknown): string {
  try {
    parseReleasePolicy(json);
  } catch (err) {
    expect(hasCode(err, 'PRIVACY_POLICY_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('policy was accepted');
}

describe('release policy schema', () => {
  it('reads the empty policy as the plain grant', () => {
    expect(parseReleasePolicy({})).toEqual({ release: 'logits', period: 'day', queryMode: false });
    expect(parseReleasePolicy(null)).toEqual({
      release: 'logits',
      period: 'day',
      queryMode: false,
    });
  });

  it('fills in DP defaults', () => {
    const policy = parseReleasePolicy({
      release: 'label',
      queryMode: true,
      rowCap: 1000,
      period: 'week',
      dp: { mechanism: 'pate', epsilon: 1, delta: 1e-6 },
      budget: { epsilon: 8, delta: 1e-5 },
    });
    expect(policy.dp).toEqual({
      mechanism: 'pate',
      epsilon: 1,
      delta: 1e-6,
      clip: 1,
      teachers: 20,
    });
    expect(policy.rowCap).toBe(1000);
  });

  it('names the bad field in its errors', () => {
    expect(message({ release: 'everything' })).toMatch(/^invalid release policy: release:/);
    expect(message({ release: 'topk' })).toMatch(/k: release "topk" needs k/);
    expect(message({ k: 2 })).toMatch(/k: k is only meaningful with release "topk"/);
    expect(message({ rowCap: 0 })).toMatch(/rowCap:/);
    expect(message({ unknown: 1 })).toMatch(/unrecognized key|unknown/i);
    expect(
      message({ release: 'label', dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-6 } }),
    ).toMatch(/budget: dp needs a budget/);
    expect(
      message({
        release: 'logits',
        dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-6 },
        budget: { epsilon: 4, delta: 1e-5 },
      }),
    ).toMatch(/release: dp releases noisy probabilities, not logits/);
    expect(
      message({
        release: 'label',
        dp: { mechanism: 'gaussian', epsilon: -1, delta: 1e-6 },
        budget: { epsilon: 4, delta: 1e-5 },
      }),
    ).toMatch(/dp\.epsilon:/);
    expect(
      message({
        release: 'label',
        dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-4 },
        budget: { epsilon: 4, delta: 1e-5 },
      }),
    ).toMatch(/dp\.delta: dp\.delta of one release cannot exceed budget\.delta/);
    expect(message({ budget: { epsilon: 1, delta: 1e-5 } })).toMatch(/a budget needs dp/);
    expect(message({ temperatureFloor: 2 })).toMatch(
      /temperatureFloor: a temperature floor applies/,
    );
  });
});

describe('periodStart', () => {
  const now = new Date('2026-12-03T19:41:12.345Z'); // a Thursday
  it('starts each period in UTC', () => {
    expect(periodStart('hour', now).toISOString()).toBe('2026-12-03T19:00:00.000Z');
    expect(periodStart('day', now).toISOString()).toBe('2026-12-03T00:00:00.000Z');
    expect(periodStart('week', now).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(periodStart('month', now).toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(periodStart('total', now).getTime()).toBe(0);
    expect(periodStart('week', new Date('2026-11-30T00:00:00Z')).toISOString()).toBe(
      '2026-11-30T00:00:00.000Z',
    );
  });
});
