import { createPublicKey, type KeyObject } from 'node:crypto';
import { jwtVerify, type JWTPayload } from 'jose';
import { fail } from '../errors.js';
import { ACCESS_TOKEN_TYPE, MAX_API_TOKEN_TTL_SECONDS } from './issue.js';
import { isRole, ROLES, type Role } from './roles.js';
import { TOKEN_ALGORITHM } from './signing-key.js';

/** Options of {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  /** SPKI PEM ("PUBLIC KEY") of the ES256 signing key. */
  publicKeyPem: string;
  /** The `iss` every token must carry. */
  issuer: string;
  /** The `aud` every token must carry (one of them, when the token lists several). */
  audience: string;
  /** Leeway for `exp` and `nbf` against clock skew, in seconds; default 30. */
  clockToleranceSeconds?: number;
  /** Longest lifetime accepted (exp after iat, and after now), in seconds; default 30 days. */
  maxLifetimeSeconds?: number;
}

/** What a verified token says. */
export interface VerifiedToken {
  /** `sub`: the person or tool the token speaks for. */
  subject: string;
  role: Role;
  /** Every claim of the token, registered ones included. */
  claims: JWTPayload;
}

/** Checks access tokens against one key, issuer and audience. */
export interface TokenVerifier {
  /** Verifies a compact JWS; throws TOKEN_INVALID with a reason when it is not acceptable. */
  verify(token: string): Promise<VerifiedToken>;
}

/**
 * Creates a verifier of the tokens {@link issueAccessToken} issues. The algorithm is pinned to
 * ES256, which refuses `alg: none` and an HMAC token keyed with the public key PEM; `exp` and
 * `sub` are required; `iss`, `aud` and the `at+jwt` type are checked; the role must be known.
 * Every refusal is TOKEN_INVALID whose reason tells the caller what to fix and never repeats
 * the token. Options are checked here, and a bad one is a TypeError naming it.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const {
    issuer,
    audience,
    clockToleranceSeconds = 30,
    maxLifetimeSeconds = MAX_API_TOKEN_TTL_SECONDS,
  } = options;
  const key = importVerificationKey(options.publicKeyPem);
  if (typeof issuer !== 'string' || issuer === '') {
    throw new TypeError('createTokenVerifier: options.issuer must be a non-empty string');
  }
  if (typeof audience !== 'string' || audience === '') {
    throw new TypeError('createTokenVerifier: options.audience must be a non-empty string');
  }
  if (!Number.isFinite(clockToleranceSeconds) || clockToleranceSeconds < 0) {
    throw new TypeError('createTokenVerifier: options.clockToleranceSeconds must be 0 or more');
  }

  return {
    async verify(token: string): Promise<VerifiedToken> {
      if (typeof token !== 'string' || token === '') throw fail('TOKEN_MISSING');

      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(token, key, {
          algorithms: [TOKEN_ALGORITHM],
          issuer,
          audience,
          typ: ACCESS_TOKEN_TYPE,
          requiredClaims: ['exp', 'sub'],
          clockTolerance: clockToleranceSeconds,
        }));
      } catch (err) {
        throw fail('TOKEN_INVALID', { reason: describeFailure(err) }, { cause: err });
      }

      if (typeof claims.sub !== 'string' || claims.sub === '') {
        throw fail('TOKEN_INVALID', { reason: 'sub claim must be a non-empty string' });
      }
      // A token minted to live for years (or with exp 1e308) is refused even though it is
      // signed: no single API token can be revoked, so its lifetime is what bounds a theft.
      const now = Math.floor(Date.now() / 1000);
      const exp = claims.exp!;
      const issuedAt = typeof claims.iat === 'number' ? claims.iat : now;
      if (
        exp - issuedAt > maxLifetimeSeconds ||
        exp - now > maxLifetimeSeconds + clockToleranceSeconds
      ) {
        throw fail('TOKEN_INVALID', {
          reason: `token lifetime exceeds the maximum of ${maxLifetimeSeconds} seconds (${Math.round(maxLifetimeSeconds / 86_400)} days); mint a shorter one`,
        });
      }
      if (!isRole(claims.role)) {
        throw fail('TOKEN_INVALID', { reason: `role claim must be one of ${ROLES.join(', ')}` });
      }
      return { subject: claims.sub, role: claims.role, claims };
    },
  };
}

function importVerificationKey(pem: unknown): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem as string);
  } catch (err) {
    throw new TypeError('createTokenVerifier: options.publicKeyPem is not a PEM public key', {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('createTokenVerifier: options.publicKeyPem must be an ES256 (P-256) key');
  }
  return key;
}

/** Turns a jose error into a reason a caller can act on; jose's codes are its stable API. */
function describeFailure(err: unknown): string {
  const { code, claim, reason } = (err ?? {}) as { code?: string; claim?: string; reason?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token has expired';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return `algorithm not allowed; tokens must be ${TOKEN_ALGORITHM}`;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'signature does not verify with the configured key';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return describeClaimFailure(claim, reason);
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'malformed token; expected a compact JWS';
    default:
      return 'token could not be verified';
  }
}

function describeClaimFailure(claim: string | undefined, reason: string | undefined): string {
  if (reason === 'missing') return `no ${claim} claim`;
  switch (claim) {
    case 'aud':
      return 'audience mismatch';
    case 'iss':
      return 'issuer mismatch';
    case 'nbf':
      return 'token is not yet valid';
    case 'typ':
      return `not an access token; the typ header must be ${ACCESS_TOKEN_TYPE}`;
    default:
      return reason === 'invalid' ? `${claim} claim is malformed` : `${claim} claim check failed`;
  }
}
