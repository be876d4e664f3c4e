import { describe, expect, it } from 'vitest';
import { DistilleryError, hasCode } from '../../services/shared/errors.js';
import { parseBearer, requireRole } from '../../services/shared/tokens/index.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return null;
}

describe('parseBearer', () => {
  it('returns the token of a Bearer header, whatever the scheme case', () => {
    expect(parseBearer('Bearer abc.def-_~+/=')).toBe('abc.def-_~+/=');
    expect(parseBearer('bearer   abc.def.ghi ')).toBe('abc.def.ghi');
  });

  it('gives TOKEN_MISSING without a bearer token', () => {
    for (const header of [
      undefined,
      '',
      'Bearer',
      'Bearer   ',
      'Basic dXNlcjpwYXNz',
      'Bearerabc',
    ]) {
      expect(
        hasCode(
          thrown(() => parseBearer(header)),
          'TOKEN_MISSING',
        ),
        String(header),
      ).toBe(true);
    }
  });

  it('gives TOKEN_INVALID for characters a bearer token cannot hold', () => {
    const err = thrown(() => parseBearer('Bearer abc def'));
    expect(hasCode(err, 'TOKEN_INVALID')).toBe(true);
    expect((err as Error).message).not.toContain('abc');
  });
});

describe('requireRole', () => {
  it('passes an allowed role', () => {
    expect(() =>
      requireRole({ role: 'auditor' }, ['auditor', 'operator'], 'read the log'),
    ).not.toThrow();
  });

  it('gives TOKEN_ROLE naming the action and the roles needed', () => {
    const err = thrown(() => requireRole({ role: 'auditor' }, ['operator'], 'publish a version'));
    expect(hasCode(err, 'TOKEN_ROLE')).toBe(true);
    expect((err as DistilleryError).message).toBe(
      'role "auditor" may not publish a version; it needs one of: operator',
    );
    expect((err as DistilleryError).httpStatus).toBe(403);
  });
});
