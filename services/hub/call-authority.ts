import type { Metadata, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { PrismaClient } from '../generated/prisma/client.js';
import { fail, isDistilleryError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { principalFromPeerCertificate } from '../shared/pki/identity.js';
import { fingerprintOfDer, x5tS256OfDer } from '../shared/pki/fingerprint.js';
import {
  createParticipantTokenVerifier,
  issueParticipantToken,
  parseBearer,
  type HubSigningKey,
  type ParticipantTokenVerifier,
} from '../shared/tokens/index.js';
import { APPEND_TX_OPTIONS, appendAccess, appendAccessInTx } from '../registry/access-log.js';
import { certificateFacts, recordCertificate } from '../registry/certificates.js';
import { findGrants, type Grant } from '../registry/grants.js';
import type { KnowledgeManifest } from '../shared/knowledge/manifest.js';
import { checkAccess, grantedTensors, type RequestedTensor } from './grant-check.js';
import type { CertificateRevocations } from './revocations.js';

/**
 * How the hub learns of a client certificate it has not recorded: `first-use` records a
 * CA-verified certificate of an enrolled, active participant on its first call; `registered`
 * refuses it until an operator registers it or approves its enrolment request.
 */
export type CertificateAdmission = 'first-use' | 'registered';

/** What the hub's trust layer needs at gRPC calls. */
export interface TrustSettings {
  /** ES256 key participant tokens are signed and checked with. */
  tokenKey: HubSigningKey;
  /** `iss` of participant tokens. */
  issuer: string;
  admission: CertificateAdmission;
  revocations: CertificateRevocations;
  /** Lifetime of issued tokens; default 300 s. */
  tokenTtlSeconds?: number;
}

/** The verified caller of a gRPC call. */
export interface Caller {
  participant: string;
  fingerprint: string;
  serial: string;
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

/** Codes of refusals already written to the log by the authority, not to be logged again. */
export const LOGGED_REFUSALS = new Set<string>([
  'PEER_UNAUTHENTICATED',
  'PEER_NOT_ENROLLED',
  'CERT_REVOKED',
  'CERT_NOT_REGISTERED',
  'TOKEN_MISSING',
  'TOKEN_INVALID',
  'TOKEN_ROLE',
  'TOKEN_CERT_MISMATCH',
  'GRANT_DENIED',
]);

/** True for an error whose refusal the authority has logged already. */
export function isLoggedRefusal(err: unknown): boolean {
  return isDistilleryError(err) && LOGGED_REFUSALS.has(err.code);
}

/**
 * Decides every gRPC call: the verified client certificate (identity, enrolment, registry
 * status), the certificate-bound token in `authorization` metadata, and the grants. Identity
 * comes from the certificate alone; nothing in metadata or in the request names the caller.
 * Every refusal is written to the access log before the caller hears of it.
 */
export function createCallAuthority(options: {
  prisma: PrismaClient;
  trust: TrustSettings;
  logger: Logger;
}) {
  const { prisma, trust, logger } = options;
  const verifier: ParticipantTokenVerifier = createParticipantTokenVerifier({
    key: trust.tokenKey.publicKey,
    issuer: trust.issuer,
  });

  const deny = async (
    call: AnyCall,
    actor: string,
    action: string,
    resource: string,
    err: Error,
    detail?: Record<string, unknown>,
  ) => {
    await appendAccess(prisma, {
      actor,
      action,
      resource,
      outcome: 'denied',
      reason: err.message,
      peerAddress: call.getPeer(),
      ...(detail ? { detail } : {}),
    });
    return err;
  };

  /**
   * Authenticates a call; with `token` (every call but IssueToken) also its bearer token.
   *
   * @throws the refusal, already logged
   */
  async function authenticate(
    call: AnyCall,
    action: string,
    resource: string,
    { token = true }: { token?: boolean } = {},
  ): Promise<Caller> {
    const peer = call.getAuthContext()?.sslPeerCertificate as PeerCertificate | undefined;
    const principal = peer ? principalFromPeerCertificate(peer) : null;
    if (!peer?.raw || !principal) {
      throw await deny(call, 'anonymous', action, resource, fail('PEER_UNAUTHENTICATED'));
    }
    if (principal.role !== 'participant') {
      // An operator's or auditor's certificate is the CA's, but not for these calls.
      throw await deny(
        call,
        `${principal.role}:${principal.identity}`,
        action,
        resource,
        fail('TOKEN_ROLE', { role: principal.role, action, needed: 'participant' }),
      );
    }
    const identity = principal.identity;
    const participant = await prisma.participant.findUnique({ where: { id: identity } });
    if (!participant || participant.status !== 'active') {
      await appendAccess(prisma, {
        actor: identity,
        action,
        resource,
        outcome: 'denied',
        reason: 'not enrolled',
        peerAddress: call.getPeer(),
      });
      throw fail('PEER_NOT_ENROLLED', { participant: identity });
    }

    const fingerprint = fingerprintOfDer(peer.raw);
    let cert = await prisma.certificate.findUnique({ where: { fingerprint } });
    if (!cert) {
      const facts = certificateFacts(peer.raw);
      if (trust.admission !== 'first-use') {
        throw await deny(
          call,
          identity,
          action,
          resource,
          fail('CERT_NOT_REGISTERED', { serial: facts.serialNumber, participant: identity }),
        );
      }
      cert = await prisma.$transaction(async (tx) => {
        const recorded = await recordCertificate(tx, facts, 'first-use');
        await appendAccessInTx(tx, {
          actor: identity,
          action: 'certificate.first-use',
          resource: `certificate:${fingerprint}`,
          outcome: 'allowed',
          peerAddress: call.getPeer(),
          detail: { serial: recorded.serialNumber, notAfter: recorded.notAfter.toISOString() },
        });
        return recorded;
      }, APPEND_TX_OPTIONS);
      logger.info(
        { participant: identity, serial: cert.serialNumber },
        'certificate recorded on first use',
      );
    }
    if (cert.status !== 'active') {
      throw await deny(
        call,
        identity,
        action,
        resource,
        fail('CERT_REVOKED', { serial: cert.serialNumber }),
      );
    }
    if (cert.participantId !== identity) {
      throw await deny(call, identity, action, resource, fail('PEER_UNAUTHENTICATED'));
    }

    if (token) {
      try {
        const bearer = parseBearer(singleValue(call.metadata, 'authorization'));
        const verified = await verifier.verify(bearer, x5tS256OfDer(peer.raw));
        // Bound to this certificate, so to this participant; checked all the same.
        if (verified.participant !== identity) throw fail('TOKEN_CERT_MISMATCH');
      } catch (err) {
        if (!isDistilleryError(err)) throw err;
        throw await deny(call, identity, action, resource, err);
      }
    }
    return { participant: identity, fingerprint, serial: cert.serialNumber };
  }

  /**
   * Checks a call against the caller's grants on `stream`.
   *
   * @throws GRANT_DENIED, already logged
   */
  async function authoriseGrant(
    call: AnyCall,
    caller: Caller,
    action: string,
    resource: string,
    question: { stream: string; sequence?: number; tensors: RequestedTensor[] },
  ): Promise<Grant> {
    const grants = await findGrants(prisma, caller.participant, question.stream);
    try {
      return checkAccess({ participant: caller.participant, grants, ...question }) as Grant;
    } catch (err) {
      if (!isDistilleryError(err)) throw err;
      throw await deny(call, caller.participant, action, resource, err, {
        stream: question.stream,
        ...(question.sequence !== undefined ? { sequence: question.sequence } : {}),
        ...(question.tensors.length > 0 ? { tensors: question.tensors.map((t) => t.name) } : {}),
      });
    }
  }

  /**
   * Checks a download's tensors against the grants and returns the tensor names to send:
   * those named, each of which must be granted, or, when none are named, those one grant
   * allows (an empty list when that is every tensor of the version).
   *
   * @throws GRANT_DENIED, already logged
   */
  async function authoriseTensors(
    call: AnyCall,
    caller: Caller,
    action: string,
    resource: string,
    question: {
      stream: string;
      sequence: number;
      manifest: Pick<KnowledgeManifest, 'tensors'>;
      tensors: readonly string[];
    },
  ): Promise<string[]> {
    const all: RequestedTensor[] = question.manifest.tensors.map((t) => ({
      name: t.name,
      kind: t.kind as string,
      ...(t.layer !== undefined ? { layer: t.layer } : {}),
    }));
    const base = { stream: question.stream, sequence: question.sequence };
    if (question.tensors.length > 0) {
      // Unknown names are left to the chunk planner, which names them in its refusal.
      const named = all.filter((t) => question.tensors.includes(t.name));
      await authoriseGrant(call, caller, action, resource, { ...base, tensors: named });
      return [...question.tensors];
    }
    const grants = await findGrants(prisma, caller.participant, question.stream);
    let granted: RequestedTensor[];
    try {
      granted = grantedTensors({ participant: caller.participant, grants, ...base, tensors: all });
    } catch (err) {
      if (!isDistilleryError(err)) throw err;
      throw await deny(call, caller.participant, action, resource, err, base);
    }
    return granted.length === all.length ? [] : granted.map((t) => t.name);
  }

  /** Issues a token bound to the caller's certificate, and logs it. */
  async function issueToken(call: AnyCall): Promise<{ accessToken: string; expiresAt: string }> {
    const caller = await authenticate(call, 'token.issue', 'token', { token: false });
    const peer = call.getAuthContext()!.sslPeerCertificate as PeerCertificate;
    const issued = await issueParticipantToken({
      key: trust.tokenKey.privateKey,
      kid: trust.tokenKey.kid,
      issuer: trust.issuer,
      participant: caller.participant,
      x5tS256: x5tS256OfDer(peer.raw),
      ...(trust.tokenTtlSeconds ? { ttlSeconds: trust.tokenTtlSeconds } : {}),
    });
    await appendAccess(prisma, {
      actor: caller.participant,
      action: 'token.issue',
      resource: 'token',
      outcome: 'allowed',
      peerAddress: call.getPeer(),
      detail: { serial: caller.serial, expiresAt: issued.expiresAt },
    });
    return { accessToken: issued.token, expiresAt: String(issued.expiresAt) };
  }

  return {
    authenticate,
    authoriseGrant,
    authoriseTensors,
    issueToken,
    /** The serial of the caller's certificate when the registry now records it revoked. */
    revokedSerial: async (caller: Caller): Promise<string | null> => {
      const cert = await prisma.certificate.findUnique({
        where: { fingerprint: caller.fingerprint },
        select: { status: true, serialNumber: true },
      });
      return cert && cert.status !== 'active' ? cert.serialNumber : null;
    },
    /** Watches for the revocation of the caller's certificate; returns the unwatch. */
    watchRevocation: (caller: Caller, onRevoked: (serial: string) => void) =>
      trust.revocations.watch(caller.fingerprint, onRevoked),
  };
}

/** The authority of {@link createCallAuthority}. */
export type CallAuthority = ReturnType<typeof createCallAuthority>;

// Two authorization values would leave it open which one was checked.
function singleValue(metadata: Metadata, key: string): string | undefined {
  const values = metadata.get(key);
  if (values.length > 1) throw fail('TOKEN_INVALID', { reason: `more than one ${key} value` });
  const value = values[0];
  return typeof value === 'string' ? value : undefined;
}
