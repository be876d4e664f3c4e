import * as x509 from './x509.js';
import { fail } from '../errors.js';
import { clientContents } from './certificates.js';
import { assertValidIdentity, identityUri, type CertificateRole } from './identity.js';
import { exportPrivateKeyPem, generateKeyPair, SIGNATURE_ALGORITHM, webCrypto } from './keys.js';
import {
  loadIssuer,
  resolveValidity,
  signLeaf,
  type CertificateAuthority,
  type SignedCertificate,
  type ValidityOptions,
} from './signing.js';

/** Options of {@link createCertificateSigningRequest}. */
export interface CreateCertificateSigningRequestOptions {
  /** Identity asked for, written as subject CN. */
  identity: string;
}

/** Options of {@link signCertificateSigningRequest}. */
export interface SignCertificateSigningRequestOptions extends ValidityOptions {
  /** Lifetime in days; default 365. */
  validDays?: number;
  /** Role written into the SAN URI; default `participant`. The requester cannot choose it. */
  role?: CertificateRole;
}

/** A certificate issued from a request, with the identity it was issued to. */
export interface SignedRequest extends SignedCertificate {
  identity: string;
}

/**
 * Creates a PKCS#10 request for a client certificate, on the requester's side: a fresh P-256
 * key, the identity as subject CN (and as SAN URI, for readers of the request). The key stays
 * with the requester; only `csrPem` travels. Throws PKI_BAD_NAME for an invalid identity.
 */
export async function createCertificateSigningRequest(
  options: CreateCertificateSigningRequestOptions,
): Promise<{ csrPem: string; keyPem: string }> {
  const identity = assertValidIdentity(options?.identity);
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: [{ CN: [identity] }],
      keys,
      signingAlgorithm: SIGNATURE_ALGORITHM,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identityUri(identity) }]),
      ],
    },
    webCrypto,
  );
  return { csrPem: csr.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Issues a client certificate for a PKCS#10 request, on the CA's side. The request's signature
 * must verify (proof that the requester holds the key) and its key must be ECDSA P-256. Only
 * the subject CN is taken from the request; every extension comes from the CA's own profile,
 * so a request cannot ask for CA rights or other names. Throws PKI_BAD_CSR for a request that
 * cannot be used and PKI_BAD_NAME when its CN is not a valid identity.
 */
export async function signCertificateSigningRequest(
  ca: CertificateAuthority,
  csrPem: string,
  options: SignCertificateSigningRequestOptions = {},
): Promise<SignedRequest> {
  const where = 'signCertificateSigningRequest';
  const validity = resolveValidity(options, 365, where);
  const { csr, identity } = await checkRequest(csrPem);
  const issuer = await loadIssuer(ca, where);
  const signed = await signLeaf(issuer, {
    ...clientContents(identity, options.role ?? 'participant'),
    publicKey: csr.publicKey,
    validity,
  });
  return { ...signed, identity };
}

/**
 * Parses a PKCS#10 request and checks what every use of one needs: its signature verifies,
 * its key is ECDSA P-256 and its subject holds exactly one CN that is a valid identity.
 */
async function checkRequest(
  csrPem: unknown,
): Promise<{ csr: x509.Pkcs10CertificateRequest; identity: string }> {
  const csr = parseRequest(csrPem);
  if (!(await csr.verify(webCrypto))) {
    throw fail('PKI_BAD_CSR', { reason: 'its signature does not verify' });
  }
  const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
    throw fail('PKI_BAD_CSR', { reason: 'its key must be ECDSA P-256' });
  }
  const names = csr.subjectName.getField('CN');
  if (names.length !== 1) {
    throw fail('PKI_BAD_CSR', { reason: 'its subject must hold exactly one CN' });
  }
  return { csr, identity: assertValidIdentity(names[0]!) };
}

function parseRequest(csrPem: unknown): x509.Pkcs10CertificateRequest {
  if (typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw fail('PKI_BAD_CSR', { reason: 'it is not a PEM "CERTIFICATE REQUEST"' });
  }
  try {
    return new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw fail('PKI_BAD_CSR', { reason: 'it cannot be parsed' }, { cause: err });
  }
}

/** What a verified certificate signing request asks for. */
export interface CertificateRequestFacts {
  /** The identity of its subject CN. */
  identity: string;
  /** Its public key, SPKI DER, to match the certificate issued for it. */
  publicKeySpki: Buffer;
}

/**
 * Parses a PKCS#10 request and checks it as {@link signCertificateSigningRequest} would
 * (signature, P-256 key, one valid CN), without signing it: what a hub stores while the
 * request waits for an operator.
 */
export async function readCertificateSigningRequest(
  csrPem: string,
): Promise<CertificateRequestFacts> {
  const { csr, identity } = await checkRequest(csrPem);
  return { identity, publicKeySpki: Buffer.from(csr.publicKey.rawData) };
}
