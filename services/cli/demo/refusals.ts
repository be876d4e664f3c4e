import { credentials, status as GrpcStatus } from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { createCertificateAuthority, issueClientCertificate } from '../../shared/pki/index.js';
import type { PkiLayout } from '../../shared/pki/index.js';
import { loadKnowledgeProto } from '../../shared/transport/proto.js';
import { CHANNEL_OPTIONS } from '../../shared/transport/limits.js';

/** One attempt by a client that must not get knowledge, and what the hub answered. */
export interface RefusalAttempt {
  client: string;
  refused: boolean;
  status: string;
}

/**
 * Tries to fetch a version's manifest as three clients the hub must refuse: one with no
 * client certificate, one whose certificate comes from another CA, and one whose
 * certificate from the right CA has expired. Each should fail at the TLS handshake and
 * leave a `handshake` denial in the access log.
 */
export async function attemptRefusedClients(
  pki: PkiLayout,
  address: string,
  versionId: string,
): Promise<RefusalAttempt[]> {
  const caPem = await readFile(pki.caCert);
  const ca = {
    certPem: await readFile(pki.caCert, 'utf8'),
    keyPem: await readFile(pki.caKey, 'utf8'),
  };

  const rogueCa = await createCertificateAuthority({ commonName: 'Rogue Consortium CA' });
  const rogue = await issueClientCertificate(rogueCa, { identity: 'bank-a' });
  const dayMs = 86_400_000;
  const expired = await issueClientCertificate(ca, {
    identity: 'bank-b',
    notBefore: new Date(Date.now() - 30 * dayMs),
    notAfter: new Date(Date.now() - dayMs),
  });

  const attempts: [string, ReturnType<typeof credentials.createSsl>][] = [
    ['no client certificate', credentials.createSsl(caPem)],
    [
      'certificate from another CA (claims bank-a)',
      credentials.createSsl(caPem, Buffer.from(rogue.keyPem), Buffer.from(rogue.certPem)),
    ],
    [
      'expired certificate (claims bank-b)',
      credentials.createSsl(caPem, Buffer.from(expired.keyPem), Buffer.from(expired.certPem)),
    ],
  ];
  const proto = loadKnowledgeProto();
  const results: RefusalAttempt[] = [];
  for (const [client, channelCredentials] of attempts) {
    const stub = new proto.distillery.v1.Knowledge(address, channelCredentials, CHANNEL_OPTIONS);
    const outcome = await new Promise<RefusalAttempt>((resolve) => {
      stub.GetManifest({ versionId }, { deadline: Date.now() + 10_000 }, (err, response) => {
        if (err)
          resolve({ client, refused: true, status: GrpcStatus[err.code] ?? String(err.code) });
        else resolve({ client, refused: !response, status: 'OK (knowledge was served!)' });
      });
    });
    stub.close();
    results.push(outcome);
  }
  return results;
}
