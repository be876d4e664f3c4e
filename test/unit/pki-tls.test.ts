import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createCertificateAuthority,
  identityFromPeerCertificate,
  issueClientCertificate,
  issueServerCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../../services/shared/pki/index.js';

const DAY_MS = 86_400_000;

/** What the server saw of one connection. */
interface Outcome {
  authorized: boolean;
  authorizationError?: string;
  identity?: string | null;
}

let ca: CertificateAuthority;
let hub: IssuedCertificate;
let server: tls.Server | undefined;

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'Test CA' });
  hub = await issueServerCertificate(ca, {
    commonName: 'hub',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
});

afterEach(async () => {
  if (server?.listening) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

/** Starts a mutual-TLS server on port 0 that reports the first connection's outcome. */
async function startServer(): Promise<{ port: number; outcome: Promise<Outcome> }> {
  const mtls = tls.createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ca: ca.certPem,
    cert: hub.certPem,
    key: hub.keyPem,
  });
  server = mtls;

  const outcome = new Promise<Outcome>((resolve) => {
    mtls.on('secureConnection', (socket) => {
      const identity = identityFromPeerCertificate(socket.getPeerCertificate());
      resolve({ authorized: socket.authorized, identity });
      socket.end('ok');
    });
    // Node destroys a socket whose client certificate fails verification; the reason stays on it.
    mtls.on('tlsClientError', (_err, socket) => {
      resolve({ authorized: false, authorizationError: String(socket.authorizationError) });
    });
  });

  mtls.listen(0, '127.0.0.1');
  await once(mtls, 'listening');
  return { port: (mtls.address() as AddressInfo).port, outcome };
}

/** Connects with a client certificate and waits until the server has closed the connection. */
async function connect(port: number, client: { certPem: string; keyPem: string }) {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: ca.certPem,
    cert: client.certPem,
    key: client.keyPem,
  });
  socket.on('error', () => {
    // A refused client sees only a reset or an alert; the server's outcome is what is checked.
  });
  socket.resume();
  await once(socket, 'close');
}

describe('identityFromPeerCertificate, real TLS handshake', () => {
  it('gives the participant identity of the verified client certificate', async () => {
    const { port, outcome } = await startServer();
    await connect(port, await issueClientCertificate(ca, { identity: 'bank-a' }));
    expect(await outcome).toEqual({ authorized: true, identity: 'bank-a' });
  });

  it('gives null for an operator certificate, which is not a participant', async () => {
    const { port, outcome } = await startServer();
    await connect(port, await issueClientCertificate(ca, { identity: 'alice', role: 'operator' }));
    expect(await outcome).toEqual({ authorized: true, identity: null });
  });
});

describe('mutual TLS server, refused client certificates', () => {
  it('refuses an expired certificate with CERT_HAS_EXPIRED', async () => {
    const expired = await issueClientCertificate(ca, {
      identity: 'bank-a',
      notBefore: new Date(Date.now() - 10 * DAY_MS),
      notAfter: new Date(Date.now() - DAY_MS),
    });
    const { port, outcome } = await startServer();
    await connect(port, expired);
    expect(await outcome).toEqual({ authorized: false, authorizationError: 'CERT_HAS_EXPIRED' });
  });

  it('refuses a certificate that is not yet valid with CERT_NOT_YET_VALID', async () => {
    const early = await issueClientCertificate(ca, {
      identity: 'bank-a',
      notBefore: new Date(Date.now() + DAY_MS),
    });
    const { port, outcome } = await startServer();
    await connect(port, early);
    expect(await outcome).toEqual({ authorized: false, authorizationError: 'CERT_NOT_YET_VALID' });
  });

  it('refuses a certificate from another CA', async () => {
    const otherCa = await createCertificateAuthority({ commonName: 'Other CA' });
    const { port, outcome } = await startServer();
    await connect(port, await issueClientCertificate(otherCa, { identity: 'bank-a' }));
    const result = await outcome;
    expect(result.authorized).toBe(false);
    expect(result.authorizationError).toMatch(/UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE)/);
  });

  it('refuses the hub server certificate used as a client certificate', async () => {
    const { port, outcome } = await startServer();
    await connect(port, hub);
    const result = await outcome;
    expect(result.authorized).toBe(false);
    expect(result.authorizationError).toBe('INVALID_PURPOSE');
  });
});
