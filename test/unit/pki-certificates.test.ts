import { createHash, createPrivateKey, sign, verify, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import {
  createCertificateAuthority,
  createCertificateSigningRequest,
  fingerprintOfDer,
  issueClientCertificate,
  issueServerCertificate,
  signCertificateSigningRequest,
  x5tS256OfDer,
  type CertificateAuthority,
} from '../../services/shared/pki/index.js';
import { generateKeyPair, SIGNATURE_ALGORITHM, webCrypto } from '../../services/shared/pki/keys.js';
import * as x509 from '../../services/shared/pki/x509.js';

const DAY_MS = 86_400_000;
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'Test CA', organization: 'Distillery' });
  otherCa = await createCertificateAuthority({ commonName: 'Other CA' });
});

async function expectCode(promise: Promise<unknown>, code: Parameters<typeof hasCode>[1]) {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(hasCode(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

describe('createCertificateAuthority', () => {
  it('is a CA with a ten-year default lifetime', async () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toContain('CN=Test CA');
    const lifetimeDays = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / DAY_MS;
    expect(Math.round(lifetimeDays)).toBe(3650);
  });

  it('writes its key as PKCS#8 PEM', () => {
    expect(ca.keyPem.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
    expect(createPrivateKey(ca.keyPem).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });
});

describe('issueClientCertificate, chain', () => {
  it('verifies against its CA', async () => {
    const client = await issueClientCertificate(ca, { identity: 'bank-a' });
    const cert = new X509Certificate(client.certPem);
    const issuer = new X509Certificate(ca.certPem);
    expect(cert.checkIssued(issuer)).toBe(true);
    expect(cert.verify(issuer.publicKey)).toBe(true);
  });

  it('does not verify against another CA', async () => {
    const client = await issueClientCertificate(ca, { identity: 'bank-a' });
    const cert = new X509Certificate(client.certPem);
    const other = new X509Certificate(otherCa.certPem);
    expect(cert.checkIssued(other)).toBe(false);
    expect(cert.verify(other.publicKey)).toBe(false);
  });
});

describe('issueClientCertificate, contents', () => {
  it('names the identity in the CN and in a participant SAN URI, for clientAuth', async () => {
    const client = await issueClientCertificate(ca, { identity: 'bank-a' });
    const cert = new X509Certificate(client.certPem);
    expect(cert.subject).toBe('CN=bank-a');
    expect(cert.subjectAltName).toBe('URI:urn:distillery:participant:bank-a');
    expect(cert.keyUsage).toEqual([EKU_CLIENT_AUTH]);
    expect(cert.ca).toBe(false);
  });

  it('writes the role into the SAN URI', async () => {
    const client = await issueClientCertificate(ca, { identity: 'alice', role: 'operator' });
    expect(new X509Certificate(client.certPem).subjectAltName).toBe(
      'URI:urn:distillery:operator:alice',
    );
  });

  it('reports a 16-byte serial and the SHA-256 fingerprint of the DER', async () => {
    const client = await issueClientCertificate(ca, { identity: 'bank-a' });
    const cert = new X509Certificate(client.certPem);
    expect(client.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
    expect(client.serialNumber).toBe(cert.serialNumber.toLowerCase());
    expect(client.fingerprint256).toBe(cert.fingerprint256.replaceAll(':', '').toLowerCase());
  });

  it('gives every certificate a different serial', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) {
      serials.add((await issueClientCertificate(ca, { identity: 'bank-a' })).serialNumber);
    }
    expect(serials.size).toBe(5);
  });

  it('defaults to 365 days and honours explicit bounds', async () => {
    const plain = new X509Certificate(
      (await issueClientCertificate(ca, { identity: 'a' })).certPem,
    );
    const days = (Date.parse(plain.validTo) - Date.now()) / DAY_MS;
    expect(Math.round(days)).toBe(365);

    const notBefore = new Date('2030-01-01T00:00:00Z');
    const notAfter = new Date('2030-02-01T00:00:00Z');
    const bounded = await issueClientCertificate(ca, { identity: 'a', notBefore, notAfter });
    const cert = new X509Certificate(bounded.certPem);
    expect(new Date(cert.validFrom).toISOString()).toBe(notBefore.toISOString());
    expect(new Date(cert.validTo).toISOString()).toBe(notAfter.toISOString());
  });

  it('rejects a notAfter before notBefore', async () => {
    const options = {
      identity: 'bank-a',
      notBefore: new Date('2030-01-02T00:00:00Z'),
      notAfter: new Date('2030-01-01T00:00:00Z'),
    };
    await expect(issueClientCertificate(ca, options)).rejects.toThrow(TypeError);
  });
});

describe('issueClientCertificate, identity names', () => {
  const bad = ['', 'Bank-A', 'bank_a', 'bank a', 'bank/a', '../etc', '.', '-bank', 'a'.repeat(65)];
  for (const name of bad) {
    it(`rejects ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}...` : name)}`, async () => {
      await expectCode(issueClientCertificate(ca, { identity: name }), 'PKI_BAD_NAME');
    });
  }

  for (const name of ['a', 'bank-a', 'bank-a.eu-west', '0', 'a'.repeat(64)]) {
    it(`accepts ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}...` : name)}`, async () => {
      const client = await issueClientCertificate(ca, { identity: name });
      expect(new X509Certificate(client.certPem).subject).toBe(`CN=${name}`);
    });
  }
});

describe('issueServerCertificate', () => {
  it('lists every DNS name and IP address as a SAN, for serverAuth', async () => {
    const server = await issueServerCertificate(ca, {
      commonName: 'hub',
      dnsNames: ['localhost', 'hub.example'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    const cert = new X509Certificate(server.certPem);
    const sans = cert.subjectAltName?.split(', ') ?? [];
    expect(sans).toContain('DNS:localhost');
    expect(sans).toContain('DNS:hub.example');
    expect(sans).toContain('IP Address:127.0.0.1');
    expect(sans).toContain('IP Address:0:0:0:0:0:0:0:1');
    expect(cert.keyUsage).toEqual([EKU_SERVER_AUTH]);
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
  });

  it('rejects a malformed IP address, naming the field', async () => {
    const options = { commonName: 'hub', dnsNames: [], ipAddresses: ['127.0.0.300'] };
    await expect(issueServerCertificate(ca, options)).rejects.toThrow(/ipAddresses\[0\]/);
  });

  it('rejects a certificate with no names at all', async () => {
    const options = { commonName: 'hub', dnsNames: [], ipAddresses: [] };
    await expect(issueServerCertificate(ca, options)).rejects.toThrow(TypeError);
  });

  it('refuses to sign with a leaf certificate as the CA', async () => {
    const leaf = await issueClientCertificate(ca, { identity: 'bank-a' });
    const fakeCa = { certPem: leaf.certPem, keyPem: leaf.keyPem };
    const options = { commonName: 'hub', dnsNames: ['localhost'], ipAddresses: [] };
    await expect(issueServerCertificate(fakeCa, options)).rejects.toThrow(/not a CA/);
  });
});

describe('certificate signing request, round trip', () => {
  it('issues a certificate for the requester key, verifiable against the CA', async () => {
    const request = await createCertificateSigningRequest({ identity: 'bank-b' });
    const signed = await signCertificateSigningRequest(ca, request.csrPem, { validDays: 30 });

    const cert = new X509Certificate(signed.certPem);
    expect(signed.identity).toBe('bank-b');
    expect(cert.subjectAltName).toBe('URI:urn:distillery:participant:bank-b');
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(Math.round((Date.parse(cert.validTo) - Date.now()) / DAY_MS)).toBe(30);

    // The key stayed with the requester, yet the certificate is for it.
    const signature = sign('sha256', Buffer.from('hello'), request.keyPem);
    expect(verify('sha256', Buffer.from('hello'), cert.publicKey, signature)).toBe(true);
    expect(signed.fingerprint256).toBe(fingerprintOfDer(cert.raw));
  });

  it('rejects a request whose signature does not verify', async () => {
    const request = await createCertificateSigningRequest({ identity: 'bank-b' });
    const der = Buffer.from(x509.PemConverter.decodeFirst(request.csrPem));
    der[der.length - 5]! ^= 0x01;
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    await expectCode(signCertificateSigningRequest(ca, tampered), 'PKI_BAD_CSR');
  });

  it('rejects text that is not a PEM request', async () => {
    await expectCode(signCertificateSigningRequest(ca, ca.certPem), 'PKI_BAD_CSR');
  });

  it('rejects a request whose CN is not a valid identity', async () => {
    const csrPem = await requestFor([{ CN: ['Bank A'] }]);
    await expectCode(signCertificateSigningRequest(ca, csrPem), 'PKI_BAD_NAME');
  });

  it('ignores extensions the request asks for', async () => {
    const csrPem = await requestFor(
      [{ CN: ['bank-c'] }],
      [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'evil.example' }]),
      ],
    );
    const cert = new X509Certificate((await signCertificateSigningRequest(ca, csrPem)).certPem);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe('URI:urn:distillery:participant:bank-c');
  });

  it('rejects a bad identity when the request is created', async () => {
    await expectCode(createCertificateSigningRequest({ identity: 'Bank A' }), 'PKI_BAD_NAME');
  });
});

describe('fingerprintOfDer and x5tS256OfDer', () => {
  it('match the known SHA-256 of empty input', () => {
    const empty = Buffer.alloc(0);
    expect(fingerprintOfDer(empty)).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(x5tS256OfDer(empty)).toBe('47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU');
  });

  it('encode the same digest of a certificate', async () => {
    const raw = new X509Certificate(ca.certPem).raw;
    const digest = createHash('sha256').update(raw).digest();
    expect(fingerprintOfDer(raw)).toBe(digest.toString('hex'));
    expect(x5tS256OfDer(raw)).toBe(digest.toString('base64url'));
    expect(x5tS256OfDer(raw)).not.toMatch(/[=+/]/);
  });
});

async function requestFor(name: x509.JsonName, extensions: x509.Extension[] = []) {
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name, keys, signingAlgorithm: SIGNATURE_ALGORITHM, extensions },
    webCrypto,
  );
  return csr.toString('pem');
}
