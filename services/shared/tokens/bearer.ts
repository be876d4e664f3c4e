import { fail } from '../errors.js';

// RFC 6750 section 2.1: b64token; the scheme name is case-insensitive (RFC 9110 11.1).
const BEARER_PATTERN = /^bearer(?: +(.*))?$/i;
const TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Takes the token out of an `Authorization: Bearer <token>` header. Throws TOKEN_MISSING
 * when the header is absent, empty, of another scheme or carries no token, and TOKEN_INVALID
 * when the token holds characters a bearer token cannot.
 */
export function parseBearer(header?: string): string {
  const match = typeof header === 'string' ? BEARER_PATTERN.exec(header.trim()) : null;
  const token = match?.[1];
  if (!token) throw fail('TOKEN_MISSING');
  if (!TOKEN_PATTERN.test(token)) throw fail('TOKEN_INVALID', { reason: 'malformed bearer token' });
  return token;
}
