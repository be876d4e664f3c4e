// Attacks on the hub's gRPC knowledge service, each against a real hub over real mTLS: bad
// certificates, forged or misused tokens, calls outside grants, forged identity in metadata.
import { credentials, status as GrpcStatus } from '@grpc/grpc-js';
import {
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCertificateAuthority,
  createCertificateSigningRequest,
  issueClientCertificate,
  x5tS256OfDer,
} from '../../services/shared/pki/index.js';
import { KNOWLEDGE_AUDIENCE } from '../../services/shared/tokens/index.js';
import { CHANNEL_OPTIONS } from '../../services/shared/transport/limits.js';
import { loadKnowledgeProto } from '../../services/shared/transport/proto.js';
import { queryAccessLog } from '../../services/registry/access-log.js';
import { revokeCertificate } from '../../services/registry/certificates.js';
import { startKnowledgeServer } from '../../services/hub/knowledge-server.js';
import { Announcer } from '../../services/hub/announcer.js';
import { silentLogger } from '../../services/shared/logger.js';
import { X509Certificate } from 'node:crypto';
import { createHubClient } from '../../services/participant/hub-client.js';
import {
  bearer,
  drainStream,
  getManifest,
  issueToken,
  ISSUER,
  startTrustHub,
  type TrustHub,
} from '../helpers/trust-hub.js';

let t: TrustHub;
let v1: string;
let v2: string;
let operator: string;
let tokenKeyPem: string;

const bankA = () => t.participantCert('bank-a');

/** A token signed with the hub's own participant-token key, with the claims given. */
async function craft(
  claims: Record<string, unknown>,
  opts: { exp?: number | null; aud?: string; iss?: string } = {},
) {
  const key = createPrivateKey(tokenKeyPem);
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ role: 'participant', ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? KNOWLEDGE_AUDIENCE)
    .setIssuedAt(now - 5);
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? now + 120);
  return jwt.sign(key);
}

/** Reads `iterator` to its end; the error it ended with, or undefined when it just ended. */
async function errorAtEnd(
  iterator: AsyncIterator<unknown>,
): Promise<{ code?: number; details?: string } | undefined> {
  try {
    for (;;) if ((await iterator.next()).done) break;
  } catch (e) {
    return e as { code?: number; details?: string };
  }
  return undefined;
}

const thumbprint = (certPem: string) => x5tS256OfDer(Buffer.from(new X509Certificate(certPem).raw));

async function deniedEntries(actor: string, action?: string) {
  return (
    await queryAccessLog(t.hub.registry.prisma, {
      actor,
      outcome: 'denied',
      ...(action ? { action } : {}),
      limit: 1000,
    })
  ).entries;
}

beforeAll(async () => {
  t = await startTrustHub({
    purpose: 'adv-grpc',
    participants: ['bank-a', 'bank-b', 'bank-c', 'bank-d', 'bank-r', 'bank-s'],
    enrolled: ['bank-a', 'bank-b', 'bank-r', 'bank-s'],
    versions: 2,
  });
  operator = await t.apiToken('operator');
  const versions = (await t.api('GET', '/v1/streams/default/versions', operator)).body.versions;
  v1 = versions.find((v: { sequence: number }) => v.sequence === 1).id;
  v2 = versions.find((v: { sequence: number }) => v.sequence === 2).id;
  tokenKeyPem = await readFile(`${t.fixture.dir}/hub-state/trust/participant-token.key`, 'utf8');
  // bank-c: soft labels and hidden_1 of version 1 only. bank-d: enrolled, no grant at all.
  for (const id of ['bank-c', 'bank-d']) {
    expect((await t.api('POST', '/v1/participants', operator, { id })).status).toBe(201);
  }
  const grant = await t.api('POST', '/v1/grants', operator, {
    participant: 'bank-c',
    stream: 'default',
    kinds: ['probabilities', 'hidden'],
    layers: ['hidden_1'],
    fromSequence: 1,
    toSequence: 1,
  });
  expect(grant.status).toBe(201);
}, 240_000);

afterAll(async () => {
  await t?.close();
});

describe('certificates', () => {
  const attempt = async (certPem?: string, keyPem?: string) => {
    const stub = new (loadKnowledgeProto().distillery.v1.Knowledge)(
      t.address,
      certPem
        ? credentials.createSsl(Buffer.from(t.caPem), Buffer.from(keyPem!), Buffer.from(certPem))
        : credentials.createSsl(Buffer.from(t.caPem)),
      CHANNEL_OPTIONS,
    );
    const result = await new Promise<number>((resolve) =>
      stub.IssueToken({}, { deadline: Date.now() + 5000 }, (err) => resolve(err?.code ?? 0)),
    );
    stub.close();
    return result;
  };
  const handshakes = async () =>
    (await queryAccessLog(t.hub.registry.prisma, { action: 'handshake', limit: 1000 })).entries;

  it('refuses a client without a certificate at the handshake', async () => {
    const before = (await handshakes()).length;
    expect(await attempt()).toBe(GrpcStatus.UNAVAILABLE);
    expect((await handshakes()).slice(before)).toContainEqual(
      expect.objectContaining({ actor: 'anonymous', reason: 'NO_CLIENT_CERTIFICATE' }),
    );
  });

  it('refuses a certificate from another CA naming an enrolled participant', async () => {
    const rogue = await issueClientCertificate(
      await createCertificateAuthority({ commonName: 'Rogue CA' }),
      { identity: 'bank-a' },
    );
    const before = (await handshakes()).length;
    expect(await attempt(rogue.certPem, rogue.keyPem)).toBe(GrpcStatus.UNAVAILABLE);
    const mine = (await handshakes()).slice(before).filter((e) => e.actor === 'unverified:bank-a');
    expect(mine[0]?.reason).toMatch(/UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE)/);
  });

  const ca = async () => ({
    certPem: await readFile(t.fixture.pki.caCert, 'utf8'),
    keyPem: await readFile(t.fixture.pki.caKey, 'utf8'),
  });

  it('refuses an expired certificate of the consortium CA', async () => {
    const expired = await issueClientCertificate(await ca(), {
      identity: 'bank-a',
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const before = (await handshakes()).length;
    expect(await attempt(expired.certPem, expired.keyPem)).toBe(GrpcStatus.UNAVAILABLE);
    expect((await handshakes()).slice(before)).toContainEqual(
      expect.objectContaining({ actor: 'unverified:bank-a', reason: 'CERT_HAS_EXPIRED' }),
    );
  });

  it('refuses a certificate that is not yet valid', async () => {
    const future = await issueClientCertificate(await ca(), {
      identity: 'bank-a',
      notBefore: new Date(Date.now() + 86_400_000),
      notAfter: new Date(Date.now() + 10 * 86_400_000),
    });
    const before = (await handshakes()).length;
    expect(await attempt(future.certPem, future.keyPem)).toBe(GrpcStatus.UNAVAILABLE);
    expect((await handshakes()).slice(before)).toContainEqual(
      expect.objectContaining({ actor: 'unverified:bank-a', reason: 'CERT_NOT_YET_VALID' }),
    );
  });

  it('records a CA-verified certificate of an enrolled participant on first use', async () => {
    const cert = await t.participantCert('bank-s');
    await issueToken(t.grpc(cert));
    const listed = await t.api('GET', '/v1/certificates?participant=bank-s', operator);
    expect(listed.body.certificates).toHaveLength(1);
    expect(listed.body.certificates[0]).toMatchObject({
      source: 'first-use',
      status: 'active',
      fingerprint: new X509Certificate(cert.certPem).fingerprint256.replace(/:/g, '').toLowerCase(),
    });
  });

  it('refuses a revoked certificate on its next call, with a token issued before', async () => {
    const cert = await t.participantCert('bank-r');
    const client = t.grpc(cert);
    const token = await issueToken(client);
    expect((await getManifest(client, v1, bearer(token))).err).toBeNull();
    const serial = new X509Certificate(cert.certPem).serialNumber.toLowerCase();
    const revoked = await t.api('POST', `/v1/certificates/${serial}/revoke`, operator, {
      reason: 'key compromise',
    });
    expect(revoked.status).toBe(200);
    const { err } = await getManifest(client, v1, bearer(token));
    expect(err?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(err?.details).toBe(`certificate ${serial} was revoked`);
    // Nor can it get a fresh token.
    await expect(issueToken(client)).rejects.toMatchObject({ code: GrpcStatus.UNAUTHENTICATED });
    const log = await queryAccessLog(t.hub.registry.prisma, { action: 'certificate.revoke' });
    expect(log.entries.at(-1)).toMatchObject({ actor: 'operator-1', reason: 'key compromise' });
  });

  it('closes an open subscription of a certificate when it is revoked', async () => {
    const { csrPem, keyPem } = await createCertificateSigningRequest({ identity: 'bank-s' });
    const submitted = await t.api('POST', '/v1/enrolments', operator, { csrPem });
    const approved = await t.api(
      'POST',
      `/v1/enrolments/${submitted.body.enrolment.id}/approve`,
      operator,
      {},
    );
    const cert = { certPem: approved.body.certPem as string, keyPem };
    const client = t.grpc(cert);
    const token = await issueToken(client);
    const stream = client.Subscribe({ stream: 'default', afterSequence: '0' }, bearer(token));
    const iterator = (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    await iterator.next(); // the subscription is open and announcing
    const serial = approved.body.certificate.serialNumber as string;
    const revoked = await t.api('POST', `/v1/certificates/${serial}/revoke`, operator, {});
    expect(revoked.body.closedStreams).toBe(1);
    const err = await errorAtEnd(iterator);
    expect(err?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(err?.details).toBe(`certificate ${serial} was revoked`);
  });

  it('closes an open subscription within a poll when another hub process revokes the certificate', async () => {
    const cert = await t.participantCert('bank-s');
    const client = t.grpc(cert);
    const stream = client.Subscribe(
      { stream: 'default', afterSequence: '0' },
      bearer(await issueToken(client)),
    );
    const iterator = (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    await iterator.next();
    // Straight in the shared registry, as a second hub on the same database would: this
    // process hears nothing of it but the registry.
    const serial = new X509Certificate(cert.certPem).serialNumber.toLowerCase();
    await revokeCertificate(t.hub.registry.prisma, serial, 'elsewhere', { actor: 'other-hub' });
    const err = await errorAtEnd(iterator);
    expect(err?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(err?.details).toBe(`certificate ${serial} was revoked`);
  }, 30_000);

  it('keeps grants and stream position across a certificate rotation', async () => {
    // bank-a asks for a new certificate before its old one expires; the key stays with it.
    const { csrPem, keyPem } = await createCertificateSigningRequest({ identity: 'bank-a' });
    const submitted = await t.api('POST', '/v1/enrolments', operator, { csrPem });
    expect(submitted.status).toBe(201);
    const approved = await t.api(
      'POST',
      `/v1/enrolments/${submitted.body.enrolment.id}/approve`,
      operator,
      {},
    );
    expect(approved.status).toBe(200);
    expect(approved.body.certificate.source).toBe('enrolment');
    const rotated = createHubClient({
      address: t.address,
      caPem: t.caPem,
      certPem: approved.body.certPem,
      keyPem,
    });
    // Resuming after sequence 1, as the node's own state says: only version 2 follows.
    const sub = rotated.subscribe('default', 1);
    const { items } = await drainStream(sub, 1);
    sub.cancel();
    expect(items.map((a) => a.versionId)).toEqual([v2]);
    expect((await rotated.getManifest(v2)).length).toBeGreaterThan(0);
    rotated.close();
  });

  it('refuses an unregistered certificate when the hub admits registered ones only, then serves it once registered', async () => {
    const announcer = new Announcer();
    const strict = await startKnowledgeServer({
      registry: t.hub.registry,
      announcer,
      host: '127.0.0.1',
      port: 0,
      tls: {
        caPem: t.caPem,
        certPem: await readFile(t.fixture.pki.hubCert, 'utf8'),
        keyPem: await readFile(t.fixture.pki.hubKey, 'utf8'),
      },
      logger: silentLogger(),
      trust: { admission: 'registered', issuer: ISSUER },
    });
    try {
      const fresh = await issueClientCertificate(await ca(), { identity: 'bank-b' });
      const stub = new (loadKnowledgeProto().distillery.v1.Knowledge)(
        `localhost:${strict.port}`,
        credentials.createSsl(
          Buffer.from(t.caPem),
          Buffer.from(fresh.keyPem),
          Buffer.from(fresh.certPem),
        ),
        CHANNEL_OPTIONS,
      );
      await expect(issueToken(stub)).rejects.toMatchObject({
        code: GrpcStatus.UNAUTHENTICATED,
        details: expect.stringMatching(/is not registered at this hub/),
      });
      const registered = await t.api('POST', '/v1/certificates', operator, {
        certPem: fresh.certPem,
      });
      expect(registered.status).toBe(201);
      expect(registered.body.certificate.source).toBe('upload');
      expect(await issueToken(stub)).toMatch(/^ey/);
      stub.close();
    } finally {
      await strict.close(200);
    }
  });

  it("refuses an auditor's certificate on a participant call", async () => {
    const files = t.fixture.pki.auditor('aud-1');
    const client = t.grpc({
      certPem: await readFile(files.cert, 'utf8'),
      keyPem: await readFile(files.key, 'utf8'),
    });
    await expect(issueToken(client)).rejects.toMatchObject({ code: GrpcStatus.PERMISSION_DENIED });
    expect(await deniedEntries('auditor:aud-1', 'token.issue')).toHaveLength(1);
  });

  it("refuses an operator's certificate on a participant call", async () => {
    const files = t.fixture.pki.operator('op-1');
    const client = t.grpc({
      certPem: await readFile(files.cert, 'utf8'),
      keyPem: await readFile(files.key, 'utf8'),
    });
    const token = await craft({
      sub: 'op-1',
      cnf: { 'x5t#S256': thumbprint(await readFile(files.cert, 'utf8')) },
    });
    const { err } = await getManifest(client, v1, bearer(token));
    expect(err?.code).toBe(GrpcStatus.PERMISSION_DENIED);
  });
});

describe('certificate-bound tokens', () => {
  const expectRefused = async (
    token: string | null,
    reason: RegExp,
    extra: Record<string, string> = {},
  ) => {
    const cert = await bankA();
    const before = (await deniedEntries('bank-a', 'manifest')).length;
    const { err, manifest } = await getManifest(t.grpc(cert), v1, bearer(token, extra));
    expect(manifest).toBeNull();
    expect(err?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(err?.details).toMatch(reason);
    const after = await deniedEntries('bank-a', 'manifest');
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)?.reason).toMatch(reason);
  };
  const bankAThumb = async () => thumbprint((await bankA()).certPem);
  /**
   * A participant token for bank-a, bound to its certificate, of the hub's issuer and
   * audience, still without header, times and signature: what each forgery then sets.
   */
  const bankAClaims = async () =>
    new SignJWT({ role: 'participant', cnf: { 'x5t#S256': await bankAThumb() } })
      .setSubject('bank-a')
      .setIssuer(ISSUER)
      .setAudience(KNOWLEDGE_AUDIENCE);

  it('has the participant client ask for one token and reuse it until it nears expiry', async () => {
    const files = await t.participantCert('bank-b');
    const issued = async () =>
      (
        await queryAccessLog(t.hub.registry.prisma, {
          actor: 'bank-b',
          action: 'token.issue',
          limit: 1000,
        })
      ).entries.length;
    const before = await issued();
    const reusing = createHubClient({ address: t.address, caPem: t.caPem, ...files });
    for (let i = 0; i < 3; i++) await reusing.getManifest(v1);
    reusing.close();
    expect(await issued()).toBe(before + 1);
    // A refresh margin longer than the token's life makes it renew before every call.
    const renewing = createHubClient({
      address: t.address,
      caPem: t.caPem,
      ...files,
      tokenRefreshSeconds: 400,
    });
    for (let i = 0; i < 3; i++) await renewing.getManifest(v1);
    renewing.close();
    expect(await issued()).toBe(before + 4);
  });

  it('serves a call with a token the hub issued to this certificate', async () => {
    const client = t.grpc(await bankA());
    const { err, manifest } = await getManifest(client, v1, bearer(await issueToken(client)));
    expect(err).toBeNull();
    expect(JSON.parse(manifest!.toString('utf8')).stream).toBe('default');
  });

  it('refuses a call without a token', async () => {
    await expectRefused(null, /bearer token is required/);
  });

  it("refuses another participant's token presented with this certificate", async () => {
    const bToken = await issueToken(t.grpc(await t.participantCert('bank-b')));
    await expectRefused(bToken, /bound to another certificate/);
  });

  it.each([
    { what: 'without exp', opts: { exp: null }, refusal: /no exp claim/ },
    {
      what: 'for another audience',
      opts: { aud: 'distillery-hub-api' },
      refusal: /audience mismatch/,
    },
    { what: 'from another issuer', opts: { iss: 'https://evil.test' }, refusal: /issuer mismatch/ },
  ])('refuses a token $what', async ({ opts, refusal }) => {
    await expectRefused(
      await craft({ sub: 'bank-a', cnf: { 'x5t#S256': await bankAThumb() } }, opts),
      refusal,
    );
  });

  it('refuses an unsigned token (alg: none)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const unsigned = new UnsecuredJWT({
      role: 'participant',
      cnf: { 'x5t#S256': await bankAThumb() },
    })
      .setSubject('bank-a')
      .setIssuer(ISSUER)
      .setAudience(KNOWLEDGE_AUDIENCE)
      .setExpirationTime(now + 60)
      .encode();
    await expectRefused(unsigned, /algorithm not allowed|malformed/);
  });

  it("refuses an HMAC token keyed with the hub's public key", async () => {
    const publicPem = createPublicKey(createPrivateKey(tokenKeyPem)).export({
      type: 'spki',
      format: 'pem',
    });
    const now = Math.floor(Date.now() / 1000);
    const forged = await (
      await bankAClaims()
    )
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setExpirationTime(now + 60)
      .sign(createSecretKey(Buffer.from(publicPem)));
    await expectRefused(forged, /algorithm not allowed/);
  });

  it('refuses a token expired beyond the clock tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(
      await craft({ sub: 'bank-a', cnf: { 'x5t#S256': await bankAThumb() } }, { exp: now - 120 }),
      /token has expired/,
    );
  });

  it('accepts a token expired within the clock tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await craft(
      { sub: 'bank-a', cnf: { 'x5t#S256': await bankAThumb() } },
      { exp: now - 5 },
    );
    const { err } = await getManifest(t.grpc(await bankA()), v1, bearer(token));
    expect(err).toBeNull();
  });

  it('refuses a well-formed token signed by a key other than the hub’s', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const now = Math.floor(Date.now() / 1000);
    const forged = await (
      await bankAClaims()
    )
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .setExpirationTime(now + 60)
      .sign(privateKey);
    await expectRefused(forged, /signature does not verify/);
  });

  it('refuses a token with no certificate binding', async () => {
    await expectRefused(await craft({ sub: 'bank-a' }), /no cnf.x5t#S256 claim/);
  });

  it('refuses an operator API token presented on gRPC', async () => {
    await expectRefused(
      await t.apiToken('operator'),
      /signature does not verify|audience mismatch/,
    );
  });

  it('refuses credentials of another scheme, and a bearer value that is no JWS', async () => {
    const client = t.grpc(await bankA());
    const basic = bearer(null, { authorization: 'Basic YmFuay1hOnNlY3JldA==' });
    const first = await getManifest(client, v1, basic);
    expect(first.err?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(first.err?.details).toMatch(/bearer token is required/);
    await expectRefused('not.a.jwt', /malformed token/);
  });

  it('refuses a token that is not yet valid', async () => {
    const key = createPrivateKey(tokenKeyPem);
    const now = Math.floor(Date.now() / 1000);
    const early = await (
      await bankAClaims()
    )
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .setNotBefore(now + 3600)
      .setExpirationTime(now + 7200)
      .sign(key);
    await expectRefused(early, /not yet valid/);
  });

  it('ignores identity claimed in metadata: the certificate decides who calls', async () => {
    // bank-c holds version 1 only; it claims to be bank-a, which holds everything.
    const client = t.grpc(await t.participantCert('bank-c'));
    const token = await issueToken(client);
    const { err } = await getManifest(
      client,
      v2,
      bearer(token, {
        'x-participant-id': 'bank-a',
        'x-distillery-identity': 'bank-a',
        'x-forwarded-client-cert': 'CN=bank-a',
      }),
    );
    expect(err?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    const denied = await deniedEntries('bank-c', 'manifest');
    expect(denied.at(-1)?.resource).toBe(`version:${v2}`);
    expect(await deniedEntries('bank-a', 'manifest')).not.toContainEqual(
      expect.objectContaining({ resource: `version:${v2}` }),
    );
  });
});

describe('grants', () => {
  const bankC = () => t.participantCert('bank-c');

  it('refuses a version outside the granted range, and logs it', async () => {
    const client = t.grpc(await bankC());
    const { err } = await getManifest(client, v2, bearer(await issueToken(client)));
    expect(err?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(err?.details).toMatch(/holds no grant for version 2 of stream "default"/);
    expect((await deniedEntries('bank-c', 'manifest')).at(-1)?.detail).toMatchObject({
      sequence: 2,
    });
  });

  it('serves the manifest of a version inside the grant', async () => {
    const client = t.grpc(await bankC());
    expect((await getManifest(client, v1, bearer(await issueToken(client)))).err).toBeNull();
  });

  it('refuses a hidden layer outside the grant', async () => {
    const client = t.grpc(await bankC());
    const stream = client.FetchChunks(
      { versionId: v1, fromIndex: 0, tensors: ['hidden.hidden_2'], indices: [] },
      bearer(await issueToken(client)),
    );
    const { items, err } = await drainStream(stream);
    expect(items).toHaveLength(0);
    expect(err?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(err?.details).toMatch(/hidden layer "hidden_2"/);
  });

  it('refuses a kind outside the grant', async () => {
    const client = t.grpc(await bankC());
    const stream = client.FetchChunks(
      { versionId: v1, fromIndex: 0, tensors: ['logits'], indices: [] },
      bearer(await issueToken(client)),
    );
    const { err } = await drainStream(stream);
    expect(err?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(err?.details).toMatch(/logits \(tensor "logits"\)/);
  });

  it('serves a granted layer it asks for by name', async () => {
    const client = t.grpc(await bankC());
    const stream = client.FetchChunks(
      { versionId: v1, fromIndex: 0, tensors: ['hidden.hidden_1'], indices: [] },
      bearer(await issueToken(client)),
    );
    const { items, err } = await drainStream(stream);
    expect(err).toBeNull();
    expect(items.length).toBeGreaterThan(0);
  });

  it('sends only the granted tensors when a download names none', async () => {
    const client = t.grpc(await bankC());
    const all = (
      await drainStream(
        t
          .grpc(await bankA())
          .FetchChunks(
            { versionId: v1, fromIndex: 0, tensors: [], indices: [] },
            bearer(await issueToken(t.grpc(await bankA()))),
          ),
      )
    ).items;
    const mine = await drainStream(
      client.FetchChunks(
        { versionId: v1, fromIndex: 0, tensors: [], indices: [] },
        bearer(await issueToken(client)),
      ),
    );
    expect(mine.err).toBeNull();
    expect(mine.items.length).toBeGreaterThan(0);
    expect(mine.items.length).toBeLessThan(all.length);
    const log = await queryAccessLog(t.hub.registry.prisma, {
      actor: 'bank-c',
      action: 'download',
      outcome: 'allowed',
      limit: 1000,
    });
    expect(log.entries.at(-1)?.detail).toMatchObject({
      tensors: ['probabilities', 'hidden.hidden_1'],
    });
  });

  it('announces only versions inside the grant', async () => {
    const client = t.grpc(await bankC());
    const stream = client.Subscribe(
      { stream: 'default', afterSequence: '0' },
      bearer(await issueToken(client)),
    );
    const iterator = (stream as AsyncIterable<{ versionId: string }>)[Symbol.asyncIterator]();
    const first = await iterator.next();
    // Version 2 is published too; the hub would send it at once if the grant allowed it.
    const more = await Promise.race([
      iterator.next().then(() => 'more'),
      new Promise((resolve) => setTimeout(() => resolve('none'), 1500)),
    ]);
    stream.cancel();
    expect(first.value?.versionId).toBe(v1);
    expect(more).toBe('none');
  });

  it('refuses a subscription to a participant without a grant on the stream', async () => {
    const client = t.grpc(await t.participantCert('bank-d'));
    const stream = client.Subscribe(
      { stream: 'default', afterSequence: '0' },
      bearer(await issueToken(client)),
    );
    const { err } = await drainStream(stream);
    expect(err?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(err?.details).toMatch(/holds no grant for stream "default"/);
    expect((await deniedEntries('bank-d', 'subscribe')).length).toBe(1);
  });

  it('refuses a call once its grant is revoked, and again once a new grant has expired', async () => {
    const grantD = await t.api('POST', '/v1/grants', operator, {
      participant: 'bank-d',
      stream: 'default',
      kinds: ['logits'],
    });
    const client = t.grpc(await t.participantCert('bank-d'));
    const token = await issueToken(client);
    expect((await getManifest(client, v1, bearer(token))).err).toBeNull();
    await t.api('POST', `/v1/grants/${grantD.body.grant.id}/revoke`, operator, {});
    expect((await getManifest(client, v1, bearer(token))).err?.code).toBe(
      GrpcStatus.PERMISSION_DENIED,
    );

    const shortLived = await t.api('POST', '/v1/grants', operator, {
      participant: 'bank-d',
      stream: 'default',
      kinds: ['logits'],
      expiresAt: new Date(Date.now() + 1500).toISOString(),
    });
    expect(shortLived.status).toBe(201);
    expect((await getManifest(client, v1, bearer(token))).err).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 1800));
    expect((await getManifest(client, v1, bearer(token))).err?.code).toBe(
      GrpcStatus.PERMISSION_DENIED,
    );
  });

  it('refuses a participant that is not enrolled, whatever its certificate', async () => {
    const stub = t.grpc(await t.participantCert('bank-b'));
    expect(await issueToken(stub)).toMatch(/^ey/);
    // bank-b is enrolled; an identity the CA certified but the hub never enrolled is not.
    const ca = {
      certPem: await readFile(t.fixture.pki.caCert, 'utf8'),
      keyPem: await readFile(t.fixture.pki.caKey, 'utf8'),
    };
    const stranger = await issueClientCertificate(ca, { identity: 'bank-z' });
    await expect(issueToken(t.grpc(stranger))).rejects.toMatchObject({
      code: GrpcStatus.PERMISSION_DENIED,
    });
  });
});
