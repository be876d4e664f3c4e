import { createHash } from 'node:crypto';

/** SHA-256 fingerprint of a DER certificate, as lowercase hex without separators. */
export function fingerprintOfDer(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex');
}

/**
 * Certificate thumbprint for `cnf.x5t#S256` (RFC 8705 section 3.1): base64url, without
 * padding, of the SHA-256 of the DER certificate.
 */
export function x5tS256OfDer(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('base64url');
}
