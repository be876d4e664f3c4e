// Attacks on the HTTP API's roles and on the access log, against a real hub over HTTPS: the
// wrong role for a route, misused tokens, bad enrolment material, and a log edited, deleted,
// reordered, inserted into or truncated, found both by the hub and offline from an export.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { CompactSign, exportJWK, importJWK, type CryptoKey } from 'jose';
import {
  createCertificateAuthority,
  createCertificateSigningRequest,
  issueClientCertificate,
} from '../../services/shared/pki/index.js';
import { canonicalJson } from '../../services/shared/digest.js';
import { hashAccessEntry, queryAccessLog } from '../../services/registry/access-log.js';
import { ExportVerifier } from '../../services/registry/audit-export.js';
import { bearer, issueToken, startTrustHub, type TrustHub } from '../helpers/trust-hub.js';

const run = promisify(execFile);

let t: TrustHub;
let operator: string;
let auditor: string;
let exportLines: string[];
let auditKey: CryptoKey;
let jwksPath: string;

type Line = Record<string, unknown> & { type: string; sequence?: string };

async function verify(lines: string[]) {
  const verifier = new ExportVerifier(auditKey);
  for (const line of lines) await verifier.add(line);
  return verifier.finish();
}
const parse = (lines: string[]) => lines.map((l) => JSON.parse(l) as Line);
const entryIndex = (lines: string[], sequence: number) =>
  parse(lines).findIndex((l) => l.type === 'entry' && l.sequence === String(sequence));

beforeAll(async () => {
  t = await startTrustHub({
    purpose: 'adv-audit',
    participants: ['bank-a', 'bank-b'],
    enrolled: ['bank-a', 'bank-b'],
    versions: 0,
  });
  operator = await t.apiToken('operator');
  auditor = await t.apiToken('auditor');
  // Some history: grpc calls, a refusal, operator decisions.
  const client = t.grpc(await t.participantCert('bank-a'));
  await issueToken(client);
  await new Promise((resolve) =>
    client.GetManifest({ versionId: 'f'.repeat(64) }, bearer(null), () => resolve(null)),
  );
  await t.api('POST', '/v1/participants', operator, { id: 'bank-c' });
  await t.api('POST', '/v1/grants', operator, {
    participant: 'bank-c',
    stream: 'default',
    kinds: ['logits'],
  });
  const exported = await t.apiText('/v1/audit/export', auditor);
  expect(exported.status).toBe(200);
  exportLines = exported.text.trim().split('\n');
  const keys = await t.api('GET', '/v1/audit/keys', '');
  auditKey = (await importJWK(keys.body.keys[0], 'ES256')) as CryptoKey;
  jwksPath = join(t.fixture.dir, 'audit-keys.json');
  await writeFile(jwksPath, JSON.stringify(keys.body));
}, 240_000);

afterAll(async () => {
  await t?.close();
});

describe('roles on the HTTP API', () => {
  it('refuses the audit API to a participant token, and logs it', async () => {
    const participant = await t.apiToken('participant', 'bank-a');
    const res = await t.api('GET', '/v1/audit/log', participant);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('TOKEN_ROLE');
    const log = await queryAccessLog(t.hub.registry.prisma, {
      actor: 'bank-a',
      action: 'audit.query',
      outcome: 'denied',
    });
    expect(log.entries).toHaveLength(1);
  });

  it("refuses a participant's hub-issued gRPC token on the HTTP API", async () => {
    const grpcToken = await issueToken(t.grpc(await t.participantCert('bank-a')));
    const res = await t.api('GET', '/v1/audit/export', grpcToken);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('TOKEN_INVALID');
  });

  it('refuses grant management to an auditor', async () => {
    const res = await t.api('POST', '/v1/grants', auditor, {
      participant: 'bank-a',
      stream: 'default',
      kinds: ['logits'],
    });
    expect(res.status).toBe(403);
    expect((await t.api('GET', '/v1/grants', auditor)).status).toBe(403);
  });

  it('refuses the audit export to an operator', async () => {
    expect((await t.apiText('/v1/audit/export', operator)).status).toBe(403);
  });

  it('refuses certificate revocation without a token', async () => {
    const res = await t.api('POST', `/v1/certificates/${'a'.repeat(32)}/revoke`, '', {});
    expect(res.status).toBe(401);
  });

  it('publishes the audit key to anyone, and only the public half', async () => {
    const res = await t.api('GET', '/v1/audit/keys', '');
    expect(res.status).toBe(200);
    expect(res.body.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(res.body.keys[0].d).toBeUndefined();
  });
});

describe('enrolment material', () => {
  it('rejects a certificate signing request whose signature does not verify', async () => {
    const { csrPem } = await createCertificateSigningRequest({ identity: 'bank-x' });
    // Flip one byte of the signature at the end of the DER.
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 3] ^= 0xff;
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const res = await t.api('POST', '/v1/enrolments', operator, { csrPem: bad });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('PKI_BAD_CSR');
  });

  it('refuses to register a certificate of another CA', async () => {
    const rogue = await issueClientCertificate(
      await createCertificateAuthority({ commonName: 'Rogue' }),
      { identity: 'bank-a' },
    );
    const res = await t.api('POST', '/v1/certificates', operator, { certPem: rogue.certPem });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/not signed by this hub's CA/);
  });

  it('refuses an uploaded certificate that was not issued for the request’s key, then approves once only', async () => {
    const { csrPem } = await createCertificateSigningRequest({ identity: 'bank-y' });
    const submitted = await t.api('POST', '/v1/enrolments', operator, { csrPem });
    expect(submitted.status).toBe(201);
    const id = submitted.body.enrolment.id;
    const { readFile } = await import('node:fs/promises');
    const ca = {
      certPem: await readFile(t.fixture.pki.caCert, 'utf8'),
      keyPem: await readFile(t.fixture.pki.caKey, 'utf8'),
    };
    const other = await issueClientCertificate(ca, { identity: 'bank-y' });
    const wrong = await t.api('POST', `/v1/enrolments/${id}/approve`, operator, {
      certPem: other.certPem,
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.message).toMatch(/not issued for enrolment request/);
    expect((await t.api('POST', `/v1/enrolments/${id}/approve`, operator, {})).status).toBe(200);
    const again = await t.api('POST', `/v1/enrolments/${id}/approve`, operator, {});
    expect(again.status).toBe(409);
    const log = await queryAccessLog(t.hub.registry.prisma, { action: 'enrolment.approve' });
    expect(log.entries.filter((e) => e.resource === `enrolment:${id}`)).toHaveLength(1);
  });

  it('rejects a grant naming a kind or layer that is not one', async () => {
    const res = await t.api('POST', '/v1/grants', operator, {
      participant: 'bank-a',
      stream: 'default',
      kinds: ['hidden'],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/kind "hidden" needs the layers/);
    const unknown = await t.api('POST', '/v1/grants', operator, {
      participant: 'bank-a',
      stream: 'default',
      kinds: ['weights'],
    });
    expect(unknown.status).toBe(400);
  });

  it('refuses grant sequences beyond 32 bits with a 400 naming the field', async () => {
    for (const [field, value] of [
      ['fromSequence', 99999999999999],
      ['toSequence', 99999999999],
      ['fromSequence', 2 ** 31],
    ] as const) {
      const res = await t.api('POST', '/v1/grants', operator, {
        participant: 'bank-a',
        stream: 'default',
        kinds: ['logits'],
        [field]: value,
      });
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body.error)).toContain(field);
    }
    const edge = await t.api('POST', '/v1/grants', operator, {
      participant: 'bank-a',
      stream: 'default',
      kinds: ['logits'],
      fromSequence: 2 ** 31 - 1,
    });
    expect(edge.status).toBe(201);
    await t.api('POST', `/v1/grants/${edge.body.grant.id}/revoke`, operator, {});
  });

  it('refuses a grant that has already expired, or on a stream that does not exist', async () => {
    const before = (
      await queryAccessLog(t.hub.registry.prisma, { action: 'grant.create', limit: 1000 })
    ).entries.length;
    const past = await t.api('POST', '/v1/grants', operator, {
      participant: 'bank-a',
      stream: 'default',
      kinds: ['logits'],
      expiresAt: '2000-01-01T00:00:00Z',
    });
    expect(past.status).toBe(400);
    expect(past.body.error).toMatchObject({ code: 'GRANT_INVALID' });
    expect(past.body.error.message).toMatch(/expiresAt 2000-01-01T00:00:00Z is already past/);
    const nostream = await t.api('POST', '/v1/grants', operator, {
      participant: 'bank-a',
      stream: 'nostream',
      kinds: ['logits'],
    });
    expect(nostream.status).toBe(404);
    expect(nostream.body.error).toMatchObject({ code: 'STREAM_NOT_FOUND' });
    expect(nostream.body.error.message).toMatch(/"nostream" does not exist/);
    const after = (
      await queryAccessLog(t.hub.registry.prisma, { action: 'grant.create', limit: 1000 })
    ).entries.length;
    expect(after).toBe(before);
  });
});

describe('the operator CLI against the hub', () => {
  it('enrols a bank from its own CSR, grants it one layer, and revokes its certificate', async () => {
    const dir = t.fixture.dir;
    const tokenFile = join(dir, 'operator.jwt');
    await writeFile(tokenFile, operator);
    const conn = [
      '--hub-url',
      t.baseUrl,
      '--ca-cert',
      t.fixture.pki.caCert,
      '--token-file',
      tokenFile,
    ];
    const cli = (...args: string[]) => run('node', ['bin/distillery.js', ...args]);

    await cli('pki', 'request', '--identity', 'bank-k', '--out', join(dir, 'bank-k'));
    const { stat } = await import('node:fs/promises');
    expect((await stat(join(dir, 'bank-k', 'bank-k.key'))).mode & 0o777).toBe(0o600);
    const submitted = JSON.parse(
      (await cli('pki', 'submit', '--csr', join(dir, 'bank-k', 'bank-k.csr'), ...conn)).stdout,
    );
    // Signed offline with the CA, then uploaded: the CA key need not be on the hub.
    await cli(
      'pki',
      'approve',
      '--dir',
      t.fixture.pki.dir,
      '--csr',
      join(dir, 'bank-k', 'bank-k.csr'),
    );
    const approved = JSON.parse(
      (
        await cli(
          'pki',
          'approve-request',
          '--request',
          submitted.enrolment.id,
          '--cert',
          join(dir, 'bank-k', 'bank-k.crt'),
          ...conn,
        )
      ).stdout,
    );
    expect(approved).toMatchObject({
      participantId: 'bank-k',
      source: 'enrolment',
      status: 'active',
    });
    const created = JSON.parse(
      (
        await cli(
          'grant',
          'create',
          '--participant',
          'bank-k',
          '--kinds',
          'hidden',
          '--layers',
          'hidden_1',
          '--to',
          '3',
          ...conn,
        )
      ).stdout,
    );
    expect(created.grant).toMatchObject({ kinds: ['hidden'], layers: ['hidden_1'], toSequence: 3 });
    const listed = JSON.parse(
      (await cli('grant', 'list', '--participant', 'bank-k', ...conn)).stdout,
    );
    expect(listed.grants.map((g: { id: string }) => g.id)).toEqual([created.grant.id]);
    const revoked = JSON.parse(
      (await cli('pki', 'revoke', join(dir, 'bank-k', 'bank-k.crt'), '--reason', 'test', ...conn))
        .stdout,
    );
    expect(revoked.certificate).toMatchObject({ status: 'revoked', revokedReason: 'test' });
  }, 90_000);

  it('lists, deprecates and rolls back versions of a stream', async () => {
    const dir = t.fixture.dir;
    const tokenFile = join(dir, 'stream-operator.jwt');
    await writeFile(tokenFile, operator);
    const conn = ['--hub-url', t.baseUrl, '--ca-cert', t.fixture.pki.caCert];
    const cli = async (...args: string[]) =>
      JSON.parse((await run('node', ['bin/distillery.js', ...args])).stdout);
    const publish = () =>
      t.hub.publisher.publish({
        stream: 'default',
        epochs: 1,
        temperature: 4,
        hiddenLayers: [],
        actor: 'test',
      });
    const v1 = (await publish()).version;
    const v2 = (await publish()).version;

    const versions = await cli('stream', 'versions', ...conn, '--token', auditor);
    expect(versions.versions.map((v: { id: string }) => v.id)).toEqual(
      expect.arrayContaining([v1.id, v2.id]),
    );
    await cli(
      'stream',
      'deprecate',
      v2.id,
      '--reason',
      'bad run',
      ...conn,
      '--token-file',
      tokenFile,
    );
    const before = await cli('stream', 'events', ...conn, '--token', auditor);
    const last = before.events.at(-1);
    expect(last).toMatchObject({ event: 'deprecated', versionId: v2.id, currentVersionId: v1.id });

    const v3 = (await publish()).version;
    await cli('stream', 'rollback', '--to', v1.id, ...conn, '--token-file', tokenFile);
    const after = await cli(
      'stream',
      'events',
      '--after',
      String(last.sequence),
      ...conn,
      '--token',
      auditor,
    );
    expect(after.events.map((e: { event: string }) => e.event)).toEqual([
      'published',
      'rolled_back',
    ]);
    expect(after.events[1]).toMatchObject({ versionId: v1.id, currentVersionId: v1.id });
    expect(after.events[0].versionId).toBe(v3.id);

    // A version id that is not one is refused before any call is made.
    await expect(
      run('node', [
        'bin/distillery.js',
        'stream',
        'deprecate',
        'nope',
        ...conn,
        '--token',
        auditor,
      ]),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('64 lowercase hex digits') });
  }, 180_000);
});

describe('an exported log verified offline', () => {
  it('verifies an untouched export with the published key', async () => {
    const report = await verify(exportLines);
    expect(report.ok).toBe(true);
    expect(report.checkpointsVerified).toBeGreaterThanOrEqual(1);
    expect(report.provenThrough).toBe(report.lastSequence);
    expect(report.unprovenEntries).toBe(0);
    expect(Number(report.lastSequence)).toBeGreaterThan(5);
  });

  it('names an edited entry', async () => {
    const lines = [...exportLines];
    const i = entryIndex(lines, 3);
    const entry = JSON.parse(lines[i]!);
    entry.outcome = entry.outcome === 'allowed' ? 'denied' : 'allowed';
    lines[i] = JSON.stringify(entry);
    const report = await verify(lines);
    expect(report.ok).toBe(false);
    expect(report.firstBad).toMatchObject({
      sequence: '3',
      problem: expect.stringMatching(/altered/),
    });
  });

  it('names a deleted entry', async () => {
    const lines = [...exportLines];
    lines.splice(entryIndex(lines, 4), 1);
    const report = await verify(lines);
    expect(report.firstBad).toMatchObject({
      sequence: '4',
      problem: expect.stringMatching(/entry 4 is missing/),
    });
  });

  it('names reordered entries', async () => {
    const lines = [...exportLines];
    const i = entryIndex(lines, 2);
    [lines[i], lines[i + 1]] = [lines[i + 1]!, lines[i]!];
    const report = await verify(lines);
    expect(report.ok).toBe(false);
    expect(report.firstBad?.sequence).toBe('2');
  });

  it('names an inserted entry, even one given a valid hash of its own', async () => {
    const lines = [...exportLines];
    const i = entryIndex(lines, 3);
    const before = JSON.parse(lines[i - 1]!);
    const forged = {
      sequence: '3',
      at: before.at,
      actor: 'bank-a',
      action: 'download',
      resource: 'version:' + 'e'.repeat(64),
      outcome: 'allowed',
      reason: null,
      detail: null,
      peerAddress: null,
      prevHash: before.hash,
    };
    lines.splice(i, 0, JSON.stringify({ type: 'entry', ...forged, hash: hashAccessEntry(forged) }));
    const report = await verify(lines);
    expect(report.ok).toBe(false);
    expect(report.firstBad?.sequence).toBe('3');
  });

  it('finds a log rewritten with every hash recomputed, through the signed head', async () => {
    // Drop entry 2 and renumber and rehash everything after it: the chain is consistent again.
    const parsed = parse(exportLines);
    const header = parsed.filter((l) => l.type !== 'entry');
    const entries = parsed.filter((l) => l.type === 'entry' && l.sequence !== '2');
    let prev = '0'.repeat(64);
    const rewritten = entries.map((e, n) => {
      const { type, hash, ...fields } = e as Record<string, unknown>;
      void type;
      void hash;
      const next = { ...fields, sequence: String(n + 1), prevHash: prev } as Parameters<
        typeof hashAccessEntry
      >[0];
      prev = hashAccessEntry(next);
      return { type: 'entry', ...next, hash: prev };
    });
    const lines = [...header, ...rewritten].map((l) => JSON.stringify(l));
    const report = await verify(lines);
    expect(report.ok).toBe(false);
    expect(report.firstBad?.problem).toMatch(/truncated|not the entry the hub signed/);
  });

  it('finds an export truncated before its signed head', async () => {
    const lines = exportLines.slice(0, -2);
    const report = await verify(lines);
    expect(report.ok).toBe(false);
    expect(report.firstBad?.problem).toMatch(/the export is truncated/);
  });

  it('refuses a signed head signed with another key', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const parsed = parse(exportLines);
    const cp = parsed.find((l) => l.type === 'checkpoint')!;
    const payload = canonicalJson({
      iss: 'x',
      sequence: cp.sequence,
      hash: cp.hash,
      signedAt: cp.signedAt,
    });
    const jws = await new CompactSign(new TextEncoder().encode(payload))
      .setProtectedHeader({ alg: 'ES256', typ: 'distillery-chain-head+jws' })
      .sign(privateKey);
    const lines = parsed.map((l) => JSON.stringify(l.type === 'checkpoint' ? { ...l, jws } : l));
    const report = await verify(lines);
    expect(report.firstBad?.problem).toMatch(/signature does not verify/);
    void exportJWK;
  });

  it('ends every export at a head signed for it, even when asked not to sign', async () => {
    // Entries written since the last export (this test's own calls) must all be covered.
    await t.api('GET', '/v1/audit/log?limit=1', auditor);
    for (const path of ['/v1/audit/export', '/v1/audit/export?sign=false']) {
      const lines = parse((await t.apiText(path, auditor)).text.trim().split('\n'));
      const header = lines[0]!;
      const entries = lines.filter((l) => l.type === 'entry');
      const checkpoints = lines.filter((l) => l.type === 'checkpoint');
      expect(header.type).toBe('header');
      expect(header.headSequence).toBe(entries.at(-1)!.sequence);
      expect(checkpoints.at(-1)!.sequence).toBe(header.headSequence);
      const report = await verify(lines.map((l) => JSON.stringify(l)));
      expect(report).toMatchObject({ ok: true, unprovenEntries: 0 });
    }
  });

  it('is not ok, and says how many entries are unproven, when the last signed head is dropped', async () => {
    const parsed = parse(exportLines);
    const lastCp = parsed.map((l) => l.type).lastIndexOf('checkpoint');
    const earlier = parsed.filter((l, i) => l.type === 'checkpoint' && i !== lastCp);
    const lines = parsed.filter((_, i) => i !== lastCp).map((l) => JSON.stringify(l));
    const report = await verify(lines);
    expect(report.ok).toBe(false);
    const proven = earlier.length ? Number(earlier.at(-1)!.sequence) : 0;
    expect(report.unprovenEntries).toBe(Number(report.lastSequence) - proven);
    expect(report.unprovenEntries).toBeGreaterThan(0);
    expect(report.firstBad).toMatchObject({
      sequence: String(proven + 1),
      problem: expect.stringMatching(/nothing proves/),
    });
  });

  it('verifies from the command line, exit 0 when intact and 2 naming the entry when not', async () => {
    const good = join(t.fixture.dir, 'export.ndjson');
    await writeFile(good, exportLines.join('\n') + '\n');
    const ok = await run('node', ['bin/distillery.js', 'audit', 'verify', good, '--key', jwksPath]);
    expect(JSON.parse(ok.stdout).ok).toBe(true);

    const lines = [...exportLines];
    const i = entryIndex(lines, 5);
    const entry = JSON.parse(lines[i]!);
    entry.actor = 'someone-else';
    lines[i] = JSON.stringify(entry);
    const bad = join(t.fixture.dir, 'tampered.ndjson');
    await writeFile(bad, lines.join('\n') + '\n');
    const failed = await run('node', [
      'bin/distillery.js',
      'audit',
      'verify',
      bad,
      '--key',
      jwksPath,
    ]).catch((err: { code: number; stdout: string }) => err);
    expect((failed as { code: number }).code).toBe(2);
    expect(JSON.parse((failed as { stdout: string }).stdout).firstBad.sequence).toBe('5');
  }, 60_000);
});

/** The export with entry `at` changed and every hash after it recomputed, as a forger would. */
function rewriteFrom(lines: string[], at: number, change: (e: Line) => void): Line[] {
  let prev = '0'.repeat(64);
  return parse(lines).map((l) => {
    if (l.type !== 'entry') return l;
    const { type, hash, ...fields } = l as Record<string, unknown>;
    void type;
    void hash;
    const next: Record<string, unknown> = { ...fields, prevHash: prev };
    if (Number(l.sequence) === at) change(next as Line);
    prev = hashAccessEntry(next as unknown as Parameters<typeof hashAccessEntry>[0]);
    return { ...next, type: 'entry', hash: prev } as Line;
  });
}

describe('a forged export refused offline', () => {
  it('refuses a log rewritten with every hash recomputed and its signed heads dropped', async () => {
    const forged = rewriteFrom(exportLines, 6, (e) => {
      e.actor = 'someone-else';
      e.outcome = 'denied';
    }).filter((l) => l.type !== 'checkpoint');
    const report = await verify(forged.map((l) => JSON.stringify(l)));
    expect(report.ok).toBe(false);
    expect(report.checkpointsVerified).toBe(0);
    expect(report.unprovenEntries).toBe(Number(report.lastSequence));
    expect(report.firstBad).toMatchObject({
      sequence: '1',
      problem: expect.stringMatching(/no signed head in the export verifies/),
    });
  });

  it('refuses an empty export and one without its header line', async () => {
    const empty = await verify([]);
    expect(empty.ok).toBe(false);
    expect(empty.firstBad?.problem).toMatch(/the export is empty/);
    expect((await verify(['', '  '])).ok).toBe(false);
    const headless = await verify(exportLines.slice(1));
    expect(headless.ok).toBe(false);
    expect(headless.firstBad).toMatchObject({
      line: 1,
      problem: expect.stringMatching(/does not start with its header/),
    });
  });

  it('refuses a header that names another head or another format', async () => {
    const header = JSON.parse(exportLines[0]!);
    const withHeader = (h: object) => [JSON.stringify(h), ...exportLines.slice(1)];
    const beyond = await verify(withHeader({ ...header, headSequence: '99999' }));
    expect(beyond.ok).toBe(false);
    expect(beyond.firstBad?.problem).toMatch(/header names head 99999 but the entries end at/);
    const before = await verify(withHeader({ ...header, headSequence: '2' }));
    expect(before.firstBad).toMatchObject({
      sequence: '3',
      problem: expect.stringMatching(/come after the head the header names/),
    });
    const format = await verify(withHeader({ ...header, format: 'other/1' }));
    expect(format.firstBad?.problem).toMatch(/format is "other\/1"/);
  });

  it('refuses an entry carrying a field its hash does not cover', async () => {
    const lines = [...exportLines];
    const i = entryIndex(lines, 4);
    lines[i] = JSON.stringify({ ...JSON.parse(lines[i]!), extra: 'x' });
    const report = await verify(lines);
    expect(report.ok).toBe(false);
    expect(report.firstBad).toMatchObject({
      sequence: '4',
      problem: expect.stringMatching(/fields its hash does not cover: extra/),
    });
  });

  it('refuses a signed head line whose visible sequence or hash differs from what was signed', async () => {
    for (const change of [
      (cp: Line) => ({ ...cp, sequence: String(Number(cp.sequence) - 1) }),
      (cp: Line) => ({ ...cp, hash: 'a'.repeat(64) }),
    ]) {
      const lines = parse(exportLines).map((l) =>
        JSON.stringify(l.type === 'checkpoint' ? change(l) : l),
      );
      const report = await verify(lines);
      expect(report.ok).toBe(false);
      expect(report.firstBad?.problem).toMatch(/but its signature covers sequence/);
    }
  });

  it('refuses a forged export from the command line, with exit code 2', async () => {
    const dir = t.fixture.dir;
    const cli = (...args: string[]) =>
      run('node', ['bin/distillery.js', ...args]).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    const forged = join(dir, 'rewritten-nocps.ndjson');
    await writeFile(
      forged,
      rewriteFrom(exportLines, 6, (e) => (e.actor = 'x'))
        .filter((l) => l.type !== 'checkpoint')
        .map((l) => JSON.stringify(l) + '\n')
        .join(''),
    );
    const empty = join(dir, 'empty.ndjson');
    await writeFile(empty, '');
    for (const file of [forged, empty]) {
      const res = await cli('audit', 'verify', file, '--key', jwksPath);
      expect(res.code).toBe(2);
      expect(JSON.parse(res.stdout).ok).toBe(false);
    }
  }, 60_000);
});

describe('the CLI checks files before it sends them', () => {
  // A hub URL whose every connection is counted: the refusals below must never reach it.
  let connections = 0;
  let server: Server;
  let listening: string;
  let dir: string;
  const cli = (...args: string[]) =>
    run('node', ['bin/distillery.js', ...args]).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  const conn = () => [
    '--hub-url',
    listening,
    '--ca-cert',
    t.fixture.pki.caCert,
    '--token-file',
    join(dir, 'op.jwt'),
  ];

  beforeAll(async () => {
    dir = t.fixture.dir;
    await writeFile(join(dir, 'op.jwt'), operator);
    server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    listening = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await run('node', [
      'bin/distillery.js',
      'pki',
      'request',
      '--identity',
      'bank-q',
      '--out',
      join(dir, 'bank-q'),
    ]);
  }, 60_000);
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('refuses to upload a private key as a request or a certificate, naming the file', async () => {
    const key = join(dir, 'bank-q', 'bank-q.key');
    const csr = join(dir, 'bank-q', 'bank-q.csr');
    for (const args of [
      ['pki', 'submit', '--csr', key],
      ['pki', 'approve-request', '--request', 'r1', '--cert', key],
      ['pki', 'register', '--cert', key],
      ['pki', 'revoke', key],
    ]) {
      const res = await cli(...args, ...conn());
      expect(res.code).toBe(1);
      expect(res.stderr).toContain('PKI_FILE_IS_PRIVATE_KEY');
      expect(res.stderr).toContain(key);
      expect(res.stderr).toMatch(/never leaves this machine/);
    }
    // A request where a certificate belongs, and a certificate where a request belongs.
    const wrong = await cli('pki', 'register', '--cert', csr, ...conn());
    expect(wrong.stderr).toMatch(
      /PKI_FILE_WRONG_KIND: .* is not a PEM CERTIFICATE \(it holds a PEM CERTIFICATE REQUEST\)/,
    );
    const wrong2 = await cli('pki', 'submit', '--csr', t.fixture.pki.caCert, ...conn());
    expect(wrong2.stderr).toMatch(
      /is not a PEM CERTIFICATE REQUEST \(it holds a PEM CERTIFICATE\)/,
    );
    expect(connections).toBe(0);
  }, 60_000);

  it('names the file when it is a directory, not a token, or not JSON', async () => {
    const submit = await cli('pki', 'submit', '--csr', dir, ...conn());
    expect(submit.stderr).toContain(
      `FILE_UNREADABLE: certificate signing request ${dir} cannot be read: it is a directory`,
    );
    const verify = await cli('audit', 'verify', dir, '--key', jwksPath);
    expect(verify.code).toBe(1);
    expect(verify.stderr).toMatch(
      new RegExp(`AUDIT_EXPORT_INVALID: audit export ${dir} .*it is a directory`),
    );
    const token = await cli(
      'audit',
      'log',
      '--hub-url',
      listening,
      '--ca-cert',
      t.fixture.pki.caCert,
      '--token-file',
      t.fixture.pki.caKey,
    );
    expect(token.stderr).toMatch(/TOKEN_FILE_INVALID: token file .* does not hold a token/);
    const bad = join(dir, 'bad-policy.json');
    await writeFile(bad, '{"release": ');
    const grant = await cli(
      'grant',
      'create',
      '--participant',
      'bank-a',
      '--kinds',
      'logits',
      '--policy',
      bad,
      ...conn(),
    );
    expect(grant.stderr).toContain(`FILE_NOT_JSON: release policy ${bad} is not valid JSON`);
    expect(connections).toBe(0);
  }, 60_000);

  it('refuses out-of-range numbers and a missing --key with a message, before any call', async () => {
    const from = await cli(
      'grant',
      'create',
      '--participant',
      'bank-a',
      '--kinds',
      'logits',
      '--from',
      '99999999999',
      ...conn(),
    );
    expect(from.code).not.toBe(0);
    expect(from.stderr).toMatch(/--from.*larger than 2147483647/);
    const ttl = await cli(
      'pki',
      'token',
      '--dir',
      t.fixture.pki.dir,
      '--subject',
      's',
      '--role',
      'auditor',
      '--ttl',
      '1000000000000',
    );
    expect(ttl.code).not.toBe(0);
    expect(ttl.stderr).toMatch(/longer than the maximum of 2592000 \(30 days\)/);
    const noKey = await cli('audit', 'verify', join(dir, 'export.ndjson'));
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/--key <file> is required to verify an export offline/);
    expect(connections).toBe(0);
  }, 60_000);

  it('says which key the export expects when verified with another one', async () => {
    const good = join(dir, 'export-for-key.ndjson');
    await writeFile(good, exportLines.join('\n') + '\n');
    const other = await exportJWK(
      generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey,
    );
    const otherPath = join(dir, 'other-key.json');
    await writeFile(otherPath, JSON.stringify({ keys: [{ ...other, kid: 'other-kid' }] }));
    const res = await cli('audit', 'verify', good, '--key', otherPath);
    expect(res.code).toBe(2);
    const report = JSON.parse(res.stdout);
    const expected = JSON.parse(exportLines[0]!).keyId;
    expect(report.firstBad.problem).toContain(
      `it names key ${expected} but the key given is other-kid`,
    );
    expect(report.notes.join(' ')).toContain(
      `signed by key ${expected}, but the key given is other-kid`,
    );
  }, 60_000);
});

describe('the live log checked by the hub', () => {
  const report = async () => (await t.api('GET', '/v1/audit/verify', auditor)).body;
  const prisma = () => t.hub.registry.prisma;

  it('reports an edited entry and where, and intact again once restored', async () => {
    const [row] = await prisma().$queryRaw<
      { actor: string }[]
    >`SELECT actor FROM access_log_entry WHERE sequence = 2`;
    await prisma().$executeRaw`UPDATE access_log_entry SET actor = 'intruder' WHERE sequence = 2`;
    const broken = await report();
    await prisma()
      .$executeRaw`UPDATE access_log_entry SET actor = ${row!.actor} WHERE sequence = 2`;
    expect(broken.ok).toBe(false);
    expect(broken.firstBad).toMatchObject({
      sequence: '2',
      problem: expect.stringMatching(/altered/),
    });
    expect((await report()).ok).toBe(true);
  });

  it('reports a deleted entry', async () => {
    const rows = await prisma().$queryRaw<
      Record<string, unknown>[]
    >`SELECT * FROM access_log_entry WHERE sequence = 3`;
    await prisma().$executeRaw`DELETE FROM access_log_entry WHERE sequence = 3`;
    const broken = await report();
    const r = rows[0]!;
    await prisma()
      .$executeRaw`INSERT INTO access_log_entry (sequence, at, actor, action, resource, outcome, reason, detail, peer_address, prev_hash, hash)
      VALUES (${r.sequence}, ${r.at}, ${r.actor}, ${r.action}, ${r.resource}, ${r.outcome}, ${r.reason}, ${r.detail === null ? null : JSON.stringify(r.detail)}::jsonb, ${r.peer_address}, ${r.prev_hash}, ${r.hash})`;
    expect(broken.firstBad).toMatchObject({
      sequence: '3',
      problem: expect.stringMatching(/missing/),
    });
    expect((await report()).ok).toBe(true);
  });

  // Destroys the log: the last case of the file.
  it('reports a log rewritten with every hash recomputed, through its signed heads', async () => {
    expect((await t.api('POST', '/v1/audit/checkpoints', auditor, {})).status).toBe(201);
    const rows = await prisma().accessLogEntry.findMany({ orderBy: { sequence: 'asc' } });
    let prev = '0'.repeat(64);
    const rewritten = rows
      .filter((r) => r.sequence !== 2n)
      .map((r, n) => {
        const fields = {
          sequence: String(n + 1),
          at: r.at.toISOString(),
          actor: r.actor,
          action: r.action,
          resource: r.resource,
          outcome: r.outcome,
          reason: r.reason,
          detail: r.detail,
          peerAddress: r.peerAddress,
          prevHash: prev,
        };
        prev = hashAccessEntry(fields);
        return {
          ...r,
          sequence: BigInt(n + 1),
          prevHash: fields.prevHash,
          hash: prev,
          detail: r.detail ?? undefined,
        };
      });
    await prisma().$transaction(async (tx) => {
      await tx.accessLogEntry.deleteMany({});
      await tx.accessLogEntry.createMany({ data: rewritten as never });
      await tx.accessChainHead.update({
        where: { id: 1 },
        data: { sequence: BigInt(rewritten.length), hash: prev },
      });
    });
    const result = await report();
    expect(result.entries).toBe(rewritten.length);
    expect(result.ok).toBe(false);
    expect(result.checkpoints.firstBad.problem).toMatch(
      /not the entry the hub signed|is gone from the log/,
    );
  });
});
