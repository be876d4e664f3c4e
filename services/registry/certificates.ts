import { X509Certificate, type KeyObject } from 'node:crypto';
import type { Certificate, Prisma, PrismaClient } from '../generated/prisma/client.js';
import { APPEND_TX_OPTIONS, appendAccessInTx } from './access-log.js';
import { fail } from '../shared/errors.js';
import { principalFromPeerCertificate } from '../shared/pki/identity.js';
import { fingerprintOfDer } from '../shared/pki/fingerprint.js';
import type { PeerCertificate } from 'node:tls';
import type { RegistryDb } from './database.js';

export type { Certificate } from '../generated/prisma/client.js';

/** How the hub learnt of a certificate. */
export type CertificateSource = 'enrolment' | 'upload' | 'first-use';

/** What the registry records of a client certificate, read from its PEM or DER. */
export interface CertificateFacts {
  fingerprint: string;
  serialNumber: string;
  participantId: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  certPem: string;
}

/**
 * Reads the facts of a participant client certificate. With `caPublicKey`, the certificate
 * must also be signed by that CA and valid now.
 *
 * @throws CERT_INVALID when it cannot be parsed, names no participant, or does not verify
 */
export function certificateFacts(
  cert: string | Buffer,
  caPublicKey?: KeyObject,
  now = new Date(),
): CertificateFacts {
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(cert);
  } catch (err) {
    throw fail('CERT_INVALID', { reason: 'it is not a PEM or DER certificate' }, { cause: err });
  }
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(parsed.subject)?.[1];
  const principal = principalFromPeerCertificate({
    subjectaltname: parsed.subjectAltName ?? '',
    subject: { CN: cn },
  } as unknown as PeerCertificate);
  if (!principal || principal.role !== 'participant') {
    throw fail('CERT_INVALID', { reason: 'it names no participant identity' });
  }
  const notBefore = new Date(parsed.validFrom);
  const notAfter = new Date(parsed.validTo);
  if (caPublicKey) {
    if (!parsed.verify(caPublicKey)) {
      throw fail('CERT_INVALID', { reason: "it is not signed by this hub's CA" });
    }
    if (notAfter <= now) throw fail('CERT_INVALID', { reason: 'it has expired' });
  }
  return {
    fingerprint: fingerprintOfDer(parsed.raw),
    serialNumber: parsed.serialNumber.toLowerCase(),
    participantId: principal.identity,
    subject: parsed.subject.replace(/\n/g, ', '),
    notBefore,
    notAfter,
    certPem: parsed.toString(),
  };
}

/**
 * Records a certificate, or returns the record it already has (a certificate's fingerprint
 * names it for ever, so a second recording changes nothing, a revocation least of all).
 * The participant must be enrolled.
 */
export async function recordCertificate(
  db: RegistryDb,
  facts: CertificateFacts,
  source: CertificateSource,
): Promise<Certificate> {
  const existing = await db.certificate.findUnique({ where: { fingerprint: facts.fingerprint } });
  if (existing) return existing;
  return db.certificate.create({ data: { ...facts, source } });
}

/** The certificate with this SHA-256 fingerprint, or null. */
export async function findCertificate(
  db: RegistryDb,
  fingerprint: string,
): Promise<Certificate | null> {
  return db.certificate.findUnique({ where: { fingerprint } });
}

/**
 * The certificate a revocation or a query names: its 64-hex fingerprint, or its serial.
 *
 * @throws CERT_NOT_FOUND when none matches; REQUEST_INVALID for a serial held by several
 */
export async function resolveCertificate(db: RegistryDb, ref: string): Promise<Certificate> {
  const key = ref.toLowerCase().replace(/:/g, '');
  const byFingerprint = /^[0-9a-f]{64}$/.test(key)
    ? await db.certificate.findUnique({ where: { fingerprint: key } })
    : null;
  if (byFingerprint) return byFingerprint;
  const bySerial = await db.certificate.findMany({ where: { serialNumber: key }, take: 2 });
  if (bySerial.length === 0) throw fail('CERT_NOT_FOUND', { what: `"${ref.slice(0, 80)}"` });
  if (bySerial.length > 1) {
    throw fail('REQUEST_INVALID', { detail: `serial ${key} is ambiguous; give the fingerprint` });
  }
  return bySerial[0]!;
}

/** Every recorded certificate, newest first; of one participant when named. */
export async function listCertificates(
  db: RegistryDb,
  participantId?: string,
): Promise<Certificate[]> {
  return db.certificate.findMany({
    where: participantId ? { participantId } : {},
    orderBy: [{ createdAt: 'desc' }, { fingerprint: 'asc' }],
  });
}

/**
 * Marks a certificate revoked inside the caller's transaction. Revoking it again keeps the
 * first revocation's time and reason.
 */
export async function revokeCertificateInTx(
  tx: Prisma.TransactionClient,
  fingerprint: string,
  by: string,
  reason: string | null,
): Promise<Certificate> {
  const current = await tx.certificate.findUnique({ where: { fingerprint } });
  if (!current) throw fail('CERT_NOT_FOUND', { what: fingerprint });
  if (current.status === 'revoked') return current;
  return tx.certificate.update({
    where: { fingerprint },
    data: { status: 'revoked', revokedAt: new Date(), revokedBy: by, revokedReason: reason },
  });
}

/** A certificate in a JSON-safe shape for the API, without its PEM. */
export function certificateSummary(cert: Certificate) {
  return {
    fingerprint: cert.fingerprint,
    serialNumber: cert.serialNumber,
    participantId: cert.participantId,
    subject: cert.subject,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    status: cert.status,
    source: cert.source,
    createdAt: cert.createdAt.toISOString(),
    revokedAt: cert.revokedAt?.toISOString() ?? null,
    revokedBy: cert.revokedBy,
    revokedReason: cert.revokedReason,
  };
}

/** Who decides, from where: written to the access log with the decision. */
export interface DecisionContext {
  actor: string;
  peerAddress?: string | null;
}

/**
 * Registers a certificate the operator signed offline (or issued with `pki issue`): it must
 * be signed by the hub's CA, unexpired, and name an enrolled participant. Recorded and
 * logged in one transaction.
 */
export async function registerCertificate(
  prisma: PrismaClient,
  certPem: string,
  caPublicKey: KeyObject,
  context: DecisionContext,
): Promise<Certificate> {
  const facts = certificateFacts(certPem, caPublicKey);
  return prisma.$transaction(async (tx) => {
    const participant = await tx.participant.findUnique({ where: { id: facts.participantId } });
    if (!participant) throw fail('PARTICIPANT_NOT_FOUND', { id: facts.participantId });
    const cert = await recordCertificate(tx, facts, 'upload');
    await appendAccessInTx(tx, {
      actor: context.actor,
      action: 'certificate.register',
      resource: `certificate:${cert.fingerprint}`,
      outcome: 'allowed',
      peerAddress: context.peerAddress ?? null,
      detail: { participant: cert.participantId, serial: cert.serialNumber },
    });
    return cert;
  }, APPEND_TX_OPTIONS);
}

/**
 * Revokes a certificate (by fingerprint or serial) and logs it in the same transaction. The
 * hub refuses the certificate from its next call on; open streams are closed by the caller.
 * Revoking a revoked certificate returns the stored record and writes no log entry.
 */
export async function revokeCertificate(
  prisma: PrismaClient,
  ref: string,
  reason: string | null,
  context: DecisionContext,
): Promise<Certificate> {
  const target = await resolveCertificate(prisma, ref);
  return prisma.$transaction(async (tx) => {
    // A repeat changes nothing, so, as with grants, it is not logged as a fresh decision: the
    // log keeps the one revocation that took effect, with its reason.
    const current = await tx.certificate.findUnique({ where: { fingerprint: target.fingerprint } });
    if (current?.status === 'revoked') return current;
    const cert = await revokeCertificateInTx(tx, target.fingerprint, context.actor, reason);
    await appendAccessInTx(tx, {
      actor: context.actor,
      action: 'certificate.revoke',
      resource: `certificate:${cert.fingerprint}`,
      outcome: 'allowed',
      reason,
      peerAddress: context.peerAddress ?? null,
      detail: { participant: cert.participantId, serial: cert.serialNumber },
    });
    return cert;
  }, APPEND_TX_OPTIONS);
}
