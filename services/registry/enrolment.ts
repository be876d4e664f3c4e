import { randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import type { CertificateRequest, PrismaClient } from '../generated/prisma/client.js';
import { fail } from '../shared/errors.js';
import {
  readCertificateSigningRequest,
  signCertificateSigningRequest,
  type CertificateAuthority,
} from '../shared/pki/index.js';
import { APPEND_TX_OPTIONS, appendAccessInTx } from './access-log.js';
import {
  certificateFacts,
  recordCertificate,
  type Certificate,
  type DecisionContext,
} from './certificates.js';
import type { RegistryDb } from './database.js';

export type { CertificateRequest } from '../generated/prisma/client.js';

/**
 * Stores a participant's certificate signing request until an operator decides on it. The
 * request's signature proves its sender holds the key; the key itself never travels. A
 * participant not yet known is enrolled as `pending`: it cannot call the hub until a
 * certificate is approved. Stored and logged in one transaction.
 *
 * @throws PKI_BAD_CSR, PKI_BAD_NAME for a request that could never be signed
 */
export async function submitEnrolment(
  prisma: PrismaClient,
  csrPem: string,
  context: DecisionContext,
): Promise<CertificateRequest> {
  const { identity } = await readCertificateSigningRequest(csrPem);
  return prisma.$transaction(async (tx) => {
    await tx.participant.upsert({
      where: { id: identity },
      create: { id: identity, status: 'pending' },
      update: {},
    });
    const request = await tx.certificateRequest.create({
      data: { id: randomUUID(), participantId: identity, csrPem, submittedBy: context.actor },
    });
    await appendAccessInTx(tx, {
      actor: context.actor,
      action: 'enrolment.submit',
      resource: `enrolment:${request.id}`,
      outcome: 'allowed',
      peerAddress: context.peerAddress ?? null,
      detail: { participant: identity },
    });
    return request;
  }, APPEND_TX_OPTIONS);
}

/** How an approval gets its certificate. */
export type ApprovalSigning =
  /** The hub holds the CA key and signs the request itself. */
  | { ca: CertificateAuthority; validDays?: number }
  /** The operator signed the request offline; the hub checks it against the CA and the CSR. */
  | { certPem: string; caPublicKey: KeyObject };

/**
 * Approves a pending request: issues (or checks) its certificate, records it, makes the
 * participant `active`, and logs the approval, the last three in one transaction.
 *
 * @throws ENROLMENT_NOT_FOUND, ENROLMENT_DECIDED; CERT_INVALID for an uploaded certificate
 *   that is not the CA's or not for this request's key
 */
export async function approveEnrolment(
  prisma: PrismaClient,
  id: string,
  signing: ApprovalSigning,
  context: DecisionContext,
): Promise<{ request: CertificateRequest; certificate: Certificate }> {
  const pending = await pendingRequest(prisma, id);
  let certPem: string;
  let caPublicKey: KeyObject;
  if ('ca' in signing) {
    const signed = await signCertificateSigningRequest(signing.ca, pending.csrPem, {
      ...(signing.validDays ? { validDays: signing.validDays } : {}),
    });
    certPem = signed.certPem;
    caPublicKey = new X509Certificate(signing.ca.certPem).publicKey;
  } else {
    certPem = signing.certPem;
    caPublicKey = signing.caPublicKey;
  }
  const facts = certificateFacts(certPem, caPublicKey);
  const { publicKeySpki } = await readCertificateSigningRequest(pending.csrPem);
  const certKey = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  if (facts.participantId !== pending.participantId || !certKey.equals(publicKeySpki)) {
    throw fail('CERT_INVALID', { reason: `it was not issued for enrolment request ${id}` });
  }

  return prisma.$transaction(async (tx) => {
    const current = await tx.certificateRequest.findUnique({ where: { id } });
    if (!current || current.status !== 'pending') {
      throw fail('ENROLMENT_DECIDED', { id, status: current?.status ?? 'removed' });
    }
    const certificate = await recordCertificate(tx, facts, 'enrolment');
    const request = await tx.certificateRequest.update({
      where: { id },
      data: {
        status: 'approved',
        decidedAt: new Date(),
        decidedBy: context.actor,
        fingerprint: certificate.fingerprint,
      },
    });
    await tx.participant.update({ where: { id: facts.participantId }, data: { status: 'active' } });
    await appendAccessInTx(tx, {
      actor: context.actor,
      action: 'enrolment.approve',
      resource: `enrolment:${id}`,
      outcome: 'allowed',
      peerAddress: context.peerAddress ?? null,
      detail: {
        participant: facts.participantId,
        fingerprint: certificate.fingerprint,
        serial: certificate.serialNumber,
      },
    });
    return { request, certificate };
  }, APPEND_TX_OPTIONS);
}

/** Rejects a pending request and logs it in the same transaction. */
export async function rejectEnrolment(
  prisma: PrismaClient,
  id: string,
  reason: string | null,
  context: DecisionContext,
): Promise<CertificateRequest> {
  await pendingRequest(prisma, id);
  return prisma.$transaction(async (tx) => {
    const current = await tx.certificateRequest.findUnique({ where: { id } });
    if (!current || current.status !== 'pending') {
      throw fail('ENROLMENT_DECIDED', { id, status: current?.status ?? 'removed' });
    }
    const request = await tx.certificateRequest.update({
      where: { id },
      data: { status: 'rejected', decidedAt: new Date(), decidedBy: context.actor },
    });
    await appendAccessInTx(tx, {
      actor: context.actor,
      action: 'enrolment.reject',
      resource: `enrolment:${id}`,
      outcome: 'allowed',
      reason,
      peerAddress: context.peerAddress ?? null,
      detail: { participant: request.participantId },
    });
    return request;
  }, APPEND_TX_OPTIONS);
}

/** Enrolment requests, newest first; only those of `status` when given. */
export async function listEnrolments(
  db: RegistryDb,
  status?: string,
): Promise<CertificateRequest[]> {
  return db.certificateRequest.findMany({
    where: status ? { status } : {},
    orderBy: [{ createdAt: 'desc' }, { id: 'asc' }],
  });
}

async function pendingRequest(db: RegistryDb, id: string): Promise<CertificateRequest> {
  const request = await db.certificateRequest.findUnique({ where: { id } });
  if (!request) throw fail('ENROLMENT_NOT_FOUND', { id: id.slice(0, 80) });
  if (request.status !== 'pending') {
    throw fail('ENROLMENT_DECIDED', { id, status: request.status });
  }
  return request;
}

/** A request in a JSON-safe shape for the API. */
export function enrolmentSummary(request: CertificateRequest) {
  return {
    id: request.id,
    participantId: request.participantId,
    status: request.status,
    submittedBy: request.submittedBy,
    createdAt: request.createdAt.toISOString(),
    decidedAt: request.decidedAt?.toISOString() ?? null,
    decidedBy: request.decidedBy,
    fingerprint: request.fingerprint,
    csrPem: request.csrPem,
  };
}
