import { X509Certificate, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import {
  identityFromPeerCertificate,
  initDevelopmentPki,
  issueParticipantFiles,
  pkiLayout,
  readPemFile,
  type PkiLayout,
} from '../../services/shared/pki/index.js';

const isPosix = process.platform !== 'win32';
let dir: string;

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'distillery-pki-')), 'pki');
});

afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (err: { code?: string }) => err.code,
  );
}

function privateKeys(layout: PkiLayout): string[] {
  return [
    layout.caKey,
    layout.hubKey,
    layout.participant('bank-a').key,
    layout.participant('bank-b').key,
    layout.operator('alice').key,
    layout.jwtPrivateKey,
  ];
}

describe('initDevelopmentPki, files written', () => {
  it('writes the CA, hub, client and token key files where pkiLayout says', async () => {
    const layout = await initDevelopmentPki(dir, {
      participants: ['bank-a', 'bank-b'],
      operators: ['alice'],
    });
    const expected = pkiLayout(dir);
    for (const field of [
      'caCert',
      'caKey',
      'hubCert',
      'hubKey',
      'jwtPrivateKey',
      'jwks',
    ] as const) {
      expect(layout[field]).toBe(expected[field]);
    }
    expect(layout.participant('bank-a')).toEqual({
      cert: join(dir, 'participants', 'bank-a.crt'),
      key: join(dir, 'participants', 'bank-a.key'),
    });
    expect(layout.jwtPublicKey).toBe(join(dir, 'jwt', 'signing.pub.pem'));
    expect((await readdir(dir)).sort()).toEqual([
      'ca.crt',
      'ca.key',
      'hub.crt',
      'hub.key',
      'jwt',
      'operators',
      'participants',
    ]);
    expect((await readdir(join(dir, 'participants'))).sort()).toEqual([
      'bank-a.crt',
      'bank-a.key',
      'bank-b.crt',
      'bank-b.key',
    ]);

    const ca = new X509Certificate(await readFile(layout.caCert));
    const bankA = new X509Certificate(await readFile(layout.participant('bank-a').cert));
    expect(bankA.checkIssued(ca) && bankA.verify(ca.publicKey)).toBe(true);
    expect(identityFromPeerCertificate(bankA.toLegacyObject())).toBe('bank-a');
    const hub = new X509Certificate(await readFile(layout.hubCert));
    expect(hub.subjectAltName).toBe(
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
  });

  it('writes the token key as PKCS#8 and SPKI PEM with a JWK Set of the same key', async () => {
    const layout = await initDevelopmentPki(dir, { participants: [] });
    const privatePem = await readFile(layout.jwtPrivateKey, 'utf8');
    const publicPem = await readFile(layout.jwtPublicKey, 'utf8');
    expect(privatePem.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
    expect(publicPem.startsWith('-----BEGIN PUBLIC KEY-----')).toBe(true);

    const jwks = JSON.parse(await readFile(layout.jwks, 'utf8')) as {
      keys: Record<string, string>[];
    };
    expect(jwks.keys).toHaveLength(1);
    const [jwk] = jwks.keys;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwk!.d).toBeUndefined();
    expect(
      createPublicKey({ key: jwk!, format: 'jwk' }).export({ type: 'spki', format: 'pem' }),
    ).toBe(publicPem);
  });
});

describe.runIf(isPosix)('initDevelopmentPki, permissions', () => {
  it('gives every private key mode 0600 and every directory 0700', async () => {
    const layout = await initDevelopmentPki(dir, {
      participants: ['bank-a', 'bank-b'],
      operators: ['alice'],
    });
    for (const key of privateKeys(layout)) expect(await modeOf(key), key).toBe(0o600);
    for (const sub of ['', 'participants', 'operators', 'jwt']) {
      expect(await modeOf(join(dir, sub)), sub).toBe(0o700);
    }
    expect(await modeOf(layout.caCert)).toBe(0o644);
  });

  it('narrows a key file that existed with a wider mode', async () => {
    const layout = pkiLayout(dir);
    await initDevelopmentPki(dir, { participants: ['bank-a'] });
    await writeFile(layout.participant('bank-a').key, 'old', { mode: 0o644 });
    await initDevelopmentPki(dir, { participants: ['bank-a'], force: true });
    expect(await modeOf(layout.participant('bank-a').key)).toBe(0o600);
    expect(await readFile(layout.participant('bank-a').key, 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
  });
});

describe('initDevelopmentPki, existing CA', () => {
  it('refuses to overwrite an existing CA', async () => {
    const layout = await initDevelopmentPki(dir, { participants: ['bank-a'] });
    const before = await readFile(layout.caCert, 'utf8');
    expect(await codeOf(initDevelopmentPki(dir, { participants: ['bank-a'] }))).toBe(
      'PKI_ALREADY_EXISTS',
    );
    expect(await readFile(layout.caCert, 'utf8')).toBe(before);
  });

  it('replaces the CA when forced', async () => {
    const layout = await initDevelopmentPki(dir, { participants: ['bank-a'] });
    const before = await readFile(layout.caCert, 'utf8');
    await initDevelopmentPki(dir, { participants: ['bank-a'], force: true });
    expect(await readFile(layout.caCert, 'utf8')).not.toBe(before);
  });

  it('writes nothing when a name is invalid', async () => {
    expect(await codeOf(initDevelopmentPki(dir, { participants: ['bank-a', 'Bank B'] }))).toBe(
      'PKI_BAD_NAME',
    );
    expect(await codeOf(stat(dir))).toBe('ENOENT');
  });
});

describe('issueParticipantFiles', () => {
  it('adds a participant signed by the CA in the directory', async () => {
    const layout = await initDevelopmentPki(dir, { participants: ['bank-a'] });
    const issued = await issueParticipantFiles(dir, 'bank-c');
    expect(issued.cert).toBe(layout.participant('bank-c').cert);

    const cert = new X509Certificate(await readFile(issued.cert));
    const ca = new X509Certificate(await readFile(layout.caCert));
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.serialNumber.toLowerCase()).toBe(issued.serialNumber);
    if (isPosix) expect(await modeOf(issued.key)).toBe(0o600);
  });

  it('refuses to replace an existing participant unless forced', async () => {
    await initDevelopmentPki(dir, { participants: ['bank-a'] });
    expect(await codeOf(issueParticipantFiles(dir, 'bank-a'))).toBe('PKI_ALREADY_EXISTS');
    await expect(issueParticipantFiles(dir, 'bank-a', { force: true })).resolves.toBeDefined();
  });

  it('reports a missing CA with its path', async () => {
    const err = await issueParticipantFiles(dir, 'bank-a').catch((e: unknown) => e);
    expect(hasCode(err, 'PKI_FILE_MISSING')).toBe(true);
    expect((err as Error).message).toContain(join(dir, 'ca.crt'));
  });
});

describe('readPemFile', () => {
  it('gives PKI_FILE_MISSING with the path for a missing file', async () => {
    const path = join(dir, 'nope.crt');
    const err = await readPemFile(path, 'hub certificate').catch((e: unknown) => e);
    expect(hasCode(err, 'PKI_FILE_MISSING')).toBe(true);
    expect((err as Error).message).toBe(`hub certificate not found at ${path}`);
  });

  it('gives PKI_BAD_PEM with the path for a file that is not PEM, or of the wrong kind', async () => {
    const layout = await initDevelopmentPki(dir, { participants: [] });
    const junk = join(dir, 'junk.crt');
    await writeFile(junk, 'not a certificate\n');

    const err = await readPemFile(junk, 'hub certificate').catch((e: unknown) => e);
    expect(hasCode(err, 'PKI_BAD_PEM')).toBe(true);
    expect((err as Error).message).toContain(junk);

    expect(await codeOf(readPemFile(layout.caKey, 'CA certificate', 'CERTIFICATE'))).toBe(
      'PKI_BAD_PEM',
    );
    await expect(readPemFile(layout.caCert, 'CA certificate', 'CERTIFICATE')).resolves.toMatch(
      /^-----BEGIN CERTIFICATE-----/,
    );
  });
});

describe('pkiLayout', () => {
  it('refuses an identity that could leave the directory', () => {
    expect(() => pkiLayout(dir).participant('../ca')).toThrow(/identity/);
  });
});
