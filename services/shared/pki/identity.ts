import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { fail } from '../errors.js';

/** What a client certificate entitles its holder to be: a partner bank, or a person. */
export type CertificateRole = 'participant' | 'operator' | 'auditor';

/** Every {@link CertificateRole}, in a stable order. */
export const CERTIFICATE_ROLES: readonly CertificateRole[] = ['participant', 'operator', 'auditor'];

/** The identity a verified client certificate names, and the role it was issued for. */
export interface CertificatePrincipal {
  identity: string;
  role: CertificateRole;
}

// A leading letter or digit keeps "." and ".." out, since identities also name files.
const IDENTITY_PATTERN = /^[a-z0-9][a-z0-9.-]{0,63}$/;
const URI_PREFIX = 'urn:distillery:';

/** True when `name` is a valid identity: 1-64 characters of a-z, 0-9, "-" and ".". */
export function isValidIdentity(name: unknown): name is string {
  return typeof name === 'string' && IDENTITY_PATTERN.test(name);
}

/** Returns `name` when it is a valid identity; throws PKI_BAD_NAME otherwise. */
export function assertValidIdentity(name: string): string {
  if (!isValidIdentity(name)) throw fail('PKI_BAD_NAME', { name: String(name).slice(0, 80) });
  return name;
}

/** The SAN URI that carries an identity: `urn:distillery:participant:bank-a`. */
export function identityUri(identity: string, role: CertificateRole = 'participant'): string {
  return `${URI_PREFIX}${role}:${assertValidIdentity(identity)}`;
}

/** Parses a SAN URI written by {@link identityUri}; null for any other URI. */
export function parseIdentityUri(uri: string): CertificatePrincipal | null {
  if (!uri.startsWith(URI_PREFIX)) return null;
  const rest = uri.slice(URI_PREFIX.length);
  const colon = rest.indexOf(':');
  if (colon < 0) return null;

  const role = rest.slice(0, colon) as CertificateRole;
  const identity = rest.slice(colon + 1);
  if (!CERTIFICATE_ROLES.includes(role) || !isValidIdentity(identity)) return null;
  return { identity, role };
}

/**
 * Reads who a verified peer certificate names, as Node reports it after a handshake: the
 * `urn:distillery:<role>:<identity>` SAN URI, or, for a certificate without one, the subject
 * CN as a participant. Returns null when there is no certificate, when the name is not a
 * valid identity, or when the certificate carries conflicting or malformed Distillery URIs.
 * The certificate must already be verified against the CA: this function checks no signature.
 */
export function principalFromPeerCertificate(
  cert: PeerCertificate | Record<string, never> | null | undefined,
): CertificatePrincipal | null {
  if (!cert || typeof cert !== 'object') return null;
  const peer = cert as Partial<PeerCertificate>;

  const uris = parseSubjectAltName(peer.subjectaltname ?? '')
    .filter((name) => name.type === 'URI' && name.value.startsWith(URI_PREFIX))
    .map((name) => parseIdentityUri(name.value));
  if (uris.length > 0) {
    const [first] = uris;
    const consistent = uris.every(
      (p) => p !== null && p.identity === first?.identity && p.role === first.role,
    );
    return consistent ? first : null;
  }

  // Node reports a repeated attribute as an array; two CNs do not name one identity.
  const cn: unknown = peer.subject?.CN;
  return isValidIdentity(cn) ? { identity: cn, role: 'participant' } : null;
}

/**
 * The participant identity of a verified peer certificate (see
 * {@link principalFromPeerCertificate}); null when it names none, or names an operator or an
 * auditor, so that a person's certificate never passes for a bank's.
 */
export function identityFromPeerCertificate(
  cert: PeerCertificate | Record<string, never> | null | undefined,
): string | null {
  const principal = principalFromPeerCertificate(cert);
  return principal?.role === 'participant' ? principal.identity : null;
}

interface AltName {
  type: string;
  value: string;
}

/**
 * Splits Node's `subjectaltname` ("DNS:localhost, URI:urn:..."). Since the fix for
 * CVE-2021-44532 Node writes a value holding a comma or a quote as a JSON string literal, so
 * a quoted value is decoded as one piece rather than split, and cannot smuggle in a second
 * name. An entry that cannot be read ends the parse: what follows it is not trusted.
 */
export function parseSubjectAltName(text: string): AltName[] {
  const names: AltName[] = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(':', at);
    if (colon < 0) break;
    const type = text.slice(at, colon);

    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = closingQuote(text, colon + 2);
      if (end < 0) break;
      end += 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        break;
      }
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }

    names.push({ type, value });
    if (end < text.length && !text.startsWith(', ', end)) break;
    at = end + 2;
  }
  return names;
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

/**
 * The participant identity a certificate file names, read as the hub will read it after the
 * handshake; null when it names none. Lets a node check its own configuration at start.
 */
export function identityFromCertificatePem(certPem: string): string | null {
  const cert = new X509Certificate(certPem);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return identityFromPeerCertificate({
    subjectaltname: cert.subjectAltName ?? '',
    subject: { CN: cn },
  } as unknown as PeerCertificate);
}
