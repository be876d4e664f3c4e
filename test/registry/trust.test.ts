// Certificates, enrolment, grants and signed chain heads in the registry, on PGlite and on
// PostgreSQL: every decision is stored with its access log entry, or not at all.
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import {
  createCertificateAuthority,
  createCertificateSigningRequest,
  issueClientCertificate,
  type CertificateAuthority,
} from '../../services/shared/pki/index.js';
import { generateHubSigningKey, type HubSigningKey } from '../../services/shared/tokens/index.js';
import { queryAccessLog, verifyAccessChain } from '../../services/registry/access-log.js';
import {
  listCertificates,
  registerCertificate,
  revokeCertificate,
} from '../../services/registry/certificates.js';
import {
  approveEnrolment,
  listEnrolments,
  rejectEnrolment,
  submitEnrolment,
} from '../../services/registry/enrolment.js';
import {
  createGrant,
  ensureDefaultGrant,
  findGrants,
  listGrants,
  revokeGrant,
} from '../../services/registry/grants.js';
import {
  listCheckpoints,
  signChainHead,
  verifyChainHeadJws,
} from '../../services/registry/chain-signing.js';
import { enrolParticipant } from '../../services/registry/participants.js';
import { registryTargets, type TestRegistry } from '../helpers/database.js';

const op = { actor: 'operator-1', peerAddress: '127.0.0.1' };

describe.each(registryTargets())('trust registry ($name)', (target) => {
  let db: TestRegistry;
  let ca: CertificateAuthority;
  let key: HubSigningKey;

  beforeAll(async () => {
    db = await target.open();
    ca = await createCertificateAuthority({ commonName: 'Test CA' });
    key = await generateHubSigningKey();
    await enrolParticipant(db.prisma, { id: 'bank-a' });
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('keeps a CSR pending with a pending participant, then approves it into an active one', async () => {
    const { csrPem } = await createCertificateSigningRequest({ identity: 'bank-n' });
    const request = await submitEnrolment(db.prisma, csrPem, op);
    expect(request.status).toBe('pending');
    expect((await db.prisma.participant.findUnique({ where: { id: 'bank-n' } }))?.status).toBe(
      'pending',
    );
    const { certificate } = await approveEnrolment(db.prisma, request.id, { ca }, op);
    expect(certificate).toMatchObject({
      participantId: 'bank-n',
      status: 'active',
      source: 'enrolment',
    });
    expect((await db.prisma.participant.findUnique({ where: { id: 'bank-n' } }))?.status).toBe(
      'active',
    );
    expect((await listEnrolments(db.prisma, 'approved')).map((r) => r.id)).toContain(request.id);
    const log = await queryAccessLog(db.prisma, { resource: `enrolment:${request.id}` });
    expect(log.entries.map((e) => e.action)).toEqual(['enrolment.submit', 'enrolment.approve']);
  });

  it('rejects a request, and refuses to decide it twice', async () => {
    const { csrPem } = await createCertificateSigningRequest({ identity: 'bank-q' });
    const request = await submitEnrolment(db.prisma, csrPem, op);
    await rejectEnrolment(db.prisma, request.id, 'unknown bank', op);
    const again = await approveEnrolment(db.prisma, request.id, { ca }, op).catch(
      (e: unknown) => e,
    );
    expect(hasCode(again, 'ENROLMENT_DECIDED')).toBe(true);
  });

  it('registers an offline-issued certificate, refuses one of another CA, and revokes by serial', async () => {
    const issued = await issueClientCertificate(ca, { identity: 'bank-a' });
    const caKey = new X509Certificate(ca.certPem).publicKey;
    const cert = await registerCertificate(db.prisma, issued.certPem, caKey, op);
    expect(cert).toMatchObject({
      fingerprint: issued.fingerprint256,
      serialNumber: issued.serialNumber,
    });
    const rogue = await issueClientCertificate(
      await createCertificateAuthority({ commonName: 'R' }),
      {
        identity: 'bank-a',
      },
    );
    expect(
      hasCode(
        await registerCertificate(db.prisma, rogue.certPem, caKey, op).catch((e) => e),
        'CERT_INVALID',
      ),
    ).toBe(true);

    const revoked = await revokeCertificate(db.prisma, issued.serialNumber, 'rotated', op);
    expect(revoked).toMatchObject({
      status: 'revoked',
      revokedBy: 'operator-1',
      revokedReason: 'rotated',
    });
    // A second revocation keeps the first one's facts.
    const twice = await revokeCertificate(db.prisma, issued.fingerprint256, 'other', op);
    expect(twice.revokedReason).toBe('rotated');
    expect((await listCertificates(db.prisma, 'bank-a'))[0]?.status).toBe('revoked');
  });

  it('logs a certificate revocation once: a repeat returns the stored record and writes nothing', async () => {
    const issued = await issueClientCertificate(ca, { identity: 'bank-a' });
    const caKey = new X509Certificate(ca.certPem).publicKey;
    await registerCertificate(db.prisma, issued.certPem, caKey, op);
    const first = await revokeCertificate(db.prisma, issued.serialNumber, 'lost', op);
    const again = await revokeCertificate(db.prisma, issued.fingerprint256, 'again', op);
    const third = await revokeCertificate(db.prisma, issued.serialNumber, null, op);
    expect(again.revokedAt).toEqual(first.revokedAt);
    expect(third.revokedReason).toBe('lost');
    const logged = (
      await queryAccessLog(db.prisma, { action: 'certificate.revoke', limit: 1000 })
    ).entries.filter((e) => e.resource === `certificate:${issued.fingerprint256}`);
    expect(logged.map((e) => [e.outcome, e.reason])).toEqual([['allowed', 'lost']]);
  });

  it('creates, finds, expires and revokes grants, logging each decision', async () => {
    const grant = await createGrant(
      db.prisma,
      {
        participantId: 'bank-a',
        stream: 'default',
        kinds: ['hidden'],
        layers: ['hidden_1'],
        toSequence: 4,
        policy: { queryMode: true },
      },
      op,
    );
    expect(grant.policy).toEqual({ queryMode: true });
    await createGrant(
      db.prisma,
      {
        participantId: 'bank-a',
        stream: 'default',
        kinds: ['logits'],
        expiresAt: new Date(Date.now() - 1000),
      },
      op,
    );
    expect((await findGrants(db.prisma, 'bank-a', 'default')).map((g) => g.id)).toEqual([grant.id]);
    await revokeGrant(db.prisma, grant.id, op);
    expect(await findGrants(db.prisma, 'bank-a', 'default')).toEqual([]);
    expect(
      (await listGrants(db.prisma, { participantId: 'bank-a', includeRevoked: true })).length,
    ).toBe(2);
    const log = await queryAccessLog(db.prisma, { resource: `grant:${grant.id}` });
    expect(log.entries.map((e) => e.action)).toEqual(['grant.create', 'grant.revoke']);
  });

  it('refuses invalid grants and grants for unknown participants, writing nothing', async () => {
    const before = (await queryAccessLog(db.prisma, { action: 'grant.create', limit: 1000 }))
      .entries.length;
    for (const input of [
      { participantId: 'bank-a', stream: 'default', kinds: [] },
      { participantId: 'bank-a', stream: 'default', kinds: ['hidden'] },
      {
        participantId: 'bank-a',
        stream: 'default',
        kinds: ['logits'],
        fromSequence: 5,
        toSequence: 2,
      },
      // Past the 32-bit columns: refused by name, not a database error.
      { participantId: 'bank-a', stream: 'default', kinds: ['logits'], fromSequence: 2 ** 31 },
      { participantId: 'bank-a', stream: 'default', kinds: ['logits'], toSequence: 99999999999 },
    ]) {
      expect(
        hasCode(await createGrant(db.prisma, input, op).catch((e) => e), 'GRANT_INVALID'),
      ).toBe(true);
    }
    const badPolicy = await createGrant(
      db.prisma,
      { participantId: 'bank-a', stream: 'default', kinds: ['logits'], policy: { release: 'all' } },
      op,
    ).catch((e) => e);
    expect(hasCode(badPolicy, 'PRIVACY_POLICY_INVALID')).toBe(true);
    expect(badPolicy.message).toMatch(/release/);
    const unknown = await createGrant(
      db.prisma,
      { participantId: 'nobody', stream: 'default', kinds: ['logits'] },
      op,
    ).catch((e) => e);
    expect(hasCode(unknown, 'PARTICIPANT_NOT_FOUND')).toBe(true);
    expect(
      (await queryAccessLog(db.prisma, { action: 'grant.create', limit: 1000 })).entries.length,
    ).toBe(before);
  });

  it('gives a default full grant only to a participant that never held one on the stream', async () => {
    await enrolParticipant(db.prisma, { id: 'bank-d' });
    const first = await ensureDefaultGrant(db.prisma, 'bank-d', 'default', { actor: 'hub:enrol' });
    expect(first).toMatchObject({ layers: ['*'], toSequence: null });
    await revokeGrant(db.prisma, first!.id, op);
    expect(
      await ensureDefaultGrant(db.prisma, 'bank-d', 'default', { actor: 'hub:enrol' }),
    ).toBeNull();
    expect(await findGrants(db.prisma, 'bank-d', 'default')).toEqual([]);
  });

  it('signs the chain head once per head, and the signature verifies only with its key', async () => {
    const cp = await signChainHead(db.prisma, key, 'hub');
    expect(await signChainHead(db.prisma, key, 'hub')).toEqual(cp);
    const head = await verifyAccessChain(db.prisma);
    expect(cp).toMatchObject({ sequence: head.headSequence, hash: head.headHash, keyId: key.kid });
    const verdict = await verifyChainHeadJws(cp.jws, key.publicKey);
    expect(verdict).toMatchObject({
      ok: true,
      claims: { sequence: head.headSequence, hash: head.headHash },
    });
    const other = await generateHubSigningKey();
    expect((await verifyChainHeadJws(cp.jws, other.publicKey)).ok).toBe(false);
    expect((await listCheckpoints(db.prisma)).map((c) => c.sequence)).toContain(cp.sequence);
  });
});
