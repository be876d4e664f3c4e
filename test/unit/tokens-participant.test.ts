import { describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import {
  createParticipantTokenVerifier,
  generateHubSigningKey,
  issueParticipantToken,
} from '../../services/shared/tokens/index.js';
import { decodeJwt } from 'jose';

describe('certificate-bound participant tokens', () => {
  it('round-trips with the cnf thumbprint, five-minute exp and the knowledge audience', async () => {
    const key = await generateHubSigningKey();
    const { token, expiresAt } = await issueParticipantToken({
      key: key.privateKey,
      kid: key.kid,
      issuer: 'hub',
      participant: 'bank-a',
      x5tS256: 'thumb-a',
    });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      sub: 'bank-a',
      aud: 'distillery:knowledge',
      cnf: { 'x5t#S256': 'thumb-a' },
    });
    expect(expiresAt - (claims.iat as number)).toBe(300);
    const verifier = createParticipantTokenVerifier({ key: key.publicKey, issuer: 'hub' });
    expect((await verifier.verify(token, 'thumb-a')).participant).toBe('bank-a');
  });

  it('refuses the token with another certificate, and another key’s verifier', async () => {
    const key = await generateHubSigningKey();
    const other = await generateHubSigningKey();
    const { token } = await issueParticipantToken({
      key: key.privateKey,
      kid: key.kid,
      issuer: 'hub',
      participant: 'bank-a',
      x5tS256: 'thumb-a',
    });
    const verifier = createParticipantTokenVerifier({ key: key.publicKey, issuer: 'hub' });
    const mismatch = await verifier.verify(token, 'thumb-b').catch((e: unknown) => e);
    expect(hasCode(mismatch, 'TOKEN_CERT_MISMATCH')).toBe(true);
    const wrongKey = await createParticipantTokenVerifier({ key: other.publicKey, issuer: 'hub' })
      .verify(token, 'thumb-a')
      .catch((e: unknown) => e);
    expect(hasCode(wrongKey, 'TOKEN_INVALID')).toBe(true);
  });

  it('refuses an expired token beyond the tolerance it was given', async () => {
    const key = await generateHubSigningKey();
    const { token } = await issueParticipantToken({
      key: key.privateKey,
      kid: key.kid,
      issuer: 'hub',
      participant: 'bank-a',
      x5tS256: 't',
      ttlSeconds: 60,
      now: new Date(Date.now() - 120_000),
    });
    const strict = createParticipantTokenVerifier({
      key: key.publicKey,
      issuer: 'hub',
      clockToleranceSeconds: 10,
    });
    expect(((await strict.verify(token, 't').catch((e: unknown) => e)) as Error).message).toMatch(
      /expired/,
    );
    const lenient = createParticipantTokenVerifier({
      key: key.publicKey,
      issuer: 'hub',
      clockToleranceSeconds: 90,
    });
    expect((await lenient.verify(token, 't')).participant).toBe('bank-a');
  });
});
