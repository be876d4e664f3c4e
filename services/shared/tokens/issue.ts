import { randomUUID } from 'node:crypto';
import { exportJWK, importPKCS8, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { fail } from '../errors.js';
import { isRole, ROLES, type Role } from './roles.js';
import { keyIdOfJwk, TOKEN_ALGORITHM } from './signing-key.js';

/** `typ` header of access tokens (RFC 9068 section 2.1), checked by the verifier. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

/** Options of {@link issueAccessToken}. */
export interface IssueAccessTokenOptions {
  /** PKCS#8 PEM of the ES256 signing key. */
  privateKeyPem: string;
  /** `iss`: who issues the token, usually the hub's URL. */
  issuer: string;
  /** `aud`: the API the token is for. */
  audience: string | string[];
  /** `sub`: the person or tool the token speaks for. */
  subject: string;
  /** `role` claim. */
  role: Role;
  /** Lifetime in seconds; default 900. */
  ttlSeconds?: number;
  /** Further claims; the registered claims and `role` cannot be overridden. */
  extraClaims?: Record<string, unknown>;
}

/**
 * The longest an operator or auditor token may live: 30 days. There is no way to revoke one
 * token short of rotating the consortium key, so a stolen token must at least run out; the
 * hub's verifier refuses a token whose lifetime is longer.
 */
export const MAX_API_TOKEN_TTL_SECONDS = 30 * 24 * 3600;

const RESERVED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'role']);

/**
 * Issues an ES256 access token: `iss`, `sub`, `aud`, `role`, `iat`, `nbf`, `exp` and a random
 * `jti`, with `kid` (the key's RFC 7638 thumbprint) and `typ: at+jwt` in the header. Options
 * are checked, and a bad one is a TypeError naming it.
 */
export async function issueAccessToken(options: IssueAccessTokenOptions): Promise<string> {
  const { issuer, audience, subject, role, ttlSeconds = 900, extraClaims = {} } = options;
  requireText(issuer, 'issuer');
  if (Array.isArray(audience)) audience.forEach((a, i) => requireText(a, `audience[${i}]`));
  else requireText(audience, 'audience');
  requireText(subject, 'subject');
  if (!isRole(role)) {
    throw new TypeError(`issueAccessToken: options.role must be one of ${ROLES.join(', ')}`);
  }
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError('issueAccessToken: options.ttlSeconds must be a positive integer');
  }
  if (ttlSeconds > MAX_API_TOKEN_TTL_SECONDS) {
    throw fail('TOKEN_LIFETIME_TOO_LONG', {
      role,
      max: MAX_API_TOKEN_TTL_SECONDS,
      days: MAX_API_TOKEN_TTL_SECONDS / 86_400,
      ttl: ttlSeconds,
    });
  }
  for (const claim of Object.keys(extraClaims)) {
    if (RESERVED_CLAIMS.has(claim)) {
      throw new TypeError(`issueAccessToken: options.extraClaims.${claim} is reserved`);
    }
  }

  const { key, kid } = await importSigningKey(options.privateKeyPem);
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { ...extraClaims, role };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(subject)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + ttlSeconds)
    .setJti(randomUUID())
    .sign(key);
}

async function importSigningKey(pem: unknown): Promise<{ key: CryptoKey; kid: string }> {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN PRIVATE KEY-----')) {
    throw new TypeError('issueAccessToken: options.privateKeyPem must be a PKCS#8 PEM');
  }
  let key: CryptoKey;
  try {
    // Extractable only so that the public members can be read for the key id.
    key = await importPKCS8(pem, TOKEN_ALGORITHM, { extractable: true });
  } catch (err) {
    throw new TypeError('issueAccessToken: options.privateKeyPem is not an ES256 key', {
      cause: err,
    });
  }
  return { key, kid: await keyIdOfJwk(await exportJWK(key)) };
}

function requireText(value: unknown, field: string): void {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`issueAccessToken: options.${field} must be a non-empty string`);
  }
}
