import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { exportJWK, type JWK } from 'jose';
import { writePrivateFile } from '../pki/files.js';
import { keyIdOfJwk, TOKEN_ALGORITHM } from './signing-key.js';

/** An ES256 key the hub signs with, and the public JWK that publishes it. */
export interface HubSigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** RFC 7638 thumbprint of the public key. */
  kid: string;
  /** Public JWK with `kid`, `alg` and `use`. */
  publicJwk: JWK;
}

/** Generates an ES256 key in memory. */
export async function generateHubSigningKey(): Promise<HubSigningKey> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return describeKey(privateKey);
}

/**
 * Reads the PKCS#8 ES256 key at `path`, or creates one there (mode 0600) when none exists, so
 * that a restarted hub keeps signing with the key auditors already hold.
 */
export async function loadOrCreateHubSigningKey(path: string): Promise<HubSigningKey> {
  let pem: string | undefined;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (pem !== undefined) return describeKey(createPrivateKey(pem));
  const key = await generateHubSigningKey();
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writePrivateFile(path, key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  return key;
}

async function describeKey(privateKey: KeyObject): Promise<HubSigningKey> {
  if (
    privateKey.asymmetricKeyType !== 'ec' ||
    privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
  ) {
    throw new TypeError('hub signing key must be an ES256 (P-256) key');
  }
  const publicKey = createPublicKey(privateKey);
  const jwk = await exportJWK(publicKey);
  const kid = await keyIdOfJwk(jwk);
  return {
    privateKey,
    publicKey,
    kid,
    publicJwk: { ...jwk, kid, alg: TOKEN_ALGORITHM, use: 'sig' },
  };
}
