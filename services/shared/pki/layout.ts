import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fail } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { generateSigningKey } from '../tokens/signing-key.js';
import {
  createCertificateAuthority,
  issueClientCertificate,
  issueServerCertificate,
  type IssuedCertificate,
} from './certificates.js';
import { ensurePrivateDirectory, readPemFile, writePrivateFile, writePublicFile } from './files.js';
import { assertValidIdentity, type CertificateRole } from './identity.js';

/** Certificate and key files of one client. */
export interface ClientFiles {
  cert: string;
  key: string;
}

/** Where every file of a PKI directory lives; paths only, nothing is read. */
export interface PkiLayout {
  dir: string;
  caCert: string;
  caKey: string;
  hubCert: string;
  hubKey: string;
  /** `participants/<id>.crt` and `.key`; throws PKI_BAD_NAME for an invalid identity. */
  participant(identity: string): ClientFiles;
  /** `operators/<id>.crt` and `.key`. */
  operator(identity: string): ClientFiles;
  /** `auditors/<id>.crt` and `.key`. */
  auditor(identity: string): ClientFiles;
  /** `jwt/signing.key`: PKCS#8 PEM of the ES256 token signing key. */
  jwtPrivateKey: string;
  /** `jwt/signing.pub.pem`: SPKI PEM of the same key. */
  jwtPublicKey: string;
  /** `jwt/jwks.json`: the public key as a JWK Set. */
  jwks: string;
}

/** Options of {@link initDevelopmentPki}. */
export interface InitDevelopmentPkiOptions {
  /** Identities that get a participant client certificate. */
  participants: string[];
  /** Identities that get an operator client certificate; none by default. */
  operators?: string[];
  /** Identities that get an auditor client certificate; none by default. */
  auditors?: string[];
  /** DNS names of the hub's server certificate; default `['localhost']`. */
  hubDnsNames?: string[];
  /** IP addresses of the hub's server certificate; default `['127.0.0.1', '::1']`. */
  hubIpAddresses?: string[];
  /** Replace an existing CA (and every file written here); default false. */
  force?: boolean;
  logger?: Logger;
}

/** Options of {@link issueParticipantFiles}. */
export interface IssueParticipantFilesOptions {
  /** Lifetime in days; default 365. */
  validDays?: number;
  /** Role written into the certificate; default `participant`. */
  role?: CertificateRole;
  /** Replace existing files for this identity; default false. */
  force?: boolean;
  logger?: Logger;
}

const ROLE_DIRECTORIES: Record<CertificateRole, string> = {
  participant: 'participants',
  operator: 'operators',
  auditor: 'auditors',
};

/** The paths of the PKI directory `dir`. */
export function pkiLayout(dir: string): PkiLayout {
  const client = (role: CertificateRole) => (identity: string) => {
    const base = join(dir, ROLE_DIRECTORIES[role], assertValidIdentity(identity));
    return { cert: `${base}.crt`, key: `${base}.key` };
  };
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    hubCert: join(dir, 'hub.crt'),
    hubKey: join(dir, 'hub.key'),
    participant: client('participant'),
    operator: client('operator'),
    auditor: client('auditor'),
    jwtPrivateKey: join(dir, 'jwt', 'signing.key'),
    jwtPublicKey: join(dir, 'jwt', 'signing.pub.pem'),
    jwks: join(dir, 'jwt', 'jwks.json'),
  };
}

/**
 * Writes a complete development PKI under `dir`: a CA, the hub's server certificate, a client
 * certificate per participant, operator and auditor, and the ES256 token signing key with its
 * JWK Set. Private keys get mode 0600 and directories 0700. Refuses, with PKI_ALREADY_EXISTS,
 * to replace an existing CA unless `force`; with `force`, files of identities no longer listed
 * are left in place but no longer verify against the new CA.
 */
export async function initDevelopmentPki(
  dir: string,
  options: InitDevelopmentPkiOptions,
): Promise<PkiLayout> {
  const layout = pkiLayout(dir);
  const logger = options.logger ?? silentLogger();
  const clients: [CertificateRole, string][] = [
    ...(options.participants ?? []).map((id): [CertificateRole, string] => ['participant', id]),
    ...(options.operators ?? []).map((id): [CertificateRole, string] => ['operator', id]),
    ...(options.auditors ?? []).map((id): [CertificateRole, string] => ['auditor', id]),
  ];
  // Every name is checked before anything is written, so a typo leaves no half-built PKI.
  clients.forEach(([, identity]) => assertValidIdentity(identity));

  if (!options.force) {
    for (const path of [layout.caCert, layout.caKey]) {
      if (await exists(path)) throw fail('PKI_ALREADY_EXISTS', { what: 'a CA', path });
    }
  }
  await ensurePrivateDirectory(dir);

  const ca = await createCertificateAuthority({
    commonName: 'Distillery Development CA',
    organization: 'Distillery',
  });
  const hub = await issueServerCertificate(ca, {
    commonName: 'distillery-hub',
    dnsNames: options.hubDnsNames ?? ['localhost'],
    ipAddresses: options.hubIpAddresses ?? ['127.0.0.1', '::1'],
  });
  await writeCertificatePair({ cert: layout.hubCert, key: layout.hubKey }, hub);

  for (const [role, identity] of clients) {
    const files = clientFiles(layout, role, identity);
    await ensurePrivateDirectory(dirname(files.cert));
    await writeCertificatePair(files, await issueClientCertificate(ca, { identity, role }));
  }

  const signing = await generateSigningKey();
  await ensurePrivateDirectory(join(dir, 'jwt'));
  await writePrivateFile(layout.jwtPrivateKey, signing.privateKeyPem);
  await writePublicFile(layout.jwtPublicKey, signing.publicKeyPem);
  await writePublicFile(layout.jwks, `${JSON.stringify(signing.jwks, null, 2)}\n`);

  // The CA goes last: a run that stops part-way leaves no CA behind, so a rerun needs no force.
  await writePrivateFile(layout.caKey, ca.keyPem);
  await writePublicFile(layout.caCert, ca.certPem);

  logger.info(
    { dir, clients: clients.length, hubFingerprint: hub.fingerprint256, kid: signing.kid },
    'development PKI written',
  );
  return layout;
}

/**
 * Issues a client certificate for one more identity with the CA kept in `dir`, and writes it
 * next to the others. Throws PKI_FILE_MISSING or PKI_BAD_PEM when the CA cannot be read, and
 * PKI_ALREADY_EXISTS when the identity has files already, unless `force`.
 */
export async function issueParticipantFiles(
  dir: string,
  identity: string,
  options: IssueParticipantFilesOptions = {},
): Promise<ClientFiles & IssuedCertificate> {
  const layout = pkiLayout(dir);
  const role = options.role ?? 'participant';
  const files = clientFiles(layout, role, identity);
  if (!options.force && (await exists(files.cert))) {
    throw fail('PKI_ALREADY_EXISTS', { what: `a certificate for ${identity}`, path: files.cert });
  }

  const ca = {
    certPem: await readPemFile(layout.caCert, 'CA certificate', 'CERTIFICATE'),
    keyPem: await readPemFile(layout.caKey, 'CA private key', 'PRIVATE KEY'),
  };
  const issued = await issueClientCertificate(ca, {
    identity,
    role,
    validDays: options.validDays,
  });

  await ensurePrivateDirectory(dirname(files.cert));
  await writeCertificatePair(files, issued);
  options.logger?.info(
    { participant: identity, role, serialNumber: issued.serialNumber },
    'client certificate issued',
  );
  return { ...files, ...issued };
}

function clientFiles(layout: PkiLayout, role: CertificateRole, identity: string): ClientFiles {
  return layout[role](identity);
}

async function writeCertificatePair(files: ClientFiles, issued: IssuedCertificate): Promise<void> {
  await writePrivateFile(files.key, issued.keyPem);
  await writePublicFile(files.cert, issued.certPem);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
