import { isIP } from 'node:net';
import * as x509 from './x509.js';
import {
  assertValidIdentity,
  CERTIFICATE_ROLES,
  identityUri,
  type CertificateRole,
} from './identity.js';
import { exportPrivateKeyPem, generateKeyPair, SIGNATURE_ALGORITHM, webCrypto } from './keys.js';
import {
  describeCertificate,
  loadIssuer,
  randomSerialNumber,
  resolveValidity,
  signLeaf,
  type CertificateAuthority,
  type SignedCertificate,
  type ValidityOptions,
} from './signing.js';

export type { CertificateAuthority, SignedCertificate, ValidityOptions } from './signing.js';

/** A certificate issued together with a fresh key pair. */
export interface IssuedCertificate extends SignedCertificate {
  /** The new private key, PKCS#8 PEM. */
  keyPem: string;
}

/** Options of {@link createCertificateAuthority}. */
export interface CreateCertificateAuthorityOptions extends ValidityOptions {
  /** Subject CN of the CA. */
  commonName: string;
  /** Subject O of the CA; none by default. */
  organization?: string;
  /** Lifetime in days; default 3650. */
  validDays?: number;
}

/** Options of {@link issueServerCertificate}. */
export interface IssueServerCertificateOptions extends ValidityOptions {
  /** Subject CN; informative only, since clients match the SANs. */
  commonName: string;
  /** DNS names the server answers on, as SAN entries. */
  dnsNames: string[];
  /** IP addresses the server answers on, as SAN entries. */
  ipAddresses: string[];
  /** Lifetime in days; default 825. */
  validDays?: number;
}

/** Options of {@link issueClientCertificate}. */
export interface IssueClientCertificateOptions extends ValidityOptions {
  /** Identity of the holder, written as subject CN and as SAN URI. */
  identity: string;
  /** Role in the SAN URI `urn:distillery:<role>:<identity>`; default `participant`. */
  role?: CertificateRole;
  /** Lifetime in days; default 365. */
  validDays?: number;
}

const DNS_NAME_PATTERN =
  /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * Creates a self-signed ECDSA P-256 certificate authority: basicConstraints CA (critical, path
 * length 0, since Distillery uses no intermediates), keyUsage keyCertSign and cRLSign, and a
 * subject key identifier.
 */
export async function createCertificateAuthority(
  options: CreateCertificateAuthorityOptions,
): Promise<CertificateAuthority> {
  const where = 'createCertificateAuthority';
  requireText(options?.commonName, `${where}: options.commonName`);
  if (options.organization !== undefined) {
    requireText(options.organization, `${where}: options.organization`);
  }
  const validity = resolveValidity(options, 3650, where);

  const keys = await generateKeyPair();
  const name: x509.JsonName = [{ CN: [options.commonName] }];
  if (options.organization) name.unshift({ O: [options.organization] });

  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name,
      keys,
      serialNumber: randomSerialNumber(),
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
      signingAlgorithm: SIGNATURE_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webCrypto),
      ],
    },
    webCrypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Issues a TLS server certificate and its key, signed by `ca`: SAN entries for every DNS name
 * and IP address (Node does not fall back to the CN when SANs are present), extKeyUsage
 * serverAuth, keyUsage digitalSignature, and a random 16-byte serial.
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  options: IssueServerCertificateOptions,
): Promise<IssuedCertificate> {
  const where = 'issueServerCertificate';
  requireText(options?.commonName, `${where}: options.commonName`);
  const altNames = serverAltNames(options.dnsNames, options.ipAddresses, where);
  const validity = resolveValidity(options, 825, where);
  const issuer = await loadIssuer(ca, where);

  const keys = await generateKeyPair();
  const signed = await signLeaf(issuer, {
    subject: [{ CN: [options.commonName] }],
    publicKey: keys.publicKey,
    validity,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(altNames, false),
    ],
  });
  return { ...signed, keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Issues a TLS client certificate and its key, signed by `ca`: the identity as subject CN and
 * as SAN URI `urn:distillery:<role>:<identity>`, extKeyUsage clientAuth, keyUsage
 * digitalSignature, and a random 16-byte serial. Throws PKI_BAD_NAME for an invalid identity.
 */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  options: IssueClientCertificateOptions,
): Promise<IssuedCertificate> {
  const where = 'issueClientCertificate';
  const validity = resolveValidity(options ?? {}, 365, where);
  const issuer = await loadIssuer(ca, where);

  const keys = await generateKeyPair();
  const signed = await signLeaf(issuer, {
    ...clientContents(options.identity, options.role ?? 'participant'),
    publicKey: keys.publicKey,
    validity,
  });
  return { ...signed, keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Subject and extensions of a client certificate; shared with the signing of requests, so
 * that a certificate from a CSR is indistinguishable from one issued here.
 */
export function clientContents(
  identity: string,
  role: CertificateRole,
): { subject: x509.JsonName; extensions: x509.Extension[] } {
  assertValidIdentity(identity);
  if (!CERTIFICATE_ROLES.includes(role)) {
    throw new TypeError(`options.role must be one of ${CERTIFICATE_ROLES.join(', ')}`);
  }
  return {
    subject: [{ CN: [identity] }],
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: identityUri(identity, role) },
      ]),
    ],
  };
}

/** Parses a certificate PEM into the description the registry records. */
export function describeCertificatePem(certPem: string): SignedCertificate {
  return describeCertificate(new x509.X509Certificate(certPem));
}

function serverAltNames(
  dnsNames: unknown,
  ipAddresses: unknown,
  where: string,
): x509.JsonGeneralNames {
  if (!Array.isArray(dnsNames)) throw new TypeError(`${where}: options.dnsNames must be an array`);
  if (!Array.isArray(ipAddresses)) {
    throw new TypeError(`${where}: options.ipAddresses must be an array`);
  }
  if (dnsNames.length + ipAddresses.length === 0) {
    throw new TypeError(`${where}: options.dnsNames and options.ipAddresses are both empty`);
  }

  const names: x509.JsonGeneralNames = [];
  dnsNames.forEach((name: unknown, i) => {
    if (typeof name !== 'string' || !DNS_NAME_PATTERN.test(name)) {
      throw new TypeError(`${where}: options.dnsNames[${i}] is not a DNS name`);
    }
    names.push({ type: 'dns', value: name });
  });
  ipAddresses.forEach((address: unknown, i) => {
    if (typeof address !== 'string' || isIP(address) === 0) {
      throw new TypeError(`${where}: options.ipAddresses[${i}] is not an IP address`);
    }
    names.push({ type: 'ip', value: address });
  });
  return names;
}

function requireText(value: unknown, path: string): asserts value is string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(`${path} must be a non-empty string`);
  }
}
