import { createPrivateKey, webcrypto } from 'node:crypto';
import { PemConverter } from './x509.js';

/** WebCrypto of Node, passed explicitly to @peculiar/x509 so that no global is relied on. */
export const webCrypto: webcrypto.Crypto = webcrypto;

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** Key algorithm of every Distillery certificate: ECDSA on P-256. */
export const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** Signature algorithm of every Distillery certificate and request: ECDSA with SHA-256. */
export const SIGNATURE_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Generates an extractable ECDSA P-256 key pair. */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return webCrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

/** Exports a private key as PKCS#8 PEM ("PRIVATE KEY"). */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webCrypto.subtle.exportKey('pkcs8', key);
  return PemConverter.encode(der, 'PRIVATE KEY');
}

/**
 * Imports a P-256 private key for signing from PEM. Node parses the PEM first, so that a SEC1
 * "EC PRIVATE KEY" written by OpenSSL is accepted as well as PKCS#8.
 *
 * @param pem the private key in PEM.
 * @param what names the key in the TypeError thrown when it is unusable (`ca.keyPem`).
 */
export async function importPrivateKeyPem(pem: string, what: string): Promise<CryptoKey> {
  let der: Buffer;
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('not a P-256 key');
    }
    der = key.export({ type: 'pkcs8', format: 'der' });
  } catch (err) {
    throw new TypeError(`${what} is not a PEM ECDSA P-256 private key`, { cause: err });
  }
  return webCrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
}
