import { calculateJwkThumbprint, exportJWK, exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import type { JWK } from 'jose';

/** Algorithm of every Distillery access token. */
export const TOKEN_ALGORITHM = 'ES256';

/** A fresh token signing key: PEM halves and the public JWK Set that publishes it. */
export interface SigningKeyMaterial {
  /** PKCS#8 PEM ("PRIVATE KEY"). */
  privateKeyPem: string;
  /** SPKI PEM ("PUBLIC KEY"). */
  publicKeyPem: string;
  /** RFC 7638 thumbprint of the public key; the `kid` of tokens it signs. */
  kid: string;
  /** `{ keys: [publicJwk] }`, with `kid`, `alg` and `use` set. */
  jwks: { keys: JWK[] };
}

/** Generates an ES256 (ECDSA P-256) key for signing access tokens. */
export async function generateSigningKey(): Promise<SigningKeyMaterial> {
  const { privateKey, publicKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await keyIdOfJwk(jwk);
  return {
    privateKeyPem: await exportPKCS8(privateKey),
    publicKeyPem: await exportSPKI(publicKey),
    kid,
    jwks: { keys: [{ ...jwk, kid, alg: TOKEN_ALGORITHM, use: 'sig' }] },
  };
}

/**
 * Key id of a public or private JWK: its RFC 7638 SHA-256 thumbprint, which covers only the
 * public members, so both halves of a pair give the same id.
 */
export async function keyIdOfJwk(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, 'sha256');
}
