import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT, type CryptoKey, type JWTPayload, type KeyObject } from 'jose';
import { fail } from '../errors.js';
import { ACCESS_TOKEN_TYPE } from './issue.js';
import { TOKEN_ALGORITHM } from './signing-key.js';

/** Lifetime of a certificate-bound participant token: five minutes. */
export const PARTICIPANT_TOKEN_TTL_SECONDS = 300;

/** `aud` of participant tokens: the hub's gRPC knowledge service, and nothing else. */
export const KNOWLEDGE_AUDIENCE = 'distillery:knowledge';

/** Options of {@link issueParticipantToken}. */
export interface IssueParticipantTokenOptions {
  /** The hub's ES256 private key for participant tokens. */
  key: CryptoKey | KeyObject;
  /** `kid` of that key. */
  kid: string;
  issuer: string;
  /** Participant id from the verified client certificate. */
  participant: string;
  /** RFC 8705 thumbprint of that certificate (base64url SHA-256 of its DER). */
  x5tS256: string;
  /** Default {@link PARTICIPANT_TOKEN_TTL_SECONDS}. */
  ttlSeconds?: number;
  /** Default now. */
  now?: Date;
}

/**
 * Issues an ES256 access token bound to one client certificate (RFC 8705 section 3): `sub`
 * the participant, `role: participant`, `aud` {@link KNOWLEDGE_AUDIENCE}, `cnf.x5t#S256` the
 * certificate's thumbprint, `exp` a few minutes ahead. Stolen without the certificate's key,
 * it is useless: the hub compares the claim with the certificate of the connection.
 */
export async function issueParticipantToken(
  options: IssueParticipantTokenOptions,
): Promise<{ token: string; expiresAt: number }> {
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const expiresAt = now + (options.ttlSeconds ?? PARTICIPANT_TOKEN_TTL_SECONDS);
  const token = await new SignJWT({ role: 'participant', cnf: { 'x5t#S256': options.x5tS256 } })
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid: options.kid })
    .setIssuer(options.issuer)
    .setAudience(KNOWLEDGE_AUDIENCE)
    .setSubject(options.participant)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(expiresAt)
    .setJti(randomUUID())
    .sign(options.key);
  return { token, expiresAt };
}

/** Options of {@link createParticipantTokenVerifier}. */
export interface ParticipantTokenVerifierOptions {
  /** Public half of the key the hub signs participant tokens with. */
  key: CryptoKey | KeyObject;
  issuer: string;
  /** Leeway for `exp` and `nbf`, seconds; default 30. */
  clockToleranceSeconds?: number;
}

/** What a verified participant token says. */
export interface VerifiedParticipantToken {
  participant: string;
  claims: JWTPayload;
}

/** Verifies participant tokens against the certificate of the connection they came on. */
export interface ParticipantTokenVerifier {
  /**
   * @param x5tS256 thumbprint of the verified client certificate of the call
   * @throws TOKEN_INVALID for a token that is not acceptable, TOKEN_CERT_MISMATCH for one
   *   bound to another certificate
   */
  verify(token: string, x5tS256: string): Promise<VerifiedParticipantToken>;
}

/**
 * The gRPC side of {@link issueParticipantToken}. ES256 only (so `alg: none` and an HMAC
 * keyed with the public key are refused); `exp`, `iss`, `aud`, `sub` and `cnf.x5t#S256` are
 * all required, and the thumbprint must be that of the caller's certificate.
 */
export function createParticipantTokenVerifier(
  options: ParticipantTokenVerifierOptions,
): ParticipantTokenVerifier {
  const tolerance = options.clockToleranceSeconds ?? 30;
  return {
    async verify(token, x5tS256) {
      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(token, options.key, {
          algorithms: [TOKEN_ALGORITHM],
          issuer: options.issuer,
          audience: KNOWLEDGE_AUDIENCE,
          typ: ACCESS_TOKEN_TYPE,
          requiredClaims: ['exp', 'iss', 'aud', 'sub'],
          clockTolerance: tolerance,
        }));
      } catch (err) {
        throw fail('TOKEN_INVALID', { reason: describe(err) }, { cause: err });
      }
      if (claims.role !== 'participant') {
        throw fail('TOKEN_INVALID', { reason: 'role claim must be participant' });
      }
      const cnf = claims.cnf as Record<string, unknown> | undefined;
      const bound = cnf && typeof cnf === 'object' ? cnf['x5t#S256'] : undefined;
      if (typeof bound !== 'string' || bound === '') {
        throw fail('TOKEN_INVALID', {
          reason: 'no cnf.x5t#S256 claim binding it to a certificate',
        });
      }
      if (bound !== x5tS256) throw fail('TOKEN_CERT_MISMATCH');
      return { participant: claims.sub as string, claims };
    },
  };
}

function describe(err: unknown): string {
  const { code, claim, reason } = (err ?? {}) as { code?: string; claim?: string; reason?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token has expired';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return `algorithm not allowed; tokens must be ${TOKEN_ALGORITHM}`;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'signature does not verify with the hub key';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (reason === 'missing') return `no ${claim} claim`;
      if (claim === 'aud') return 'audience mismatch';
      if (claim === 'iss') return 'issuer mismatch';
      if (claim === 'nbf') return 'token is not yet valid';
      if (claim === 'typ')
        return `not an access token; the typ header must be ${ACCESS_TOKEN_TYPE}`;
      return `${claim} claim check failed`;
    default:
      return 'malformed token; expected a compact JWS';
  }
}
