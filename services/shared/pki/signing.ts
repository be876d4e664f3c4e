import { randomBytes, type webcrypto } from 'node:crypto';
import * as x509 from './x509.js';
import { fingerprintOfDer } from './fingerprint.js';
import { importPrivateKeyPem, SIGNATURE_ALGORITHM, webCrypto } from './keys.js';

/** A certificate authority as PEM: its certificate and its PKCS#8 private key. */
export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

/** Validity of a certificate: a lifetime in days, or explicit bounds. */
export interface ValidityOptions {
  /** Lifetime in days from `notBefore` (or from now); the default depends on the kind. */
  validDays?: number;
  /** Start of validity; default five minutes ago, or `validDays` before an earlier `notAfter`. */
  notBefore?: Date;
  /** End of validity; default `validDays` after `notBefore` (or after now). */
  notAfter?: Date;
}

/** A certificate as issued, with the values the registry records for it. */
export interface SignedCertificate {
  certPem: string;
  /** Serial number, lowercase hex. */
  serialNumber: string;
  /** SHA-256 of the DER certificate, lowercase hex. */
  fingerprint256: string;
}

const DAY_MS = 86_400_000;
// Backdating absorbs clock skew between the hub and a bank, so that a certificate issued a
// moment ago is not "not yet valid" on a machine whose clock runs slightly behind.
const BACKDATE_MS = 5 * 60_000;

/**
 * Resolves the validity bounds of a certificate and checks them.
 *
 * @param where names the calling function in the TypeError for bad options.
 */
export function resolveValidity(
  options: ValidityOptions,
  defaultDays: number,
  where: string,
): { notBefore: Date; notAfter: Date } {
  const days = options.validDays ?? defaultDays;
  if (!Number.isFinite(days) || days <= 0) {
    throw new TypeError(`${where}: options.validDays must be a positive number, got ${days}`);
  }
  for (const field of ['notBefore', 'notAfter'] as const) {
    const date = options[field];
    if (date !== undefined && !(date instanceof Date && Number.isFinite(date.getTime()))) {
      throw new TypeError(`${where}: options.${field} must be a valid Date`);
    }
  }

  const now = Date.now();
  const lifetime = days * DAY_MS;
  const notBefore =
    options.notBefore ??
    new Date(Math.min(now - BACKDATE_MS, (options.notAfter?.getTime() ?? Infinity) - lifetime));
  const notAfter = options.notAfter ?? new Date((options.notBefore?.getTime() ?? now) + lifetime);
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new TypeError(`${where}: options.notAfter must be later than options.notBefore`);
  }
  return { notBefore, notAfter };
}

/**
 * A random positive serial of exactly 16 bytes, as hex. The top bit is cleared so that DER
 * needs no sign byte, and the first byte is never zero so that DER does not shorten it
 * (RFC 5280 section 4.1.2.2 allows up to 20 octets; CA/B asks for 64 random bits or more).
 */
export function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f || 0x01;
  return bytes.toString('hex');
}

/** The CA certificate and signing key, parsed once per issuance. */
export interface LoadedIssuer {
  cert: x509.X509Certificate;
  signingKey: webcrypto.CryptoKey;
  keyId: string;
}

/** Parses a CA given as PEM and checks that it may sign certificates. */
export async function loadIssuer(ca: CertificateAuthority, where: string): Promise<LoadedIssuer> {
  if (!ca || typeof ca.certPem !== 'string' || typeof ca.keyPem !== 'string') {
    throw new TypeError(`${where}: ca must be { certPem, keyPem } strings`);
  }

  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(ca.certPem);
  } catch (err) {
    throw new TypeError(`${where}: ca.certPem is not a PEM certificate`, { cause: err });
  }
  if (!cert.getExtension(x509.BasicConstraintsExtension)?.ca) {
    throw new TypeError(`${where}: ca.certPem is not a CA certificate (basicConstraints)`);
  }

  const signingKey = await importPrivateKeyPem(ca.keyPem, `${where}: ca.keyPem`);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski?.keyId ?? bufferToHex(await cert.publicKey.getKeyIdentifier(webCrypto));
  return { cert, signingKey, keyId };
}

/** What a leaf certificate says, apart from its issuer. */
export interface LeafContents {
  subject: x509.JsonName;
  publicKey: x509.PublicKeyType;
  extensions: x509.Extension[];
  validity: { notBefore: Date; notAfter: Date };
}

/**
 * Signs a leaf certificate with the issuer's key, adding basicConstraints CA:false and the
 * subject and authority key identifiers.
 */
export async function signLeaf(
  issuer: LoadedIssuer,
  leaf: LeafContents,
): Promise<SignedCertificate> {
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject: leaf.subject,
      issuer: issuer.cert.subjectName,
      notBefore: leaf.validity.notBefore,
      notAfter: leaf.validity.notAfter,
      publicKey: leaf.publicKey,
      signingKey: issuer.signingKey,
      signingAlgorithm: SIGNATURE_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        ...leaf.extensions,
        await x509.SubjectKeyIdentifierExtension.create(leaf.publicKey, false, webCrypto),
        new x509.AuthorityKeyIdentifierExtension(issuer.keyId, false),
      ],
    },
    webCrypto,
  );
  return describeCertificate(cert);
}

/** PEM, serial and SHA-256 fingerprint of a parsed certificate. */
export function describeCertificate(cert: x509.X509Certificate): SignedCertificate {
  return {
    certPem: cert.toString('pem'),
    serialNumber: cert.serialNumber.toLowerCase(),
    fingerprint256: fingerprintOfDer(Buffer.from(cert.rawData)),
  };
}

function bufferToHex(buffer: ArrayBuffer): string {
  return Buffer.from(buffer).toString('hex');
}
