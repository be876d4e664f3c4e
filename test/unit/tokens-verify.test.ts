import { createHmac } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, importPKCS8 } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { DistilleryError, hasCode } from '../../services/shared/errors.js';
import {
  createTokenVerifier,
  generateSigningKey,
  issueAccessToken,
  type SigningKeyMaterial,
  type TokenVerifier,
} from '../../services/shared/tokens/index.js';
import { MAX_API_TOKEN_TTL_SECONDS } from '../../services/shared/tokens/issue.js';

const ISSUER = 'https://hub.test';
const AUDIENCE = 'distillery-api';

let key: SigningKeyMaterial;
let otherKey: SigningKeyMaterial;
let verifier: TokenVerifier;

beforeAll(async () => {
  key = await generateSigningKey();
  otherKey = await generateSigningKey();
  verifier = createTokenVerifier({
    publicKeyPem: key.publicKeyPem,
    issuer: ISSUER,
    audience: AUDIENCE,
  });
});

function issue(overrides: Partial<Parameters<typeof issueAccessToken>[0]> = {}) {
  return issueAccessToken({
    privateKeyPem: key.privateKeyPem,
    issuer: ISSUER,
    audience: AUDIENCE,
    subject: 'alice',
    role: 'operator',
    ...overrides,
  });
}

/** Signs arbitrary claims with the test key, for tokens issueAccessToken refuses to make. */
async function signClaims(claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const privateKey = await importPKCS8(key.privateKeyPem, 'ES256');
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', ...header })
    .sign(privateKey);
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The reason of the TOKEN_INVALID error a verification ends in. */
async function refusal(token: string, using: TokenVerifier = verifier): Promise<string> {
  const err = await using.verify(token).then(
    () => null,
    (e: unknown) => e,
  );
  expect(hasCode(err, 'TOKEN_INVALID'), `expected TOKEN_INVALID, got ${String(err)}`).toBe(true);
  const reason = String((err as DistilleryError).params.reason);
  expect((err as Error).message).not.toContain(token);
  return reason;
}

describe('issueAccessToken and createTokenVerifier, round trip', () => {
  it('verifies a token it issued and returns subject, role and claims', async () => {
    const token = await issue({ extraClaims: { org: 'hub-ops' } });
    const result = await verifier.verify(token);
    expect(result.subject).toBe('alice');
    expect(result.role).toBe('operator');
    expect(result.claims).toMatchObject({ iss: ISSUER, aud: AUDIENCE, org: 'hub-ops' });
  });

  it('sets iat, nbf, exp 900 s later and a unique jti', async () => {
    const a = (await verifier.verify(await issue())).claims;
    const b = (await verifier.verify(await issue())).claims;
    expect(a.exp! - a.iat!).toBe(900);
    expect(a.nbf).toBe(a.iat);
    expect(Math.abs(a.iat! - nowSeconds())).toBeLessThanOrEqual(2);
    expect(a.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.jti).not.toBe(b.jti);
  });

  it('puts ES256, at+jwt and the key thumbprint in the header', async () => {
    const header = decodeProtectedHeader(await issue());
    expect(header).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: key.kid });
    expect(key.jwks.keys[0]?.kid).toBe(key.kid);
  });

  it('accepts a token expired within the clock tolerance', async () => {
    const now = nowSeconds();
    const token = await signClaims({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'a',
      role: 'auditor',
      exp: now - 10,
    });
    expect((await verifier.verify(token)).role).toBe('auditor');
  });

  it('refuses to let extraClaims override a registered claim', async () => {
    await expect(issue({ extraClaims: { aud: 'elsewhere' } })).rejects.toThrow(/extraClaims\.aud/);
    await expect(issue({ extraClaims: { role: 'operator' } })).rejects.toThrow(TypeError);
  });
});

describe('createTokenVerifier, refused tokens', () => {
  it('refuses a token expired beyond the tolerance', async () => {
    const now = nowSeconds();
    const token = await signClaims({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'a',
      role: 'auditor',
      exp: now - 31,
    });
    expect(await refusal(token)).toBe('token has expired');
  });

  it('refuses a token without exp', async () => {
    const token = await signClaims({ iss: ISSUER, aud: AUDIENCE, sub: 'a', role: 'auditor' });
    expect(await refusal(token)).toBe('no exp claim');
  });

  it('refuses a token for another audience', async () => {
    expect(await refusal(await issue({ audience: 'someone-else' }))).toBe('audience mismatch');
  });

  it('refuses a token from another issuer', async () => {
    expect(await refusal(await issue({ issuer: 'https://evil.test' }))).toBe('issuer mismatch');
  });

  it('refuses a token that is not yet valid', async () => {
    const now = nowSeconds();
    const claims = {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'a',
      role: 'auditor',
      nbf: now + 120,
      exp: now + 900,
    };
    expect(await refusal(await signClaims(claims))).toBe('token is not yet valid');
  });

  it('refuses an unsigned alg:none token', async () => {
    const exp = nowSeconds() + 900;
    const header = base64url({ alg: 'none', typ: 'at+jwt' });
    const payload = base64url({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'mallory',
      role: 'operator',
      exp,
    });
    expect(await refusal(`${header}.${payload}.`)).toMatch(/^algorithm not allowed/);
  });

  it('refuses an HS256 token keyed with the public key PEM', async () => {
    const exp = nowSeconds() + 900;
    const header = base64url({ alg: 'HS256', typ: 'at+jwt' });
    const payload = base64url({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'mallory',
      role: 'operator',
      exp,
    });
    const mac = createHmac('sha256', Buffer.from(key.publicKeyPem))
      .update(`${header}.${payload}`)
      .digest('base64url');
    expect(await refusal(`${header}.${payload}.${mac}`)).toMatch(/^algorithm not allowed/);
  });

  it('refuses a token signed by another key', async () => {
    const token = await issue({ privateKeyPem: otherKey.privateKeyPem });
    expect(await refusal(token)).toBe('signature does not verify with the configured key');
  });

  it('refuses a token whose payload was altered', async () => {
    const [header, , signature] = (await issue({ role: 'auditor' })).split('.');
    const payload = base64url({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'alice',
      role: 'operator',
      exp: nowSeconds() + 900,
    });
    expect(await refusal(`${header}.${payload}.${signature}`)).toBe(
      'signature does not verify with the configured key',
    );
  });

  it('refuses an unknown role', async () => {
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'a', role: 'admin', exp: nowSeconds() + 900 };
    expect(await refusal(await signClaims(claims))).toBe(
      'role claim must be one of operator, auditor, participant',
    );
  });

  it('refuses a token without a subject', async () => {
    const claims = { iss: ISSUER, aud: AUDIENCE, role: 'operator', exp: nowSeconds() + 900 };
    expect(await refusal(await signClaims(claims))).toBe('no sub claim');
  });

  it('refuses a JWT of another type signed by the same key', async () => {
    const claims = {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'a',
      role: 'operator',
      exp: nowSeconds() + 900,
    };
    expect(await refusal(await signClaims(claims, { typ: 'JWT' }))).toMatch(/^not an access token/);
  });

  it('refuses text that is not a JWS', async () => {
    expect(await refusal('not.a.token')).toBe('malformed token; expected a compact JWS');
    expect(await refusal('abc')).toBe('malformed token; expected a compact JWS');
  });
});

describe('createTokenVerifier, options', () => {
  it('rejects a public key that is not P-256, naming the option', () => {
    expect(() =>
      createTokenVerifier({ publicKeyPem: 'nope', issuer: ISSUER, audience: AUDIENCE }),
    ).toThrow(/options\.publicKeyPem/);
  });

  it('rejects an empty audience, naming the option', () => {
    expect(() =>
      createTokenVerifier({ publicKeyPem: key.publicKeyPem, issuer: ISSUER, audience: '' }),
    ).toThrow(/options\.audience/);
  });
});

describe('API token lifetime', () => {
  it('refuses to mint a token living longer than 30 days, naming the maximum', async () => {
    const err = await issue({ ttlSeconds: MAX_API_TOKEN_TTL_SECONDS + 1 }).catch((e) => e);
    expect(hasCode(err, 'TOKEN_LIFETIME_TOO_LONG')).toBe(true);
    expect(err.message).toMatch(/at most 2592000 seconds \(30 days\)/);
    expect(
      await verifier.verify(await issue({ ttlSeconds: MAX_API_TOKEN_TTL_SECONDS })),
    ).toBeTruthy();
  });

  it('refuses a signed token whose exp lies further than 30 days from iat or from now', async () => {
    const now = nowSeconds();
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'a', role: 'auditor' };
    for (const token of [
      await signClaims({ ...claims, iat: now, exp: now + MAX_API_TOKEN_TTL_SECONDS + 60 }),
      await signClaims({ ...claims, iat: now, exp: 1e308 }),
      // Without iat, the lifetime counts from now.
      await signClaims({ ...claims, exp: now + 10 * MAX_API_TOKEN_TTL_SECONDS }),
      // An old iat with an exp inside 30 days from now still claims a lifetime of years.
      await signClaims({ ...claims, iat: now - 400 * 86_400, exp: now + 3600 }),
    ]) {
      expect(await refusal(token)).toMatch(/lifetime exceeds the maximum of 2592000 seconds/);
    }
  });
});
